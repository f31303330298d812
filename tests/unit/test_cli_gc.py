"""The CLI's garbage-collector settings: raised while a command runs, restored after it.

``main()`` is called in-process by tests and notebooks, so it must leave the interpreter's
collector as it found it, on success and on error; ``console()`` (the installed command)
exits with main's code.
"""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from backtester import cli

#: a command that fails on its input (exit code 2, one line)
BAD = ["liq-price", "--exchange", "nosuch", "--side", "long", "--entry", "100", "--size", "1"]


def test_thresholds_raised_during_a_command_and_restored(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = gc.get_threshold()
    seen: list[tuple[int, ...]] = []
    real = cli.build_parser

    def spy() -> object:
        seen.append(gc.get_threshold())
        return real()

    monkeypatch.setattr(cli, "build_parser", spy)
    assert cli.main(BAD) == 2  # a bad input
    assert seen == [cli.GC_THRESHOLDS]
    assert gc.get_threshold() == before
    assert "nosuch" in capsys.readouterr().err


def test_thresholds_restored_when_the_command_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    before = gc.get_threshold()

    def boom() -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", boom)
    with pytest.raises(KeyboardInterrupt):
        cli.main([])
    assert gc.get_threshold() == before


def test_console_exits_with_mains_code() -> None:
    ok = subprocess.run(
        [sys.executable, "-c", "from backtester.cli import console; console()", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0 and "survival" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "backtester", *BAD],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
