"""A strategy whose own code fails, and a config that is not UTF-8: one line each, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

import backtester as bt
from backtester.cli import main
from backtester.errors import ConfigError, ShapeError

SMALL = ["--start", "2021-01-01", "--end", "2021-04-01", "--side", "long", "--no-report"]
BROKEN = 'PARAMS = {"x": [1]}\n\n\ndef signals(market, grid):\n    return 1 / 0\n'
NONE = 'PARAMS = {"x": [1]}\n\n\ndef signals(market, grid):\n    return None\n'


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_failing_strategy_is_one_line_through_the_api(tmp_path: Path) -> None:
    from backtester import strategies

    broken = strategies.load(str(_write(tmp_path, "zerodiv_strat.py", BROKEN)))
    market = bt.load_market("BTC/USDT:USDT").slice("2021-01-01", "2021-02-01")
    with pytest.raises(ConfigError) as info:
        bt.run_sweep(market, broken)
    message = str(info.value)
    assert "signals(market, grid) raised ZeroDivisionError: division by zero" in message
    assert "zerodiv_strat.py:5" in message and "\n" not in message
    assert isinstance(info.value.__cause__, ZeroDivisionError)  # the traceback is kept
    nothing = strategies.load(str(_write(tmp_path, "none_strat.py", NONE)))
    with pytest.raises(ShapeError, match=r"must return a backtester Signals, was NoneType"):
        bt.run_sweep(market, nothing)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("zerodiv_strat.py", BROKEN, "raised ZeroDivisionError: division by zero"),
        ("none_strat.py", NONE, "must return a backtester Signals, was NoneType"),
    ],
)
def test_a_failing_strategy_is_one_line_in_survival(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, message: str
) -> None:
    path = _write(tmp_path, name, text)
    code = main(["survival", *SMALL, "--leverage", "2", "--strategy", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err and "Traceback" not in err


def test_a_failing_strategy_is_one_line_in_a_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, "zerodiv_strat.py", BROKEN)
    config = _write(
        tmp_path,
        "c.toml",
        '[market]\nsymbols = ["BTC/USDT:USDT"]\nstart = "2024-06-01"\nend = "2024-07-01"\n\n'
        '[strategy]\nname = "zerodiv_strat.py"\n',
    )
    code = main(["sweep", str(config), "--out", str(tmp_path / "runs" / "z"), "--workers", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "raised ZeroDivisionError" in err and "Traceback" not in err


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00garbage", "[market]\n# café\n".encode("latin-1")])
def test_a_config_that_is_not_utf8_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: bytes
) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(raw)
    code = main(["sweep", str(path), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "is not UTF-8 text" in err and "save it as UTF-8" in err
    assert "\n" not in err and not (tmp_path / "r").exists()
