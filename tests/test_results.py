"""The accounting a controller signs, proved on cases small enough to work out by hand.

Engine cases. Purchases are random draws, so a hand case cannot pin them; these cases have
none (a purchase rate of 0): four customers, each enrolled for sure by an e-mail drive in the
first month (enrolment propensity 1, no self-selection, reach 1), and the program's own rules
act on them deterministically (welcome points, a reward redeemed for sure, expiry, vouchers,
fees). The market has as many customers as agents, so nothing is scaled, and the engine's
figures must equal the hand's exactly. The deferral of revenue on points earned with sales is
proved on a hand-made monthly table through the same accounting code (last test) and in
tests/finance/test_ifrs15.py.
"""

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from simulator.engine.simulation import ReplicationResult, Simulation

from simulator.executor import replication
from simulator.results import RunResult
from simulator.scenario import Scenario
from simulator.specs.market import Market
from simulator.specs.playbook import Playbook
from simulator.specs.program import Program

AGENTS = 4
RATE = 0.08
H = 14


def market(vat: float = 0.2) -> Market:
    return Market.model_validate({
        "name": "hand", "currency": "EUR", "reporting_currency": "EUR", "fx_to_reporting": 1.0, "customers": AGENTS,
        "acquisition": {"per_month": 0.0, "segment": "s"},
        "segments": ({"name": "s", "share": 1.0, "purchase_rate": 0.0, "rate_shape": 1.0,
                      "basket": {"mean": 50.0, "cv": 0.5}},),
        "transitions": {"s": {"s": 1.0}},
        "economics": {"gross_margin": 0.3, "vat_rate": vat, "prices_include_tax": True, "discount_rate": RATE},
        "reachability": {"channels": {"email": 1.0}},
        "response": {"enrolment_propensity": 1.0, "self_selection": 0.0, "fee_sensitivity": 0.0,
                     "redemption_propensity": 1.0},
    })


def program(**spec) -> Program:
    base = {"name": "p", "currency": "EUR", "earn": {"points_per_unit": 1.0},
            "rewards": {"catalogue": ({"name": "gift", "kind": "voucher", "points_price": 100, "face_value": 1.2,
                                       "cost": 1.2},)},
            "expiry": {"policy": "never"}, "enrolment": {"mode": "opt_in"}}
    base.update(spec)
    return Program.model_validate(base)


def run(design: Program) -> RunResult:
    pb = Playbook.model_validate({
        "name": "hand", "design": "x", "market": "y", "launch": dt.date(2027, 1, 1), "horizon_months": H,
        "enrolment_drives": ({"name": "invite", "start": dt.date(2027, 1, 1), "uplift": 1.0, "channel": "email"},),
    })
    sc = Scenario(program=design, baseline=None, market=market(), playbook=pb, fx_design_to_local=1.0)
    return RunResult(sc, [replication(sc, agents=AGENTS, seed=3, check_agents=True).run()], AGENTS, 3)


def discounted(flows: dict[int, float]) -> float:
    """NPV of flows at months (1-based), discounted at the end of each month."""
    return sum(v / (1 + RATE) ** (m / 12) for m, v in flows.items())


