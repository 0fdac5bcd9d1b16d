"""Monthly panel, RFM features, and rule sets (including bad rule files, reported by line)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.calibration.segmentation import (
    FEATURES, RFMStates, RuleSet, assign_rules, calibration_month_end, load_ruleset, monthly_panel, rfm_arrays,
    rfm_features,
)
from simulator.errors import InputErrors

RULESET = Path(__file__).resolve().parents[2] / "rulesets" / "value_engagement.yaml"


def frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "date", "amount"]).assign(date=lambda d: pd.to_datetime(d["date"]))


SMALL = frame([
    ("a", "2024-01-05", 10.0), ("a", "2024-01-05", 5.0),   # same day: one transaction of 15
    ("a", "2024-03-10", 30.0),
    ("b", "2024-02-01", 20.0),
    ("c", "2024-04-30", 8.0),                              # after the panel's end below
])


# ----------------------------------------------------------------------------- panel


def test_panel_counts_customer_days_by_calendar_month():
    p = monthly_panel(SMALL, "2024-03-31")
    assert list(p.customers) == ["a", "b"]                 # c is first seen after the end
    assert [str(m) for m in p.months] == ["2024-01", "2024-02", "2024-03"]
    assert p.counts.tolist() == [[1, 0, 1], [0, 1, 0]]
    assert p.spend.tolist() == [[15.0, 0.0, 30.0], [0.0, 20.0, 0.0]]
    assert p.first_month.tolist() == [0, 1]
    # share of the first month left after the first purchase day (that day counts half)
    assert p.first_month_fraction() == pytest.approx([(31 - 5 + 0.5) / 31, (29 - 1 + 0.5) / 29])


def test_cdnow_panel_totals(cdnow_log):
    p = monthly_panel(cdnow_log)
    assert p.counts.shape == (2357, 18)
    assert p.counts.sum() == 6696                          # customer-days, as in the literature
    assert p.counts.sum(axis=0)[:3].tolist() == [873, 1155, 1141]
    assert set(p.first_month.tolist()) == {0, 1, 2}        # the cohort arrives in Q1 1997
    assert p.spend.sum() == pytest.approx(cdnow_log.transactions["amount"].sum())


def test_calibration_month_end_moves_back_to_a_complete_month():
    assert calibration_month_end(SMALL, "2024-03-31") == pd.Timestamp("2024-03-31")
    assert calibration_month_end(SMALL, "2024-03-30") == pd.Timestamp("2024-02-29")
    assert calibration_month_end(SMALL, None) == pd.Timestamp("2024-04-30")   # the log ends on a month end


# ----------------------------------------------------------------------------- features


def test_rfm_features_by_hand():
    f = rfm_features(SMALL, "2024-03-15")                  # end of March
    a, b = f.loc["a"], f.loc["b"]
    assert (a["recency_months"], a["frequency"], a["tenure_months"]) == (0, 2, 2)
    assert a["monetary"] == pytest.approx(22.5) and a["spend_12m"] == pytest.approx(45.0)
    assert (b["recency_months"], b["frequency"], b["frequency_12m"], b["tenure_months"]) == (1, 1, 1, 1)
    assert list(f.columns) == list(FEATURES)
    # a year later, the 12-month window has emptied
    later = frame(list(SMALL.itertuples(index=False, name=None)) + [("z", "2025-03-01", 1.0)])
    g = rfm_features(later, "2025-03-31").loc["a"]
    assert (g["recency_months"], g["frequency"], g["frequency_12m"], g["spend_12m"]) == (12, 2, 0, 0.0)


# ----------------------------------------------------------------------------- rule sets


def test_shipped_ruleset_loads_and_covers_everyone(cdnow_log):
    rules = load_ruleset(RULESET)
    assert len(rules.segments) == 10
    assert rules.names[0] == "ambassadors" and rules.names[-1] == "dormant"
    assert {"active_at_risk", "engaged_inactive"} <= set(rules.names)
    p = monthly_panel(cdnow_log, "1997-09-30")
    seg = assign_rules(rules, rfm_arrays(p, p.n_months - 1))
    assert (seg >= 0).all()
    feats = rfm_arrays(p, p.n_months - 1)
    amb = seg == 0
    assert amb.any()
    assert (feats["recency_months"][amb] <= 1).all() and (feats["frequency_12m"][amb] >= 6).all()
    assert (feats["spend_12m"][amb] >= 200).all()


def test_first_matching_rule_wins():
    rules = RuleSet.model_validate({"name": "r", "segments": (
        {"name": "recent", "when": {"recency_months": {"max": 0}}},
        {"name": "frequent", "when": {"frequency": {"min": 2}}},
        {"name": "rest"},
    )})
    feats = {k: np.zeros(3) for k in FEATURES}
    feats["recency_months"] = np.array([0, 3, 3])
    feats["frequency"] = np.array([5, 5, 1])
    assert assign_rules(rules, feats).tolist() == [0, 1, 2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(text, encoding="utf-8")
    return p


GOOD = """\
name: two
segments:
  - name: active
    when:
      recency_months: {max: 2}
  - name: others
    when: {}
"""


@pytest.mark.parametrize("old, new, line, field, words", [
    ("recency_months: {max: 2}", "recency: {max: 2}", 5, "segments.0.when.recency", "unknown field 'recency'"),
    ("recency_months: {max: 2}", "recency_months: {min: 5, max: 2}", 5, "segments.0.when.recency_months.max",
     "max 2 is below min 5"),
    ("recency_months: {max: 2}", "recency_months: {}", 5, "segments.0.when.recency_months", "give min, max or both"),
    ("    when: {}\n", "    when:\n      frequency: {min: 1}\n", 7, "segments.1.when", "the last segment must have no condition"),
    ("name: others", "name: active", 6, "segments.1.name", "duplicate segment name 'active'"),
    ("  - name: others", "  - name: others\n    lapsed: yes", 7, "segments.1.lapsed", "read as a boolean by YAML 1.1"),
    ("recency_months: {max: 2}", "recency_months: {max: two}", 5, "segments.0.when.recency_months.max", ""),
])
def test_bad_rule_files_name_file_line_and_field(tmp_path, old, new, line, field, words):
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(InputErrors) as info:
        load_ruleset(path)
    errors = info.value.errors
    assert any(e.line == line and e.field == field and words in e.message for e in errors), [str(e) for e in errors]
    assert str(errors[0]).startswith(f"{path}:")


def test_a_segment_without_condition_must_be_last(tmp_path):
    text = GOOD.replace("  - name: active\n    when:\n      recency_months: {max: 2}\n",
                        "  - name: active\n    when: {}\n")
    with pytest.raises(InputErrors) as info:
        load_ruleset(write(tmp_path, text))
    assert any("has no condition" in e.message and e.line == 4 for e in info.value.errors)


def test_good_rule_file_loads(tmp_path):
    rules = load_ruleset(write(tmp_path, GOOD))
    assert rules.names == ("active", "others")


def test_rfm_states_checks_its_settings():
    with pytest.raises(ValueError):
        RFMStates(recency_months=0)
    with pytest.raises(ValueError):
        RFMStates(lapsed_from=20)
