"""Golden: sma_cross on the bundled BTC/USDT:USDT 1h slice equals the stored outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.golden.regenerate import EXPECTED, sma_cross_case, to_json


@pytest.mark.golden
def test_sma_cross_btcusdt_1h() -> None:
    expected = json.loads((EXPECTED / "sma_cross_btcusdt_1h.json").read_text())
    result, meta = sma_cross_case()
    got = to_json(result, meta)
    assert got["meta"]["market_sha256"] == expected["meta"]["market_sha256"]
    for table in ("stats", "trades"):
        assert len(got[table]) == len(expected[table]), table
        for row_g, row_e in zip(got[table], expected[table], strict=True):
            assert row_g.keys() == row_e.keys()
            for key, ve in row_e.items():
                vg = row_g[key]
                if isinstance(ve, float) and not isinstance(ve, bool):
                    np.testing.assert_allclose(vg, ve, rtol=1e-9, err_msg=f"{table}.{key}")
                else:
                    assert vg == ve, f"{table}.{key}"
