"""Report outputs: never written over what the command did not create; OS faults in one line.

Also the layering: the report modules draw what they are given and never run the engine.
"""

from __future__ import annotations

import ast
import errno
import json
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.cli import main
from backtester.errors import ConfigError
from backtester.reports import html as report_html
from backtester.reports.html import MARKER, check_output_dir
from backtester.reports.sweep import sweep_report
from backtester.survival.comparisons import Comparisons
from backtester.survival.study import SurvivalStudy
from tests.unit.test_survival_helpers import fake_study

ROOT = Path(__file__).resolve().parents[2]
# the modules that draw: they may not import the engine or the code that runs studies
RENDER_MODULES = [
    ROOT / "backtester" / "survival" / "report.py",
    ROOT / "backtester" / "survival" / "universe_report.py",
    ROOT / "backtester" / "survival" / "report_paths.py",
    *sorted((ROOT / "backtester" / "reports").glob("*.py")),
]
FORBIDDEN = (
    "backtester.engine.run",
    "backtester.engine.kernel",
    "backtester.survival.run",
    "backtester.survival.strategy",
    "backtester.survival.comparisons",
    "backtester.survival.paths",
    "backtester.sweep",
)


# ------------------------------------------------------------------ layering


def _runtime_imports(path: Path) -> list[str]:
    # every module an import statement names, at any depth, except under `if TYPE_CHECKING:`
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return names


@pytest.mark.parametrize("path", RENDER_MODULES, ids=lambda p: p.name)
def test_report_modules_never_import_the_engine_or_study_runners(path: Path) -> None:
    # Arrange / Act
    names = _runtime_imports(path)
    # Assert: e.g. survival/report.py used to import survival.run to re-run the equity fan
    bad = [n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == [], f"{path.name} imports {bad}"


@pytest.fixture(scope="module")
def computed(btc_1h: bt.Market) -> tuple[SurvivalStudy, Comparisons]:
    market = btc_1h.slice("2022-01-01", "2022-03-01")
    study = bt.survival_study(
        market, side="both", leverage=(2, 20), stop_loss=(None, 0.05), n_boot=20
    )
    return study, study.comparisons()


_RENDER_WITHOUT_ENGINE = """
import importlib.abc, pickle, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"{{name}} is blocked: the report must not run the engine")
        return None
sys.meta_path.insert(0, Block())
study, cmp = pickle.load(open({data!r}, "rb"))
from backtester.survival.report import write_survival_report
print(write_survival_report(study, {out!r}, comparisons=cmp))
"""


def test_report_renders_precomputed_comparisons_with_the_engine_unavailable(
    computed: tuple[SurvivalStudy, Comparisons], tmp_path: Path
) -> None:
    # Arrange: the study and its comparisons computed here, then handed to a process in which
    # importing the engine (engine.run, engine.kernel, the accounts kernel), a strategy or sweep
    # fails; any engine run (survival_study imports engine.run when it runs) would fail there
    # too. numba itself stays importable: the report's curves bootstrap through the compiled
    # Kaplan–Meier of survival._stats_nb, which is statistics, not the engine
    study, cmp = computed
    data = tmp_path / "computed.pickle"
    data.write_bytes(pickle.dumps((study, cmp)))
    blocked = [
        "backtester.engine.run",
        "backtester.engine.kernel",
        "backtester.engine.accounts",
        "backtester.engine.accounts_run",
        "backtester.survival.strategy",
        "backtester.sweep",
    ]
    code = _RENDER_WITHOUT_ENGINE.format(blocked=blocked, data=str(data), out=str(tmp_path / "r"))
    # Act
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
    )
    # Assert: the whole report, comparisons and equity fan included, was drawn
    assert out.returncode == 0, out.stderr[-2000:]
    figures = {p.stem for p in (tmp_path / "r" / "figures").glob("*.png")}
    assert {"equity_fan", "cmp_leverage_ladder", "cmp_mark_vs_last", "cmp_funding"} <= figures
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["comparisons"]["leverage_ladder"]["settings"] == 22  # 11 rungs x 2 sides
    # the numbers drawn are the computed ones; the fan starts at 100 % on day 0
    ladder = pd.read_csv(tmp_path / "r" / "tables" / "cmp_leverage_ladder.csv")
    np.testing.assert_allclose(ladder["survival"], cmp.ladder["survival"])
    days, equity, liquidated = next(iter(next(iter(cmp.equity_fan.values())).values()))
    assert days[0] == 0.0 and np.all(equity[0] == 1.0) and liquidated[0] == 0.0


