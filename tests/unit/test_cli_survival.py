"""`backtester survival`: option parsing, table in the terminal, JSON, report, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from backtester.cli import build_parser, main
from backtester.cli.survival import DEFAULTS, default_out, parse_values
from backtester.errors import ConfigError

SMALL = ["--start", "2021-01-01", "--end", "2021-07-01", "--side", "long"]


def test_parse_values_from_the_spec() -> None:
    assert parse_values("leverage", "1,5, 20x") == [1.0, 5.0, 20.0]
    assert parse_values("stop_loss", "none,0.02,5%") == [None, 0.02, 0.05]
    assert parse_values("funding", "false") == [False]
    assert parse_values("margin_mode", "isolated,cross") == ["isolated", "cross"]
    with pytest.raises(ConfigError, match="--leverage must be comma-separated numbers"):
        parse_values("leverage", "1,five")
    with pytest.raises(ConfigError, match="--stop-loss must be comma-separated numbers"):
        parse_values("stop_loss", "tight")
    # an empty item was silently dropped ("1,,2" ran 1 and 2)
    with pytest.raises(ConfigError, match=r"--leverage has an empty value in '1,,2'"):
        parse_values("leverage", "1,,2")
    with pytest.raises(ConfigError, match=r"--leverage lists a value twice"):
        parse_values("leverage", "2,2x")
    with pytest.raises(ConfigError, match=r"--margin-mode must be one of .*did you mean 'cross'"):
        parse_values("margin_mode", "crossed")


def test_every_engine_setting_is_an_option_with_its_real_default() -> None:
    from backtester.cli.survival import option_of
    from backtester.config import SETTINGS

    text = build_parser().parse_args(["survival"])  # parses: defaults are all valid
    assert text.leverage is None  # "not given": the spec's default applies
    import argparse
    import contextlib
    import io

    help_text = io.StringIO()
    with contextlib.redirect_stdout(help_text), contextlib.suppress(SystemExit):
        build_parser().parse_args(["survival", "--help"])
    flat = " ".join(help_text.getvalue().split())
    for name in SETTINGS:
        if name not in ("exchange", "side"):
            assert option_of(name) in flat, name
    assert "(default: 1,2,3,5,10,20,50,100)" in flat
    assert "(default: 100)" in flat  # a study's initial cash
    assert "(default: None)" not in flat
    assert isinstance(text, argparse.Namespace)


def test_defaults_match_the_issue() -> None:
    args = build_parser().parse_args(["survival"])
    assert args.symbol == "BTC/USDT:USDT"
    assert args.side == "both"
    assert args.stop_loss is None  # not given: the CLI's stop grid applies
    assert parse_values("stop_loss", DEFAULTS["stop_loss"]) == [None, 0.02, 0.05, 0.10]
    assert (args.horizon, args.entry_every) == ("30D", "1D")
    # deterministic, timestamp-free default folder; other options get an id of their values
    assert default_out(args) == "reports/survival-BTC_USDT_USDT-1h"
    other = build_parser().parse_args(["survival", "--leverage", "5"])
    assert default_out(other).startswith("reports/survival-BTC_USDT_USDT-1h-")
    assert default_out(other) == default_out(
        build_parser().parse_args(["survival", "--leverage", "5"])
    )


def test_prints_aligned_table_and_writes_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Act
    code = main(
        [
            "survival",
            *SMALL,
            "--leverage",
            "2,100",
            "--stop-loss",
            "none,5%",
            "--out",
            str(tmp_path / "rep"),
            "--no-comparisons",
        ]
    )
    # Assert
    out = capsys.readouterr().out
    assert code == 0
    assert "Survival [%] (95% CI)" in out
    lines = [line for line in out.splitlines() if line.lstrip(" ").startswith("long ")]
    assert len(lines) == 4
    assert len({len(line) for line in lines}) == 1  # aligned columns
    assert "Highest leverage that meets the target (highest leverage whose 95% lower" in out
    answers = [line for line in out.splitlines() if line.startswith("  long, ")]
    assert [a.split(":")[0] for a in answers] == ["  long, no stop", "  long, stop 5%"]
    assert f"report: {tmp_path / 'rep' / 'index.html'}" in out
    assert (tmp_path / "rep" / "index.html").exists()
    assert (tmp_path / "rep" / "run.json").exists()


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["survival", *SMALL, "--leverage", "3", "--stop-loss", "none", "--no-report", "--json"]
    )
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert payload["report"] is None
    assert payload["table"][0]["leverage"] == 3.0
    assert 0.0 <= payload["table"][0]["survival"] <= 1.0
    assert "moving-block bootstrap" in payload["ci_method"]
    assert payload["target"] == 0.9
    assert payload["max_safe_leverage"][0]["max_tested"] == 3.0


def test_target_option_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["survival", *SMALL, "--target", "1.5", "--no-report"])
    assert exc.value.code == 2
    assert "--target must be a survival share between 0 and 1 such as 0.9 or 90%, was '1.5'" in (
        capsys.readouterr().err
    )


def test_engine_options_pass_through(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "survival",
            *SMALL,
            "--leverage",
            "10",
            "--stop-loss",
            "none",
            "--no-report",
            "--json",
            "--no-funding",
            "--mmr",
            "0.01",
            "--stop-trigger",
            "mark",
            "--taker-fee",
            "0",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["table"][0]["leverage"] == 10.0


def test_bad_option_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["survival", *SMALL, "--leverage", "0.5", "--no-report"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == "error: ConfigError: --leverage must be in [1, 1000], was 0.5; e.g. 10 for 10x"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--leverage", "1,,2"], "--leverage has an empty value in '1,,2'"),
        (["--no-report", "--out", "x"], "--out 'x' has no effect with --no-report"),
        (["--taker-fee", "five"], "--taker-fee must be comma-separated numbers"),
        (["--horizon", "10Y"], "horizon must be a duration such as '30D'"),
        (["--no-funding", "--funding", "true"], "--no-funding contradicts --funding true"),
    ],
)
def test_bad_combinations_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["survival", *SMALL, "--leverage", "2", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and "\n" not in err


def test_strategy_option(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "survival",
            *SMALL,
            "--leverage",
            "3",
            "--stop-loss",
            "none",
            "--no-report",
            "--json",
            "--strategy",
            "sma_cross",
            "--entry-every",
            "14D",
        ]
    )
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {row["fast"] for row in payload["table"]} == {10, 20}
    bad = main(["survival", *SMALL, "--strategy", "sma_cros", "--no-report"])
    assert bad == 2
    assert "did you mean 'sma_cross'" in capsys.readouterr().err


def test_progress_messages_only_when_enabled(capsys: pytest.CaptureFixture[str]) -> None:
    from backtester.cli.survival import _Progress

    _Progress(False)("hidden")
    _Progress(True)("running the engine")
    err = capsys.readouterr().err
    assert "hidden" not in err
    assert err.rstrip().endswith("running the engine")


@pytest.mark.slow
def test_default_command_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's main command: bundled BTC data, both sides, 8 leverages x 4 stops, report."""
    code = main(["survival", "--out", str(tmp_path / "default")])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["long"], ["short"])]
    assert len(rows) == 2 * 8 * 4
    assert (tmp_path / "default" / "figures" / "survival_heatmap.png").exists()
    assert (tmp_path / "default" / "figures" / "cmp_mark_vs_last.png").exists()


