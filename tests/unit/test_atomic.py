"""Atomic writes: the target is either the old or the new file, and no temporary is left."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtester._atomic import TMP_PREFIX, atomic_path, write_bytes_atomic


def test_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    write_bytes_atomic(target, b"old")
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_failure_inside_the_block_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.parquet"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.name.startswith(TMP_PREFIX)
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert not list(tmp_path.glob(f"{TMP_PREFIX}*"))
