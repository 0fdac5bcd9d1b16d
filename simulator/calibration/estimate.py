r"""Estimating a market file from a transaction log.

:func:`calibrate` turns a cleaned log into a validated :class:`~simulator.specs.market.Market`
(segments with their purchase rates, heterogeneity and baskets, the monthly transition matrix,
seasonality, arrivals) plus the diagnostics the calibration report shows; :func:`write_market`
writes it as a market file that validates and runs as is.

Two segmentations (see :mod:`~simulator.calibration.segmentation`):

**Frequency tier x recency (default, :class:`RFMStates`).** The engine moves each customer
between segments by a Markov chain, once a month, and draws its purchases from its current
segment's rate. For a cohort that ages and drops out, a chain on observable RFM cells estimated
month to month is not stationary: who sits in a "3+ purchases" cell early in a cohort's life
(fast buyers) is not who sits there a year later, and a chain estimated on the early months
over-forecasts a decaying cohort by about half (CDNOW; see ``data/cdnow/README.md``). Here the
chain is instead derived from a behavioural model whose states *are* Markov:

* *lapse-and-return model*, in calendar months. While **active**, a customer buys
  :math:`n_t \sim \text{Poisson}(\lambda\,\ell_t)` times in month :math:`t` (:math:`\ell_t`: the
  month's length over 30.44 days, times the seasonal multiplier if one is estimated). After each
  month with a purchase it **lapses** with probability :math:`p`; a lapsed customer buys nothing
  and **returns** to active with probability :math:`\rho` at the start of each month. Across
  customers :math:`\lambda \sim \text{Gamma}(r, \alpha)` and :math:`p \sim \text{Beta}(a, b)`
  (as in BG/NBD, Fader, Hardie & Lee 2005); :math:`\rho` is common. With :math:`\rho = 0` and
  continuous time this is BG/NBD. A customer's first month counts from its first purchase (which
  is given): the further purchases of that month are Poisson with the rest of the month as
  exposure.
* *why its states are Markov*: a customer who bought in a month is active at its end, so given
  its type :math:`(\lambda, p)` everything about its future is summed up by the months since it
  last bought -- the probability that it is still active after :math:`k` silent months,
  :math:`f_k`, follows :math:`f_0 = 1`, :math:`g_k = f_k (1 - p\,[k=0]) + (1-f_k)\rho`,
  :math:`f_{k+1} = g_k e^{-\lambda} / (g_k e^{-\lambda} + 1 - g_k)`. The market's segments are
  the pairs *(type, recency k = 0..R)*; the last recency bucket R holds everyone silent R months
  or more.
* *types*: the fitted Gamma and Beta distributions are discretised by Gauss quadrature
  (generalised Gauss-Laguerre nodes for :math:`\lambda`, Gauss-Jacobi nodes for :math:`p`),
  giving ``rate_tiers`` x ``lapse_tiers`` types with their weights -- a frequency tier (light to
  heavy) crossed with a lapse tier (steady, fickle).
* *per segment (type t, recency k)*: ``purchase_rate`` = :math:`g_k \lambda_t` (expected
  purchases next month, a standard month; the seasonality carries month lengths),
  ``rate_shape`` = 1000 (the type is one rate: the heterogeneity is in the tiers); the
  transition to *(t, 0)* has probability :math:`g_k (1 - e^{-\lambda_t})` (the month's purchase
  event), else to *(t, min(k+1, R))*.
* *estimation*: maximum likelihood (:mod:`~simulator.calibration.lapse_return`). A customer's
  likelihood under a type is a sum of table look-ups, one per stretch between two purchase months
  (the forward recursion restarts at each purchase month), so customers with the same first day,
  purchase months and count share one row; types sit on a fine grid (32 rates x 12 lapse
  probabilities) whose weights are the Gamma and Beta probabilities of each cell, so the
  parameters :math:`(r, \alpha, a, b)` are fitted by a damped Newton method on the mixture
  likelihood, for each :math:`\rho` of a profile grid, refined around the best (on a large log the
  grid is scanned on a random subset of the rows first); standard errors from the inverse
  Hessian, and a note when an estimate sits on a bound.
* *customers at the calibration end*: each customer's posterior over the types (Bayes, with the
  type weights as prior) and its recency give the segment shares; :func:`customer_states` gives
  them per customer (the backtest starts each agent from its own state).

**A rule set (:class:`RuleSet`).** The segments are the rule set's, assigned at each month
end; transitions are counted month to month on the customers known at both ends; the purchase
rate of a segment is the mean number of purchases in the next month of its customers, its
``rate_shape`` the method-of-moments gamma shape of those counts. Nothing guarantees such a
chain ages a cohort correctly; the report shows how it tracks the log.

**Both**: a ``new`` segment holds customers in their first month (purchase rate = transactions
in the first month, the first included; it moves to the segments of the customers at the end
of their first month); arrivals per month are counted after a burn-in at the start of the log
(its first months are full of existing customers seen for the first time). Baskets: per segment
the mean spend per transaction; ``cv`` the pooled within-customer variation of transaction
amounts and ``individual_cv`` the between-customer variation of customers' mean baskets
(lognormal, from the variance of log amounts). Seasonality: month lengths, times calendar-month
multipliers estimated as the ratio of observed to one-step-ahead expected repeat transactions
when the calibration window has at least 24 months (flat otherwise: one year of a cohort cannot
tell seasonality from its own decay), shrunk toward 1 and normalised to average 1.

**Optional columns** (:func:`optional_columns`), when the log has them, over the calibration
window:

* ``category`` -> the market's ``categories``: share of spend by category, counted on the rows
  before same-day merging (a basket of several categories counts for each). Names are made
  valid market names (:func:`category_names`; values that become equal are merged); the
  :data:`MAX_CATEGORIES` largest are kept and the rest summed into ``other``; spend of rows
  without a category goes to ``unknown`` (so that the shares are shares of all spend).
* ``member`` -> ``response.enrolment_propensity``, the engine's monthly probability that a
  purchasing non-member joins: the pooled hazard *joins / purchasing non-members*, where a
  customer buying in month t with no member-flagged transaction before t is at risk and joins
  if its first member-flagged transaction is in t. Months in the burn-in at the start of the
  log (as for arrivals) are not counted -- there, customers who were members before the log
  began would look like joiners -- but their flags are used (a customer flagged there is no
  longer at risk). Estimated only with at least one member-flagged customer, one join and
  :data:`MIN_ENROLMENT_AT_RISK` purchaser-months at risk; otherwise the default is kept.
* ``store`` -> the market's ``stores`` network (:mod:`~simulator.calibration.stores`): each
  customer's home store (most spend), the stores' shares of customers, each segment's mix over
  the stores (from the customers' segment weights) and, with a member column, each store's
  enrolment multiplier (its join rate over the market's); stores home to fewer than
  :data:`~simulator.calibration.stores.MIN_STORE_CUSTOMERS` customers merged into ``other``.
  Its figures by store go to the report and to ``stores.csv`` beside the market file.
* ``channel`` -> notes only (no market field): spend share by channel.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import pandas as pd
from numba import njit
from scipy import sparse

from simulator.calibration.groups import MIN_SEGMENT_CUSTOMERS, PROJECTION_MONTHS, merge_sparse, rule_groups, state_groups
from simulator.calibration.lapse_return import LapseReturnModel, Types, exposure, fit_lapse_return, type_loglik
from simulator.calibration.potential import BANDS, PotentialScore, fit_potential
from simulator.calibration.segmentation import (
    DAYS_PER_MONTH, MonthlyPanel, RFMStates, RuleSet, assign_rules, calibration_month_end, monthly_panel, rfm_arrays,
)
from simulator.calibration.stores import MIN_STORE_CUSTOMERS, StoreFit, store_network
from simulator.calibration.transactions import (
    OPTIONAL_COLUMNS, TransactionLog, parse_member_flags, spend_by_value,
)
from simulator import __version__
from simulator.specs import dump
from simulator.specs.market import RESPONSE_DEFAULTS, Market

__all__ = [
    "CalibratedMarket",
    "LapseReturnModel",
    "EnrolmentFit",
    "OptionalColumnsFit",
    "calibrate",
    "category_names",
    "customer_states",
    "fit_lapse_return",
    "market_yaml",
    "optional_columns",
    "state_chain",
    "write_market",
]

#: Gamma shape written for the model's states: one type is one purchase rate.
HOMOGENEOUS_SHAPE = 1000.0
#: Name of the segment of customers in their first month.
NEW_SEGMENT = "new"
#: Categories written to the market file at most (the largest); the rest are summed into
#: :data:`OTHER_CATEGORY`.
MAX_CATEGORIES = 20
#: Category of the spend lumped together beyond the :data:`MAX_CATEGORIES` largest.
OTHER_CATEGORY = "other"
#: Category of spend on rows without a category.
UNKNOWN_CATEGORY = "unknown"
#: Purchaser-months at risk needed to estimate ``enrolment_propensity`` from a member flag.
MIN_ENROLMENT_AT_RISK = 100
#: Channels listed in the calibration note.
TOP_CHANNELS = 5
#: Reachability of a calibrated market (a log does not hold it): share of customers opted in to
#: each contact channel the shipped playbooks use, and share of new members opting in. Round,
#: mid-range assumptions between the shipped markets' (email 0.10-0.45, sms 0.10-0.60, app
#: 0.12-0.30): the market file's header says so; replace them with the CRM's figures.
DEFAULT_CHANNELS: dict[str, float] = {"email": 0.30, "sms": 0.20, "app": 0.20}
DEFAULT_MEMBER_OPT_IN: dict[str, float] = {"email": 0.35, "app": 0.25}


# ======================================================================================
# the lapse-and-return model
# ======================================================================================


@njit(cache=True, nogil=True)
def _one_step(counts, first, phi, expo, lam, lapse, rho, weight, exp_month, rec_n, rec_obs, rec_exp):
    """In-sample one-step-ahead expectations under a mixture of types: for each customer and
    month after its first, given its purchases before that month,

    * ``exp_month[t]`` += expected purchases in month t (the first month's: further purchases
      after the first, expected under the prior);
    * by the months since its last purchase k (capped at ``len(rec_n) - 1``): ``rec_n[k]`` += 1,
      ``rec_obs[k]`` += 1 if it bought, ``rec_exp[k]`` += probability that it buys.
    """
    n, T = counts.shape
    G = lam.shape[0]
    K = rec_n.shape[0]
    per_customer = expo.shape[0] > 1
    logw = np.empty(G)
    a = np.empty(G)
    bought = np.empty(G, dtype=np.bool_)
    for i in range(n):
        f = first[i]
        e = i if per_customer else 0
        exp0 = 0.0
        for g in range(G):
            mu = lam[g] * phi[i] * expo[e, f]
            y0 = counts[i, f] - 1
            s = (y0 * math.log(mu) - mu) if (y0 > 0 and mu > 0) else -mu
            logw[g] = math.log(max(weight[g], 1e-300)) + s
            a[g] = 1.0
            bought[g] = True
            exp0 += weight[g] * mu
        exp_month[f] += exp0
        last = f
        for t in range(f + 1, T):
            m = -1e300
            for g in range(G):
                if logw[g] > m:
                    m = logw[g]
            tot_w = 0.0
            ex = 0.0
            pb = 0.0
            y = counts[i, t]
            for g in range(G):
                w = math.exp(logw[g] - m)
                pred = (1.0 - lapse[g]) if bought[g] else a[g] + (1.0 - a[g]) * rho
                mu = lam[g] * expo[e, t]
                ex += w * pred * mu
                pb += w * pred * (1.0 - math.exp(-mu))
                tot_w += w
                if y > 0:
                    logw[g] += math.log(max(pred, 1e-300)) + y * math.log(mu) - mu
                    a[g] = 1.0
                    bought[g] = True
                else:
                    ea = pred * math.exp(-mu)
                    tt = ea + 1.0 - pred
                    logw[g] += math.log(max(tt, 1e-300))
                    a[g] = ea / tt if tt > 0 else 0.0
                    bought[g] = False
            exp_month[t] += ex / tot_w
            k = min(t - 1 - last, K - 1)
            rec_n[k] += 1.0
            rec_exp[k] += pb / tot_w
            if y > 0:
                rec_obs[k] += 1.0
                last = t


def _exposure(panel: MonthlyPanel, seasonality: np.ndarray | None) -> np.ndarray:
    """:func:`~simulator.calibration.lapse_return.exposure` as a ``[1, months]`` array (the
    one-step kernel's layout)."""
    return exposure(panel, seasonality)[None, :]


def state_chain(types: Types, rho: float, recency_months: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected purchases next month (``rate``) and probability of buying next month (``buy``)
    of each state ``(type, recency)``, arrays ``[types, recency_months + 1]`` (standard months,
    no seasonality)."""
    G, R = len(types.rate), recency_months
    rate = np.zeros((G, R + 1))
    buy = np.zeros((G, R + 1))
    for g in range(G):
        lam, p = types.rate[g], types.lapse[g]
        f = 1.0
        for k in range(R + 1):
            pred = f * (1.0 - p) if k == 0 else f + (1.0 - f) * rho
            rate[g, k] = pred * lam
            buy[g, k] = pred * (1.0 - math.exp(-lam))
            ea = pred * math.exp(-lam)
            f = ea / (ea + 1.0 - pred)
    return rate, buy


def _posterior(panel: MonthlyPanel, model: LapseReturnModel, types: Types, seasonality: np.ndarray | None) -> np.ndarray:
    """P(type | history) of each customer of the panel, ``[customers, types]``."""
    ll = type_loglik(panel, _exposure(panel, seasonality)[0], types.rate, types.lapse, model.rho)
    lw = ll + np.log(np.maximum(types.weight, 1e-300))[None, :]
    lw -= lw.max(axis=1, keepdims=True)
    post = np.exp(lw)
    return post / post.sum(axis=1, keepdims=True)


#: Customers per block of the one-step pass (blocks run on threads; sums add in block order).
ONE_STEP_BLOCK = 1 << 16


def _one_step_fit(panel: MonthlyPanel, types: Types, rho: float, seasonality: np.ndarray | None,
                  max_recency: int) -> tuple[np.ndarray, pd.DataFrame]:
    """One-step-ahead expected purchases per month, and observed vs expected probability of
    buying next month by recency, under the model's types (in sample). Customers are taken in
    blocks on threads; the blocks' sums are added in block order, so the result does not depend
    on the number of threads."""
    from concurrent.futures import ThreadPoolExecutor

    from simulator.engine.kernels import threads

    K = max_recency + 1
    T = panel.n_months
    counts = np.ascontiguousarray(panel.counts)
    first = np.ascontiguousarray(panel.first_month, dtype=np.int64)
    phi = panel.first_month_fraction()
    args = (np.ascontiguousarray(_exposure(panel, seasonality)), np.ascontiguousarray(types.rate, dtype=np.float64),
            np.ascontiguousarray(types.lapse, dtype=np.float64), float(rho),
            np.ascontiguousarray(types.weight, dtype=np.float64))
    starts = list(range(0, panel.n_customers, ONE_STEP_BLOCK))

    def block(lo: int) -> tuple[np.ndarray, ...]:
        hi = min(lo + ONE_STEP_BLOCK, panel.n_customers)
        out = (np.zeros(T), np.zeros(K), np.zeros(K), np.zeros(K))
        _one_step(counts[lo:hi], first[lo:hi], phi[lo:hi], *args, *out)
        return out

    if len(starts) > 1:
        with ThreadPoolExecutor(max_workers=min(threads(), len(starts))) as pool:
            parts = list(pool.map(block, starts))
    else:
        parts = [block(lo) for lo in starts]
    exp_month, rec_n, rec_obs, rec_exp = (np.sum([p[k] for p in parts], axis=0) if len(parts) > 1 else parts[0][k]
                                          for k in range(4))
    with np.errstate(invalid="ignore", divide="ignore"):
        by_rec = pd.DataFrame({"recency_months": np.arange(K), "observations": rec_n,
                               "observed": rec_obs / rec_n, "fitted": rec_exp / rec_n})
    return exp_month, by_rec[by_rec["observations"] > 0].reset_index(drop=True)


# ======================================================================================
# baskets, seasonality, arrivals
# ======================================================================================


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


def _acquisition(panel: MonthlyPanel, burn_in: int, window: int = 12) -> tuple[float, str]:
    T = panel.n_months
    lo = max(burn_in, T - window)
    if lo >= T:
        return 0.0, (f"no arrivals estimated: the log has {T} months, not more than the {burn_in}-month burn-in at its start "
                     "(customers first seen in a log's first months are mostly existing customers)")
    new = np.bincount(panel.first_month, minlength=T)[lo:T]
    return float(new.mean()), (f"arrivals: mean new customers per month over {panel.months[lo]}..{panel.months[-1]} "
                               f"({T - lo} months after a {burn_in}-month burn-in at the start of the log)")


# ======================================================================================
# optional columns: category, member, channel, store
# ======================================================================================


@dataclass(frozen=True)
class EnrolmentFit:
    """Joining a program, from the log's member flag (see the module docstring).

    Attributes
    ----------
    estimate : float or None
        Pooled monthly hazard ``joiners / at_risk``, written as the market's
        ``response.enrolment_propensity``; None when there is too little information (the
        default is kept).
    joiners : int
        Customer-months in the counted months that hold a customer's first member-flagged
        transaction.
    at_risk : int
        Customer-months in the counted months with a purchase and no member-flagged
        transaction in an earlier month.
    member_customers : int
        Customers known at the calibration end with a member-flagged transaction.
    member_share : float
        ``member_customers`` over the customers known at the calibration end.
    unknown_share : float
        Share of the window's transactions whose flag is unknown (blank or unrecognised).
    months : tuple of pandas.Period or None
        First and last month counted (after the burn-in); None when none is.
    per_customer : pandas.DataFrame or None
        Per customer known at the calibration end (the panel's row order): ``at_risk``
        (purchaser-months at risk counted), ``joined`` (1 when its first member-flagged month is
        a counted month), ``member`` (1 when it has a member-flagged transaction); their sums are
        ``at_risk``, ``joiners`` and ``member_customers`` (the store network sums them by store).
    """

    estimate: float | None
    joiners: int
    at_risk: int
    member_customers: int
    member_share: float
    unknown_share: float
    months: tuple[pd.Period, pd.Period] | None
    per_customer: pd.DataFrame | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class OptionalColumnsFit:
    """What the log's optional columns gave, over the calibration window.

    Attributes
    ----------
    columns : tuple of str
        The optional columns the log has (of
        :data:`~simulator.calibration.transactions.OPTIONAL_COLUMNS`).
    categories : pandas.DataFrame or None
        Per market category (largest first): ``category`` (the market name), ``spend``,
        ``share`` (as written to the market file) and ``values`` (the log's values merged into
        it, ``(missing)`` for rows without one); None without a category column or spend.
    channels : pandas.DataFrame or None
        Per channel (largest spend first): ``channel`` (as in the log, ``(missing)``),
        ``spend``, ``share``.
    stores : int or None
        Distinct stores with a row in the window.
    enrolment : EnrolmentFit or None
    notes : list of str
        Calibration notes (added to the diagnostics' notes).
    network : StoreFit or None
        The market's store network from the store column
        (:func:`~simulator.calibration.stores.store_network`, set by :func:`calibrate` once the
        segments are known); None without a store column or a store in the window.
    """

    columns: tuple[str, ...]
    categories: pd.DataFrame | None
    channels: pd.DataFrame | None
    stores: int | None
    enrolment: EnrolmentFit | None
    notes: list[str]
    network: StoreFit | None = None

    def market_fields(self) -> dict:
        """The market-file fields they give: ``categories`` and ``response`` when estimated
        (nothing otherwise, so that a log without them gives the market it always did)."""
        out: dict = {}
        if self.categories is not None:
            out["categories"] = dict(zip(self.categories["category"], self.categories["share"]))
        if self.enrolment is not None and self.enrolment.estimate is not None:
            out["response"] = {"enrolment_propensity": self.enrolment.estimate}
        if self.network is not None:
            out["stores"] = self.network.network
        return out


def category_names(values: pd.Series | pd.Index | list) -> np.ndarray:
    """Valid market names (``^[A-Za-z][A-Za-z0-9_-]*$``, at most 64 characters) for category
    values: accents dropped, lower case, each run of other characters than ``a-z0-9`` one
    ``_``, no ``_`` at either end; ``c_`` in front of a name not starting with a letter
    (``c_`` and a short hash of the value when nothing is left). Missing values (None, NaN)
    become :data:`UNKNOWN_CATEGORY`. Different values may give one name (``Food``, ``FOOD ``):
    the caller merges them."""
    raw = pd.Series(list(values), dtype=object)
    missing = raw.isna().to_numpy(dtype=bool)
    text = raw.where(~missing, "").astype(str)
    name = (text.str.normalize("NFKD").str.encode("ascii", "ignore").str.decode("ascii").str.lower()
            .str.replace(r"[^a-z0-9]+", "_", regex=True).str.strip("_"))
    empty = (name == "").to_numpy(dtype=bool) & ~missing
    if empty.any():
        name[empty] = ["c_" + hashlib.sha1(t.encode("utf-8")).hexdigest()[:8] for t in text[empty]]
    prefix = ~name.str.match(r"[a-z]").to_numpy(dtype=bool)
    name[prefix] = "c_" + name[prefix]
    name = name.str.slice(0, 64).str.rstrip("_")
    name[missing] = UNKNOWN_CATEGORY
    return name.to_numpy(dtype=object)


def _window_table(spend_by: dict[str, pd.DataFrame], column: str, end: pd.Timestamp) -> pd.DataFrame | None:
    table = spend_by.get(column)
    if table is None:
        return None
    return table[(table["month"] <= end.to_period("M")).to_numpy(dtype=bool)]


def _category_fit(table: pd.DataFrame) -> tuple[pd.DataFrame | None, list[str]]:
    """Spend shares by market category (see the module docstring) and the notes on them."""
    by_value = table.groupby("value", dropna=False, sort=False)["amount"].sum()
    names = category_names(by_value.index)
    values = pd.Series(["(missing)" if pd.isna(v) else str(v) for v in by_value.index], dtype=object)
    spend = pd.DataFrame({"category": names, "spend": by_value.to_numpy(dtype=np.float64), "values": values})
    total = float(spend["spend"].sum())
    if not total > 0:
        return None, ["category: no spend in the calibration window, so no category shares (the market's "
                      "categories are left empty)"]
    merged = spend.groupby("category", sort=False).agg(spend=("spend", "sum"), values=("values", lambda v: ", ".join(sorted(v))),
                                                       n_values=("values", "size"))
    merged = merged.reset_index().sort_values(["spend", "category"], ascending=[False, True], kind="stable")
    merges = merged.loc[merged["n_values"] > 1, ["category", "values"]]
    merged = merged.drop(columns="n_values")
    lumped = 0
    if len(merged) > MAX_CATEGORIES:
        top, rest = merged.iloc[:MAX_CATEGORIES], merged.iloc[MAX_CATEGORIES:]
        lumped = len(rest)
        extra = pd.DataFrame({"category": [OTHER_CATEGORY], "spend": [float(rest["spend"].sum())],
                              "values": [f"{lumped} smaller categories"]})
        merged = pd.concat([top, extra], ignore_index=True)
        merged = merged.groupby("category", sort=False).agg(spend=("spend", "sum"), values=("values", "; ".join))
        merged = merged.reset_index().sort_values(["spend", "category"], ascending=[False, True], kind="stable")
    row = _rounded_row(dict(zip(merged["category"], merged["spend"] / total)))
    merged = merged[merged["category"].isin(list(row))].reset_index(drop=True)
    merged["share"] = merged["category"].map(row).astype(np.float64)
    merged = merged[["category", "spend", "share", "values"]]
    renamed = [(v, n) for v, n in zip(values, names) if v != n and v != "(missing)"]
    unknown = float(spend.loc[values.to_numpy() == "(missing)", "spend"].sum()) / total
    largest = ", ".join(f"{c} {sh:.1%}" for c, sh in zip(merged["category"][:5], merged["share"][:5]))
    note = (f"category: share of spend by category over the calibration window (rows before same-day merging) "
            f"written to the market's categories: {len(merged)} categories, largest {largest}")
    if lumped:
        note += f"; the {lumped} smallest beyond the {MAX_CATEGORIES} largest summed into '{OTHER_CATEGORY}'"
    if unknown > 0:
        note += f"; {unknown:.1%} of spend has no category (as '{UNKNOWN_CATEGORY}')"
    if renamed:
        shown = ", ".join(f"'{v}' -> '{n}'" for v, n in renamed[:3])
        note += f"; {len(renamed)} names made valid ({shown}{', ...' if len(renamed) > 3 else ''})"
    if len(merges):
        shown = "; ".join(f"{v} -> '{c}'" for c, v in zip(merges["category"][:3], merges["values"][:3]))
        note += f"; values merged into one name: {shown}{'; ...' if len(merges) > 3 else ''}"
    return merged, [note]


def _channel_fit(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    by_value = table.groupby("value", dropna=False, sort=False)["amount"].sum()
    channels = pd.DataFrame({"channel": ["(missing)" if pd.isna(v) else str(v) for v in by_value.index],
                             "spend": by_value.to_numpy(dtype=np.float64)})
    channels = channels.sort_values(["spend", "channel"], ascending=[False, True], kind="stable").reset_index(drop=True)
    total = float(channels["spend"].sum())
    channels["share"] = channels["spend"] / total if total > 0 else 0.0
    shown = ", ".join(f"{c} {sh:.1%}" for c, sh in zip(channels["channel"][:TOP_CHANNELS], channels["share"][:TOP_CHANNELS]))
    more = f" (top {TOP_CHANNELS} of {len(channels)})" if len(channels) > TOP_CHANNELS else f" ({len(channels)} in all)"
    return channels, [f"channel: share of spend by channel over the calibration window{more}: {shown}; "
                      "no market field uses it"]


def _store_fit(table: pd.DataFrame) -> tuple[int, list[str]]:
    given = table["value"].notna().to_numpy(dtype=bool)
    stores = int(table.loc[given, "value"].nunique())
    rows = float(table["rows"].sum())
    missing = float(table.loc[~given, "rows"].sum()) / rows if rows > 0 else 0.0
    note = f"store: {stores} stores with purchases in the calibration window"
    if missing > 0:
        note += f" ({missing:.1%} of rows without a store)"
    return stores, [note]


def _enrolment_fit(frame: pd.DataFrame, end: pd.Timestamp, panel: MonthlyPanel, burn_in: int) -> tuple[EnrolmentFit, list[str]]:
    """The pooled monthly hazard of joining, from the member flag (see the module docstring)."""
    days = pd.to_datetime(frame["date"]).to_numpy().astype("datetime64[D]")
    keep = days <= np.datetime64(end.date(), "D")
    flags = parse_member_flags(frame["member"]).array[keep]
    member = flags.fillna(False).to_numpy(dtype=bool)
    unknown = flags.isna()
    row = pd.Index(panel.customers).get_indexer(frame["customer_id"].astype(str).to_numpy()[keep])
    month = days[keep].astype("datetime64[M]")
    first = np.datetime64(panel.months[0].start_time.date(), "M")
    col = (month - first).astype(np.int64)
    n, T = panel.n_customers, panel.n_months
    first_member = np.full(n, T, dtype=np.int64)           # T: never flagged by the calibration end
    flagged = member & (row >= 0)
    np.minimum.at(first_member, row[flagged], col[flagged])
    t = np.arange(T)[None, :]
    counted = t >= burn_in
    bought = panel.counts > 0
    risk_c = (bought & (first_member[:, None] >= t) & counted).sum(axis=1).astype(np.int64)
    joined_c = ((first_member >= burn_in) & (first_member < T)).astype(np.int64)
    member_c = (first_member < T).astype(np.int64)
    at_risk, joiners, members = int(risk_c.sum()), int(joined_c.sum()), int(member_c.sum())
    share = members / max(n, 1)
    unknown_share = float(unknown.mean()) if len(unknown) else 0.0
    months = (panel.months[burn_in], panel.months[-1]) if burn_in < T else None
    enough = members >= 1 and joiners >= 1 and at_risk >= MIN_ENROLMENT_AT_RISK
    estimate = _round(joiners / at_risk) if enough else None
    span = f"{months[0]}..{months[1]}" if months else "no month"
    counts = (f"{joiners:,} joins over {at_risk:,} purchaser-months at risk in {span}, after the {burn_in}-month burn-in "
              "at the start of the log")
    tail = f"; {share:.1%} of the {n:,} customers known at the calibration end have a member-flagged transaction"
    if unknown_share > 0:
        tail += f"; flag unknown (blank or unrecognised) on {unknown_share:.1%} of transactions"
    if enough:
        note = (f"member: enrolment_propensity {estimate:.4g} written to the market's response, the monthly share of "
                f"purchasing non-members whose first member-flagged transaction falls in the month ({counts})" + tail)
    else:
        note = (f"member: too little information to estimate enrolment_propensity ({members} member-flagged customers, "
                f"{counts}; needed at least 1 join and {MIN_ENROLMENT_AT_RISK} purchaser-months at risk): the default "
                f"{RESPONSE_DEFAULTS['enrolment_propensity']:g} is kept" + tail)
    per_customer = pd.DataFrame({"at_risk": risk_c, "joined": joined_c, "member": member_c})
    return EnrolmentFit(estimate=estimate, joiners=joiners, at_risk=at_risk, member_customers=members, member_share=share,
                        unknown_share=unknown_share, months=months, per_customer=per_customer), [note]


def optional_columns(log: TransactionLog | pd.DataFrame, end: pd.Timestamp, panel: MonthlyPanel, *,
                     burn_in: int = 6) -> OptionalColumnsFit | None:
    """What the optional columns of ``log`` give over the window of ``panel`` ending on ``end``
    (see the module docstring); None when the log has none of them.

    Spend by category, channel and store comes from ``log.spend_by`` (rows before same-day
    merging); for a plain DataFrame, whose rows are the log's rows, from the frame itself.
    """
    frame = log.transactions if isinstance(log, TransactionLog) else log
    spend_by = log.spend_by if isinstance(log, TransactionLog) else {}
    if not spend_by:
        spend_by = spend_by_value(frame)
    columns = tuple(c for c in OPTIONAL_COLUMNS if c in frame.columns or c in spend_by)
    if not columns:
        return None
    notes: list[str] = []
    categories = channels = stores = enrolment = None
    table = _window_table(spend_by, "category", end)
    if table is not None:
        categories, more = _category_fit(table)
        notes += more
    if "member" in frame.columns:
        enrolment, more = _enrolment_fit(frame, end, panel, burn_in)
        notes += more
    table = _window_table(spend_by, "channel", end)
    if table is not None:
        channels, more = _channel_fit(table)
        notes += more
    table = _window_table(spend_by, "store", end)
    if table is not None:
        stores, more = _store_fit(table)
        notes += more
    return OptionalColumnsFit(columns=columns, categories=categories, channels=channels, stores=stores,
                              enrolment=enrolment, notes=notes)


# ======================================================================================
# calibration
# ======================================================================================


@dataclass
class CalibrationDiagnostics:
    """What the calibration report shows.

    Attributes
    ----------
    segment_sizes : pandas.DataFrame
        Per segment: ``customers`` (expected number at the calibration end), ``share``,
        ``purchase_rate``, ``basket_mean``, ``lapsed``.
    transitions : pandas.DataFrame
        The monthly transition matrix (rows: from, columns: to).
    monthly : pandas.DataFrame
        Per calibration month: ``observed`` transactions (first purchases included),
        ``observed_repeat`` and ``fitted_repeat`` (one-step-ahead expectation of the model, or
        the chain's for a rule set), ``new_customers``.
    return_by_recency : pandas.DataFrame
        Per recency (months since the last purchase): observed share of customers buying in the
        next month over the calibration window, and the fitted share.
    frequency : pandas.DataFrame
        Distribution of the customers' repeat transactions over the window: observed and fitted
        (expected under the model, simulated from each customer's first purchase).
    basket : BasketFit
    basket_sample : numpy.ndarray
        Transaction amounts of the window (for the fitted-vs-observed basket plot).
    notes : list of str
    optional_columns : OptionalColumnsFit or None
        What the optional columns (category, member, channel, store) gave; None when the log
        has none of them.
    states : pandas.DataFrame or None
        Default segmentation: per state of the model (type ``tier`` at ``recency``), its expected
        ``customers`` at the calibration end, its probability of buying next month
        (``buy_next_month``), the market ``segment`` it is in (sparse states merged) and the most
        customers that segment holds, at the end or in the months projected after it
        (``segment_most_customers``, of the smaller of the log's customers and the base).
    """

    segment_sizes: pd.DataFrame
    transitions: pd.DataFrame
    monthly: pd.DataFrame
    return_by_recency: pd.DataFrame
    frequency: pd.DataFrame
    basket: BasketFit
    basket_sample: np.ndarray
    potential: PotentialScore | None
    potential_mix: pd.DataFrame | None
    model: LapseReturnModel | None
    notes: list[str] = field(default_factory=list)
    optional_columns: OptionalColumnsFit | None = None
    states: pd.DataFrame | None = None


@dataclass
class CalibratedMarket:
    """A calibrated market and what went into it.

    Attributes
    ----------
    market : Market
        The validated market.
    diagnostics : CalibrationDiagnostics
    panel : MonthlyPanel
        The calibration window.
    calibration_end : pandas.Timestamp
        Last day of the window.
    segmentation : RFMStates or RuleSet
    customers : pandas.DataFrame
        Per customer known at the calibration end (index ``customer_id``): ``recency_months``,
        ``segment`` (most likely), ``basket_mult``, and the posterior type probabilities
        (columns ``p_<type>``) for the default segmentation.
    types : Types or None
        The model's types (default segmentation).
    state_segment : numpy.ndarray or None
        Default segmentation: the market segment of each of the model's states (index
        ``1 + g (R + 1) + k`` for type g at recency k, 0 for ``new``), which differs from the
        state when sparse states were merged.
    """

    market: Market
    diagnostics: CalibrationDiagnostics
    panel: MonthlyPanel
    calibration_end: pd.Timestamp
    segmentation: RFMStates | RuleSet
    customers: pd.DataFrame
    types: Types | None
    source: dict[str, str] = field(default_factory=dict)
    state_segment: np.ndarray | None = None

    @property
    def model(self) -> LapseReturnModel | None:
        return self.diagnostics.model


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


def state_name(tier: str, recency: int, recency_months: int) -> str:
    return f"{tier}_r{recency:02d}" + ("plus" if recency == recency_months else "")


def calibrate(
    log: TransactionLog | pd.DataFrame,
    *,
    name: str,
    currency: str,
    gross_margin: float,
    calibration_end: str | pd.Timestamp | None = None,
    segmentation: RFMStates | RuleSet | None = None,
    vat_rate: float = 0.0,
    prices_include_tax: bool = True,
    reporting_currency: str | None = None,
    fx_to_reporting: float = 1.0,
    discount_rate: float = 0.08,
    seasonality: Literal["auto", "flat"] | tuple[float, ...] | np.ndarray = "auto",
    seasonality_min_months: int = 24,
    seasonality_source: str | None = None,
    acquisition_burn_in: int = 6,
    potential_horizon: int = 3,
    description: str | None = None,
    source: str | Path | None = None,
    step: Callable[[str], None] | None = None,
    customers: int | None = None,
    channels: dict[str, float] | None = None,
    member_opt_in: dict[str, float] | None = None,
    min_segment_customers: float = MIN_SEGMENT_CUSTOMERS,
    min_store_customers: int = MIN_STORE_CUSTOMERS,
) -> CalibratedMarket:
    """Estimate a market from a transaction log (see the module docstring).

    Parameters
    ----------
    log : TransactionLog or DataFrame
        The cleaned log (:func:`~simulator.calibration.transactions.read_transactions`).
    name : str
        Market name (a letter, then letters, digits, ``_`` or ``-``).
    currency : str
        ISO 4217 code of the log's amounts.
    gross_margin : float
        Gross margin on net sales (not in a transaction log: the finance team's figure).
    calibration_end : date-like, optional
        Last day used; it is moved back to the end of the last complete calendar month on or
        before it. Default: the last complete month of the log.
    segmentation : RFMStates or RuleSet, optional
        Default ``RFMStates()``.
    vat_rate, prices_include_tax, discount_rate : economics of the market file.
    reporting_currency, fx_to_reporting : default the log's currency at 1.
    seasonality : "auto", "flat" or 12 multipliers
        "auto": month lengths, times calendar-month effects estimated when the window has
        ``seasonality_min_months`` months or more; "flat": month lengths only; 12 values: the
        whole multipliers of January..December (month lengths included), normalised to mean 1.
    seasonality_source : str, optional
        Where 12 given multipliers come from (a market file), named in the notes.
    acquisition_burn_in : int
        Months at the start of the log whose first purchases are not counted as arrivals.
    potential_horizon : int
        Months ahead of the potential score (0: no potential score).
    source : path, optional
        The log's file, named (with its SHA-256) in the market file's header.
    step : callable, optional
        Called with the name of each long step as it starts (progress).
    customers : int, optional
        The market's customer base when the log is a sample or one banner of several: the
        market's ``customers`` is this instead of the log's customers known at the calibration
        end; segment shares are unchanged and arrivals are scaled by ``customers`` / the log's
        customers (the log's are kept in ``calibration.log_customers``).
    channels, member_opt_in : dict, optional
        The market's ``reachability`` (share opted in to each contact channel; share of new
        members opting in); a log does not hold them. Default :data:`DEFAULT_CHANNELS` and
        :data:`DEFAULT_MEMBER_OPT_IN`, stated as assumptions in the market file's header.
    min_segment_customers : float
        Default states: segments holding fewer customers at the calibration end are merged
        (:func:`~simulator.calibration.groups.merge_sparse`; 0: none is).
    min_store_customers : int
        With a store column: stores home to fewer customers are merged into one store
        ``other`` (:func:`~simulator.calibration.stores.store_network`).
    """
    step = step or (lambda name: None)
    segmentation = RFMStates() if segmentation is None else segmentation
    end = calibration_month_end(log, calibration_end)
    frame = log.transactions if isinstance(log, TransactionLog) else log
    first_day = pd.Timestamp(pd.to_datetime(frame["date"]).min()).normalize()
    if first_day > end:
        raise ValueError(f"no complete calendar month to calibrate on: the calibration window ends on {end.date()} "
                         f"(the end of the last complete month) but the log starts on {first_day.date()}")
    step("monthly panel")
    panel = monthly_panel(log, end, visits=True)
    notes: list[str] = []
    if calibration_end is not None and pd.Timestamp(calibration_end).normalize() != end:
        notes.append(f"calibration end moved from {pd.Timestamp(calibration_end).date()} to {end.date()}, "
                     "the end of the last complete month")
    T = panel.n_months
    step("baskets and optional columns")
    optional = optional_columns(log, end, panel, burn_in=acquisition_burn_in)
    tx = panel.visits
    basket, per_customer = _fit_baskets(tx)
    bmult = basket_multipliers(per_customer, basket, panel.n_customers)
    acquisition, note = _acquisition(panel, acquisition_burn_in)
    notes.append(note)
    month_len = _month_lengths()
    first_counts = panel.counts[np.arange(panel.n_customers), panel.first_month]
    new_rate = float(first_counts.mean())

    potential = None
    if potential_horizon:
        try:
            step("potential score")
            potential = fit_potential(panel, horizon_months=potential_horizon)
        except ValueError as exc:
            notes.append(f"no potential score: {exc}")

    season_fixed = None
    auto = isinstance(seasonality, str) and seasonality == "auto"
    if not isinstance(seasonality, str):
        season_fixed = np.asarray(seasonality, dtype=np.float64)
        if season_fixed.shape != (12,) or not np.all(np.isfinite(season_fixed)) or np.any(season_fixed < 0) \
                or season_fixed.sum() <= 0:
            raise ValueError(f"seasonality needs 12 values >= 0 (January..December), got {seasonality!r}")
        season_fixed = season_fixed / season_fixed.mean()
    elif seasonality not in ("auto", "flat"):
        raise ValueError(f"seasonality must be 'auto', 'flat' or 12 values, not {seasonality!r}")

    if isinstance(segmentation, RFMStates):
        fit = _calibrate_states(panel, segmentation, season_fixed, auto, seasonality_min_months, tx, step)
    elif isinstance(segmentation, RuleSet):
        step("segments by the rule set")
        fit = _calibrate_rules(panel, segmentation, season_fixed, auto, seasonality_min_months, tx)
    else:
        raise TypeError(f"segmentation must be RFMStates or RuleSet, not {type(segmentation).__name__}")
    if season_fixed is not None:
        fit.notes.append("seasonality as given" if seasonality_source is None else
                         f"seasonality borrowed from {seasonality_source} (its 12 calendar-month multipliers, month "
                         "lengths included), not estimated from this log")
    fit.notes.insert(0, f"first month of customers: {new_rate:.3f} transactions on average (the first included)")
    if customers is not None and customers <= 0:
        raise ValueError(f"customers must be a positive whole number, got {customers}")
    base = int(customers) if customers is not None else int(panel.n_customers)
    if base != panel.n_customers:
        notes.append(f"customer base {base:,} as given (the log holds {panel.n_customers:,} customers at the calibration "
                     f"end): segment shares as estimated, arrivals scaled by {base / panel.n_customers:.4g}")
        acquisition = acquisition * base / panel.n_customers

    # portable groups (lifecycle stage, value band) of each segment, then sparse segments merged
    states = None
    segment_of = None
    if isinstance(segmentation, RFMStates):
        R = segmentation.recency_months
        life, val = state_groups(fit.types.rate, fit.baskets[1::R + 1], fit.types.weight, fit.shares, R, fit.lapsed)
        mg = merge_sparse(names=fit.names, descriptions=fit.descriptions, shares=fit.shares, rates=fit.rates,
                          shapes=fit.shapes, baskets=fit.baskets, lapsed=fit.lapsed, transitions=fit.transitions,
                          lifecycle=life, value=val, type_names=fit.types.names, lapse_tiers=segmentation.lapse_tiers,
                          recency_months=R, customers=min(base, panel.n_customers), type_rate=fit.types.rate,
                          arrivals=acquisition * min(base, panel.n_customers) / base,
                          min_customers=min_segment_customers)
        G = len(fit.types.names)
        states = pd.DataFrame({"state": list(fit.names[1:]), "tier": np.repeat(list(fit.types.names), R + 1),
                               "recency": np.tile(np.arange(R + 1), G),
                               "customers": fit.shares[1:] * panel.n_customers,
                               "buy_next_month": [fit.transitions[s, 1 + ((s - 1) // (R + 1)) * (R + 1)] for s in range(1, len(fit.names))],
                               "segment": [mg.names[j] for j in mg.segment_of[1:]],
                               "segment_most_customers": mg.most_customers[mg.segment_of[1:]]})
        n_merged = sum(len(m) for m in mg.merged if len(m) > 1)
        if n_merged:
            notes.append(f"{n_merged} of the model's {len(fit.names) - 1} states held fewer than {min_segment_customers:g} "
                         f"customer each, at the calibration end and in the {PROJECTION_MONTHS} months the chain projects "
                         f"after it (of {min(base, panel.n_customers):,} customers and the arrivals): merged "
                         f"into {sum(1 for m in mg.merged if len(m) > 1)} segments: a tier holding less merged with an adjacent "
                         "tier recency by recency, then each state with an adjacent recency; transitions lumped with the "
                         "chain's stationary weights (see simulator/calibration/groups.py)")
        segment_of = mg.segment_of
        fit = dataclasses.replace(fit, names=mg.names, descriptions=mg.descriptions, shares=mg.shares, rates=mg.rates,
                                  shapes=mg.shapes, baskets=mg.baskets, lapsed=mg.lapsed, transitions=mg.transitions,
                                  weights=sparse.csr_matrix(fit.weights @ sparse.csr_matrix(mg.indicator)))
        life, val = mg.lifecycle, mg.value
    else:
        own = row_argmax(fit.weights)
        life, val = rule_groups(fit.names, fit.names[0], fit.rates, fit.baskets, fit.shares, fit.lapsed, own,
                                rfm_arrays(panel, T - 1)["recency_months"])
        few = [n for n, sh in zip(fit.names[1:], fit.shares[1:]) if sh * panel.n_customers < min_segment_customers]
        if few:
            notes.append(f"segments holding fewer than {min_segment_customers:g} customer at the calibration end: "
                         f"{', '.join(few)} (a rule set's segments are kept as named)")

    names = fit.names
    S = len(names)
    shares = _rounded_shares(fit.shares)
    # potential band mix of each segment (customers weighted by their segment membership); a
    # segment no known customer is in takes the overall mix. It goes into the market file so
    # that the engine draws each agent's band from its segment's mix.
    pot_mix = band = None
    if potential is not None:
        band = potential.bands.reindex(pd.Index(panel.customers)).to_numpy()
        code = pd.Categorical(band, categories=list(BANDS)).codes
        mix = np.stack([np.asarray(fit.weights[code == b].sum(axis=0)).ravel() for b in range(3)], axis=1)
        overall = np.bincount(code[code >= 0], minlength=3).astype(np.float64)
        overall = overall / overall.sum() if overall.sum() > 0 else np.full(3, 1 / 3)
        tot = mix.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            pot_mix = pd.DataFrame(np.where(tot > 0, mix / tot, overall[None, :]), index=list(names), columns=list(BANDS))
    segments = []
    for s in range(S):
        segments.append({
            "name": names[s],
            "description": fit.descriptions[s],
            "share": float(shares[s]),
            "purchase_rate": _round(fit.rates[s]),
            "rate_shape": _round(min(max(fit.shapes[s], 0.05), HOMOGENEOUS_SHAPE), 4),
            "basket": {"mean": _round(max(fit.baskets[s], 0.01), 4), "cv": _round(basket.cv, 4),
                       "individual_cv": _round(basket.individual_cv, 4)},
            "lapsed": bool(fit.lapsed[s]),
            "lifecycle": life[s],
            "value": val[s],
            **({"potential": _rounded_row(pot_mix.iloc[s].to_dict())} if pot_mix is not None else {}),
        })
    transitions = {names[s]: _rounded_row({names[j]: fit.transitions[s, j] for j in np.flatnonzero(fit.transitions[s] > 0)})
                   for s in range(S)}
    feats = rfm_arrays(panel, T - 1)
    if optional is not None and optional.stores is not None:
        step("store network")
        e = optional.enrolment
        column = dict(log.report.columns).get("store", "store") if isinstance(log, TransactionLog) else "store"
        network = store_network(
            frame, customers=panel.customers, end=end, counts=panel.counts, spend=panel.spend,
            first_month=panel.first_month, recency=feats["recency_months"], weights=fit.weights, segments=tuple(names),
            enrolment=e.per_customer if e is not None else None, propensity=e.estimate if e is not None else None,
            min_customers=min_store_customers, column=column, source=Path(source).name if source is not None else "")
        if network is not None:
            optional = dataclasses.replace(optional, network=network, notes=optional.notes + network.notes)
    season_total = fit.seasonality if fit.seasonality is not None else month_len
    season_list = [round(float(v), 6) for v in season_total / season_total.mean()]
    top = int(np.argmax(season_list))
    season_list[top] = round(season_list[top] + 12.0 - sum(season_list), 6)
    window = f"{panel.months[0]}..{panel.months[-1]}"
    market = Market.model_validate({
        "name": name,
        "description": description or (f"Calibrated from a transaction log: window {window}, {panel.n_customers} customers, "
                                       f"{'frequency tier x recency states' if isinstance(segmentation, RFMStates) else 'rule set ' + segmentation.name}."),
        "currency": currency,
        "reporting_currency": reporting_currency or currency,
        "fx_to_reporting": float(fx_to_reporting),
        "customers": base,
        "acquisition": {"per_month": _round(acquisition, 3), "segment": names[0]},
        "segments": tuple(segments),
        "transitions": transitions,
        "seasonality": tuple(season_list),
        "economics": {"gross_margin": float(gross_margin), "vat_rate": float(vat_rate),
                      "prices_include_tax": bool(prices_include_tax), "discount_rate": float(discount_rate)},
        "reachability": {"channels": dict(DEFAULT_CHANNELS if channels is None else channels),
                         "member_opt_in": dict(DEFAULT_MEMBER_OPT_IN if member_opt_in is None else member_opt_in)},
        "calibration": {"source": Path(source).name if source is not None else "", "log_start": first_day.date(),
                        "log_end": end.date(), "log_customers": int(panel.n_customers)},
        **(optional.market_fields() if optional is not None else {}),
    })

    # per customer (known at the calibration end)
    cust = pd.DataFrame({"recency_months": feats["recency_months"], "frequency": feats["frequency"],
                         "segment": np.array(names, dtype=object)[row_argmax(fit.weights)], "basket_mult": bmult},
                        index=pd.Index(panel.customers, name="customer_id"))
    if fit.posterior is not None and fit.types is not None:
        for g, tn in enumerate(fit.types.names):
            cust[f"p_{tn}"] = fit.posterior[:, g]
    if potential is not None:
        cust["potential"] = potential.scores.reindex(cust.index).to_numpy()
        cust["band"] = band
    monthly = pd.DataFrame({
        "period": [str(p) for p in panel.months],
        "observed": panel.counts.sum(axis=0),
        "observed_repeat": panel.counts.sum(axis=0) - np.bincount(panel.first_month, minlength=T),
        "fitted_repeat": fit.fitted_repeat,
        "new_customers": np.bincount(panel.first_month, minlength=T),
        "revenue": panel.spend.sum(axis=0),
    })
    sizes = pd.DataFrame({"segment": list(names), "customers": shares * panel.n_customers, "share": shares,
                          "purchase_rate": fit.rates, "basket_mean": fit.baskets, "lapsed": fit.lapsed,
                          "lifecycle": life, "value": val})
    diag = CalibrationDiagnostics(
        segment_sizes=sizes, transitions=pd.DataFrame(fit.transitions, index=list(names), columns=list(names)),
        monthly=monthly, return_by_recency=fit.by_recency, frequency=fit.frequency, basket=basket,
        basket_sample=tx["amount"].to_numpy(), potential=potential, potential_mix=pot_mix, model=fit.model,
        notes=notes + fit.notes + (optional.notes if optional is not None else []), optional_columns=optional,
        states=states)
    src: dict[str, str] = {}
    if source is not None:
        raw = Path(source).read_bytes()
        src = {"name": Path(source).name, "sha256": hashlib.sha256(raw).hexdigest()}
    return CalibratedMarket(market=market, diagnostics=diag, panel=panel, calibration_end=end, segmentation=segmentation,
                            customers=cust, types=fit.types, source=src, state_segment=segment_of)


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


def _simulate_repeat_model(panel: MonthlyPanel, types: Types, rho: float, seasonality: np.ndarray | None,
                           draws: int | None = None, seed: int = 20240) -> np.ndarray:
    """Repeat transactions over the window of customers arriving like the panel's, under the
    model (types drawn from their weights): ``[draws, customers]``."""
    draws = _draws(panel.n_customers) if draws is None else draws
    rng = np.random.default_rng(seed)
    n, T = panel.n_customers, panel.n_months
    expo = _exposure(panel, seasonality)[0]
    phi = panel.first_month_fraction()
    out = np.zeros((draws, n), dtype=np.int64)
    for d in range(draws):
        g = rng.choice(len(types.rate), size=n, p=types.weight / types.weight.sum())
        lam, p = types.rate[g], types.lapse[g]
        active = np.ones(n, dtype=bool)
        total = rng.poisson(lam * phi * expo[panel.first_month])
        bought = np.ones(n, dtype=bool)
        for t in range(T):
            live = panel.first_month < t
            lapse = live & active & bought & (rng.random(n) < p)
            ret = live & ~active & (rng.random(n) < rho)
            active = (active & ~lapse) | ret
            y = np.where(live & active, rng.poisson(lam * expo[t]), 0)
            total += y
            bought = np.where(live, y > 0, bought)
        out[d] = total
    return out


#: Customers over which the seasonality's one-step expectations are computed on a larger log (a
#: random sample, fixed seed). A calendar month's ratio then has the relative error 1 / sqrt(its
#: expected count) -- 0.4% on the benchmark's log, 36 months of 250,000 customers buying 0.1 times
#: a month -- and the empirical-Bayes shrinkage weighs it as such.
SEASONALITY_CUSTOMERS = 250_000
SEASONALITY_SEED = 20241


def _calibrate_states(panel: MonthlyPanel, seg: RFMStates, season_fixed: np.ndarray | None, auto: bool,
                      min_months: int, tx: pd.DataFrame, step: Callable[[str], None] = lambda name: None) -> _Fit:
    notes: list[str] = []
    R = seg.recency_months
    season = season_fixed
    if season is None and auto:
        if panel.n_months >= min_months:
            step("seasonality (a first fit of the lapse-and-return model)")
            first = fit_lapse_return(panel, rough=True)
            ty = first.types(8, 3)
            sample = panel
            if panel.n_customers > SEASONALITY_CUSTOMERS:
                # a random sample of customers (the shrinkage's 1 / expected carries its noise)
                pick = np.sort(np.random.default_rng(SEASONALITY_SEED).choice(
                    panel.n_customers, SEASONALITY_CUSTOMERS, replace=False))
                sample = panel.restrict(pick)
            expected, _ = _one_step_fit(sample, ty, first.rho, None, 1)
            observed = sample.counts.sum(axis=0) - np.bincount(sample.first_month, minlength=sample.n_months)
            season, note = _estimate_seasonality(sample, observed, expected, min_months)
            if sample is not panel and season is not None:
                note += f", on a random sample of {SEASONALITY_CUSTOMERS:,} of the {panel.n_customers:,} customers"
            del sample                      # (its counts and spend: 150 MB at 250,000 customers)
            if season is not None:          # None: a calendar month without expected purchases (flat)
                season = _month_lengths() * season
                season = season / season.mean()
        else:
            season, note = _estimate_seasonality(panel, np.zeros(1), np.zeros(1), min_months)
        notes.append(note)
    elif season is None:
        notes.append("flat seasonality (month lengths only), as asked")
    step("fitting the lapse-and-return model")
    model = fit_lapse_return(panel, seasonality=season)
    types = model.types(seg.rate_tiers, seg.lapse_tiers)
    step("scoring customers (types, states, in-sample fit)")
    post = _posterior(panel, model, types, season)
    rate, buy = state_chain(types, model.rho, R)
    G = len(types.rate)
    T = panel.n_months
    recency = np.minimum(rfm_arrays(panel, T - 1)["recency_months"], R)
    S = 1 + G * (R + 1)
    names = [NEW_SEGMENT]
    descriptions = ["customers in their first month (their first purchase included)"]
    rates = np.zeros(S)
    lapsed = np.zeros(S, dtype=bool)
    trans = np.zeros((S, S))
    first_counts = panel.counts[np.arange(panel.n_customers), panel.first_month]
    rates[0] = float(first_counts.mean())
    # per-type basket: posterior-weighted spend per transaction
    spend_i = panel.spend.sum(axis=1)
    count_i = panel.counts.sum(axis=1)
    type_basket = (post * spend_i[:, None]).sum(axis=0) / np.maximum((post * count_i[:, None]).sum(axis=0), 1e-12)
    first_spend = panel.spend[np.arange(panel.n_customers), panel.first_month].sum()
    baskets = np.zeros(S)
    baskets[0] = float(first_spend / max(first_counts.sum(), 1))
    for g in range(G):
        for k in range(R + 1):
            s = 1 + g * (R + 1) + k
            names.append(state_name(types.names[g], k, R))
            silent = "bought this month" if k == 0 else (f"{k} months since the last purchase" if k < R else
                                                         f"{R} or more months since the last purchase")
            descriptions.append(f"{types.names[g].replace('_', ', ')} (active rate {types.rate[g]:.3g}/month, "
                                f"lapse after a purchase month {types.lapse[g]:.2f}); {silent}")
            rates[s] = rate[g, k]
            lapsed[s] = k >= seg.lapsed_from
            trans[s, 1 + g * (R + 1)] += buy[g, k]
            trans[s, 1 + g * (R + 1) + min(k + 1, R)] += 1.0 - buy[g, k]
            baskets[s] = type_basket[g]
        trans[0, 1 + g * (R + 1)] = types.weight[g]
    # each customer is on the G segments (type g, its recency): a sparse [customers, segments] matrix
    n = panel.n_customers
    weights = sparse.csr_matrix((post.ravel(), (np.repeat(np.arange(n), G),
                                 (1 + np.arange(G)[None, :] * (R + 1) + recency[:, None]).ravel())), shape=(n, S))
    shares = np.asarray(weights.sum(axis=0)).ravel() / max(n, 1)
    expected, by_rec = _one_step_fit(panel, types, model.rho, season, max(R, T - 1))
    sim = _simulate_repeat_model(panel, types, model.rho, season)
    freq = _frequency_table(panel.counts.sum(axis=1) - 1, sim)
    prof = ", ".join(f"{r:.4g}: {ll:.1f}" for r, ll in model.profile)
    se = dict(model.standard_errors)

    def est(name: str) -> str:
        v, e = getattr(model, name), se.get(name, float("nan"))
        return f"{name}={v:.4g}" + (f" (se {e:.2g})" if np.isfinite(e) else "")

    notes.append(f"lapse-and-return model: {est('r')}, {est('alpha')} (mean active rate "
                 f"{model.mean_rate:.3g}/month), {est('a')}, {est('b')} (mean lapse {model.mean_lapse:.3f}), "
                 f"rho={model.rho:.4g}; log-likelihood {model.log_likelihood:.1f} over {model.customers:,} customers")
    if model.on_bound:
        notes.append("warning: the estimate of " + ", ".join(model.on_bound) + " sits on a bound of the fit "
                     "(the log does not pin it down; a longer log, or more customers, would)")
    notes.append(f"profile log-likelihood of rho (monthly return probability of lapsed customers): {prof}")
    return _Fit(names=tuple(names), descriptions=descriptions, shares=shares, rates=rates,
                shapes=np.full(S, HOMOGENEOUS_SHAPE), baskets=baskets, lapsed=lapsed, transitions=trans,
                seasonality=season, weights=weights, fitted_repeat=expected, by_recency=by_rec, frequency=freq, notes=notes, posterior=post,
                types=types, model=model)


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


def customer_states(cm: CalibratedMarket, rng: np.random.Generator) -> tuple[np.ndarray, pd.Index]:
    """A draw of each known customer's segment at the calibration end (indices into
    ``cm.market.segments``): the model's type drawn from the customer's posterior, at its own
    recency; for a rule set, the customer's segment. Returns (segment indices, customer ids)."""
    names = cm.market.segment_names
    cust = cm.customers
    if cm.types is not None:
        R = cm.segmentation.recency_months
        post = cust[[f"p_{tn}" for tn in cm.types.names]].to_numpy()
        cum = np.cumsum(post, axis=1)
        cum[:, -1] = 1.0
        g = (rng.random(len(cust))[:, None] > cum).sum(axis=1)
        k = np.minimum(cust["recency_months"].to_numpy(), R)
        seg = 1 + g * (R + 1) + k
        if cm.state_segment is not None:
            seg = cm.state_segment[seg]
    else:
        index = {nm: i for i, nm in enumerate(names)}
        seg = np.array([index[s] for s in cust["segment"]], dtype=np.int64)
    return seg.astype(np.int64), cust.index


# ======================================================================================
# writing the market file
# ======================================================================================


def market_yaml(cm: CalibratedMarket, *, source_name: str | None = None, source_sha256: str | None = None) -> str:
    """The market file's text: a header comment saying where it comes from, then the market
    (:func:`simulator.specs.dump`, which loads back to an equal object)."""
    src_name = source_name or cm.source.get("name") or "(a transaction log given in memory)"
    src_hash = source_sha256 or cm.source.get("sha256")
    panel = cm.panel
    lines = [
        f"# Calibrated by loyalty-sim calibrate from {src_name}" + (f" (SHA-256 {src_hash})" if src_hash else ""),
        f"# calibration window {panel.months[0]}..{panel.months[-1]}, ending {cm.calibration_end.date()}; "
        f"{panel.n_customers} customers; loyalty-sim {__version__}.",
    ]
    if cm.model is not None:
        m = cm.model
        R = cm.segmentation.recency_months
        lines += [
            "# Segments: frequency tier x months since the last purchase ('_rNN'; the last bucket '_rNNplus' holds",
            f"# everyone silent {R} months or more), from a lapse-and-return model fitted by maximum likelihood:",
            f"#   active purchase rate ~ Gamma(r={m.r:.4g}, alpha={m.alpha:.4g}) per month, lapse after a purchase month",
            f"#   ~ Beta(a={m.a:.4g}, b={m.b:.4g}), monthly return of lapsed customers rho={m.rho:.4g}.",
            "# Each state's purchase_rate is the expected purchases next month; its transition to '_r00' is the",
            "# probability of buying next month. 'new' holds customers in their first month. See",
            "# simulator/calibration/estimate.py.",
        ]
    else:
        lines.append(f"# Segments: rule set '{cm.segmentation.name}'; transitions counted month to month.")
    opt = cm.diagnostics.optional_columns
    estimated = opt is not None and opt.enrolment is not None and opt.enrolment.estimate is not None
    if opt is not None and opt.categories is not None:
        lines.append("# categories: share of spend by the log's category column over the calibration window.")
    if opt is not None and opt.network is not None:
        net = opt.network
        lines.append(f"# stores: each customer's home store (most spend) from the log's store column; shares of customers"
                     + (", enrolment multipliers from the member flag" if "enrolment" in net.table.columns else "")
                     + f"; stores home to fewer than {net.min_customers} customers merged into one; figures by store in "
                     "stores.csv.")
    m = cm.market
    if m.calibration is not None and m.customers != m.calibration.log_customers:
        lines.append(f"# customers: {m.customers:,}, the whole base as given (calibrate --customers); the log holds "
                     f"{m.calibration.log_customers:,} at the calibration end: shares as estimated, arrivals scaled.")
    reach = m.reachability
    if dict(reach.channels) == DEFAULT_CHANNELS and dict(reach.member_opt_in) == DEFAULT_MEMBER_OPT_IN:
        lines.append("# reachability: DEFAULTS of loyalty-sim calibrate (a log holds no opt-in): "
                     + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_CHANNELS.items()) + " of customers opted in; replace")
        lines.append("#   them with the CRM's shares (playbooks reach customers through these channels).")
    lines += [
        "# economics (gross margin, VAT) and response are assumptions, not in a transaction log: check them.",
    ]
    if estimated:
        lines[-1] = lines[-1][:-1]
        lines.append("# (except response.enrolment_propensity, estimated from the log's member flag).")
    return "\n".join(lines) + "\n" + dump(cm.market)


def write_market(cm: CalibratedMarket, path: str | Path, *, source: str | Path | None = None) -> Path:
    """Write the market file (creating its folder). ``source``: the log's file, to name it and
    its SHA-256 in the header (default: the ``source`` given to :func:`calibrate`)."""
    path = Path(path)
    name = sha = None
    if source is not None:
        raw = Path(source).read_bytes()
        name, sha = Path(source).name, hashlib.sha256(raw).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(market_yaml(cm, source_name=name, source_sha256=sha), encoding="utf-8")
    tmp.replace(path)
    return path
