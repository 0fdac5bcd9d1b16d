"""The calibration report: one self-contained HTML file with every section."""

from __future__ import annotations

import re

from simulator.calibration.estimate import calibrate
from simulator.calibration.report import write_report
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
