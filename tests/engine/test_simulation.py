"""The engine as a whole: common random numbers, reproducibility, a closed-form case, the
calendar's event log, and the conservation of points over random designs and markets."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.engine.simulation import Simulation

from simulator.executor import replication
from simulator.scenario import Scenario, resolve
from simulator.specs.market import Market
from simulator.specs.playbook import Mechanisms, Playbook
from simulator.specs.program import Program

ALL_OFF = Mechanisms(self_selection=False, goal_gradient=False, rewarded_behaviour=False, tier_status=False,
                     campaigns=False, transitions=False, referrals=False)
PLAYBOOKS = ["markets/france/points_tiers_launch.yaml", "markets/france/premium_club_pilot.yaml",
             "markets/usa/points_tiers_launch.yaml", "markets/usa/cagnotte_launch.yaml",
             "markets/india/points_tiers_launch.yaml", "markets/india/premium_club_launch.yaml"]


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_mechanisms_off_give_exactly_zero_incremental_purchases(playbook):
    rep = replication(resolve(playbook), agents=2_000, seed=5, mechanisms=ALL_OFF).run()
    for col in ("purchases", "active", "revenue", "gross_margin", "customers"):
        assert np.array_equal(rep.design[col].to_numpy(), rep.baseline[col].to_numpy()), col


def test_mechanisms_on_change_purchases():
    rep = replication(resolve(PLAYBOOKS[0]), agents=2_000, seed=5).run()
    assert rep.design["revenue"].sum() != rep.baseline["revenue"].sum()


def test_same_seed_identical_different_seed_differs():
    sc = resolve(PLAYBOOKS[0])
    a = replication(sc, agents=1_500, seed=3).run()
    b = replication(sc, agents=1_500, seed=3).run()
    c = replication(sc, agents=1_500, seed=4).run()
    pd.testing.assert_frame_equal(a.design, b.design)
    pd.testing.assert_frame_equal(a.baseline, b.baseline)
    assert a.events == b.events
    assert not a.design["revenue"].equals(c.design["revenue"])


def test_common_random_numbers_make_the_difference_precise():
    """Across seeds the incremental revenue varies far less than revenue itself: the
    difference is the program, not sampling noise."""
    sc = resolve(PLAYBOOKS[0])
    reps = [replication(sc, agents=2_000, seed=s).run() for s in range(6)]
    total = np.array([r.design["revenue"].sum() for r in reps])
    diff = np.array([r.design["revenue"].sum() - r.baseline["revenue"].sum() for r in reps])
    assert diff.std() < 0.25 * total.std()


def _closed_form_scenario(rate: float, shape: float, basket: float, vat: float) -> Scenario:
    market = Market.model_validate({
        "name": "one", "currency": "EUR", "reporting_currency": "EUR", "fx_to_reporting": 1.0, "customers": 40_000,
        "acquisition": {"per_month": 0.0, "segment": "all"},
        "segments": ({"name": "all", "share": 1.0, "purchase_rate": rate, "rate_shape": shape,
                      "basket": {"mean": basket, "cv": 0.5, "individual_cv": 0.2}},),
        "transitions": {"all": {"all": 1.0}},
        "economics": {"gross_margin": 0.3, "vat_rate": vat, "prices_include_tax": True},
    })
    program = Program.model_validate({
        "name": "auto", "currency": "EUR", "earn": {"points_per_unit": 1.0, "rounding": "none"},
        "rewards": {"cashback": {"threshold_points": 10**8, "voucher_value": 1.0}},
        "enrolment": {"mode": "automatic"},
    })
    playbook = Playbook.model_validate({"name": "cf", "design": "x", "market": "y", "launch": dt.date(2027, 1, 1),
                                        "horizon_months": 6})
    return Scenario(program=program, baseline=None, market=market, playbook=playbook, fx_design_to_local=1.0)


def test_closed_form_one_segment_fixed_rate():
    """One segment, no transitions, no lifts that apply (points never reach a reward):
    purchases are NBD, so per customer and month E[n] = rate and Var[n] = rate + rate^2/k;
    automatic enrolment makes members after month 1 = 1 - (k / (k + rate))^k of customers
    (the NBD zero class); points = net spend (1 per unit, no rounding)."""
    rate, k, basket, vat = 0.8, 2.0, 50.0, 0.2
    sc = _closed_form_scenario(rate, k, basket, vat)
    n = 40_000
    rep = replication(sc, agents=n, seed=11, mechanisms=ALL_OFF).run()
    d = rep.design
    per_month = d["purchases"].to_numpy() / n
    # a month's mean over n customers: sd = sqrt((rate + rate^2/k) / n); months share customers,
    # so test the first month and the 6-month mean each within 4.5 sd
    sd = np.sqrt((rate + rate ** 2 / k) / n)
    assert abs(per_month[0] - rate) < 4.5 * sd
    assert abs(per_month.mean() - rate) < 4.5 * sd
    members_1 = d["members"].iloc[0] / n
    p_member = 1 - (k / (k + rate)) ** k
    assert abs(members_1 - p_member) < 4.5 * np.sqrt(p_member * (1 - p_member) / n)
    # revenue is net of VAT: E = purchases * basket / (1 + vat), within 2% (basket noise)
    assert d["revenue"].sum() == pytest.approx(d["purchases"].sum() * basket / (1 + vat), rel=0.02)
    # 1 point per unit of net spend by members, to the hundredth of a point per transaction
    member_spend = d["sales_with_points"].sum()
    assert d["points_issued_purchase"].sum() == pytest.approx(member_spend, rel=1e-6)


def test_event_log_is_exact():
    sc = resolve("markets/usa/cagnotte_launch.yaml")
    rep = replication(sc, agents=500, seed=1).run()
    first_two = [e for e in rep.events if e[0] < 2]
    assert first_two == [
        (0, "period.open", "arrivals"), (0, "program.launch", "cagnotte"), (0, "drive.start", "in_store_launch"),
        (0, "period.step", "purchases, enrolment, earn, redemption"), (0, "points.expiry", "expiry"),
        (0, "segments.transition", "transitions"), (0, "costs.posting", "costs"), (0, "period.close", "close"),
        (1, "period.open", "arrivals"), (1, "period.step", "purchases, enrolment, earn, redemption"),
        (1, "points.expiry", "expiry"), (1, "segments.transition", "transitions"), (1, "costs.posting", "costs"),
        (1, "drive.end", "in_store_launch"), (1, "period.close", "close"),
    ]


# ---------------------------------------------------------------- conservation of points
names = st.sampled_from(["a", "b", "c", "d"])


@st.composite
def markets(draw):
    S = draw(st.integers(1, 4))
    segs = [f"s{i}" for i in range(S)]
    raw = [draw(st.integers(1, 10)) for _ in segs]
    shares = [r / sum(raw) for r in raw]
    shares[-1] = 1.0 - sum(shares[:-1])
    rows = {}
    for s in segs:
        w = [draw(st.integers(0, 10)) for _ in segs]
        if sum(w) == 0:
            w[segs.index(s)] = 1
        p = [x / sum(w) for x in w]
        p[-1] = 1.0 - sum(p[:-1])
        rows[s] = {d: max(v, 0.0) for d, v in zip(segs, p)}
    return Market.model_validate({
        "name": "m", "currency": "EUR", "reporting_currency": "EUR", "fx_to_reporting": 1.0, "customers": 5_000,
        "acquisition": {"per_month": draw(st.sampled_from([0.0, 50.0])), "segment": segs[0]},
        "segments": tuple({"name": s, "share": sh, "purchase_rate": draw(st.floats(0.0, 3.0)),
                           "rate_shape": draw(st.floats(0.3, 5.0)), "lapsed": i == S - 1 and S > 1,
                           "basket": {"mean": draw(st.floats(5.0, 200.0)), "cv": draw(st.floats(0.0, 1.5))}}
                          for i, (s, sh) in enumerate(zip(segs, shares))),
        "transitions": rows,
        "economics": {"gross_margin": 0.3, "vat_rate": draw(st.sampled_from([0.0, 0.2]))},
        "reachability": {"channels": {"email": 0.5}, "member_opt_in": {"email": 0.3}},
        "response": {"enrolment_propensity": draw(st.floats(0.0, 1.0)), "redemption_propensity": draw(st.floats(0.0, 1.0)),
                     "referrals_per_member_year": draw(st.floats(0.0, 2.0))},
    })


@st.composite
def programs(draw, name="p"):
    tiers = None
    if draw(st.booleans()):
        n = draw(st.integers(1, 3))
        window = draw(st.sampled_from([{"kind": "rolling", "months": draw(st.integers(1, 6))},
                                       {"kind": "calendar_year"}, {"kind": "anniversary"}]))
        tiers = {"metric": draw(st.sampled_from(["qualifying_points", "spend", "purchases"])), "window": window,
                 "downgrade": {"policy": draw(st.sampled_from(["never", "one_tier", "to_supported"])),
                               "grace_months": draw(st.integers(0, 3))},
                 "levels": tuple({"name": f"t{i}", "threshold": float(i * draw(st.integers(1, 300))) if i else 0.0,
                                  "earn_multiplier": draw(st.floats(0.5, 3.0)),
                                  "benefits": ({"name": "b", "cost_per_member_month": 1.0, "cost_per_use": 2.0, "uses_per_purchase": 0.1},)}
                                 for i in range(n))}
        # thresholds must ascend
        lv = list(tiers["levels"])
        for i in range(1, len(lv)):
            lv[i] = {**lv[i], "threshold": lv[i - 1]["threshold"] + 1 + lv[i]["threshold"]}
        tiers["levels"] = tuple(lv)
    cashback = draw(st.booleans())
    threshold = draw(st.integers(50, 2_000))
    catalogue = tuple({"name": f"r{i}", "points_price": draw(st.integers(20, threshold - 1 if cashback else 5_000)),
                       "face_value": 10.0, "cost": 6.0,
                       "tiers": (("t0",) if tiers and draw(st.booleans()) else ())}
                      for i in range(draw(st.integers(0 if cashback else 1, 3))))
    expiry = draw(st.sampled_from([{"policy": "never"}, {"policy": "after_months", "months": draw(st.integers(1, 8))},
                                   {"policy": "inactivity", "months": draw(st.integers(1, 6))},
                                   {"policy": "fixed_date", "month": draw(st.integers(1, 12)), "min_age_months": draw(st.integers(0, 6))}]))
    fee = {"amount": draw(st.floats(1.0, 60.0)), "period": draw(st.sampled_from(["month", "year"])),
           "trial_months": draw(st.integers(0, 2))} if draw(st.booleans()) else None
    return Program.model_validate({
        "name": name, "currency": "EUR",
        "earn": {"points_per_unit": draw(st.floats(0.05, 10.0)), "rounding": draw(st.sampled_from(["floor", "round", "ceil", "none"])),
                 "minimum_order": draw(st.sampled_from([0.0, 10.0])),
                 "bonuses": {"enrolment": draw(st.integers(0, 300)), "first_purchase": draw(st.integers(0, 100)),
                             "birthday": draw(st.integers(0, 100)), "referral": draw(st.integers(0, 100))},
                 "caps": {"per_month": draw(st.sampled_from([None, 200]))},
                 "qualifying": {"include_bonuses": draw(st.booleans())}, "pending_days": draw(st.sampled_from([0, 14, 45]))},
        "tiers": tiers,
        "rewards": {"catalogue": catalogue,
                    "cashback": {"threshold_points": threshold, "voucher_value": 5.0} if cashback else None},
        "expiry": expiry,
        "enrolment": {"mode": draw(st.sampled_from(["automatic", "opt_in"])), "fee": fee},
    })


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(market=markets(), design=programs("design"), baseline=st.one_of(st.none(), programs("current")),
       start_offset=st.integers(0, 3), seed=st.integers(0, 2**31))
def test_points_are_never_created_or_lost(market, design, baseline, start_offset, seed):
    """Every month, for every agent: issued = redeemed + expired + change in outstanding, and
    the recorded totals equal the sum of the agents' flows (replication(check_agents=True)
    raises otherwise); outstanding points are never negative."""
    launch = dt.date(2027, 1 + start_offset, 1)
    playbook = Playbook.model_validate({
        "name": "h", "design": "x", "market": "y", "launch": launch, "start": dt.date(2027, 1, 1), "horizon_months": 14,
        "campaigns": ({"name": "c", "kind": "bonus_points", "start": dt.date(2027, 2, 1), "months": 2,
                       "bonus_points": 50, "channel": "email"},
                      {"name": "m", "kind": "points_multiplier", "start": dt.date(2027, 3, 1), "multiplier": 2.0}),
    })
    sc = Scenario(program=design, baseline=baseline, market=market, playbook=playbook, fx_design_to_local=1.0)
    rep = replication(sc, agents=400, seed=seed, check_agents=True).run()
    for df in (rep.design, rep.baseline):
        change = df["points_outstanding"] - df["points_opening"]
        flows = df["points_issued"] - df["points_redeemed"] - df["points_expired"]
        assert np.allclose(change, flows, atol=1e-6)
        assert (df["points_outstanding"] >= 0).all()


def _with_target(sc: Scenario, campaign: str, **target) -> Scenario:
    """The scenario with one campaign's target replaced."""
    from simulator.specs.playbook import Target

    camps = tuple(c.model_copy(update={"target": Target(**target)}) if c.name == campaign else c
                  for c in sc.playbook.campaigns)
    return dataclasses.replace(sc, playbook=sc.playbook.model_copy(update={"campaigns": camps}))


