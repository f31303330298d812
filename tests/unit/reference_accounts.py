"""Pure-Python reference of the account engine (docs/reference/exchange-rules.md §7.4, §7.6).

An independent, slow reading of the rules that ``backtester.engine.accounts`` implements:

- **isolated** (§7.4): the legs run side by side, each exactly the single-position rule at
  ``position_size·|w_k|``, so this reference is the single-position reference
  (``tests.unit.reference.simulate_reference``) run once per leg, the wallets added up.
- **cross** (§7.6): written here from the rule, not from the kernel: the account's maintenance
  test ``WB + Σ UPNL_k − Σ MM_k`` is evaluated directly (every leg's MM valued by its own
  convention and table), first with every leg at its mark open, then with every leg at its
  adverse mark extreme; the leg that "crossed" is the first whose own move alone (the others
  at their adverse extremes) takes the account from safe at its open to liquidated at its
  extreme, and it exits at the published cross liquidation price (§7.1: the others' MM and
  UPNL in the single-position formula), the others at their extremes. Each leg's own stop,
  trailing stop and take-profit are the single-position rules on the leg's own entry price;
  ``worst`` keeps the lowest wallet change among what triggered in a bar. ``detail``: when the
  bar is ambiguous the legs' lower-timeframe bars that share one time are walked in time order
  and the first in which anything triggers is judged by the same rules.

Signal-driven accounts (``simulate_account_signals_reference``): cross is the cross rule above
with orders; isolated (``_isolated_signals``) is K single positions on one wallet, each leg's
exits the single-position reference's (``tests.unit.reference.exit_of_bar``) on its own margin.

Per leg the reference also gives the exit bar, reason and the leg's share of the wallet change
(``legs``: ``LegRef`` per leg), a cross liquidation's settlement shared out as each leg's PnL
at its fill less its part of the clearance fee, and the rest pro rata to the legs' maintenance
margins at the fills.

``near`` in the result is the smallest |test| / notional seen on a deciding comparison: two
correct implementations may round a test that sits exactly on the boundary differently, so the
property test skips draws with ``near < 1e-9``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backtester.engine.enums import ExitReason
from backtester.market import Market
from backtester.rules import formulas
from tests.unit.reference import RefTables, _settle, exit_of_bar, simulate_reference


@dataclass
class LegRef:
    exit_idx: int = -1
    reason: int = int(ExitReason.NONE)
    pnl: float = 0.0
    fees: float = 0.0
    funding: float = 0.0


@dataclass
class AccountRef:
    final_equity: float
    min_equity: float
    exit_idx: int
    reason: int
    liq_idx: int
    liq_leg: int
    fees: float
    funding: float
    insurance: float
    ambiguous: int
    rejected: bool
    near: float = math.inf
    legs: list[LegRef] = field(default_factory=list)
    # signal-driven accounts: every leg position (leg, entry bar, exit bar, side, pnl, fees,
    # funding, reason), refused leg entries, liquidations, close equity per bar
    trades: list[tuple[int, int, int, int, float, float, float, int]] = field(default_factory=list)
    n_rejected: int = 0
    n_liquidations: int = 0
    equity: list[float] = field(default_factory=list)


def _untouched(cash: float, n_legs: int, *, rejected: bool) -> AccountRef:
    # an account before its first bar (or refused at entry): the wallet, no exit, no money moved
    return AccountRef(
        cash, cash, -1, int(ExitReason.NONE), -1, -1, 0.0, 0.0, 0.0, 0, rejected,
        legs=[LegRef() for _ in range(n_legs)],
    )  # fmt: skip


def _tier(value: float, floors: np.ndarray) -> int:
    # caps inclusive: the last tier whose floor is strictly below the value (tier 0 at 0)
    k = 0
    for j in range(1, len(floors)):
        if floors[j] < value:
            k = j
    return k


def _funding_arrays(m: Market) -> tuple[np.ndarray, np.ndarray]:
    n = m.n_bars
    at_open = np.full(n, math.nan)
    inside = np.full(n, math.nan)
    for t_ns, rate in zip(m.funding_ts_ns, m.funding_rate, strict=True):
        k, off = divmod(int(t_ns) - int(m.ts_ns[0]), m.timeframe_ns)
        if 0 <= k < n:
            arr = at_open if off == 0 else inside
            arr[k] = rate if math.isnan(arr[k]) else arr[k] + rate
    return at_open, inside


def _order_margins(
    order: list[int],
    weights: list[float],
    wallet: float,
    open_margins: dict[int, float],
    s: dict[str, Any],
) -> tuple[dict[int, float], dict[int, float]]:
    """The margin and fee of each leg entering together at one open (docs/design.md §3).

    ``position_size·|w|·wallet`` each; when that costs more than the free balance (the wallet
    less the open legs' margins, nothing when it is 1e-9 of the wallet or less) the free balance
    is shared by |w| after the fees, the last leg's fee being what is left.
    """
    lev, taker = s["leverage"], s["taker_fee"]
    cost = 1.0 + lev * taker
    free = wallet
    if open_margins:
        free = wallet - sum(open_margins.values())
        if free <= wallet * 1e-9:
            free = 0.0
    w_abs = {k: abs(weights[k]) for k in order}
    margins = {k: s["position_size"] * w_abs[k] * wallet for k in order}
    if sum(m * cost for m in margins.values()) <= free:
        return margins, {k: margins[k] * lev * taker for k in order}
    margins = {k: free * (w_abs[k] / sum(w_abs.values())) / cost for k in order}
    fees = {k: margins[k] * lev * taker for k in order}
    fees[order[-1]] = free - sum(margins.values()) - sum(fees[k] for k in order[:-1])
    return margins, fees


def _fill(m: Market, i: int, sd: int, margin: float, s: dict[str, Any]) -> tuple[int, float, float]:
    # an entry at bar i's open: (side, size, fill price), the last open moved by the slippage
    fill = m.open[i] * (1.0 + sd * s["slippage"])
    return sd, margin * s["leverage"] / fill, fill


def _tiers_allow(tab: RefTables, t: int, q: float, margin: float, s: dict[str, Any]) -> bool:
    # an order the exchange accepts: a size, within the last cap, the tier allows the leverage
    notional = margin * s["leverage"]
    key = q if tab.by_size[t] else notional
    cap = tab.cap_of(t) if math.isnan(s["maint_margin_rate"]) else math.inf
    return (
        margin > 0.0
        and q > 0.0
        and key <= cap
        and tab.maxlev[t][_tier(key, tab.floors[t])] >= s["leverage"]
    )


def simulate_account_reference(
    markets: list[Market],
    weights: list[float],
    s: dict[str, Any],
    tables: list[RefTables],
    *,
    start: int,
    end: int,
) -> AccountRef:
    """One account column over ``[start, end)``; ``s`` as for ``simulate_reference``."""
    if s["margin_mode"] == "isolated":
        return _isolated(markets, weights, s, tables, start, end)
    return _cross(markets, weights, s, tables, start, end)


def simulate_account_signals_reference(
    markets: list[Market],
    weights: list[float],
    s: dict[str, Any],
    tables: list[RefTables],
    signals: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
) -> AccountRef:
    """A signal-driven account over every bar (docs/design.md §3, accounts).

    ``signals[k]`` is leg k's ``(long_entries, long_exits, short_entries, short_exits)``, each
    ``(n_bars,)`` bool. Written from the documented rule: a signal at the close of bar i is an
    order at the open of bar i+1 (the single-position rule 6, on the leg's signal side = its side
    times the sign of its weight); at an open the signal exits fill first (the last open against
    the leg by the slippage, taker fee, the wallet as the cap), then the legs entering together
    are one order: margin ``position_size·|w|·wallet``, and when the free balance (the wallet less
    the open legs' margins; 1e-9 of the wallet or less is nothing) cannot pay every margin and
    fee, the margins shrink to ``free·(|w|/Σ|w| entering)/(1 + leverage·taker)``, the last
    entering leg's fee being what is left; refused together (tiers, cap, the account's
    maintenance test with the new legs at their fills and the open ones at their mark opens).
    An isolated account (``_isolated_signals``) sizes its orders by the same rule; each leg is
    then a single position on its own margin.
    """
    if s["margin_mode"] == "isolated":
        return _isolated_signals(markets, weights, s, tables, signals)
    return _cross(markets, weights, s, tables, 0, markets[0].n_bars, signals=signals)


def _order(ss: int, le: bool, lx: bool, se: bool, sx: bool, pending: int) -> int:
    # rule 6 of engine.kernel (docs): the order the bar's signals leave for the next open, given
    # the signal side held (0 flat); 2 = close
    if ss == 0:
        if le and not se and not lx:
            return 1
        if se and not le and not sx:
            return -1
    elif ss > 0:
        if se and not sx:
            return -1
        if lx:
            return 2
    elif le and not lx:
        return 1
    elif sx:
        return 2
    return pending


@dataclass
class _Leg:
    """An open leg of an isolated account: a single position on its own margin."""

    side: int
    size: float
    entry: float
    margin: float
    opened: int
    sl: float
    tp: float
    peak: float


def _isolated_signals(
    markets: list[Market],
    weights: list[float],
    s: dict[str, Any],
    tables: list[RefTables],
    signals: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
) -> AccountRef:
    """A signal-driven isolated account (§7.4), written from the rules.

    One wallet, K single positions: each leg's funding comes off the wallet and off its margin,
    each leg liquidates on its own mark against the liquidation price of its own margin and
    table in force (recomputed here from the leg's state every bar), its stop, trailing stop and
    take-profit are the single-position rules (``tests.unit.reference.exit_of_bar``), and what a
    leg can lose (an exit, a signal close, a ruin close) is capped by its margin. Orders: as for
    the cross account (``_order``, ``_order_margins``), an entering leg accepted when the tiers
    allow it and it is not liquidatable at its own fill on its own margin.
    """
    n_legs, n_bars = len(markets), markets[0].n_bars
    cash, slip, taker = s["initial_cash"], s["slippage"], s["taker_fee"]
    sl_frac, tp_frac, trail = s["stop_loss"], s["take_profit"], s["trailing_stop"]
    ruin_level = s["ruin_threshold"] * cash
    owed = s["negative_balance"] == "owed"
    on_mark = s["stop_trigger"] == "mark"
    fund = [_funding_arrays(m) for m in markets]
    lp_py = formulas.liquidation_price_nb.py_func
    wsign = [1 if w > 0 else -1 for w in weights]
    res = _untouched(cash, n_legs, rejected=False)
    wallet = equity = cash
    legs: dict[int, _Leg] = {}
    pend = [0] * n_legs
    dead = ruined = False

    def rate(k: int, i: int) -> float:
        v = s["liquidation_fee_rate"]
        return tables[k].liq_rates[int(tables[k].table_idx[i])] if math.isnan(v) else v

    def lp_of(k: int, i: int, sd: int, ep: float, q: float, margin: float) -> float:
        tab, t = tables[k], int(tables[k].table_idx[i])
        return float(
            lp_py(
                s["convention"], sd, ep, q, margin, 0.0, 0.0, tab.floors[t], tab.mmr[t],
                tab.mamt[t], tab.by_size[t], s["maint_margin_rate"], rate(k, i),
            )
        )  # fmt: skip

    def stop_of(leg: _Leg) -> tuple[float, int]:
        tl = leg.peak * (1.0 - leg.side * trail)
        if math.isnan(tl):
            return leg.sl, int(ExitReason.STOP_LOSS)
        if math.isnan(leg.sl) or leg.side * (tl - leg.sl) > 0.0:
            return tl, int(ExitReason.TRAILING_STOP)
        return leg.sl, int(ExitReason.STOP_LOSS)

    def pay_funding(i: int, which: int) -> None:
        nonlocal wallet
        for k, leg in legs.items():
            r = fund[k][which][i]
            if s["funding"] and not math.isnan(r):
                pay = leg.side * leg.size * markets[k].mark_open[i] * r
                wallet -= pay
                leg.margin -= pay
                res.funding += pay
                res.legs[k].funding += pay
                res.legs[k].pnl -= pay

    def close(k: int, i: int, reason: int, out: tuple[float, float, float, float]) -> None:
        nonlocal wallet
        r, f, ins, _px = out
        wallet += r
        res.fees += f
        res.insurance += ins
        lr = res.legs[k]
        lr.exit_idx, lr.reason = i, reason
        lr.pnl += r
        lr.fees += f

    def record(k: int, leg: _Leg) -> None:
        lr = res.legs[k]
        res.trades.append(
            (k, leg.opened, lr.exit_idx, leg.side, lr.pnl, lr.fees, lr.funding, lr.reason)
        )

    for i in range(n_bars):
        pay_funding(i, 0)
        enter: dict[int, int] = {}
        for k in range(n_legs):
            p, pend[k] = pend[k], 0
            if p == 0:
                continue
            leg = legs.get(k)
            if leg is not None and (p == 2 or p == -leg.side * wsign[k]):
                fill = markets[k].open[i] * (1.0 - leg.side * slip)
                out = _settle(leg.side, leg.size, leg.entry, fill, taker, leg.margin, False, owed)
                close(k, i, int(ExitReason.SIGNAL), out)
                record(k, leg)
                del legs[k]
            if p != 2 and k not in legs:
                if dead or ruined:
                    res.n_rejected += 1
                else:
                    enter[k] = p * wsign[k]
        if enter:
            order = sorted(enter)
            margins, fees = _order_margins(
                order, weights, wallet, {k: leg.margin for k, leg in legs.items()}, s
            )
            new = {k: _fill(markets[k], i, enter[k], margins[k], s) for k in order}
            ok = all(
                _tiers_allow(tables[k], int(tables[k].table_idx[i]), new[k][1], margins[k], s)
                # not liquidatable at its own fill, on its own margin
                and sd * (ep - lp_of(k, i, sd, ep, q, margins[k])) > 0.0
                for k, (sd, q, ep) in new.items()
            )
            if not ok:
                res.n_rejected += len(order)
            else:
                wallet -= sum(fees.values())
                res.fees += sum(fees.values())
                for k, (sd, q, ep) in new.items():
                    legs[k] = _Leg(
                        sd, q, ep, margins[k], i, ep * (1.0 - sd * sl_frac),
                        ep * (1.0 + sd * tp_frac), ep,
                    )  # fmt: skip
                    res.legs[k] = LegRef(pnl=-fees[k], fees=fees[k])
        pay_funding(i, 1)

        closed: list[tuple[int, _Leg]] = []
        for k in sorted(legs):
            leg = legs[k]
            m = markets[k]
            stop, stop_reason = stop_of(leg)
            lp = lp_of(k, i, leg.side, leg.entry, leg.size, leg.margin)
            found = exit_of_bar(
                m, s, i, leg.side, leg.size, leg.entry, leg.margin, lp, stop, leg.tp, rate(k, i)
            )
            if found is None:
                hi, lo = (m.mark_high[i], m.mark_low[i]) if on_mark else (m.high[i], m.low[i])
                t_fav = hi if leg.side > 0 else lo
                if not math.isnan(trail) and leg.side * (t_fav - leg.peak) > 0.0:
                    leg.peak = t_fav
                continue
            kind, out, ambiguous = found
            res.ambiguous += int(ambiguous)
            if kind == "liq":
                why = int(ExitReason.LIQUIDATION)
                res.n_liquidations += 1
                if res.liq_idx < 0:
                    res.liq_idx, res.liq_leg = i, k
            else:
                why = stop_reason if kind == "stop" else int(ExitReason.TAKE_PROFIT)
            close(k, i, why, out)
            closed.append((k, legs.pop(k)))

        upnl = sum(
            leg.side * leg.size * (markets[k].mark_close[i] - leg.entry) for k, leg in legs.items()
        )
        equity = wallet + upnl
        if legs and equity < ruin_level:
            for k in sorted(legs):
                leg = legs[k]
                fill = markets[k].close[i] * (1.0 - leg.side * slip)
                out = _settle(leg.side, leg.size, leg.entry, fill, taker, leg.margin, False, owed)
                close(k, i, int(ExitReason.RUIN), out)
                closed.append((k, legs.pop(k)))
            equity = wallet
            ruined = True
        res.min_equity = min(res.min_equity, equity)
        for k, leg in sorted(closed, key=lambda kl: kl[0]):
            record(k, leg)
        if s.get("after_liquidation") == "stop" and res.liq_idx >= 0:
            dead = True
        res.equity.append(equity)
        if i + 1 < n_bars:
            for k in range(n_legs):
                le, lx, se, sx = (bool(a[i]) for a in signals[k])
                if le or lx or se or sx:
                    ss = legs[k].side * wsign[k] if k in legs else 0
                    pend[k] = _order(ss, le, lx, se, sx, pend[k])
    for k in sorted(legs):
        leg = legs[k]
        lr = res.legs[k]
        lr.exit_idx, lr.reason = n_bars - 1, int(ExitReason.END_OF_DATA)
        lr.pnl += leg.side * leg.size * (markets[k].mark_close[n_bars - 1] - leg.entry)
        record(k, leg)
    res.final_equity = equity
    return res


def _isolated(
    markets: list[Market],
    weights: list[float],
    s: dict[str, Any],
    tables: list[RefTables],
    start: int,
    end: int,
) -> AccountRef:
    cash = s["initial_cash"]
    runs = []
    cost = 1.0 + s["leverage"] * s["taker_fee"]
    w_sum = sum(abs(w) for w in weights)
    # the account's orders cost more than the wallet: every margin shrinks in proportion
    all_in = sum(s["position_size"] * abs(w) * cash * cost for w in weights) > cash
    for m, w, tab in zip(markets, weights, tables, strict=True):
        share = abs(w) / w_sum / cost if all_in else s["position_size"] * abs(w)
        leg = dict(s, position_size=share)
        runs.append(
            simulate_reference(
                m, None, leg, tab, start=start, end=end, force_side=1 if w > 0 else -1
            )
        )
    if any(r.stats["n_rejected"] > 0 for r in runs):
        return _untouched(cash, len(runs), rejected=True)
    equity = [cash + sum(r.equity[j] - cash for r in runs) for j in range(end - start)]
    final = cash + sum(r.stats["final_equity"] - cash for r in runs)
    # the first leg to close; a leg censored at the window's end comes after a real exit there
    censored = (int(ExitReason.HORIZON), int(ExitReason.END_OF_DATA))
    exits = [
        (r.stats["first_exit_idx"], int(r.stats["first_exit_reason"]) in censored, k)
        for k, r in enumerate(runs)
    ]
    first_idx, _, first_leg = min(exits)
    liq = [(r.stats["first_liquidation_idx"], k) for k, r in enumerate(runs)]
    liq = [x for x in liq if x[0] >= 0]
    liq_idx, liq_leg = min(liq) if liq else (-1, -1)
    return AccountRef(
        final_equity=final,
        min_equity=min([cash, *equity]),
        exit_idx=int(first_idx),
        reason=int(runs[first_leg].stats["first_exit_reason"]),
        liq_idx=int(liq_idx),
        liq_leg=int(liq_leg),
        fees=sum(r.stats["fees_paid"] for r in runs),
        funding=sum(r.stats["funding_paid"] for r in runs),
        insurance=sum(r.stats["insurance_draw"] for r in runs),
        ambiguous=int(sum(r.stats["ambiguous_bars"] for r in runs)),
        rejected=False,
        legs=[
            LegRef(t.idx, int(t.exit_reason), t.pnl, t.fees, t.funding)
            for t in (r.trades[0] for r in runs)
        ],
    )


Legs = dict[int, tuple[int, float, float]]  # leg -> (side, size, entry price)


@dataclass
class _Bar:
    """One leg's values in a (coarse or detail) bar."""

    mo: float  # mark open
    madv: float  # mark adverse / favourable extreme
    mfav: float
    to: float  # trigger price open, adverse and favourable extreme
    tadv: float
    tfav: float
    op: float  # last open


def _coarse(m: Market, i: int, sd: int, on_mark: bool) -> _Bar:
    lo, hi = (m.mark_low[i], m.mark_high[i]) if sd > 0 else (m.mark_high[i], m.mark_low[i])
    if on_mark:
        return _Bar(m.mark_open[i], lo, hi, m.mark_open[i], lo, hi, m.open[i])
    t_lo, t_hi = (m.low[i], m.high[i]) if sd > 0 else (m.high[i], m.low[i])
    return _Bar(m.mark_open[i], lo, hi, m.open[i], t_lo, t_hi, m.open[i])


def _detail_rows(m: Market, i: int) -> dict[int, int]:
    # time -> row of the market's detail bars inside bar i
    d = m.detail
    if d is None:
        return {}
    t0 = int(m.ts_ns[i])
    t1 = t0 + m.timeframe_ns
    return {int(d.ts_ns[j]): int(j) for j in np.nonzero((d.ts_ns >= t0) & (d.ts_ns < t1))[0]}


def _detail(m: Market, i: int, j: int, sd: int, on_mark: bool) -> _Bar:
    # the detail last path; the mark path is it shifted by the bar's basis at its extremes
    d = m.detail
    assert d is not None
    up = m.mark_high[i] - m.high[i]
    down = m.mark_low[i] - m.low[i]
    o, h, lo = d.open[j], d.high[j], d.low[j]
    if sd > 0:
        mo, madv, mfav = o + down, lo + down, h + up
        t = (o, lo, h)
    else:
        mo, madv, mfav = o + up, h + up, lo + down
        t = (o, h, lo)
    if on_mark:
        return _Bar(mo, madv, mfav, mo, madv, mfav, o)
    return _Bar(mo, madv, mfav, t[0], t[1], t[2], o)


@dataclass
class _Outcome:
    n_trig: int = 0  # exits that triggered (the liquidation, each stop, each take-profit)
    n_hit: int = 0  # after dropping stops beyond bankruptcy
    liq: bool = False
    use_liq: bool = False
    decided: bool = False  # the liquidation holds only with the extremes simultaneous
    at_open: bool = False
    fills: dict[int, float] = field(default_factory=dict)
    liq_out: tuple[float, float, float] = (0.0, 0.0, 0.0)
    exits: dict[int, tuple[str, float, tuple[float, float, float, float]]] = field(
        default_factory=dict
    )


def _cross(
    markets: list[Market],
    weights: list[float],
    s: dict[str, Any],
    tables: list[RefTables],
    start: int,
    end: int,
    signals: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None = None,
) -> AccountRef:
    n_legs = len(markets)
    n_bars = markets[0].n_bars
    cash = s["initial_cash"]
    taker, maker, slip = s["taker_fee"], s["maker_fee"], s["slippage"]
    sl_frac, tp_frac, trail = s["stop_loss"], s["take_profit"], s["trailing_stop"]
    conv, ovr = s["convention"], s["maint_margin_rate"]
    on_mark = s["stop_trigger"] == "mark"
    take_all = s["close_at"] == "bankruptcy"
    owed = s["negative_balance"] == "owed"
    walk = s["intrabar"] == "detail"
    ruin_level = s["ruin_threshold"] * cash
    fund = [_funding_arrays(m) for m in markets]
    lp_py = formulas.liquidation_price_nb.py_func

    def table(k: int, i: int) -> int:
        return int(tables[k].table_idx[i])

    def rate(k: int, i: int) -> float:
        v = s["liquidation_fee_rate"]
        return tables[k].liq_rates[table(k, i)] if math.isnan(v) else v

    def mm(k: int, i: int, qty: float, ep: float, price: float) -> float:
        # §7.6.1: Binance N·MMR − cum at mark; OKX N·(MMR + f) at mark, no amount; Bybit at entry
        tab, t = tables[k], table(k, i)
        value = float(qty * (ep if conv == 2 else price))
        if not math.isnan(ovr):
            base = value * ovr
        else:
            j = _tier(qty if tab.by_size[t] else value, tab.floors[t])
            base = value * tab.mmr[t][j] - (0.0 if conv == 1 else tab.mamt[t][j])
        return float(base + (value * rate(k, i) if conv == 1 else 0.0))

    def test(i: int, wallet: float, legs: Legs, px: dict[int, float]) -> float:
        # margin balance minus maintenance margin, every open leg at px
        total = wallet
        for k, (sd, q, ep) in legs.items():
            total += sd * q * (px[k] - ep) - mm(k, i, q, ep, px[k])
        return total

    def scale(legs: Legs, px: dict[int, float]) -> float:
        return sum(q * px[k] for k, (_sd, q, _ep) in legs.items())

    def solved(i: int, k: int, wallet: float, legs: Legs, px: dict[int, float]) -> float:
        # §7.1's cross liquidation price of leg k with the other legs held at px
        o_mm = sum(mm(j, i, q, ep, px[j]) for j, (_sd, q, ep) in legs.items() if j != k)
        o_up = sum(sd * q * (px[j] - ep) for j, (sd, q, ep) in legs.items() if j != k)
        tab, t = tables[k], table(k, i)
        sd, q, ep = legs[k]
        return float(
            lp_py(
                conv,
                sd,
                ep,
                q,
                wallet,
                o_mm,
                o_up,
                tab.floors[t],
                tab.mmr[t],
                tab.mamt[t],
                tab.by_size[t],
                ovr,
                rate(k, i),
            )
        )

    def settle(
        sd: int, q: float, ep: float, f: float, fee_rate: float, wallet: float
    ) -> tuple[float, float, float, float]:
        # a leg exit on the shared wallet: (wallet change, fee, insurance, exit price)
        pnl = sd * q * (f - ep)
        left = wallet + pnl
        fee = q * f * fee_rate
        if left < 0.0:
            return (pnl, 0.0, 0.0, f) if owed else (-wallet, 0.0, -left, f)
        if fee >= left:
            return (-wallet, left, 0.0, f)
        return (max(pnl - fee, -wallet), fee, 0.0, f)

    res = _untouched(cash, len(markets), rejected=False)
    wallet = cash
    legs: Legs = {}
    by_sig = signals is not None
    pend = [0] * n_legs
    wsign = [1 if w > 0 else -1 for w in weights]
    opened: dict[int, int] = {}  # leg -> entry bar
    margin_of: dict[int, float] = {}
    stop_after_liq = s.get("after_liquidation") == "stop"
    dead = ruined = False

    def record(k: int) -> None:
        lr = res.legs[k]
        side_k = legs_side[k]
        res.trades.append(
            (k, opened[k], lr.exit_idx, side_k, lr.pnl, lr.fees, lr.funding, lr.reason)
        )

    legs_side: dict[int, int] = {}
    sls: dict[int, float] = {}
    tps: dict[int, float] = {}
    peaks: dict[int, float] = {}
    equity = cash

    def level(k: int) -> tuple[float, int]:
        # the tighter of the leg's stop-loss and trailing stop
        sd = legs[k][0]
        tl = peaks[k] * (1.0 - sd * trail)
        if math.isnan(tl):
            return sls[k], int(ExitReason.STOP_LOSS)
        if math.isnan(sls[k]) or sd * (tl - sls[k]) > 0.0:
            return tl, int(ExitReason.TRAILING_STOP)
        return sls[k], int(ExitReason.STOP_LOSS)

    def judge(i: int, bars: dict[int, _Bar], open_phase: bool) -> _Outcome:
        oc = _Outcome()
        stops = {k: level(k)[0] for k in legs}
        trig: dict[int, dict[str, float]] = {k: {} for k in legs}
        mo = {k: b.mo for k, b in bars.items()}
        adv = {k: b.madv for k, b in bars.items()}
        fav = {k: b.mfav for k, b in bars.items()}
        if open_phase:
            g_open = test(i, wallet, legs, mo)
            res.near = min(res.near, abs(g_open) / scale(legs, mo))
            for k, (sd, _q, _ep) in legs.items():
                b = bars[k]
                if sd * (b.to - stops[k]) <= 0.0:
                    trig[k]["stop"] = b.op * (1.0 - sd * slip)
                if sd * (b.to - tps[k]) >= 0.0:
                    trig[k]["tp"] = b.op
            oc.at_open = g_open <= 0.0 or any(trig.values())
            if oc.at_open:
                oc.liq = g_open <= 0.0
                oc.fills = dict(mo)
        held = mo
        if not oc.at_open:
            held = adv
            g_adv = test(i, wallet, legs, adv)
            res.near = min(res.near, abs(g_adv) / scale(legs, adv))
            oc.liq = g_adv <= 0.0
            oc.fills = dict(adv)
            if oc.liq:
                for k in legs:
                    # leg k moved alone to its extreme, the others already at theirs (a detail
                    # bar: the first leg, as a single position's detail walk fills at its price)
                    px = dict(adv)
                    px[k] = mo[k]
                    g_k = test(i, wallet, legs, px)
                    if not open_phase or g_k > 0.0:
                        if open_phase:
                            res.near = min(res.near, abs(g_k) / scale(legs, px))
                        oc.fills[k] = solved(i, k, wallet, legs, adv)
                        break
            for k, (sd, _q, _ep) in legs.items():
                b = bars[k]
                if sd * (b.tadv - stops[k]) <= 0.0:
                    at = b.op if sd * (b.to - stops[k]) <= 0.0 else stops[k]
                    trig[k]["stop"] = at * (1.0 - sd * slip)
                if sd * (b.tfav - tps[k]) >= 0.0:
                    trig[k]["tp"] = b.op if sd * (b.to - tps[k]) >= 0.0 else tps[k]
            if oc.liq and on_mark and len(legs) == 1:
                (k,) = legs
                if "stop" in trig[k]:
                    if legs[k][0] * (stops[k] - oc.fills[k]) > 0.0:
                        oc.liq = False  # the mark reaches the stop first
                    else:
                        del trig[k]["stop"]
        oc.n_trig = int(oc.liq) + sum(len(t) for t in trig.values())
        if oc.n_trig == 0:
            return oc
        oc.n_hit = oc.n_trig
        if oc.liq:
            still = sum(sd * q * (held[k] - ep) for k, (sd, q, ep) in legs.items() if not trig[k])
            for k, (sd, q, ep) in legs.items():
                if "stop" in trig[k] and wallet + (sd * q * (trig[k]["stop"] - ep) + still) < 0.0:
                    del trig[k]["stop"]  # bankrupt before the stop could fill
                    oc.n_hit -= 1
        for k, t in trig.items():
            sd, q, ep = legs[k]
            options = []
            if "stop" in t:
                options.append(("stop", settle(sd, q, ep, t["stop"], taker, wallet)))
            if "tp" in t:
                options.append(("tp", settle(sd, q, ep, t["tp"], maker, wallet)))
            if options:
                kind, out = options[0]
                if len(options) == 2 and options[1][1][0] < out[0]:
                    kind, out = options[1]
                oc.exits[k] = (kind, out[3], out)
        rest = sum(sd * q * (held[k] - ep) for k, (sd, q, ep) in legs.items() if k not in oc.exits)
        oc.use_liq = oc.liq
        if oc.liq:
            pnl = sum(sd * q * (oc.fills[k] - ep) for k, (sd, q, ep) in legs.items())
            fee = sum(q * oc.fills[k] * rate(k, i) for k, (_sd, q, _ep) in legs.items())
            left = wallet + pnl
            if left < 0.0:
                oc.liq_out = (pnl, 0.0, 0.0) if owed else (-wallet, 0.0, -left)
            elif take_all:
                oc.liq_out = (-wallet, 0.0, 0.0)
            elif fee >= left:
                oc.liq_out = (-wallet, left, 0.0)
            else:
                oc.liq_out = (max(pnl - fee, -wallet), fee, 0.0)
            if oc.exits and sum(e[2][0] for e in oc.exits.values()) + rest < oc.liq_out[0]:
                oc.use_liq = False
            if len(legs) > 1 and not oc.at_open:
                oc.decided = True
                for k in legs:
                    px = dict(fav)
                    px[k] = adv[k]
                    if test(i, wallet, legs, px) <= 0.0:
                        oc.decided = False
        return oc

    def close_leg(k: int, i: int, reason: int, r: float, fee: float) -> None:
        lr = res.legs[k]
        lr.exit_idx, lr.reason = i, reason
        lr.pnl += r
        lr.fees += fee
        if res.exit_idx < 0:
            res.exit_idx, res.reason = i, reason

    for i in range(start, end):
        for k, (sd, q, _ep) in legs.items():
            r = fund[k][0][i]
            if s["funding"] and not math.isnan(r):
                pay = sd * q * markets[k].mark_open[i] * r
                wallet -= pay
                res.funding += pay
                res.legs[k].funding += pay
                res.legs[k].pnl -= pay
        enter: dict[int, int] = {}  # leg -> side of the entry
        if by_sig:
            for k in range(n_legs):
                p, pend[k] = pend[k], 0
                if p == 0:
                    continue
                if k in legs and (p == 2 or p == -legs[k][0] * wsign[k]):
                    sd, q, ep = legs[k]
                    r, f, ins, _ = settle(
                        sd, q, ep, markets[k].open[i] * (1.0 - sd * slip), taker, wallet
                    )
                    wallet += r
                    res.fees += f
                    res.insurance += ins
                    close_leg(k, i, int(ExitReason.SIGNAL), r, f)
                    record(k)
                    del legs[k]
                if p != 2 and k not in legs:
                    if dead or ruined:
                        res.n_rejected += 1
                    else:
                        enter[k] = p * wsign[k]
        elif i == start:
            enter = {k: (1 if w > 0 else -1) for k, w in enumerate(weights)}
        if enter:
            order = sorted(enter)
            margins, fees = _order_margins(
                order, weights, wallet, {k: margin_of[k] for k in legs}, s
            )
            new: Legs = {}
            ok = True
            for k in order:
                sd = enter[k]
                new[k] = _fill(markets[k], i, sd, margins[k], s)
                if not _tiers_allow(tables[k], table(k, i), new[k][1], margins[k], s):
                    ok = False
            after = wallet - sum(fees.values())
            both: Legs = {**legs, **new}
            px = {k: (new[k][2] if k in new else markets[k].mark_open[i]) for k in both}
            if ok and not test(i, after, both, px) > 0.0:
                ok = False
            if not ok:
                if not by_sig:
                    res.rejected = True
                    return res
                res.n_rejected += len(order)
            else:
                wallet = after
                res.fees += sum(fees.values())
                for k in order:
                    sd, _q, ep = new[k]
                    legs[k] = new[k]
                    legs_side[k] = sd
                    opened[k] = i
                    margin_of[k] = margins[k]
                    sls[k] = ep * (1.0 - sd * sl_frac)
                    tps[k] = ep * (1.0 + sd * tp_frac)
                    peaks[k] = ep
                    res.legs[k] = LegRef(pnl=-fees[k], fees=fees[k])
                legs = dict(sorted(legs.items()))  # "the first leg" is always in leg order
        for k, (sd, q, _ep) in legs.items():
            r = fund[k][1][i]
            if s["funding"] and not math.isnan(r):
                pay = sd * q * markets[k].mark_open[i] * r
                wallet -= pay
                res.funding += pay
                res.legs[k].funding += pay
                res.legs[k].pnl -= pay

        open_before = set(legs)
        if legs:
            coarse = {k: _coarse(markets[k], i, sd, on_mark) for k, (sd, _q, _ep) in legs.items()}
            oc = judge(i, coarse, True)
            if walk and not oc.at_open and (oc.n_trig > 1 or (oc.liq and oc.decided)):
                # every leg's detail bars at the same times, walked in time order
                rows = [_detail_rows(m, i) for m in markets]
                times = sorted(rows[0])
                if times and all(sorted(r) == times for r in rows):
                    for t_ns in times:
                        sub = {
                            k: _detail(markets[k], i, rows[k][t_ns], sd, on_mark)
                            for k, (sd, _q, _ep) in legs.items()
                        }
                        found = judge(i, sub, False)
                        if found.n_trig > 0:
                            oc = found
                            break
                    else:
                        if oc.n_trig == 1 and oc.liq and oc.decided:
                            oc = _Outcome()  # the detail never reached simultaneous extremes
            if oc.n_trig > 0:
                if oc.n_hit > 1 or (oc.use_liq and oc.decided):
                    res.ambiguous += 1
                if oc.use_liq:
                    r_l, f_l, ins_l = oc.liq_out
                    pnls = {k: sd * q * (oc.fills[k] - ep) for k, (sd, q, ep) in legs.items()}
                    rfee = {k: q * oc.fills[k] * rate(k, i) for k, (_sd, q, _ep) in legs.items()}
                    mms = {k: mm(k, i, q, ep, oc.fills[k]) for k, (_sd, q, ep) in legs.items()}
                    beyond = r_l - (sum(pnls.values()) - f_l)
                    for k in legs:
                        share_fee = f_l * rfee[k] / sum(rfee.values()) if f_l else 0.0
                        share = mms[k] / sum(mms.values()) if sum(mms.values()) else 1 / len(legs)
                        close_leg(
                            k,
                            i,
                            int(ExitReason.LIQUIDATION),
                            pnls[k] - share_fee + beyond * share,
                            share_fee,
                        )
                    wallet += r_l
                    res.fees += f_l
                    res.insurance += ins_l
                    res.n_liquidations += 1
                    if res.liq_idx < 0:
                        res.liq_idx, res.liq_leg = i, n_legs
                    legs = {}
                else:
                    for k in sorted(oc.exits):
                        kind, _px, (r, f, ins, _) = oc.exits[k]
                        wallet += r
                        res.fees += f
                        res.insurance += ins
                        why = level(k)[1] if kind == "stop" else int(ExitReason.TAKE_PROFIT)
                        close_leg(k, i, why, r, f)
                        del legs[k]
            if not math.isnan(trail):
                for k, (sd, _q, _ep) in legs.items():
                    t_fav = coarse[k].tfav
                    if sd * (t_fav - peaks[k]) > 0.0:
                        peaks[k] = t_fav

        upnl = sum(sd * q * (markets[k].mark_close[i] - ep) for k, (sd, q, ep) in legs.items())
        equity = wallet + upnl
        if legs and equity < ruin_level:
            for k, (sd, q, ep) in legs.items():
                r, f, ins, _ = settle(
                    sd, q, ep, markets[k].close[i] * (1.0 - sd * slip), taker, wallet
                )
                wallet += r
                res.fees += f
                res.insurance += ins
                close_leg(k, i, int(ExitReason.RUIN), r, f)
            legs = {}
            equity = wallet
            ruined = True
        res.min_equity = min(res.min_equity, equity)
        if not by_sig:
            if not legs:
                break
            continue
        for k in sorted(open_before - set(legs)):  # closed in this bar: one position each
            record(k)
        if stop_after_liq and res.liq_idx >= 0:
            dead = True
        res.equity.append(equity)
        if i + 1 < end:
            for k in range(n_legs):
                le, lx, se, sx = (bool(a[i]) for a in signals[k])  # type: ignore[index]
                if le or lx or se or sx:
                    ss = legs[k][0] * wsign[k] if k in legs else 0
                    pend[k] = _order(ss, le, lx, se, sx, pend[k])
    censored = int(ExitReason.HORIZON if end < n_bars else ExitReason.END_OF_DATA)
    for k, (sd, q, ep) in sorted(legs.items()):
        lr = res.legs[k]
        lr.exit_idx, lr.reason = end - 1, censored
        lr.pnl += sd * q * (markets[k].mark_close[end - 1] - ep)
        if by_sig:
            record(k)
    if res.exit_idx < 0:
        res.exit_idx, res.reason = end - 1, censored
    res.final_equity = equity
    return res