def test_strategy_mode_does_not_claim_a_stop_ends_follow_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Arrange: in strategy mode the strategy trades on after a stop and the account can still be
    # liquidated; the footer and table meaning used to say "a stopped position survives"
    args = [*SMALL, "--leverage", "3", "--stop-loss", "none,0.05", "--no-report"]
    # Act
    code = main(["survival", *args, "--strategy", "sma_cross", "--entry-every", "14D"])
    text = capsys.readouterr().out
    # Assert
    assert code == 0
    assert "accounts trading sma_cross" in text
    assert "a stop ends a trade, not the account's follow-up" in text
    assert "a stopped position survives" not in text


def test_strategy_mode_meaning_in_table_attrs() -> None:
    # Arrange
    import backtester as bt
    from tests.unit.test_survival_helpers import fake_study

    market = bt.load_market("BTC/USDT:USDT").slice("2021-01-01", "2021-07-01")
    plain, strat = fake_study(market), fake_study(market)
    strat.strategy_name = "sma_cross"
    # Act
    plain_meaning = plain.table_metadata()["survival"]
    strat_meaning = strat.table_metadata()["survival"]
    # Assert: the hold wording stays for holds, the strategy wording replaces it for accounts
    assert "it survives to the horizon" in plain_meaning
    assert "it survives to the horizon" not in strat_meaning
    assert "the strategy trades on" in strat_meaning


