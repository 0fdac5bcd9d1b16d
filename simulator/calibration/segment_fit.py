r"""What a segmentation hands back to :func:`~simulator.calibration.estimate.calibrate`, and the
pieces both segmentations share.

A fit (:class:`_Fit`) holds the segments (names, descriptions, shares at the calibration end,
purchase rates, gamma shapes, baskets, lapsed flags), the monthly transition matrix, the
seasonality, each customer's weight on each segment at the calibration end, and the in-sample
fit the report shows (one-step-ahead repeat transactions by month, buying next month by recency,
the frequency distribution against a simulation). The first segment, :data:`NEW_SEGMENT`, holds
customers in their first month. Probabilities and shares are rounded for the market file so that
each row still sums to 1 (the largest entry takes the rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from simulator.calibration.lapse_return import LapseReturnModel, Types


#: Gamma shape written for the model's states: one type is one purchase rate.
HOMOGENEOUS_SHAPE = 1000.0
#: Name of the segment of customers in their first month.
NEW_SEGMENT = "new"


@dataclass
class _Fit:
    names: tuple[str, ...]
    descriptions: list[str]
    shares: np.ndarray
    rates: np.ndarray
    shapes: np.ndarray
    baskets: np.ndarray
    lapsed: np.ndarray
    transitions: np.ndarray
    seasonality: np.ndarray | None
    weights: sparse.csr_matrix     # [customers, segments] weight of each customer on each segment at the end
    fitted_repeat: np.ndarray      # [months] one-step-ahead expected repeat transactions
    by_recency: pd.DataFrame
    frequency: pd.DataFrame
    notes: list[str]
    posterior: np.ndarray | None = None
    types: Types | None = None
    model: LapseReturnModel | None = None


def _frequency_table(observed: np.ndarray, simulated: np.ndarray, top: int = 10) -> pd.DataFrame:
    """Share of customers by repeat transactions (0..top-1, then top+), observed and fitted."""
    labels = [str(k) for k in range(top)] + [f"{top}+"]
    obs = np.bincount(np.minimum(observed, top), minlength=top + 1)[: top + 1]
    sim = np.bincount(np.minimum(simulated.ravel(), top), minlength=top + 1)[: top + 1]
    return pd.DataFrame({"repeat_transactions": labels, "observed": obs / max(obs.sum(), 1),
                         "fitted": sim / max(sim.sum(), 1)})


#: Customer-draws simulated for the fitted frequency table (at most 20 draws of the panel).
FREQUENCY_DRAWS = 2_000_000


def _draws(n: int) -> int:
    """Draws of the panel's customers for the fitted frequency table: 20, fewer on a large log
    (at least :data:`FREQUENCY_DRAWS` customer-draws, at least one draw)."""
    return int(min(20, max(1, math.ceil(FREQUENCY_DRAWS / max(n, 1)))))


def row_argmax(m: sparse.csr_matrix) -> np.ndarray:
    """The column of each row's largest entry of a non-negative CSR matrix (the first such column
    on a tie, 0 for an empty row), as ``m.argmax(axis=1)`` gives it, in two reductions over the
    stored entries instead of scipy's per-row loop."""
    m = sparse.csr_matrix(m)
    m.sum_duplicates()                         # sorted column indices within each row
    n = m.shape[0]
    out = np.zeros(n, dtype=np.int64)
    counts = np.diff(m.indptr)
    has = counts > 0
    if not has.any():
        return out
    starts = m.indptr[:-1][has]
    top = np.maximum.reduceat(m.data, starts)
    row_of = np.repeat(np.arange(len(starts)), counts[has])
    cols = np.where(m.data == top[row_of], m.indices.astype(np.int64), np.int64(m.shape[1]))
    out[has] = np.minimum.reduceat(cols, starts)
    return out


def _round(x: float, digits: int = 6) -> float:
    return float(round(float(x), digits))


def _rounded_row(probs: dict[str, float], digits: int = 6) -> dict[str, float]:
    """Probabilities rounded, zeros dropped, the largest adjusted so the row sums to 1."""
    row = {k: round(float(v), digits) for k, v in probs.items() if round(float(v), digits) > 0}
    if not row:
        raise ValueError("empty transition row")
    top = max(row, key=row.get)
    row[top] = round(row[top] + 1.0 - sum(row.values()), digits)
    return row


def _rounded_shares(shares: np.ndarray, digits: int = 6) -> np.ndarray:
    s = np.round(np.asarray(shares, dtype=np.float64), digits)
    s[int(np.argmax(s))] += round(1.0 - float(s.sum()), digits)
    return np.round(s, digits)