def test_points_with_expiry_by_hand():
    """Four members join in month 1 and get 150 welcome points each (600, bonus points: no
    sale). Each redeems the 100-point voucher at once (propensity 1): 400 points, face 4 x 1.20
    = 4.80, cost 4 x 1.20 / 1.2 = 4.00 (a voucher is a price reduction: its cost is net of the
    20% VAT). The 50 points left each expire at the end of month 3 (2 months after the month
    they were earned): 200 points.

    Value of a point = 4.80 / 400 = 0.012, cost 4.00 / 400 = 0.01, simulated breakage
    200 / (400 + 200) = 1/3. Provision for the bonus points: charged 600 x 0.01 x 2/3 = 4.00,
    used 400 x 0.01 = 4.00, the 200 left are provided at 200 x 0.01 x 2/3 = 1.3333 (re-measured
    +1.3333); in month 3 the 200 expire and 1.3333 is released. No revenue is deferred (no
    sale). P&L cost: month 1 4.00 + 1.3333, month 3 -1.3333. Cash: 4.00 in month 1. Nothing is
    owed at the horizon. NPV = -4.00 / 1.08^(1/12)."""
    r = run(program(earn={"points_per_unit": 1.0, "bonuses": {"enrolment": 150}},
                    expiry={"policy": "after_months", "months": 2}))
    d = r.frames[0]["design"]
    assert d["new_members"].tolist()[:2] == [4, 0]
    assert d["points_issued_bonus"].iloc[0] == 600
    assert d["points_redeemed_rewards"].iloc[0] == 400
    assert d["points_expired"].tolist()[:4] == [0, 0, 200, 0]
    assert d["reward_cost"].iloc[0] == pytest.approx(4.0)
    assert d["reward_face_value"].iloc[0] == pytest.approx(4.8)
    assert d["value_per_point"].iloc[0] == pytest.approx(0.012)
    assert d["cost_per_point"].iloc[0] == pytest.approx(0.01)
    assert d["expected_breakage"].iloc[0] == pytest.approx(1 / 3)
    assert d["liability_deferred"].sum() == 0
    assert d["provision_charged"].iloc[0] == pytest.approx(4.0)
    assert d["provision_used"].iloc[0] == pytest.approx(4.0)
    assert d["provision_closing"].tolist()[:3] == pytest.approx([4 / 3, 4 / 3, 0.0])
    assert d["program_cost"].tolist()[:3] == pytest.approx([4 + 4 / 3, 0.0, -4 / 3])
    assert d["horizon_obligation"].sum() == 0
    m = r.replication_metrics()[0]
    assert m["npv"] == pytest.approx(discounted({1: -4.0}))
    assert m["incremental_program_cost"] == pytest.approx(4.0)
    assert m["roi"] == pytest.approx(-1.0)
    assert m["liability_end"] == pytest.approx(0.0)


def test_cash_back_vouchers_by_hand():
    """A cagnotte with a 10 EUR voucher (VAT 20% included) every 1,000 points, 50% of vouchers
    used. Each of the four members gets 2,000 welcome points: two vouchers at once, of which
    floor(2 x 0.5 + u) = 1 used whatever u. Vouchers: 8 issued, 4 used, cost 4 x 10 / 1.2 =
    33.33 (net of VAT), face 40. Points: 8,000 converted, of which 4,000 in vouchers never used
    (breakage, not redemption). Value of a point = 40 / 4,000 = 0.01, cost 33.33 / 4,000 =
    0.008333, breakage 4,000 / 8,000 = 0.5. Provision: charged 8,000 x 0.008333 x 0.5 = 33.33,
    used 4,000 x 0.008333 = 33.33, nothing left. NPV = -33.33 / 1.08^(1/12)."""
    r = run(program(earn={"points_per_unit": 1.0, "bonuses": {"enrolment": 2000}},
                    rewards={"cashback": {"threshold_points": 1000, "voucher_value": 10.0, "voucher_use_rate": 0.5}}))
    d = r.frames[0]["design"]
    cost = 4 * 10 / 1.2
    assert d["vouchers_issued"].iloc[0] == 8 and d["vouchers_used"].iloc[0] == 4
    assert d["points_redeemed_rewards"].iloc[0] == 8000
    assert d["points_voucher_lapsed"].iloc[0] == 4000
    assert d["reward_cost"].iloc[0] == pytest.approx(cost)
    assert d["value_per_point"].iloc[0] == pytest.approx(0.01)
    assert d["cost_per_point"].iloc[0] == pytest.approx(cost / 4000)
    assert d["expected_breakage"].iloc[0] == pytest.approx(0.5)
    assert d["provision_charged"].iloc[0] == pytest.approx(cost)
    assert d["provision_used"].iloc[0] == pytest.approx(cost)
    assert d["provision_closing"].abs().max() == pytest.approx(0.0, abs=1e-12)
    assert r.replication_metrics()[0]["npv"] == pytest.approx(discounted({1: -cost}))


