"""The calibration report: one self-contained HTML file with every section."""

from __future__ import annotations

import re

import numpy as np

from simulator.calibration.estimate import calibrate
from simulator.calibration.report import _whole, write_report
from simulator.calibration.segmentation import load_ruleset

from .test_segmentation import RULESET


def test_report_has_every_section_and_embeds_its_figures(cdnow_calibration, main_backtest, tmp_path):
    path = write_report(cdnow_calibration, tmp_path / "report" / "calibration.html", backtest=main_backtest)
    text = path.read_text(encoding="utf-8")
    for words in ("Segments", "Monthly transition matrix", "Fitted against observed", "Potential score", "AUC",
                  "Backtest", "CDNOW_sample.txt", "1997-09-30"):
        assert words in text, words
    images = re.findall(r'<img alt="figure" src="data:image/png;base64,', text)
    assert len(images) >= 6
    assert "http://" not in text and "https://" not in text          # nothing to fetch: self-contained


def test_report_of_a_rule_set(cdnow_log, tmp_path):
    cm = calibrate(cdnow_log, name="cdnow_ve", currency="USD", gross_margin=0.3, segmentation=load_ruleset(RULESET))
    text = write_report(cm, tmp_path / "ve.html").read_text(encoding="utf-8")
    assert "ambassadors" in text and "dormant" in text
    assert "<table>" in text


def _table_after(text: str, header: str) -> list[list[str]]:
    """The rows (cells as text) of the first table whose header row starts with ``header``."""
    for table in re.findall(r"<table>(.*?)</table>", text):
        rows = [re.findall(r"<t[dh]>(.*?)</t[dh]>", r) for r in re.findall(r"<tr>(.*?)</tr>", table)]
        if rows[0][: len(header)] == header:
            return rows
    raise AssertionError(f"no table with header {header}")


def test_whole_customers_add_up_by_largest_remainder():
    assert _whole(np.array([0.4, 0.4, 0.2]), 1).tolist() == [1, 0, 0]
    assert _whole(np.array([1 / 3] * 3), 100).tolist() == [34, 33, 33]
    assert _whole(np.array([2.6, 3.3, 4.1]), 10).tolist() == [3, 3, 4]
    assert _whole(np.array([0.0, 0.0]), 5).tolist() == [0, 0]


def test_report_counts_whole_customers_that_add_up(cdnow_calibration, tmp_path):
    """Segment sizes are shares times the customers: shown as whole customers adding up to them."""
    cm = cdnow_calibration
    text = write_report(cm, tmp_path / "calibration.html").read_text(encoding="utf-8")
    n = cm.panel.n_customers
    assert n > 1000 and f"{n:,} customers" in text
    count = re.compile(r"^\d{1,3}(,\d{3})*$")  # whole, with thousands separators

    segments = _table_after(text, ["segment", "customers"])
    shown = {row[0]: row[1] for row in segments[1:]}
    assert all(count.match(c) for c in shown.values()), shown
    whole = {k: int(v.replace(",", "")) for k, v in shown.items()}
    assert sum(whole.values()) == n                        # hidden segments hold no customer
    expected = cm.diagnostics.segment_sizes.set_index("segment")["customers"]
    assert max(abs(whole[k] - expected[k]) for k in whole) < 1
    assert (expected.drop(list(whole)) < 1).all()

    tiers = _table_after(text, ["tier"])
    now = [row[-1] for row in tiers[1:]]
    assert tiers[0][-1] == "customers now" and all(count.match(c) for c in now), now
    assert sum(int(c.replace(",", "")) for c in now) == n

    for header, col in ((["bin", "customers"], 1), (["recency_months", "observations"], 1)):
        assert all(count.match(row[col]) for row in _table_after(text, header)[1:])


def test_rule_set_segments_hold_whole_customers(cdnow_log, tmp_path):
    cm = calibrate(cdnow_log, name="cdnow_ve", currency="USD", gross_margin=0.3, segmentation=load_ruleset(RULESET))
    text = write_report(cm, tmp_path / "ve.html").read_text(encoding="utf-8")
    cells = [row[1] for row in _table_after(text, ["segment", "customers"])[1:]]
    assert all(re.match(r"^\d{1,3}(,\d{3})*$", c) for c in cells), cells
    assert sum(int(c.replace(",", "")) for c in cells) == cm.panel.n_customers


def test_report_lists_the_merged_states_and_the_base(cdnow_calibration, tmp_path):
    cm = cdnow_calibration
    text = write_report(cm, tmp_path / "calibration.html").read_text(encoding="utf-8")
    states = cm.diagnostics.states
    merged = states[states["segment"] != states["state"]]
    assert len(merged) and f"{len(merged)} states held fewer than 1 whole customer" in text
    for seg in merged["segment"].unique():
        assert seg in text
    assert "Warning: the base is tiny" in text and f"{cm.market.customers:,}</b> customers" in text
