"""Portable groups of calibrated segments and the merging of sparse states
(simulator/calibration/groups.py), on small chains built by hand and on CDNOW."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.calibration.estimate import customer_states
from simulator.calibration.states import state_chain
from simulator.calibration.groups import ACTIVE_MONTHS, merge_sparse, state_groups
from simulator.calibration.lapse_return import Types
from simulator.specs.market import value_thirds


def _chain(types: Types, R: int, lapsed_from: int):
    """The default states' arrays for ``types`` (as estimate._calibrate_states lays them out)."""
    rate, buy = state_chain(types, 0.05, R)
    G = len(types.rate)
    S = 1 + G * (R + 1)
    names, rates, trans = ["new"], np.zeros(S), np.zeros((S, S))
    lapsed = np.zeros(S, dtype=bool)
    rates[0] = 1.1
    for g in range(G):
        for k in range(R + 1):
            s = 1 + g * (R + 1) + k
            names.append(f"{types.names[g]}_r{k:02d}" + ("plus" if k == R else ""))
            rates[s] = rate[g, k]
            lapsed[s] = k >= lapsed_from
            trans[s, 1 + g * (R + 1)] += buy[g, k]
            trans[s, 1 + g * (R + 1) + min(k + 1, R)] += 1.0 - buy[g, k]
        trans[0, 1 + g * (R + 1)] = types.weight[g]
    return tuple(names), rates, trans, lapsed


TYPES = Types(rate=np.array([0.1, 0.1, 1.0, 1.0]), lapse=np.array([0.1, 0.5, 0.1, 0.5]),
              weight=np.array([0.5, 0.3, 0.15, 0.05]), names=("light_steady", "light_fickle", "heavy_steady", "heavy_fickle"))


def _stationary_blocks(trans: np.ndarray, G: int, R: int, mass: np.ndarray) -> np.ndarray:
    """Shares at each tier's stationary distribution, tier g holding mass[g]."""
    out = np.zeros(len(trans))
    for g in range(G):
        idx = np.arange(1 + g * (R + 1), 1 + (g + 1) * (R + 1))
        P = trans[np.ix_(idx, idx)]
        w, v = np.linalg.eig(P.T)
        pi = np.real(v[:, np.argmin(abs(w - 1))])
        out[idx] = pi / pi.sum() * mass[g]
    return out


def _merge(shares, customers, trans, rates, lapsed, names, R=6):
    life, val = state_groups(TYPES.rate, np.full(4, 20.0), TYPES.weight, shares, R, lapsed)
    return merge_sparse(names=names, descriptions=list(names), shares=shares, rates=rates,
                        shapes=np.full(len(names), 1000.0), baskets=np.full(len(names), 20.0), lapsed=lapsed,
                        transitions=trans, lifecycle=life, value=val, type_names=TYPES.names, lapse_tiers=2,
                        recency_months=R, customers=customers, type_rate=TYPES.rate)


def test_merged_segments_hold_whole_customers_keep_the_total_and_the_stationary_distribution():
    R = 6
    names, rates, trans, lapsed = _chain(TYPES, R, 4)
    # heavy_fickle holds 0.4 customer in all; the other tiers are at their stationary shape
    customers = 200
    mass = np.array([120, 60, 19.6, 0.4]) / customers
    pi = _stationary_blocks(trans, 4, R, mass)
    # the calibration end is not at the stationary shape: shares drawn around it, tier by tier
    shares = pi * np.random.default_rng(3).uniform(0.3, 1.7, len(pi))
    for g in range(4):
        idx = slice(1 + g * (R + 1), 1 + (g + 1) * (R + 1))
        shares[idx] *= mass[g] / shares[idx].sum()
    m = _merge(shares, customers, trans, rates, lapsed, names, R)

    held = m.shares * customers
    assert np.all(held[1:] >= 1.0 - 1e-9), held          # every segment but new holds a whole customer
    assert m.names[0] == "new" and m.segment_of[0] == 0     # new is never merged
    assert held.sum() == pytest.approx(customers)           # customers are kept
    np.testing.assert_allclose(m.transitions.sum(axis=1), 1.0, atol=1e-12)
    # a tier holding less than a customer is merged with an adjacent tier, recency by recency
    heavy = [m.segment_of[names.index(f"heavy_fickle_r{k:02d}" + ("plus" if k == R else ""))] for k in range(R + 1)]
    other = [m.segment_of[names.index(f"heavy_steady_r{k:02d}" + ("plus" if k == R else ""))] for k in range(R + 1)]
    assert heavy == other
    # the lumped chain keeps the stationary distribution: the chain's, summed over each merged
    # segment, is stationary for it (weights: the stationary shape, not the calibration-end shares)
    x = (pi @ m.indicator)[1:]
    Q = m.transitions[1:, 1:]
    np.testing.assert_allclose(x @ Q, x, atol=1e-9)
    assert np.abs((m.shares @ m.transitions)[1:] - m.shares[1:]).max() > 1e-4  # the end shares are not stationary


