r"""The lapse-and-return model's likelihood and its maximum-likelihood fit, at retail scale.

The model is described in :mod:`simulator.calibration.states`. This module computes, for every
customer and every type :math:`(\lambda_g, p_g)`, the log-likelihood of its monthly purchase
counts, and fits the Gamma x Beta mixture of types by maximum likelihood.

**The likelihood from sufficient statistics.** After a month with a purchase a customer is active
with certainty, so the forward recursion restarts at each purchase month. A customer's
log-likelihood under type *g* is therefore a sum of *gap* terms, one per stretch between two
purchase months (and one from its last purchase month to the window's end), plus terms that
depend only on its purchase count and first day:

.. math::

    \ell_{ig} = \sum_{(s, j) \in \text{gaps}(i)} S_g(s, j) + N_i \log\lambda_g
                - \lambda_g \varphi_i \ell_{f_i} + c_i

where :math:`S_g(s, j)` is the log-probability, for a customer who bought in month *s*, of buying
nothing in months :math:`s+1..j-1` and then buying in month *j* (the Poisson factor's
:math:`-\lambda_g \ell_j` included; :math:`j = T` for no purchase up to the window's end),
:math:`N_i` its purchases after the first, :math:`\varphi_i \ell_{f_i}` the exposure left in its
first month, and :math:`c_i` what does not depend on the type (:math:`\sum y \log \ell`,
:math:`-\log y!`). The table :math:`S` has :math:`G \times T \times (T+1)` entries, computed once
per :math:`\rho`; each customer then costs one look-up per purchase month per type. A customer is
summed up by its first day, the set of months it bought in and its total count: customers with
the same summary share one likelihood row (weighted by how many they are).

**The fit.** The type grid (32 rates x 12 lapse probabilities, cell probabilities of the Gamma and
Beta distributions as weights) is fixed, so for a given :math:`\rho` the likelihood matrix
:math:`L_{ig} = e^{\ell_{ig} - \max_g \ell_{ig}}` is computed once and the four parameters
:math:`\theta = \log(r, \alpha, a, b)` maximise :math:`\sum_i m_i \log \sum_g L_{ig} w_g(\theta)`
by a damped Newton method with the exact gradient and Hessian in the weights (their derivatives in
:math:`\theta` by finite differences of the 44 cell probabilities: one pass over :math:`L` per
iteration). :math:`\rho` is profiled over a grid and refined by one parabolic step in
:math:`\sqrt\rho`, scanning the grid from its middle outward until the best value is bracketed
(the profile is unimodal). On a large log the grid is first scanned on a subset of the distinct
rows (the heaviest with certainty, a uniform sample of the others with inverse-probability
weights), and only the best grid value, its neighbours and the refinement are fitted on every row,
each starting from the subset's estimate and iterating with the subset's Hessian (a chord
method). Standard errors come from the inverse Hessian of the chosen fit (delta method back to
the natural scale).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit, prange
from scipy.special import betainc, gammainc, gammaln, roots_genlaguerre, roots_jacobi

from simulator.calibration.segmentation import DAYS_PER_MONTH, MonthlyPanel

__all__ = ["LapseReturnModel", "Types", "fit_lapse_return", "type_loglik", "exposure"]

_RATE_TIER_NAMES = {
    1: ("all",), 2: ("light", "heavy"), 3: ("light", "regular", "heavy"),
    4: ("light", "occasional", "regular", "heavy"), 5: ("rare", "light", "occasional", "regular", "heavy"),
}
_LAPSE_TIER_NAMES = {1: ("",), 2: ("steady", "fickle"), 3: ("steady", "mixed", "fickle"),
                     4: ("steady", "firm", "loose", "fickle")}

#: Distinct likelihood rows above which the rho grid is scanned on a random subset first.
SUBSET_ROWS = 120_000
#: Cells of the likelihood matrix above which it is held in single precision (memory).
SINGLE_PRECISION_CELLS = 1 << 26
#: Bounds of (r, alpha, a, b): Gamma shape 0.01..100, alpha 1e-4..1e4, Beta a, b 0.05..200.
LOWER = (0.01, 1e-4, 0.05, 0.05)
UPPER = (100.0, 1e4, 200.0, 200.0)
PARAMS = ("r", "alpha", "a", "b")


# ======================================================================================
# likelihood
# ======================================================================================


@njit(cache=True, nogil=True)
def _gap_table(ex, lam, lapse, rho):
    """``S[g, s, j]`` (see the module docstring): log-probability under type g that a customer who
    bought in month s buys nothing in s+1..j-1 and buys in j (its Poisson -lambda*exposure
    included), or for ``j = T`` buys nothing up to the end."""
    T = ex.shape[0]
    G = lam.shape[0]
    S = np.zeros((G, T, T + 1))
    for g in range(G):
        keep = math.log(max(1.0 - lapse[g], 1e-300))
        for s in range(T):
            acc = 0.0
            a = 1.0
            bought = True
            for j in range(s + 1, T + 1):
                if j == T:
                    S[g, s, T] = acc
                    break
                if bought:
                    tr = keep
                else:
                    tr = math.log(max(a + (1.0 - a) * rho, 1e-300))
                S[g, s, j] = acc + tr - lam[g] * ex[j]
                pred = (1.0 - lapse[g]) if bought else a + (1.0 - a) * rho
                ea = pred * math.exp(-lam[g] * ex[j])
                tot = ea + 1.0 - pred
                acc += math.log(max(tot, 1e-300))
                a = ea / tot if tot > 0 else 0.0
                bought = False
    return S


@njit(cache=True, nogil=True, parallel=True)
def _rows(first, ptr, months, n_after, exposure0, S, lam, log_lam, lo, out, top, exponentiate):
    """For the likelihood rows ``lo .. lo + len(out) - 1``: ``out[i - lo, g] = l_ig - top[i]`` (or
    its exponential), ``top[i] = max_g l_ig`` (type-independent terms left out): the gap terms of
    its purchase months (``S[s, j, g]``, types last so the inner loop runs along memory),
    ``N log(lambda)`` and the first month's ``-lambda * exposure``."""
    G = lam.shape[0]
    T = S.shape[0]
    for k in prange(out.shape[0]):
        i = lo + k
        row = out[k]
        nn = n_after[i]
        e0 = exposure0[i]
        for g in range(G):
            row[g] = nn * log_lam[g] - lam[g] * e0
        prev = first[i]
        for q in range(ptr[i], ptr[i + 1]):
            j = months[q]
            seg = S[prev, j]
            for g in range(G):
                row[g] += seg[g]
            prev = j
        seg = S[prev, T]
        best = -1e300
        for g in range(G):
            v = row[g] + seg[g]
            row[g] = v
            if v > best:
                best = v
        top[i] = best
        if exponentiate:
            for g in range(G):
                row[g] = math.exp(row[g] - best)
        else:
            for g in range(G):
                row[g] -= best


