"""Writes the worked-example notebooks from the cells below (run: python notebooks/build_notebooks.py).

Notebooks are kept as code here so that a change to them is a reviewable diff; the .ipynb
files are committed without outputs and executed top to bottom by tests/test_notebooks.py.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """import os, pathlib
# run from the project's root so that the shipped files are found
root = pathlib.Path.cwd()
while not (root / "pyproject.toml").exists():
    root = root.parent
os.chdir(root)
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd"""

NOTEBOOKS = {
    "01_quick_start.ipynb": [
        new_markdown_cell("""# Quick start: one design on one market

A playbook names a design (`programs/`), a market (`markets/<market>/market.yaml`) and a
counterfactual. Here the French team replaces the current cash-back *cagnotte* by points +
tiers. We validate the files, simulate design and baseline on the same customers, and read
what a strategist reads first. (Small numbers of agents keep the notebook fast; use 20,000+
for decisions.)"""),
        new_code_cell(SETUP),
        new_code_cell("""from simulator.scenario import resolve, validate_paths

playbook = "markets/france/points_tiers_launch.yaml"
print(validate_paths([playbook]) or "valid")
scenario = resolve(playbook)
print(scenario.program.name, "against", scenario.baseline.name, "on", scenario.market.name)"""),
        new_code_cell("""from simulator.runner import simulate, summary_text

result = simulate(scenario, agents=3_000, seed=1, replications=3)
summary = result.summary()
print(summary_text(summary))"""),
        new_markdown_cell("""Members' extra spend splits into **true lift** (what the same customers spent in the
baseline run) and **self-selection** (heavy buyers join first). Most of the naive uplift is
selection, as the literature finds."""),
        new_code_cell("""monthly = result.monthly()
design = monthly[monthly.scenario == "design"].set_index("period")
diff = monthly[monthly.scenario == "difference"].set_index("period")
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
design[[c for c in design.columns if c.startswith("members_tier_")]].plot.area(ax=axes[0], title="Members by tier")
diff["cumulative_cash_flow"].plot(ax=axes[1], title="Cumulative incremental cash flow (EUR)")
axes[1].axhline(0, color="grey", lw=0.8)
fig.tight_layout()"""),
        new_code_cell("""# the points roll-forward closes every month, in points and in money
check = design["points_opening"] + design["points_issued"] - design["points_redeemed"] - design["points_expired"] - design["points_closing"]
assert check.abs().max() < 1e-6
design[["points_opening", "points_issued", "points_redeemed", "points_expired", "points_closing",
        "liability_closing"]].head(6)"""),
    ],
    "02_comparing_designs.ipynb": [
        new_markdown_cell("""# Comparing designs

A cagnotte, points + tiers and a premium club on the French market, each against the same
counterfactual (the current cagnotte), with parameters drawn from the ranges in the market
file in every replication. All designs share the seed: the differences between them are the
designs, not noise."""),
        new_code_cell(SETUP),
        new_code_cell("""import json, tempfile
from simulator.study import study_from_playbooks, run_study

study, cells = study_from_playbooks(
    ["markets/france/points_tiers_launch.yaml"],
    ["programs/cagnotte.yaml", "programs/points_tiers.yaml", "programs/premium_club.yaml"],
    replications=4, seed=7, agents=2_000)
study = study.model_copy(update={"sensitivity_replications": 1})
out = pathlib.Path(tempfile.mkdtemp()) / "study"
doc = run_study(study, cells, out, force=False)
pd.DataFrame(doc["ranking"])"""),
        new_markdown_cell("""The tornado: NPV with each uncertain parameter at its 10th and 90th percentile, the
others at their central value."""),
        new_code_cell("""best = doc["ranking"][0]["scenario"]
tornado = pd.DataFrame(doc["tornado"][best])
tornado[["parameter", "distribution", "npv_low", "npv_base", "npv_high"]]"""),
        new_code_cell("""pd.DataFrame([{"scenario": k, **row} for k, rows in doc["breakeven"].items() for row in rows])[["scenario", "parameter", "value", "meaning"]]"""),
        new_code_cell("""fig, ax = plt.subplots(figsize=(7, 3))
for s in doc["scenarios"]:
    per = json.loads((out / s["dir"] / "summary.json").read_text())["per_replication"]
    ax.scatter([r["npv"] for r in per], [s["id"]] * len(per), alpha=0.7)
ax.axvline(0, color="grey", lw=0.8)
ax.set_xlabel("NPV per replication (EUR)")
fig.tight_layout()"""),
    ],
    "04_market_playbook.ipynb": [
        new_markdown_cell("""# A market team's playbook scenario

The Indian team asks: is the Diwali triple-points campaign worth it? We run the playbook as
written and without the campaign, on the same seed, and compare."""),
        new_code_cell(SETUP),
        new_code_cell("""import dataclasses
from simulator.scenario import resolve
from simulator.runner import simulate

scenario = resolve("markets/india/points_tiers_launch.yaml")
print([c.name for c in scenario.playbook.campaigns], scenario.market.currency)
without = dataclasses.replace(scenario, playbook=scenario.playbook.model_copy(update={"campaigns": ()}))"""),
        new_code_cell("""runs = {name: simulate(sc, agents=2_000, seed=3, replications=3) for name, sc in
        {"with Diwali campaign": scenario, "without": without}.items()}
rows = []
for name, res in runs.items():
    m = res.summary()["metrics"]
    rows.append({"playbook": name, **{k: m[k]["p50"] for k in ("incremental_revenue", "incremental_gross_margin",
                                                               "incremental_campaign_cost", "npv")}})
table = pd.DataFrame(rows).set_index("playbook")
table.loc["campaign effect"] = table.iloc[0] - table.iloc[1]
table.round(0)"""),
        new_code_cell("""fig, ax = plt.subplots(figsize=(8, 3))
for name, res in runs.items():
    d = res.monthly()
    d = d[d.scenario == "difference"].set_index("period")["revenue"]
    d.plot(ax=ax, label=name)
ax.set_title("Incremental revenue by month (INR)"); ax.legend(); fig.tight_layout()"""),
    ],
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    main()
