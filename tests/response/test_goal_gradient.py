"""The goal gradient's fit mapped onto the engine's goal_gradient by simulating the engine
(simulator.response.goal_gradient): a chosen value is recovered on engine-generated logs."""

import numpy as np
import pytest

from simulator.engine.compiled import CompiledProgram
from simulator.response.balances import member_months, reward_effects
from simulator.response.estimate import panel_from_log
from simulator.response.generate import member_log, with_response
from simulator.response.goal_gradient import GRID, fit_goal_gradient
from simulator.scenario import resolve

PLAYBOOK = "markets/usa/cagnotte_launch.yaml"
EFFECTS = {"enrolment_propensity": 0.05, "goal_gradient": 0.25, "rewarded_behaviour": 0.2, "transition_effect": 0.3,
           "self_selection": 1.0}


def fit(seed: int, goal: float = 0.25):
    """The log of ``seed`` with goal_gradient ``goal``: its fit, and the fit mapped against the market
    it was generated from (US prices exclude sales tax: net = gross)."""
    response = {**EFFECTS, "goal_gradient": goal}
    log = member_log(PLAYBOOK, response=response, agents=8000, seed=seed)
    sc = resolve(PLAYBOOK)
    program = CompiledProgram.from_spec(sc.program, sc.market)
    panel = panel_from_log(log.transactions)
    half_life = log.response["rewarded_half_life"]
    res = reward_effects(panel, member_months(panel, log.transactions, program, 1.0), half_life=half_life)
    scenario = with_response(resolve(PLAYBOOK), response, pre_months=12, months=36)
    return res, fit_goal_gradient(panel, res.goal_gradient, scenario, program, net=1.0, half_life=half_life,
                                  seed=10_000 + seed)


def test_chosen_goal_gradient_recovered_and_the_fits_bias_removed():
    """0.25, seed 101: the interval holds it; the simulated fit rises with the engine's value and
    sits below it (the fit's bias, which the mapping removes: the mapped estimate is above the fit's)."""
    res, f = fit(101)
    assert f.lo <= 0.25 <= f.hi < 1.0, (f.estimate, f.lo, f.hi)
    c = f.curve
    assert list(c["effect"]) == list(GRID)
    assert np.all(np.diff(c["fitted"]) > 0)
    assert (c["fitted"] < c["effect"] + 2 * c["se"]).all() and c["fitted"].iloc[-1] < 1.0
    assert f.estimate > res.goal_gradient[0]
    assert f.hi - f.lo > res.goal_gradient[2] - res.goal_gradient[1]  # the simulation's error is added
    assert f.held == {k: v for k, v in EFFECTS.items() if k in ("self_selection", "rewarded_behaviour",
                                                                  "transition_effect")} | {"tier_status": f.held["tier_status"]}


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured over seeds 100..129: the mapped 90% interval held 0.25 in 26 of 30 "
                                       "seeds (mean 0.233, sd 0.050; the fit alone 22 of 30, mean 0.211): the bias is "
                                       "halved, not gone (README, 'Measuring a running program')")
def test_interval_covers_the_chosen_value_in_90_percent_of_seeds():
    """The issue's bar: the 90% interval holds the chosen value in at least 90% of seeds."""
    hits = [f.lo <= 0.25 <= f.hi for f in (fit(s)[1] for s in range(100, 130))]
    assert np.mean(hits) >= 0.9, sum(hits)
