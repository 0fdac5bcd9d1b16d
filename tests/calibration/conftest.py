"""Shared, session-scoped CDNOW fixtures for the calibration tests (each is computed once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.calibration import read_cdnow

CDNOW_PATH = Path(__file__).resolve().parents[2] / "data" / "cdnow" / "CDNOW_sample.txt"
MAIN_SPLIT = ("1997-09-30", "1998-06-30")
SECOND_SPLIT = ("1997-06-30", "1998-03-31")


@pytest.fixture(scope="session")
def cdnow_log():
    return read_cdnow(CDNOW_PATH)


@pytest.fixture(scope="session")
def cdnow_calibration(cdnow_log):
    from simulator.calibration.estimate import calibrate

    return calibrate(cdnow_log, name="cdnow", currency="EUR", gross_margin=0.3, calibration_end=MAIN_SPLIT[0],
                     source=CDNOW_PATH)


@pytest.fixture(scope="session")
def main_backtest(cdnow_log):
    from simulator.calibration.backtest import backtest

    return backtest(cdnow_log, *MAIN_SPLIT)


@pytest.fixture(scope="session")
def second_backtest(cdnow_log):
    from simulator.calibration.backtest import backtest

    return backtest(cdnow_log, *SECOND_SPLIT)
