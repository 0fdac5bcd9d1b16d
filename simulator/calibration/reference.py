r"""The customer-base-analysis reference models, fitted by maximum likelihood with scipy.

* :func:`rfm_summary` turns a cleaned :class:`~simulator.calibration.transactions.TransactionLog`
  into the per-customer sufficient statistics :math:`(x, t_x, T, \bar m_x)`;
* :class:`BGNBD` -- the beta-geometric / negative binomial distribution model of repeat
  buying (Fader, Hardie & Lee 2005a, "'Counting your customers' the easy way: an alternative
  to the Pareto/NBD model", *Marketing Science* 24(2), 275-284);
* :class:`GammaGamma` -- the gamma-gamma model of spend per transaction (Colombo & Jiang
  1999, "A stochastic RFM model", *Journal of Interactive Marketing* 13(3), 2-12; Fader,
  Hardie & Lee 2005b, "RFM and CLV: using iso-value curves for customer base analysis",
  *Journal of Marketing Research* 42(4), 415-430; Fader & Hardie 2013, "The gamma-gamma model
  of monetary value", http://www.brucehardie.com/notes/025/).

These are the benchmarks the simulator's behavioural parameters are calibrated and checked
against. Time is in *time units* of ``time_unit_days`` days: weeks by default, as in the
papers; rates (:math:`\lambda`, and so :math:`\alpha`) are per time unit.

Conventions (they are what make the published CDNOW figures come out; see :func:`rfm_summary`):
a transaction is one customer-day, repeat transactions are those on days after the first
purchase day, and :math:`T` runs from the first purchase day to the calibration end day.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1

from simulator.calibration.transactions import TransactionLog

__all__ = ["BGNBD", "GammaGamma", "rfm_summary"]

_LOG_BOUND = 18.0  # parameters are kept within exp(+-18) ~ [1.5e-8, 6.6e7]


# --------------------------------------------------------------------------------------
# RFM summary
# --------------------------------------------------------------------------------------


def rfm_summary(
    log: TransactionLog | pd.DataFrame,
    calibration_end: str | date | pd.Timestamp,
    *,
    time_unit_days: float = 7.0,
    first_purchase_end: str | date | pd.Timestamp | None = None,
) -> pd.DataFrame:
    r"""Per-customer frequency, recency, age and mean repeat spend over a calibration period.

    Parameters
    ----------
    log : TransactionLog or pandas.DataFrame
        A cleaned log, or a frame with columns ``customer_id``, ``date``, ``amount``.
    calibration_end : date-like
        Last calendar day of the calibration period (inclusive). Transactions after it are
        ignored; customers whose first purchase is after it are left out.
    time_unit_days : float, default 7.0
        Length of the time unit in days (7: weeks, as in the papers).
    first_purchase_end : date-like, optional
        Keep only customers whose first purchase is on or before this day (a cohort).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (sorted), columns

        ``frequency`` (int) :math:`x`
            repeat transactions: days with a purchase after the first purchase day, up to
            and including ``calibration_end``;
        ``recency`` (float) :math:`t_x`
            last purchase day minus first purchase day, in time units (0 when :math:`x=0`);
        ``T`` (float)
            ``calibration_end`` minus first purchase day, in time units;
        ``monetary_value`` (float) :math:`\bar m_x`
            mean amount of the repeat transactions (the first is excluded); 0 when
            :math:`x = 0`.

    Notes
    -----
    All dates are days, so every difference is a whole number of days divided by
    ``time_unit_days``. The transaction unit is the customer-day: a log read with
    ``merge_same_day=False`` is merged here (amounts summed) before counting.

    **The T convention.** :math:`T` is counted from the first purchase day *to the calibration
    end day*, not through the end of it: with CDNOW's calibration end 1997-09-30 a customer
    who first bought on 1997-01-01 has :math:`T = 272/7 = 38.86` weeks, as in the published
    data set (Hardie's ``cdnow_customers``). This reproduces the published BG/NBD fit
    (r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9,582.4); counting the last day as
    well (:math:`T = 39` weeks) gives a = 0.814, b = 2.477 and LL = -9,589.9 instead.
    """
    if not time_unit_days > 0:
        raise ValueError(f"time_unit_days must be positive, not {time_unit_days!r}")
    frame = log.transactions if isinstance(log, TransactionLog) else log
    missing = {"customer_id", "date", "amount"} - set(frame.columns)
    if missing:
        raise ValueError(f"rfm_summary needs columns customer_id, date, amount; missing {sorted(missing)}")
    end = pd.Timestamp(calibration_end).normalize()
    days = pd.to_datetime(frame["date"]).dt.normalize()
    mask = (days <= end).to_numpy()
    daily = (
        pd.DataFrame(
            {
                "customer_id": frame["customer_id"].to_numpy()[mask],
                "date": days.to_numpy()[mask],
                "amount": frame["amount"].to_numpy(dtype=np.float64)[mask],
            }
        )
        .groupby(["customer_id", "date"], sort=True)["amount"]
        .sum()
        .reset_index()
    )
    grouped = daily.groupby("customer_id", sort=True)
    stats = grouped.agg(
        first=("date", "min"),
        last=("date", "max"),
        days=("date", "size"),
        total=("amount", "sum"),
        first_amount=("amount", "first"),  # rows are sorted by date within a customer
    )
    if first_purchase_end is not None:
        stats = stats.loc[stats["first"] <= pd.Timestamp(first_purchase_end).normalize()]
    frequency = (stats["days"] - 1).astype(np.int64)
    repeat_spend = stats["total"] - stats["first_amount"]
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(frequency > 0, repeat_spend / frequency.clip(lower=1), 0.0)
    out = pd.DataFrame(
        {
            "frequency": frequency,
            "recency": (stats["last"] - stats["first"]).dt.days.astype(np.float64) / time_unit_days,
            "T": (end - stats["first"]).dt.days.astype(np.float64) / time_unit_days,
            "monetary_value": monetary.astype(np.float64),
        },
        index=stats.index,
    )
    out.index.name = "customer_id"
    return out


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _columns(summary: pd.DataFrame, names: Sequence[str]) -> list[np.ndarray]:
    missing = [n for n in names if n not in summary.columns]
    if missing:
        raise ValueError(f"summary needs columns {list(names)}; missing {missing} (see rfm_summary)")
    arrays = [summary[n].to_numpy(dtype=np.float64) for n in names]
    for name, arr in zip(names, arrays):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"summary column {name!r} has missing or non-finite values")
    return arrays


def _rfm_arrays(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, t_x, T = _columns(summary, ("frequency", "recency", "T"))
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency must be a non-negative whole number")
    if np.any(t_x < 0) or np.any(t_x > T * (1 + 1e-12) + 1e-12):
        raise ValueError("recency must lie in [0, T]")
    return x, t_x, T


def _minimise(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]], starts: Sequence[Sequence[float]], model: str
) -> np.ndarray:
    """Best of L-BFGS-B runs (analytic gradient) from several starting points, in log space."""
    best_x: np.ndarray | None = None
    best_f = np.inf
    for start in starts:
        x0 = np.clip(np.log(np.asarray(start, dtype=np.float64)), -_LOG_BOUND, _LOG_BOUND)
        result = minimize(
            objective,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-_LOG_BOUND, _LOG_BOUND)] * len(x0),
            options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10},
        )
        if np.isfinite(result.fun) and result.fun < best_f:
            best_f, best_x = float(result.fun), result.x
    if best_x is None:
        raise RuntimeError("maximum-likelihood fit failed from every starting point")
    if np.any(np.abs(best_x) > _LOG_BOUND - 1e-3):
        warnings.warn(
            f"{model}: a parameter reached its bound (exp(+-{_LOG_BOUND:g})): the data sit at a "
            "limit of the model (for instance no heterogeneity across customers or no drop-out); "
            "the fitted values there are not meaningful",
            RuntimeWarning,
            stacklevel=3,
        )
    return np.exp(best_x)


def _guarded(value: float, gradient: np.ndarray) -> tuple[float, np.ndarray]:
    """Objective for the optimiser: a huge value (and zero slope) where the maths fails."""
    if np.isfinite(value) and np.all(np.isfinite(gradient)):
        return value, gradient
    return 1e300, np.zeros_like(gradient)


# --------------------------------------------------------------------------------------
# BG/NBD
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BGNBD:
    r"""BG/NBD model of repeat transactions (Fader, Hardie & Lee 2005a).

    While active, a customer buys as a Poisson process with rate :math:`\lambda`; after each
    transaction she becomes inactive with probability :math:`p`. Across customers
    :math:`\lambda \sim \text{Gamma}(r, \alpha)` (shape :math:`r`, rate :math:`\alpha`, in
    time units) and :math:`p \sim \text{Beta}(a, b)`.

    Attributes
    ----------
    r, alpha : float
        Shape and rate of the gamma heterogeneity in the purchase rate; the mean rate of an
        active customer is :math:`r/\alpha` transactions per time unit.
    a, b : float
        Beta heterogeneity in the drop-out probability; mean :math:`a/(a+b)`.
    log_likelihood : float
        Maximised log-likelihood, :math:`\sum_i \ln L_i` (eq. 6 of the paper).
    n_customers : int
        Customers in the fitting summary.

    Notes
    -----
    Individual likelihood (FHL 2005a, eq. 6), with :math:`x` repeat transactions, the last
    at :math:`t_x`, observed over :math:`(0, T]`:

    .. math::

        L(r,\alpha,a,b \mid x,t_x,T) =
        \frac{B(a,b+x)}{B(a,b)}\frac{\Gamma(r+x)\,\alpha^r}{\Gamma(r)\,(\alpha+T)^{r+x}}
        + \delta_{x>0}\,\frac{B(a+1,b+x-1)}{B(a,b)}
          \frac{\Gamma(r+x)\,\alpha^r}{\Gamma(r)\,(\alpha+t_x)^{r+x}}

    evaluated in logs (``gammaln``/``betaln``, the two terms combined by log-sum-exp),
    with customers of identical :math:`(x, t_x, T)` pooled. Parameters are optimised in
    log space (so they stay positive, bounded to :math:`e^{\pm 18}`) by L-BFGS-B with the
    analytic gradient (digamma functions), from several starting points, keeping the best.
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_customers: int

    # ---- fitting ------------------------------------------------------------------

    @staticmethod
    def _log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        r, alpha, a, b = params
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
        term1 = betaln(a, b + x) - (r + x) * np.log(alpha + T)
        with np.errstate(divide="ignore", invalid="ignore"):
            term2 = np.where(
                x > 0,
                betaln(a + 1.0, np.maximum(b + x - 1.0, 1e-300)) - (r + x) * np.log(alpha + t_x),
                -np.inf,
            )
        return common + np.logaddexp(term1, term2)

    @staticmethod
    def _log_likelihood_and_gradient(
        params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Weighted sum of eq. 6 in logs and its gradient with respect to the log-parameters."""
        r, alpha, a, b = params
        repeat = x > 0
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
        log_T, log_tx = np.log(alpha + T), np.log(alpha + t_x)
        term1 = betaln(a, b + x) - (r + x) * log_T
        with np.errstate(divide="ignore", invalid="ignore"):
            term2 = np.where(repeat, betaln(a + 1.0, np.maximum(b + x - 1.0, 1e-300)) - (r + x) * log_tx, -np.inf)
        mix = np.logaddexp(term1, term2)
        w1 = np.exp(term1 - mix)  # share of the "still active" term
        w2 = np.where(repeat, np.exp(term2 - mix), 0.0)
        psi_abx = digamma(a + b + x)
        with np.errstate(divide="ignore", invalid="ignore"):
            psi_bx1 = np.where(repeat, digamma(np.maximum(b + x - 1.0, 1e-300)), 0.0)
        d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w1 * log_T - w2 * log_tx
        d_alpha = r / alpha - (r + x) * (w1 / (alpha + T) + w2 / (alpha + t_x))
        d_a = -(digamma(a) - digamma(a + b)) + w1 * (digamma(a) - psi_abx) + w2 * (digamma(a + 1.0) - psi_abx)
        d_b = -(digamma(b) - digamma(a + b)) + w1 * (digamma(b + x) - psi_abx) + w2 * (psi_bx1 - psi_abx)
        value = float(np.dot(weights, common + mix))
        gradient = np.array([weights @ d_r, weights @ d_alpha, weights @ d_a, weights @ d_b]) * params
        return value, gradient

    @classmethod
    def fit(cls, summary: pd.DataFrame, *, starts: Sequence[Sequence[float]] | None = None) -> "BGNBD":
        """Maximum-likelihood fit on an RFM summary (columns ``frequency``, ``recency``, ``T``).

        Parameters
        ----------
        summary : pandas.DataFrame
            As returned by :func:`rfm_summary`; its time unit is the model's.
        starts : sequence of (r, alpha, a, b), optional
            Starting points; by default a few spread ones scaled to the data.

        Returns
        -------
        BGNBD

        Warns
        -----
        RuntimeWarning
            When a parameter ends at its bound: the data sit at a limit of the model (say
            identical buyers, :math:`r, \\alpha \\to \\infty`, or no drop-out, :math:`a \\to 0`).
        """
        x, t_x, T = _rfm_arrays(summary)
        if len(x) == 0:
            raise ValueError("cannot fit BG/NBD on an empty summary")
        unique, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
        ux, utx, uT = unique.T
        weights = counts.astype(np.float64)
        total = weights.sum()

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            value, gradient = cls._log_likelihood_and_gradient(np.exp(log_params), ux, utx, uT, weights)
            return _guarded(-value / total, -gradient / total)

        mean_T = max(float(np.mean(T)), 1e-6)
        rate = max(float(np.sum(x)) / float(np.sum(T)) if np.sum(T) > 0 else 1.0, 1e-6)
        if starts is None:
            starts = [
                (1.0, 1.0 / rate, 1.0, 1.0),
                (0.5, 0.5 / rate, 0.5, 2.0),
                (1.0, mean_T, 1.0, 3.0),
                (0.25, 5.0, 1.0, 2.5),
                (2.0, 2.0 / rate, 2.0, 8.0),
            ]
        r, alpha, a, b = _minimise(objective, starts, "BG/NBD")
        ll = float(np.dot(weights, cls._log_likelihood(np.array([r, alpha, a, b]), ux, utx, uT)))
        return cls(r=float(r), alpha=float(alpha), a=float(a), b=float(b), log_likelihood=ll, n_customers=len(x))

    # ---- predictions --------------------------------------------------------------

    @property
    def params(self) -> dict[str, float]:
        """``{"r": ..., "alpha": ..., "a": ..., "b": ...}``."""
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}

    def individual_log_likelihood(self, summary: pd.DataFrame) -> pd.Series:
        """:math:`\\ln L_i` of each customer at the fitted parameters (eq. 6)."""
        x, t_x, T = _rfm_arrays(summary)
        ll = self._log_likelihood(np.array([self.r, self.alpha, self.a, self.b]), x, t_x, T)
        return pd.Series(ll, index=summary.index, name="log_likelihood")

    def expected_purchases(self, t: float | np.ndarray) -> np.ndarray:
        r"""Expected transactions in :math:`(0, t]` of a customer just acquired (eq. 9).

        .. math::

            E[X(t)] = \frac{a+b-1}{a-1}\left[1 - \left(\frac{\alpha}{\alpha+t}\right)^r
            {}_2F_1\!\left(r, b; a+b-1; \frac{t}{\alpha+t}\right)\right]
        """
        t = np.asarray(t, dtype=np.float64)
        zeros = np.zeros_like(t)
        return self._conditional(t, zeros, zeros, zeros)

    def probability_alive(self, summary: pd.DataFrame) -> pd.Series:
        r"""Probability that each customer is still active at :math:`T` (FHL 2005a, eq. 11).

        .. math::

            P(\text{alive} \mid x, t_x, T) = \left[1 + \delta_{x>0}\,\frac{a}{b+x-1}
            \left(\frac{\alpha+T}{\alpha+t_x}\right)^{r+x}\right]^{-1}
        """
        x, t_x, T = _rfm_arrays(summary)
        return pd.Series(np.exp(-self._log_denominator(x, t_x, T)), index=summary.index, name="p_alive")

    def _log_denominator(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            log_odds = np.where(
                x > 0,
                np.log(self.a)
                - np.log(np.maximum(self.b + x - 1.0, 1e-300))
                + (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x)),
                -np.inf,
            )
        return np.logaddexp(0.0, log_odds)

    def _conditional(self, t: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        t, x, t_x, T = np.broadcast_arrays(t, x, t_x, T)
        z = t / (alpha + T + t)
        # ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)
        #   = (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)        (Euler's transformation)
        # The right side has no x in its first two parameters, so it stays well-conditioned
        # for heavy buyers, where the left side multiplies an underflow by an overflow.
        c = a + b + x - 1.0
        term = np.exp((a - 1.0) * np.log1p(-z)) * hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
        numerator = (c / (a - 1.0)) * (1.0 - term)
        return numerator * np.exp(-self._log_denominator(x, t_x, T))

    def conditional_expected_purchases(self, t: float, summary: pd.DataFrame) -> pd.Series:
        r"""Expected repeat transactions of each customer in :math:`(T, T+t]` (eq. 10).

        .. math::

            E[Y(t) \mid x, t_x, T] =
            \frac{\dfrac{a+b+x-1}{a-1}\left[1-\left(\dfrac{\alpha+T}{\alpha+T+t}\right)^{r+x}
            {}_2F_1\!\left(r+x, b+x; a+b+x-1; \dfrac{t}{\alpha+T+t}\right)\right]}
            {1+\delta_{x>0}\,\dfrac{a}{b+x-1}\left(\dfrac{\alpha+T}{\alpha+t_x}\right)^{r+x}}

        computed through Euler's transformation of :math:`{}_2F_1` (an identity, better
        conditioned for large :math:`x`) and with the denominator in logs.

        Parameters
        ----------
        t : float
            Horizon after each customer's calibration end, in time units (>= 0).
        summary : pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T`` in the same time unit as the fit.

        Returns
        -------
        pandas.Series
            Indexed like ``summary``.
        """
        if not np.isfinite(t) or t < 0:
            raise ValueError(f"t must be a finite, non-negative time, not {t!r}")
        x, t_x, T = _rfm_arrays(summary)
        values = self._conditional(np.full_like(T, float(t)), x, t_x, T)
        return pd.Series(values, index=summary.index, name="expected_purchases")

    def expected_purchases_in_window(self, summary: pd.DataFrame, start: float, end: float) -> pd.Series:
        r"""Expected repeat transactions of each customer in :math:`(T+\text{start}, T+\text{end}]`.

        Times are in time units measured from each customer's calibration end, so
        :math:`E[Y(\text{end})\mid\cdot] - E[Y(\text{start})\mid\cdot]`; a monthly holdout
        series is this over consecutive month ends (the pieces add up to
        :meth:`conditional_expected_purchases` at the last one).
        """
        if not (np.isfinite(start) and np.isfinite(end)) or start < 0 or end < start:
            raise ValueError(f"need 0 <= start <= end, got start={start!r}, end={end!r}")
        x, t_x, T = _rfm_arrays(summary)
        upper = self._conditional(np.full_like(T, float(end)), x, t_x, T)
        lower = self._conditional(np.full_like(T, float(start)), x, t_x, T) if start > 0 else 0.0
        return pd.Series(upper - lower, index=summary.index, name="expected_purchases")


# --------------------------------------------------------------------------------------
# Gamma-Gamma
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GammaGamma:
    r"""Gamma-gamma model of the spend per transaction (Colombo & Jiang 1999; FHL 2005b).

    Each transaction's spend :math:`z \sim \text{Gamma}(p, \nu)` (shape :math:`p`, rate
    :math:`\nu`), so a customer's mean spend is :math:`\zeta = p/\nu`; across customers
    :math:`\nu \sim \text{Gamma}(q, \gamma)` (shape :math:`q`, rate :math:`\gamma`). Spend is
    assumed independent of the transaction process. Amounts are in the log's currency.

    Attributes
    ----------
    p, q, v : float
        :math:`p`, :math:`q` and :math:`\gamma` (called ``v`` as in ``lifetimes``).
    log_likelihood : float
        Maximised log-likelihood over the customers used.
    n_customers : int
        Customers used in the fit: those with ``frequency > 0`` and ``monetary_value > 0``
        (a mean spend of exactly 0 has zero density under the model).

    Notes
    -----
    With :math:`\bar m_x` the mean of :math:`x` transactions, the likelihood (Fader & Hardie
    2013, eq. 3) is

    .. math::

        f(\bar m_x \mid p, q, \gamma; x) =
        \frac{\Gamma(px+q)}{\Gamma(px)\,\Gamma(q)}
        \frac{\gamma^q\,\bar m_x^{\,px-1}\,x^{px}}{(\gamma + x\bar m_x)^{px+q}} ,

    maximised in log space. The population mean spend per transaction is
    :math:`E[\zeta] = p\gamma/(q-1)` (finite for :math:`q > 1`). On the CDNOW calibration
    weeks the published estimates are p = 6.25, q = 3.74, gamma = 15.44 (LL -4,055.9).
    """

    p: float
    q: float
    v: float
    log_likelihood: float
    n_customers: int

    @staticmethod
    def _log_likelihood(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        p, q, v = params
        px = p * x
        return (
            gammaln(px + q)
            - gammaln(px)
            - gammaln(q)
            + q * np.log(v)
            + (px - 1.0) * np.log(m)
            + px * np.log(x)
            - (px + q) * np.log(v + x * m)
        )

    @staticmethod
    def _log_likelihood_and_gradient(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> tuple[float, np.ndarray]:
        """Sum of the log-likelihood and its gradient with respect to the log-parameters."""
        p, q, v = params
        px = p * x
        log_vxm = np.log(v + x * m)
        value = float(np.sum(GammaGamma._log_likelihood(params, x, m)))
        psi = digamma(px + q)
        d_p = np.sum(x * (psi - digamma(px) + np.log(m) + np.log(x) - log_vxm))
        d_q = np.sum(psi - digamma(q) + np.log(v) - log_vxm)
        d_v = np.sum(q / v - (px + q) / (v + x * m))
        return value, np.array([d_p, d_q, d_v]) * params

    @classmethod
    def fit(cls, summary: pd.DataFrame, *, starts: Sequence[Sequence[float]] | None = None) -> "GammaGamma":
        """Maximum-likelihood fit on the repeat buyers of an RFM summary.

        Parameters
        ----------
        summary : pandas.DataFrame
            Columns ``frequency`` and ``monetary_value`` (see :func:`rfm_summary`); rows with
            ``frequency == 0`` or ``monetary_value <= 0`` are left out.
        starts : sequence of (p, q, v), optional
            Starting points; by default a few spread ones scaled to the data.
        """
        x, m = _columns(summary, ("frequency", "monetary_value"))
        use = (x > 0) & (m > 0)
        x, m = x[use], m[use]
        if len(x) < 2:
            raise ValueError("Gamma-Gamma needs at least two customers with repeat transactions and positive spend")
        total = float(len(x))

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            value, gradient = cls._log_likelihood_and_gradient(np.exp(log_params), x, m)
            return _guarded(-value / total, -gradient / total)

        mean_m = float(np.mean(m))
        if starts is None:
            starts = [(1.0, 1.0, mean_m), (5.0, 3.0, 2.0 * mean_m / 5.0), (0.5, 15.0, 2.0), (2.0, 2.0, 1.0), (10.0, 10.0, mean_m)]
        p, q, v = _minimise(objective, starts, "Gamma-Gamma")
        ll = float(np.sum(cls._log_likelihood(np.array([p, q, v]), x, m)))
        return cls(p=float(p), q=float(q), v=float(v), log_likelihood=ll, n_customers=len(x))

    @property
    def params(self) -> dict[str, float]:
        """``{"p": ..., "q": ..., "v": ...}``."""
        return {"p": self.p, "q": self.q, "v": self.v}

    @property
    def population_mean_spend(self) -> float:
        r"""Mean spend per transaction across customers, :math:`p\gamma/(q-1)` (NaN if q <= 1)."""
        return self.p * self.v / (self.q - 1.0) if self.q > 1.0 else float("nan")

    def conditional_expected_average_spend(self, summary: pd.DataFrame) -> pd.Series:
        r"""Expected mean spend per transaction of each customer (FHL 2005b, eq. 5).

        .. math::

            E[Z \mid p, q, \gamma, \bar m_x, x] = \frac{p(\gamma + x\bar m_x)}{px + q - 1}
            = \frac{q-1}{px+q-1}\,\frac{p\gamma}{q-1} + \frac{px}{px+q-1}\,\bar m_x ,

        a weighted average of the population mean and the customer's observed mean. For
        ``frequency == 0`` this is the population mean (NaN if :math:`q \le 1`).
        """
        x, m = _columns(summary, ("frequency", "monetary_value"))
        m = np.where(x > 0, m, 0.0)
        denominator = self.p * x + self.q - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(denominator > 0, self.p * (self.v + x * m) / denominator, np.nan)
        return pd.Series(values, index=summary.index, name="expected_average_spend")
