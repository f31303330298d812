"""scripts/build_bundled_data.py: validate the source first, build aside, swap in atomically."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import ModuleType

import pytest

from backtester.data import store
from tests.helpers.scripts import load_script


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("build_bundled_data", module_name="build_bundled_data")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    # a copy of the bundled data standing in for data/bundled (its manifest and one dataset)
    bundled = store.bundled_root()
    assert bundled is not None
    target = tmp_path / "bundled"
    key = "binanceusdm/BTC_USDT_USDT/1h/funding.parquet"
    (target / key).parent.mkdir(parents=True)
    shutil.copyfile(bundled / key, target / key)
    shutil.copyfile(bundled / "manifest.json", target / "manifest.json")
    (target / ".gitkeep").write_bytes(b"")
    return target


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_a_bad_source_leaves_the_bundle_untouched(
    script: ModuleType, out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(out)
    # Act: a missing folder, then a folder without the inputs
    assert script.main(["--source", str(tmp_path / "nope"), "--out", str(out)]) == 2
    (tmp_path / "empty").mkdir()
    assert script.main(["--source", str(tmp_path / "empty"), "--out", str(out)]) == 2
    # Assert: one line each, and nothing was deleted (it used to rmtree before checking)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "is not a folder" in err[0] and "is unchanged" in err[0]
    n_inputs = len(script.required_files(tmp_path / "empty"))
    assert f"lacks {n_inputs} input file(s), first binance_usdm_roshan7869/" in err[1]
    assert _snapshot(out) == before


def test_a_failing_build_leaves_the_bundle_untouched_and_no_temp_folder(
    script: ModuleType, out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange: every input present, but garbage (the build fails half way)
    source = tmp_path / "source"
    for path in script.required_files(source):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not a feather file")
    before = _snapshot(out)
    # Act
    assert script.main(["--source", str(source), "--out", str(out)]) == 1
    # Assert
    assert "error: build failed" in capsys.readouterr().err
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["bundled", "source"]


def test_swap_in_replaces_the_folder_and_keeps_unbuilt_files(
    script: ModuleType, out: Path, tmp_path: Path
) -> None:
    new = tmp_path / ".tmp-new"
    (new / "binanceusdm").mkdir(parents=True)
    (new / "manifest.json").write_text('{"format": 1, "datasets": {}}')
    script.swap_in(new, out)
    assert sorted(_snapshot(out)) == [".gitkeep", "manifest.json"]
    assert not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundled"]


def test_an_interrupted_swap_is_healed_by_the_next_run(
    script: ModuleType, out: Path, tmp_path: Path
) -> None:
    # Arrange: the run died between its two renames: the old bundle is aside, none in place
    before = _snapshot(out)
    aside = out.with_name(f".tmp-{out.name}.old")
    out.rename(aside)
    # Act: the next run (even with a bad source) puts the previous bundle back first
    assert script.main(["--source", str(tmp_path / "nope"), "--out", str(out)]) == 2
    # Assert
    assert _snapshot(out) == before
    assert not aside.exists()
