"""Issue #12, "a calibrated market runs as is": every shipped playbook, with only its
``market:`` line pointed at a freshly calibrated market, validates and runs.

The designs are in EUR, so the markets are calibrated with EUR as their reporting currency
(as a user would), the Online Retail one with a whole base given by ``--customers``. Both
logs end decades before the playbooks launch, which ``validate`` says (a warning)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from simulator.calibration.pipeline import LogSource, calibrate_file
from simulator.runner import simulate
from simulator.scenario import resolve, validate_paths

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = sorted(p for p in ROOT.glob("markets/*/*.yaml") if p.name != "market.yaml" and not p.name.endswith("_search.yaml"))


@pytest.fixture(scope="module")
def cdnow_market(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cdnow") / "market.yaml"
    calibrate_file(LogSource(ROOT / "data" / "cdnow" / "CDNOW_sample.txt", format="cdnow"), out, currency="USD",
                   gross_margin=0.3, reporting_currency="EUR", fx_to_reporting=0.92)
    return out


@pytest.fixture(scope="module")
def online_retail_market(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("online_retail") / "market.yaml"
    calibrate_file(LogSource(ROOT / "data" / "online_retail" / "online_retail_invoices.csv.gz"), out, currency="GBP",
                   gross_margin=0.3, reporting_currency="EUR", fx_to_reporting=1.15, customers=400_000)
    return out


def _moved(playbook: Path, market: Path, folder: Path) -> Path:
    """The playbook copied into ``folder`` with ``market:`` pointed at ``market``; its design and
    baseline paths made absolute so that they still name the shipped designs."""
    text = playbook.read_text(encoding="utf-8")
    assert re.search(r"^market: market\.yaml$", text, flags=re.M)
    text = re.sub(r"^market: .*$", f"market: {market}", text, flags=re.M)
    for key in ("design", "baseline"):
        text = re.sub(rf"^{key}: (\.\./\S+)", lambda m: f"{key}: {(playbook.parent / m.group(1)).resolve()}", text, flags=re.M)
    out = folder / f"{playbook.parent.name}_{playbook.name}"
    out.write_text(text, encoding="utf-8")
    return out


def _names_stores(playbook: Path) -> bool:
    """A playbook that pilots in, or aims at, named stores: those belong to one network."""
    return bool(re.search(r"^\s*(pilot|stores):", playbook.read_text(encoding="utf-8"), flags=re.M))


def _validates_and_runs(playbook: Path, market: Path, folder: Path) -> None:
    moved = _moved(playbook, market, folder)
    warnings: list = []
    if _names_stores(playbook):
        # stores are named like segments are, but there is no portable stand-in: a market
        # calibrated without --store-col has no network, and validate says so in one line
        errors = validate_paths([moved], warnings)
        assert len(errors) == 1 and "has no store network" in errors[0].message
        return
    assert validate_paths([moved], warnings) == []
    # valid; the logs end decades before the playbooks' launches, and that is said
    assert any(w.field == "launch" and "after the end of the log" in w.message for w in warnings)
    scenario = resolve(moved)
    # every action aimed at a group takes some segment of the calibrated market
    assert not [w for w in scenario.warnings if "takes no segment" in w.message]
    result = simulate(scenario, agents=300, seed=1, replications=1)
    cash = result.frames[0]["difference"]["cash_flow"].to_numpy()
    assert len(cash) == scenario.playbook.horizon_months and np.all(np.isfinite(cash))


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_shipped_playbook_runs_on_a_market_calibrated_from_cdnow(playbook, cdnow_market, tmp_path):
    _validates_and_runs(playbook, cdnow_market, tmp_path)


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_shipped_playbook_runs_on_a_market_calibrated_from_online_retail(playbook, online_retail_market, tmp_path):
    _validates_and_runs(playbook, online_retail_market, tmp_path)


def test_every_shipped_playbook_targets_portable_groups_only():
    """Named segments differ from market to market: the shipped playbooks do not use them."""
    for p in PLAYBOOKS:
        assert not re.search(r"segments:", p.read_text(encoding="utf-8")), p


def test_calibrated_market_carries_the_channels_the_shipped_playbooks_use(cdnow_market):
    used = set()
    for p in PLAYBOOKS:
        used |= set(re.findall(r"^\s+channel: (\w+)", p.read_text(encoding="utf-8"), flags=re.M))
    text = cdnow_market.read_text(encoding="utf-8")
    assert used and used <= set(resolve_channels(cdnow_market))
    assert "reachability: DEFAULTS" in text     # the header says they are assumptions


def resolve_channels(market: Path) -> list[str]:
    from simulator.specs import load_market

    return list(load_market(market).reachability.channels)
