"""Results do not depend on the number of workers."""

from pathlib import Path

import pandas as pd

from simulator.executor import Executor
from simulator.runner import simulate
from simulator.scenario import resolve

ROOT = Path(__file__).resolve().parents[1]


def test_same_results_on_one_and_two_workers():
    sc = resolve(ROOT / "markets/usa/points_tiers_launch.yaml")
    one = simulate(sc, agents=600, seed=5, replications=3, executor=Executor(1))
    with Executor(2) as ex:
        two = simulate(sc, agents=600, seed=5, replications=3, executor=ex)
    pd.testing.assert_frame_equal(one.monthly_all(), two.monthly_all())
    assert one.summary() == two.summary()
