"""Exchange profiles: each venue's margin convention, liquidation-fee model, funding and fees (layer: rules).

Sections refer to docs/reference/exchange-rules.md. Pure Python, no numba: the convention codes are
plain ints equal to those in ``rules/formulas.py`` (a test checks they agree).

binanceusdm (Binance USDⓈ-M, §1)
    convention BINANCE: maintenance margin ``N·MMR − cum`` valued at mark, tier of the notional at
    the liquidation price, liquidation when margin balance <= maintenance margin (§1.1, §1.2).
    ``close_at = "liquidation"``: Binance first tries to close at market; the trader keeps the
    equity left at the liquidation price minus the clearance fee, the fee capped at that equity
    (§1.4: "if MM < fee_rate × N the equity at LP is consumed entirely, otherwise the fee is capped
    by the equity that remains").
    Clearance fee history (§1.4): 0.3% on BTC/USDT and 0.5% on all other symbols from the
    launch of USDⓈ-M perpetuals (legacy 2019-2020 FAQ copy) [V]; from 2025-12-24 the per-symbol
    ``liquidationFee`` of the recorded ``/fapi/v1/exchangeInfo`` (BTCUSDT and ETHUSDT 2%) [V],
    shipped as ``tables/fees/binanceusdm__liquidation_fee__2025-12-24.json``. When the rate changed
    in between is a [GAP]; the legacy rate is used until 2025-12-24.
    Fees: taker 0.05%, maker 0.02% (regular-user VIP 0 USDⓈ-M rates, no BNB discount).
    Funding every 8 h (00/08/16 UTC), ``cash = size × mark × rate`` (§1.6).

okx (OKX USDT-margined swaps, §2)
    convention OKX: tier MMR on the whole position (no maintenance amount), tier chosen by position
    size (contracts × ctVal, stored in base units), trigger ``equity <= MM + liquidation fee``
    (§2.1, §2.2). Liquidation fee = the taker rate × the liquidated value (§2.4, [S]), so
    ``liquidation_fee_rate`` equals the taker fee. ``close_at = "bankruptcy"``: the position is taken
    over at the bankruptcy price and the remaining margin goes to the risk reserve (§2.3, §4).
    Fees: taker 0.05%, maker 0.02% (regular users, USDT-margined swaps). Funding every 8 h (§2.6).

bybit (Bybit linear USDT perpetuals, §3)
    convention BYBIT: maintenance margin valued at ENTRY, ``MM = Q·EP·MMR − deduction``, tier of
    the entry value, ``LP = EP ∓ (IM − MM)/Q`` (§3.1, §3.3). ``close_at = "bankruptcy"``: on
    reaching LP the position is taken over at the bankruptcy price (§3.1 "Trigger", §3.3).
    The fee to close is ``Q × BP × taker`` (§3.2), so ``liquidation_fee_rate`` is the taker rate.
    Fees: taker 0.055%, maker 0.02% (non-VIP derivatives). Funding every 8 h (§3.4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

import pandas as pd

from backtester.engine.enums import Convention
from backtester.errors import ConfigError, did_you_mean

__all__ = [
    "BINANCE",
    "BYBIT",
    "OKX",
    "PROFILES",
    "ExchangeProfile",
    "fee_change_dates",
    "get_profile",
    "liquidation_fee_rate",
]

# convention codes (engine.enums: importing them needs no numba)
BINANCE = int(Convention.BINANCE)
OKX = int(Convention.OKX)
BYBIT = int(Convention.BYBIT)

CloseAt = Literal["liquidation", "bankruptcy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeProfile:
    """Static conventions of one exchange (rates are fractions, times in hours)."""

    exchange: str
    convention: int
    close_at: CloseAt
    funding_interval_h: float
    taker_fee: float
    maker_fee: float
    liquidation_fee_model: str
    fee_source: str


PROFILES: dict[str, ExchangeProfile] = {
    "binanceusdm": ExchangeProfile(
        exchange="binanceusdm",
        convention=BINANCE,
        close_at="liquidation",
        funding_interval_h=8.0,
        taker_fee=0.0005,
        maker_fee=0.0002,
        liquidation_fee_model=(
            "clearance fee on the liquidated notional: legacy 0.3% BTC/USDT, 0.5% others (§1.4); "
            "per-symbol exchangeInfo liquidationFee from 2025-12-24"
        ),
        fee_source="Binance USDⓈ-M VIP 0 taker 0.05% / maker 0.02%",
    ),
    "okx": ExchangeProfile(
        exchange="okx",
        convention=OKX,
        close_at="bankruptcy",
        funding_interval_h=8.0,
        taker_fee=0.0005,
        maker_fee=0.0002,
        liquidation_fee_model="taker rate × liquidated value (§2.4, [S])",
        fee_source="OKX regular users, USDT-margined swaps: taker 0.05% / maker 0.02%",
    ),
    "bybit": ExchangeProfile(
        exchange="bybit",
        convention=BYBIT,
        close_at="bankruptcy",
        funding_interval_h=8.0,
        taker_fee=0.00055,
        maker_fee=0.0002,
        liquidation_fee_model="fee to close = size × bankruptcy price × taker rate (§3.2)",
        fee_source="Bybit non-VIP derivatives: taker 0.055% / maker 0.02%",
    ),
    # coin-margined (inverse) perpetuals of Binance COIN-M: §8 of docs/reference/exchange-rules.md
    "binancecoinm": ExchangeProfile(
        exchange="binancecoinm",
        convention=BINANCE,
        close_at="liquidation",
        funding_interval_h=8.0,
        taker_fee=0.0005,
        maker_fee=0.0002,
        liquidation_fee_model=(
            "clearance fee on the liquidated coin value: 0.5% assumed [A] (§8.1; the COIN-M rate "
            "is not in the stored sources)"
        ),
        fee_source="Binance COIN-M VIP 0 taker 0.05% / maker 0.02% (§8.1) [A]",
    ),
}

_LEGACY_FROM = pd.Timestamp("2019-09-08", tz="UTC")
_BINANCE_FEE_FILE = "binanceusdm__liquidation_fee__2025-12-24.json"


def get_profile(exchange: str) -> ExchangeProfile:
    """Return the profile of ``exchange`` or raise ConfigError with a suggestion."""
    profile = PROFILES.get(exchange)
    if profile is None:
        raise ConfigError(
            f"exchange must be one of {', '.join(map(repr, PROFILES))}, was {exchange!r}"
            f"{did_you_mean(str(exchange), PROFILES)}"
        )
    return profile


@lru_cache(maxsize=1)
def _binance_fee_snapshot() -> tuple[pd.Timestamp, dict[str, float], str]:
    path = resources.files("backtester.rules").joinpath("tables", "fees", _BINANCE_FEE_FILE)
    data = json.loads(path.read_text(encoding="utf-8"))
    return pd.Timestamp(data["effective_from"]), dict(data["rates"]), str(data["source"])


def liquidation_fee_rate(exchange: str, symbol: str, at: pd.Timestamp | None) -> tuple[float, str]:
    """Return ``(rate, note)``: the liquidation-fee rate in force for ``symbol`` at ``at``.

    ``at=None`` means the latest known rate. The note names the source of the rate.
    """
    profile = get_profile(exchange)
    if exchange == "binancecoinm":
        return 0.005, "Binance COIN-M clearance fee 0.5% assumed [A] (§8.1)"
    if exchange != "binanceusdm":
        return profile.taker_fee, f"{exchange} liquidation fee = taker rate ({profile.fee_source})"
    since, rates, _ = _binance_fee_snapshot()
    if (at is None or at >= since) and symbol in rates:
        return rates[symbol], (
            f"Binance liquidationFee {rates[symbol]:g} for {symbol} from the exchangeInfo "
            f"recorded {since:%Y-%m-%d}"
        )
    legacy = 0.003 if symbol == "BTC/USDT:USDT" else 0.005
    why = "before" if at is not None and at < since else f"{symbol} not in"
    return legacy, (
        f"Binance legacy clearance fee {legacy:g} (0.3% BTC/USDT, 0.5% others, §1.4); "
        f"{why} the exchangeInfo of {since:%Y-%m-%d}"
    )


def fee_change_dates(exchange: str) -> list[pd.Timestamp]:
    """Return the dates at which the liquidation-fee rate of ``exchange`` is known to change."""
    if get_profile(exchange).exchange == "binanceusdm":
        return [_binance_fee_snapshot()[0]]
    return []
