"""The market file: it loads back to the calibrated market, with its source in the header."""

from __future__ import annotations

import hashlib

from simulator.calibration.market_file import market_yaml, write_market
from simulator.specs import load_market

from .conftest import CDNOW_PATH


def test_market_file_round_trips_with_its_source_in_the_header(cdnow_calibration, tmp_path):
    path = write_market(cdnow_calibration, tmp_path / "markets" / "cdnow" / "market.yaml", source=CDNOW_PATH)
    text = path.read_text(encoding="utf-8")
    sha = hashlib.sha256(CDNOW_PATH.read_bytes()).hexdigest()
    header = text.split("\nname:")[0]
    assert "CDNOW_sample.txt" in header and sha in header and "1997-09-30" in header
    assert load_market(path) == cdnow_calibration.market
    assert market_yaml(cdnow_calibration).startswith("# Calibrated by loyalty-sim calibrate from CDNOW_sample.txt")
