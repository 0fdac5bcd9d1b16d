"""A program already running at the start (mechanisms/history.py) and a migration's dating."""

import datetime as dt

import numpy as np
import pytest

from simulator.engine.compiled import CENTI
from simulator.engine.mechanisms import history, transitions
from simulator.engine.simulation import Simulation
from simulator.executor import replication
from simulator.scenario import Scenario
from simulator.specs.market import Market
from simulator.specs.playbook import Playbook
from simulator.specs.program import Program


def test_join_months_follow_the_truncated_geometric():
    """P(j = -A + k) = (1 - p)^k p / (1 - (1 - p)^A): checked on 200,000 draws against the
    exact probabilities (binomial standard errors, 5 sigma)."""
    A, p, n = 6, 0.3, 200_000
    u = (np.arange(n) + 0.5) / n
    j = history.join_months(np.full(n, p), A, np.random.default_rng(1).permutation(u))
    exact = np.array([(1 - p) ** k * p for k in range(A)]) / (1 - (1 - p) ** A)
    seen = np.bincount(j + A, minlength=A) / n
    assert j.min() >= -A and j.max() <= -1
    assert np.all(np.abs(seen - exact) <= 5 * np.sqrt(exact * (1 - exact) / n))


def test_first_bill_falls_on_the_members_anniversary():
    class Fee:
        trial_months, fee_months = 1, 12
    assert history.first_bill(np.array([-24, -13, -12, -2, -1]), Fee).tolist() == [1, 0, 1, 11, 0]


def test_the_reversed_chain_walks_back_in_the_stationary_state():
    """pi_i P*[i, j] = pi_j P[j, i] (Kelly 1979), rows sum to 1, and a reversible chain is its
    own reversal."""
    P = np.array([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.05, 0.05, 0.9]])
    R = transitions.reversed_matrix(P)
    pi = transitions.stationary(P)
    assert np.allclose(pi @ P, pi)
    assert np.allclose(R.sum(axis=1), 1.0)
    assert np.allclose(pi[:, None] * R, (pi[:, None] * P).T)
    sym = np.array([[0.6, 0.4], [0.4, 0.6]])  # doubly stochastic and symmetric: reversible
    assert np.allclose(transitions.reversed_matrix(sym), sym)


def _market(rate: float) -> Market:
    return Market.model_validate({
        "name": "m", "currency": "EUR", "reporting_currency": "EUR", "fx_to_reporting": 1.0, "customers": 2000,
        "acquisition": {"per_month": 0.0, "segment": "s"},
        "segments": ({"name": "s", "share": 1.0, "purchase_rate": rate, "rate_shape": 2.0, "basket": {"mean": 30.0, "cv": 0.5}},),
        "transitions": {"s": {"s": 1.0}}, "economics": {"gross_margin": 0.3, "vat_rate": 0.0},
        "response": {"enrolment_propensity": 0.3, "redemption_propensity": 0.5},
    })


def _program(name: str, **spec) -> Program:
    return Program.model_validate({"name": name, "currency": "EUR", "earn": {"points_per_unit": 1.0},
                                   "rewards": {"catalogue": ({"name": "r", "points_price": 400, "face_value": 4.0,
                                                              "cost": 4.0},)},
                                   "enrolment": {"mode": "automatic"}, **spec})


def _sim(current: Program, design: Program, dating: str = "keep_dates", launch: int = 1) -> Simulation:
    pb = Playbook.model_validate({"name": "h", "design": "x", "market": "y", "launch": dt.date(2027, launch, 1),
                                  "start": dt.date(2027, 1, 1), "horizon_months": 14, "baseline_age_months": 18,
                                  "migration": {"converted_points": dating}})
    sc = Scenario(program=design, baseline=current, market=_market(1.0), playbook=pb, fx_design_to_local=1.0)
    return replication(sc, agents=2000, seed=5, check_agents=True)


