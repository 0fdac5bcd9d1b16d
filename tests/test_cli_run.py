"""`loyalty-sim run` and `reproduce` as a user calls them: files, refusal to overwrite,
bad input, bit-for-bit reproduction from the manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = "markets/usa/cagnotte_launch.yaml"


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "simulator", *args], cwd=cwd, capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "us"
    res = cli("run", "--playbook", PLAYBOOK, "--agents", "800", "--replications", "2", "--seed", "9", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "Incremental revenue" in res.stdout and "NPV" in res.stdout
    return out


def test_run_writes_the_documented_files(run_dir):
    for f in ("summary.json", "summary.txt", "monthly.csv", "monthly.parquet", "monthly_replications.parquet",
              "events.csv", "manifest.json"):
        assert (run_dir / f).is_file(), f
    assert not any(p.name.startswith(".") for p in run_dir.parent.iterdir()), "temporary files left behind"
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("incremental_revenue", "incremental_gross_margin", "incremental_program_cost", "roi", "npv",
                "payback_month", "breakage_rate", "reward_cost_pct_sales", "liability_end"):
        assert {"p10", "p50", "p90"} <= set(summary["metrics"][key]) or summary["metrics"][key]["missing"] == 2
    assert summary["replications"] == 2 and summary["agents"] == 800
    assert "scale" in summary and summary["scale"] == pytest.approx(3_800_000 / 800)
    monthly = pd.read_csv(run_dir / "monthly.csv")
    assert set(monthly["scenario"]) == {"design", "baseline", "difference"}
    d = monthly[monthly.scenario == "design"].set_index("month")
    b = monthly[monthly.scenario == "baseline"].set_index("month")
    x = monthly[monthly.scenario == "difference"].set_index("month")
    assert (x["revenue"] - (d["revenue"] - b["revenue"])).abs().max() < 1e-6 * d["revenue"].max()
    # the liability roll-forward closes in points and in money
    assert ((d["points_opening"] + d["points_issued"] - d["points_redeemed"] - d["points_expired"] - d["points_closing"]).abs() < 1e-6).all()
    assert ((d["liability_opening"] + d["liability_deferred"] - d["liability_recognised"] - d["liability_closing"]).abs() < 1e-3).all()
    pq = pd.read_parquet(run_dir / "monthly.parquet")
    assert len(pq) == len(monthly)
    man = json.loads((run_dir / "manifest.json").read_text())
    assert man["arguments"]["seed"] == 9 and man["version"]
    assert set(man["inputs"]) == {PLAYBOOK, "programs/cagnotte.yaml", "markets/usa/market.yaml"}


def test_existing_output_refused_without_force(run_dir):
    before = (run_dir / "summary.json").read_bytes()
    res = cli("run", "--playbook", PLAYBOOK, "--agents", "300", "--out", str(run_dir))
    assert res.returncode == 2
    assert "already exists" in res.stderr and "Traceback" not in res.stderr
    assert (run_dir / "summary.json").read_bytes() == before


def test_bad_playbook_one_line_exit_2_nothing_written(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / PLAYBOOK).read_text().replace("market: market.yaml", f"market: {ROOT / 'markets/usa/market.yaml'}")
                   .replace("design: ../../programs/cagnotte.yaml", f"design: {ROOT / 'programs/cagnotte.yaml'}")
                   .replace("uplift: 1.0", "uplift: lots"))
    out = tmp_path / "out"
    res = cli("run", "--playbook", str(bad), "--agents", "300", "--out", str(out))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "uplift" in lines[0] and f"{bad}:" in lines[0] and "expected a number" in lines[0]
    assert not out.exists()


def test_reproduce_bit_for_bit(run_dir, tmp_path):
    res = cli("reproduce", str(run_dir), "--out", str(tmp_path / "again"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "reproduced bit for bit" in res.stdout
    for f in ("summary.json", "monthly.csv", "monthly.parquet"):
        assert (run_dir / f).read_bytes() == (tmp_path / "again" / f).read_bytes()


def test_force_replaces(run_dir, tmp_path):
    target = tmp_path / "f"
    assert cli("run", "--playbook", PLAYBOOK, "--agents", "300", "--out", str(target)).returncode == 0
    res = cli("run", "--playbook", PLAYBOOK, "--agents", "400", "--out", str(target), "--force")
    assert res.returncode == 0
    assert json.loads((target / "summary.json").read_text())["agents"] == 400
