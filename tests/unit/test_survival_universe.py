"""The universe study: symbols side by side and a pooled row honest about co-moving symbols."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta

import backtester as bt
from backtester.cli import main
from backtester.errors import ConfigError
from backtester.survival.universe import POOLED, calendar_blocks, pooled_table, universe_table
from backtester.survival.universe_report import universe_display, write_universe_report

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
# 100 one-hour XRP bars 2021-11-17 01:00 -> 11-21 04:00; entries every 2 h with a 12 h horizon
# are the bars 0, 2, ..., 98 (50 entries), as tests/unit/test_own_market.py counts
STUDY = {"leverage": (5, 20), "horizon": "12h", "entry_every": "2h", "maint_margin_rate": 0.01}


def _market(symbol: str, rows: slice = slice(None)) -> bt.Market:
    bars = pd.read_csv(EXAMPLES / "mycoin_1h.csv", parse_dates=["timestamp"]).iloc[rows]
    return bt.Market.from_frames(bars.reset_index(drop=True), mark="last", symbol=symbol)


def _study(symbol: str, rows: slice = slice(None)) -> bt.SurvivalStudy:
    return bt.survival_study(_market(symbol, rows), side="long", **STUDY)  # type: ignore[arg-type]


def _clopper_pearson_low(survival: float, n: float) -> float:
    x = survival * n  # the exact binomial lower bound, written out with scipy's beta quantile
    return 0.0 if x <= 0 else float(beta.ppf(0.025, x, n - x + 1))


def test_two_symbols_that_move_exactly_together_count_once() -> None:
    # Arrange: the same bars under two names, the extreme of co-moving symbols
    a, b = _study("AAA/USDT:USDT"), _study("BBB/USDT:USDT")
    # Act
    pooled = pooled_table([a, b])
    # Assert
    single = a.table().reset_index()
    assert list(pooled["n_entries"]) == [100, 100]  # 2 x 50
    np.testing.assert_array_equal(pooled["survival"], single["survival"])
    # 50 entries every 2 h, horizon 12 h: 50 * 2/12 non-overlapping horizons, not 2 x that
    assert pooled["n_effective"].iloc[0] == pytest.approx(50 * 2 / 12)
    for k in range(2):
        s = float(single["survival"].iloc[k])
        assert pooled["ci_low"].iloc[k] <= _clopper_pearson_low(s, 50 * 2 / 12) + 1e-12
    # the 20x long is liquidated in some entries: the naive interval (independent symbols) is
    # narrower than the pooled one, which is as wide as one symbol's exact interval
    row = pooled.iloc[1]
    assert 0.0 < row["survival"] < 1.0
    naive = row["ci_high_greenwood"] - row["ci_low_greenwood"]
    assert naive < row["ci_high"] - row["ci_low"]


def test_symbols_on_disjoint_calendars_add_their_evidence() -> None:
    # hours 0..47 and 48..95: 24 entries each (every 2 h; the last ones censored by the end of
    # the data), in calendar blocks 0..3 and 4..7 of 12 h
    first, last = _study("AAA/USDT:USDT", slice(0, 48)), _study("BBB/USDT:USDT", slice(48, 96))
    blocks, n_blocks = calendar_blocks([first, last])
    pooled = pooled_table([first, last])
    assert first.n_entries == last.n_entries == 24
    assert set(blocks[0]) == {0, 1, 2, 3} and set(blocks[1]) == {4, 5, 6, 7}
    assert n_blocks == 8
    # 24 entries x 2/12 = 4 non-overlapping horizons each: the pooled row has both, 8
    assert pooled["n_effective"].iloc[0] == pytest.approx(8.0)


def test_calendar_blocks_are_one_horizon_long_from_the_earliest_entry() -> None:
    a, b = _study("AAA/USDT:USDT"), _study("BBB/USDT:USDT", slice(6, 100))
    blocks, n_blocks = calendar_blocks([a, b])
    # a: entries at hours 0, 2, ..., 98 -> blocks 0, 0, 0, 0, 0, 0, 1, ... (hour // 12), 0..8
    np.testing.assert_array_equal(blocks[0], np.arange(0, 100, 2) // 12)
    # b starts 6 h later: its entry k is at hour 6 + 2k of a's calendar
    np.testing.assert_array_equal(blocks[1], (6 + 2 * np.arange(b.n_entries)) // 12)
    assert n_blocks == 9


def test_the_side_by_side_table_and_page(tmp_path: Path) -> None:
    a, b = _study("AAA/USDT:USDT"), _study("BBB/USDT:USDT", slice(0, 60))
    table = universe_table([a, b])
    assert list(table["symbol"]) == ["AAA/USDT:USDT", "BBB/USDT:USDT", POOLED] * 2
    assert list(table["leverage"]) == [5.0, 5.0, 5.0, 20.0, 20.0, 20.0]
    assert table["n_entries"].iloc[2] == a.n_entries + b.n_entries
    page = write_universe_report(
        [a, b], tmp_path / "u", reports={"AAA/USDT:USDT": "../a/index.html"}
    )
    html = page.read_text()
    assert '<li><a href="../a/index.html">AAA/USDT:USDT</a></li>' in html  # a link, not text
    assert "Side by side: every symbol, and all of them pooled" in html
    assert "resamples calendar blocks one horizon long, jointly across symbols" in html
    assert (tmp_path / "u" / "tables" / "universe.csv").is_file()


def test_a_universe_refuses_what_cannot_be_pooled() -> None:
    a = _study("AAA/USDT:USDT")
    with pytest.raises(ConfigError, match="a universe needs at least two studies"):
        pooled_table([a])
    with pytest.raises(ConfigError, match="symbol AAA/USDT:USDT is in the universe twice"):
        pooled_table([a, _study("AAA/USDT:USDT")])
    other = bt.survival_study(
        _market("BBB/USDT:USDT"),
        side="long",
        leverage=(5,),
        horizon="12h",
        entry_every="2h",
        maint_margin_rate=0.01,
    )
    with pytest.raises(ConfigError, match="have different settings; pool studies of one grid"):
        pooled_table([a, other])


def test_cli_json_carries_the_universe(
    capsys: pytest.CaptureFixture[str], bundled_only_store: str
) -> None:
    argv = ["survival", "--symbol", "BTC/USDT:USDT,ETH/USDT:USDT,XRP/USDT:USDT"]
    argv += ["--start", "2021-11-17", "--end", "2021-11-19", "--horizon", "12h"]
    argv += ["--entry-every", "2h", "--side", "long", "--leverage", "10", "--stop-loss", "none"]
    code = main([*argv, "--no-report", "--json", "--store", bundled_only_store])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    rows = payload["universe"]
    assert [r["symbol"] for r in rows] == [
        "BTC/USDT:USDT",
        "ETH/USDT:USDT",
        "XRP/USDT:USDT",
        POOLED,
    ]
    # 48 bars, an entry every 2 h: 24 per symbol (the last ones censored by the end of data)
    assert [r["n_entries"] for r in rows] == [24, 24, 24, 72]
    assert "calendar blocks" in payload["pooled_ci_method"]


def test_cli_error_names_the_symbol_before_any_study_runs(
    capsys: pytest.CaptureFixture[str], bundled_only_store: str
) -> None:
    # XRP's bundled bars (with mark) cover 2021-11-15 06:00 -> 11-19 10:00: entries every 5 days
    # do not fit them, and that is said before BTC's study runs (nothing on stdout); a horizon
    # longer than XRP's data leaves XRP out instead (test_cli_survival)
    argv = ["survival", "--symbol", "BTC/USDT:USDT,XRP/USDT:USDT", "--side", "long"]
    argv += ["--leverage", "2", "--stop-loss", "none", "--horizon", "1D", "--entry-every", "5D"]
    code = main([*argv, "--no-report", "--store", bundled_only_store])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert (
        "error: ConfigError: --symbol XRP/USDT:USDT: --entry-every '5D' is longer than the data "
        "(4 days 03:00:00, 99 bars of 1h)"
    ) in captured.err


def test_the_display_puts_the_symbols_side_by_side() -> None:
    a, b = _study("AAA/USDT:USDT"), _study("BBB/USDT:USDT")
    table = universe_table([a, b])
    shown = universe_display(table, setting_columns=a.setting_columns)
    assert list(shown.columns[:4]) == [
        "Side",
        "Leverage [x]",
        "AAA/USDT:USDT [%]",
        "BBB/USDT:USDT [%]",
    ]
    assert list(shown["Leverage [x]"]) == ["5", "20"]
    # the same bars twice: both symbols show the same, and the pooled survival is theirs
    assert shown["AAA/USDT:USDT [%]"].iloc[1] == shown["BBB/USDT:USDT [%]"].iloc[1]
    assert (
        shown["Pooled [%] (95% CI)"].iloc[1].split(" ")[0]
        == (shown["AAA/USDT:USDT [%]"].iloc[1].split(" ")[0])
    )
    assert list(shown["Entries (pooled)"]) == [100, 100]
