"""Every shipped playbook and design gives the result files recorded before the engine's
restructuring, bit for bit (benchmarks/identity.py; slow: ``pytest -m slow``).

The hashes are main's at 51ec500: identity_1e8b647.json predates the store pilot's paired
readout (merge of stores18), which changed pilot.csv of the three store-pilot runs and nothing
else (293 result hashes compared)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "benchmarks" / "identity_51ec500.json"


@pytest.mark.slow
def test_shipped_runs_are_identical_to_the_recorded_hashes():
    spec = importlib.util.spec_from_file_location("identity", ROOT / "benchmarks" / "identity.py")
    identity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(identity)
    assert identity.check(RECORDED, verbose=False) == []
