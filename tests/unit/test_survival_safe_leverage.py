"""max_safe_leverage: the highest leverage whose honest lower bound meets the target."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtester.engine.enums import ExitReason
from backtester.errors import ConfigError
from backtester.reports.tables import safe_leverage_display, safe_leverage_lines
from backtester.survival.study import SurvivalStudy
from tests.unit.test_survival_helpers import gbm_market

HORIZON = 10
N_ENTRIES = 50


def _study(liquidated: dict[tuple[str, float], int]) -> SurvivalStudy:
    """50 entries one horizon apart (n_eff = 50); setting (side, leverage) loses its first k."""
    market = gbm_market(n_hours=HORIZON * N_ENTRIES, sigma_per_minute=0.001, seed=0)
    entries = np.arange(0, HORIZON * N_ENTRIES, HORIZON, dtype=np.int64)
    settings = pd.DataFrame(list(liquidated), columns=["side", "leverage"])
    settings["stop_loss"] = None
    n_s = len(settings)
    reason = np.full((n_s, N_ENTRIES), int(ExitReason.HORIZON), dtype=np.int64)
    exit_idx = np.tile(entries + HORIZON - 1, (n_s, 1))
    for s, k in enumerate(liquidated.values()):
        reason[s, :k] = ExitReason.LIQUIDATION
        exit_idx[s, :k] = entries[:k] + 4
    final = np.where(reason == ExitReason.LIQUIDATION, 0.0, 1.0)
    zeros = np.zeros((n_s, N_ENTRIES))
    return SurvivalStudy(
        market=market,
        settings=settings,
        entry_idx=entries,
        horizon_bars=HORIZON,
        entry_every_bars=HORIZON,
        exit_idx=exit_idx,
        reason=reason,
        final_equity=final,
        min_equity=zeros,
        insurance_draw=zeros,
        funding_paid=zeros,
        fees_paid=zeros,
        n_boot=200,
    )


def test_max_safe_leverage_by_hand() -> None:
    # Arrange: long 2x and 10x never liquidated, 100x loses 5 of 50; short loses 3+ everywhere.
    # No liquidation in 50 independent holds: the bootstrap is all 1.0, so ci_low is the
    # Clopper-Pearson lower bound for 50 of 50 at 95%: 0.025 ** (1 / 50) = 0.92894 >= 0.9.
    # 47 of 50 (survival 0.94): the Clopper-Pearson lower bound is 0.8345 < 0.9.
    study = _study(
        {
            ("long", 2.0): 0,
            ("long", 10.0): 0,
            ("long", 100.0): 5,
            ("short", 2.0): 3,
            ("short", 10.0): 8,
        }
    )
    # Act
    safe = study.max_safe_leverage(target=0.9)
    # Assert
    assert list(safe.columns) == [
        "side",
        "stop_loss",
        "leverage",
        "survival",
        "ci_low",
        "ci_high",
        "loss_mean",
        "max_tested",
    ]
    long, short = safe.iloc[0], safe.iloc[1]
    assert (long["side"], long["leverage"], long["max_tested"]) == ("long", 10.0, 100.0)
    assert long["survival"] == 1.0
    assert long["ci_low"] == pytest.approx(0.025 ** (1 / 50))
    assert long["loss_mean"] == 0.0
    # no short leverage qualifies: NaN, with the lowest leverage's numbers (how far it misses)
    assert short["side"] == "short" and math.isnan(short["leverage"])
    assert short["survival"] == pytest.approx(47 / 50)
    assert short["ci_low"] < 0.9
    assert short["loss_mean"] == pytest.approx(3 / 50)
    assert safe.attrs["target"] == 0.9
    # a stricter target than 0.92894: nothing qualifies, even on the long side
    assert safe.shape[0] == 2
    assert study.max_safe_leverage(target=0.95)["leverage"].isna().all()


def test_max_safe_leverage_picks_the_highest_qualifying_even_out_of_order() -> None:
    # Arrange: settings listed high leverage first; both pass
    study = _study({("long", 20.0): 0, ("long", 3.0): 0})
    # Act / Assert
    assert study.max_safe_leverage(0.9)["leverage"].tolist() == [20.0]


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, "0.9", True])
def test_max_safe_leverage_rejects_a_bad_target(bad: object) -> None:
    study = _study({("long", 2.0): 0})
    with pytest.raises(ConfigError, match="target must be a survival share strictly between 0"):
        study.max_safe_leverage(bad)  # type: ignore[arg-type]


def test_safe_leverage_lines_and_display_say_it_in_plain_words() -> None:
    # Arrange
    study = _study({("long", 2.0): 0, ("long", 10.0): 0, ("short", 2.0): 3})
    safe = study.max_safe_leverage(0.9)
    # Act
    lines = safe_leverage_lines(safe)
    shown = safe_leverage_display(safe)
    # Assert: 50 of 50 -> 100.0% (92.9–100.0); 47 of 50 misses
    assert lines[0] == (
        "long: at most 10x (the highest tested): survival 100.0% (92.9–100.0), "
        "0.0% of the wallet lost on average"
    )
    assert lines[1].startswith("short: no tested leverage meets 90%; even the lowest gives 94.0%")
    assert list(shown.columns) == [
        "Side",
        "Highest safe leverage [x]",
        "Survival [%] (95% CI)",
        "Wallet lost, mean [%]",
        "Tested up to [x]",
    ]
    assert shown["Highest safe leverage [x]"].tolist() == ["10", "none"]


def test_report_opens_with_the_answer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Arrange
    study = _study({("long", 2.0): 0, ("long", 10.0): 0, ("short", 2.0): 3})
    # Act
    index = Path(study.report(str(tmp_path / "rep"), comparisons=False, progress=True))
    # Assert: a progress bar of the stages on stderr
    assert "drawing the figures" in capsys.readouterr().err
    # Assert: the answer is the first section, its table is written
    html = index.read_text(encoding="utf-8")
    first = html.index("<h2")
    assert html[first:].split("</h2>")[0].endswith("The answer: the highest leverage that survives")
    assert "Highest: long: at most 10x (the highest tested)" in html
    assert (index.parent / "tables" / "max_safe_leverage.csv").exists()
    with pytest.raises(ConfigError, match="target must be"):
        study.report(str(tmp_path / "rep2"), comparisons=False, target=2.0)


def test_table_is_indexed_by_the_settings_and_reset_index_gives_the_flat_frame() -> None:
    # Arrange
    study = _study({("long", 2.0): 0, ("long", 10.0): 0, ("short", 2.0): 3})
    # Act
    table = study.table()
    flat = table.reset_index()
    # Assert: a MultiIndex of the setting columns, like SweepResult.stats()
    assert isinstance(table.index, pd.MultiIndex)
    assert list(table.index.names) == ["side", "leverage", "stop_loss"]
    assert "leverage" not in table.columns
    assert list(flat.columns[:3]) == ["side", "leverage", "stop_loss"]
    assert table.loc[("short", 2.0), "survival"].iloc[0] == pytest.approx(47 / 50)
    assert flat["survival"].tolist() == table["survival"].tolist()
    assert "Kaplan–Meier" in flat.attrs["survival"]


def test_curve_by_labels_or_position() -> None:
    # Arrange: short 2x loses 3 of 50 at bar 5 (duration 5 bars)
    study = _study({("long", 2.0): 0, ("long", 10.0): 0, ("short", 2.0): 3})
    # Act
    by_label = study.curve(side="short", leverage=2)
    by_position = study.curve(2)
    # Assert: one step to 47/50 at 5 bars, flat to the horizon (10 bars)
    pd.testing.assert_frame_equal(by_label, by_position)
    assert list(by_label.columns) == ["time_days", "survival", "ci_low", "ci_high"]
    np.testing.assert_allclose(by_label["time_days"] * 24, [0, 5, 10])
    np.testing.assert_allclose(by_label["survival"], [1.0, 47 / 50, 47 / 50])
    # at the horizon the interval is the table's
    row = study.table().reset_index().iloc[2]
    assert by_label["ci_low"].iloc[-1] == pytest.approx(row["ci_low"])
    assert by_label["ci_high"].iloc[-1] == pytest.approx(row["ci_high"])
    assert by_label.attrs["setting"] == study.label(2)
    with pytest.raises(ConfigError, match=r"match 2 settings; add leverage"):
        study.curve(side="long")
    with pytest.raises(ConfigError, match="match no setting"):
        study.curve(side="long", leverage=3)
    with pytest.raises(ConfigError, match=r"setting position must be an int in \[0, 2\]"):
        study.curve(3)


def test_repr_html_shows_the_market_and_the_answer() -> None:
    study = _study({("long", 2.0): 0, ("long", 10.0): 0})
    page = study._repr_html_()
    assert "Horizon</th><td style='text-align:left'>0.416667 days" in page
    assert "Highest safe leverage [x]" in page and "<td>10</td>" in page


def test_heatmap_marks_a_stop_beyond_the_liquidation_price(btc_1h: object) -> None:
    # Arrange: Binance BTC, first tier mmr 0.4 %: a 20x long is liquidated about 1/20 - 0.4 %
    # = 4.6 % below entry, so a 5 % stop can never fire first; at 10x (9.6 %) it can
    import backtester as bt

    market = btc_1h.slice("2025-01-01", None)  # type: ignore[attr-defined]
    study = bt.survival_study(
        market, side="long", leverage=(10, 20), stop_loss=(None, 0.05), n_boot=20,
        horizon="2D", entry_every="7D",
    )  # fmt: skip
    # Act
    marks = study.stop_beyond_liquidation()
    # Assert: rows are (10, none), (10, 5%), (20, none), (20, 5%)
    assert marks.tolist() == [False, False, False, True]


def test_a_target_the_data_cannot_show_is_said_to_be_out_of_reach() -> None:
    from backtester.reports.tables import unreachable_reason

    # n_eff = 8 non-overlapping horizons at 95 %: no liquidation at all gives a Clopper–Pearson
    # lower bound of 0.025 ** (1 / 8) = 63.1 %, so a 90 % target is out of reach; 50 % is not
    safe = pd.DataFrame({"leverage": [np.nan]})
    safe.attrs = {"target": 0.9, "n_effective": 8.0, "best_possible_low": 0.025 ** (1 / 8)}
    assert unreachable_reason(safe) == (
        "The target is out of reach: the data holds 8 non-overlapping horizons, so even with no "
        "liquidation at all the lower bound is 63.1%; load a longer range, shorten the horizon "
        "or lower the target."
    )
    safe.attrs["target"] = 0.5
    assert unreachable_reason(safe) is None
