"""Every third-party module that backtester/ and strategies/ import is a declared dependency."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"backtester", "strategies"}
# imported only inside a function, from an optional extra: module -> (extra, requirement it holds)
OPTIONAL = {"distributed": ("dask", "dask[distributed]")}


def _imported_modules() -> set[str]:
    """Top-level names of every absolute import, including importlib.import_module("literal")."""
    found: set[str] = set()
    for package in FIRST_PARTY:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
                elif (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "attr", None) == "import_module"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    found.add(node.args[0].value.split(".")[0])
    return found - FIRST_PARTY - set(sys.stdlib_module_names) - {"__future__"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_every_imported_third_party_module_is_declared_in_pyproject() -> None:
    # Arrange
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    required = _names(project["dependencies"])
    extras = project["optional-dependencies"]
    dists = packages_distributions()
    # Act
    missing = []
    for module in sorted(_imported_modules()):
        if module in OPTIONAL:
            extra, requirement = OPTIONAL[module]
            if not any(r.replace(" ", "").startswith(requirement) for r in extras[extra]):
                missing.append(f"{module} (optional: {requirement} in the {extra} extra)")
            continue
        owners = {d.lower() for d in dists.get(module, [module])}
        if not owners & required:
            missing.append(f"{module} (distribution {', '.join(sorted(owners))})")
    # Assert: e.g. scipy (survival/stats.py) must be in [project] dependencies
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_import_scan_sees_the_known_third_party_imports() -> None:
    # the scan itself works: these are imported today (scipy inside a function, distributed via
    # importlib.import_module)
    assert {"numpy", "pandas", "numba", "scipy", "distributed"} <= _imported_modules()
