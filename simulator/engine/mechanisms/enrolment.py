"""Who joins, and self-selection.

Equation (opt-in programs). A non-member i in segment s, identified and eligible, joins in
month t with probability

    p_i = 1 - (1 - h_i * (base + sum of at-till drive uplifts reaching i) * [n_i > 0])
              * prod over e-mail/app/sms drives reaching i of (1 - h_i * uplift)
    h_i = enrolment_propensity_s * e_k * w_i * f_i

* ``w_i = m_i^beta_s / E[m^beta_s]`` is self-selection: heavier buyers join first
  (Meyer-Waarden 2007; Liu 2007); beta_s = ``self_selection`` (0 = no selection).
* ``f_i = exp(-fee_sensitivity_s * annual fee / expected annual spend_i)`` for a paid program
  (1 otherwise): the fee weighs less on heavy buyers, which strengthens self-selection.
* ``e_k`` is the ``enrolment`` multiplier of the customer's home store k (1 without a store
  network): staff who offer the program at the till recruit more, and store networks follow
  each store's recruitment rate against the network's for that reason. A staff challenge
  (:mod:`simulator.engine.mechanisms.campaigns`) is an at-till drive in its stores.
* ``base`` is 1, or 0 for an invitation-only program (drives only).

Automatic programs enrol every identified, eligible customer at their first purchase after
launch. A program "already running" at the start (a baseline such as the current cagnotte)
starts with the members it would have gathered over ``baseline_age_months``:
``P(member) = 1 - (1 - h_i (1 - e^{-lambda_i}))^age``.
"""

from __future__ import annotations

import numpy as np

from simulator.engine.compiled import CompiledMarket, CompiledProgram
from simulator.engine.population import Population


def selection_weight(pop: Population, market: CompiledMarket, segment: np.ndarray, idx: np.ndarray, on: bool) -> np.ndarray:
    if not on:
        return np.ones(idx.shape)
    s = segment[idx]
    beta = market.response["self_selection"]
    out = np.empty(idx.shape)
    for b in np.unique(beta[s]):
        sel = beta[s] == b
        out[sel] = (pop.rate_mult if b == 1.0 else pop.rate_power(float(b)))[idx[sel]]  # m ** 1.0 is m
    return out / pop.selection_norm[s]


def fee_factor(program: CompiledProgram, pop: Population, market: CompiledMarket, segment: np.ndarray,
               idx: np.ndarray) -> np.ndarray:
    if program.fee <= 0:
        return np.ones(idx.shape)
    s = segment[idx]
    annual_spend = 12 * market.rate[s] * pop.rate_mult[idx] * market.basket_mean[s] * pop.basket_mult[idx]
    annual_fee = program.fee * 12 / program.fee_months
    return np.exp(-market.response["fee_sensitivity"][s] * annual_fee / np.maximum(annual_spend, 1e-9))


def hazard(program: CompiledProgram, pop: Population, market: CompiledMarket, segment: np.ndarray, idx: np.ndarray,
           self_selection: bool) -> np.ndarray:
    """``h_i`` of the module docstring, for agents ``idx``."""
    s = segment[idx]
    h = market.response["enrolment_propensity"][s]  # a new array: multiplied in place (fewer temporaries)
    if market.stores:
        h *= market.store_enrol[pop.store[idx]]
    h *= selection_weight(pop, market, segment, idx, self_selection)
    h *= fee_factor(program, pop, market, segment, idx)
    return h


def candidates(program: CompiledProgram, pop: Population, exists: np.ndarray, member: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Indices of customers who could join now."""
    ok = exists & ~member & pop.identified & program.eligible_segments[segment]
    return np.flatnonzero(ok)


def join_probability(program: CompiledProgram, h: np.ndarray, bought: np.ndarray, till_uplift: np.ndarray,
                     invitations: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """``p_i`` of the module docstring. ``invitations``: (reached mask, uplift) per channel drive."""
    if program.automatic:
        return bought.astype(float)
    base = 0.0 if program.invite_only else 1.0
    p_till = np.minimum(h * (base + till_uplift), 1.0) * bought
    stay_out = 1.0 - p_till
    for mask, uplift in invitations:
        stay_out = stay_out * (1.0 - np.minimum(h * uplift, 1.0) * mask)
    return 1.0 - stay_out


def monthly_join_probability(program: CompiledProgram, pop: Population, market: CompiledMarket, segment: np.ndarray,
                             idx: np.ndarray, self_selection: bool) -> np.ndarray:
    """The chance that ``idx`` join in a month of a running program: ``h_i (1 - e^{-lambda_i})``
    (a purchase at the till), every buyer for an automatic program, none by invitation only."""
    s = segment[idx]
    lam = market.rate[s] * pop.rate_mult[idx]
    p_buy = 1.0 - np.exp(-lam)
    if program.automatic:
        return p_buy
    if program.invite_only:
        return np.zeros(idx.shape)
    return np.minimum(hazard(program, pop, market, segment, idx, self_selection), 1.0) * p_buy


def initial_members(program: CompiledProgram, pop: Population, market: CompiledMarket, segment: np.ndarray,
                    idx: np.ndarray, age_months: int, u: np.ndarray, self_selection: bool) -> np.ndarray:
    """Which of ``idx`` are members of a program that has already run ``age_months``."""
    p_month = monthly_join_probability(program, pop, market, segment, idx, self_selection)
    p = 1.0 - (1.0 - p_month) ** age_months
    s = segment[idx]
    ok = pop.identified[idx] & program.eligible_segments[s]
    return ok & (u < p)