def test_paid_club_with_vat_by_hand():
    """A club at 12 EUR a year, VAT 20% included, no trial: each of the four members pays
    in month 1 and renews in month 13 (fee sensitivity 0: renewal is sure). Fees received
    (cash, net of VAT): 4 x 10 = 40 in months 1 and 13. Earned over the 12 months each payment
    covers: 40 / 12 = 3.3333 a month. At the horizon (month 14) the second payment has 10 of
    its 12 months to run: 33.33 of fees received for later months, owed as service and charged
    as the obligation left at the horizon. No points move (no welcome points; the reward is
    never affordable).

    Cash flow: +40 (month 1), +40 (month 13), -33.33 (month 14). NPV = 40 / 1.08^(1/12) +
    40 / 1.08^(13/12) - 33.33 / 1.08^(14/12). Program cost (P&L) = -3.3333 every month (fees
    earned). ROI: the design costs nothing more than no program (cost = -80 + 33.33 < 0): none.
    Payback in month 1."""
    r = run(program(enrolment={"mode": "opt_in", "fee": {"amount": 12.0, "period": "year", "trial_months": 0}}))
    d = r.frames[0]["design"]
    assert d["fee_income"].tolist() == pytest.approx([40.0] + [0.0] * 11 + [40.0, 0.0])
    assert d["fee_revenue"].tolist() == pytest.approx([40 / 12] * H)
    assert d["fee_unearned"].iloc[-1] == pytest.approx(40 * 10 / 12)
    assert d["obligation_fees"].iloc[-1] == pytest.approx(40 * 10 / 12)
    assert d["program_cost"].tolist() == pytest.approx([-40 / 12] * H)
    assert d["points_issued"].sum() == 0
    m = r.replication_metrics()[0]
    assert m["npv"] == pytest.approx(discounted({1: 40.0, 13: 40.0, 14: -40 * 10 / 12}))
    assert m["roi"] is None
    assert m["payback_month"] == 1
    assert m["incremental_horizon_obligation"] == pytest.approx(40 * 10 / 12)


def test_points_earned_with_sales_by_hand():
    """The deferral, through the run's accounting (a hand-made monthly table in place of the
    engine's). Design only (no baseline). Month 1: net sales 1,000 earn 100 points; month 2:
    40 points redeemed for rewards of face 4.00 and cost 3.00, 10 expire; month 3: nothing.
    Value of a point 4 / 40 = 0.10, cost 0.075, breakage 10 / 50 = 0.2: SSP 0.08, deferred
    1,000 x 8 / 1,008 = D; month 2 recognises D / 2 (40 redeemed of 40 + 50 x 0.8 expected);
    the liability D / 2 is the 50 points left at their allocated price D / 100. At the horizon
    the 50 points will cost 50 x 0.8 x 0.075 = 3.00: the obligation left, charged in month 3.
    Cash flow = gross margin - rewards - obligation: 300, -3, -3."""
    pb = Playbook.model_validate({"name": "hand", "design": "x", "market": "y", "launch": dt.date(2027, 1, 1),
                                  "horizon_months": 3})
    sc = Scenario(program=program(), baseline=None, market=market(), playbook=pb, fx_design_to_local=1.0)
    zero = {c: [0.0] * 3 for c in ("points_issued_bonus", "points_issued_migration", "points_redeemed_migration",
                                   "points_voucher_lapsed", "fee_income", "fee_revenue", "fee_unearned",
                                   "benefit_cost", "campaign_cost", "enrolment_cost", "fixed_cost", "member_cost",
                                   "setup_amortisation", "setup_cash", "points_opening")}
    design = pd.DataFrame({**zero, "month": [1, 2, 3], "period": ["2027-01", "2027-02", "2027-03"],
                           "revenue": [1000.0, 0, 0], "gross_margin": [300.0, 0, 0], "sales_with_points": [1000.0, 0, 0],
                           "points_issued_purchase": [100.0, 0, 0], "points_redeemed_rewards": [0, 40.0, 0],
                           "points_expired": [0, 10.0, 0], "points_outstanding": [100.0, 50, 50],
                           "reward_face_value": [0, 4.0, 0], "reward_cost": [0, 3.0, 0],
                           "value_per_point": [0.05] * 3, "cost_per_point": [0.05] * 3})
    baseline = design.copy()
    for c in baseline.columns:
        if c not in ("month", "period", "value_per_point", "cost_per_point"):
            baseline[c] = 0.0
    rep = ReplicationResult(design, baseline, np.zeros((1, 1)), np.zeros((1, 1)), 1.0, [])
    r = RunResult(dataclasses.replace(sc), [rep], 1, 0)
    d = r.frames[0]["design"]
    D = 1000 * 8 / 1008
    assert d["value_per_point"].iloc[0] == pytest.approx(0.1)
    assert d["expected_breakage"].iloc[0] == pytest.approx(0.2)
    assert d["liability_deferred"].tolist() == pytest.approx([D, 0, 0])
    assert d["liability_closing"].tolist() == pytest.approx([D, D / 2, D / 2])
    assert d["liability_closing"].iloc[-1] == pytest.approx(50 * D / 100)
    assert d["horizon_obligation"].tolist() == pytest.approx([0, 0, 3.0])
    assert r.frames[0]["difference"]["cash_flow"].tolist() == pytest.approx([300.0, -3.0, -3.0])


