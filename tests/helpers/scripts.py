"""Load a maintainer script from scripts/ (or a benchmark from benchmarks/) as a module (neither
folder is a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
BENCHMARKS = SCRIPTS.parent / "benchmarks"


def load_script(name: str, *, module_name: str | None = None, folder: Path = SCRIPTS) -> ModuleType:
    """Return ``<folder>/<name>.py`` imported under ``module_name`` (default: ``name``)."""
    spec = importlib.util.spec_from_file_location(module_name or name, folder / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
