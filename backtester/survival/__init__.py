"""Survival studies: rolling-entry holds, Kaplan–Meier tables, honest intervals, comparisons.

Layer: survival (imports engine.run, market, params and reports; never sweep or cli).
"""

from __future__ import annotations

from backtester.survival.run import survival_study
from backtester.survival.study import SurvivalStudy

__all__ = ["SurvivalStudy", "survival_study"]