def test_an_output_folder_it_may_not_write_is_refused_before_the_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: a folder holding someone else's file; the study must not even start
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")

    def no_study(*args: object, **kwargs: object) -> None:
        raise AssertionError("the study ran before the output folder was checked")

    monkeypatch.setattr("backtester.survival.survival_study", no_study)
    # Act
    code = main(["survival", *SMALL, "--leverage", "2", "--out", str(taken)])
    # Assert
    err = capsys.readouterr().err.strip()
    assert code == 2 and str(taken) in err and "\n" not in err
    assert (taken / "notes.txt").read_text() == "mine"


def test_mark_last_runs_a_market_without_mark_bars(capsys: pytest.CaptureFixture[str]) -> None:
    # the bundled OKX BTC 2022 bars have no mark bars: --mark last uses the last price as mark
    argv = ["survival", "--exchange", "okx", "--leverage", "2", "--stop-loss", "none"]
    argv += ["--horizon", "7D", "--side", "long", "--no-report", "--end", "2022-07-01"]
    assert main([*argv, "--mark", "last"]) == 0
    assert "Survival of BTC/USDT:USDT holds (okx 1h" in capsys.readouterr().out
    assert main([*argv, "--mark", "mark"]) == 2
    assert "or pass --mark last" in capsys.readouterr().err
    assert main(argv) == 0  # --mark auto: the last price, with a note saying so
    assert "liquidation is judged on the last price" in capsys.readouterr().err
    assert default_out(build_parser().parse_args(["survival", "--mark", "last"])) != default_out(
        build_parser().parse_args(["survival"])
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--margin-mode"], "argument --margin-mode: expected one argument"),
        (["--horizon", "-5D"], "(a value starting with '-' is written --horizon=VALUE)"),
        (["--seed", "abc"], "argument --seed: invalid int value: 'abc'"),
    ],
)
def test_usage_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["survival", *argv])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and message in err and "\n" not in err
    assert err.endswith("see `backtester survival --help`")


def test_library_warnings_print_as_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import warnings

    from backtester.cli import _show_warning

    _show_warning(bt_warning("fees high"), type(bt_warning("")), "<string>", 25)
    assert capsys.readouterr().err == "warning: fees high\n"
    with warnings.catch_warnings():
        _show_warning(UserWarning("other"), UserWarning, "x.py", 3)
    assert "x.py:3: UserWarning: other" in capsys.readouterr().err


def bt_warning(text: str) -> Warning:
    from backtester.errors import BacktesterWarning

    return BacktesterWarning(text)


