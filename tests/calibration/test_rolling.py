"""`backtest --rolling`: which quarter-end splits a log gives, the verdict against BG/NBD, and a
small rolling run on the CDNOW sample whose table agrees with each split's own back-test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from simulator.calibration.backtest import BACKTEST_COLUMNS, backtest
from simulator.calibration.rolling import (
    GOAL_MAX_GAP_POINTS,
    ROLLING_COLUMNS,
    quarter_end_splits,
    rolling_lines,
    rolling_result,
    rolling_splits,
)
from simulator.cli import app

from .conftest import CDNOW_PATH

#: one worker runs this module, so the rolling run below is done once
pytestmark = pytest.mark.xdist_group("rolling")

SMALL = ("--agents", "300", "--replications", "2", "--seed", "7")


def _days(splits) -> list[str]:
    return [str(s.date()) for s in splits]


# ----------------------------------------------------------------------------- split selection
def test_a_36_month_log_gives_every_quarter_end_from_the_third_month_to_six_months_before_its_end():
    assert _days(quarter_end_splits("2020-01-01", "2022-12-31")) == [
        "2020-03-31", "2020-06-30", "2020-09-30", "2020-12-31", "2021-03-31", "2021-06-30", "2021-09-30",
        "2021-12-31", "2022-03-31", "2022-06-30"]


def test_the_shipped_logs_splits():
    # CDNOW sample: 1997-01 .. 1998-06
    assert _days(quarter_end_splits("1997-01-01", "1998-06-30")) == ["1997-03-31", "1997-06-30", "1997-09-30",
                                                                     "1997-12-31"]
    # Online Retail: 2010-12 .. 2011-11 (December 2011 is incomplete): one split, 4 + 8 months
    assert _days(quarter_end_splits("2010-12-01", "2011-11-30")) == ["2011-03-31"]


def test_boundaries_are_inclusive():
    # exactly 3 calibration months and exactly 6 holdout months: kept
    assert _days(quarter_end_splits("2020-01", "2020-09")) == ["2020-03-31"]
    # 2 calibration months (2020-02, 2020-03), or 5 holdout months: not kept
    assert _days(quarter_end_splits("2020-02", "2020-12")) == ["2020-06-30"]
    assert quarter_end_splits("2020-01", "2020-08") == []
    # a log that starts mid-quarter
    assert _days(quarter_end_splits("2020-02-17", "2021-06-30")) == ["2020-06-30", "2020-09-30", "2020-12-31"]


def _frame(first: str, last: str) -> pd.DataFrame:
    days = pd.date_range(first, last, freq="7D").append(pd.DatetimeIndex([pd.Timestamp(last)]))
    return pd.DataFrame({"customer_id": ["a"] * len(days), "date": days, "amount": 1.0})


def test_the_holdout_ends_with_the_last_complete_month_unless_given():
    splits, h_end = rolling_splits(_frame("2010-12-01", "2011-12-09"))
    assert str(h_end.date()) == "2011-11-30" and _days(splits) == ["2011-03-31"]
    splits, h_end = rolling_splits(_frame("1997-01-01", "1998-06-30"), "1998-03-15")
    assert str(h_end.date()) == "1998-02-28" and _days(splits) == ["1997-03-31", "1997-06-30"]


def test_a_log_too_short_is_one_line():
    with pytest.raises(ValueError) as err:
        rolling_splits(_frame("2020-01-01", "2020-08-31"))
    message = str(err.value)
    assert "\n" not in message and "no quarter-end split" in message and "2020-01..2020-08 (8)" in message


def _row(end: str, tx: tuple[float, float], rev: tuple[float, float]) -> dict:
    row = {"calibration_end": end, "calibration_months": 6, "holdout_first_month": "x", "holdout_last_month": "y",
           "holdout_months": 6, "customers": 100}
    for m, (sim, ref) in (("transactions", tx), ("revenue", rev)):
        row.update({f"{m}_actual": 1.0, f"{m}_simulation_error_pct": 0.0, f"{m}_bgnbd_error_pct": 0.0,
                    f"{m}_simulation_mape_pct": sim, f"{m}_bgnbd_mape_pct": ref, f"{m}_mape_gap_points": sim - ref})
    return row


def test_the_goal_needs_a_lower_mean_and_no_split_worse_by_more_than_two_points():
    rows = [_row("2020-03-31", (10.0, 15.0), (10.0, 15.0)),     # better at both
            _row("2020-06-30", (14.0, 12.0), (12.5, 10.0))]     # transactions +2.0 (allowed), revenue +2.5
    res = rolling_result(rows, holdout_end=pd.Timestamp("2021-06-30"), agents=None, replications=2, seed=1,
                         segmentation="rfm_states")
    tx, rev = res.summary["transactions"], res.summary["revenue"]
    assert tx["simulation_mean_mape_pct"] == 12.0 and tx["bgnbd_mean_mape_pct"] == 13.5
    assert tx["worst_gap_points"] == GOAL_MAX_GAP_POINTS and tx["worst_split"] == "2020-06-30" and tx["goal_met"]
    assert rev["mean_below_bgnbd"] and rev["splits_over_max_gap"] == ["2020-06-30"] and not rev["goal_met"]
    assert res.summary["goal_met"] is False
    lines = rolling_lines(res)
    assert lines[-2].startswith("transactions: mean monthly MAPE simulation 12.0% vs BG/NBD 13.5%")
    assert lines[-2].endswith(": goal met") and lines[-1].endswith(": goal not met")
    assert sum(line.startswith("2020-") for line in lines) == 2


# ----------------------------------------------------------------------------- a small rolling run
def _invoke(*args: str):
    return CliRunner().invoke(app, ["backtest", *args])


@pytest.fixture(scope="module")
def rolling_dir(tmp_path_factory) -> tuple[Path, str]:
    """The CDNOW sample with the holdout to 1997-12-31: two splits (1997-03-31, 1997-06-30)."""
    out = tmp_path_factory.mktemp("rolling") / "cdnow"
    res = _invoke(str(CDNOW_PATH), "--format", "cdnow", "--rolling", "--holdout-end", "1997-12-31", *SMALL,
                  "--out", str(out))
    assert res.exit_code == 0, (res.stdout, res.stderr)
    return out, res.stdout


def test_rolling_writes_the_documented_files(rolling_dir):
    out, _ = rolling_dir
    for f in ("rolling.csv", "rolling.json", "rolling.png", "manifest.json"):
        assert (out / f).is_file(), f
    assert (out / "rolling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (out / "splits").iterdir()) == ["1997-03-31", "1997-06-30"]
    for split in ("1997-03-31", "1997-06-30"):
        for f in ("backtest.csv", "backtest.json", "backtest.png", "customers.csv", "calibration_report.html",
                  "manifest.json"):
            assert (out / "splits" / split / f).is_file(), (split, f)
        frame = pd.read_csv(out / "splits" / split / "backtest.csv")
        assert tuple(frame.columns) == BACKTEST_COLUMNS and frame["period"].iloc[-1] == "1997-12"
        manifest = json.loads((out / "splits" / split / "manifest.json").read_text())
        assert manifest["arguments"]["calibration_end"] == split and manifest["arguments"]["holdout_end"] == "1997-12-31"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "backtest" and manifest["arguments"]["rolling"] is True
    assert manifest["arguments"]["seed"] == 7 and manifest["arguments"]["replications"] == 2
    assert manifest["splits"] == {"1997-03-31": "splits/1997-03-31", "1997-06-30": "splits/1997-06-30"}
    assert not list(out.parent.glob(".*partial")), "staging directory left behind"


def test_the_table_is_the_splits_backtest_figures(rolling_dir):
    out, _ = rolling_dir
    table = pd.read_csv(out / "rolling.csv", dtype={"calibration_end": str})
    assert tuple(table.columns) == ROLLING_COLUMNS
    assert table["calibration_end"].tolist() == ["1997-03-31", "1997-06-30"]
    assert table["calibration_months"].tolist() == [3, 6] and table["holdout_months"].tolist() == [9, 6]
    for row in table.to_dict("records"):
        s = json.loads((out / "splits" / row["calibration_end"] / "backtest.json").read_text())
        assert row["customers"] == s["customers"] == 2357
        assert row["holdout_first_month"] == s["holdout"]["first_month"]
        for m in ("transactions", "revenue"):
            b = s[m]
            assert row[f"{m}_actual"] == b["actual"]
            assert row[f"{m}_simulation_error_pct"] == b["forecast_error_pct"]
            assert row[f"{m}_bgnbd_error_pct"] == b["reference_error_pct"]
            assert row[f"{m}_simulation_mape_pct"] == b["forecast_mape_pct"]
            assert row[f"{m}_bgnbd_mape_pct"] == b["reference_mape_pct"]
            assert row[f"{m}_mape_gap_points"] == pytest.approx(b["forecast_mape_pct"] - b["reference_mape_pct"],
                                                                abs=1e-12)
    summary = json.loads((out / "rolling.json").read_text())
    assert summary["splits"] == ["1997-03-31", "1997-06-30"] and summary["holdout_end"] == "1997-12-31"
    for m in ("transactions", "revenue"):
        v = summary[m]
        assert v["simulation_mean_mape_pct"] == pytest.approx(table[f"{m}_simulation_mape_pct"].mean(), abs=1e-12)
        assert v["bgnbd_mean_mape_pct"] == pytest.approx(table[f"{m}_bgnbd_mape_pct"].mean(), abs=1e-12)
        assert v["worst_gap_points"] == pytest.approx(table[f"{m}_mape_gap_points"].max(), abs=1e-12)
        assert v["goal_met"] == (v["simulation_mean_mape_pct"] < v["bgnbd_mean_mape_pct"]
                                 and v["worst_gap_points"] <= GOAL_MAX_GAP_POINTS)
    assert summary["goal_met"] == (summary["transactions"]["goal_met"] and summary["revenue"]["goal_met"])


def test_a_split_is_the_plain_backtest_at_its_date(rolling_dir, cdnow_log):
    out, _ = rolling_dir
    plain = backtest(cdnow_log, "1997-06-30", "1997-12-31", agents=300, replications=2, seed=7)
    s = json.loads((out / "splits" / "1997-06-30" / "backtest.json").read_text())
    for m in ("transactions", "revenue"):
        for key in ("forecast", "reference", "forecast_mape_pct", "reference_mape_pct"):
            assert s[m][key] == plain.summary[m][key], (m, key)


def test_the_terminal_shows_each_split_the_table_and_a_verdict_per_metric(rolling_dir):
    out, stdout = rolling_dir
    lines = stdout.strip().splitlines()
    done = [line for line in lines if "details:" in line]
    assert len(done) == 2 and done[0].startswith("1997-03-31: holdout 1997-04..1997-12 (9 months), 2,357 customers")
    assert str(out / "splits" / "1997-06-30" / "backtest.json") in done[1]
    table = pd.read_csv(out / "rolling.csv", dtype={"calibration_end": str})
    row = next(line for line in lines if line.startswith("1997-06-30 "))
    sim = table.loc[1, "transactions_simulation_mape_pct"]
    assert f"{sim:.1f}%" in row
    assert lines[-3].startswith("transactions: mean monthly MAPE simulation")
    assert lines[-2].startswith("revenue: mean monthly MAPE simulation")
    for line in lines[-3:-1]:
        assert line.endswith(": goal met") or line.endswith(": goal not met"), line
    assert lines[-1] == f"results: {out}"


def test_same_log_and_seed_same_files(rolling_dir, tmp_path):
    out, _ = rolling_dir
    again = tmp_path / "again"
    res = _invoke(str(CDNOW_PATH), "--format", "cdnow", "--rolling", "--holdout-end", "1997-12-31", *SMALL,
                  "--out", str(again))
    assert res.exit_code == 0, res.stderr
    files = ["rolling.csv", "rolling.json", "rolling.png", "manifest.json",
             *(f"splits/{d}/{f}" for d in ("1997-03-31", "1997-06-30")
               for f in ("backtest.csv", "backtest.json", "customers.csv", "manifest.json"))]
    for f in files:
        assert (again / f).read_bytes() == (out / f).read_bytes(), f


def test_rolling_refuses_an_existing_directory(rolling_dir):
    out, _ = rolling_dir
    res = _invoke(str(CDNOW_PATH), "--format", "cdnow", "--rolling", *SMALL, "--out", str(out))
    assert res.exit_code == 2 and "already exists" in res.stderr and len(res.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- input errors
def _one_line(res, *words: str) -> str:
    assert res.exit_code == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def test_a_log_too_short_for_any_split_is_one_line_exit_2(tmp_path):
    log = tmp_path / "short.csv"
    _frame("2020-01-01", "2020-08-31").to_csv(log, index=False, date_format="%Y-%m-%d")
    out = tmp_path / "rolling"
    _one_line(_invoke(str(log), "--rolling", "--out", str(out)), "short.csv", "no quarter-end split")
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize("extra", [(), ("--rolling", "--calibration-end", "1997-09-30")])
def test_rolling_or_a_calibration_end_not_both_nor_neither(tmp_path, extra):
    out = tmp_path / "bt"
    _one_line(_invoke(str(CDNOW_PATH), "--format", "cdnow", *extra, "--out", str(out)), "--calibration-end",
              "--rolling")
    assert not out.exists()


def test_rolling_lines_print_na_for_a_missing_reference():
    row = _row("2020-03-31", (10.0, 12.0), (10.0, math.nan))
    res = rolling_result([row], holdout_end=pd.Timestamp("2020-12-31"), agents=None, replications=1, seed=1,
                         segmentation="rfm_states")
    assert not res.summary["revenue"]["goal_met"] and res.summary["transactions"]["goal_met"]
    assert "n/a" in rolling_lines(res)[-1]
