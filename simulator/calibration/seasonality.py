r"""Seasonality: calendar-month multipliers of the purchase rate.

Month lengths (each calendar month's mean length over 30.4375 days), times calendar-month
multipliers estimated as the ratio of observed to one-step-ahead expected repeat transactions
when the calibration window has at least 24 months (flat otherwise: one year of a cohort cannot
tell seasonality from its own decay), shrunk toward 1 and normalised to average 1
(:func:`_estimate_seasonality`).
"""

from __future__ import annotations

import numpy as np

from simulator.calibration.segmentation import DAYS_PER_MONTH, MonthlyPanel


def _month_lengths() -> np.ndarray:
    """Mean length of each calendar month over a 4-year cycle, over 30.4375 days (averages 1)."""
    days = np.array([31, 28.25, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    return days / DAYS_PER_MONTH


def _estimate_seasonality(panel: MonthlyPanel, observed: np.ndarray, expected: np.ndarray, min_months: int) -> tuple[np.ndarray | None, str]:
    """Calendar-month multipliers (mean 1) of the purchase rate, relative to month lengths, from
    observed / expected repeat transactions, or None when the window is too short.

    Each calendar month's ratio (its observed over its expected totals, all years pooled) is
    shrunk toward 1 by empirical Bayes: with ``se2`` its Poisson relative variance
    (1 / expected) and ``tau2`` the variance of the true multipliers (the ratios' variance less
    the mean ``se2``), the multiplier is ``1 + (ratio - 1) * tau2 / (tau2 + se2)``.
    """
    if panel.n_months < min_months:
        return None, (f"flat seasonality (month lengths only): the calibration window has {panel.n_months} months, "
                      f"fewer than {min_months} (a year or so of data cannot tell seasonality from the customers' own "
                      "decay)")
    obs = np.zeros(12)
    exp = np.zeros(12)
    for t in range(1, panel.n_months):
        if expected[t] > 0:
            m = panel.months[t].month - 1
            obs[m] += observed[t]
            exp[m] += expected[t]
    seen = exp > 0
    if seen.sum() < 12:
        return None, "flat seasonality: some calendar months have no expected transactions"
    ratio = obs / exp
    ratio = ratio / ratio.mean()
    se2 = 1.0 / np.maximum(exp, 1e-9)
    tau2 = max(float(ratio.var()) - float(se2.mean()), 0.0)
    shrink = tau2 / (tau2 + se2)
    s = 1.0 + (ratio - 1.0) * shrink
    s = s / s.mean()
    return s, (f"seasonality estimated over {panel.n_months} months as observed / one-step-ahead expected repeat "
               f"transactions by calendar month, shrunk toward 1 (empirical Bayes, shrink factors "
               f"{shrink.min():.2f}..{shrink.max():.2f})")
