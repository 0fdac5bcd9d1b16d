"""Investment metrics of a monthly incremental cash flow.

* NPV: ``sum_t cf_t / (1 + r)^((t + 1) / 12)`` with r the market's annual discount rate
  (monthly flows discounted at the end of each month).
* Payback month: the first month from which cumulative incremental cash flow stays >= 0
  (1-based; None if it never does within the horizon).
* ROI: (incremental gross margin - incremental program cost) / incremental program cost, over
  the horizon, undiscounted; None when the program costs nothing more than the baseline.
* Peak cash need: the lowest cumulative incremental cash flow (a negative number, or 0).
* P10 / P50 / P90 over replications: one rule everywhere (terminal, ``summary.json``, report,
  workbook): the replication value nearest to the percentile's rank, ``(n - 1) q / 100``
  rounded to the nearest rank (numpy's ``nearest`` method). Every percentile is a figure some
  replication produced, so a payback percentile is a whole month; a replication that never
  pays back counts as later than any month, and a percentile that falls on it reads "never".
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

QUANTILES = (10, 50, 90)


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


def quantiles(values: Sequence[float | None], *, none_is_inf: bool = False) -> dict[str, float | None]:
    """P10/P50/P90 (module docstring) and mean of per-replication values. ``None`` values are
    dropped, or with ``none_is_inf`` counted as +inf (a payback that never happens); a
    percentile on +inf is None ("never"), and so is the mean then."""
    if none_is_inf:
        arr = np.array([math.inf if v is None else float(v) for v in values], dtype=float)
    else:
        arr = np.array([float(v) for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return {"p10": None, "p50": None, "p90": None, "mean": None}
    out: dict[str, float | None] = {}
    for q in QUANTILES:
        v = float(np.percentile(arr, q, method="nearest"))
        out[f"p{q}"] = None if math.isinf(v) else v
    out["mean"] = float(arr.mean()) if np.isfinite(arr).all() else None
    return out
