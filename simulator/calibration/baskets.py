r"""Spend per transaction (baskets), and its drift over calendar time.

Transaction amounts are lognormal within and between customers: ``cv`` is the pooled
within-customer variation of a customer's transaction amounts and ``individual_cv`` the
between-customer variation of customers' mean baskets (from the variance of log amounts, the
within part of the variance of customers' mean logs taken out); each segment's ``basket.mean``
is its mean spend per transaction (the segmentation's). Each customer's basket multiplier
(:func:`basket_multipliers`) is its expected mean basket relative to the population's: its mean
log amount shrunk toward the population's by empirical Bayes, by its number of purchases.

**Drift** (:func:`basket_drift`). Spend per transaction may trend over calendar time (prices,
range, mix). A segment's basket is the mean over the whole window, so a trend leaves it at the
window's middle instead of where the forecast starts. The trend is the within-customer slope of
log spend per transaction on the month (fixed effects: a customer's own level is taken out, so
customers arriving or leaving with other baskets do not count as a trend). With
:math:`y_{ij}` the log amount of customer i's transaction j, :math:`t_{ij}` its month (0 for
the window's first) and tildes the deviations from the customer's own means,

    beta = sum_ij t~_ij y~_ij / sum_ij t~_ij^2

    se(beta)^2 = G/(G-1) sum_i (sum_j t~_ij e_ij)^2 / (sum_ij t~_ij^2)^2,  e_ij = y~_ij - beta t~_ij

(standard error robust to any correlation within a customer, clustered by customer, G the
customers with two purchases or more in different months). The drift is used only when it is
clear and steady: :math:`|\beta / se| \ge 1.96` and the slopes fitted the same way on each half
of the window's months have the sign of :math:`\beta`. Then every segment's ``basket.mean`` is
moved to the level of the calibration end's month :math:`T-1`,

    basket.mean <- basket.mean * exp(beta (T - 1 - t_bar))

with :math:`\bar t` the mean month of the window's transactions (where the means sit); otherwise
the baskets are left as measured. The report's notes give the slope, its z and the halves'
slopes either way. The drift is not carried forward: the simulated months keep the
calibration end's level (a trend continued through the forecast would need a basket multiplier
by simulated month in the engine, which has none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class BasketFit:
    """Spend per transaction: lognormal within and between customers.

    ``sigma_within`` / ``sigma_between`` are the lognormal sigmas of one transaction around its
    customer's mean and of customers' means around the population's; ``cv`` and
    ``individual_cv`` the corresponding coefficients of variation; ``mean`` the mean spend per
    transaction.
    """

    mean: float
    cv: float
    individual_cv: float
    sigma_within: float
    sigma_between: float
    mean_log: float
    zero_share: float


def _fit_baskets(tx: pd.DataFrame) -> tuple[BasketFit, pd.DataFrame]:
    """Pooled basket fit and per-customer (n, mean, mean log) of positive amounts."""
    pos = tx[tx["amount"] > 0]
    zero_share = float((tx["amount"] <= 0).mean()) if len(tx) else 0.0
    logs = np.log(pos["amount"].to_numpy())
    g = pd.DataFrame({"row": pos["row"].to_numpy(), "log": logs, "amount": pos["amount"].to_numpy()}).groupby("row")
    per = g.agg(n=("log", "size"), mean_log=("log", "mean"), var_log=("log", "var"), mean=("amount", "mean"))
    multi = per[per["n"] > 1]
    if len(multi):
        s2_w = float(((multi["n"] - 1) * multi["var_log"]).sum() / max((multi["n"] - 1).sum(), 1))
    else:
        s2_w = 0.25
    mu = float(per["mean_log"].mean()) if len(per) else 0.0
    s2_means = float(per["mean_log"].var()) if len(per) > 1 else 0.0
    s2_b = max(s2_means - s2_w * float((1.0 / per["n"]).mean()), 0.0) if len(per) else 0.0
    mean = float(tx["amount"].mean()) if len(tx) else 1.0
    fit = BasketFit(mean=max(mean, 1e-6), cv=float(min(math.sqrt(math.expm1(s2_w)), 5.0)),
                    individual_cv=float(min(math.sqrt(math.expm1(s2_b)), 5.0)), sigma_within=math.sqrt(s2_w),
                    sigma_between=math.sqrt(s2_b), mean_log=mu, zero_share=zero_share)
    return fit, per


def basket_multipliers(per: pd.DataFrame, fit: BasketFit, n_customers: int) -> np.ndarray:
    """Each customer's expected mean basket relative to the population's (empirical Bayes on the
    log scale: its mean log amount shrunk toward the population's by its number of purchases)."""
    out = np.ones(n_customers)
    if not len(per):
        return out
    s2w, s2b = fit.sigma_within ** 2, fit.sigma_between ** 2
    n = per["n"].to_numpy(dtype=np.float64)
    if s2b <= 0:
        return out
    shrink = n * s2b / (n * s2b + s2w)
    post_mean = fit.mean_log + shrink * (per["mean_log"].to_numpy() - fit.mean_log)
    post_var = 1.0 / (n / max(s2w, 1e-12) + 1.0 / s2b)
    expected = np.exp(post_mean + 0.5 * post_var + 0.5 * s2w)
    population = math.exp(fit.mean_log + 0.5 * s2b + 0.5 * s2w)
    out[per.index.to_numpy()] = expected / population
    return out


#: |z| a drift of spend per transaction needs to be used (two-sided 5%).
DRIFT_Z = 1.96


@dataclass(frozen=True)
class BasketDrift:
    """The within-customer trend of log spend per transaction (see the module docstring).

    ``slope`` is per month on the log scale (0.01: +1% a month), ``se`` its cluster-robust
    standard error, ``z`` their ratio; ``first_half`` / ``second_half`` the slopes on each half of
    the window's months (nan when a half cannot give one); ``mean_month`` the mean month of the
    transactions and ``end_month`` the calibration end's (months from the window's first);
    ``used`` whether the baskets are moved, by ``multiplier``
    (``exp(slope * (end_month - mean_month))`` when used, else 1).
    """

    slope: float
    se: float
    z: float
    first_half: float
    second_half: float
    mean_month: float
    end_month: float
    used: bool
    multiplier: float
    customers: int
    note: str


#: Rows of the customer-day table taken at a time by :func:`basket_drift` (whole customers).
DRIFT_BLOCK_ROWS = 1 << 22


def _customer_moments(row: np.ndarray, t: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group of ``row`` (``0..n-1``): the sums of squares of ``t`` and of cross-products of
    ``t`` and ``y``, each about the group's own means."""
    cnt = np.bincount(row, minlength=n).astype(np.float64)
    has = cnt > 0
    mt = np.bincount(row, weights=t, minlength=n).astype(np.float64)     # (an empty input gives integers)
    my = np.bincount(row, weights=y, minlength=n).astype(np.float64)
    mt[has] /= cnt[has]
    my[has] /= cnt[has]
    tt = t - mt[row]
    return (np.bincount(row, weights=tt * tt, minlength=n).astype(np.float64),
            np.bincount(row, weights=tt * (y - my[row]), minlength=n).astype(np.float64))


def _within_slope(sxx_i: np.ndarray, sxy_i: np.ndarray) -> tuple[float, float, int]:
    """The fixed-effects slope from each customer's within sums, its standard error clustered
    by customer, and the customers that inform it (the score of customer i is
    ``sxy_i - beta sxx_i``)."""
    sxx = float(sxx_i.sum())
    if not sxx > 1e-12:
        return math.nan, math.nan, 0
    beta = float(sxy_i.sum()) / sxx
    informs = sxx_i > 1e-12
    g = int(informs.sum())
    if g < 2:
        return beta, math.nan, g
    score = sxy_i[informs] - beta * sxx_i[informs]
    return beta, math.sqrt(float(np.dot(score, score)) / sxx ** 2 * g / (g - 1)), g


def basket_drift(tx: pd.DataFrame, first_month: pd.Period, n_months: int) -> BasketDrift:
    """The drift of spend per transaction over the window (see the module docstring). ``tx``: the
    panel's customer-day table (``row``, ``date``, ``amount``, sorted by customer); ``first_month``:
    the window's first month; ``n_months``: its months. The table is read in blocks of whole
    customers (:data:`DRIFT_BLOCK_ROWS` rows), each customer's within sums kept."""
    rows = tx["row"].to_numpy()
    dates = tx["date"].to_numpy()
    amounts = tx["amount"].to_numpy()
    n = int(rows.max()) + 1 if len(rows) else 0
    first = np.datetime64(first_month.start_time.date(), "M")
    end = float(n_months - 1)
    half = n_months // 2
    sums = [[np.zeros(n), np.zeros(n)] for _ in range(3)]      # whole window, first half, second half
    t_total, t_count = 0.0, 0
    lo = 0
    while lo < len(rows):
        hi = min(lo + DRIFT_BLOCK_ROWS, len(rows))
        if hi < len(rows):
            hi = int(np.searchsorted(rows, rows[hi - 1], side="right"))
        pos = amounts[lo:hi] > 0
        base = int(rows[lo:hi].min())
        row = rows[lo:hi][pos].astype(np.int64) - base
        y = np.log(amounts[lo:hi][pos])
        t = (dates[lo:hi][pos].astype("datetime64[M]") - first).astype(np.float64)
        t_total += float(t.sum())
        t_count += len(t)
        m = int(row.max()) + 1 if len(row) else 0
        for k, keep in enumerate((None, t < half, t >= half)):
            r, tk, yk = (row, t, y) if keep is None else (row[keep], t[keep], y[keep])
            sxx_i, sxy_i = _customer_moments(r, tk, yk, m)
            sums[k][0][base:base + m] += sxx_i
            sums[k][1][base:base + m] += sxy_i
        lo = hi
    beta, se, g = _within_slope(*sums[0])
    halves = [_within_slope(*sums[k])[0] for k in (1, 2)]
    mean_month = t_total / t_count if t_count else end
    z = beta / se if np.isfinite(beta) and np.isfinite(se) and se > 0 else math.nan
    steady = np.isfinite(z) and all(np.isfinite(h) and np.sign(h) == np.sign(beta) for h in halves)
    used = bool(steady and abs(z) >= DRIFT_Z)
    mult = math.exp(beta * (end - mean_month)) if used else 1.0
    if not np.isfinite(beta):
        note = ("basket drift: not estimated (no customer has purchases in two different months of the window); "
                "baskets as measured")
    else:
        what = (f"basket drift: within-customer trend of log spend per transaction {beta:+.4f}/month (se {se:.4f}, "
                f"z {z:+.2f}, {g:,} customers with purchases in two months or more); halves of the window "
                f"{halves[0]:+.4f} and {halves[1]:+.4f}")
        if used:
            note = (f"{what}: used, baskets moved to the level of the calibration end's month (x{mult:.4f}: the "
                    f"window's transactions sit {end - mean_month:.1f} months before it); not carried forward "
                    "through the simulated months")
        else:
            why = (f"|z| below {DRIFT_Z}" if not (np.isfinite(z) and abs(z) >= DRIFT_Z) else
                   "the halves of the window do not agree in sign")
            note = f"{what}: not used ({why}), baskets as measured"
    return BasketDrift(slope=float(beta), se=float(se), z=float(z), first_half=float(halves[0]),
                       second_half=float(halves[1]), mean_month=mean_month, end_month=end, used=used, multiplier=mult,
                       customers=g, note=note)