def test_the_funding_comparison_fits_a_market_shorter_than_90_days(
    computed: tuple[SurvivalStudy, Comparisons],
) -> None:
    # the funding holds are followed for 90 days; on 59 days of data that horizon used to be
    # refused ("longer than the data") after the rest of the report had been computed
    study, cmp = computed
    assert study.market.n_bars * study.bar_days == 59
    assert cmp.funding_horizon_days == 59
    assert len(cmp.funding) == 12  # 6 leverages x funding on/off


def test_exit_reasons_are_compared_by_name_in_the_survival_package() -> None:
    # `reason == 5` hid which exit was meant; every comparison of a reason uses ExitReason
    offenders = []
    for path in sorted((ROOT / "backtester" / "survival").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            mentions = any("reason" in ast.unparse(s).lower() for s in sides)
            literal = any(isinstance(s, ast.Constant) and type(s.value) is int for s in sides)
            if mentions and literal:
                offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []


def test_every_exit_reason_has_an_outcome_name() -> None:
    from backtester.engine.enums import ExitReason
    from backtester.survival.comparisons import _reason_name

    reasons = [
        ExitReason.NONE,
        ExitReason.SIGNAL,
        ExitReason.STOP_LOSS,
        ExitReason.TAKE_PROFIT,
        ExitReason.TRAILING_STOP,
        ExitReason.LIQUIDATION,
        ExitReason.END_OF_DATA,
        ExitReason.HORIZON,
        ExitReason.RUIN,
    ]
    names = {_reason_name(int(r)) for r in reasons}
    assert len(names) == len(reasons) and not any(n.isdigit() for n in names)
    assert _reason_name(int(ExitReason.LIQUIDATION)) == "liquidated later"
    assert _reason_name(int(ExitReason.HORIZON)) == "survived to horizon"


# ------------------------------------------------------------------ where a report may write


@pytest.fixture(scope="module")
def study(btc_1h: bt.Market) -> SurvivalStudy:
    return fake_study(btc_1h.slice("2022-01-01", "2022-04-01"))


def _small_report(out: Path, tables: tuple[str, ...] = ("survival",)) -> Path:
    # one figure and one table per name: what every report writes, quickly
    from backtester.reports.html import ReportFigure, ReportSection, ReportTable, write_report
    from backtester.reports.plots import plot_bars

    frame = pd.DataFrame({"leverage": [2.0, 10.0], "n": [1, 3], "side": ["long", "long"]})
    figure = plot_bars(frame, x="leverage", y="n", hue="side", title="t", xlabel="x", ylabel="y")
    section = ReportSection(
        heading="h",
        tables=tuple(ReportTable(name, frame) for name in tables),
        figures=(ReportFigure("bars", figure, "caption"),),
    )
    return write_report(out, title="t", subtitle="s", sections=[section], run_info={"a": 1})


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_report_goes_into_a_new_folder_and_lists_what_it_wrote(
    study: SurvivalStudy, tmp_path: Path
) -> None:
    # Act: the survival report (without the comparisons)
    index = Path(study.report(str(tmp_path / "new"), comparisons=False))
    # Assert: the marker says what wrote it and lists exactly the files written
    marker = json.loads((index.parent / MARKER).read_text())
    written = {
        str(p.relative_to(index.parent))
        for p in index.parent.rglob("*")
        if p.is_file() and p.name != MARKER
    }
    assert set(marker["files"]) == written
    assert {"index.html", "run.json", "tables/survival.csv"} <= written
    assert "backtester" in marker["written_by"]


def test_the_same_folder_can_be_written_again_and_foreign_files_are_kept(tmp_path: Path) -> None:
    # Arrange: a first report with two tables, and a note the user saved next to it
    out = tmp_path / "again"
    _small_report(out, tables=("survival", "old_table"))
    (out / "notes.txt").write_text("mine")
    # Act: the second report no longer writes old_table (the first report's, so it goes)
    _small_report(out)
    # Assert
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "tables" / "old_table.csv").exists()
    listed = json.loads((out / MARKER).read_text())["files"]
    assert "tables/old_table.csv" not in listed and "tables/survival.csv" in listed


