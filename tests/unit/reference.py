"""Slow pure-Python twin of ``backtester.engine.kernel`` plus small-market builders for tests.

The reference walks one column bar by bar with plain floats, following the bar semantics of
the kernel's module docstring literally (no fast paths, no time chunks, no packed arrays). The
liquidation price comes from ``rules.formulas`` run as plain Python (``.py_func``), which the
rules tests check against the exchanges' worked examples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from backtester.engine.enums import ExitReason
from backtester.market import Market
from backtester.rules import formulas

LONG_ENTRY, LONG_EXIT, SHORT_ENTRY, SHORT_EXIT = 0, 1, 2, 3


def make_market(
    o: list[float],
    h: list[float],
    lo: list[float],
    c: list[float],
    *,
    mark: tuple[list[float], list[float], list[float], list[float]] | None = None,
    funding: dict[int, float] | None = None,
    start: str = "2024-06-01",
    timeframe: str = "1h",
    detail: Market | None = None,
) -> Market:
    """Return a BTC/USDT:USDT binanceusdm Market from literal bars (mark = last by default).

    ``funding`` maps a bar number to a rate paid at that bar's open time.
    """
    from backtester.data.schema import timeframe_to_ns

    step = pd.Timedelta(timeframe_to_ns(timeframe), unit="ns")
    ts = pd.date_range(start, periods=len(o), freq=step, tz="UTC")
    bars = pd.DataFrame({"timestamp": ts, "open": o, "high": h, "low": lo, "close": c})
    mk: Any = "last"
    if mark is not None:
        mk = pd.DataFrame(
            {"timestamp": ts, "open": mark[0], "high": mark[1], "low": mark[2], "close": mark[3]}
        )
    fund = None
    if funding:
        fund = pd.DataFrame(
            {"timestamp": [ts[i] for i in funding], "funding_rate": list(funding.values())}
        )
    return Market.from_frames(
        bars,
        mark=mk,
        funding=fund,
        symbol="BTC/USDT:USDT",
        exchange="binanceusdm",
        timeframe=timeframe,
        detail=detail,
    )


class FixedSignals:
    """A strategy with no parameters whose signals are given literally (one column)."""

    PARAMS: ClassVar[dict[str, list[Any]]] = {}
    __name__ = "fixed"

    def __init__(
        self,
        n_bars: int,
        long_entries: list[int] = (),  # type: ignore[assignment]
        long_exits: list[int] = (),  # type: ignore[assignment]
        short_entries: list[int] = (),  # type: ignore[assignment]
        short_exits: list[int] = (),  # type: ignore[assignment]
    ) -> None:
        self.arrays = []
        for bars in (long_entries, long_exits, short_entries, short_exits):
            arr = np.zeros((n_bars, 1), dtype=bool)
            arr[list(bars), 0] = True
            self.arrays.append(arr)

    def signals(self, market: Market, grid: Any) -> Any:
        from backtester.signals import Signals

        n = grid.n_cols
        return Signals(*(np.repeat(a, n, axis=1) for a in self.arrays))


@dataclass
class RefTrade:
    idx: int
    entry_idx: int
    side: int
    entry_price: float
    exit_price: float
    size: float
    leverage: float
    margin: float
    fees: float
    funding: float
    pnl: float
    exit_reason: int


@dataclass
class RefResult:
    equity: list[float] = field(default_factory=list)
    wallet: list[float] = field(default_factory=list)
    upnl: list[float] = field(default_factory=list)
    position: list[float] = field(default_factory=list)  # signed size at the close
    trades: list[RefTrade] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class RefTables:
    """Tier tables in force per bar (lists of numpy rows) and their liquidation-fee rates."""

    table_idx: np.ndarray
    floors: list[np.ndarray]
    mmr: list[np.ndarray]
    mamt: list[np.ndarray]
    maxlev: list[np.ndarray]
    by_size: list[bool]
    liq_rates: list[float]
    # the cap of each table's last tier: a larger position cannot be opened (inf: open-ended)
    last_cap: list[float] = field(default_factory=list)

    def cap_of(self, t: int) -> float:
        return self.last_cap[t] if self.last_cap else math.inf


def tables_from_rules(rules: Any, last_cap: list[float] | None = None) -> RefTables:
    """Convert ``engine.run._RulesInputs`` into per-table arrays without padding.

    ``last_cap`` (one per table) defaults to ``rules.last_cap`` when engine.run provides it,
    else every table is open-ended.
    """
    n_t = rules.n_tiers
    if last_cap is None:
        last_cap = [float(x) for x in getattr(rules, "last_cap", [math.inf] * len(n_t))]
    return RefTables(
        table_idx=rules.table_idx,
        floors=[rules.floors[t, : n_t[t]].copy() for t in range(len(n_t))],
        mmr=[rules.mmr[t, : n_t[t]].copy() for t in range(len(n_t))],
        mamt=[rules.mamt[t, : n_t[t]].copy() for t in range(len(n_t))],
        maxlev=[rules.maxlev[t, : n_t[t]].copy() for t in range(len(n_t))],
        by_size=[bool(b) for b in rules.by_size],
        liq_rates=[float(x) for x in rules.liq_rates],
        last_cap=list(last_cap),
    )


def _settle(
    side: int,
    size: float,
    entry: float,
    fill: float,
    fee_rate: float,
    cap: float,
    take_all: bool,
    owed: bool,
) -> tuple[float, float, float, float]:
    """Return (wallet change, fee paid, insurance draw, close price) of closing at ``fill``."""
    pnl = float(side) * size * (fill - entry)
    left = cap + pnl  # what remains of the margin (cross: the wallet) at the fill
    if left < 0.0:  # a gap beyond the bankruptcy price
        if owed:  # the trader owes the whole loss; nobody else pays
            return pnl, 0.0, 0.0, fill
        return -cap, 0.0, -left, fill  # the trader loses the margin, the fund the rest
    if take_all:  # taken over at the bankruptcy price, where the margin is exactly used up
        bankrupt = entry - side * cap / size
        return -cap, 0.0, 0.0, max(bankrupt, 0.0) if side > 0 else bankrupt
    fee = size * fill * fee_rate
    if fee >= left:  # the fee takes everything left: the margin is lost, not a cent more
        return -cap, left, 0.0, fill
    return max(pnl - fee, -cap), fee, 0.0, fill


def simulate_reference(
    market: Market,
    sig: np.ndarray | None,
    s: dict[str, Any],
    tables: RefTables,
    *,
    start: int = 0,
    end: int | None = None,
    force_side: int = 0,
) -> RefResult:
    """Simulate one column. ``sig`` is ``(n_bars, 4)`` bool (long entry/exit, short entry/exit)
    or None; ``s`` holds resolved settings (numbers, codes as strings, NaN for off)."""
    n_bars = market.n_bars
    end = n_bars if end is None else end
    o, h, lo, c = market.open, market.high, market.low, market.close
    mo, mh, ml, mc = market.mark_open, market.mark_high, market.mark_low, market.mark_close
    # funding events at each bar's open time, and strictly inside the bar (coarse bars)
    fund = np.full(n_bars, math.nan)
    fund_in = np.full(n_bars, math.nan)
    for t_ns, rate in zip(market.funding_ts_ns, market.funding_rate, strict=True):
        k, off = divmod(int(t_ns) - int(market.ts_ns[0]), market.timeframe_ns)
        if 0 <= k < n_bars:
            arr = fund if off == 0 else fund_in
            arr[k] = rate if math.isnan(arr[k]) else arr[k] + rate
    lev, psize, cash = s["leverage"], s["position_size"], s["initial_cash"]
    sl_frac, tp_frac, trail = s["stop_loss"], s["take_profit"], s["trailing_stop"]
    taker, slip = s["taker_fee"], s["slippage"]
    isolated = s["margin_mode"] == "isolated"
    on_mark = s["stop_trigger"] == "mark"
    owed = s["negative_balance"] == "owed"
    conv = s["convention"]
    mmr_ovr = s["maint_margin_rate"]
    ruin_level = s["ruin_threshold"] * cash
    lp_py = formulas.liquidation_price_nb.py_func

    def liq_rate_at(t: int) -> float:
        v = s["liquidation_fee_rate"]
        return tables.liq_rates[t] if math.isnan(v) else v

    def lp_of(side: int, entry: float, size: float, margin: float, t: int) -> float:
        return lp_py(
            conv,
            side,
            entry,
            size,
            margin,
            0.0,
            0.0,
            tables.floors[t],
            tables.mmr[t],
            tables.mamt[t],
            tables.by_size[t],
            mmr_ovr,
            liq_rate_at(t),
        )

    out = RefResult()
    st = dict(
        final_equity=cash,
        max_drawdown=0.0,
        n_liquidations=0,
        first_liquidation_idx=-1,
        n_stops=0,
        n_take_profits=0,
        fees_paid=0.0,
        funding_paid=0.0,
        insurance_draw=0.0,
        min_liquidation_distance=math.nan,
        bars_in_market=0,
        n_bars=end - start,
        ambiguous_bars=0,
        ruined=0,
        ruin_idx=-1,
        n_trades=0,
        n_rejected=0,
        min_equity=cash,
        first_exit_idx=-1,
        first_exit_reason=0,
    )
    wallet = cash
    side, size, entry, margin, lp = 0, 0.0, 0.0, 0.0, math.nan
    sl_level = tp_level = peak = math.nan
    entry_wallet = trade_fees = trade_funding = entry_margin = 0.0
    entry_idx = -1
    pending = force_side  # 0 none, +-1 open that side, 2 close
    dead = ruined = False
    peak_equity = cash
    equity = cash
    cur_t = int(tables.table_idx[start])

    def record(idx: int, fill: float, reason: int) -> None:
        if st["n_trades"] == 0:
            st["first_exit_idx"] = idx
            st["first_exit_reason"] = reason
        st["n_trades"] += 1
        pnl = equity if reason in (ExitReason.HORIZON, ExitReason.END_OF_DATA) else wallet
        out.trades.append(
            RefTrade(
                idx,
                entry_idx,
                side,
                entry,
                fill,
                size,
                lev,
                entry_margin,
                trade_fees,
                trade_funding,
                pnl - entry_wallet,
                reason,
            )
        )

    def stop_level() -> tuple[float, int]:
        tl = peak * (1.0 - side * trail)
        if math.isnan(tl):
            return sl_level, ExitReason.STOP_LOSS
        if math.isnan(sl_level):
            return tl, ExitReason.TRAILING_STOP
        if side * (tl - sl_level) > 0.0:
            return tl, ExitReason.TRAILING_STOP
        return sl_level, ExitReason.STOP_LOSS

    for i in range(start, end):
        t = int(tables.table_idx[i])
        liq_rate = liq_rate_at(t)
        # 1. funding on the carried position, table changes
        need_lp = False
        if side != 0 and s["funding"] and not math.isnan(fund[i]):
            pay = side * size * mo[i] * fund[i]
            wallet -= pay
            if isolated:
                margin -= pay
            trade_funding += pay
            st["funding_paid"] += pay
            need_lp = True
        if t != cur_t:
            cur_t = t
            need_lp = side != 0
        if need_lp:
            lp = lp_of(side, entry, size, margin if isolated else wallet, t)
        # 2. pending orders at the open
        if pending != 0:
            if side != 0 and (pending == 2 or pending == -side):
                fill = o[i] * (1.0 - side * slip)
                r, f, ins, _ = _settle(
                    side, size, entry, fill, taker, margin if isolated else wallet, False, owed
                )
                wallet += r
                trade_fees += f
                st["fees_paid"] += f
                st["insurance_draw"] += ins
                record(i, fill, ExitReason.SIGNAL)
                side, size = 0, 0.0
            if pending != 2 and side == 0:
                want = pending
                if dead or ruined:
                    st["n_rejected"] += 1
                else:
                    margin_t = psize * wallet
                    cost = 1.0 + lev * taker  # the order costs margin + fee: leverage stays exact
                    fill = o[i] * (1.0 + want * slip)
                    if margin_t * cost > wallet:
                        # the whole wallet: the margin is what is left after the fee, exactly
                        margin_t = wallet / cost
                        fee = wallet - margin_t
                        left_after = margin_t
                    else:
                        fee = margin_t * lev * taker
                        left_after = wallet - fee
                    notional = margin_t * lev
                    size_t = notional / fill
                    # the exchange's limits: the tier holding the position (caps inclusive)
                    # must allow the leverage, and nothing is allowed past the last cap
                    key = size_t if tables.by_size[t] else notional
                    tier = 0
                    for k, floor in enumerate(tables.floors[t]):
                        if floor < key:
                            tier = k
                    # a flat maintenance rate (mmr_ovr) replaces the tiers: no cap then
                    cap = tables.cap_of(t) if math.isnan(mmr_ovr) else math.inf
                    ok = (
                        margin_t > 0.0
                        and size_t > 0.0
                        and key <= cap
                        and tables.maxlev[t][tier] >= lev
                    )
                    if ok:  # not liquidatable at its own entry price
                        lp_t = lp_of(want, fill, size_t, margin_t if isolated else left_after, t)
                        ok = want * (fill - lp_t) > 0.0
                    if not ok:
                        st["n_rejected"] += 1
                    else:
                        entry_wallet = wallet
                        wallet = left_after
                        st["fees_paid"] += fee
                        side, size, entry = want, size_t, fill
                        margin = margin_t if isolated else wallet
                        entry_margin = margin
                        entry_idx = i
                        trade_fees, trade_funding = fee, 0.0
                        peak = fill
                        sl_level = fill * (1.0 - side * sl_frac)
                        tp_level = fill * (1.0 + side * tp_frac)
                        lp = lp_of(side, entry, size, margin if isolated else wallet, t)
            pending = 0
        # 1b. events inside the bar: paid by the position held after the open's fills
        if side != 0 and s["funding"] and not math.isnan(fund_in[i]):
            pay = side * size * mo[i] * fund_in[i]
            wallet -= pay
            if isolated:
                margin -= pay
            trade_funding += pay
            st["funding_paid"] += pay
            lp = lp_of(side, entry, size, margin if isolated else wallet, t)
        # 3./4. gaps at the open, then inside the bar
        if side != 0:
            st["bars_in_market"] += 1
            t_hi, t_lo = (mh[i], ml[i]) if on_mark else (h[i], lo[i])
            m_adv = ml[i] if side > 0 else mh[i]
            t_fav = t_hi if side > 0 else t_lo
            gap_lp = side * (m_adv - lp)
            dist = gap_lp / m_adv if gap_lp > 0.0 else 0.0
            md = st["min_liquidation_distance"]
            if math.isnan(md) or gap_lp < md * m_adv:
                st["min_liquidation_distance"] = dist
            stop, stop_reason = stop_level()
            cap = margin if isolated else wallet
            found = exit_of_bar(market, s, i, side, size, entry, cap, lp, stop, tp_level, liq_rate)
            if found is not None:
                chosen, (r, f, ins, closed_at), ambiguous = found
                if ambiguous:
                    st["ambiguous_bars"] += 1
                wallet += r
                trade_fees += f
                st["fees_paid"] += f
                st["insurance_draw"] += ins
                if chosen == "liq":
                    reason: int = ExitReason.LIQUIDATION
                    if st["n_liquidations"] == 0:
                        st["first_liquidation_idx"] = i
                    st["n_liquidations"] += 1
                    st["min_liquidation_distance"] = 0.0
                    dead = dead or s["after_liquidation"] == "stop"
                elif chosen == "stop":
                    reason = stop_reason
                    st["n_stops"] += 1
                else:
                    reason = ExitReason.TAKE_PROFIT
                    st["n_take_profits"] += 1
                record(i, closed_at, reason)
                side, size = 0, 0.0
            elif not math.isnan(trail) and side * (t_fav - peak) > 0.0:
                peak = t_fav
        # 5. close
        upnl = side * size * (mc[i] - entry) if side != 0 else 0.0
        equity = wallet + upnl
        if equity < ruin_level and not ruined:
            ruined = True
            st["ruined"] = 1
            st["ruin_idx"] = i
            if side != 0:
                fill = c[i] * (1.0 - side * slip)
                r, f, ins, _ = _settle(
                    side, size, entry, fill, taker, margin if isolated else wallet, False, owed
                )
                wallet += r
                trade_fees += f
                st["fees_paid"] += f
                st["insurance_draw"] += ins
                record(i, fill, ExitReason.RUIN)
                side, size = 0, 0.0
                upnl = 0.0
                equity = wallet
        if equity > peak_equity:
            peak_equity = equity
        elif peak_equity > 0.0 and equity < peak_equity * (1.0 - st["max_drawdown"]):
            st["max_drawdown"] = (peak_equity - equity) / peak_equity
        st["min_equity"] = min(st["min_equity"], equity)
        out.equity.append(equity)
        out.wallet.append(wallet)
        out.upnl.append(upnl)
        out.position.append(side * size)
        # 6. signals
        if sig is not None and i + 1 < end:
            le, lx, se, sx = (bool(sig[i, k]) for k in range(4))
            if side == 0:
                if le and not se and not lx:
                    pending = 1
                elif se and not le and not sx:
                    pending = -1
            elif side > 0:
                if se and not sx:
                    pending = -1
                elif lx:
                    pending = 2
            elif le and not lx:
                pending = 1
            elif sx:
                pending = 2
    if side != 0:
        reason = ExitReason.HORIZON if end < n_bars else ExitReason.END_OF_DATA
        record(end - 1, mc[end - 1], reason)
    st["final_equity"] = equity
    out.stats = st
    return out


def exit_of_bar(
    market: Market,
    s: dict[str, Any],
    i: int,
    side: int,
    size: float,
    entry: float,
    cap: float,
    lp: float,
    stop: float,
    tp_level: float,
    liq_rate: float,
) -> tuple[str, tuple[float, float, float, float], bool] | None:
    """Steps 3-4 of a single position in bar ``i``: the exit that happens, if any.

    Returns ``(kind, (wallet change, fee, insurance, close price), ambiguous)`` with kind
    ``"liq"``, ``"stop"`` or ``"tp"``; ``cap`` is what the position can lose (its isolated margin,
    or the wallet). Also an isolated account leg's exit rule (one position on its own margin).
    """
    o, h, lo = market.open, market.high, market.low
    mo, mh, ml = market.mark_open, market.mark_high, market.mark_low
    on_mark = s["stop_trigger"] == "mark"
    slip, taker, maker = s["slippage"], s["taker_fee"], s["maker_fee"]
    take_all = s["close_at"] == "bankruptcy"
    owed = s["negative_balance"] == "owed"
    policy = s["intrabar"]
    t_open, t_hi, t_lo = (mo[i], mh[i], ml[i]) if on_mark else (o[i], h[i], lo[i])
    m_adv = ml[i] if side > 0 else mh[i]
    t_adv = t_lo if side > 0 else t_hi
    t_fav = t_hi if side > 0 else t_lo
    cand: dict[str, float] = {}
    if side * (mo[i] - lp) <= 0.0:
        cand["liq"] = mo[i]
    if side * (t_open - stop) <= 0.0:
        cand["stop"] = o[i] * (1.0 - side * slip)
    if side * (t_open - tp_level) >= 0.0:
        cand["tp"] = o[i]
    if not cand:
        liq_hit = side * (m_adv - lp) <= 0.0
        stop_hit = side * (t_adv - stop) <= 0.0
        tp_hit = side * (t_fav - tp_level) >= 0.0
        if on_mark and liq_hit and stop_hit:
            if side * (stop - lp) > 0.0:
                liq_hit = False
            else:
                stop_hit = False
        if liq_hit:
            cand["liq"] = lp
        if stop_hit:
            cand["stop"] = stop * (1.0 - side * slip)
        if tp_hit:
            cand["tp"] = tp_level
        if len(cand) > 1 and policy == "detail" and market.detail is not None:
            cand = _walk_detail(market, i, side, lp, stop, tp_level, on_mark, slip, cand)
    if "liq" in cand and "stop" in cand and cap + side * size * (cand["stop"] - entry) < 0:
        del cand["stop"]  # a stop beyond the bankruptcy price cannot precede the liquidation
    if not cand:
        return None
    outcomes = {}
    for kind, fill in cand.items():
        if kind == "liq":
            outcomes[kind] = _settle(side, size, entry, fill, liq_rate, cap, take_all, owed)
        elif kind == "stop":
            outcomes[kind] = _settle(side, size, entry, fill, taker, cap, False, owed)
        else:
            outcomes[kind] = _settle(side, size, entry, fill, maker, cap, False, owed)
    chosen = None
    for kind in ("liq", "stop", "tp"):
        if kind not in outcomes:
            continue
        if (
            chosen is None
            or (policy == "best" and outcomes[kind][0] > outcomes[chosen][0])
            or (policy != "best" and outcomes[kind][0] < outcomes[chosen][0])
        ):
            chosen = kind
    assert chosen is not None
    return chosen, outcomes[chosen], len(cand) > 1


def _walk_detail(
    market: Market,
    i: int,
    side: int,
    lp: float,
    stop: float,
    tp: float,
    on_mark: bool,
    slip: float,
    coarse: dict[str, float],
) -> dict[str, float]:
    d = market.detail
    assert d is not None
    t0 = market.ts_ns[i]
    t1 = t0 + market.timeframe_ns
    off_lo = market.mark_low[i] - market.low[i]
    off_hi = market.mark_high[i] - market.high[i]
    for j in np.nonzero((d.ts_ns >= t0) & (d.ts_ns < t1))[0]:
        ml_adv = d.low[j] + off_lo if side > 0 else d.high[j] + off_hi
        if on_mark:
            t_open = d.open[j] + (off_lo if side > 0 else off_hi)
            t_adv = ml_adv
            t_fav = d.high[j] + off_hi if side > 0 else d.low[j] + off_lo
        else:
            t_open = d.open[j]
            t_adv = d.low[j] if side > 0 else d.high[j]
            t_fav = d.high[j] if side > 0 else d.low[j]
        liq = side * (ml_adv - lp) <= 0.0
        st = side * (t_adv - stop) <= 0.0
        tp_hit = side * (t_fav - tp) >= 0.0
        if on_mark and liq and st:
            if side * (stop - lp) > 0.0:
                liq = False
            else:
                st = False
        if liq or st or tp_hit:
            out: dict[str, float] = {}
            if liq:
                out["liq"] = lp
            if st:
                out["stop"] = (
                    d.open[j] * (1.0 - side * slip)
                    if side * (t_open - stop) <= 0.0
                    else stop * (1.0 - side * slip)
                )
            if tp_hit:
                out["tp"] = d.open[j] if side * (t_open - tp) >= 0.0 else tp
            return out
    return coarse