@dataclass(frozen=True)
class _Rows:
    """Customers summed up for the likelihood: one row per distinct (first day, purchase months,
    purchases), with the number of customers it stands for."""

    first: np.ndarray        # [n] first month
    ptr: np.ndarray          # [n + 1] CSR pointers into months
    months: np.ndarray       # purchase months after the first (ascending)
    n_after: np.ndarray      # [n] purchases after the first (first month's extra ones included)
    first_exposure: np.ndarray  # [n] phi * month length of the first month (standard months)
    weight: np.ndarray       # [n] customers per row

    @property
    def n(self) -> int:
        return int(self.first.shape[0])

    def subset(self, idx: np.ndarray, weight: np.ndarray | None = None) -> "_Rows":
        starts, stops = self.ptr[idx], self.ptr[idx + 1]
        lengths = stops - starts
        ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        take = np.repeat(starts - ptr[:-1], lengths) + np.arange(int(ptr[-1]))
        return _Rows(self.first[idx], ptr, self.months[take], self.n_after[idx], self.first_exposure[idx],
                     self.weight[idx] if weight is None else weight)


def exposure(panel: MonthlyPanel, seasonality: np.ndarray | None) -> np.ndarray:
    """Exposure of each month in standard months: the calendar month's multiplier (month length
    included) if ``seasonality`` is given, else the month's length / 30.4375."""
    if seasonality is None:
        return (panel.days_in_month() / DAYS_PER_MONTH).astype(np.float64)
    return np.array([seasonality[p.month - 1] for p in panel.months], dtype=np.float64)


