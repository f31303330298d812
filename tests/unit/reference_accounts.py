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
  UPNL in the single-position formula), the others at their extremes.

``near`` in the result is the smallest |test| / notional seen on a deciding comparison: two
correct implementations may round a test that sits exactly on the boundary differently, so the
property test skips draws with ``near < 1e-9``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from backtester.engine.enums import ExitReason
from backtester.market import Market
from backtester.rules import formulas
from tests.unit.reference import RefTables, simulate_reference


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
    for m, w, tab in zip(markets, weights, tables, strict=True):
        leg = dict(s, position_size=s["position_size"] * abs(w))
        runs.append(
            simulate_reference(
                m, None, leg, tab, start=start, end=end, force_side=1 if w > 0 else -1
            )
        )
    if any(r.stats["n_rejected"] > 0 for r in runs):
        return AccountRef(cash, cash, -1, int(ExitReason.NONE), -1, -1, 0.0, 0.0, 0.0, 0, True)
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
    )


def _cross(
    markets: list[Market],
    weights: list[float],
    s: dict[str, Any],
    tables: list[RefTables],
    start: int,
    end: int,
) -> AccountRef:
    n_legs = len(markets)
    n_bars = markets[0].n_bars
    lev, psize, cash = s["leverage"], s["position_size"], s["initial_cash"]
    taker, slip, sl_frac = s["taker_fee"], s["slippage"], s["stop_loss"]
    conv, ovr = s["convention"], s["maint_margin_rate"]
    on_mark = s["stop_trigger"] == "mark"
    take_all = s["close_at"] == "bankruptcy"
    owed = s["negative_balance"] == "owed"
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

    def test(
        i: int, wallet: float, legs: dict[int, tuple[int, float, float]], px: dict[int, float]
    ) -> float:
        # margin balance minus maintenance margin, every open leg at px
        total = wallet
        for k, (sd, q, ep) in legs.items():
            total += sd * q * (px[k] - ep) - mm(k, i, q, ep, px[k])
        return total

    def scale(legs: dict[int, tuple[int, float, float]], px: dict[int, float]) -> float:
        return sum(q * px[k] for k, (_sd, q, _ep) in legs.items())

    def solved(
        i: int,
        k: int,
        wallet: float,
        legs: dict[int, tuple[int, float, float]],
        px: dict[int, float],
    ) -> float:
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

    res = AccountRef(cash, cash, -1, int(ExitReason.NONE), -1, -1, 0.0, 0.0, 0.0, 0, False)
    wallet = cash
    legs: dict[int, tuple[int, float, float]] = {}
    stops: dict[int, float] = {}
    equity = cash

    def first_exit(i: int, reason: int) -> None:
        if res.exit_idx < 0:
            res.exit_idx, res.reason = i, reason

    for i in range(start, end):
        for k, (sd, q, _ep) in legs.items():
            r = fund[k][0][i]
            if s["funding"] and not math.isnan(r):
                pay = sd * q * markets[k].mark_open[i] * r
                wallet -= pay
                res.funding += pay
        if i == start:
            w_abs = [abs(w) for w in weights]
            cost = 1.0 + lev * taker
            margins = [psize * a * wallet for a in w_abs]
            if sum(m * cost for m in margins) > wallet:
                margins = [wallet * (a / sum(w_abs)) / cost for a in w_abs]
                fees = [m * lev * taker for m in margins]
                fees[-1] = wallet - sum(margins) - sum(fees[:-1])
            else:
                fees = [m * lev * taker for m in margins]
            new: dict[int, tuple[int, float, float]] = {}
            ok = True
            for k, (w, m) in enumerate(zip(weights, margins, strict=True)):
                sd = 1 if w > 0 else -1
                fill = markets[k].open[i] * (1.0 + sd * slip)
                notional = m * lev
                q = notional / fill
                new[k] = (sd, q, fill)
                tab, t = tables[k], table(k, i)
                key = q if tab.by_size[t] else notional
                cap = tab.cap_of(t) if math.isnan(ovr) else math.inf
                if not m > 0.0 or key > cap or tab.maxlev[t][_tier(key, tab.floors[t])] < lev:
                    ok = False
            after = wallet - sum(fees)
            fills = {k: v[2] for k, v in new.items()}
            if ok and not test(i, after, new, fills) > 0.0:
                ok = False
            if not ok:
                res.rejected = True
                return res
            wallet = after
            res.fees += sum(fees)
            legs = new
            stops = {k: ep * (1.0 - sd * sl_frac) for k, (sd, _q, ep) in legs.items()}
        for k, (sd, q, _ep) in legs.items():
            r = fund[k][1][i]
            if s["funding"] and not math.isnan(r):
                pay = sd * q * markets[k].mark_open[i] * r
                wallet -= pay
                res.funding += pay

        if legs:
            mo = {k: markets[k].mark_open[i] for k in legs}
            adv = {
                k: markets[k].mark_low[i] if sd > 0 else markets[k].mark_high[i]
                for k, (sd, _q, _ep) in legs.items()
            }
            fav = {
                k: markets[k].mark_high[i] if sd > 0 else markets[k].mark_low[i]
                for k, (sd, _q, _ep) in legs.items()
            }
            g_open = test(i, wallet, legs, mo)
            res.near = min(res.near, abs(g_open) / scale(legs, mo))
            trig = {}
            for k, (sd, _q, _ep) in legs.items():
                t_open = (markets[k].mark_open if on_mark else markets[k].open)[i]
                if sd * (t_open - stops[k]) <= 0.0:
                    trig[k] = markets[k].open[i] * (1.0 - sd * slip)
            at_open = g_open <= 0.0 or bool(trig)
            if at_open:
                liq = g_open <= 0.0
                fills = dict(mo)
            else:
                g_adv = test(i, wallet, legs, adv)
                res.near = min(res.near, abs(g_adv) / scale(legs, adv))
                liq = g_adv <= 0.0
                fills = dict(adv)
                if liq:
                    for k in legs:
                        # leg k moved alone to its extreme, the others already at theirs
                        px = dict(adv)
                        px[k] = mo[k]
                        g_k = test(i, wallet, legs, px)
                        res.near = min(res.near, abs(g_k) / scale(legs, px))
                        if g_k > 0.0:
                            fills[k] = solved(i, k, wallet, legs, adv)
                            break
                for k, (sd, _q, _ep) in legs.items():
                    src = (
                        (markets[k].mark_low, markets[k].mark_high)
                        if on_mark
                        else (
                            markets[k].low,
                            markets[k].high,
                        )
                    )
                    t_adv = src[0][i] if sd > 0 else src[1][i]
                    if sd * (t_adv - stops[k]) <= 0.0:
                        trig[k] = stops[k] * (1.0 - sd * slip)
                if liq and trig and on_mark and len(legs) == 1:
                    (k,) = trig
                    sd = legs[k][0]
                    if sd * (stops[k] - fills[k]) > 0.0:
                        liq = False  # the mark reaches the stop first
                    else:
                        trig = {}
            if liq or trig:
                n_hit = int(liq) + len(trig)
                # the legs without a stop, where the bar's test valued them
                held = mo if at_open else adv
                rest = sum(
                    sd * q * (held[k] - ep) for k, (sd, q, ep) in legs.items() if k not in trig
                )
                if liq:
                    for k in list(trig):
                        sd, q, ep = legs[k]
                        if wallet + (sd * q * (trig[k] - ep) + rest) < 0.0:
                            del trig[k]  # bankrupt before the stop could fill
                            n_hit -= 1
                outcomes = {}
                for k, f in trig.items():
                    sd, q, ep = legs[k]
                    pnl = sd * q * (f - ep)
                    left = wallet + pnl
                    fee = q * f * taker
                    if left < 0.0:
                        outcomes[k] = (pnl, 0.0, 0.0) if owed else (-wallet, 0.0, -left)
                    elif fee >= left:
                        outcomes[k] = (-wallet, left, 0.0)
                    else:
                        outcomes[k] = (max(pnl - fee, -wallet), fee, 0.0)
                use_liq = liq
                if liq:
                    pnl = sum(sd * q * (fills[k] - ep) for k, (sd, q, ep) in legs.items())
                    fee = sum(q * fills[k] * rate(k, i) for k, (_sd, q, _ep) in legs.items())
                    left = wallet + pnl
                    if left < 0.0:
                        liq_out = (pnl, 0.0, 0.0) if owed else (-wallet, 0.0, -left)
                    elif take_all:
                        liq_out = (-wallet, 0.0, 0.0)
                    elif fee >= left:
                        liq_out = (-wallet, left, 0.0)
                    else:
                        liq_out = (max(pnl - fee, -wallet), fee, 0.0)
                    if outcomes and sum(o[0] for o in outcomes.values()) + rest < liq_out[0]:
                        use_liq = False
                decided = False
                if use_liq and len(legs) > 1 and not at_open:
                    decided = True
                    for k in legs:
                        px = dict(fav)
                        px[k] = adv[k]
                        if test(i, wallet, legs, px) <= 0.0:
                            decided = False
                if n_hit > 1 or decided:
                    res.ambiguous += 1
                if use_liq:
                    wallet += liq_out[0]
                    res.fees += liq_out[1]
                    res.insurance += liq_out[2]
                    first_exit(i, int(ExitReason.LIQUIDATION))
                    if res.liq_idx < 0:
                        res.liq_idx, res.liq_leg = i, n_legs
                    legs = {}
                else:
                    for k, o in outcomes.items():
                        wallet += o[0]
                        res.fees += o[1]
                        res.insurance += o[2]
                        del legs[k]
                    first_exit(i, int(ExitReason.STOP_LOSS))

        upnl = sum(sd * q * (markets[k].mark_close[i] - ep) for k, (sd, q, ep) in legs.items())
        equity = wallet + upnl
        if legs and equity < ruin_level:
            for k, (sd, q, ep) in legs.items():
                f = markets[k].close[i] * (1.0 - sd * slip)
                pnl = sd * q * (f - ep)
                left = wallet + pnl
                fee = q * f * taker
                if left < 0.0:
                    o = (pnl, 0.0, 0.0) if owed else (-wallet, 0.0, -left)
                elif fee >= left:
                    o = (-wallet, left, 0.0)
                else:
                    o = (max(pnl - fee, -wallet), fee, 0.0)
                wallet += o[0]
                res.fees += o[1]
                res.insurance += o[2]
            legs = {}
            first_exit(i, int(ExitReason.RUIN))
            equity = wallet
        res.min_equity = min(res.min_equity, equity)
        if not legs:
            break
    if res.exit_idx < 0:
        first_exit(end - 1, int(ExitReason.HORIZON if end < n_bars else ExitReason.END_OF_DATA))
    res.final_equity = equity
    return res
