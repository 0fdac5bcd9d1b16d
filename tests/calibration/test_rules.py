"""Segments from a rule set: the chain counted month to month recovers a known chain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.calibration.estimate import calibrate
from simulator.calibration.segmentation import RuleSet


def test_rule_set_chain_recovers_a_known_recency_chain():
    """Customers move by a known chain on recency buckets (buy with Poisson(mu_k) purchases in
    state k: to recency 0 if they buy, else one bucket older); a rule set on those buckets
    recovers the buying probabilities, the purchase rates, and no extra heterogeneity."""
    rng = np.random.default_rng(3)
    mu = np.array([0.8, 0.4, 0.2, 0.05])
    n, months = 3000, 14
    periods = pd.period_range("2022-01", periods=months, freq="M")
    rows = []
    arrive = rng.integers(0, 4, n)
    for i in range(n):
        k = 0
        rows.append((i, arrive[i], 1))
        for t in range(arrive[i] + 1, months):
            y = rng.poisson(mu[k])
            for d in range(1, y + 1):
                rows.append((i, t, d))
            k = 0 if y > 0 else min(k + 1, 3)
    df = pd.DataFrame(rows, columns=["i", "t", "d"])
    log = pd.DataFrame({"customer_id": df["i"].astype(str),
                        "date": [periods[t].to_timestamp() + pd.Timedelta(days=int(d) - 1) for t, d in zip(df["t"], df["d"])],
                        "amount": 10.0})
    rules = RuleSet.model_validate({"name": "recency", "segments": (
        {"name": "r0", "when": {"recency_months": {"max": 0}}},
        {"name": "r1", "when": {"recency_months": {"min": 1, "max": 1}}},
        {"name": "r2", "when": {"recency_months": {"min": 2, "max": 2}}},
        {"name": "r3plus", "lapsed": True},
    )})
    cm = calibrate(log, name="synthetic", currency="EUR", gross_margin=0.3, segmentation=rules, potential_horizon=0)
    m = cm.market
    for k, name in enumerate(("r0", "r1", "r2", "r3plus")):
        seg = next(s for s in m.segments if s.name == name)
        assert seg.purchase_rate == pytest.approx(mu[k], rel=0.1, abs=0.01)
        assert m.transitions[name]["r0"] == pytest.approx(1 - np.exp(-mu[k]), rel=0.1, abs=0.01)
        assert seg.rate_shape > 5                       # Poisson counts: little extra heterogeneity
    assert m.transitions["r0"]["r1"] == pytest.approx(np.exp(-mu[0]), rel=0.05)
    assert m.transitions["new"] == {"r0": 1.0}           # a first month ends with a purchase
