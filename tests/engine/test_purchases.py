"""Poisson draws by inverse CDF (the coupling between runs) and ragged baskets."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from simulator.engine.mechanisms.purchases import poisson_icdf


def test_matches_scipy_ppf():
    rng = np.random.default_rng(0)
    u = rng.random(50_000)
    lam = rng.gamma(1.0, 1.5, 50_000)
    assert np.array_equal(poisson_icdf(u, lam), stats.poisson.ppf(u, lam).astype(np.int64))


@settings(max_examples=60, deadline=None)
@given(st.floats(0.001, 0.999), st.floats(0.0, 20.0), st.floats(0.0, 5.0))
def test_monotone_in_rate(u, lam, extra):
    """Coupling: with the same uniform, a higher rate never gives fewer purchases."""
    lo = poisson_icdf(np.array([u]), np.array([lam]))[0]
    hi = poisson_icdf(np.array([u]), np.array([lam + extra]))[0]
    assert hi >= lo


def test_zero_rate_means_no_purchase():
    assert poisson_icdf(np.array([0.999999]), np.array([0.0]))[0] == 0