def _rows_of(panel: MonthlyPanel, ex: np.ndarray, distinct: bool) -> _Rows:
    """The likelihood rows of the panel's customers: one per customer, or one per distinct summary
    (first day, purchase months, purchases: what the type-dependent terms depend on)."""
    n = panel.n_customers
    idx = np.arange(n)
    fm = panel.first_month.astype(np.int64)
    counts = panel.counts
    bought = counts > 0
    bought[idx, fm] = False
    total = counts.sum(axis=1).astype(np.int64) - 1
    if distinct:
        # key: first day, total purchases, the set of purchase months (bits) -- one row per key
        packed = np.packbits(bought, axis=1)
        head = np.empty((n, 2), dtype=np.int64)
        head[:, 0] = panel.first_date.astype("datetime64[D]").astype(np.int64)
        head[:, 1] = total
        key = np.concatenate([head.view(np.uint8).reshape(n, 16), packed], axis=1)
        key = np.ascontiguousarray(key).view(np.dtype((np.void, key.shape[1]))).ravel()
        _, keep, mult = np.unique(key, return_index=True, return_counts=True)
        rows = keep
        weight = mult.astype(np.float64)
    else:
        rows = idx
        weight = np.ones(n)
    b = bought[rows]
    r_idx, months = np.nonzero(b)
    ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(np.bincount(r_idx, minlength=len(rows)), out=ptr[1:])
    f = fm[rows]
    phi = panel.first_month_fraction()[rows]
    return _Rows(first=f, ptr=ptr, months=months.astype(np.int64), n_after=total[rows], first_exposure=phi * ex[f],
                 weight=weight)


def _type_independent(panel: MonthlyPanel, ex: np.ndarray, block: int = 1 << 18) -> float:
    """Sum over customers of the log-likelihood terms no type changes: ``y log(exposure)`` of every
    purchase after the first (the first month's with its remaining share) and ``-log y!``."""
    log_ex = np.log(ex)
    phi_all = panel.first_month_fraction()
    total = 0.0
    for lo in range(0, panel.n_customers, block):
        hi = min(lo + block, panel.n_customers)
        idx = np.arange(hi - lo)
        fm = panel.first_month[lo:hi]
        c = panel.counts[lo:hi].astype(np.float64)
        c[idx, fm] -= 1.0
        phi = phi_all[lo:hi]
        total += float((c @ log_ex).sum()) + float((c[idx, fm] * np.log(phi)).sum())
        big = c[c > 1.0]
        total -= float(gammaln(big + 1.0).sum())
    return total


def _matrix(rows: _Rows, ex: np.ndarray, lam: np.ndarray, lapse: np.ndarray, rho: float,
            dtype=np.float64, exponentiate: bool = True, block: int = 1 << 15) -> tuple[np.ndarray, np.ndarray]:
    """``(L, top)``: ``L[i, g] = exp(l_ig - top_i)`` (or the log when not ``exponentiate``), ``top_i =
    max_g l_ig`` (type-independent terms left out); ``L`` in ``dtype`` (filled in blocks through a
    double-precision buffer when single)."""
    lam = np.ascontiguousarray(lam, dtype=np.float64)
    log_lam = np.log(lam)
    S = _gap_table(np.ascontiguousarray(ex, dtype=np.float64), lam, np.ascontiguousarray(lapse, dtype=np.float64), float(rho))
    S = np.ascontiguousarray(S.transpose(1, 2, 0))
    args = (rows.first, rows.ptr, rows.months, rows.n_after, rows.first_exposure, S, lam, log_lam)
    top = np.empty(rows.n)
    if dtype == np.float64 or not exponentiate:
        out = np.empty((rows.n, len(lam)))
        _rows(*args, 0, out, top, exponentiate)
        return out, top
    out = np.empty((rows.n, len(lam)), dtype=dtype)
    buf = np.empty((min(block, rows.n), len(lam)))
    for lo in range(0, rows.n, block):
        b = buf[: min(block, rows.n - lo)]
        _rows(*args, lo, b, top, True)
        out[lo: lo + len(b)] = b
    return out, top


