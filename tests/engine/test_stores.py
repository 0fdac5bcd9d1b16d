"""The store network: home stores, figures by store adding up to the market's, store-level
recruitment and reach, actions aimed at stores, staff challenges, and pilots by store."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.engine import stores as store_figures
from simulator.engine.simulation import Simulation
from simulator.executor import replication
from simulator.scenario import Scenario, resolve
from simulator.specs import load_market
from simulator.specs.market import Store, StoreNetwork
from simulator.specs.playbook import Pilot, StaffChallenge

PILOT_PLAYBOOK = "markets/france/premium_club_pilot.yaml"   # baseline none, a drive and a campaign
RUNNING_PLAYBOOK = "markets/france/points_tiers_launch.yaml"  # a running program migrated at launch

#: Columns describing the program itself, not the customers or money (a run without members
#: in a program differs from a run without a program only there).
PROGRAM_COLUMNS = ("program_active", "value_per_point", "cost_per_point")
#: Columns only the design run fills (against the baseline's same customers).
DESIGN_ONLY = ("nonmember_revenue", "nonmembers", "member_revenue_counterfactual")


def _with_market(sc: Scenario, **update) -> Scenario:
    return dataclasses.replace(sc, market=sc.market.model_copy(update=update))


def _with_playbook(sc: Scenario, **update) -> Scenario:
    return dataclasses.replace(sc, playbook=sc.playbook.model_copy(update=update))


def _network(n: int, enrolment=None, reach=None) -> StoreNetwork:
    enrolment = enrolment or [1.0] * n
    reach = reach or [{}] * n
    return StoreNetwork(stores=tuple(Store(name=f"s{k}", share=1.0 / n, enrolment=enrolment[k], reach=reach[k])
                                     for k in range(n)))


@pytest.mark.parametrize("playbook", [PILOT_PLAYBOOK, RUNNING_PLAYBOOK])
def test_one_neutral_store_runs_exactly_as_no_network(playbook):
    """A network of one store with multipliers of 1 changes no draw: the same months, bit for bit."""
    sc = resolve(playbook)
    none = replication(_with_market(sc, stores=None), agents=3_000, seed=2).run()
    one = replication(_with_market(sc, stores=_network(1)), agents=3_000, seed=2).run()
    pd.testing.assert_frame_equal(none.design, one.design)
    pd.testing.assert_frame_equal(none.baseline, one.baseline)
    assert none.stores_design is None and one.stores_design is not None


def test_home_stores_follow_each_segments_mix():
    """The share of a segment's agents in each store is its mix, within binomial error."""
    sc = resolve("tests/specs/fixtures/playbook.yaml")
    sc = _with_market(sc, stores=load_market("tests/specs/fixtures/market_stores.yaml").stores)
    sim = replication(sc, agents=40_000, seed=3)
    seg, store = sim.pop.segment0[: sim.pop.n_base], sim.pop.store[: sim.pop.n_base]
    mix = sim.market.store_mix
    for s in range(len(sim.market.names)):
        n = int((seg == s).sum())
        got = np.bincount(store[seg == s], minlength=mix.shape[1]) / n
        se = np.sqrt(mix[s] * (1 - mix[s]) / n)
        assert np.all(np.abs(got - mix[s]) <= 4 * se + 1e-12), (s, got, mix[s])


