"""Baskets: the drift of spend per transaction over calendar time is recovered when the log has
one, and left unused when it has none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.calibration.estimate import calibrate
from simulator.calibration.market_file import market_yaml
from simulator.calibration.synthetic import SyntheticProcess, synthetic_log


def _calibrate(drift: float, **kw):
    log = synthetic_log(3000, 18, process=SyntheticProcess(basket_drift=drift), seed=5, arrival_months=12)
    return calibrate(log, name="drift", currency="EUR", gross_margin=0.3, potential_horizon=0, **kw)


def test_a_known_drift_is_recovered_and_moves_the_baskets_to_the_calibration_end():
    """Log spend per transaction grows 2% a month: the within-customer slope is recovered within
    two standard errors, both halves of the window agree, and every segment's basket is moved by
    exp(slope x (end month - mean month)), which lands the basket near the true level at the
    calibration end (30 x exp(0.02 x 17) = 42.1)."""
    cm = _calibrate(0.02)
    d = cm.diagnostics.basket_drift
    assert d.used and d.z > 1.96 and d.first_half > 0 and d.second_half > 0
    assert abs(d.slope - 0.02) < 2 * d.se
    assert d.multiplier == pytest.approx(np.exp(d.slope * (d.end_month - d.mean_month)))
    assert d.end_month == 17 and 7 < d.mean_month < 11
    off = _calibrate(0.02, basket_drift=False)
    assert not off.diagnostics.basket_drift.used and off.diagnostics.basket_drift.multiplier == 1.0
    moved = np.array([s.basket.mean for s in cm.market.segments])
    kept = np.array([s.basket.mean for s in off.market.segments])
    assert np.allclose(moved, kept * d.multiplier, rtol=1e-3)
    active = [s.basket.mean for s in cm.market.segments if s.name.endswith("_r00")]
    assert np.mean(active) == pytest.approx(30 * np.exp(0.02 * 17), rel=0.1)
    assert any(n.startswith("basket drift:") and ": used" in n for n in cm.diagnostics.notes)
    assert "# baskets: spend per transaction drifts +0.0" in market_yaml(cm)
    assert "# baskets:" not in market_yaml(off)


def test_no_drift_is_not_used():
    """A log without drift: |z| below 1.96, the baskets are those measured."""
    cm = _calibrate(0.0)
    d = cm.diagnostics.basket_drift
    assert not d.used and abs(d.z) < 1.96 and d.multiplier == 1.0
    assert abs(d.slope) < 3 * d.se
    off = _calibrate(0.0, basket_drift=False)
    assert [s.basket.mean for s in cm.market.segments] == [s.basket.mean for s in off.market.segments]
    assert any(n.startswith("basket drift:") and "not used" in n for n in cm.diagnostics.notes)


def test_a_drift_whose_halves_disagree_is_not_used():
    """Baskets that rise then fall back: the halves of the window disagree in sign, so whatever
    the whole window's z, the drift is not used."""
    from simulator.calibration.baskets import basket_drift

    rng = np.random.default_rng(1)
    n, months = 2000, 12
    row = np.repeat(np.arange(n), months)
    t = np.tile(np.arange(months), n)
    level = np.where(t < 6, 0.05 * t, 0.05 * 5 - 0.02 * (t - 5))      # up 5% a month, then down 2%
    amount = np.exp(3 + 0.3 * rng.standard_normal(n)[row] + level + 0.2 * rng.standard_normal(len(row)))
    start = np.datetime64("2023-01", "M")
    tx = pd.DataFrame({"row": row, "date": (start + t.astype("timedelta64[M]")).astype("datetime64[ns]"), "amount": amount})
    d = basket_drift(tx, pd.Period("2023-01", "M"), months)
    assert abs(d.z) > 1.96 and d.first_half > 0 > d.second_half
    assert not d.used and d.multiplier == 1.0 and "do not agree" in d.note


def test_the_drift_read_in_blocks_is_the_drift_read_whole(monkeypatch):
    """Blocks of whole customers (here 7 rows) give the slope, its error and the halves of one pass."""
    from simulator.calibration import baskets
    from simulator.calibration.segmentation import monthly_panel

    log = synthetic_log(400, 12, process=SyntheticProcess(basket_drift=0.02), seed=3)
    panel = monthly_panel(log, pd.Timestamp("2020-12-31"), visits=True)
    whole = baskets.basket_drift(panel.visits, panel.months[0], panel.n_months)
    monkeypatch.setattr(baskets, "DRIFT_BLOCK_ROWS", 7)
    blocks = baskets.basket_drift(panel.visits, panel.months[0], panel.n_months)
    for key in ("slope", "se", "first_half", "second_half", "mean_month"):
        assert getattr(blocks, key) == pytest.approx(getattr(whole, key), rel=1e-9, abs=1e-12), key
    assert blocks.customers == whole.customers and blocks.used == whole.used
