"""Survival studies of accounts (issue 10.3/10.4): survival_study(market_set, legs=...), the
wallet-loss columns, outcomes(), the account report and `backtester survival --legs`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.cli import main
from backtester.engine.enums import ExitReason
from backtester.errors import ConfigError
from backtester.params import ParamGrid
from backtester.survival.study import SurvivalStudy

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
SMALL = ["--start", "2021-01-01", "--end", "2021-04-01"]
TWO = ["--symbol", f"{BTC},{ETH}"]


def _bars(symbol: str, prices: list[tuple[float, float, float, float]]) -> bt.Market:
    # literal OHLC bars, mark = last, no funding
    ts = pd.date_range("2024-06-01", periods=len(prices), freq="1h", tz="UTC")
    o, h, lo, c = (list(x) for x in zip(*prices, strict=True))
    bars = pd.DataFrame({"timestamp": ts, "open": o, "high": h, "low": lo, "close": c})
    return bt.Market.from_frames(bars, mark=bars.copy(), symbol=symbol, timeframe="1h")


@pytest.fixture(scope="module")
def crash() -> bt.MarketSet:
    # BTC 100 flat for bars 0-2, gaps to 40 at bar 3's open and stays; ETH flat at 100
    btc = _bars(BTC, [(100.0,) * 4] * 3 + [(40.0,) * 4] * 5)
    eth = _bars(ETH, [(100.0,) * 4] * 8)
    return bt.MarketSet.from_markets([btc, eth])


def _hedge_study(ms: bt.MarketSet) -> SurvivalStudy:
    return bt.survival_study(
        ms,
        legs={BTC: 0.5, ETH: -0.5},
        leverage=5,
        margin_mode=("isolated", "cross"),
        horizon="4h",
        entry_every="1h",
        taker_fee=0.0,
        slippage=0.0,
        n_boot=50,
    )


def test_a_hedge_whose_long_leg_gaps_down_isolated_loses_its_margin_cross_the_wallet(
    crash: bt.MarketSet,
) -> None:
    # Arrange: 100 USDT, position_size 1, legs BTC +0.5 / ETH -0.5 at 5x: each leg has 50 USDT
    # of margin and 250 USDT notional (2.5 BTC at 100). Entries at bars 0..7, each followed 4
    # bars; entries 0, 1, 2 hold BTC through the gap to 40 at bar 3: a loss of 2.5·60 = 150.
    # - isolated: the BTC leg is liquidated and loses its 50 USDT margin (the insurance fund
    #   pays the 100 beyond it); the ETH short stays flat: final equity 50, loss 0.5.
    # - cross: margin balance 100 − 150 = −50 → the account is liquidated, the wallet floored
    #   at 0 (insurance 50): loss 1.0.
    # Entries 3..7 open at 40 (or later) and never move: loss 0.
    study = _hedge_study(crash)
    table = study.table().reset_index()
    iso, cross = table.iloc[0], table.iloc[1]
    assert list(table["margin_mode"]) == ["isolated", "cross"]
    assert list(table["legs"]) == ["BTC +0.5 / ETH -0.5"] * 2
    np.testing.assert_allclose(study.final_equity[0], [50, 50, 50, 100, 100, 100, 100, 100])
    np.testing.assert_allclose(study.final_equity[1], [0, 0, 0, 100, 100, 100, 100, 100])
    np.testing.assert_allclose(study.insurance_draw[0, :3], 100.0)
    np.testing.assert_allclose(study.insurance_draw[1, :3], 50.0)
    assert int(iso["n_liquidated"]) == int(cross["n_liquidated"]) == 3
    # loss_mean = (3·0.5 + 5·0)/8 = 0.1875 and (3·1)/8 = 0.375; the 95th percentile of
    # [0,0,0,0,0,.5,.5,.5] interpolates at position 0.95·7 = 6.65, between two 0.5s: 0.5
    assert iso["loss_mean"] == pytest.approx(0.1875, abs=1e-12)
    assert cross["loss_mean"] == pytest.approx(0.375, abs=1e-12)
    assert iso["loss_q95"] == pytest.approx(0.5, abs=1e-12)
    assert cross["loss_q95"] == pytest.approx(1.0, abs=1e-12)
    # Kaplan–Meier at 4 bars: events at 2 (entry 2), 3 (entry 1), 4 (entry 0); censored at 1
    # (entry 7, end of data), 2 (entry 6), 3 (entry 5), 4 (entries 3, 4). Risk sets 7, 5, 3:
    # S = 6/7 · 4/5 · 2/3 = 16/35
    assert iso["survival"] == pytest.approx(16 / 35, abs=1e-12)
    assert cross["survival"] == pytest.approx(16 / 35, abs=1e-12)
    # which leg went: the BTC leg (isolated), the account as a whole (cross)
    out = study.outcomes()
    liq = out[out["liquidated"]]
    assert set(liq.loc[liq["margin_mode"] == "isolated", "liquidated_leg"]) == {BTC}
    assert set(liq.loc[liq["margin_mode"] == "cross", "liquidated_leg"]) == {"account"}
    assert list(liq["exit_time"].dt.hour) == [3, 3, 3, 3, 3, 3]  # the gap bar
    assert set(out.loc[~out["liquidated"], "liquidated_leg"].map(str)) == {"None"}
    np.testing.assert_allclose(out["loss"].to_numpy(), study.loss.ravel())


def test_loss_columns_are_mean_and_95th_percentile_of_the_opened_entries() -> None:
    # Arrange: 5 entries of one setting, the last rejected (never opened): its equity is left out
    market = _bars(BTC, [(100.0,) * 4] * 10)
    final = np.array([[100.0, 80.0, 60.0, 0.0, 100.0]])  # losses 0, 0.2, 0.4, 1.0 (+ rejected)
    zeros = np.zeros((1, 5))
    study = SurvivalStudy(
        market=market,
        settings=pd.DataFrame({"side": ["long"], "leverage": [2.0]}),
        entry_idx=np.arange(5),
        horizon_bars=2,
        entry_every_bars=1,
        exit_idx=np.array([[1, 2, 3, 4, -1]]),
        reason=np.full((1, 5), int(ExitReason.HORIZON)),
        final_equity=final,
        min_equity=zeros,
        insurance_draw=zeros,
        funding_paid=zeros,
        fees_paid=zeros,
        rejected=np.array([[False, False, False, False, True]]),
        initial_cash=100.0,
        n_boot=10,
    )
    # Act
    row = study.table().reset_index().iloc[0]
    # Assert: mean (0 + 0.2 + 0.4 + 1.0)/4 = 0.4; 95th percentile at position 0.95·3 = 2.85:
    # 0.4 + 0.85·(1.0 − 0.4) = 0.91
    assert row["loss_mean"] == pytest.approx(0.4, abs=1e-12)
    assert row["loss_q95"] == pytest.approx(0.91, abs=1e-12)
    assert list(study.table().reset_index().columns[-2:]) == ["loss_mean", "loss_q95"]
    assert "max(0, 1 - final_equity / initial_cash)" in study.table().reset_index().attrs["loss"]


@pytest.fixture(scope="module")
def btc_eth(bundled_only_store: str) -> bt.MarketSet:
    return bt.load_markets(
        [BTC, ETH], start="2021-01-01", end="2021-04-01", store=bundled_only_store
    )


@pytest.fixture(scope="module")
def account(btc_eth: bt.MarketSet) -> SurvivalStudy:
    return bt.survival_study(
        btc_eth,
        legs=[{BTC: 0.5, ETH: 0.5}, {BTC: 0.5, ETH: -0.5}],
        leverage=(3, 10),
        margin_mode=("isolated", "cross"),
        n_boot=50,
    )


def test_account_study_on_bundled_btc_eth_counts_what_run_account_entries_reports(
    btc_eth: bt.MarketSet, account: SurvivalStudy
) -> None:
    table = account.table().reset_index()
    assert list(table.columns[:5]) == [
        "legs",
        "leverage",
        "stop_loss",
        "position_size",
        "margin_mode",
    ]
    assert list(dict.fromkeys(table["legs"])) == ["BTC +0.5 / ETH +0.5", "BTC +0.5 / ETH -0.5"]
    assert "NO leg" in table.attrs["survival"] and "legs" in table.attrs
    # the same accounts run directly through the account engine
    grid = ParamGrid.product(leverage=[3.0, 10.0], margin_mode=["isolated", "cross"])
    for k, legs in enumerate(({BTC: 0.5, ETH: 0.5}, {BTC: 0.5, ETH: -0.5})):
        out = bt.run_account_entries(
            btc_eth,
            grid,
            legs=legs,
            entry_idx=account.entry_idx,
            horizon_bars=account.horizon_bars,
            config=bt.RunConfig(initial_cash=100.0),
        )
        rows = table.iloc[4 * k : 4 * k + 4]
        assert list(rows["n_liquidated"]) == list(out.liquidated.sum(axis=1))
        np.testing.assert_allclose(rows["loss_mean"], out.loss.mean(axis=1), rtol=1e-12)
        np.testing.assert_array_equal(account.liquidated_leg[4 * k : 4 * k + 4], out.liquidated_leg)
    # every entry is liquidated or censored; a cross account liquidates as a whole
    assert (table["n_liquidated"] + table["n_censored"] == table["n_entries"]).all()
    names = account.outcomes()
    cross = names[names["liquidated"] & (names["margin_mode"] == "cross")]
    iso = names[names["liquidated"] & (names["margin_mode"] == "isolated")]
    assert set(cross["liquidated_leg"]) == {"account"}
    assert set(iso["liquidated_leg"]) <= {BTC, ETH} and len(iso)
    # the study's other views work on an account
    assert len(account.nonoverlapping()) == 8
    assert len(account.logrank("leverage")) == 4
    curve = account.curve(0)
    assert len(curve) and curve["survival"].iloc[0] <= 1.0
    info = account.run_info()
    assert info["market"]["symbols"] == [BTC, ETH]
    assert [x["label"] for x in info["legs"]] == ["BTC +0.5 / ETH +0.5", "BTC +0.5 / ETH -0.5"]
    json.dumps(info)  # serialisable
    assert "BTC/USDT:USDT + ETH/USDT:USDT" in repr(account)


def test_single_market_studies_have_the_loss_columns_too(btc_eth: bt.MarketSet) -> None:
    study = bt.survival_study(btc_eth[BTC], leverage=(2, 50), n_boot=10)
    table = study.table().reset_index()
    assert list(table.columns[-2:]) == ["loss_mean", "loss_q95"]
    loss = np.maximum(0.0, 1.0 - study.final_equity / study.initial_cash)
    np.testing.assert_allclose(table["loss_mean"], loss.mean(axis=1), rtol=1e-12)
    assert (table["loss_q95"] >= table["loss_mean"]).all()
    out = study.outcomes()
    assert set(out.loc[out["liquidated"], "liquidated_leg"]) == {BTC}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"side": "short"}, "side has no meaning for an account"),
        ({"legs": None}, "legs is required when market is a MarketSet"),
        ({"legs": [{BTC: 0.5}, {BTC: 0.5}]}, "legs lists 'BTC \\+0.5' twice"),
        ({"legs": {BTC: 0.8, ETH: 0.5}}, "must sum to at most 1"),
        ({"legs": "BTC"}, "legs must be a dict"),
        ({"strategy": object()}, "strategy= with legs= is not modelled yet"),
    ],
)
def test_bad_account_studies_are_one_line_errors(
    crash: bt.MarketSet, kwargs: dict, message: str
) -> None:
    args = {"legs": {BTC: 0.5, ETH: 0.5}, "horizon": "2h", "entry_every": "1h", **kwargs}
    with pytest.raises(ConfigError, match=message) as info:
        bt.survival_study(crash, **args)
    assert "\n" not in str(info.value)


def test_account_report_first_section_and_skipped_comparisons(
    account: SurvivalStudy, tmp_path: Path
) -> None:
    index = Path(account.report(str(tmp_path / "rep")))
    page = index.read_text()
    first = page.index("<h2")
    assert "The answer: the highest leverage that survives" in page[first : first + 300]
    second = page.index("<h2", first + 1)  # the answer first, then the account's headline
    assert "Isolated vs cross" in page[second : second + 300]
    assert "hedged long/short" in page and "all long (correlated)" in page
    assert "Comparisons not run for an account" in page
    assert "5. mark-price vs last-price liquidation" in page
    figures = {p.name for p in (tmp_path / "rep" / "figures").iterdir()}
    assert {"account_survival_and_loss.png", "equity_fan.png"} <= figures
    info = json.loads((tmp_path / "rep" / "run.json").read_text())
    assert info["legs"][1]["weights"] == {BTC: 0.5, ETH: -0.5}
    assert "7. funding on long holds" in info["comparisons"]["skipped_for_account"]


# ------------------------------------------------------------------ CLI


def test_cli_legs_prints_the_account_table_with_its_counterpart(
    capsys: pytest.CaptureFixture[str], bundled_only_store: str
) -> None:
    code = main(
        ["survival", *TWO, "--legs", "0.5,0.5", *SMALL, "--leverage", "3,10", "--no-report"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Wallet lost, mean [%]" in out and "Wallet lost, 95th pct [%]" in out
    rows = [line for line in out.splitlines() if line.startswith("BTC +0.5")]
    # 2 leg sets (the given one and its counterpart) x 2 leverages x 2 margin modes
    assert len(rows) == 8 and len({len(r) for r in rows}) == 1
    assert sum("ETH -0.5" in r for r in rows) == 4
    assert "counterpart of --legs 0.5,0.5" in out


def test_cli_several_leg_sets_and_json(
    capsys: pytest.CaptureFixture[str], bundled_only_store: str
) -> None:
    argv = ["survival", *TWO, "--legs", "0.5,0.5;0.25,-0.75", *SMALL, "--leverage", "5"]
    code = main(
        [*argv, "--margin-mode", "cross", "--no-report", "--json", "--store", bundled_only_store]
    )
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [r["legs"] for r in payload["table"]] == ["BTC +0.5 / ETH +0.5", "BTC +0.25 / ETH -0.75"]
    assert {"loss_mean", "loss_q95"} <= set(payload["table"][0])
    assert payload["symbol"] == f"{BTC} + {ETH}"


def test_cli_one_symbol_legs_is_a_one_leg_account(
    capsys: pytest.CaptureFixture[str], bundled_only_store: str
) -> None:
    code = main(
        [
            "survival",
            "--legs",
            "-0.5",
            *SMALL,
            "--leverage",
            "5",
            "--no-report",
            "--store",
            bundled_only_store,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("BTC -0.5")]
    assert len(rows) == 2 and "counterpart" not in out  # isolated and cross, no counterpart


def test_cli_several_symbols_without_legs_run_one_study_each(
    capsys: pytest.CaptureFixture[str], bundled_only_store: str
) -> None:
    code = main(
        [
            "survival",
            *TWO,
            *SMALL,
            "--side",
            "long",
            "--leverage",
            "5",
            "--no-report",
            "--store",
            bundled_only_store,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Survival of BTC/USDT:USDT holds" in out and "Survival of ETH/USDT:USDT holds" in out
    # each study's table, then both side by side with the pooled column, one row per setting
    assert out.count("Wallet lost, mean [%]") == 2
    assert "Side by side, 2 symbols, with the pooled row" in out
    header = next(line for line in out.splitlines() if "Pooled [%] (95% CI)" in line)
    assert "BTC/USDT:USDT [%]" in header and "ETH/USDT:USDT [%]" in header
    after = out.split(header, 1)[1].strip().splitlines()
    assert len(after) == 4  # 5x with the four stop-loss values of the default grid


def test_cli_account_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bundled_only_store: str
) -> None:
    rep = tmp_path / "rep"
    argv = ["survival", *TWO, "--legs", "0.5,0.5", *SMALL, "--leverage", "3,10"]
    code = main([*argv, "--out", str(rep), "--no-comparisons", "--store", bundled_only_store])
    out = capsys.readouterr().out
    assert code == 0 and f"report: {rep / 'index.html'}" in out
    page = (rep / "index.html").read_text()
    assert "BTC +0.5 / ETH -0.5 (hedged long/short)" in page
    assert (rep / "figures" / "account_survival_and_loss.png").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*TWO, "--legs", "0.5"], "--legs '0.5' has 1 weight(s) for 2 symbol(s) of --symbol"),
        ([*TWO, "--legs", "0.8,-0.5"], "--legs '0.8,-0.5': the |weights| must sum to at most 1"),
        ([*TWO, "--legs", "0.5,x"], "--legs weights must be numbers such as 0.5 or -0.5"),
        ([*TWO, "--legs", "0.5,0"], "--legs weight of ETH/USDT:USDT must be a non-zero number"),
        ([*TWO, "--legs", "0.5,0.5;0.5,0.5"], "--legs lists '0.5,0.5' twice"),
        ([*TWO, "--legs", "0.5,0.5", "--side", "long"], "--side long has no meaning with --legs"),
        ([*TWO, "--no-counterpart"], "--no-counterpart has no effect without --legs"),
        (["--symbol", f"{BTC},,{ETH}"], "--symbol has an empty value"),
        ([*TWO, "--legs", "0.5,0.5", "--strategy", "sma_cross"], "--strategy with --legs"),
    ],
)
def test_cli_bad_legs_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["survival", *argv, *SMALL, "--no-report"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and "\n" not in err


def test_trades_say_which_leg_each_record_is(crash: bt.MarketSet) -> None:
    # the hedge above, entry 0 (bars 0-3, BTC gaps 100 -> 40 at bar 3): isolated, the BTC long
    # is liquidated at the gap and loses its 50 of margin, the ETH short (flat at 100) is
    # censored at the horizon with pnl 0; cross, the account goes at bar 3: both legs leave
    # with "liquidation", and the two shares sum to the wallet's change, -100 (floored at 0)
    study = _hedge_study(crash)
    trades = study.trades()
    first = trades[trades["entry_time"] == crash.index[0]]
    iso = first[first["margin_mode"] == "isolated"]
    assert iso["symbol"].tolist() == [BTC, ETH] and iso["leg"].tolist() == [0, 1]
    assert iso["side"].tolist() == ["long", "short"]
    assert iso["exit_reason"].tolist() == ["liquidation", "horizon"]
    assert iso["exit_time"].tolist() == [crash.index[3]] * 2
    np.testing.assert_allclose(iso["pnl"], [-50.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(iso["size"], [2.5, 2.5], rtol=1e-12)
    cross = first[first["margin_mode"] == "cross"]
    assert cross["exit_reason"].tolist() == ["liquidation", "liquidation"]
    assert cross["pnl"].sum() == pytest.approx(-100.0, abs=1e-12)
    # every hold: its legs' shares add up to its wallet change
    out = study.outcomes()
    opened = out[~out["rejected"]]
    sums = trades.groupby(["setting", "entry_time"], sort=True)["pnl"].sum().to_numpy()
    np.testing.assert_allclose(sums, opened["final_equity"] - study.initial_cash, atol=1e-9)


def test_a_one_market_study_has_one_leg_per_hold(btc_eth: bt.MarketSet) -> None:
    study = bt.survival_study(
        btc_eth[BTC].slice("2021-01-01", "2021-03-01"), leverage=(10,), side="both", n_boot=20
    )
    trades = study.trades()
    assert set(trades["leg"]) == {0} and set(trades["symbol"]) == {BTC}
    assert trades.groupby("side").size().to_dict() == {
        "long": study.n_entries,
        "short": study.n_entries,
    }
    np.testing.assert_allclose(
        trades["pnl"].to_numpy(), (study.final_equity - study.initial_cash).ravel(), rtol=1e-12
    )


def test_equity_paths_say_which_leg_holds_what(crash: bt.MarketSet) -> None:
    # the hedge, isolated, entry 0 (no fees): flat for bars 0-2 (each leg's share 0, the account
    # 100), then BTC gaps to 40: its leg is liquidated for its 50 of margin, ETH's share stays 0
    study = _hedge_study(crash)
    iso = study.equity(margin_mode="isolated")
    first = iso[crash.index[0]]
    assert list(first.columns) == [BTC, ETH, "account"]
    np.testing.assert_allclose(first["account"], [100.0, 100.0, 100.0, 50.0], atol=1e-12)
    np.testing.assert_allclose(first[BTC], [0.0, 0.0, 0.0, -50.0], atol=1e-12)
    np.testing.assert_allclose(first[ETH], [0.0] * 4, atol=1e-12)
    for i in range(study.n_settings):
        paths = study.equity(i)
        account = paths.xs("account", axis=1, level="leg")
        shares = paths.drop(columns="account", level="leg").T.groupby(level=0).sum(min_count=1).T
        # the shares add up to the account at every bar; the last bar is the study's outcome
        np.testing.assert_allclose(
            (study.initial_cash + shares).to_numpy(), account.to_numpy(), atol=1e-9
        )
        last = account.ffill().iloc[-1].to_numpy()
        assert np.array_equal(last, study.final_equity[i])
    # a window cut by the end of the data (the last entries) ends in NaN
    assert account.iloc[:, -1].isna().sum() == 3


def test_a_one_market_study_s_equity_is_its_holds(btc_eth: bt.MarketSet) -> None:
    study = bt.survival_study(
        btc_eth[BTC].slice("2021-01-01", "2021-03-01"), leverage=(10, 50), side="both", n_boot=20
    )
    for i in range(study.n_settings):
        account = study.equity(i).xs("account", axis=1, level="leg")
        assert np.array_equal(account.ffill().iloc[-1].to_numpy(), study.final_equity[i])
    assert (study.reason == ExitReason.LIQUIDATION).any()


def test_account_equity_fan_has_every_leg_set_and_margin_mode(account: SurvivalStudy) -> None:
    from backtester.survival.comparisons import equity_fan
    from backtester.survival.study import curve_groups

    fan = equity_fan(account)
    assert list(fan) == list(curve_groups(account.settings))  # 2 leg sets x 2 margin modes
    assert len(fan) == 4 and all(list(p) == ["3x", "10x"] for p in fan.values())
    table = account.table().reset_index()
    for name, idx in curve_groups(account.settings).items():
        for i in idx:
            _, equity, liquidated = fan[name][f"{table['leverage'].iloc[i]:g}x"]
            np.testing.assert_allclose(equity[-1], account.final_equity[i] / account.initial_cash)
            assert liquidated[-1] == table["n_liquidated"].iloc[i] / table["n_entries"].iloc[i]
