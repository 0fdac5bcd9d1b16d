"""`loyalty-sim pilot` as a user calls it: help, files, refusal to overwrite, bad input; and
`run` on a playbook with a pilot prints and writes its readout."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from simulator.pilot import POWER_COLUMNS, POWER_FILES, READOUT_COLUMNS
from tests.test_cli_run import cli

PLAYBOOK = "markets/france/premium_club_pilot.yaml"
SMALL = ("--stores", "2,3", "--months", "1,2", "--pre-months", "2", "--replications", "3", "--agents", "800",
         "--seed", "4", "--workers", "1")


def test_help_lists_every_option():
    res = cli("pilot", "--help")
    assert res.returncode == 0
    for opt in ("--playbook", "--out", "--stores", "--months", "--pre-months", "--replications", "--alpha", "--power",
                "--agents", "--seed", "--force", "--workers", "--scheduler"):
        assert opt in res.stdout, opt
    assert "Examples" in res.stdout and "loyalty-sim pilot --playbook" in res.stdout


@pytest.fixture(scope="module")
def power_dir(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("pilot") / "fr"
    res = cli("pilot", "--playbook", PLAYBOOK, *SMALL, "--out", str(out))
    assert res.returncode == 0, res.stderr
    return out, res.stdout


def test_a_small_run_writes_power_csv_png_and_manifest(power_dir):
    out, stdout = power_dir
    assert sorted(p.name for p in out.iterdir()) == sorted([*POWER_FILES, "manifest.json"])
    t = pd.read_csv(out / "power.csv")
    assert list(t.columns) == list(POWER_COLUMNS)
    assert sorted(zip(t["stores"], t["months"])) == [(2, 1), (2, 2), (3, 1), (3, 2)]
    assert t["power"].between(0, 1).all() and (t["replications"] == 3).all()
    assert (out / "power.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = pd.read_csv(out / "readouts.csv")
    assert list(r.columns) == ["stores", *READOUT_COLUMNS] and len(r) == 2 * 3 * 2
    man = json.loads((out / "manifest.json").read_text())
    assert man["command"] == "pilot" and man["arguments"]["stores"] == [2, 3] and man["arguments"]["seed"] == 4
    assert PLAYBOOK in man["inputs"]
    for f, digest in man["outputs"].items():
        assert hashlib.sha256((out / f).read_bytes()).hexdigest() == digest, f
    assert "recommendation" in stdout or "no candidate reaches power" in stdout
    assert stdout.strip().endswith(f"results: {out}")


def test_the_same_seed_gives_the_same_table_on_two_workers(power_dir, tmp_path):
    out, _ = power_dir
    again = tmp_path / "again"
    res = cli("pilot", "--playbook", PLAYBOOK, *SMALL[:-1], "2", "--out", str(again))
    assert res.returncode == 0, res.stderr
    for f in ("power.csv", "readouts.csv", "power.png"):
        assert (again / f).read_bytes() == (out / f).read_bytes(), f


def test_refuses_to_overwrite_without_force(power_dir):
    out, _ = power_dir
    res = cli("pilot", "--playbook", PLAYBOOK, *SMALL, "--out", str(out))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [f"{out}: output directory already exists (use --force to replace it, or "
                                               "choose another --out)"]


@pytest.mark.parametrize("args, expected", [
    (("--stores", "4,20"), "(command line): --stores: 20 pilot stores leave 12 of the network's 32 for matched controls"),
    (("--stores", "four"), "(command line): --stores: 'four' is not a list of whole numbers"),
    (("--months", "0"), "(command line): --months: 0 (expected at least 1)"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, expected):
    res = cli("pilot", "--playbook", PLAYBOOK, *args, "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), res.stderr
    assert not (tmp_path / "x").exists()


def test_a_running_program_as_baseline_is_refused(tmp_path):
    res = cli("pilot", "--playbook", "markets/france/points_tiers_launch.yaml", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == ["markets/france/points_tiers_launch.yaml: baseline: a pilot by store needs "
                                               "baseline 'none' (a design replacing a running program in some stores "
                                               "only is not modelled)"]


def test_run_of_a_pilot_playbook_writes_and_prints_its_readout(tmp_path):
    out = tmp_path / "run"
    res = cli("run", "--playbook", "markets/france/premium_club_store_pilot.yaml", "--agents", "1500",
              "--replications", "2", "--workers", "1", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "Pilot readout (difference in differences against the months before launch; 12 months after launch, " \
           "6 before)" in res.stdout
    t = pd.read_csv(out / "pilot.csv")
    assert list(t.columns) == list(READOUT_COLUMNS) and len(t) == 2
    man = json.loads((out / "manifest.json").read_text())
    assert "pilot.csv" in man["outputs"]
