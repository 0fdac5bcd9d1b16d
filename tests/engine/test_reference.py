"""The compiled month (kernels.step_both and the other passes) against the NumPy month it
replaced (reference_step.py): same random numbers, so the same records (up to the order of
floating-point sums) and the same state of every agent; and each small kernel against its
NumPy description."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.engine import kernels
from simulator.engine.compiled import CompiledMarket
from simulator.engine.mechanisms import purchases, tiers, transitions
from simulator.engine.simulation import Simulation
from simulator.engine.state import RunState
from simulator.scenario import Scenario, resolve
from simulator.uncertainty import realise
from simulator.specs.playbook import Playbook
from tests.engine.reference_step import ReferenceSimulation, expire
from tests.engine.test_simulation import ALL_OFF, PLAYBOOKS, markets, programs

STATE = ("exists", "segment", "reach", "recency", "member", "enrol_month", "tier", "below", "since_reward",
         "since_demotion", "first_pending", "next_bill", "earned", "consumed", "row", "rows", "snap", "qual_off",
         "qual_used", "qual_ring")


def _same(fused: Simulation, ref: ReferenceSimulation) -> None:
    a, b = fused.run(), ref.run()
    for name, x, y in (("design", a.design, b.design), ("baseline", a.baseline, b.baseline)):
        assert list(x.columns) == list(y.columns), name
        assert (x["period"] == y["period"]).all()
        num = [c for c in x.columns if c != "period"]
        # sums of money may differ in the last bits (summation order): each compared relative to
        # the size of what was summed (float64 sums of n terms in another order differ by at
        # most about n * 2.2e-16 of it; 1e-9 allows a million agents with room). A difference
        # of two sums -- non-members' revenue = revenue - members' revenue -- keeps the error
        # of the sums, so it is relative to revenue, not to itself: with nearly every customer
        # a member it is a near-zero difference of two large sums (1.9e-9 against 1e-9 of an
        # absolute floor made the test flaky). Counts and points may not differ at all.
        xs, ys = x[num].to_numpy(float), y[num].to_numpy(float)
        scale = np.maximum(np.abs(xs).max(axis=0), np.abs(ys).max(axis=0))
        summed = {"nonmember_revenue": "revenue"}  # a difference -> the sums it is made of
        for col, of in summed.items():
            k, j = num.index(col), num.index(of)
            scale[k] = max(scale[k], scale[j])
        assert np.all(np.abs(xs - ys) <= 1e-9 * scale), (name, np.abs(xs - ys).max(axis=0))
        exact = [c for c in num if not any(k in c for k in ("revenue", "margin", "sales", "cost", "face"))]
        assert (x[exact].to_numpy() == y[exact].to_numpy()).all(), name
    for x, y in ((a.stores_design, b.stores_design), (a.stores_baseline, b.stores_baseline)):
        assert (x is None) == (y is None)
        if x is not None:  # figures by home store: counts exactly, money to the order of summation
            money = ["revenue", "member_revenue", "member_revenue_share"]
            pd.testing.assert_frame_equal(x.drop(columns=money), y.drop(columns=money), check_exact=True)
            pd.testing.assert_frame_equal(x[money], y[money], rtol=1e-9, atol=1e-6)
    assert np.array_equal(a.transitions_design, b.transitions_design)
    assert np.array_equal(a.transitions_baseline, b.transitions_baseline)
    assert a.events == b.events
    for name in ("design", "baseline"):
        r, q = fused.runs[name], ref.runs[name]
        for field in STATE:
            assert np.array_equal(getattr(r, field), getattr(q, field)), (name, field)
        if r.program is not None and r.program.has_tiers:
            assert np.array_equal(r.qual_sum, q.qual_sum), name
    assert np.array_equal(fused.scratch["baseline"].counts, ref.scratch["baseline"].counts)
    assert np.array_equal(fused.scratch["baseline"].spend, ref.scratch["baseline"].spend)


@pytest.mark.parametrize("playbook", PLAYBOOKS)
@pytest.mark.parametrize("mechanisms", [None, ALL_OFF], ids=["playbook", "all_off"])
def test_compiled_month_equals_numpy_month(playbook, mechanisms):
    sc, _ = realise(resolve(playbook), seed=11, replication=0)  # the engine sees numbers
    kw = dict(agents=3_000, seed=11, mechanisms=mechanisms, check_agents=mechanisms is None)
    _same(Simulation(sc, **kw), ReferenceSimulation(sc, **kw))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(market=markets(), design=programs("design"), baseline=st.one_of(st.none(), programs("current")),
       start_offset=st.integers(0, 3), seed=st.integers(0, 2**31))
def test_compiled_month_equals_numpy_month_on_random_designs(market, design, baseline, start_offset, seed):
    playbook = Playbook.model_validate({
        "name": "h", "design": "x", "market": "y", "launch": dt.date(2027, 1 + start_offset, 1),
        "start": dt.date(2027, 1, 1), "horizon_months": 14,
        "campaigns": ({"name": "c", "kind": "bonus_points", "start": dt.date(2027, 2, 1), "months": 2,
                       "bonus_points": 50, "channel": "email", "min_spend": 20.0},
                      {"name": "m", "kind": "points_multiplier", "start": dt.date(2027, 3, 1), "multiplier": 2.0},
                      {"name": "w", "kind": "reactivation", "start": dt.date(2027, 4, 1), "months": 2,
                       "target": {"inactive_months": 1}, "lift": 0.3}),
        "enrolment_drives": ({"name": "d", "start": dt.date(2027, 2, 1), "months": 2, "uplift": 1.0},
                             {"name": "e", "start": dt.date(2027, 3, 1), "uplift": 0.5, "channel": "email",
                              "target": {"members": "non_members"}}),
    })
    sc = Scenario(program=design, baseline=baseline, market=market, playbook=playbook, fx_design_to_local=1.0)
    _same(Simulation(sc, agents=300, seed=seed), ReferenceSimulation(sc, agents=300, seed=seed))


# ---------------------------------------------------------------- the small kernels
def _market():
    from simulator import uncertainty

    sc = resolve("markets/france/points_tiers_launch.yaml")
    return CompiledMarket.from_spec(uncertainty.with_values(sc, uncertainty.central_values(sc)).market)


def _month_end(run, other=None, counts=None, transitions=kernels.NO_TRANSITIONS, t=0, cm=1, n_threads=None,
               stage=kernels.STAGE_ALL, **phases):
    """kernels.month_end with ``phases`` (end_run's) for ``run``; ``other`` (the baseline) takes
    part in none unless given as a packed run. Returns run's (totals, members and purchases per
    tier, moves) and the other's."""
    n = run.earned.size
    counts = np.zeros(n, dtype=np.uint16) if counts is None else counts
    other = kernels.end_run(RunState.new("o", _Pop(n), 1, 1, 2), counts) if other is None else other
    return kernels.month_end(t, cm, stage, kernels.end_run(run, counts, **phases), other, transitions,
                             n_threads=n_threads)