# ---------------------------------------------------------------- invariants over any design
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.engine.test_simulation import markets, programs  # noqa: E402


def _scenario(market, design, baseline, months=14, **playbook) -> Scenario:
    pb = Playbook.model_validate({"name": "h", "design": "x", "market": "y", "launch": dt.date(2027, 2, 1),
                                  "start": dt.date(2027, 1, 1), "horizon_months": months, **playbook})
    return Scenario(program=design, baseline=baseline, market=market, playbook=pb, fx_design_to_local=1.0)


def _result(sc: Scenario, seed: int, agents: int = 300) -> RunResult:
    return RunResult(sc, [replication(sc, agents=agents, seed=seed).run()], agents, seed)


def _with_expiry(p: Program, expiry: dict) -> Program:
    return Program.model_validate({**p.model_dump(), "expiry": expiry})


SLOW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SLOW
@given(market=markets(), design=programs("design"), baseline=st.one_of(st.none(), programs("current")),
       seed=st.integers(0, 2**31))
def test_expiry_past_the_horizon_equals_never(market, design, baseline, seed):
    """An expiry rule that cannot act within the horizon (60 months after earning, when the
    oldest point held is the running program's 24 months of history plus 14 months) gives
    exactly the figures of points that never expire, in every column and in the summary."""
    never = _result(_scenario(market, _with_expiry(design, {"policy": "never"}), baseline), seed)
    late = _result(_scenario(market, _with_expiry(design, {"policy": "after_months", "months": 60}), baseline), seed)
    for run in ("design", "baseline", "difference"):
        pd.testing.assert_frame_equal(never.frames[0][run], late.frames[0][run], check_like=True)
    assert never.replication_metrics()[0]["npv"] == late.replication_metrics()[0]["npv"]


def _costlier_rewards(p: Program) -> Program:
    data = p.model_dump()
    data["rewards"]["catalogue"] = tuple({**r, "cost": r["cost"] * 2} for r in data["rewards"]["catalogue"])
    if data["rewards"].get("cashback"):
        data["rewards"]["cashback"]["voucher_cost_ratio"] = 1.0
    return Program.model_validate(data)


@SLOW
@given(market=markets(), design=programs("design"), baseline=st.one_of(st.none(), programs("current")),
       seed=st.integers(0, 2**31))
def test_dearer_rewards_lower_npv_by_exactly_their_discounted_cost(market, design, baseline, seed):
    """Doubling the cost of the design's rewards (a cash-back voucher from half its face value
    to all of it) changes no behaviour, so NPV falls by exactly the discounted extra cost: the
    rewards redeemed in the design's months and the points still owed at the horizon."""
    from simulator.finance import metrics

    if design.rewards.cashback is not None:
        design = Program.model_validate({**design.model_dump(), "rewards": {
            **design.rewards.model_dump(), "cashback": {**design.rewards.cashback.model_dump(), "voucher_cost_ratio": 0.5}}})
    one = _result(_scenario(market, design, baseline), seed)
    two = _result(_scenario(market, _costlier_rewards(design), baseline), seed)
    d1, d2 = one.frames[0]["design"], two.frames[0]["design"]
    live = one.phases()[0] == 1
    extra = metrics.npv(np.where(live, d2["reward_cost"] - d1["reward_cost"], 0.0)
                        + (d2["obligation_points"] - d1["obligation_points"]).to_numpy(), one.discount_rate(0))
    npv1, npv2 = one.replication_metrics()[0]["npv"], two.replication_metrics()[0]["npv"]
    assert npv2 <= npv1 + 1e-9 * (1 + abs(npv1))
    assert npv1 - npv2 == pytest.approx(extra, rel=1e-9, abs=1e-6)


@SLOW
@given(market=markets(), design=programs("design"), baseline=st.one_of(st.none(), programs("current")),
       seed=st.integers(0, 2**31), setup=st.floats(0, 1e5), running=st.floats(0, 1e5))
