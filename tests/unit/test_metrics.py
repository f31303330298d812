"""metrics: hand-computed returns, drawdown, Sharpe, exposure."""

from __future__ import annotations

import numpy as np
import pytest

from backtester import metrics
from backtester.errors import ConfigError, ShapeError


def test_returns_and_drawdown_hand_case() -> None:
    # equity 100 -> 110 -> 99 -> 121: returns 0, 0.1, -0.1, 121/99-1; drawdown 0,0,0.1,0
    e = np.array([100.0, 110.0, 99.0, 121.0])
    np.testing.assert_allclose(metrics.returns(e), [0.0, 0.1, -0.1, 121 / 99 - 1])
    np.testing.assert_allclose(metrics.drawdown(e), [0.0, 0.0, 0.1, 0.0], atol=1e-15)
    assert float(metrics.max_drawdown(e)) == pytest.approx(0.1)
    assert float(metrics.total_return(e)) == pytest.approx(0.21)


def test_two_columns_and_sharpe() -> None:
    e = np.array([[100.0, 100.0], [101.0, 100.0], [102.01, 100.0]])
    s = metrics.sharpe(e, periods_per_year=4)
    assert np.isnan(s[0])  # constant 1 % returns: zero deviation
    assert np.isnan(s[1])
    e2 = np.array([100.0, 110.0, 99.0, 108.9])
    r = np.array([0.1, -0.1, 0.1])
    assert float(metrics.sharpe(e2, periods_per_year=1)) == pytest.approx(r.mean() / r.std(ddof=1))


def test_exposure_and_errors() -> None:
    assert float(metrics.exposure(np.array([0.0, 1.0, -2.0, 0.0]))) == 0.5
    with pytest.raises(ShapeError, match="equity must be"):
        metrics.drawdown(np.zeros((2, 2, 2)))
    with pytest.raises(ConfigError, match="periods_per_year must be > 0, was 0"):
        metrics.sharpe(np.ones(3), periods_per_year=0)