def test_month_end_transitions_equal_next_segment():
    m = _market()
    S = len(m.names)
    table = transitions.flat_table(m.P, transitions.member_matrix(m, np.full(S, 0.5)), transitions.row_order(m))
    rng = np.random.default_rng(1)
    n = 2 * kernels.MIN_AGENTS_PER_THREAD + 333  # on two threads
    d, b = RunState.new("d", _Pop(n), 1, 1, S), RunState.new("b", _Pop(n), 1, 1, S)
    d.segment[:], b.segment[:] = (rng.integers(0, S, n).astype(np.int16) for _ in range(2))
    d.member[:], b.member[:], d.exists[:] = (rng.random(n) < 0.5 for _ in range(3))
    seg_d, seg_b = d.segment.copy(), b.segment.copy()
    base = np.uint64(123456789)
    u = kernels.mix_uniform_range(base, n, np.empty(n))
    want_d = transitions.next_segment(seg_d, u, d.member, table)
    want_b = transitions.next_segment(seg_b, u, None, table)
    counted = d.member & d.exists
    want_cd = np.bincount(seg_d[counted].astype(np.int64) * S + want_d[counted], minlength=S * S).reshape(S, S)
    want_cb = np.bincount(seg_b[counted].astype(np.int64) * S + want_b[counted], minlength=S * S).reshape(S, S)
    trans = kernels.end_transitions(table, S, base, True, False, d.segment, b.segment)
    counts = np.zeros(n, dtype=np.uint16)
    (_, _, _, cd), (_, _, _, cb) = _month_end(d, kernels.end_run(b, counts), counts, trans, n_threads=2)
    assert np.array_equal(d.segment, want_d) and np.array_equal(b.segment, want_b)
    assert np.array_equal(cd, want_cd) and np.array_equal(cb, want_cb)


class _Prog:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _ledger(rng, n=5_000, ring=6):
    """A run with random cumulative points and snapshots consistent with FIFO ledgers: some
    agents never earned (no ring row), some earned only this month (no row yet)."""
    run = RunState.new("x", _Pop(n), ring, 3, 2)
    monthly = rng.integers(0, 3, (ring, n)) * rng.integers(0, 5_000, (ring, n))
    cum = np.cumsum(monthly, axis=0) + 2**32 - 10_000  # cross the uint32 wrap
    never = rng.random(n) < 0.3
    cum[:, never] = 0
    run.earned[:] = cum[-1]
    run.earned[never & (rng.random(n) < 0.5)] = 700  # first points this month
    run.give_rows(run.earned != 0)
    for m in range(ring):
        run.set_snapshot(m, cum[m])
    run.consumed[:] = np.where(never, 0, (cum[0] - 2**32 + 10_000) + rng.integers(0, 3_000, n))
    run.consumed[:] = np.minimum(run.consumed, run.earned)
    run.recency[:] = rng.integers(0, 8, n)
    return run


