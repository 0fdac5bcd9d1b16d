r"""Spend per transaction (baskets).

Transaction amounts are lognormal within and between customers: ``cv`` is the pooled
within-customer variation of a customer's transaction amounts and ``individual_cv`` the
between-customer variation of customers' mean baskets (from the variance of log amounts, the
within part of the variance of customers' mean logs taken out); each segment's ``basket.mean``
is its mean spend per transaction (the segmentation's). Each customer's basket multiplier
(:func:`basket_multipliers`) is its expected mean basket relative to the population's: its mean
log amount shrunk toward the population's by empirical Bayes, by its number of purchases.
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
