"""RunConfig and the settings spec: defaults, validation with named fields, dict round trip."""

from __future__ import annotations

import dataclasses
import math

import pytest

from backtester.config import SETTINGS, RunConfig, check_setting, setting_names
from backtester.engine.enums import MarginMode, code_of, option_names
from backtester.engine.layout import FLOAT_ROWS, INT_ROWS, FParam, IParam
from backtester.errors import BacktesterWarning, ConfigError


def test_defaults_and_round_trip() -> None:
    cfg = RunConfig(leverage=5, stop_loss=0.05)
    assert cfg.leverage == 5.0 and isinstance(cfg.leverage, float)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(margin_mode="cross").margin_mode == "cross"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("leverage", 0, r"RunConfig.leverage must be in \(0, 1000\], was 0"),
        ("position_size", 1.5, r"RunConfig.position_size must be a fraction in \(0, 1\], was 1.5"),
        ("taker_fee", 2.0, r"RunConfig.taker_fee must be a fraction in \[0, 1\), was 2.0"),
        ("intrabar", "worse", r"RunConfig.intrabar must be one of .*was 'worse'; did you mean"),
        ("funding", "yes", r"RunConfig.funding must be True or False, was 'yes'"),
    ],
)
def test_bad_values_name_field_and_value(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig(**{field: value})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        # was a bare TypeError from a comparison of str and int
        (
            "taker_fee",
            "0.1",
            r"RunConfig.taker_fee must be a fraction in \[0, 1\) or None \(the exchange "
            r"profile's\), was '0.1' \(a string\); write the number without quotes",
        ),
        # was a bare TypeError
        ("slippage", None, r"RunConfig.slippage must be a fraction in \[0, 1\), was None; write"),
        # NaN was read as "no stop" without a word
        ("stop_loss", math.nan, r"RunConfig.stop_loss must be .* or None \(no stop\), was nan"),
        # a long's stop at 100 % or more can never fire
        ("stop_loss", 1.0, r"RunConfig.stop_loss must be a fraction in \(0, 1\), was 1.0"),
        ("leverage", True, r"RunConfig.leverage must be a number .*was True \(a boolean\)"),
        ("leverage", math.inf, r"RunConfig.leverage must be in \(0, 1000\], was inf"),
        ("tier_table", "yesterday", r"RunConfig.tier_table must be None .*was 'yesterday'"),
        ("exchange", "binance", r"RunConfig.exchange must be one of .*; did you mean"),
        ("margin_mode", 1, r"RunConfig.margin_mode must be one of 'isolated', 'cross', was 1"),
    ],
)
def test_wrong_types_and_nonsense_are_one_line_errors(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        RunConfig(**{field: value})
    assert "\n" not in str(info.value)


def test_unknown_names_get_suggestions() -> None:
    with pytest.raises(ConfigError, match="did you mean 'stop_loss'"):
        RunConfig().replace(stoploss=0.1)
    with pytest.raises(ConfigError, match="did you mean 'leverage'"):
        check_setting("levrage", 2)
    # the constructor too (was dataclass' TypeError without a suggestion)
    with pytest.raises(
        ConfigError, match=r"unknown RunConfig field 'levrage'; did you mean 'leverage'"
    ):
        RunConfig(levrage=2)  # type: ignore[call-arg]


def test_none_means_off_or_profile_default() -> None:
    cfg = RunConfig(stop_loss=None, taker_fee=None, close_at=None)
    assert cfg.stop_loss is None and cfg.taker_fee is None and cfg.close_at is None


def test_fees_above_any_exchange_warn() -> None:
    with pytest.warns(BacktesterWarning, match=r"taker_fee = 0.02 is above 0.01 \(1%\)"):
        RunConfig(taker_fee=0.02)


def test_study_bound_is_stricter_and_named() -> None:
    assert check_setting("leverage", 0.5) == 0.5
    with pytest.raises(ConfigError, match=r"--leverage must be in \[1, 1000\], was 0.5"):
        check_setting("leverage", 0.5, study=True, where="--leverage")


def test_the_spec_describes_every_field_once() -> None:
    """Every RunConfig field has a spec entry with help text; names, defaults agree."""
    names = [f.name for f in dataclasses.fields(RunConfig)]
    assert list(SETTINGS) == names == list(setting_names())
    for f in dataclasses.fields(RunConfig):
        spec = SETTINGS[f.name]
        assert spec.name == f.name and spec.default == f.default and spec.help
        assert check_setting(f.name, f.default) == f.default  # defaults are valid


def test_kernel_layout_comes_from_the_spec() -> None:
    """Each kernel setting has its own row; rows are 0..N-1 in field order."""
    floats = [n for n, s in SETTINGS.items() if s.kernel == "float"]
    ints = [n for n, s in SETTINGS.items() if s.kernel == "int"]
    assert list(FLOAT_ROWS) == floats and list(FLOAT_ROWS.values()) == list(range(len(floats)))
    assert list(INT_ROWS) == ints and list(INT_ROWS.values()) == list(range(len(ints)))
    assert len(floats) == FParam.N and len(ints) + 1 == IParam.N  # + CONVENTION
    assert FParam[SETTINGS["leverage"].slot] == FLOAT_ROWS["leverage"]


def test_option_strings_and_codes_come_from_the_enums() -> None:
    assert SETTINGS["margin_mode"].choices == option_names(MarginMode) == ("isolated", "cross")
    assert code_of(MarginMode, "cross") == MarginMode.CROSS
    assert SETTINGS["side"].choices == ("long", "short")


def test_readme_settings_table_is_the_spec() -> None:
    """The README's settings table is generated from the spec (python -m backtester.config)."""
    from pathlib import Path

    from backtester.config import settings_markdown

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- settings table:")
    block = readme[readme.index("\n", start) + 1 : readme.index("<!-- end of settings table -->")]
    assert block.strip() == settings_markdown(), "regenerate: python -m backtester.config"


def test_huge_numbers_and_dates_are_handled() -> None:
    import datetime as dt

    with pytest.raises(ConfigError, match=r"initial_cash must be in \(0, inf\), was inf"):
        RunConfig(initial_cash=10**400)  # was a bare OverflowError
    with pytest.raises(ConfigError, match=r"leverage must be in \(0, 1000\], was 1e\+30;"):
        RunConfig(leverage=10**30)  # 31 digits shortened
    assert RunConfig(tier_table=dt.date(2024, 5, 30)).tier_table == "2024-05-30"


def test_suggestions_ignore_case() -> None:
    with pytest.raises(ConfigError, match=r"was 'CROSS'; did you mean 'cross'\?"):
        RunConfig(margin_mode="CROSS")