def test_a_group_target_runs_exactly_as_the_segments_it_takes():
    """france's winback: lifecycle at_risk takes the segment at_risk; value low takes at_risk
    and lapsed. The runs are identical to the runs naming those segments."""
    sc = resolve(PLAYBOOKS[0])
    for group, named in (({"lifecycle": ("at_risk",)}, ("at_risk",)), ({"value": ("low",)}, ("at_risk", "lapsed"))):
        a = replication(_with_target(sc, "winback_at_risk", inactive_months=3, **group), agents=1_500, seed=3).run()
        b = replication(_with_target(sc, "winback_at_risk", inactive_months=3, segments=named), agents=1_500, seed=3).run()
        pd.testing.assert_frame_equal(a.design, b.design)
        assert a.design["campaign_contacts"].sum() > 0


def test_a_recency_range_splits_the_customers_a_campaign_reaches():
    """In the campaign's first month the customers silent at most 2 months and those silent 3 or
    more are, together, everyone the untargeted campaign reaches (same seed, same state)."""
    sc = resolve(PLAYBOOKS[0])
    start = next(c.start for c in sc.playbook.campaigns if c.name == "winback_at_risk")  # no other campaign then
    month = (start.year - sc.playbook.launch.year) * 12 + start.month - sc.playbook.launch.month

    def contacts(**target) -> float:
        rep = replication(_with_target(sc, "winback_at_risk", **target), agents=1_500, seed=3).run()
        return float(rep.design["campaign_contacts"].iloc[month])

    recent, silent, everyone = contacts(recency={"max": 2}), contacts(recency={"min": 3}), contacts()
    assert recent > 0 and silent > 0
    assert recent + silent == pytest.approx(everyone)
    assert contacts(inactive_months=3) == silent