def type_loglik(panel: MonthlyPanel, ex: np.ndarray, lam: np.ndarray, lapse: np.ndarray, rho: float) -> np.ndarray:
    """Log-likelihood ``[customers, types]`` of each customer under each type (without the terms
    no type changes: the same up to a per-customer constant)."""
    rows = _rows_of(panel, ex, distinct=False)
    ll, top = _matrix(rows, ex, lam, lapse, rho, exponentiate=False)
    ll += top[:, None]
    return ll


# ======================================================================================
# the mixture of types and its fit
# ======================================================================================


def _gamma_cells(edges: np.ndarray, r: float, alpha: float) -> np.ndarray:
    cdf = gammainc(r, alpha * edges)
    cdf[0], cdf[-1] = 0.0, 1.0
    return np.maximum(np.diff(cdf), 0.0)


def _beta_cells(edges: np.ndarray, a: float, b: float) -> np.ndarray:
    cdf = betainc(a, b, edges)
    cdf[0], cdf[-1] = 0.0, 1.0
    return np.maximum(np.diff(cdf), 0.0)


class _Grid:
    """The fixed type grid and the weights of its cells with their derivatives in theta."""

    H1 = 1e-5     # step of first derivatives (log scale)
    H2 = 1e-3     # step of second derivatives

    def __init__(self, top_count: float):
        self.lam_edges = np.exp(np.linspace(np.log(1e-3), np.log(max(30.0, 3 * top_count)), 33))
        lam_nodes = np.sqrt(self.lam_edges[:-1] * self.lam_edges[1:])
        z = np.linspace(-7.0, 7.0, 13)
        p_edges = 1.0 / (1.0 + np.exp(-z))
        p_edges[0], p_edges[-1] = 0.0, 1.0
        self.p_edges = p_edges
        p_nodes = 1.0 / (1.0 + np.exp(-(z[:-1] + z[1:]) / 2.0))
        self.lam, self.lapse = (a.ravel() for a in np.meshgrid(lam_nodes, p_nodes, indexing="ij"))

    def _u(self, t1: float, t2: float) -> np.ndarray:
        return _gamma_cells(self.lam_edges, math.exp(min(max(t1, -12), 12)), math.exp(min(max(t2, -12), 12)))

    def _v(self, t3: float, t4: float) -> np.ndarray:
        return _beta_cells(self.p_edges, math.exp(min(max(t3, -12), 12)), math.exp(min(max(t4, -12), 12)))

    def weights(self, theta: np.ndarray) -> np.ndarray:
        return np.outer(self._u(theta[0], theta[1]), self._v(theta[2], theta[3])).ravel()

    @classmethod
    def _derivs(cls, f, x: float, y: float) -> tuple[np.ndarray, ...]:
        """f, df/dx, df/dy, d2f/dx2, d2f/dxdy, d2f/dy2 by central differences."""
        h, k = cls.H1, cls.H2
        f0 = f(x, y)
        fx = (f(x + h, y) - f(x - h, y)) / (2 * h)
        fy = (f(x, y + h) - f(x, y - h)) / (2 * h)
        fxx = (f(x + k, y) - 2 * f0 + f(x - k, y)) / (k * k)
        fyy = (f(x, y + k) - 2 * f0 + f(x, y - k)) / (k * k)
        fxy = (f(x + k, y + k) - f(x + k, y - k) - f(x - k, y + k) + f(x - k, y - k)) / (4 * k * k)
        return f0, fx, fy, fxx, fxy, fyy

    def columns(self, theta: np.ndarray) -> np.ndarray:
        """``[G, 15]``: w, its 4 first derivatives, its 10 second derivatives (upper triangle, row
        by row) in theta."""
        u, u1, u2, u11, u12, u22 = self._derivs(self._u, theta[0], theta[1])
        v, v3, v4, v33, v34, v44 = self._derivs(self._v, theta[2], theta[3])
        o = np.outer
        first = [o(u1, v), o(u2, v), o(u, v3), o(u, v4)]
        second = [o(u11, v), o(u12, v), o(u1, v3), o(u1, v4),
                  o(u22, v), o(u2, v3), o(u2, v4),
                  o(u, v33), o(u, v34),
                  o(u, v44)]
        return np.stack([o(u, v).ravel()] + [c.ravel() for c in first + second], axis=1)


