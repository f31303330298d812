"""CLI subcommands of the exchange-rules area: ``liq-price`` (layer: cli).

Handlers only translate options into ``backtester.rules.liquidation_quote`` and format its result.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings

from backtester.errors import BacktesterWarning
from backtester.rules import DEFAULT_SYMBOL, LiquidationQuote, _Names, _quote

__all__ = ["format_price", "register"]


def format_price(value: float) -> str:
    """Return a price with 2 decimals (more for prices below 1), trailing zeros removed.

    ``19700.0 → "19700"``, ``19698.4925 → "19698.49"``, ``0.000123456 → "0.00012346"``.
    """
    if not math.isfinite(value):
        return "inf" if value > 0 else "nan"
    if value == 0:
        return "0"
    decimals = 2 if abs(value) >= 1 else min(10, 2 + int(-math.floor(math.log10(abs(value)))) + 2)
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _text(quote: LiquidationQuote) -> str:
    tier = f"tier {quote.tier}" if quote.tier else "explicit --mmr"
    if quote.contract_type == "inverse":  # contracts of a USD face value; money in the coin
        coin = quote.symbol.partition("/")[0]
        position = (
            f"{quote.size:g} contracts x {quote.contract_size:g} USD @ "
            f"{format_price(quote.entry_price)}  notional {quote.notional:.8g} {coin}  leverage "
            f"{quote.leverage:.4g}  margin {quote.margin:.8g} {coin}"
        )
        maint = f"{quote.maint_margin:.8g} {coin}"
    else:
        position = (
            f"{quote.size:g} @ {format_price(quote.entry_price)}  notional {quote.notional:.2f}  "
            f"leverage {quote.leverage:.4g}  margin {quote.margin:.2f}"
        )
        maint = f"{quote.maint_margin:.2f}"
    lines = [
        f"exchange            {quote.exchange}  {quote.symbol}  ({quote.margin_mode}, {quote.side})",
        f"position            {position}",
        f"liquidation price   {format_price(quote.liquidation_price)}"
        + (
            "  (a long this well margined cannot be liquidated)"
            if quote.liquidation_price == 0
            else ""
        )
        + (
            "  (WARNING: on the profitable side of entry; liquidatable at entry, see note)"
            if (quote.liquidation_price - quote.entry_price) * (1 if quote.side == "long" else -1)
            >= 0
            else ""
        ),
        f"bankruptcy price    {format_price(quote.bankruptcy_price)}",
        f"maintenance margin  {maint}  (mmr {quote.mmr:.4%}, maint amount {quote.maint_amount:g})",
        f"tier used           {tier}  table {quote.table_id}  (MM valued at the "
        f"{'entry' if quote.exchange == 'bybit' else 'liquidation'} price; max leverage at entry "
        f"{quote.max_leverage:g})",
        f"distance to liq.    {quote.distance_pct:.2f}%",
        f"after liquidation   closes at the {quote.close_at} price; liquidation fee rate "
        f"{quote.liquidation_fee_rate:g}",
        f"note                {quote.note}",
    ]
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        # the quote's note carries the warning text; print it once, in the output
        warnings.simplefilter("ignore", BacktesterWarning)
        quote = _liquidation_quote(args)
    if args.json:
        sys.stdout.write(json.dumps(quote.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(_text(quote) + "\n")
    return 0


# errors name the options the user typed, and give fixes a command-line user can apply
_CLI_NAMES = _Names(
    entry_price="--entry",
    size="--size",
    leverage="--leverage",
    margin="--margin",
    wallet_balance="--wallet",
    other_maint_margin="--other-maint-margin",
    other_unrealized_pnl="--other-upnl",
    margin_mode="--margin-mode",
    taker_fee="--taker-fee",
    at="--at",
    contract_size="--contract-size",
    at_fix="give --at {first} or later, or omit --at for the latest table",
)


def _liquidation_quote(args: argparse.Namespace) -> LiquidationQuote:
    # backtester.rules.liquidation_quote, with the messages naming the options
    return _quote(
        args.exchange,
        args.side,
        args.entry,
        args.size,
        margin_mode=args.margin_mode,
        leverage=args.leverage,
        margin=args.margin,
        wallet_balance=args.wallet,
        other_maint_margin=args.other_maint_margin,
        other_unrealized_pnl=args.other_upnl,
        mmr=args.mmr,
        maint_amount=args.maint_amount,
        taker_fee=args.taker_fee,
        symbol=args.symbol,
        at=args.at,
        contract_size=args.contract_size,
        names=_CLI_NAMES,
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``liq-price`` subcommand."""
    p = subparsers.add_parser(
        "liq-price",
        help="liquidation calculator: liquidation and bankruptcy price of one position",
        description=(
            "Print the liquidation price, bankruptcy price, maintenance margin, tier used and "
            "the distance to liquidation of a one-way perpetual position (USDT-margined, or "
            "coin-margined such as BTC/USD:BTC: --size in contracts, margin in the coin), with "
            "the exchange's own convention and the tier table in force (latest, or --at DATE)."
        ),
        epilog=(
            "example: backtester liq-price --exchange bybit --side long --entry 20000 --size 1 "
            "--leverage 50 --mmr 0.005   (prints 19700)"
        ),
    )
    p.add_argument(
        "--exchange", required=True, help="binanceusdm, okx, bybit or binancecoinm (COIN-M)"
    )
    p.add_argument(
        "--symbol",
        default=None,
        help=f"ccxt symbol (default {DEFAULT_SYMBOL}, chosen because every exchange has its table)",
    )
    p.add_argument("--side", required=True, help="long or short")
    p.add_argument("--entry", type=float, required=True, help="entry price (quote per base unit)")
    p.add_argument("--size", type=float, required=True, help="position size in base units")
    p.add_argument(
        "--leverage",
        type=float,
        default=None,
        help="isolated: margin = notional / leverage (give --leverage or --margin); cross: the "
        "wallet must hold that initial margin",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="isolated margin in quote currency, extra margin included (instead of --leverage)",
    )
    p.add_argument(
        "--margin-mode", default="isolated", help="isolated (default) or cross (needs --wallet)"
    )
    p.add_argument("--wallet", type=float, default=None, help="cross: wallet balance (quote)")
    p.add_argument(
        "--other-maint-margin",
        type=float,
        default=0.0,
        help="cross: maintenance margin of the account's other positions (quote)",
    )
    p.add_argument(
        "--other-upnl",
        type=float,
        default=0.0,
        help="cross: unrealized PnL of the account's other positions (quote)",
    )
    p.add_argument("--mmr", type=float, default=None, help="override: flat maintenance-margin rate")
    p.add_argument(
        "--maint-amount",
        type=float,
        default=None,
        help="override: maintenance amount (needs --mmr)",
    )
    p.add_argument(
        "--taker-fee",
        type=float,
        default=None,
        help="OKX liquidation-fee term, a fraction in [0, 1) (default: the profile's taker fee)",
    )
    p.add_argument(
        "--at",
        default=None,
        help="date of the tier table to use (default: latest); not before the earliest table",
    )
    p.add_argument(
        "--contract-size",
        type=float,
        default=None,
        help="coin-margined symbols (BTC/USD:BTC): USD face value of one contract (default: the "
        "exchange's, e.g. 100 on binancecoinm); --size is then in contracts",
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(handler=_run)