class _Pop:
    def __init__(self, n):
        self.capacity = self.n_base = n
        self.segment0 = np.zeros(n, dtype=np.int16)
        self.reach = np.zeros(n, dtype=np.uint8)
        self.recency0 = np.zeros(n, dtype=np.int16)


@pytest.mark.parametrize("rule", [dict(expiry=1, expiry_months=3), dict(expiry=1, expiry_months=0),
                                  dict(expiry=2, expiry_months=4), dict(expiry=3, expiry_month=5, expiry_min_age=2)])
def test_month_end_expiry_equals_numpy(rule):
    rng = np.random.default_rng(2)
    prog = _Prog(**{"expiry_months": 0, "expiry_month": 0, "expiry_min_age": 0, **rule})
    run = _ledger(rng)
    t = 5
    want = expire(run, prog, t, 5)
    consumed = run.consumed + want
    from simulator.engine.mechanisms import expiry

    (tot, *_), _ = _month_end(run, expiry=expiry.rule(prog, t, 5, run.snap.shape[0]))
    assert tot[kernels.E_EXPIRED] == int(want.sum())
    assert np.array_equal(run.consumed, consumed)


def test_month_end_close_totals_and_snapshot_equal_numpy():
    rng = np.random.default_rng(3)
    run = _ledger(rng, n=3 * kernels.MIN_AGENTS_PER_THREAD + 777)  # on three threads
    run.member[:] = rng.random(run.earned.size) < 0.4
    run.exists[:] = rng.random(run.earned.size) < 0.9
    (tot, *_), _ = _month_end(run, close=-1)
    assert tuple(tot[kernels.E_OUTSTANDING:]) == (int(run.outstanding().sum()), 0, int((run.member & run.exists).sum()), 0)
    want = copy.deepcopy(run)
    want.close_month(2)
    (tot, *_), _ = _month_end(run, close=2, n_threads=3)
    assert tot[kernels.E_UNROWED] == 0
    assert np.array_equal(run.snap, want.snap)
    assert np.array_equal(run.snapshot(2), run.earned.astype(np.uint32))
    assert (run.row[run.earned == 0] == -1).all()  # no history row for agents without points
    # points without a history row are reported (Simulation raises)
    run.row[np.flatnonzero(run.earned)[:3]] = -1
    (tot, *_), _ = _month_end(run, close=2, n_threads=3)
    assert tot[kernels.E_UNROWED] == 3


def test_month_end_members_by_tier_equal_bincount():
    rng = np.random.default_rng(4)
    n = 10_000
    run = RunState.new("x", _Pop(n), 1, 1, 2)
    run.member[:], run.exists[:] = rng.random(n) < 0.5, rng.random(n) < 0.9
    member, exists = run.member, run.exists
    run.tier[:] = tier = rng.integers(0, 3, n).astype(np.int8)
    counts = rng.integers(0, 5, n).astype(np.uint16)
    (_, members, purchases, _), _ = _month_end(run, counts=counts, cost_tiers=3)
    mi = np.flatnonzero(member & exists)
    assert np.array_equal(members, np.bincount(tier[mi], minlength=3))
    assert np.array_equal(purchases, np.bincount(tier[mi], weights=counts[mi], minlength=3).astype(np.int64))


@pytest.mark.parametrize("window", [0, 1, 2])
@pytest.mark.parametrize("downgrade", [0, 1, 2])
def test_month_end_tiers_equal_upgrade_and_review(window, downgrade):
    n, W = 8_000, 4
    prog = _Prog(window=window, thresholds=np.array([0.0, 50.0, 120.0]), downgrade=downgrade, grace=1)
    runs = []
    for _ in range(2):
        r = np.random.default_rng(5 + window)  # the same agents in both copies
        run = RunState.new("x", _Pop(n), 1, W, 2)
        run.member[:] = r.random(n) < 0.6
        run.tier[:] = r.integers(0, 3, n)
        run.below[:] = r.integers(0, 3, n)
        run.enrol_month[:] = r.integers(-12, 10, n)
        values = (r.random((W, n)) * 60 * (r.random(n) < 0.7)).astype(np.float32)
        for w in range(W):
            run.set_qual(w, values[w])
        run.qual_sum[:] = r.random(n) * 200
        runs.append(run)
    fused, ref = runs
    for t, cm in ((10, 12), (11, 1)):
        if window == 0:  # the sum the step leaves in qual_sum (the full-month tests check it)
            ref.qual_sum = ref.qual_total()
            fused.qual_sum = ref.qual_total()
        mem = np.flatnonzero(ref.member)
        want = (tiers.upgrade(ref, prog, mem), tiers.review(ref, prog, t, cm, mem))
        (tot, *_), _ = _month_end(fused, t=t, cm=cm, stage=kernels.STAGE_BEFORE_FEES,
                                  tiers=(prog.thresholds, window, downgrade, prog.grace))
        assert (tot[kernels.E_UPGRADES], tot[kernels.E_DEMOTIONS]) == want
        for f in ("tier", "below", "since_demotion"):
            assert np.array_equal(getattr(fused, f), getattr(ref, f)), f


