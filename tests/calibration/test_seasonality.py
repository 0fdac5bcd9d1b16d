"""Seasonality: calendar-month multipliers estimated from two years of log and more, flat below."""

from __future__ import annotations

import numpy as np

from simulator.calibration.estimate import calibrate
from simulator.calibration.segmentation import RFMStates

from .conftest import synthetic_log


def test_seasonality_is_estimated_from_two_years_and_more():
    season = np.array([0.9, 0.8, 1.0, 1.0, 0.9, 0.85, 0.7, 0.8, 1.0, 1.1, 1.35, 1.6])
    season = season / season.mean()
    rng = np.random.default_rng(11)
    log = synthetic_log(rng, 1200, 30, arrival_months=30, season=season, r=1.0, alpha=2.0, a=2.0, b=6.0, rho=0.05)
    cm = calibrate(log, name="seasonal", currency="EUR", gross_margin=0.3, potential_horizon=0,
                   segmentation=RFMStates(rate_tiers=3, lapse_tiers=1))
    lengths = np.array([31, 28.25, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]) / 30.4375
    truth = season * lengths / (season * lengths).mean()
    est = np.array(cm.market.seasonality)
    assert np.corrcoef(est, truth)[0, 1] > 0.8
    assert est[11] > 1.25 and est[6] < 0.85
    assert any("seasonality estimated" in n for n in cm.diagnostics.notes)
    flat = calibrate(log, name="seasonal", currency="EUR", gross_margin=0.3, potential_horizon=0, calibration_end="2020-12-31",
                     segmentation=RFMStates(rate_tiers=2, lapse_tiers=1))
    assert np.allclose(flat.market.seasonality, lengths / lengths.mean(), atol=1e-5)