def test_opening_balances_are_dated_by_their_history():
    """Members' balances at the start hold only points of the last E months (E = the running
    program's expiry: the batch of month -E is the oldest, and expires at the end of month 1),
    and points of several of those months: the snapshots step up month by month instead of
    holding the whole balance since ever."""
    current = _program("current", expiry={"policy": "after_months", "months": 4})
    sim = _sim(current, _program("design"))
    run = sim.runs["baseline"]
    held = np.flatnonzero(run.earned > run.consumed)
    assert held.size > 100
    L = run.snap.shape[0]
    # outstanding from batches earned up to month -b, for b = 1 .. 4
    by_month = np.array([np.maximum(run.earned_until(0, b, held) - run.consumed[held], 0) for b in range(1, 5)])
    assert L >= 5
    assert (by_month[0] > by_month[2]).mean() > 0.5  # most balances hold points of recent months
    assert (by_month[3] < run.earned[held] - run.consumed[held]).mean() > 0.9  # rarely the whole balance
    assert sim.runs["design"].enrol_month[held].min() >= -18
    first = sim.run().baseline["points_expired"].iloc[0]
    assert 0 < first <= by_month[3].sum() / CENTI * sim.pop.scale  # month 1 expires at most month -4's batch


@pytest.mark.parametrize("dating", ["keep_dates", "new_issue"])
def test_converted_points_are_dated_as_the_playbook_says(dating):
    """A 6-month expiry replaced at launch by a 3-month one, at a point worth twice as much
    (half as many new points). keep_dates: the new points expire 3 months after the purchases
    that earned the old ones, so the converted balances lose points in the first months;
    new_issue: they are dated in the launch month, so nothing converted expires before month 4."""
    current = _program("current", expiry={"policy": "after_months", "months": 6},
                       rewards={"catalogue": ({"name": "r", "points_price": 400, "face_value": 4.0, "cost": 4.0},)})
    design = _program("design", expiry={"policy": "after_months", "months": 3},
                      rewards={"catalogue": ({"name": "r", "points_price": 200, "face_value": 4.0, "cost": 4.0},)})
    sim = _sim(current, design, dating)
    out = sim.runs["design"].outstanding()
    rec = sim.run().design
    assert rec["points_issued_migration"].iloc[0] == pytest.approx(np.floor(out / CENTI * 0.5).sum() * sim.pop.scale)
    assert rec["points_redeemed_migration"].iloc[0] == pytest.approx(out.sum() / CENTI * sim.pop.scale)
    if dating == "keep_dates":
        assert rec["points_expired"].iloc[:3].sum() > 0
    else:
        assert rec["points_expired"].iloc[:3].sum() == 0


def test_new_issue_equals_keep_dates_when_nothing_old_can_expire():
    """When the design never expires points, the dating of converted points changes nothing."""
    current = _program("current", expiry={"policy": "after_months", "months": 6})
    a = _sim(current, _program("design"), "keep_dates").run().design
    b = _sim(current, _program("design"), "new_issue").run().design
    assert a.equals(b)


def test_points_credited_at_the_launch_opening_get_their_own_row():
    """Points credited at the opening of the launch month (a referred customer's welcome bonus,
    before the month's step gives rows) have no snapshot row yet: the conversion gives them one
    and dates them in the launch month, instead of writing through row -1 into the last row of
    the ring (hypothesis found it: a point expiring under a 60-month rule in a 14-month run)."""
    current = _program("current")
    design = _program("design", expiry={"policy": "after_months", "months": 60})
    sim = _sim(current, design)
    run = sim.runs["design"]
    i = np.flatnonzero(run.exists & (run.row < 0))[0]
    run.credit(np.array([250 * CENTI]), np.array([i]))
    t = sim.launch_t
    history.convert(run, sim.base_prog, sim.design, t, keep_dates=True)
    assert run.row[i] >= 0
    assert not run.snap[:, -1].any()  # the last row belongs to nobody yet
    # every converted point of agent i dates from the launch month: nothing older outstanding
    held = run.outstanding()[i]
    assert held > 0
    assert all(run.earned_until(t, b, np.array([i]))[0] <= run.consumed[i] for b in range(1, run.snap.shape[0]))
