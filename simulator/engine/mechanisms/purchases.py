"""Purchases and baskets.

Equation. In month t an agent i in segment s buys ``n_i ~ Poisson(lambda_i)`` times, with

    lambda_i = rate_s * m_i * season(month) * L_i

where ``m_i ~ Gamma(k_s, 1/k_s)`` is its own propensity (NBD heterogeneity; Ehrenberg 1959,
Fader, Hardie & Lee 2005), ``season`` the market's monthly multiplier and ``L_i`` the product
of the program's lifts (goal gradient, rewarded behaviour, tier status, demotion, campaigns;
exactly 1 without a program or with every mechanism off). Each purchase's amount is
lognormal with mean ``basket_s * b_i`` (``b_i`` the agent's own basket multiplier) and the
segment's coefficient of variation.

Coupling. ``n_i`` is the inverse Poisson CDF of one uniform per agent and month shared by the
design and the baseline, and the k-th purchase's amount comes from a normal keyed on
(agent, month, k): when a lift raises lambda_i, the agent's purchase count can only rise, and
the purchases both runs have in common have the same amounts.
"""

from __future__ import annotations

import numpy as np

from simulator.engine.compiled import CompiledMarket
from simulator.engine.streams import Streams


def poisson_icdf(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Smallest n with P(N <= n) >= u for N ~ Poisson(lam), vectorised.

    Sequential search on the shrinking set of agents still above the CDF: most agents stop at
    0 or 1, so this costs a few array passes over the population.
    """
    n = np.zeros(u.shape, dtype=np.int64)
    p = np.exp(-lam)
    cdf = p.copy()
    active = np.flatnonzero(u > cdf)
    k = 0
    p, cdf, ua, la = p[active], cdf[active], u[active], lam[active]
    while active.size:
        k += 1
        p = p * la / k
        cdf = cdf + p
        n[active] = k
        keep = (ua > cdf) & (p > 0)  # p == 0: the CDF cannot rise further (u ~ 1 - 1e-16)
        active, p, cdf, ua, la = active[keep], p[keep], cdf[keep], ua[keep], la[keep]
    return n


def draw_baskets(streams: Streams, t: int, market: CompiledMarket, counts: np.ndarray,
                 segment: np.ndarray, basket_mult: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Transactions of the month: (agent of each transaction, gross amount). Arrays are over
    the whole population."""
    buyers = np.flatnonzero(counts)
    c = counts[buyers]
    total = int(c.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    pos = np.repeat(buyers, c)
    starts = np.cumsum(c) - c
    k = np.arange(total, dtype=np.int64) - np.repeat(starts, c)
    z = streams.normal("basket", t, pos, k)
    seg = segment[pos]
    sig = market.basket_sigma[seg]
    amount = market.basket_mean[seg] * basket_mult[pos] * np.exp(sig * z - 0.5 * sig * sig)
    return pos, amount
