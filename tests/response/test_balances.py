"""Goal gradient and rewarded behaviour from members' balances, on engine-generated logs."""

import numpy as np
import pytest

from simulator.engine.compiled import CompiledProgram
from simulator.response.balances import member_months, rewarded_at_threshold, reward_effects
from simulator.response.estimate import panel_from_log
from simulator.response.generate import member_log
from simulator.scenario import resolve
from simulator.specs.playbook import Mechanisms

PLAYBOOK = "markets/usa/cagnotte_launch.yaml"
EFFECTS = {"enrolment_propensity": 0.05, "goal_gradient": 0.25, "rewarded_behaviour": 0.2, "transition_effect": 0.3,
           "self_selection": 1.0}


def fit(log):
    sc = resolve(PLAYBOOK)
    program = CompiledProgram.from_spec(sc.program, sc.market)
    panel = panel_from_log(log.transactions)
    mm = member_months(panel, log.transactions, program, 1.0)  # US prices exclude sales tax: net = gross
    return mm, reward_effects(panel, mm, half_life=log.response["rewarded_half_life"])


def se(interval):
    est, lo, hi = interval
    return (hi - lo) / 2 / 1.6449


@pytest.fixture(scope="module")
def moderate():
    return fit(member_log(PLAYBOOK, response=EFFECTS, agents=8000, seed=101))


def test_balances_are_rebuilt_from_amounts_and_rules(moderate):
    """Between two member purchase months, the design's rules (2 points a dollar, 1,000-point
    vouchers, the enrolment bonus) predict the next observed balance; expiry is not rebuilt."""
    mm, res = moderate
    assert res.reconstruction > 0.9, res.reconstruction
    assert ((mm.progress >= 0) & (mm.progress <= 1)).all()
    assert res.rewards > 500  # a kitty conversion is seen as a reward


def test_goal_gradient_recovered_within_three_standard_errors(moderate):
    """The chosen goal gradient 0.25 lies within three standard errors of the estimate: not the
    90%-interval coverage the issue asks (measured 73% over 30 seeds: the slow test)."""
    _, res = moderate
    g = res.goal_gradient
    assert abs(g[0] - 0.25) < 3 * se(g), g
    assert g[1] > 0  # a goal gradient is found


def test_no_goal_gradient_found_when_it_is_off():
    off = Mechanisms(**{k: k not in ("goal_gradient", "rewarded_behaviour") for k in Mechanisms.model_fields})
    _, res = fit(member_log(PLAYBOOK, response=EFFECTS, agents=8000, seed=1, mechanisms=off))
    lo, hi = res.goal_gradient[1:]
    assert lo <= 0 <= hi, res.goal_gradient


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured over seeds 100..129: the 90% intervals held the chosen goal gradient "
                                       "in 73% and rewarded behaviour in 77% of seeds; both off by ~0.035 (docs/model.md)")
def test_intervals_cover_the_chosen_values_in_90_percent_of_seeds():
    hits = np.zeros(2)
    seeds = range(100, 130)
    for seed in seeds:
        _, res = fit(member_log(PLAYBOOK, response=EFFECTS, agents=8000, seed=seed))
        hits += [res.goal_gradient[1] <= 0.25 <= res.goal_gradient[2],
                 res.rewarded_behaviour[1] <= 0.2 <= res.rewarded_behaviour[2]]
    assert (hits / len(seeds)).min() >= 0.9, hits


def threshold(log):
    sc = resolve(PLAYBOOK)
    program = CompiledProgram.from_spec(sc.program, sc.market)
    panel = panel_from_log(log.transactions)
    mm = member_months(panel, log.transactions, program, 1.0)
    return reward_effects(panel, mm, half_life=3.0), rewarded_at_threshold(panel, mm, half_life=3.0)


def test_rewarded_behaviour_at_the_threshold_is_zero_when_off():
    """With the rewarded-behaviour mechanism off, the fit over all member months finds it: +0.19 at
    this seed, the worst of seeds 1..10 (+0.02 to +0.19); just reached against just missed, the
    90% interval holds 0 (20 of 20 seeds in the slow test, mean +0.044)."""
    off = Mechanisms(rewarded_behaviour=False)
    _, thr = threshold(member_log(PLAYBOOK, response=EFFECTS, agents=8000, seed=4, mechanisms=off))
    est, lo, hi = thr.rewarded_behaviour
    assert lo <= 0 <= hi, thr
    assert thr.crossed > 500 and thr.member_months > 2000


def test_rewarded_behaviour_at_the_threshold_recovered():
    """The chosen 0.2 within the 90% interval, and the estimate within 0.15 of it (2 sd of the
    estimate over seeds 101..120: 0.069)."""
    _, thr = threshold(member_log(PLAYBOOK, response=EFFECTS, agents=8000, seed=101))
    est, lo, hi = thr.rewarded_behaviour
    assert lo <= 0.2 <= hi and abs(est - 0.2) < 0.15, thr


@pytest.mark.slow
@pytest.mark.parametrize("on,seeds", [(True, range(101, 121)), (False, range(1, 21))])
def test_rewarded_behaviour_at_the_threshold_covers_in_90_percent_of_seeds(on, seeds):
    """Measured: 20 of 20 with 0.2 (mean 0.186, sd 0.069) and 20 of 20 with it off (mean +0.044,
    sd 0.062); the fit over all member months with it off: +0.03 to +0.19."""
    mech = None if on else Mechanisms(rewarded_behaviour=False)
    truth = 0.2 if on else 0.0
    hits = []
    for seed in seeds:
        _, thr = threshold(member_log(PLAYBOOK, response=EFFECTS, agents=8000, seed=seed, mechanisms=mech))
        hits.append(thr.rewarded_behaviour[1] <= truth <= thr.rewarded_behaviour[2])
    assert np.mean(hits) >= 0.9, sum(hits)