def test_a_misspelt_option_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["survival", "--levrage", "5", "--no-report"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --levrage 5; did you mean '--leverage'?" in err


def test_a_bad_horizon_names_the_option_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["survival", *SMALL, "--horizon", "30", "--no-report"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--horizon must be a positive whole number of 1h bars, was '30'" in err
    assert "'30D' or '720h'" in err


def test_the_table_columns_are_a_stable_set(capsys: pytest.CaptureFixture[str]) -> None:
    # one leverage, one stop: nothing varies, every column of TABLE_COLUMNS is still shown
    from backtester.cli.survival import TABLE_COLUMNS

    code = main(["survival", *SMALL, "--leverage", "3", "--stop-loss", "none", "--no-report"])
    out = capsys.readouterr().out
    assert code == 0
    header = next(line for line in out.splitlines() if "Survival [%]" in line)
    for column in ("Side", *(c for c in TABLE_COLUMNS if c != "Ruined")):
        assert column in header


def test_okx_runs_offline_on_its_last_price_and_compares_with_binance_on_the_ftx_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the bundled OKX BTC bars have no mark: --mark auto judges on the last price and says so;
    # --vs-exchange runs the same holds on Binance on 2022-11-09 and adds a report section
    out = tmp_path / "okx"
    code = main(
        ["survival", "--exchange", "okx", "--side", "long", "--leverage", "5,20",
         "--stop-loss", "none", "--vs-exchange", "binanceusdm", "--crash-days", "2022-11-09",
         "--no-comparisons", "--out", str(out)]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0
    assert "no stored 1h mark price for BTC/USDT:USDT on okx" in captured.err
    assert "okx: judged on the last price (no mark bars)" in captured.out
    row = next(line for line in captured.out.splitlines() if line.startswith("2022-11-09 long"))
    assert row.split()[2:3] == ["5"] and row.count("/") == 2  # a count for each venue
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "Same holds on other venues: binanceusdm, okx" in page
    assert (out / "figures" / "venues_crash_days.png").is_file()


def test_mark_mark_keeps_the_error_and_crash_days_needs_vs_exchange(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["survival", "--exchange", "okx", "--mark", "mark", "--no-report"]) != 0
    assert "no mark data for okx BTC/USDT:USDT" in capsys.readouterr().err
    assert main(["survival", "--crash-days", "2022-11-09", "--no-report"]) != 0
    assert "--crash-days goes with --vs-exchange" in capsys.readouterr().err


def test_a_universe_leaves_out_a_symbol_shorter_than_the_horizon_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the bundled XRP bars are four days: a 30-day study of BTC, ETH and XRP runs BTC and ETH
    argv = ["survival", "--symbol", "BTC/USDT:USDT,ETH/USDT:USDT,XRP/USDT:USDT", "--no-report"]
    argv += ["--leverage", "10", "--stop-loss", "none", "--side", "long"]
    assert main([*argv, "--entry-every", "7D"]) == 0
    captured = capsys.readouterr()
    assert "note: --symbol XRP/USDT:USDT is left out: its data (99 bars" in captured.err
    assert "shorter than --horizon 30D" in captured.err
    assert "Survival of ETH/USDT:USDT holds" in captured.out
    assert main(["survival", "--symbol", "XRP/USDT:USDT,XRP/USDT:USDT", "--no-report"]) != 0
    assert main(["survival", "--symbol", "XRP/USDT:USDT,SOL/USDT:USDT", "--no-report"]) != 0
    assert "--symbol SOL/USDT:USDT" in capsys.readouterr().err


def test_an_option_of_another_subcommand_is_named_as_such(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["data", "list", "--exchange", "bybit"])
    err = capsys.readouterr().err
    assert "(--exchange is not an option of `backtester data list`)" in err
    assert "see `backtester data list --help`" in err and "did you mean '--exchange'" not in err
    with pytest.raises(SystemExit):
        main(["survival", "--levrage", "5"])
    assert "did you mean '--leverage'?; see `backtester survival --help`" in capsys.readouterr().err


def test_no_mark_note_before_the_error_of_a_market_that_is_not_stored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["survival", "--symbol", "FOO/USDT:USDT", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "note:" not in err and "no ohlcv data for binanceusdm FOO/USDT:USDT" in err


def test_the_venue_comparison_is_its_own_report_folder_and_uses_the_common_days() -> None:
    plain = build_parser().parse_args(["survival", "--exchange", "bybit"])
    vs = build_parser().parse_args(
        ["survival", "--exchange", "bybit", "--vs-exchange", "binanceusdm"]
    )
    assert default_out(plain) != default_out(vs)


def test_bybit_vs_binance_on_2025_10_10_as_the_readme_runs_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Bybit's bars run past Binance's (2026-07 vs 2026-05): Binance is loaded whole and the
    # comparison keeps the days both have
    argv = ["survival", "--exchange", "bybit", "--vs-exchange", "binanceusdm", "--side", "long"]
    argv += ["--crash-days", "2025-10-10", "--leverage", "10,50", "--stop-loss", "none"]
    assert main([*argv, "--no-report"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"2025-10-10 long +10 +168/168 \(100%\) +168/168 \(100%\)", out)


def test_errors_give_the_fix_as_options_to_type() -> None:
    from backtester.cli.survival import cli_words

    assert cli_words("or pass mark='last' to use the last price") == (
        "or pass --mark last to use the last price"
    )
    assert cli_words("pin a table with tier_table='YYYY-MM-DD'") == (
        "pin a table with --tier-table YYYY-MM-DD"
    )
    assert cli_words("pass maint_margin_rate=... (a flat rate)") == "pass --mmr ... (a flat rate)"
    assert cli_words("stop_loss_trigger is not a setting") == "stop_loss_trigger is not a setting"
