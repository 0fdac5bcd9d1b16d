"""Endowed progress (mechanisms/endowed_progress.py): the compiled function equals its NumPy
reference, off changes nothing, and on it raises the completion of the first reward."""

from __future__ import annotations

import dataclasses

import numpy as np
from numba import njit

from simulator.engine.mechanisms import endowed_progress as ep
from simulator.engine.state import NEVER
from simulator.executor import replication
from simulator.scenario import resolve

PLAYBOOK = "markets/usa/cagnotte_launch.yaml"


@njit(cache=False)
def _compiled(progress, spendable, target, endowed, since, out):
    for i in range(progress.shape[0]):
        out[i] = ep.perceived(progress[i], spendable[i], target[i], endowed[i], since[i])
    return out


def test_never_is_the_engines():
    assert ep._NEVER == NEVER


def test_compiled_equals_numpy_reference():
    rng = np.random.default_rng(3)
    n = 5_000
    target = rng.integers(1, 5_000, n).astype(float) * 100
    spendable = np.floor(rng.uniform(0, 1.2, n) * target)
    progress = np.minimum(spendable / target, 1.0)
    endowed = np.where(rng.uniform(size=n) < 0.3, 0.0, rng.uniform(0, 2, n) * target)
    since = np.where(rng.uniform(size=n) < 0.5, NEVER, rng.integers(0, 30, n)).astype(np.int16)
    got = _compiled(progress, spendable, target, endowed, since, np.empty(n))
    want = ep.perceived_numpy(progress, spendable, target, endowed, since)
    assert np.array_equal(got, want)
    # Nunes & Dreze's cards: 2 stamps given of 10 is progress 0.2 at the start, against 0 of 8
    assert ep.perceived(0.0, 0.0, 800.0, 200.0, NEVER) == 0.2
    assert ep.perceived(0.0, 0.0, 800.0, 200.0, 3) == 0.0  # after the first reward: an ordinary card
    assert ep.perceived(0.5, 400.0, 800.0, 0.0, NEVER) == 0.5  # off


def _with_endowed(sc, e: float):
    rewards = sc.program.rewards.model_copy(update={"endowed_progress": e})
    return dataclasses.replace(sc, program=sc.program.model_copy(update={"rewards": rewards}))


def _completion(rep) -> float:
    d = rep.design
    return float(d["vouchers_issued"].sum() + d["redemptions"].sum())


def test_off_by_default_and_on_raises_reward_completion():
    sc = resolve(PLAYBOOK)
    assert sc.program.rewards.endowed_progress == 0.0
    base = replication(sc, agents=3_000, seed=4).run()
    zero = replication(_with_endowed(sc, 0.0), agents=3_000, seed=4).run()
    on = replication(_with_endowed(sc, 1.0), agents=3_000, seed=4).run()
    assert base.design.equals(zero.design)
    assert on.design["purchases"].sum() > base.design["purchases"].sum()
    assert _completion(on) > _completion(base)
