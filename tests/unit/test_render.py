"""Drawing a report's figures on several cores (reports.render): the same bytes as one by one,
errors raised in this process, nothing left behind, and no report file written half."""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from backtester.reports import render
from backtester.reports.html import ReportFigure, ReportSection, write_report
from backtester.reports.plots import plot_bars, plot_survival_lines

FORKS = "fork" in multiprocessing.get_all_start_methods() and os.name == "posix"
needs_fork = pytest.mark.skipif(not FORKS, reason="figures are drawn in forked processes only")


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "leverage": [2.0, 5.0, 10.0, 2.0, 5.0, 10.0],
            "side": ["long"] * 3 + ["short"] * 3,
            "n": [1, 4, 9, 2, 3, 5],
            "survival": [0.99, 0.9, 0.5, 0.98, 0.8, 0.4],
            "ci_low": [0.97, 0.85, 0.4, 0.95, 0.7, 0.3],
            "ci_high": [1.0, 0.95, 0.6, 1.0, 0.9, 0.5],
        }
    )


def _sources(k: int = 5) -> list[render.FigureSource]:
    frame = _frame()
    out: list[render.FigureSource] = []
    for j in range(k):
        kw = {"title": f"figure {j}", "xlabel": "Leverage [x]"}
        if j % 2:
            out.append(partial(plot_bars, frame, x="leverage", y="n", hue="side", ylabel="n", **kw))
        else:
            out.append(partial(plot_survival_lines, frame, x="leverage", hue="side", **kw))
    return out


def _leftovers() -> list[str]:
    return glob.glob(os.path.join(tempfile.gettempdir(), "backtester-figures-*"))


def _two_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    # two cores and no other work, whatever this machine has: drawing forks one child
    monkeypatch.setattr(render, "_cores", lambda: 2)
    monkeypatch.setattr(render, "_others_running", lambda: 0)


@needs_fork
def test_figures_drawn_by_several_processes_are_the_bytes_drawn_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange: two cores whatever this machine has, and an already built Figure among the
    # functions (a child draws the copy it inherited)
    _two_free_cores(monkeypatch)
    sources = [
        *_sources(),
        plot_bars(_frame(), x="leverage", y="n", title="t", xlabel="x", ylabel="y"),
    ]
    before = _leftovers()
    # Act
    drawing = render.start(sources, costs=[1, 5, 1, 3, 1, 2])
    forked = len(drawing._procs)
    parallel = drawing.results()
    serial = render.render(sources, processes=1)
    # Assert: a child drew some of them, the bytes and widths are the same, in order, and no
    # child or temporary folder is left
    assert forked == 1
    assert [p.data for p in parallel] == [p.data for p in serial]
    assert [p.width for p in parallel] == [p.width for p in serial]
    assert all(p.data.startswith(b"\x89PNG") for p in parallel)
    assert multiprocessing.active_children() == []
    assert _leftovers() == before


@pytest.mark.parametrize(("cores", "others"), [(1, 0), (2, 1), (2, 3)])
def test_without_a_free_core_everything_is_drawn_here(
    cores: int, others: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one core, or the other core busy with other work: no child (it would not pay)
    monkeypatch.setattr(render, "_cores", lambda: cores)
    monkeypatch.setattr(render, "_others_running", lambda: others)
    drawing = render.start(_sources(3))
    assert drawing._procs == []
    assert len(drawing.results()) == 3


def test_other_work_is_counted_from_the_runnable_threads() -> None:
    # this test's own thread is not counted; whatever else runs is a count, never negative
    assert render._others_running() >= 0


def _fails_in_a_child(parent: int) -> object:
    # a figure whose drawing kills the process it runs in, unless that is the parent
    if os.getpid() != parent:
        os._exit(7)
    return plot_bars(_frame(), x="leverage", y="n", title="t", xlabel="x", ylabel="y")


@needs_fork
def test_a_figure_a_child_did_not_deliver_is_drawn_here(monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: the costliest figure (a child takes it first) kills the child drawing it
    _two_free_cores(monkeypatch)
    sources = [*_sources(3), partial(_fails_in_a_child, os.getpid())]
    # Act
    pngs = render.render(sources, costs=[1, 1, 1, 10])
    # Assert: every figure, the killed one drawn here
    assert len(pngs) == 4 and all(p.data.startswith(b"\x89PNG") for p in pngs)
    assert multiprocessing.active_children() == []


def _stalls_in_a_child(parent: int) -> object:
    # a figure whose drawing never ends in a child (a deadlock, say), drawn at once here
    if os.getpid() != parent:
        time.sleep(600)
    return plot_bars(_frame(), x="leverage", y="n", title="t", xlabel="x", ylabel="y")


@needs_fork
def test_a_stalled_child_is_stopped_and_its_figure_drawn_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange: a child that delivers nothing for a second is taken as stuck
    _two_free_cores(monkeypatch)
    monkeypatch.setattr(render, "STALL_SECONDS", 1.0)
    sources = [*_sources(2), partial(_stalls_in_a_child, os.getpid())]
    # Act
    t0 = time.monotonic()
    pngs = render.render(sources, costs=[1, 1, 10])
    # Assert: every figure, in about the stall time, and the child gone
    assert len(pngs) == 3 and all(p.data.startswith(b"\x89PNG") for p in pngs)
    assert time.monotonic() - t0 < 60
    assert multiprocessing.active_children() == []


def _broken() -> object:
    raise ValueError("fans has no panel to draw")


@pytest.mark.parametrize("cores", [1, 2])
def test_a_figure_that_fails_raises_its_error_here_and_writes_nothing(
    cores: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: a complete earlier report in the folder
    monkeypatch.setattr(render, "_cores", lambda: cores)
    monkeypatch.setattr(render, "_others_running", lambda: 0)
    out = tmp_path / "rep"
    figures = tuple(ReportFigure(f"f{k}", source, "c") for k, source in enumerate(_sources(3)))
    write_report(
        out, title="t", subtitle="s", sections=[ReportSection("h", figures=figures)], run_info={}
    )
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    broken = (*figures, ReportFigure("broken", _broken, "c", cost=10.0))
    before_tmp = _leftovers()
    # Act: the failing figure is the costliest, so a child takes it first
    with pytest.raises(ValueError, match="no panel"):
        write_report(
            out,
            title="t2",
            subtitle="s",
            sections=[ReportSection("h", figures=broken)],
            run_info={},
        )
    # Assert: the same error as drawn one by one, and the folder exactly as it was
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert json.loads((out / ".backtester-report").read_text())["title"] == "t"
    assert multiprocessing.active_children() == []
    assert _leftovers() == before_tmp


def test_costs_must_match_the_figures() -> None:
    with pytest.raises(ValueError, match="one value per figure"):
        render.start(_sources(2), costs=[1.0])
