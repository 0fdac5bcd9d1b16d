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

import math
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from simulator.engine.compiled import CompiledMarket

if TYPE_CHECKING:  # streams imports the kernels, which inline this module's compiled function
    from simulator.engine.streams import Streams


def poisson_icdf(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Smallest n with P(N <= n) >= u for N ~ Poisson(lam), vectorised (compiled sequential
    search; most agents stop at 0 or 1)."""
    from simulator.engine import kernels  # not at the top: the kernels import this module

    return kernels.poisson_icdf(np.ascontiguousarray(u, dtype=np.float64), np.ascontiguousarray(lam, dtype=np.float64),
                                np.empty(u.shape[0], dtype=np.int64))


def draw_baskets(streams: Streams, t: int, market: CompiledMarket, counts: np.ndarray,
                 segment: np.ndarray, basket_mult: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transactions of the month: (agent of each transaction, gross amount, net spend per
    agent). Arrays are over the whole population; one compiled pass (kernels.baskets)."""
    from simulator.engine import kernels  # not at the top: the kernels import this module

    total = int(counts.sum())
    pos = np.empty(total, dtype=np.int64)
    gross = np.empty(total)
    spend = np.zeros(counts.shape[0])
    kernels.baskets(counts, segment, basket_mult, market.basket_mean, market.basket_sigma,
                    streams.stream_base("basket", t), market.net_factor, pos, gross, spend)
    return pos, gross, spend


@njit(cache=True, nogil=True, inline="always")
def poisson_one(u, la):
    """Purchases of one agent: the smallest n with P(N <= n) >= u, N ~ Poisson(la) (the search
    of :func:`poisson_icdf`); inlined by Numba into the fused step and the opening history.
    Most customer-months have no purchase: since exp(-la) >= 1 - la, a u below 1 - la (less a
    margin well above the rounding of either side) is 0 without computing the exponential."""
    if u < 1.0 - la - 1e-12:
        return 0
    p = math.exp(-la)
    cdf = p
    n = 0
    while u > cdf and p > 0.0:
        n += 1
        p = p * la / n
        cdf += p
    return n