def test_lumped_rows_are_the_weighted_rows_and_a_rate_the_weighted_rate():
    R = 6
    names, rates, trans, lapsed = _chain(TYPES, R, 4)
    customers = 1000
    shares = _stationary_blocks(trans, 4, R, np.array([600, 300, 98, 2]) / customers)
    m = _merge(shares, customers, trans, rates, lapsed, names, R)
    M = m.indicator
    for j, cells in enumerate(m.merged):
        idx = [names.index(c) for c in cells]
        if len(idx) > 1:
            w = shares[idx] / shares[idx].sum()          # at the stationary shape, the weights are the shares
            np.testing.assert_allclose(m.transitions[j], w @ trans[idx] @ M, atol=1e-9)
            assert m.rates[j] == pytest.approx(w @ rates[idx])
            assert m.shapes[j] < 1000.0                   # states with different rates: heterogeneity
            break
    else:
        pytest.fail("nothing was merged")


def test_nothing_is_merged_when_every_state_holds_a_customer():
    R = 6
    names, rates, trans, lapsed = _chain(TYPES, R, 4)
    shares = np.r_[0.0, np.full(len(names) - 1, 1.0 / (len(names) - 1))]
    m = _merge(shares, 10_000, trans, rates, lapsed, names, R)
    assert m.names == names
    np.testing.assert_allclose(m.transitions, trans / trans.sum(axis=1, keepdims=True))


def test_lifecycle_follows_recency_and_value_the_tiers_spend():
    R = 6
    names, rates, trans, lapsed = _chain(TYPES, R, 4)
    shares = np.r_[0.0, np.full(len(names) - 1, 1.0 / (len(names) - 1))]
    # tiers' baskets 10, 20, 30, 40 at equal active rates: each tier holds a quarter of the customers
    life, val = state_groups(np.full(4, 0.5), np.array([10.0, 20.0, 30.0, 40.0]), TYPES.weight, shares, R, lapsed)
    assert life[0] == "new"
    for k in range(R + 1):
        s = 1 + k                                         # light_steady at recency k
        assert life[s] == ("lapsed" if k >= 4 else "active" if k <= ACTIVE_MONTHS else "at_risk")
    # place of each tier among the customers by spend: 7/8 (low), 5/8, 3/8 (medium), 1/8 (high), at every recency
    bands = [set(val[1 + g * (R + 1): 1 + (g + 1) * (R + 1)]) for g in range(4)]
    assert bands == [{"low"}, {"medium"}, {"medium"}, {"high"}]


def test_value_thirds_rank_customers_by_expected_spend():
    assert value_thirds([1, 100, 10], [0.5, 0.2, 0.3]) == ("low", "high", "medium")
    assert value_thirds([5, 5], [0.0, 0.0]) == ("medium", "medium")


def test_cdnow_market_segments_hold_whole_customers_and_customers_start_in_them(cdnow_calibration):
    cm = cdnow_calibration
    m = cm.market
    # every segment holds a whole customer at the calibration end or in the 36 months after it
    states = cm.diagnostics.states
    assert (states["segment_most_customers"] >= 1.0 - 1e-9).all()
    # ... not only at the end: the states nobody has reached yet at the end of a 9-month log
    # (silent 9 months or more) fill as customers age, and are kept
    held = dict(zip(m.segment_names, np.array([s.share for s in m.segments]) * m.calibration.log_customers))
    assert held["light_steady_r12plus"] < 1 and "light_steady_r12plus" in held
    assert m.segments[0].lifecycle == "new"
    assert {s.lifecycle for s in m.segments} == {"new", "active", "at_risk", "lapsed"}
    assert {s.value for s in m.segments} == {"high", "medium", "low"}
    assert all((s.lifecycle == "lapsed") == s.lapsed for s in m.segments[1:])
    assert (states["segment"] != states["state"]).any()     # CDNOW's sample leaves sparse states
    seg, _ = customer_states(cm, np.random.default_rng(0))
    assert seg.max() < len(m.segments)
    # a customer starts in the market segment its state was merged into
    assert set(m.segment_names[i] for i in seg) <= set(states["segment"])
