"""The potential score: validated out of time on CDNOW, calibrated by deciles, banded in thirds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.calibration.potential import BANDS, auc, calibration_table, fit_potential, potential_bands
from simulator.calibration.segmentation import monthly_panel


@pytest.fixture(scope="module")
def score(cdnow_log):
    return fit_potential(cdnow_log, "1997-09-30", horizon_months=3)


def test_auc_by_hand():
    assert auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    assert np.isnan(auc([0.1, 0.2], [1, 1]))


def test_windows_are_out_of_time(score):
    assert str(score.validated.origin) == "1997-03"       # fitted on Apr-Jun
    assert str(score.model.origin) == "1997-06"           # validated on Jul-Sep, then refitted there
    assert str(score.at) == "1997-09"
    assert len(score.scores) == 2357


def test_validation_auc_and_calibration_on_cdnow(score):
    """Held-out AUC well above chance, and the deciles calibrated: predicted within 0.05 of
    observed on average (weighted by customers), the mean prediction within 0.03 of the base rate."""
    assert score.auc > 0.7
    t = score.calibration
    assert len(t) == 10 and t["customers"].sum() == 2357
    gap = np.average(np.abs(t["predicted"] - t["observed"]), weights=t["customers"])
    assert gap < 0.05, t
    mean_pred = np.average(t["predicted"], weights=t["customers"])
    assert abs(mean_pred - score.validation_base_rate) < 0.03
    # higher deciles are more active
    assert np.corrcoef(t["bin"], t["observed"])[0, 1] > 0.8


def test_score_predicts_the_real_holdout(score, cdnow_log):
    """Scores at the end of September 1997 against activity in October-December 1997 (never seen)."""
    full = monthly_panel(cdnow_log)
    active = pd.Series(full.counts[:, 9:12].sum(axis=1) > 0, index=full.customers).reindex(score.scores.index)
    assert auc(score.scores.to_numpy(), active.to_numpy()) > 0.75
    t = calibration_table(score.scores.to_numpy(), active.to_numpy())
    assert np.average(np.abs(t["predicted"] - t["observed"]), weights=t["customers"]) < 0.06
    # bands order the customers: high > medium > low activity
    rate = active.groupby(score.bands).mean()
    assert rate["high"] > rate["medium"] > rate["low"]


def test_bands_are_thirds(score):
    counts = score.bands.value_counts()
    assert set(counts.index) == set(BANDS)
    assert counts.max() - counts.min() < 0.1 * len(score.bands) + 5
    assert list(potential_bands([0.0, 0.5, 1.0], (0.2, 0.7))) == ["low", "medium", "high"]


def test_spend_target_and_short_logs(cdnow_log):
    s = fit_potential(cdnow_log, "1997-12-31", horizon_months=3, target="spend", min_spend=50.0)
    assert s.model.target == "spend" and s.auc > 0.7
    assert s.to_dict()["validation_auc"] == pytest.approx(s.auc)
    with pytest.raises(ValueError, match="too short"):
        fit_potential(cdnow_log, "1997-04-30", horizon_months=3)
    with pytest.raises(ValueError):
        fit_potential(cdnow_log, "1997-12-31", target="spend")
