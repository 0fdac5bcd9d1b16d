"""Estimating a market: on CDNOW it validates, its chain decays like the cohort, it runs through
the engine and its chain is what the engine reproduces; the diagnostics cover the report. (The
models' own tests: test_states.py, test_rules.py, test_seasonality.py, test_market_file.py.)"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from simulator.calibration.lapse_return import LapseReturnModel
from simulator.calibration.market_file import write_market
from simulator.specs.market import Market

ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- CDNOW market


def test_cdnow_market_is_valid_and_its_rows_sum_to_one(cdnow_calibration):
    m = cdnow_calibration.market
    Market.model_validate(m.model_dump())                  # validates again from plain data
    assert m.customers == 2357
    assert sum(s.share for s in m.segments) == pytest.approx(1.0, abs=1e-9)
    for src, row in m.transitions.items():
        assert sum(row.values()) == pytest.approx(1.0, abs=1e-9), src
    assert np.mean(m.seasonality) == pytest.approx(1.0, abs=1e-9)
    assert m.acquisition.segment == "new" and m.acquisition.per_month == 0.0   # no arrivals after the cohort's Q1
    assert m.segments[0].name == "new" and m.segments[0].share == 0.0
    # states age: every state moves only to recency 0 of its tier or one month older
    for s in m.segments[1:]:
        tier, rec = s.name.rsplit("_r", 1)
        assert all(t.startswith(tier + "_r") for t in m.transitions[s.name]), s.name
    # long silence is lapsed, and the dormant bucket keeps most of its customers
    dormant = [s for s in m.segments if s.name.endswith("plus")]
    assert dormant and all(s.lapsed for s in dormant)
    assert all(m.transitions[s.name][s.name] > 0.9 for s in dormant)


#: Calendar months of the CDNOW holdout (1997-10 .. 1998-06).
HOLDOUT_MONTHS = (10, 11, 12, 1, 2, 3, 4, 5, 6)


def _chain_forecast(market: Market, months) -> list[float]:
    """Expected purchases per month of the market's own chain: customers by segment (the
    shares), times the segments' rates and the month's seasonality, moved by the transitions."""
    names = market.segment_names
    idx = {n: i for i, n in enumerate(names)}
    P = np.zeros((len(names), len(names)))
    for src, row in market.transitions.items():
        for dst, p in row.items():
            P[idx[src], idx[dst]] = p
    rate = np.array([s.purchase_rate for s in market.segments])
    x = np.array([s.share for s in market.segments]) * market.customers
    out = []
    for month in months:
        out.append(float(x @ rate * market.seasonality[month - 1]))
        x = x @ P
    return out


def test_cdnow_market_decays_like_the_cohort(cdnow_calibration):
    """The chain alone (shares, transitions, rates, seasonality) forecasts the holdout's
    transactions within 10% (a stationary chain on a few recency buckets over-forecasts by ~50%)."""
    total = sum(_chain_forecast(cdnow_calibration.market, HOLDOUT_MONTHS))
    assert total == pytest.approx(1882, rel=0.10)


def test_calibrated_market_runs_through_the_engine(cdnow_calibration, tmp_path):
    from simulator.engine.simulation import Simulation
    from simulator.scenario import resolve

    write_market(cdnow_calibration, tmp_path / "market.yaml")
    design = (ROOT / "programs" / "points_tiers.yaml").resolve()
    (tmp_path / "playbook.yaml").write_text(
        "name: cdnow_points\n"
        f"design: {design}\n"
        "market: market.yaml\n"
        "launch: 1997-10-01\n"
        "horizon_months: 12\n"
        "enrolment_drives:\n"
        "  - name: high_potential_at_the_till\n"
        "    start: 1997-10-01\n"
        "    months: 3\n"
        "    uplift: 1.0\n"
        "    target: {potential: [high], value: [high], lifecycle: [active]}\n",
        encoding="utf-8")
    rep = Simulation(resolve(tmp_path / "playbook.yaml"), agents=3000, seed=1).run()
    for frame in (rep.design, rep.baseline):
        assert np.isfinite(frame["revenue"]).all() and frame["revenue"].sum() > 0
        assert frame["customers"].iloc[0] == pytest.approx(2357, rel=1e-9)
    assert rep.design["members"].iloc[-1] > 0


def test_engine_reproduces_the_chain_from_the_shares(cdnow_calibration):
    """Agents drawn from the shares and moved by the engine buy, month by month, what the chain
    computes (20,000 agents: within 6% a month, 2.5% in total)."""
    from simulator.calibration.backtest import _no_program_scenario
    from simulator.engine.simulation import Simulation

    sc = _no_program_scenario(cdnow_calibration, dt.date(1997, 10, 1), 9)
    rep = Simulation(sc, agents=20_000, seed=5, mechanisms=sc.playbook.mechanisms).run()
    expected = _chain_forecast(cdnow_calibration.market, HOLDOUT_MONTHS)
    got = rep.baseline["purchases"].to_numpy()
    assert np.all(np.abs(got / np.array(expected) - 1) < 0.06), (got, expected)
    assert got.sum() == pytest.approx(sum(expected), rel=0.025)


def test_diagnostics_cover_the_report(cdnow_calibration):
    d = cdnow_calibration.diagnostics
    assert len(d.segment_sizes) == len(cdnow_calibration.market.segments)
    assert d.transitions.shape == (len(d.segment_sizes),) * 2
    assert list(d.monthly["period"]) == [f"1997-{m:02d}" for m in range(1, 10)]
    assert d.monthly["observed"].sum() == 4814
    assert {"observed", "fitted"} <= set(d.return_by_recency.columns)
    assert d.frequency["observed"].sum() == pytest.approx(1.0) and d.frequency["fitted"].sum() == pytest.approx(1.0)
    assert isinstance(d.model, LapseReturnModel) and 0 <= d.model.rho < 0.1
    assert d.potential is not None and d.potential_mix is not None
    cust = cdnow_calibration.customers
    probs = cust[[c for c in cust.columns if c.startswith("p_")]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert set(cust["band"]) == {"low", "medium", "high"}
