"""transition_effect measured from members' lapses by simulating the engine
(simulator.response.lapses): a chosen value is recovered on engine-generated logs."""

import numpy as np
import pytest

from simulator.response.estimate import panel_from_log
from simulator.response.generate import member_log, with_response
from simulator.response.lapses import GRID, fit_transition_effect
from simulator.scenario import resolve

PLAYBOOK = "markets/usa/cagnotte_launch.yaml"
EFFECTS = {"enrolment_propensity": 0.05, "self_selection": 1.0, "goal_gradient": 0.25, "rewarded_behaviour": 0.2}


def fit(effect: float, seed: int, values: dict | None = None):
    """The log of ``seed`` generated with transition_effect ``effect``, fitted against the market
    it was generated from (the mapping takes the transitions and other response values from it)."""
    response = {**EFFECTS, "transition_effect": effect}
    log = member_log(PLAYBOOK, response=response, agents=8000, seed=seed)
    scenario = with_response(resolve(PLAYBOOK), response, pre_months=12, months=36)
    return fit_transition_effect(panel_from_log(log.transactions), scenario, values=values, seed=10_000 + seed)


def test_chosen_transition_effect_recovered():
    """0.3 (the shipped log's), seed 101: the interval holds it and stops short of 1; the
    simulated change in lapses falls with the effect (common random numbers keep it smooth)."""
    f = fit(0.3, 101)
    assert f.lo <= 0.3 <= f.hi < 1.0, (f.estimate, f.lo, f.hi)
    assert abs(f.estimate - 0.3) < 0.25, f.estimate
    c = f.curve
    assert list(c["effect"]) == list(GRID)
    assert np.all(np.diff(c["change"]) < 2 * c["se"].to_numpy()[1:])  # falling, up to the simulation's noise
    assert c["change"].iloc[-1] < c["change"].iloc[0] - 3 * c["se"].iloc[0]
    assert {k: f.held[k] for k in EFFECTS if k in f.held} == {k: v for k, v in EFFECTS.items() if k != "enrolment_propensity"}
    assert 0.8 < f.factor < 1.25  # the log's own propensity: little to match


@pytest.mark.slow
@pytest.mark.parametrize("effect,seeds,need", [(0.3, range(100, 120), 0.9), (0.0, range(100, 112), 0.9),
                                               (0.6, range(100, 112), 0.9)])
def test_interval_covers_the_chosen_value(effect, seeds, need):
    """Coverage of the 90% interval over seeds (measured: see the README, "Measuring a running
    program"); a log the other values contradict counts as a miss."""
    hits = []
    for s in seeds:
        try:
            f = fit(effect, s)
            hits.append(f.lo <= effect <= f.hi)
        except ValueError:
            hits.append(False)
    assert np.mean(hits) >= need, (sum(hits), len(hits))