def test_more_cost_never_raises_npv(market, design, baseline, seed, setup, running):
    """Adding a set-up and a running cost lowers NPV by exactly their discounted amount (the
    set-up in full at launch, whatever its amortisation), and ROI's cost grows by their sum."""
    from simulator.finance import metrics

    sc = _scenario(market, design, baseline)
    dearer = _scenario(market, design, baseline, costs={"setup": setup, "running_per_year": running})
    a, b = _result(sc, seed), _result(dearer, seed)
    H = len(a.frames[0]["design"])
    flows = np.where(a.phases()[0] == 1, running / 12, 0.0)
    flows[1] += setup  # launch in the second month
    ma, mb = a.replication_metrics()[0], b.replication_metrics()[0]
    assert ma["npv"] - mb["npv"] == pytest.approx(metrics.npv(flows, a.discount_rate(0)), rel=1e-9, abs=1e-6)
    assert mb["incremental_program_cost"] - ma["incremental_program_cost"] == pytest.approx(setup + running / 12 * (H - 1), rel=1e-9, abs=1e-6)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(design=programs("current"), expiry=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_month_one_expiry_of_a_steady_program_looks_like_any_other_month(design, expiry, seed):
    """A program that has run long enough to be in its steady state (10 years, every buyer a
    member, no segment moves, no arrivals, no behavioural lift: the rules the history follows)
    keeps running as the baseline: its first month's expiry is within four standard deviations
    of its later months' (the old rule, every past snapshot = today's balance, expired whole
    balances in month 1)."""
    market = Market.model_validate({
        "name": "steady", "currency": "EUR", "reporting_currency": "EUR", "fx_to_reporting": 1.0, "customers": 3000,
        "acquisition": {"per_month": 0.0, "segment": "a"},
        "segments": ({"name": "a", "share": 0.5, "purchase_rate": 1.5, "rate_shape": 2.0, "basket": {"mean": 40.0, "cv": 0.6}},
                     {"name": "b", "share": 0.5, "purchase_rate": 0.3, "rate_shape": 1.0, "basket": {"mean": 30.0, "cv": 0.6}}),
        "transitions": {"a": {"a": 1.0}, "b": {"b": 1.0}},
        "economics": {"gross_margin": 0.3, "vat_rate": 0.2},
        "response": {"redemption_propensity": 0.5},
    })
    data = design.model_dump()
    data["rewards"]["catalogue"] = tuple({**r, "tiers": ()} for r in data["rewards"]["catalogue"])
    current = Program.model_validate({**data, "expiry": {"policy": "after_months", "months": expiry},
                                      "tiers": None, "enrolment": {"mode": "automatic"}})
    off = {k: False for k in ("self_selection", "goal_gradient", "rewarded_behaviour", "tier_status", "campaigns",
                              "transitions", "referrals")}
    sc = _scenario(market, current, current, months=30, baseline_age_months=120, mechanisms=off, campaigns=())
    b = replication(sc, agents=3000, seed=seed).run().baseline["points_expired"].to_numpy()
    later = b[1:]
    assert later.mean() > 0
    assert abs(b[0] - later.mean()) <= 4 * later.std(ddof=1) + 1e-9


def test_months_before_the_launch_are_the_same_program_in_both_runs():
    """A playbook that starts before its launch: until the launch both runs run the program of
    today on the same customers with the same draws, valued at one estimate (the baseline run's,
    over the whole horizon), so every incremental figure of those months is exactly zero."""
    from simulator.runner import simulate
    from simulator.scenario import resolve

    sc = resolve("markets/france/points_tiers_launch.yaml")
    sc = dataclasses.replace(sc, playbook=sc.playbook.model_copy(update={"start": dt.date(2027, 1, 1),
                                                                          "horizon_months": 6}))
    diff = simulate(sc, agents=2000, seed=1, replications=1).frames[0]["difference"]
    design_only = ["member_revenue_counterfactual", "nonmember_revenue", "nonmembers"]  # not kept for the baseline
    before = diff.iloc[:2].drop(columns=["month", "period", *design_only])
    assert (before.to_numpy() == 0).all(), before.loc[:, (before != 0).any()].columns.tolist()
    assert (diff["liability_closing"].iloc[2:] != 0).any()
