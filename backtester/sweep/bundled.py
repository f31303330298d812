"""The example sweep configs shipped with the package (``configs/*.toml``; layer: sweep).

A wheel carries them as ``backtester/_configs``; a clone reads its ``configs/`` folder. So the
README's ``backtester sweep configs/hold.toml --out runs/hold`` works after ``pip install .``
from any directory: a config path that does not exist but names a bundled config is read from
the package.
"""

from __future__ import annotations

import contextlib
from importlib import resources
from pathlib import Path

__all__ = ["bundled_configs", "config_dir", "find_config"]


def config_dir() -> Path | None:
    """Return the folder of the bundled configs, or None if this install has none."""
    with contextlib.suppress(ModuleNotFoundError, TypeError):
        installed = Path(str(resources.files("backtester") / "_configs"))
        if installed.is_dir():
            return installed
    from backtester.data.store import _source_checkout

    repo = _source_checkout()
    if repo is not None and (repo / "configs").is_dir():
        return repo / "configs"
    return None


def bundled_configs() -> tuple[str, ...]:
    """Return the file names of the bundled configs (``hold.toml``, ...), sorted."""
    folder = config_dir()
    return () if folder is None else tuple(sorted(p.name for p in folder.glob("*.toml")))


def find_config(path: str | Path) -> Path:
    """Return ``path`` if it exists, else the bundled config of that name (else ``path``).

    Only a bare file name or ``configs/<name>.toml`` falls back to the bundled copy, so a typo
    in another folder still fails with the loader's "does not exist" error.
    """
    file = Path(path)
    if file.exists() or file.parent.name not in ("", "configs") or file.parent.parent != Path():
        return file
    folder = config_dir()
    if folder is not None and (folder / file.name).is_file():
        return folder / file.name
    return file
