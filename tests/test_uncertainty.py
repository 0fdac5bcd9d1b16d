"""Parameters as distributions: validation with lines, per-replication draws that are
reproducible and shared across designs (common random numbers), and realisation."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from simulator.errors import InputErrors
from simulator.scenario import resolve
from simulator.specs import load_program
from simulator import uncertainty

ROOT = Path(__file__).resolve().parents[1]


def _uncertain_playbook(tmp_path: Path, gg: str = "{triangular: [0.1, 0.25, 0.35]}") -> Path:
    market = (ROOT / "markets/france/market.yaml").read_text()
    market = re.sub(r"(?m)^  goal_gradient: .*$", f"  goal_gradient: {gg}", market, count=1)
    assert f"goal_gradient: {gg}" in market
    market = market.replace("  gross_margin: 0.27", "  gross_margin: {uniform: [0.25, 0.29]}")
    (tmp_path / "market.yaml").write_text(market)
    pb = (ROOT / "markets/france/points_tiers_launch.yaml").read_text().replace("../../programs", str(ROOT / "programs"))
    pb = pb.replace("  running_per_year: 80000     # local CRM team", "  running_per_year: {triangular: [60000, 80000, 120000]}")
    (tmp_path / "pb.yaml").write_text(pb)
    return tmp_path / "pb.yaml"


def test_parameters_are_found_and_named(tmp_path):
    sc = resolve(_uncertain_playbook(tmp_path))
    names = {p.name: p for p in uncertainty.parameters(sc)}
    assert set(names) == {"france.economics.gross_margin", "france.response.goal_gradient",
                          "france.response.rewarded_behaviour", "france.response.transition_effect",
                          "france.response.campaign_lift", "fr_points_tiers_launch.costs.running_per_year"}
    assert names["france.response.goal_gradient"].central == 0.25


def test_draws_reproducible_within_support_and_shared_across_designs(tmp_path):
    sc = resolve(_uncertain_playbook(tmp_path))
    a = uncertainty.draws(sc, seed=3, replication=2)
    assert a == uncertainty.draws(sc, seed=3, replication=2)
    assert a != uncertainty.draws(sc, seed=3, replication=1)
    assert 0.1 <= a["france.response.goal_gradient"] <= 0.35
    other = dataclasses.replace(sc, program=load_program(ROOT / "programs/premium_club.yaml"))
    b = uncertainty.draws(other, seed=3, replication=2)
    assert b["france.response.goal_gradient"] == a["france.response.goal_gradient"]
    realised, values = uncertainty.realise(sc, seed=3, replication=2)
    assert realised.market.response.goal_gradient == values["france.response.goal_gradient"]
    assert not uncertainty.parameters(realised)


def test_draw_distribution_is_triangular(tmp_path):
    sc = resolve(_uncertain_playbook(tmp_path))
    vals = [uncertainty.draws(sc, seed=1, replication=r)["france.response.goal_gradient"] for r in range(2000)]
    mean = sum(vals) / len(vals)
    # triangular(0.1, 0.25, 0.35): mean 0.2333, sd 0.0514; 2,000 draws: se 0.0011
    assert abs(mean - (0.1 + 0.25 + 0.35) / 3) < 5 * 0.0514 / 2000 ** 0.5


def test_distribution_outside_bounds_is_rejected_with_line(tmp_path):
    path = _uncertain_playbook(tmp_path, gg="{triangular: [0.1, 0.25, 3.0]}")
    with pytest.raises(InputErrors) as err:
        resolve(path)
    msg = str(err.value)
    assert "market.yaml:" in msg and "response.goal_gradient" in msg and "reaches 3" in msg and "expected" in msg


def test_bad_triangular_order_rejected(tmp_path):
    path = _uncertain_playbook(tmp_path, gg="{triangular: [0.3, 0.25, 0.35]}")
    with pytest.raises(InputErrors, match="low <= mode <= high"):
        resolve(path)


def test_run_records_the_draws(tmp_path):
    from simulator.runner import simulate

    sc = resolve(_uncertain_playbook(tmp_path))
    res = simulate(sc, agents=500, seed=2, replications=2)
    per = res.summary()["per_replication"]
    assert per[0]["parameters"] == uncertainty.draws(sc, seed=2, replication=0)
    assert per[0]["parameters"] != per[1]["parameters"]
