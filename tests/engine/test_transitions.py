"""Segment transitions: sampling matches the matrix, and the member effect only keeps agents
from lapsing (minimal coupling)."""

import numpy as np
from scipy import stats

from simulator.engine.compiled import CompiledMarket
from simulator.engine.mechanisms import transitions
from simulator.scenario import resolve


def _market():
    from simulator import uncertainty

    sc = resolve("markets/france/points_tiers_launch.yaml")
    sc = uncertainty.with_values(sc, uncertainty.central_values(sc))  # the shipped market has ranges
    return CompiledMarket.from_spec(sc.market)


def test_sampled_frequencies_match_matrix():
    m = _market()
    S = len(m.names)
    table = transitions.flat_table(m.P, m.P, transitions.row_order(m))
    rng = np.random.default_rng(3)
    n = 60_000
    for s in range(S):
        seg = np.full(n, s, dtype=np.int16)
        nxt = transitions.next_segment(seg, rng.random(n), None, table)
        counts = np.bincount(nxt, minlength=S)
        expected = m.P[s] * n
        keep = expected > 0
        assert counts[~keep].sum() == 0
        assert stats.chisquare(counts[keep], expected[keep]).pvalue > 1e-4


def test_member_effect_only_prevents_lapses():
    m = _market()
    effect = np.full(len(m.names), 0.5)
    Pm = transitions.member_matrix(m, effect)
    assert np.allclose(Pm.sum(axis=1), 1.0)
    table = transitions.flat_table(m.P, Pm, transitions.row_order(m))
    rng = np.random.default_rng(4)
    n = 50_000
    seg = rng.integers(0, len(m.names), n).astype(np.int16)
    u = rng.random(n)
    as_nonmember = transitions.next_segment(seg, u, np.zeros(n, dtype=bool), table)
    as_member = transitions.next_segment(seg, u, np.ones(n, dtype=bool), table)
    changed = as_member != as_nonmember
    assert changed.any()
    # every agent whose path differs would have lapsed without the program and stays instead
    assert m.lapsed[as_nonmember[changed]].all()
    assert np.array_equal(as_member[changed], seg[changed])
