"""Investment metrics of a monthly incremental cash flow.

* NPV: ``sum_t cf_t / (1 + r)^((t + 1) / 12)`` with r the market's annual discount rate
  (monthly flows discounted at the end of each month).
* Payback month: the first month from which cumulative incremental cash flow stays >= 0
  (1-based; None if it never does within the horizon).
* ROI: (incremental gross margin - incremental program cost) / incremental program cost, over
  the horizon, undiscounted; None when the program costs nothing more than the baseline.
* Peak cash need: the lowest cumulative incremental cash flow (a negative number, or 0).
"""

from __future__ import annotations

import numpy as np


def npv(cash_flow: np.ndarray, annual_rate: float) -> float:
    t = np.arange(1, len(cash_flow) + 1)
    return float(np.sum(cash_flow / (1.0 + annual_rate) ** (t / 12.0)))


def payback_month(cash_flow: np.ndarray) -> int | None:
    cum = np.cumsum(cash_flow)
    negative = np.flatnonzero(cum < 0)
    if not negative.size:
        return 1 if len(cum) else None
    last = int(negative[-1])
    return last + 2 if last + 1 < len(cum) else None


def roi(incremental_margin: float, incremental_cost: float) -> float | None:
    if incremental_cost <= 0:
        return None
    return (incremental_margin - incremental_cost) / incremental_cost


def peak_cash_need(cash_flow: np.ndarray) -> float:
    return float(min(0.0, np.min(np.cumsum(cash_flow)))) if len(cash_flow) else 0.0
