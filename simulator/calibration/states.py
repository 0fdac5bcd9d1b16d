r"""The default segmentation: frequency tier x recency, the states of a lapse-and-return model.

The engine moves each customer between segments by a Markov chain, once a month, and draws its
purchases from its current segment's rate. For a cohort that ages and drops out, a chain on
observable RFM cells estimated month to month is not stationary: who sits in a "3+ purchases"
cell early in a cohort's life (fast buyers) is not who sits there a year later, and a chain
estimated on the early months over-forecasts a decaying cohort by about half (CDNOW; see
``data/cdnow/README.md``). Here the chain is instead derived from a behavioural model whose
states *are* Markov (:class:`~simulator.calibration.segmentation.RFMStates`):

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
  event), else to *(t, min(k+1, R))*; the basket is the type's posterior-weighted spend per
  transaction.
* *estimation*: maximum likelihood (:mod:`~simulator.calibration.lapse_return`). A customer's
  likelihood under a type is a sum of table look-ups, one per stretch between two purchase months
  (the forward recursion restarts at each purchase month), so customers with the same first day,
  purchase months and count share one row; types sit on a fine grid (32 rates x 12 lapse
  probabilities) whose weights are the Gamma and Beta probabilities of each cell, so the
  parameters :math:`(r, \alpha, a, b)` are fitted by a damped Newton method on the mixture
  likelihood, for each :math:`\rho` of a profile grid, refined around the best (on a large log the
  grid is scanned on a random subset of the rows first); standard errors from the inverse
  Hessian, and a note when an estimate sits on a bound.
* *seasonality* (:mod:`~simulator.calibration.seasonality`): with a long enough window, a first
  rough fit of the model gives the one-step-ahead expected repeat transactions the calendar-month
  multipliers are measured against; the model is then fitted with them.
* *customers at the calibration end*: each customer's posterior over the types (Bayes, with the
  type weights as prior) and its recency give the segment shares;
  :func:`~simulator.calibration.estimate.customer_states` gives them per customer (the backtest
  starts each agent from its own state).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd
from numba import njit
from scipy import sparse

from simulator.calibration.lapse_return import LapseReturnModel, Types, exposure, fit_lapse_return, type_loglik
from simulator.calibration.seasonality import _estimate_seasonality, _month_lengths
from simulator.calibration.segment_fit import HOMOGENEOUS_SHAPE, NEW_SEGMENT, _draws, _Fit, _frequency_table
from simulator.calibration.segmentation import MonthlyPanel, RFMStates, rfm_arrays


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


def state_name(tier: str, recency: int, recency_months: int) -> str:
    return f"{tier}_r{recency:02d}" + ("plus" if recency == recency_months else "")


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
