"""Named counter-based streams: determinism, subset invariance (what makes common random
numbers and worker-independence hold), registration rules, and uniformity."""

import numpy as np
import pytest
from scipy import stats

from simulator.engine.streams import Streams, seed_key


def test_same_coordinates_same_draws_and_subsets_agree():
    a = Streams(seed_key(7), ("x", "y"))
    b = Streams(seed_key(7), ("y", "x"))  # registration order does not matter
    idx = np.arange(10_000)
    full = a.uniform("x", 3, idx)
    assert np.array_equal(full, b.uniform("x", 3, idx))
    sub = idx[::7]
    assert np.array_equal(a.uniform("x", 3, sub), full[::7])
    k = np.arange(sub.size) % 4
    assert np.array_equal(a.normal("x", 3, sub, k), b.normal("x", 3, sub, k))


def test_streams_periods_seeds_and_replications_differ():
    idx = np.arange(5_000)
    s = Streams(seed_key(7), ("x", "y"))
    draws = [s.uniform("x", 0, idx), s.uniform("x", 1, idx), s.uniform("y", 0, idx),
             Streams(seed_key(8), ("x",)).uniform("x", 0, idx), Streams(seed_key(7, 1), ("x",)).uniform("x", 0, idx)]
    for i in range(len(draws)):
        for j in range(i + 1, len(draws)):
            assert abs(np.corrcoef(draws[i], draws[j])[0, 1]) < 0.05  # 5,000 draws: |r| < 0.05 is 3.5 sd


def test_uniform_and_normal_distributions():
    s = Streams(seed_key(11), ("x",))
    u = s.uniform("x", 0, np.arange(200_000))
    assert 0 < u.min() and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    z = s.normal("x", 1, np.arange(200_000))
    assert stats.kstest(z, "norm").pvalue > 1e-4


def test_registration_rules():
    s = Streams(1, ("x",))
    with pytest.raises(ValueError, match="registered twice"):
        s.register("x")
    with pytest.raises(KeyError, match="not registered"):
        s.uniform("nope", 0, np.arange(3))
