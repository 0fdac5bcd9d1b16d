"""`loyalty-sim run` and `reproduce` as a user calls them: files, refusal to overwrite,
bad input, bit-for-bit reproduction from the manifest."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.runner import RESULT_FILES, STORE_FILE
from simulator.scenario import resolve

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
    (out.parent / "run.stderr").write_text(res.stderr)
    return out


def playbook_copy(tmp_path: Path, *replace: tuple[str, str]) -> Path:
    """The test playbook copied to ``tmp_path`` (its design and market by absolute path), with
    text replacements."""
    text = (ROOT / PLAYBOOK).read_text().replace("market: market.yaml", f"market: {ROOT / 'markets/usa/market.yaml'}") \
        .replace("design: ../../programs/cagnotte.yaml", f"design: {ROOT / 'programs/cagnotte.yaml'}")
    for old, new in replace:
        text = text.replace(old, new)
    out = tmp_path / "playbook.yaml"
    out.write_text(text)
    return out


def test_run_writes_the_documented_files(run_dir):
    for f in ("summary.json", "summary.txt", "monthly.csv", "monthly.parquet", "monthly_replications.parquet",
              "events.csv", "pnl_by_year.csv", "ifrs15_by_year.csv", "manifest.json"):
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
    assert set(man["outputs"]) == set(RESULT_FILES) | {STORE_FILE} >= {"pnl_by_year.csv", "ifrs15_by_year.csv"}
    for f, digest in man["outputs"].items():
        assert hashlib.sha256((run_dir / f).read_bytes()).hexdigest() == digest, f


def test_stores_parquet_adds_up_to_the_monthly_table(run_dir):
    """stores.parquet: every (scenario, store, month) of the market's network, and for design,
    baseline and difference the stores' totals are the monthly table's figures each month."""
    stores = pd.read_parquet(run_dir / STORE_FILE)
    monthly = pd.read_parquet(run_dir / "monthly.parquet")
    network = resolve(PLAYBOOK).market.stores.names
    assert list(stores.columns[:5]) == ["scenario", "store", "month", "period", "currency"]
    assert len(stores) == 3 * len(network) * monthly["month"].nunique()
    assert set(stores["store"]) == set(network)
    for run in ("design", "baseline", "difference"):
        sums = stores[stores.scenario == run].groupby("month")[["customers", "active", "purchases", "revenue",
                                                                 "members", "new_members"]].sum()
        m = monthly[monthly.scenario == run].set_index("month")
        for col in sums:
            np.testing.assert_allclose(sums[col], m.loc[sums.index, col], rtol=1e-9, atol=1e-6, err_msg=f"{run} {col}")
    d = stores[stores.scenario == "design"]
    assert ((d["member_revenue_share"] >= 0) & (d["member_revenue_share"] <= 1)).all()
    assert (d["reachable_email"] <= d["members"] + 1e-6).all()


def test_pnl_and_ifrs15_by_year(run_dir):
    monthly = pd.read_csv(run_dir / "monthly.csv")
    pnl = pd.read_csv(run_dir / "pnl_by_year.csv")
    assert list(pnl.columns[:3]) == ["scenario", "currency", "fiscal_year"] and "tax" not in pnl
    assert set(pnl["currency"]) == {"USD"}
    assert pnl["fiscal_year"].drop_duplicates().tolist() == ["FY2027", "FY2028", "FY2029", "FY2030"]
    for run in ("design", "baseline", "difference"):
        p, m = pnl[pnl.scenario == run], monthly[monthly.scenario == run]
        assert p["months"].tolist() == [8, 12, 12, 4] and p["partial"].tolist() == [True, False, False, True]
        for col in ("revenue", "gross_margin", "program_cost", "horizon_charge", "fee_revenue", "reward_cost"):
            assert p[col].sum() == pytest.approx(m[col].sum(), rel=1e-12, abs=1e-6), (run, col)
        assert np.allclose(p["operating_result"], p["gross_margin"] - p["program_cost"])
        assert p["horizon_charge"].iloc[:-1].abs().max() == 0  # charged in the last month's year
    ifrs = pd.read_csv(run_dir / "ifrs15_by_year.csv")
    assert set(ifrs["scenario"]) == {"design", "baseline"} and set(ifrs["currency"]) == {"USD"}
    for run in ("design", "baseline"):
        y, m = ifrs[ifrs.scenario == run], monthly[monthly.scenario == run]
        moved = (y["liability_opening"] + y["liability_deferred"] + y["liability_converted_in"] - y["liability_converted_out"]
                 - y["liability_recognised_redemption"] - y["liability_recognised_breakage"])
        assert np.allclose(moved, y["liability_closing"], rtol=1e-9, atol=1e-3)
        assert np.allclose(y["provision_opening"] + y["provision_charged"] - y["provision_used"] + y["provision_remeasured"],
                           y["provision_closing"], rtol=1e-9, atol=1e-3)
        assert y["liability_closing"].iloc[-1] == pytest.approx(m["liability_closing"].iloc[-1])


def test_summary_text_rates_and_currency(run_dir):
    text = (run_dir / "summary.txt").read_text()
    rate = json.loads((run_dir / "summary.json").read_text())["metrics"]["discount_rate"]["p50"]
    assert "NPV at rate -2 pts" in text and "NPV at rate +2 pts" in text and "NPV after tax" not in text
    assert f"Discount rate used: {100 * rate:.1f}% a year" in text
    assert "(money in USD)" in text


def test_fiscal_year_and_tax_from_the_playbook(tmp_path):
    pb = playbook_copy(tmp_path, ("horizon_months: 36",
                                  "horizon_months: 14\naccounting: {fiscal_year_start: 4, tax_rate: 0.25}"))
    out = tmp_path / "out"
    res = cli("run", "--playbook", str(pb), "--agents", "300", "--replications", "1", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "NPV after tax" in res.stdout
    pnl = pd.read_csv(out / "pnl_by_year.csv")
    d = pnl[pnl.scenario == "difference"]
    assert d["fiscal_year"].tolist() == ["FY2027/28", "FY2028/29"] and d["months"].tolist() == [11, 3]
    assert np.allclose(d["tax"], 0.25 * d["result_before_tax"])
    assert np.allclose(d["result_after_tax"], d["result_before_tax"] - d["tax"])
    assert set(pd.read_csv(out / "ifrs15_by_year.csv")["fiscal_year"]) == {"FY2027/28", "FY2028/29"}


def test_existing_output_refused_without_force(run_dir):
    before = (run_dir / "summary.json").read_bytes()
    res = cli("run", "--playbook", PLAYBOOK, "--agents", "300", "--out", str(run_dir))
    assert res.returncode == 2
    assert "already exists" in res.stderr and "Traceback" not in res.stderr
    assert (run_dir / "summary.json").read_bytes() == before


def test_bad_playbook_one_line_exit_2_nothing_written(tmp_path):
    bad = playbook_copy(tmp_path, ("uplift: 1.0", "uplift: lots"))
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
    for f in ("summary.json", "monthly.csv", "monthly.parquet", "pnl_by_year.csv", "ifrs15_by_year.csv"):
        assert (run_dir / f).read_bytes() == (tmp_path / "again" / f).read_bytes()


def test_force_replaces(run_dir, tmp_path):
    target = tmp_path / "f"
    assert cli("run", "--playbook", PLAYBOOK, "--agents", "300", "--out", str(target)).returncode == 0
    res = cli("run", "--playbook", PLAYBOOK, "--agents", "400", "--out", str(target), "--force")
    assert res.returncode == 0
    assert json.loads((target / "summary.json").read_text())["agents"] == 400


def test_progress_lines_when_not_a_terminal(run_dir):
    """The module fixture's run printed plain progress lines to a pipe (stderr is not a tty)."""
    log = (run_dir.parent / "run.stderr").read_text()
    assert "months (100%)" in log and "elapsed" in log


def test_force_never_deletes_a_folder_that_is_not_a_loyalty_sim_output(tmp_path):
    """--force replaces a previous output (it has a manifest) or an empty folder, never a folder
    of the user's own files: refused with the reason, exit code 2, every file still there."""
    mine = tmp_path / "finance"
    mine.mkdir()
    (mine / "budget.xlsx").write_bytes(b"the user's budget")
    res = cli("run", "--playbook", PLAYBOOK, "--agents", "300", "--out", str(mine), "--force")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "replaces only a previous loyalty-sim output" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert (mine / "budget.xlsx").read_bytes() == b"the user's budget" and len(list(mine.iterdir())) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("run", "--playbook", PLAYBOOK, "--agents", "300", "--out", str(empty), "--force").returncode == 0
    assert (empty / "manifest.json").is_file()
