"""Atomic file writes shared by every layer that stores something (data store, sweep chunks,
reports); importable from any layer, like ``errors``.

A write goes to a temporary file in the target's folder (name starting with ``TMP_PREFIX``), is
flushed to disk, then moved over the target with ``os.replace`` and the folder is synced, so a
crash at any moment leaves either the old file or the new one, never a torn one. Readers that
scan a folder skip (or remove) leftovers whose names start with ``TMP_PREFIX``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TMP_PREFIX", "atomic_path", "fsync_dir", "write_bytes_atomic"]

TMP_PREFIX = ".tmp-"


def fsync_dir(directory: Path) -> None:
    """Flush a folder's entries to disk (a no-op where the platform cannot)."""
    with contextlib.suppress(OSError):  # not supported on every platform / filesystem
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it atomically replaces ``path``.

    On an exception inside the block the temporary file is removed and ``path`` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
