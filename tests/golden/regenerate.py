"""Regenerate tests/golden/expected/*.json: ``python -m tests.golden.regenerate``.

Review the diff in the PR and say in the change log why the numbers moved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import backtester as bt
from backtester import strategies

EXPECTED = Path(__file__).parent / "expected"
START, END = "2023-01-01", "2023-07-01"


def sma_cross_case() -> tuple[bt.SweepResult, dict[str, Any]]:
    """Run the sma_cross golden case on the bundled BTC/USDT:USDT 1h slice."""
    market = bt.load_market("BTC/USDT:USDT", start=START, end=END)
    grid = bt.ParamGrid.product(fast=[10, 20], slow=[50, 100], leverage=[1, 5])
    config = bt.RunConfig(stop_loss=0.03, take_profit=0.08, slippage=0.0002)
    meta = {
        "symbol": "BTC/USDT:USDT",
        "exchange": "binanceusdm",
        "timeframe": "1h",
        "start": START,
        "end": END,
        "grid": "fast=[10,20] x slow=[50,100] x leverage=[1,5]",
        "config": config.to_dict(),
        "market_sha256": market.fingerprint(),
    }
    return bt.run_sweep(market, strategies.sma_cross, grid, config=config), meta


def to_json(result: bt.SweepResult, meta: dict[str, Any]) -> dict[str, Any]:
    """Return the deterministic outputs (stats, trades) as JSON-ready data."""
    stats = result.stats().reset_index()
    stats["first_liquidation_time"] = stats["first_liquidation_time"].astype(str)
    trades = result.trades()
    for col in ("entry_time", "exit_time"):
        trades[col] = trades[col].astype(str)
    clean = lambda df: json.loads(df.to_json(orient="records", double_precision=15))  # noqa: E731
    return {"meta": meta, "stats": clean(stats), "trades": clean(trades)}


def main() -> None:
    EXPECTED.mkdir(parents=True, exist_ok=True)
    result, meta = sma_cross_case()
    data = to_json(result, meta)
    path = EXPECTED / "sma_cross_btcusdt_1h.json"
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path} ({len(data['stats'])} stats rows, {len(data['trades'])} trades)")


if __name__ == "__main__":
    main()
