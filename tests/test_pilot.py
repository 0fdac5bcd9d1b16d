"""Pilots by store (simulator/pilot.py): matched controls, the readout against the true
effect, and simulated power against the textbook's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from simulator import pilot as P
from simulator.runner import simulate
from simulator.scenario import Scenario, resolve
from simulator.specs.market import Store, StoreNetwork

PLAYBOOK = "markets/france/premium_club_pilot.yaml"  # baseline none: a drive by e-mail, a campaign


def strong(n_stores: int) -> Scenario:
    """The premium club on France with a strong response (members join and spend much more)
    and a network of ``n_stores`` stores of equal size and recruitment: a case where the
    effect on revenue per customer is clear and every store is alike."""
    sc = resolve(PLAYBOOK)
    resp = sc.market.response.model_copy(update={"enrolment_propensity": 0.6, "rewarded_behaviour": 0.6,
                                                 "goal_gradient": 0.5})
    net = StoreNetwork(stores=tuple(Store(name=f"s{k:02d}", share=1.0 / n_stores) for k in range(n_stores)))
    return dataclasses.replace(sc, market=sc.market.model_copy(update={"stores": net, "response": resp}))


# ----------------------------------------------------------------------------- matching
def test_matching_takes_the_nearest_stores_without_replacement():
    # stores 0 and 1 piloted; 2 is nearest to both, 3 next to 1, 4 far away: the optimal
    # one-to-one pairs are 0~2 and 1~3 (total 0.1 + 0.2), not 1~2 and 0~3 (0.1 + 1.1)
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.1, 0.0], [1.2, 0.0], [9.0, 9.0]])
    assert list(P.match_controls(x, [0, 1])) == [2, 3]
    # standardised: a feature in large units does not swamp one in small units
    y = np.array([[1000.0, 1.0], [1000.0, 5.0], [1001.0, 1.0], [1500.0, 5.0]])
    assert list(P.match_controls(y, [0, 1])) == [2, 3]
    with pytest.raises(ValueError, match="at least as many"):
        P.match_controls(x, [0, 1, 2])


def test_candidates_need_two_stores_and_a_control_for_each():
    assert P.candidates_check(32, [2, 16], [1, 12]) == []
    assert len(P.candidates_check(32, [1, 17], [0])) == 3


def test_the_recommendation_is_the_fewest_store_months_reaching_the_target():
    t = pd.DataFrame({"stores": [4, 4, 8, 8], "months": [3, 12, 3, 6], "power": [0.5, 0.85, 0.82, 0.9]})
    t["store_months"] = t["stores"] * t["months"]
    for c in P.POWER_COLUMNS:
        t[c] = t.get(c, 0)
    assert (P.recommend(t, 0.8)["stores"], P.recommend(t, 0.8)["months"]) == (8, 3)  # 24 < 48 store-months
    assert P.recommend(t, 0.95) is None


# ----------------------------------------------------------------------------- readout
@pytest.fixture(scope="module")
def pilot_run():
    """30 replications of the design piloted in 8 of 16 equal stores, 4 months before launch."""
    sc = strong(16)
    order = P.store_order([s.name for s in sc.market.stores.stores], 11, 0)
    sc = P.pilot_scenario(sc, order[:8], pre_months=4, months=8)
    return simulate(sc, agents=4_000, seed=11, replications=30)


def test_readout_recovers_the_true_effect_within_its_interval(pilot_run):
    table = P.run_readout(pilot_run)
    assert len(table) == 30 and set(table["method"]) == {P.PRE_DID}
    s = P.readout_summary(table)
    assert s["true_effect"] > 1.0  # a clear effect: over 1 EUR a customer-month
    # no bias: zero is inside the mean bias's 95% interval over replications
    assert s["bias"]["lo"] <= 0 <= s["bias"]["hi"], s["bias"]
    # each replication's 95% interval holds the true effect about 95% of the time: at least
    # 0.95 - 3 binomial standard errors of 30 replications (0.83)
    assert s["coverage"] >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / 30)
    # the pairs are one control per pilot store, all outside the pilot, none used twice
    pairs = s["pairs"]
    assert len(pairs) == 8 and len({c for _, c in pairs}) == 8
    assert not {c for _, c in pairs} & {p for p, _ in pairs}


def test_readout_is_zero_within_its_interval_when_the_design_is_the_baseline(pilot_run):
    """Read the baseline run as if it were the design: the true effect is exactly zero and
    the readout finds none."""
    pb = pilot_run.scenario.playbook
    pre = P.months_before_launch(pb.start, pb.launch)
    rows = [P._row(r, P.Panel(rep.stores_baseline, rep.stores_baseline).readout(pb.pilot.stores, pre_months=pre))
            for r, rep in enumerate(pilot_run.replications)]
    s = P.readout_summary(pd.DataFrame(rows))
    assert s["true_effect"] == 0.0
    assert s["bias"]["lo"] <= 0 <= s["bias"]["hi"], s["bias"]
    assert s["coverage"] >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / 30)


def test_without_months_before_launch_the_readout_is_against_the_baseline_run():
    sc = strong(8)
    sc = P.pilot_scenario(sc, ("s00", "s03", "s05"), pre_months=0, months=6)
    table = P.run_readout(simulate(sc, agents=2_000, seed=4, replications=2))
    assert set(table["method"]) == {P.BASELINE_DID} and set(table["pre_months"]) == {0}
    # on common random numbers a control store lives the baseline's months: the readout is
    # the true effect up to the customers referred across stores
    assert np.allclose(table["estimate"], table["true_effect"], atol=0.25 * table["true_effect"].abs().max())


def test_a_run_without_a_pilot_or_without_enough_control_stores_has_no_readout():
    assert P.run_readout(simulate(resolve(PLAYBOOK), agents=500, seed=1, replications=1)) is None
    sc = P.pilot_scenario(strong(4), ("s00", "s01", "s02"), pre_months=1, months=2)  # 1 store left for 3
    assert P.run_readout(simulate(sc, agents=500, seed=1, replications=1)) is None


# ----------------------------------------------------------------------------- power
def test_power_rises_with_the_number_of_stores_and_the_months():
    """Monotone within Monte-Carlo error (each step at least -2 binomial standard errors), and
    clearly rising from the smallest to the largest pilot (more than 3 standard errors)."""
    st = P.power_study(strong(16), stores=[2, 4, 8], months=[2, 8], replications=60, seed=3, agents=4_000,
                       pre_months=4)
    t = st.table.set_index(["stores", "months"])
    pw, se = t["power"], t["power_se"]

    def apart(a, b):  # standard error of a difference, as if independent (common random numbers make it smaller)
        return np.sqrt(se[a] ** 2 + se[b] ** 2 + 1e-12)

    for d in (2, 8):
        for k0, k1 in ((2, 4), (4, 8)):
            assert pw[(k1, d)] - pw[(k0, d)] >= -2 * apart((k1, d), (k0, d)), t
    for k in (2, 4, 8):
        assert pw[(k, 8)] - pw[(k, 2)] >= -2 * apart((k, 8), (k, 2)), t
    assert pw[(8, 8)] - pw[(2, 8)] > 3 * apart((8, 8), (2, 8)), t
    assert pw[(8, 8)] - pw[(8, 2)] > 3 * apart((8, 8), (8, 2)), t
    # the estimate is the true effect on average (its mean within 3 standard errors)
    for key, row in t.iterrows():
        assert abs(row["mean_bias"]) <= 3 * row["sd_estimate"] / np.sqrt(row["replications"]) + 1e-9, key


def test_simulated_power_agrees_with_the_two_sample_t_test():
    """Equal stores, 8 piloted of 16 against 8 matched controls: the store-level change is about
    normal with one variance, so the simulated power should be the textbook's (Cohen 1988)
    for the effect (the mean true effect) and sigma (within replications, sigma^2 = k
    mean(se^2) / 2), both estimated from 240 x 8 stores, precisely enough to neglect.
    Tolerance: 3 binomial standard errors of the simulated power at the analytic value, plus
    what Welch's test can lose against Student's (the analytic power at Welch's fewest
    degrees of freedom, k - 1, against 2k - 2)."""
    k, R = 8, 240
    st = P.power_study(strong(16), stores=[k], months=[1, 3, 6], replications=R, seed=5, agents=3_000, pre_months=3)
    checked = []
    for d, g in st.readouts.groupby("months"):
        effect = g["true_effect"].mean()
        sigma = np.sqrt(k * np.mean(g["se"] ** 2) / 2)
        student = P.analytic_power(effect, sigma, k)
        welch_low = P.analytic_power(effect, sigma, k, df=k - 1)
        simulated = float((g["p_value"] < 0.05).mean())
        tol = 3 * np.sqrt(student * (1 - student) / R) + (student - welch_low)
        assert abs(simulated - student) <= tol, (d, simulated, student, tol)
        checked.append((d, student))
    # the check covers no effect (the first month: nobody has joined yet, power = alpha) and some
    assert checked[0][1] == pytest.approx(0.05) and checked[-1][1] > 0.2, checked


def test_candidates_share_their_stores_and_customers():
    """Common random numbers across candidates: replication r's 2-store pilot's stores are its
    4-store pilot's first two, and both run on the same customers (the same baseline months,
    bit for bit, and the same design months in the stores outside both pilots)."""
    from simulator.executor import Task

    sc = strong(8)
    names = [s.name for s in sc.market.stores.stores]
    order = P.store_order(names, 6, 1)
    assert sorted(order) == sorted(names) and order != P.store_order(names, 6, 2)
    runs = {k: P.pilot_task(Task(P.pilot_scenario(sc, order[:k], pre_months=2, months=3), 1_000, 6, 1)) for k in (2, 4)}
    pd.testing.assert_frame_equal(runs[2][1], runs[4][1])
    outside = runs[2][0]["store"].isin(order[4:])
    pd.testing.assert_frame_equal(runs[2][0][outside], runs[4][0][outside])


# ----------------------------------------------------------------------------- paired test, choosing stores
def _panel(K: int, T: int, seed: int) -> P.Panel:
    """K stores x T months of made-up figures (design = baseline + 1 after month 2 in every store)."""
    rng = np.random.default_rng(seed)
    rows = [{"store": f"s{k:02d}", "month": t, "customers": 100.0 + 10 * k, "revenue": (100.0 + 10 * k) * (5 + k / 10)
             + rng.normal(0, 20)} for k in range(K) for t in range(T)]
    base = pd.DataFrame(rows)
    design = base.assign(revenue=base["revenue"] + np.where(base["month"] >= 2, base["customers"], 0.0))
    return P.Panel(design, base)


def test_the_readout_is_paired_up_to_40_percent_of_the_stores_with_welch_beside_it():
    panel = _panel(10, 6, 1)
    ro = panel.readout(["s00", "s03", "s06", "s09"], pre_months=2)  # 4 of 10: paired
    assert ro.test == P.PAIRED
    index = {s: i for i, s in enumerate(panel.stores)}
    after = P._rpc(panel.rev_d, panel.cust_d, slice(2, 6))
    before = P._rpc(panel.rev_d, panel.cust_d, slice(0, 2))
    change = after - before
    a = change[[index[s] for s in ro.pilot]]
    b = change[[index[s] for s in ro.controls]]
    assert ro.estimate == pytest.approx((a - b).mean())
    assert ro.se == pytest.approx((a - b).std(ddof=1) / 2)  # sqrt(4 pairs)
    assert ro.welch_se == pytest.approx(np.sqrt(a.var(ddof=1) / 4 + b.var(ddof=1) / 4))
    assert ro.ci_lo < ro.estimate < ro.ci_hi and ro.welch_ci_lo < ro.estimate < ro.welch_ci_hi
    assert ro.true_effect == pytest.approx(1.0)
    row = P._row(0, ro)
    assert list(row) == list(P.READOUT_COLUMNS)
    assert panel.readout(["s00", "s03", "s06", "s08", "s09"], pre_months=2).test == P.WELCH  # 5 of 10: Welch


def test_pilot_stores_are_chosen_random_best_or_matched_and_nested():
    sc = resolve(PLAYBOOK)
    stores = sc.market.stores.stores
    names = [s.name for s in stores]
    assert P.pilot_stores(sc, "random", 3, 2, 5) == P.store_order(names, 3, 2)[:5]
    best = P.pilot_stores(sc, "best", 3, 2, 8)
    top = sorted(stores, key=lambda s: -s.enrolment)[:8]
    assert {s.name for s in top} == set(best) and best == P.pilot_stores(sc, "best", 9, 0, 8)
    m8, m4 = P.pilot_stores(sc, "matched", 3, 2, 8), P.pilot_stores(sc, "matched", 3, 2, 4)
    assert m8[:4] == m4 and len(set(m8)) == 8
    # one store of each pair of stores consecutive in size
    ranked = [s.name for s in sorted(stores, key=lambda s: (-s.share, -s.enrolment, s.name))]
    pair_of = {n: i // 2 for i, n in enumerate(ranked)}
    assert len({pair_of[n] for n in P.pilot_stores(sc, "matched", 3, 2, 16)}) == 16
    with pytest.raises(ValueError, match="expected one of"):
        P.pilot_stores(sc, "nearest", 3, 2, 4)