def test_a_folder_with_files_no_report_wrote_is_refused_untouched(
    study: SurvivalStudy, tmp_path: Path
) -> None:
    # Arrange: someone's folder that happens to hold an index.html and a run.json
    out = tmp_path / "mine"
    out.mkdir()
    (out / "index.html").write_text("my page")
    (out / "run.json").write_text('{"mine": true}')
    before = _snapshot(out)
    # Act
    with pytest.raises(ConfigError) as exc:
        study.report(str(out), comparisons=False)
    # Assert: one line naming the folder and the fix; nothing changed
    text = _one_line(exc)
    assert str(out) in text and "--out" in text
    assert _snapshot(out) == before


def test_an_unlisted_file_in_a_report_folder_is_not_overwritten(tmp_path: Path) -> None:
    # Arrange: a marked folder whose marker does not list its run.json
    out = tmp_path / "marked"
    out.mkdir()
    (out / MARKER).write_text(json.dumps({"files": ["index.html"]}))
    (out / "run.json").write_text("keep me")
    # Act
    with pytest.raises(ConfigError) as exc:
        _small_report(out)
    # Assert: refused before any write
    assert str(out / "run.json") in _one_line(exc)
    assert (out / "run.json").read_text() == "keep me"
    assert not (out / "index.html").exists()


def test_a_damaged_marker_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "damaged"
    out.mkdir()
    (out / MARKER).write_text("{not json")
    with pytest.raises(ConfigError) as exc:
        check_output_dir(out)
    assert str(out / MARKER) in _one_line(exc)


def test_out_that_is_a_file_or_under_a_file_is_refused(tmp_path: Path) -> None:
    # Arrange
    file = tmp_path / "report.html"
    file.write_text("x")
    # Act / Assert
    with pytest.raises(ConfigError) as exc:
        check_output_dir(file)
    assert f"{file} is a file" in _one_line(exc)
    with pytest.raises(ConfigError) as exc:
        check_output_dir(file / "sub")
    assert f"{file} is a file" in _one_line(exc)
    assert file.read_text() == "x"


def test_check_output_dir_creates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert check_output_dir(out) == out
    assert list(tmp_path.iterdir()) == []


def _sweep_run(root: Path) -> Path:
    # a finished sweep run directory as `backtester sweep` leaves it
    run = root / "run"
    (run / "chunks").mkdir(parents=True)
    table = pd.DataFrame(
        {"symbol": ["X", "X"], "leverage": [1.0, 10.0], "total_return": [0.1, -0.2]}
    )
    table.to_parquet(run / "results.parquet")
    table.to_parquet(run / "chunks" / "000-0000000000.parquet")
    (run / "plan.json").write_text('{"chunks": []}')
    meta = {
        "status": "complete",
        "mode": "sweep",
        "config": {"market": {"symbols": ["X"]}},
        "data": {"X": {"sha256": "0" * 64}},
        "backtester_version": bt.__version__,
        "grid_names": ["leverage"],
        "n_symbols": 1,
        "n_cols": 2,
        "n_chunks": 1,
    }
    (run / "run.json").write_text(json.dumps(meta))
    return run


def test_a_report_never_writes_into_a_sweep_run_directory(
    study: SurvivalStudy, tmp_path: Path
) -> None:
    # Arrange: `backtester report runs/x --out runs/x` used to replace the run's run.json,
    # after which the sweep looked unfinished
    run = _sweep_run(tmp_path)
    before = _snapshot(run)
    meta = json.loads((run / "run.json").read_text())
    table = pd.read_parquet(run / "results.parquet")
    # Act / Assert: the sweep report, the survival report, and the run's chunks/ folder
    with pytest.raises(ConfigError) as exc:
        sweep_report(table, metadata=meta, out=run)
    assert "sweep run directory" in _one_line(exc) and str(run / "report") in _one_line(exc)
    with pytest.raises(ConfigError):
        study.report(str(run), comparisons=False)
    for inside in (run / "chunks", run / "chunks" / "x"):
        with pytest.raises(ConfigError) as exc:
            check_output_dir(inside)
        assert f"inside the sweep run in {run}" in _one_line(exc)
    assert _snapshot(run) == before


def test_cli_report_into_the_run_directory_exits_2_and_keeps_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange
    run = _sweep_run(tmp_path)
    before = _snapshot(run)
    # Act
    code = main(["report", str(run), "--out", str(run)])
    # Assert: one line on stderr; the run is untouched and its default report still works
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and str(run) in err
    assert _snapshot(run) == before
    assert main(["report", str(run)]) == 0
    assert (run / "report" / "index.html").is_file()
    assert main(["report", str(run)]) == 0  # its own folder may be written again