def test_decay_table_equals_numpy():
    h = np.array([3.0, 2.5, 7.0])
    m = np.arange(40)
    assert np.array_equal(kernels.decay_table(h, 40), 2.0 ** (-m[None, :] / h[:, None]))


def test_step_poisson_search_equals_poisson_icdf():
    """The step's inlined Poisson search (purchases.poisson_one) is poisson_icdf's."""
    rng = np.random.default_rng(6)
    n = 200_000
    lam = np.concatenate([rng.random(n // 2) * 1.2, rng.gamma(1.0, 2.0, n // 2), [0.0, 1e-300, 1.0, 2.0]])
    u = rng.random(lam.size)
    want = kernels.poisson_icdf(u, lam, np.empty(lam.size, dtype=np.int64))
    assert np.array_equal(_poisson_all(u, lam), want)
    # at the edge of no purchase, where the search skips the exponential below 1 - lambda
    small = np.concatenate([rng.random(50_000) * 1e-3, rng.random(50_000) * 1e-8, 10.0 ** -rng.integers(1, 15, 50_000)])
    for edge in (np.exp(-small), 1.0 - small, 1.0 - small - 1e-12):
        for u in (edge, np.nextafter(edge, 0.0), np.nextafter(edge, 1.0)):
            u = np.clip(u, 1e-300, 1.0)
            assert np.array_equal(_poisson_all(u, small), kernels.poisson_icdf(u, small, np.empty(small.size, dtype=np.int64)))


def _poisson_all(u, lam):
    """purchases.poisson_one over arrays."""
    from numba import njit

    @njit
    def run(u, lam, out):
        for i in range(u.shape[0]):
            out[i] = purchases.poisson_one(u[i], lam[i])
        return out

    return run(u, lam, np.empty(u.shape[0], dtype=np.int64))


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_same_bits_whatever_the_number_of_threads(playbook, monkeypatch):
    """Blocks and agent ranges run on threads; the records, moves and every agent's state are
    the same bits on 1, 2 or 3 threads (each range keeps its own totals, added in order)."""
    monkeypatch.setattr(kernels, "MIN_AGENTS_PER_THREAD", 500)
    sc, _ = realise(resolve(playbook), seed=5, replication=0)
    sims = []
    for n in (1, 2, 3):
        sim = Simulation(sc, agents=4_000, seed=5, check_agents=True)
        sim.threads = n
        sims.append((sim, sim.run()))
    (a, ra) = sims[0]
    for b, rb in sims[1:]:
        assert ra.design.equals(rb.design) and ra.baseline.equals(rb.baseline)
        assert ra.stores_design.equals(rb.stores_design) and ra.stores_baseline.equals(rb.stores_baseline)
        assert np.array_equal(ra.transitions_design, rb.transitions_design)
        assert np.array_equal(ra.transitions_baseline, rb.transitions_baseline)
        for name in ("design", "baseline"):
            for field in STATE:
                assert np.array_equal(getattr(a.runs[name], field), getattr(b.runs[name], field)), (name, field)


def test_figures_by_store_are_the_same_bits_on_any_number_of_threads(monkeypatch):
    """Over many tasks of blocks (more than kernels.TASK_BLOCKS blocks), the step's figures by
    store, summed task by task, and the close's counts are the same on 1 and 3 threads."""
    monkeypatch.setattr(kernels, "MIN_AGENTS_PER_THREAD", 500)
    sc, _ = realise(resolve(PLAYBOOKS[1]), seed=8, replication=0)
    sc = dataclasses.replace(sc, playbook=sc.playbook.model_copy(update={"horizon_months": 8}))
    agents = 3 * kernels.TASK_BLOCKS * kernels.BLOCK
    reps = []
    for n in (1, 3):
        sim = Simulation(sc, agents=agents, seed=8)
        sim.threads = n
        reps.append(sim.run())
    pd.testing.assert_frame_equal(reps[0].stores_design, reps[1].stores_design, check_exact=True)
    pd.testing.assert_frame_equal(reps[0].stores_baseline, reps[1].stores_baseline, check_exact=True)
