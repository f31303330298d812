"""RunConfig: defaults, validation with named fields, dict round trip."""

from __future__ import annotations

import pytest

from backtester.config import RunConfig, check_setting
from backtester.errors import ConfigError


def test_defaults_and_round_trip() -> None:
    cfg = RunConfig(leverage=5, stop_loss=0.05)
    assert cfg.leverage == 5.0 and isinstance(cfg.leverage, float)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(margin_mode="cross").margin_mode == "cross"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("leverage", 0, r"RunConfig.leverage must be in \(0, 1000\], was 0"),
        ("position_size", 1.5, r"RunConfig.position_size must be in \(0, 1\], was 1.5"),
        ("taker_fee", 2.0, r"RunConfig.taker_fee must be a fraction in \[0, 1\), was 2.0"),
        ("intrabar", "worse", r"RunConfig.intrabar must be one of .*was 'worse'; did you mean"),
        ("funding", "yes", r"RunConfig.funding must be True or False, was 'yes'"),
    ],
)
def test_bad_values_name_field_and_value(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig(**{field: value})


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
    cfg = RunConfig(stop_loss=float("nan"), taker_fee=None, close_at=None)
    assert cfg.stop_loss is None and cfg.taker_fee is None and cfg.close_at is None