def _damage_run_json(run: Path) -> Path:
    (run / "run.json").write_text('{"status": "complete", "config": {"mar')  # cut short
    return run / "run.json"


def _damage_results(run: Path) -> Path:
    data = (run / "results.parquet").read_bytes()
    (run / "results.parquet").write_bytes(data[: len(data) // 2])  # cut short
    return run / "results.parquet"


def _binary_run_json(run: Path) -> Path:
    (run / "run.json").write_bytes(b"\xff\xfe\x00PK\x03\x04")
    return run / "run.json"


@pytest.mark.parametrize("damage", [_damage_run_json, _damage_results, _binary_run_json])
def test_cli_report_of_a_damaged_run_is_one_line_naming_the_file(
    damage: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange
    run = _sweep_run(tmp_path)
    damaged = damage(run)  # type: ignore[operator]
    # Act
    code = main(["report", str(run)])
    # Assert: exit 2, one line naming the damaged file; no report folder was started
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and str(damaged) in err
    assert "Traceback" not in err
    assert not (run / "report").exists()


def test_survival_report_is_checked_before_the_comparisons_run(
    study: SurvivalStudy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: the comparisons are the long part; they must not start for a refused folder
    out = tmp_path / "taken"
    out.mkdir()
    (out / "data.csv").write_text("x")

    def never(self: SurvivalStudy) -> None:
        raise AssertionError("the comparisons ran before the folder was checked")

    monkeypatch.setattr(SurvivalStudy, "comparisons", never)
    # Act / Assert
    with pytest.raises(ConfigError):
        study.report(str(out))


# ------------------------------------------------------------------ operating-system faults


def test_an_unwritable_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: the write probe is refused as on a read-only folder (tests may run as root,
    # where chmod does not stop writes)
    def denied(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))

    monkeypatch.setattr(report_html.tempfile, "mkstemp", denied)
    # Act
    with pytest.raises(ConfigError) as exc:
        check_output_dir(tmp_path / "out")
    # Assert
    text = _one_line(exc)
    assert str(tmp_path) in text and "not writable" in text and "--out" in text


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_read_only_folder_is_refused_for_real(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the probe is tested with a fault above")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            check_output_dir(folder / "out")
    finally:
        folder.chmod(0o700)


@pytest.fixture
def full_disk_after(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    # every atomic write after the first `n[0]` ones fails with ENOSPC, as on a full disk
    real = report_html.atomic_path
    n = [0]
    calls = [0]

    def atomic_path(path: Path):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] > n[0]:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path)

    monkeypatch.setattr(report_html, "atomic_path", atomic_path)
    yield n


def test_a_full_disk_is_one_line_and_the_earlier_report_survives(
    study: SurvivalStudy,
    tmp_path: Path,
    full_disk_after: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange: a complete earlier report in the folder
    out = tmp_path / "rep"
    full_disk_after[0] = 10**6
    _small_report(out)
    page = (out / "index.html").read_bytes()
    listed = json.loads((out / MARKER).read_text())["files"]
    # Act: the disk fills up after two files of the new report
    full_disk_after[0] = 2
    with pytest.raises(ConfigError) as exc:
        _small_report(out)
    # Assert: one line naming the path and the fix; no file torn, the page is the old one,
    # and the marker still lists every file (so the folder can be written again)
    text = _one_line(exc)
    assert "disk is full" in text and str(out) in text and "free some space" in text
    assert (out / "index.html").read_bytes() == page
    assert set(listed) <= set(json.loads((out / MARKER).read_text())["files"])
    assert not [p for p in out.rglob(".tmp-*")]
    full_disk_after[0] = 10**6
    _small_report(out)  # room again: the same folder is accepted


def test_an_os_fault_names_the_folder_asked_for_not_a_probe_file(tmp_path: Path) -> None:
    import errno

    from backtester.reports.html import TMP_PREFIX, _os_fault

    probe = tmp_path / f"{TMP_PREFIX}probe.abc123"
    message = str(_os_fault(tmp_path / "rep", OSError(errno.EACCES, "denied", str(probe))))
    assert str(tmp_path / "rep") in message and "probe" not in message
