r"""Segments from a named rule set (:class:`~simulator.calibration.segmentation.RuleSet`).

The segments are the rule set's, assigned at each month end; transitions are counted month to
month on the customers known at both ends; the purchase rate of a segment is the mean number of
purchases in the next month of its customers, its ``rate_shape`` the method-of-moments gamma
shape of those counts, its basket the spend per transaction of those purchases. Nothing
guarantees such a chain ages a cohort correctly; the report shows how it tracks the log.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from simulator.calibration.seasonality import _estimate_seasonality, _month_lengths
from simulator.calibration.segment_fit import HOMOGENEOUS_SHAPE, NEW_SEGMENT, _draws, _Fit, _frequency_table
from simulator.calibration.segmentation import MonthlyPanel, RuleSet, assign_rules, rfm_arrays


def _gamma_shape(mean: float, second: float) -> float:
    """Method-of-moments gamma shape of individual rates from Poisson counts (var = m + m^2/k)."""
    var = second - mean * mean
    excess = var - mean
    if mean <= 0 or excess <= 1e-12:
        return HOMOGENEOUS_SHAPE
    return float(min(max(mean * mean / excess, 0.05), HOMOGENEOUS_SHAPE))


def _calibrate_rules(panel: MonthlyPanel, rules: RuleSet, season_fixed: np.ndarray | None, auto: bool,
                     min_months: int, tx: pd.DataFrame) -> _Fit:
    notes: list[str] = []
    T, n = panel.n_months, panel.n_customers
    K = len(rules.segments)
    new_name = NEW_SEGMENT if NEW_SEGMENT not in rules.names else "new_customers"
    names = (new_name,) + rules.names
    S = K + 1
    seg = np.full((n, T), -1, dtype=np.int64)
    for t in range(T):
        known = panel.known(t)
        seg[known, t] = 1 + assign_rules(rules, {k: v[known] for k, v in rfm_arrays(panel, t).items()})
    cnt = np.zeros((S, S))
    ysum = np.zeros(S)
    y2 = np.zeros(S)
    nobs = np.zeros(S)
    ssum = np.zeros(S)
    rec_n = np.zeros(T)
    rec_b = np.zeros(T)
    rec_seg = np.zeros((T, S))
    rows = np.arange(n)
    for t in range(T - 1):
        known = panel.first_month <= t
        a, b = seg[known, t], seg[known, t + 1]
        y = panel.counts[known, t + 1]
        np.add.at(cnt, (a, b), 1.0)
        nobs += np.bincount(a, minlength=S)
        ysum += np.bincount(a, weights=y, minlength=S)
        y2 += np.bincount(a, weights=y.astype(np.float64) ** 2, minlength=S)
        ssum += np.bincount(a, weights=panel.spend[known, t + 1], minlength=S)
        rec = rfm_arrays(panel, t)["recency_months"][known]
        rec_n += np.bincount(rec, minlength=T)[:T]
        rec_b += np.bincount(rec, weights=(y > 0).astype(np.float64), minlength=T)[:T]
        np.add.at(rec_seg, (rec, a), 1.0)
    # the first month: customers arrive in "new" and end it in a rule segment
    first_counts = panel.counts[rows, panel.first_month]
    end_first = seg[rows, panel.first_month]
    cnt[0] = np.bincount(end_first, minlength=S)
    nobs[0] = n
    ysum[0] = first_counts.sum()
    y2[0] = float((first_counts.astype(np.float64) ** 2).sum())
    ssum[0] = panel.spend[rows, panel.first_month].sum()
    trans = np.zeros((S, S))
    rates = np.zeros(S)
    shapes = np.full(S, HOMOGENEOUS_SHAPE)
    baskets = np.full(S, float(tx["amount"].mean()) if len(tx) else 1.0)
    for s in range(S):
        if nobs[s] > 0:
            trans[s] = cnt[s] / cnt[s].sum()
            rates[s] = ysum[s] / nobs[s]
            shapes[s] = _gamma_shape(rates[s], y2[s] / nobs[s]) if s > 0 else HOMOGENEOUS_SHAPE
            if ysum[s] > 0:
                baskets[s] = ssum[s] / ysum[s]
        else:
            trans[s, s] = 1.0
            notes.append(f"segment '{names[s]}' has no customer in the calibration window: it keeps its customers "
                         "and its purchase rate is 0")
    season = season_fixed
    expected = np.zeros(T)
    for t in range(1, T):
        known = panel.first_month <= t - 1
        expected[t] = rates[seg[known, t - 1]].sum()
    arrivals = np.bincount(panel.first_month, minlength=T)
    expected += arrivals * (rates[0] - 1.0)
    if season is None and auto:
        observed = panel.counts.sum(axis=0) - arrivals
        season, note = _estimate_seasonality(panel, observed, expected, min_months)
        if season is not None:
            season = _month_lengths() * season
            season = season / season.mean()
        notes.append(note)
    weights = sparse.csr_matrix((np.ones(len(rows)), (rows, seg[:, T - 1])), shape=(n, S))
    shares = np.asarray(weights.sum(axis=0)).ravel() / max(n, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mix = rec_seg / rec_seg.sum(axis=1, keepdims=True)
        fitted = (mix * (1.0 - np.exp(-rates))[None, :]).sum(axis=1)
        by_rec = pd.DataFrame({"recency_months": np.arange(T), "observations": rec_n, "observed": rec_b / rec_n,
                               "fitted": fitted})
    by_rec = by_rec[by_rec["observations"] > 0].reset_index(drop=True)
    sim = _simulate_chain(panel, trans, rates, shapes)
    freq = _frequency_table(panel.counts.sum(axis=1) - 1, sim)
    descriptions = ["customers in their first month (their first purchase included)"] + [
        s.description or _describe_conditions(s) for s in rules.segments]
    lapsed = np.array([False] + [s.lapsed for s in rules.segments])
    notes.append(f"rule set '{rules.name}': transitions counted month to month over {T - 1} pairs of months")
    return _Fit(names=names, descriptions=descriptions, shares=shares, rates=rates, shapes=shapes, baskets=baskets,
                lapsed=lapsed, transitions=trans, seasonality=season, weights=weights, fitted_repeat=expected,
                by_recency=by_rec, frequency=freq, notes=notes)


def _describe_conditions(seg) -> str:
    parts = []
    for feat, b in seg.when.tested().items():
        if b.min is not None and b.max is not None:
            parts.append(f"{feat} {b.min:g}..{b.max:g}")
        elif b.min is not None:
            parts.append(f"{feat} >= {b.min:g}")
        else:
            parts.append(f"{feat} <= {b.max:g}")
    return ", ".join(parts) or "everyone else"


def _simulate_chain(panel: MonthlyPanel, trans: np.ndarray, rates: np.ndarray, shapes: np.ndarray,
                    draws: int | None = None, seed: int = 20241) -> np.ndarray:
    """Repeat transactions over the window of customers arriving like the panel's, under the
    chain (segment ``0`` in the first month), as the engine draws them (no seasonality)."""
    draws = _draws(panel.n_customers) if draws is None else draws
    rng = np.random.default_rng(seed)
    n, T = panel.n_customers, panel.n_months
    S = len(rates)
    cum = np.cumsum(trans, axis=1)
    cum[:, -1] = 1.0
    out = np.zeros((draws, n), dtype=np.int64)
    for d in range(draws):
        state = np.zeros(n, dtype=np.int64)
        mult = rng.gamma(shapes[0], 1.0 / shapes[0], n)
        total = np.zeros(n, dtype=np.int64)
        for t in range(T):
            live = panel.first_month <= t
            y = rng.poisson(rates[state] * np.where(live, 1.0, 0.0))
            total += np.where(panel.first_month == t, np.maximum(y - 1, 0), y)
            u = rng.random(n)
            nxt = (u[:, None] > cum[state]).sum(axis=1)
            state = np.where(live, np.minimum(nxt, S - 1), state)
        out[d] = total
    del mult
    return out
