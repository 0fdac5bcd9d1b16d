"""NPV, payback, ROI and peak cash need on flows with known answers."""

import numpy as np
import pytest

from simulator.finance import metrics


def test_npv_monthly_discounting():
    # 12 monthly flows of 100 at 12.68% a year (1% a month): annuity factor (1 - 1.01**-12) / 0.01
    rate = 1.01 ** 12 - 1
    assert metrics.npv(np.full(12, 100.0), rate) == pytest.approx(100 * (1 - 1.01 ** -12) / 0.01)


def test_payback_is_when_cumulative_stays_non_negative():
    assert metrics.payback_month(np.array([-100, 50, 60, -5, 10.0])) == 3
    assert metrics.payback_month(np.array([-100, 50, 60, -20, 10.0])) == 5
    assert metrics.payback_month(np.array([-100, 10.0])) is None
    assert metrics.payback_month(np.array([5, 1.0])) == 1


def test_roi_and_peak_cash():
    assert metrics.roi(150.0, 100.0) == pytest.approx(0.5)
    assert metrics.roi(10.0, 0.0) is None
    assert metrics.peak_cash_need(np.array([-10, -5, 20.0])) == -15
