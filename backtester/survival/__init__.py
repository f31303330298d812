"""Survival studies: rolling-entry holds, Kaplan–Meier tables, honest intervals, comparisons.

Layer: survival (imports engine.run, market, params and reports; never sweep or cli).
"""

from __future__ import annotations

from backtester.survival.study import SurvivalStudy, survival_study

__all__ = ["SurvivalStudy", "survival_study"]