def _check_totals(sim: Simulation, rep) -> None:
    """Every month and run: the stores' counts add up to the market's exactly, money to rounding."""
    K = len(sim.market.stores)
    cols = store_figures.columns(sim.market.channels[:8])
    for name in ("design", "baseline"):
        rows, recs = sim.store_rows[name], sim.records[name]
        assert len(rows) == len(recs) == sim.H
        for t, (row, rec) in enumerate(zip(rows, recs)):
            assert row.shape == (K, len(cols))
            tot = dict(zip(cols, row.sum(axis=0)))
            for col in ("customers", "active", "purchases", "members", "new_members"):
                assert tot[col] == rec.get(col, 0.0), (name, t, col)
            for col in ("revenue", "member_revenue"):
                assert tot[col] == pytest.approx(rec.get(col, 0.0), rel=1e-12, abs=1e-9), (name, t, col)
        # the scaled tables: the same sums, month by month
        table = getattr(rep, f"stores_{name}")
        frame = getattr(rep, name)
        sums = table.groupby("month")[["customers", "active", "purchases", "revenue", "members", "new_members",
                                       "member_revenue"]].sum()
        for col in sums:
            np.testing.assert_allclose(sums[col].to_numpy(), frame[col].to_numpy(), rtol=1e-12, atol=1e-6, err_msg=col)


@pytest.mark.parametrize("playbook", [PILOT_PLAYBOOK, RUNNING_PLAYBOOK, "markets/india/premium_club_launch.yaml"])
def test_totals_over_stores_equal_the_market_every_month(playbook):
    sim = replication(resolve(playbook), agents=4_000, seed=7)
    rep = sim.run()
    _check_totals(sim, rep)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 12), data=st.data(), seed=st.integers(0, 1000))
def test_totals_over_random_networks_equal_the_market(n, data, seed):
    enrolment = data.draw(st.lists(st.floats(0.0, 4.0), min_size=n, max_size=n))
    shares = np.array(data.draw(st.lists(st.floats(0.01, 1.0), min_size=n, max_size=n)))
    shares = shares / shares.sum()
    shares[-1] = 1.0 - shares[:-1].sum()
    net = StoreNetwork(stores=tuple(Store(name=f"s{k}", share=float(max(shares[k], 0.0)), enrolment=enrolment[k],
                                          reach={"email": data.draw(st.floats(0.0, 3.0))}) for k in range(n)))
    sc = _with_playbook(_with_market(resolve(PILOT_PLAYBOOK), stores=net), horizon_months=6)
    sim = replication(sc, agents=1_500, seed=seed)
    _check_totals(sim, sim.run())


def test_a_store_that_never_asks_recruits_nobody_and_reach_follows_the_store():
    """Enrolment multiplier 0: no customer of that store joins; reach multiplier 0 on email:
    none of its members can be e-mailed, while the other stores recruit and reach."""
    sc = _with_market(resolve(PILOT_PLAYBOOK), stores=_network(3, enrolment=[0.0, 1.0, 3.0],
                                                               reach=[{}, {"email": 0.0}, {"email": 2.0}]))
    rep = replication(sc, agents=6_000, seed=4).run()
    by = rep.stores_design.groupby("store")[["new_members", "reachable_email", "customers"]].sum()
    assert by.loc["s0", "new_members"] == 0
    assert by.loc["s1", "new_members"] > 0 and by.loc["s2", "new_members"] > by.loc["s1", "new_members"]
    assert by.loc["s1", "reachable_email"] == 0 and by.loc["s2", "reachable_email"] > 0


def test_a_staff_challenge_recruits_in_its_stores_only_and_is_paid_per_enrolment():
    """On common random numbers the other stores' months are unchanged; the challenge's stores
    get more members; the enrolment cost grows by the fixed cost plus the staff's pay."""
    sc = _with_market(resolve(PILOT_PLAYBOOK), stores=_network(3))
    launch = sc.playbook.launch
    ch = StaffChallenge(name="sprint", stores=("s1",), start=launch, months=3, uplift=1.0, cost_per_enrolment=5.0,
                        cost=1000.0)
    without = replication(sc, agents=6_000, seed=9).run()
    sim = replication(_with_playbook(sc, staff_challenges=(ch,)), agents=6_000, seed=9)
    with_ = sim.run()
    a = without.stores_design.set_index(["store", "month"])
    b = with_.stores_design.set_index(["store", "month"])
    for store in ("s0", "s2"):
        pd.testing.assert_frame_equal(a.loc[store], b.loc[store])
    gained = b.loc["s1", "new_members"].sum() - a.loc["s1", "new_members"].sum()
    assert gained > 0
    extra_cost = with_.design["enrolment_cost"].sum() - without.design["enrolment_cost"].sum()
    assert extra_cost > 1000.0
    # the staff's pay is 5 per customer who joined at the till in the challenge's store and months
    assert (extra_cost - 1000.0) / 5.0 <= b.loc["s1"].loc[1:3, "new_members"].sum() + 1e-6