_PAIRS = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3)]


@njit(cache=True, nogil=True, parallel=True)
def _mix64(L, w, out):
    """``out = L @ w`` accumulated in double precision whatever ``L``'s precision."""
    n, G = L.shape
    for i in prange(n):
        acc = 0.0
        for g in range(G):
            acc += L[i, g] * w[g]
        out[i] = acc


def _objective(L: np.ndarray, mult: np.ndarray, grid: _Grid, theta: np.ndarray, hessian: bool = True,
               block: int = 1 << 16) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Negative log-likelihood (up to the rows' tops), its gradient and Hessian in theta, over blocks
    of rows. With a single-precision ``L`` the mixture (whose logarithm is summed, and compared
    between steps) is accumulated in double precision; the derivative columns come from a
    single-precision product (their rounding, about 1e-6 of each row's term, averages out in the
    sums and moves neither the optimum nor the standard errors). Without ``hessian`` only the
    first derivatives are computed (and None is returned for the Hessian)."""
    W = grid.columns(theta)
    if not hessian:
        W = W[:, :5]
    single = L.dtype != np.float64
    W32 = W[:, 1:].astype(L.dtype) if single else None
    value = 0.0
    grad = np.zeros(4)
    second = np.zeros(len(_PAIRS))
    outer = np.zeros((4, 4))
    for lo in range(0, L.shape[0], block):
        Lb = L[lo: lo + block]
        if single:
            mix = np.empty(Lb.shape[0])
            _mix64(Lb, W[:, 0].copy(), mix)
            D = (Lb @ W32).astype(np.float64)
        else:
            M = Lb @ W
            mix, D = M[:, 0], M[:, 1:]
        m = mult[lo: lo + block]
        mix = np.maximum(mix, 1e-300)
        value -= float(m @ np.log(mix))
        q = m / mix
        d = D[:, :4]
        grad -= q @ d
        if hessian:
            second += q @ D[:, 4:]
            outer += d.T @ (d * (q / mix)[:, None])
    if not hessian:
        return value, grad, None
    hess = np.empty((4, 4))
    for c, (k, l) in enumerate(_PAIRS):
        hess[k, l] = hess[l, k] = -(second[c] - outer[k, l])
    return value, grad, hess


def _newton(L: np.ndarray, mult: np.ndarray, grid: _Grid, theta0: np.ndarray, lo: np.ndarray, hi: np.ndarray,
            max_iter: int = 200, hessian: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Damped Newton (Levenberg-Marquardt) within the box; returns (value, theta, hessian).

    Stops when the Newton step's predicted gain, or an accepted step's gain, is below
    ``1e-10 * |f|`` (the L-BFGS-B ``ftol`` it replaces was ``1e-11``), or no step gains. With
    ``hessian`` given (a subset's at this rho, scaled to stand for every row) the iterations use it
    instead of computing one (a chord method: each pass over ``L`` is three times cheaper), and it
    is the Hessian returned."""
    if hessian is not None:
        theta = np.clip(theta0, lo, hi)
        f, g, _ = _objective(L, mult, grid, theta, hessian=False)
        return _iterate(L, mult, grid, theta, f, g, hessian, lo, hi, max_iter, fixed=True)
    theta = np.clip(theta0, lo, hi)
    f, g, H = _objective(L, mult, grid, theta)
    return _iterate(L, mult, grid, theta, f, g, H, lo, hi, max_iter)


def _iterate(L, mult, grid, theta, f, g, H, lo, hi, max_iter, fixed: bool = False):
    tol = 1e-10 * max(1.0, abs(f))
    mu = 1e-4
    for _ in range(max_iter):
        at_lo = (theta <= lo + 1e-12) & (g > 0)
        at_hi = (theta >= hi - 1e-12) & (g < 0)
        free = ~(at_lo | at_hi)
        if not free.any():
            break
        gf, Hf = g[free], H[np.ix_(free, free)]
        try:
            np.linalg.cholesky(Hf)
            if 0.5 * float(gf @ np.linalg.solve(Hf, gf)) < tol:
                break
        except np.linalg.LinAlgError:
            pass
        scale = np.maximum(np.abs(np.diag(Hf)), 1e-8)
        gain = None
        while mu < 1e12:
            A = Hf + mu * np.diag(scale)
            try:
                np.linalg.cholesky(A)
            except np.linalg.LinAlgError:
                mu = max(mu * 10, 1e-6)
                continue
            new = theta.copy()
            new[free] += np.linalg.solve(A, -gf)
            new = np.clip(new, lo, hi)
            fn, gn, Hn = _objective(L, mult, grid, new, hessian=not fixed)
            Hn = H if fixed else Hn
            if fn <= f:
                gain = f - fn
                theta, f, g, H = new, fn, gn, Hn
                mu = max(mu / 3, 1e-12)
                break
            if fn - f < tol:          # no better within rounding: at the optimum
                break
            mu *= 10
        if gain is None or gain < tol:
            break
    return f, theta, H


# ======================================================================================
# the model
# ======================================================================================


@dataclass(frozen=True)
class Types:
    """Customer types: purchase rate while active (per month), lapse probability, weight."""

    rate: np.ndarray
    lapse: np.ndarray
    weight: np.ndarray
    names: tuple[str, ...]


@dataclass(frozen=True)
class LapseReturnModel:
    r"""Fitted lapse-and-return model (see :mod:`simulator.calibration.states`).

    Attributes
    ----------
    r, alpha : float
        Gamma shape and rate of the purchase rate while active (per month): mean ``r / alpha``.
    a, b : float
        Beta parameters of the lapse probability after a month with purchases: mean ``a/(a+b)``.
    rho : float
        Monthly probability that a lapsed customer returns.
    log_likelihood : float
        Maximised log-likelihood (full, with the ``-log y!`` terms).
    customers : int
    first_month, last_month : pandas.Period
        The fitting window.
    profile : list of (rho, log-likelihood)
        The profile likelihood of ``rho`` (how well the data pin it down), on every customer.
    standard_errors : dict
        Asymptotic standard errors of r, alpha, a, b at the fitted rho (inverse Hessian, delta
        method); NaN for a parameter on a bound.
    on_bound : tuple of str
        Parameters whose estimate sits on a bound of the fit (then the data do not pin it down).
    """

    r: float
    alpha: float
    a: float
    b: float
    rho: float
    log_likelihood: float
    customers: int
    first_month: pd.Period
    last_month: pd.Period
    profile: tuple[tuple[float, float], ...] = ()
    standard_errors: tuple[tuple[str, float], ...] = ()
    on_bound: tuple[str, ...] = ()

    @property
    def mean_rate(self) -> float:
        return self.r / self.alpha

    @property
    def mean_lapse(self) -> float:
        return self.a / (self.a + self.b)

    def params(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b, "rho": self.rho}

    def types(self, rate_tiers: int = 4, lapse_tiers: int = 2) -> Types:
        """Quadrature types: ``rate_tiers`` rates x ``lapse_tiers`` lapse probabilities."""
        x, wx = roots_genlaguerre(rate_tiers, self.r - 1.0)
        wx = np.maximum(wx, 0.0)
        rate = x / self.alpha
        if lapse_tiers == 1:
            lapse, wp = np.array([self.mean_lapse]), np.array([1.0])
        else:
            z, wz = roots_jacobi(lapse_tiers, self.b - 1.0, self.a - 1.0)
            lapse, wp = (1.0 + z) / 2.0, np.maximum(wz, 0.0)
        if not (np.all(np.isfinite(rate)) and np.isfinite(wx).all() and wx.sum() > 0):
            rate, wx = np.full(rate_tiers, self.mean_rate), np.full(rate_tiers, 1.0)
        if not (np.all(np.isfinite(lapse)) and np.isfinite(wp).all() and wp.sum() > 0):
            lapse, wp = np.full(len(lapse), self.mean_lapse), np.full(len(lapse), 1.0)
        R, P = np.meshgrid(rate, lapse, indexing="ij")
        W = np.outer(wx / wx.sum(), wp / wp.sum())
        rn = _RATE_TIER_NAMES.get(rate_tiers, tuple(f"f{i + 1}" for i in range(rate_tiers)))
        pn = _LAPSE_TIER_NAMES.get(lapse_tiers, tuple(f"l{j + 1}" for j in range(lapse_tiers)))
        names = tuple(f"{a}_{b}" if b else a for a in rn for b in pn)
        return Types(R.ravel(), np.clip(P.ravel(), 1e-9, 1 - 1e-9), W.ravel(), names)


def _subset(rows: _Rows, size: int) -> _Rows:
    """``size`` rows standing for all: the heaviest rows (most customers) with certainty, up to
    half of ``size``, and a uniform sample of the others weighted by the inverse of their sampling
    probability (an unbiased log-likelihood whose variance the heavy rows no longer dominate)."""
    rng = np.random.default_rng(20240601 + rows.n)
    order = np.argsort(-rows.weight, kind="stable")
    sure = order[: size // 2]
    rest = order[size // 2:]
    drawn = rng.choice(rest, size=size - len(sure), replace=False)
    pick = np.concatenate([sure, drawn])
    weight = rows.weight[pick].copy()
    weight[len(sure):] *= len(rest) / len(drawn)
    keep = np.argsort(pick)
    return rows.subset(pick[keep], weight[keep])


def _scan(profile, grid: tuple[float, ...], start: int | None = None) -> list[float]:
    """The profile over the grid, from the middle outward, until the best value has a worse
    value on each side (the profile of rho is unimodal): the first fit (from the fixed starts)
    sits where the data put rho, away from the degenerate edge rho = 0, each next fit starts from
    its neighbour's estimate, and grid values beyond the bracket are not fitted (``inf``)."""
    vals: dict[int, float] = {}
    k = len(grid) // 2 if start is None else start
    while True:
        for j in (k, k - 1, k + 1):
            if 0 <= j < len(grid) and j not in vals:
                vals[j] = profile(grid[j])
        best = min(vals, key=vals.get)
        if best == k:
            break
        k = best
    return [vals.get(j, math.inf) for j in range(len(grid))]


def fit_lapse_return(panel: MonthlyPanel, *, seasonality: np.ndarray | None = None,
                     rho_grid: tuple[float, ...] = (0.0, 0.005, 0.015, 0.03, 0.06, 0.12),
                     subset_rows: int = SUBSET_ROWS, rough: bool = False) -> LapseReturnModel:
    """Maximum-likelihood fit of the lapse-and-return model on every customer of ``panel``.

    Parameters
    ----------
    panel : MonthlyPanel
        Calendar months of the calibration window (all complete).
    seasonality : array of 12, optional
        Calendar-month multipliers of the purchase rate (default flat).
    rho_grid : tuple of float
        Starting grid of the return probability's profile likelihood; the best value is refined
        between its neighbours by one parabolic step in sqrt(rho).
    subset_rows : int
        With more distinct likelihood rows than this, the grid is scanned on a random subset of
        that many rows (weighted to stand for all), and only the best grid value, its neighbours
        and the refinement are fitted on every row.
    rough : bool
        Fit on the subset only (a first fit whose only use is the seasonality's expected counts).
    """
    if panel.n_customers == 0:
        raise ValueError("no customers to fit")
    ex = exposure(panel, seasonality)
    counts = panel.counts
    grid = _Grid(max(1.0, float(counts.max())))
    rows = _rows_of(panel, ex, distinct=True)
    const = _type_independent(panel, ex)
    repeat = float(counts.sum()) - panel.n_customers
    exposure_months = float((panel.n_months - panel.first_month).sum())
    mean_rate = max(repeat / max(exposure_months, 1.0), 1e-3)
    lo, hi = np.log(LOWER), np.log(UPPER)
    starts = [np.clip(np.log([0.5, 0.5 / mean_rate, 1.0, 2.0]), lo, hi),
              np.clip(np.log([1.0, 1.0 / mean_rate, 2.0, 2.0]), lo, hi)]
    dtype = np.float32 if rows.n * len(grid.lam) > SINGLE_PRECISION_CELLS else np.float64

    def fitter(use: _Rows, dt, warm: dict | None = None):
        results: dict[float, tuple[float, np.ndarray, np.ndarray]] = {}

        def profile(rho: float) -> float:
            rho = float(rho)
            if rho in results:
                return -results[rho][0]
            L, top = _matrix(use, ex, grid.lam, grid.lapse, rho, dtype=dt)
            offset = float(use.weight @ top)
            fixed = None
            if warm and rho in warm:
                tries = [warm[rho][1]]            # the subset's estimate and Hessian at this rho
                fixed = warm[rho][2]
            elif results:
                # from the estimate at the nearest rho fitted so far (the profile is smooth in rho)
                near = results[min(results, key=lambda k: (abs(math.sqrt(k) - math.sqrt(rho)), k))][1]
                tries = [near]
            else:
                tries = starts
            best = None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                for s0 in tries:
                    f, theta, H = _newton(L, use.weight, grid, s0, lo, hi, hessian=fixed)
                    if best is None or f < best[0]:
                        best = (f, theta, H)
            results[rho] = (-(best[0]) + offset, best[1], best[2])
            return -results[rho][0]

        return results, profile

    def refine(results, profile, vals, i) -> float:
        rho = float(rho_grid[i])
        if 0 < i < len(rho_grid) - 1:
            x = np.sqrt(np.array(rho_grid[i - 1: i + 2], dtype=np.float64))
            y = np.array(vals[i - 1: i + 2])
            c2, c1, _ = np.polyfit(x, y, 2)
            if c2 > 0:
                vertex = float(np.clip(-c1 / (2 * c2), x[0], x[2])) ** 2
                if profile(vertex) < vals[i]:
                    rho = vertex
        elif i == 0 and len(rho_grid) > 1 and rho_grid[0] == 0.0:
            mid = rho_grid[1] / 4.0
            if profile(mid) < vals[0]:
                rho = mid
        return rho

    if rows.n > subset_rows:
        sub = _subset(rows, subset_rows)
        sub_results, sub_profile = fitter(sub, np.float64)
        sub_vals = _scan(sub_profile, rho_grid)
        i = int(np.argmin(sub_vals))
    if rows.n > subset_rows and rough:
        results = sub_results
        rho = refine(sub_results, sub_profile, sub_vals, i)
    elif rows.n > subset_rows:
        results, profile = fitter(rows, dtype, warm=sub_results)
        # the subset's best grid value and its neighbours on every row (moving on if the best moves)
        full = _scan(profile, rho_grid, start=i)
        i = int(np.argmin(full))
        rho = refine(results, profile, full, i)
    else:
        results, profile = fitter(rows, dtype)
        vals = _scan(profile, rho_grid)
        i = int(np.argmin(vals))
        rho = refine(results, profile, vals, i)
    ll, theta, H = results[rho]
    r, alpha, a, b = np.exp(theta)
    prof = tuple(sorted((float(k), float(v[0] + const)) for k, v in results.items()))
    on_bound = tuple(name for name, t, l_, h_ in zip(PARAMS, theta, lo, hi) if t <= l_ + 1e-6 or t >= h_ - 1e-6)
    se = {name: float("nan") for name in PARAMS}
    free = np.array([name not in on_bound for name in PARAMS])
    if free.any():
        try:
            cov = np.linalg.inv(H[np.ix_(free, free)])
            sd = np.sqrt(np.maximum(np.diag(cov), 0.0)) * np.exp(theta[free])   # delta method: d exp(t) = exp(t) dt
            for name, s in zip(np.array(PARAMS)[free], sd):
                se[name] = float(s)
        except np.linalg.LinAlgError:
            pass
    return LapseReturnModel(r=float(r), alpha=float(alpha), a=float(a), b=float(b), rho=rho,
                            log_likelihood=float(ll + const), customers=panel.n_customers,
                            first_month=panel.months[0], last_month=panel.months[-1], profile=prof,
                            standard_errors=tuple(se.items()), on_bound=on_bound)
