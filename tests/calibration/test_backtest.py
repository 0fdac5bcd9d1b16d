"""Backtest on CDNOW: the targets of the issue on the literature's split, and a second split.

Main split (FHL 2005): calibration 1997-01..1997-09, holdout 1997-10..1998-06. Targets:

* total holdout transactions within 10% of actual (BG/NBD: -12.1%);
* monthly MAPE of holdout transactions below BG/NBD's (11.3%), and of revenue below
  BG/NBD x Gamma-Gamma's.

Second split, calibration 1997-01..1997-06 (a shorter window, holdout 1997-07..1998-03): the
method is not tuned to one date. Asserted there: total transactions within 12% and both MAPEs
below the reference's. (Observed: -9% against BG/NBD's -16%.)

Each backtest averages 20 engine replications (seeded), so the figures are reproducible.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from simulator.calibration.backtest import BACKTEST_COLUMNS, backtest, write_backtest
from simulator.calibration.segmentation import load_ruleset

from .test_segmentation import RULESET


def test_main_split_meets_the_targets(main_backtest):
    tx, rev = main_backtest.summary["transactions"], main_backtest.summary["revenue"]
    assert tx["actual"] == 1882
    assert tx["reference_error_pct"] == pytest.approx(-12.1, abs=0.1)        # the published BG/NBD figure
    assert tx["reference_mape_pct"] == pytest.approx(11.3, abs=0.1)
    assert abs(tx["forecast_error_pct"]) < 10.0, tx
    assert tx["forecast_mape_pct"] < tx["reference_mape_pct"], tx
    assert rev["forecast_mape_pct"] < rev["reference_mape_pct"], rev
    assert abs(tx["forecast_error_pct"]) < abs(tx["reference_error_pct"])
    assert tx["forecast_customer_correlation"] > 0.45


def test_second_split_holds(second_backtest):
    tx, rev = second_backtest.summary["transactions"], second_backtest.summary["revenue"]
    assert tx["actual"] == 2112
    assert abs(tx["forecast_error_pct"]) < 12.0, tx
    assert tx["forecast_mape_pct"] < tx["reference_mape_pct"], tx
    assert rev["forecast_mape_pct"] < rev["reference_mape_pct"], rev


def test_monthly_frame_and_per_customer_table(main_backtest):
    m = main_backtest.monthly
    assert tuple(m.columns) == BACKTEST_COLUMNS
    assert list(m["period"]) == ["1997-10", "1997-11", "1997-12", "1998-01", "1998-02", "1998-03", "1998-04",
                                 "1998-05", "1998-06"]
    assert m["actual_transactions"].tolist() == [236, 261, 234, 196, 190, 270, 159, 168, 168]
    assert m["actual_revenue"].sum() == pytest.approx(70976.39, abs=0.01)
    c = main_backtest.customers
    assert len(c) == 2357 and c["actual"].sum() == 1882
    assert c["forecast"].sum() == pytest.approx(m["forecast_transactions"].sum(), rel=1e-9)
    assert c["reference"].sum() == pytest.approx(m["reference_transactions"].sum(), rel=1e-9)


def test_writes_csv_json_and_png(main_backtest, tmp_path):
    paths = write_backtest(main_backtest, tmp_path / "out")
    frame = pd.read_csv(paths["csv"])
    assert tuple(frame.columns) == BACKTEST_COLUMNS
    assert len(frame) == 9
    summary = json.loads(paths["json"].read_text())
    for key in ("transactions", "revenue"):
        for field in ("actual", "forecast", "reference", "forecast_error_pct", "reference_error_pct",
                      "forecast_mape_pct", "reference_mape_pct"):
            assert np.isfinite(summary[key][field])
    assert summary["transactions"]["forecast_customer_correlation"] > 0
    assert summary["calibration_end"] == "1997-09-30"
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_result_and_agent_subsets(cdnow_log):
    a = backtest(cdnow_log, "1997-09-30", "1997-12-31", agents=800, replications=2, seed=3)
    b = backtest(cdnow_log, "1997-09-30", "1997-12-31", agents=800, replications=2, seed=3)
    pd.testing.assert_frame_equal(a.monthly, b.monthly)
    assert a.summary["agents"] == 800 and a.summary["customers"] == 2357
    # a subset of 800 agents is scaled up to the 2,357 customers
    assert a.monthly["forecast_transactions"].sum() == pytest.approx(a.monthly["actual_transactions"].sum(), rel=0.3)


def test_rule_set_backtest_runs(cdnow_log):
    """A rule set's chain is estimated month to month; on a decaying cohort it does not age
    customers past what the window saw (nobody is silent 12 months by September 1997), so it
    over-forecasts: the report shows it, the default segmentation is the one to trust."""
    bt = backtest(cdnow_log, "1997-09-30", "1998-06-30", segmentation=load_ruleset(RULESET), replications=4)
    assert bt.summary["segmentation"] == "value_engagement"
    assert bt.summary["transactions"]["forecast_error_pct"] > 10


def test_holdout_must_follow_the_calibration(cdnow_log):
    with pytest.raises(ValueError, match="after the calibration end"):
        backtest(cdnow_log, "1997-09-30", "1997-09-30", replications=1)