def test_a_campaign_aimed_at_stores_reaches_only_their_customers():
    sc = _with_market(resolve(PILOT_PLAYBOOK), stores=_network(4))
    camp = sc.playbook.campaigns[0]
    everywhere = replication(sc, agents=6_000, seed=2).run()
    aimed = camp.model_copy(update={"target": camp.target.model_copy(update={"stores": ("s0", "s3")})})
    some = replication(_with_playbook(sc, campaigns=(aimed,)), agents=6_000, seed=2).run()
    reached_all, reached_some = everywhere.design["campaign_contacts"].sum(), some.design["campaign_contacts"].sum()
    assert 0 < reached_some < reached_all


def test_a_pilot_in_every_store_is_the_launch():
    sc = resolve(PILOT_PLAYBOOK)
    launch = replication(sc, agents=4_000, seed=11).run()
    pilot = replication(_with_playbook(sc, pilot=Pilot(stores=sc.market.stores.names)), agents=4_000, seed=11).run()
    pd.testing.assert_frame_equal(launch.design, pilot.design)
    pd.testing.assert_frame_equal(launch.baseline, pilot.baseline)
    pd.testing.assert_frame_equal(launch.stores_design, pilot.stores_design)


def test_a_pilot_in_no_store_is_the_baseline():
    sc = resolve(PILOT_PLAYBOOK)
    rep = replication(_with_playbook(sc, pilot=Pilot(stores=())), agents=4_000, seed=11).run()
    cols = [c for c in rep.design.columns if c not in PROGRAM_COLUMNS + DESIGN_ONLY and c in rep.baseline.columns]
    pd.testing.assert_frame_equal(rep.design[cols], rep.baseline[cols])
    extra = [c for c in rep.design.columns if c not in rep.baseline.columns and c not in PROGRAM_COLUMNS]
    assert all((rep.design[c] == 0).all() for c in extra), extra
    # no member: every customer is a non-member, and spends what they spend in the baseline
    pd.testing.assert_series_equal(rep.design["nonmember_revenue"], rep.baseline["revenue"], check_names=False)
    pd.testing.assert_series_equal(rep.design["nonmembers"], rep.baseline["customers"], check_names=False)
    pd.testing.assert_frame_equal(rep.stores_design, rep.stores_baseline)


def test_a_pilot_keeps_the_other_stores_at_the_baseline():
    """Customers follow their home store: outside the pilot the design run's months by store
    are the baseline's; inside, customers join; fixed costs follow the pilot's share."""
    sc = resolve(PILOT_PLAYBOOK)
    stores = sc.market.stores.names
    chosen = stores[:5]
    launch = replication(sc, agents=6_000, seed=5).run()
    rep = replication(_with_playbook(sc, pilot=Pilot(stores=chosen)), agents=6_000, seed=5).run()
    d = rep.stores_design.set_index(["store", "month"])
    b = rep.stores_baseline.set_index(["store", "month"])
    for st_ in stores[5:]:
        pd.testing.assert_frame_equal(d.loc[st_], b.loc[st_])
    assert d.loc[list(chosen), "new_members"].sum() > 0
    share = sum(s.share for s in sc.market.stores.stores[:5]) / sum(s.share for s in sc.market.stores.stores)
    assert rep.design["fixed_cost"].sum() == pytest.approx(share * launch.design["fixed_cost"].sum(), rel=1e-12)
