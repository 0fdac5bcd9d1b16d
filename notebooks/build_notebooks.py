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
    "03_calibrating_a_market.ipynb": [
        new_markdown_cell("""# Calibrating a market from a transaction log (the CDNOW sample)

A market team has a transaction log, not a transition matrix. Here we turn the CDNOW sample
(2,357 customers of an online CD store, first purchases in Q1 1997, shipped in `data/cdnow/`)
into a market file, check on a held-out period that the simulated customers buy like the
real ones did, and run a playbook that treats customers by their potential band. The
command-line equivalents are `loyalty-sim calibrate` and `loyalty-sim backtest`; the
functions below are what they call."""),
        new_code_cell(SETUP),
        new_code_cell("""import tempfile
from simulator.calibration.pipeline import LogSource, backtest_file, calibrate_file

source = LogSource(path=pathlib.Path("data/cdnow/CDNOW_sample.txt"), format="cdnow")
log = source.read()
print(log.report)
monthly = log.transactions.set_index("date").resample("MS")["amount"].agg(["count", "sum"])
ax = monthly["count"].plot(figsize=(8, 2.5), title="Transactions per month (a cohort that ages and drops out)")"""),
        new_markdown_cell("""## Calibrate

Up to the end of September 1997 (39 weeks). Gross margin and currencies are not in a log:
they are given. The default segmentation is *frequency tier x months since the last
purchase*, from a lapse-and-return model: customers age month by month and drop out, which a
stationary chain over a few recency buckets cannot do (it over-forecasts this cohort by about
50%)."""),
        new_code_cell("""work = pathlib.Path(tempfile.mkdtemp())
done = calibrate_file(source, work / "markets" / "cdnow" / "market.yaml", currency="USD", gross_margin=0.30,
                      reporting_currency="EUR", fx_to_reporting=0.92, calibration_end="1997-09-30")
cm = done.calibrated
print(len(cm.market.segments), "segments;", done.market_path.name, "and", done.report_path.name, "written")
for note in done.notes:
    print("-", note)
sizes = cm.diagnostics.segment_sizes
sizes[sizes.customers >= 20].sort_values("customers", ascending=False).head(10).round(3)"""),
        new_code_cell("""d = cm.diagnostics
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
d.monthly.set_index("period")[["observed_repeat", "fitted_repeat"]].plot(ax=axes[0], marker="o",
    title="Repeat transactions: observed and fitted")
d.return_by_recency.plot(ax=axes[1], marker="o", title="Share buying next month by recency")
fig.tight_layout()"""),
        new_markdown_cell("""## The potential score

The probability that a customer buys in the next 3 months, by logistic regression on RFM
features, fitted on one window and validated on a later one (out of time). Customers are cut
into thirds (low / medium / high); each segment's band mix is written into the market file,
so the engine's agents carry the calibrated bands."""),
        new_code_cell("""pot = d.potential
print(f"out-of-time AUC {pot.auc:.3f} (in sample {pot.training_auc:.3f}), scored at {pot.at}")
pot.calibration.round(3)"""),
        new_code_cell("""mix = d.potential_mix.mul(sizes.set_index("segment")["customers"], axis=0).sum()
print("customers by band:", (mix / mix.sum()).round(3).to_dict())
d.potential_mix.loc[[s for s in d.potential_mix.index if s.endswith(("_r00", "_r06", "_r12plus"))]].round(2).head(9)"""),
        new_markdown_cell("""## Back-test

Calibrate up to 1997-09-30, simulate the customers known then through June 1998 (no
arrivals, no program), and compare with what they did, beside BG/NBD (transactions) and
BG/NBD x Gamma-Gamma (revenue). Five replications keep the notebook quick; the command uses
20 by default (figures in README)."""),
        new_code_cell("""bt = backtest_file(source, work / "backtest", calibration_end="1997-09-30", holdout_end="1998-06-30",
                   replications=5)
rows = {k: {c: bt.summary[k][c] for c in ("actual", "forecast", "forecast_error_pct", "forecast_mape_pct",
                                           "reference", "reference_error_pct", "reference_mape_pct")}
        for k in ("transactions", "revenue")}
pd.DataFrame(rows).T.round(1)"""),
        new_code_cell("""m = bt.monthly.set_index("period")
ax = m[["actual_transactions", "forecast_transactions", "reference_transactions"]].plot(
    figsize=(8, 3), marker="o", title="Holdout transactions per month")
ax.set_ylim(bottom=0)
assert abs(bt.summary["transactions"]["forecast_error_pct"]) < 15"""),
        new_markdown_cell("""## A playbook on the calibrated market, by potential band

Exclusive early invitations for high potential, double points for medium-potential members,
a reactivation promotion for low potential."""),
        new_code_cell("""from simulator.scenario import resolve, validate_paths
from simulator.runner import simulate

playbook = done.market_path.parent / "cagnotte_by_potential.yaml"
playbook.write_text(f\"\"\"name: cdnow_cagnotte_by_potential
design: {(root / "programs" / "cagnotte.yaml").as_posix()}
market: market.yaml
baseline: none
start: 1997-10-01
launch: 1997-11-01
horizon_months: 18
enrolment_drives:
  - {{name: invite_high, start: 1997-11-01, months: 2, uplift: 1.5, target: {{potential: [high]}}}}
campaigns:
  - {{name: double_points_medium, kind: points_multiplier, start: 1997-12-01, months: 1, multiplier: 2,
     target: {{potential: [medium], members: members}}}}
  - {{name: promotion_low, kind: reactivation, start: 1998-02-01, months: 2, lift: 0.15,
     target: {{potential: [low]}}, cost_per_contact: 0.05}}
costs:
  running_per_year: 500
\"\"\")
print(validate_paths([playbook]) or "valid")
result = simulate(resolve(playbook), agents=5_000, seed=1, replications=3)
m = result.summary()["metrics"]
print({k: round(m[k]["p50"]) for k in ("incremental_revenue", "incremental_gross_margin", "members_end")})"""),
        new_markdown_cell("""The actions reach the bands they target: the drive fills the program with
high-potential customers in its two months, the double-points month and the promotion
contact their bands. (The design's running and set-up costs are sized for a national
retailer, so on 2,357 customers its NPV is its fixed costs; `summary_text(result.summary())`
shows every line.)"""),
        new_code_cell("""d = result.monthly()
d = d[d.scenario == "design"].set_index("period")
d[["members", "new_members", "campaign_contacts", "points_issued", "redemptions"]].round(0).head(8)"""),
    ],
    "05_optimising_a_design.ipynb": [
        new_markdown_cell("""# The best design under finance's constraints

`markets/france/points_tiers_search.yaml` names the levers (earn rate, tier thresholds,
expiry, welcome bonus), the objective (NPV P50) and finance's limits (program cost at most
3% of sales, a loss at most one chance in two). Here it runs with fewer candidates and agents
than shipped to keep the notebook fast; `loyalty-sim optimise --search
markets/france/points_tiers_search.yaml --out runs/opt-fr` runs it as shipped."""),
        new_code_cell(SETUP),
        new_code_cell("""import dataclasses
from simulator.executor import Executor
from simulator.optimise import load_problem, run_search

problem = load_problem("markets/france/points_tiers_search.yaml")
s = problem.search
small = s.model_copy(update={"trials": 24, "agents": 2_000, "replications": 4,
                             "racing": s.racing.model_copy(update={"agents": 1_000, "confirm": 3})})
with Executor(1) as ex:
    outcome = run_search(dataclasses.replace(problem, search=small), ex)
cols = [c for c in outcome.trials.columns if c.startswith("var:")] + ["objective", "program_cost_pct_sales_p50", "feasible"]
pd.DataFrame([outcome.start, outcome.best], index=["starting design", "best design"])[cols]"""),
        new_markdown_cell("""Which constraints bind, and the NPV gained by relaxing each by 10% (estimated from the
candidates tried):"""),
        new_code_cell("""pd.DataFrame(outcome.binding)"""),
        new_code_cell("""race = outcome.trials[outcome.trials.stage == "race"]
axis = outcome.frontier["axis"].iloc[0]
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.scatter(race[axis], race["npv_p50"], s=10, c=race["feasible"].map({True: "#0072B2", False: "#cccccc"}))
ax.plot(outcome.frontier[axis], outcome.frontier["npv_p50"], "-o", label="efficient frontier")
start = race[race.trial == "start"]
ax.scatter(start[axis], start["npv_p50"], marker="*", s=150, color="#D55E00", label="shipped design")
ax.set_xlabel(axis); ax.set_ylabel("NPV P50 (EUR)"); ax.legend()"""),
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
    "06_measuring_a_running_program.ipynb": [
        new_markdown_cell("""# Measuring a running program from its member log

A retailer already runs a cash-back cagnotte; its till log flags members. How much more do
members buy *because* of the program? The naive answer (members against non-members) mixes the
program's effect with who joins. We take a log the engine wrote itself, so that the truth is
known (the same customers' purchases without the program), estimate the lift after joining
with the staggered event study of `estimate-response`, and compare both with the truth."""),
        new_code_cell(SETUP),
        new_code_cell("""from simulator.response.generate import member_log
from simulator.response.estimate import panel_from_log, event_study

response = {"self_selection": 1.0, "enrolment_propensity": 0.05, "goal_gradient": 0.25,
            "rewarded_behaviour": 0.2, "transition_effect": 0.3}
log = member_log("markets/usa/cagnotte_launch.yaml", response=response, agents=3000, seed=7)
shipped = pd.read_csv("data/member_log/usa_cagnotte_members.csv.gz")
print(len(log.transactions), "transactions;", "same as the shipped log:",
      shipped["amount"].round(2).equals(log.transactions["amount"].round(2)))
log.transactions.head()"""),
        new_markdown_cell("""The event study: each month's joiners against customers who bought that month without
having joined, their growth since the six months before applied to the joiners' own base."""),
        new_code_cell("""panel = panel_from_log(log.transactions)
es = event_study(panel, outcome="spend")
truth = log.true_lift("spend", range(-4, 12))
table = es.table().assign(truth=truth.reindex(es.events).to_numpy())
est, lo, hi = es.post()
print(f"lift after joining, months 0-11: {est:+.2f} USD a month (90%: {lo:+.2f}..{hi:+.2f}); "
      f"truth {table.loc[table.event >= 0, 'truth'].mean():+.2f}; naive member uplift {es.naive:+.2f}")
table.round(2)"""),
        new_code_cell("""fig, ax = plt.subplots(figsize=(7, 3.5))
ax.fill_between(es.events, es.lo, es.hi, alpha=0.2, label="90% interval")
ax.plot(es.events, es.att, "o-", ms=3, label="estimated lift")
ax.plot(es.events, table["truth"], "k--", label="true lift (engine)")
ax.axhline(es.naive, color="tab:red", ls=":", label="naive member uplift")
ax.axhline(0, color="0.6", lw=0.8)
ax.set_xlabel("months since joining"); ax.set_ylabel("USD per customer-month"); ax.legend(fontsize=8)
fig.tight_layout()"""),
        new_markdown_cell("""How joiners differed before joining (self-selection), and the balance of the groups:"""),
        new_code_cell("""print(f"joiners bought x{es.pre_ratio[0]:.2f} ({es.pre_ratio[1]:.2f}..{es.pre_ratio[2]:.2f}) "
      "what comparable customers did before joining")
es.balance.round(3)"""),
        new_markdown_cell("""## From the balances: the goal gradient, written into the market

The log also carries each member's kitty at the start of the month. `estimate-response` with
`--playbook` (whose design gives the earning rules) rebuilds every member's progress toward the
next voucher, measures the goal gradient, and writes a copy of the market whose
`response.goal_gradient` is a triangular distribution from its 90% interval, with its source.
The log was generated with a goal gradient of 0.25. Rewarded behaviour (generated with 0.2) is
measured at the kitty's threshold, members just rewarded against members who just missed it,
and written the same way."""),
        new_code_cell("""import tempfile
from simulator.calibration.pipeline import LogSource
from simulator.response.command import estimate_file

work = pathlib.Path(tempfile.mkdtemp())
result = estimate_file(LogSource("data/member_log/usa_cagnotte_members.csv.gz"), pathlib.Path("markets/usa/market.yaml"),
                       work / "response", force=False, seed=20240601,
                       playbook=pathlib.Path("markets/usa/cagnotte_launch.yaml"))
print({k: round(v, 3) for k, v in result["reward_effects"]["goal_gradient"].items()})
print("rewarded behaviour at the threshold:", {k: round(v, 3) for k, v in result["reward_effects"]["rewarded_behaviour"].items()})
from simulator.specs import load
from simulator.specs.market import Market
measured = load(Market, work / "response" / "market.yaml")
print("assumed :", load(Market, "markets/usa/market.yaml").response.goal_gradient)
print("measured:", measured.response.goal_gradient)
print(measured.response.sources["goal_gradient"])
pd.Series(result["not_written_to_response"])"""),
        new_markdown_cell("""With `--playbook` it also maps self-selection onto the engine's `self_selection`: the joiners'
purchases over the six months before joining, relative to the customers at risk of joining that
month, against the same ratio in the engine's own simulation of the design's joining on the
market at a grid of values (the enrolment propensity matched to the log's joining rate). The
mapping takes the segments' and stores' relative enrolment propensities from the market: the
shipped market's (champions 0.18, lapsed 0.01, the rest 0.09) are not the ones the log was
generated with (0.05 for every segment), so this measures what the log says *if the market is
right about who is offered the program*; the curve shows how flat the ratio gets above 1.5."""),
        new_code_cell("""sel = result["self_selection"]
print(f"self_selection {sel['estimate']:.2f} (90%: {sel['lo']:.2f}..{sel['hi']:.2f}); the log was generated with 1.0")
print("measured:", measured.response.self_selection)
pd.DataFrame(sel["curve"]).round(3)"""),
        new_markdown_cell("""## Comparing designs with the measured response against the assumed one

A copy of the US cagnotte playbook points at the measured market; both run on the same seed, so
the difference between them is the response, and each one's P10/P90 carries the spread of its
goal gradient and self-selection (the assumed range, or the estimate's interval)."""),
        new_code_cell("""import yaml
from simulator.study import study_from_playbooks, run_study

pb = yaml.safe_load(open("markets/usa/cagnotte_launch.yaml"))
pb.update(name="us_cagnotte_measured", market=str((work / "response" / "market.yaml").resolve()),
          design=str(pathlib.Path("programs/cagnotte.yaml").resolve()))
(work / "measured.yaml").write_text(yaml.safe_dump(pb, sort_keys=False))
study, cells = study_from_playbooks(["markets/usa/cagnotte_launch.yaml", str(work / "measured.yaml")], [],
                                    replications=4, seed=7, agents=2_000)
study = study.model_copy(update={"sensitivity_replications": 1})
doc = run_study(study, cells, work / "study", force=False)
pd.DataFrame(doc["ranking"])"""),
        new_code_cell("""pd.DataFrame([{"scenario": k, **row} for k, rows in doc["tornado"].items() for row in rows
              if row["parameter"].endswith("goal_gradient")])[["scenario", "parameter", "distribution", "npv_low", "npv_high"]]"""),
        new_markdown_cell("""Limits (docs/model.md, "Measuring the effect of a running program" and "Goal gradient and
rewarded behaviour from members' balances"): the lift's interval holds the true lift in about
90% of seeds of engine logs, but strong self-selection still biases it upward; the goal
gradient's interval holds the chosen value in 73% of seeds; rewarded behaviour is measured at
the kitty's threshold (just rewarded against just missed) and keeps a small upward bias;
self_selection is only as right as the market's relative enrolment propensities; lapse
reduction and campaign lifts are not written into the market."""),
    ],
    "07_piloting_by_store.ipynb": [
        new_markdown_cell("""# Piloting by store: who recruits best, and how big a pilot must be

Before a national launch the French team wants to pilot the paid premium club in some stores.
Three questions: which stores recruit best, what a pilot in some stores would read against
comparable stores (and whether that reading is honest), and how many stores and months a
pilot needs to detect the club's effect on revenue per customer.

Everything here runs on a market **calibrated from a till log**, as yours would be: we have
no real till log to ship, so the engine writes one from the French market and its 32-store
network (sizes and recruitment skills that we then pretend not to know), with a store, a
member flag and contact opt-ins on each purchase. `loyalty-sim calibrate` turns it into a
market file with a store network, and we check what it found against the truth that wrote
the log. Small numbers of agents and replications keep this notebook fast; read the last
section before trusting a power figure."""),
        new_code_cell(SETUP),
        new_markdown_cell("""## A till log, and the market calibrated from it

The log: 8,000 simulated customers of France over 24 months, a running program they join at
each store's own rate (`enrolment_propensity` times the store's `enrolment` multiplier), 10%
of purchases made away from the home store, the customer's e-mail / SMS / app opt-in on each
purchase (`optin_<channel>` columns). In your case this is the export of the tills."""),
        new_code_cell("""import subprocess, sys, tempfile
from pathlib import Path
from simulator.response.generate import member_log
from simulator.scenario import resolve

work = Path(tempfile.mkdtemp(prefix="pilot-notebook-"))
france = resolve("markets/france/premium_club_pilot.yaml")
log = member_log(france, response={"enrolment_propensity": 0.03, "self_selection": 0.0}, agents=8_000, seed=7,
                 pre_months=6, months=24, stores=True, away_share=0.1, opt_in=True)
log.transactions.drop(columns=["balance"]).to_csv(work / "till_log.csv", index=False)
pd.read_csv(work / "till_log.csv").head()"""),
        new_code_cell("""def loyalty_sim(*args):
    \"\"\"The command line, as you would type it (python -m simulator is loyalty-sim).\"\"\"
    r = subprocess.run([sys.executable, "-m", "simulator", *map(str, args)], capture_output=True, text=True)
    print("\\n".join(line for line in r.stdout.splitlines() if not line.startswith("  note:")))
    if r.returncode:
        print(r.stderr)
    r.check_returncode()

loyalty_sim("calibrate", work / "till_log.csv", "--store-col", "store", "--member-col", "member",
            "--customers", "2400000", "--out", work / "france_calibrated" / "market.yaml",
            "--currency", "EUR", "--gross-margin", "0.3")"""),
        new_markdown_cell("""## Which stores recruit best

`stores.csv`, beside the market file, has the figures by store: customers (whose home store
it is, where most of their spend is), active customers, frequency, basket, members, the join
rate and the **enrolment multiplier** (the store's join rate over the market's), and the
opt-in shares by channel (`optin_email` ...) with the store's reach. Rank the stores by
recruitment and compare with the multipliers that wrote the log."""),
        new_code_cell("""from scipy import stats

st = pd.read_csv(work / "france_calibrated" / "stores.csv")
truth = {s.name: s.enrolment for s in france.market.stores.stores}
st = st[st.store.isin(truth)].assign(true_enrolment=lambda d: d.store.map(truth))
st = st.sort_values("enrolment", ascending=False)
rho = stats.spearmanr(st.enrolment, st.true_enrolment).statistic
top8 = set(st.store[:8]) & set(sorted(truth, key=truth.get, reverse=True)[:8])
print(f"rank correlation of the estimated recruitment with the truth: {rho:.3f}; "
      f"{len(top8)} of the true 8 best recruiters among the estimated 8 best")
st[["store", "customers", "members", "join_rate", "enrolment", "enrolment_se", "true_enrolment",
    "optin_email", "reach_email"]].head(8).round(3)"""),
        new_code_cell("""fig, ax = plt.subplots(figsize=(6, 3.5))
ax.errorbar(st.true_enrolment, st.enrolment, yerr=st.enrolment_se, fmt="o", ms=4, capsize=2)
lim = [0, max(st.enrolment.max(), st.true_enrolment.max()) * 1.1]
ax.plot(lim, lim, color="0.6", lw=1, ls="--")
ax.set_xlabel("enrolment multiplier that wrote the log"); ax.set_ylabel("estimated from the log (+- 1 se)")
fig.tight_layout()"""),
        new_markdown_cell("""## A pilot in the best recruiters, read against matched controls

A playbook for the calibrated market: the club against no program, launched after the log.
It names no store: `loyalty-sim pilot --choose best` pilots the best recruiters of whatever
network the market has (`random` draws them, `matched` pairs the stores by size and
recruitment and pilots one of each pair at random). Each pilot store is read against a
control store matched on the six months before launch (nearest neighbours without
replacement); the readout is a difference in differences of revenue per customer-month,
with the paired t-test over the matched pairs (Welch's two-group test beside it, and instead
of it when the pilot holds over 40% of the stores: docs/model.md, "Pilots by store")."""),
        new_code_cell("""programs = Path("programs").resolve()
playbook = work / "france_calibrated" / "premium_club.yaml"
playbook.write_text(f\"\"\"name: calibrated_premium_club
description: The paid premium club on the market calibrated from the till log, against no program.
design: {programs / 'premium_club.yaml'}
market: market.yaml
baseline: none
launch: 2028-10-01
horizon_months: 12
overrides:
  fee: 49
\"\"\")

from simulator import pilot as P
from simulator.runner import simulate

calibrated = resolve(playbook)
best8 = P.pilot_stores(calibrated, "best", seed=1, replication=0, k=8)
run = simulate(P.pilot_scenario(calibrated, best8, pre_months=6, months=12), agents=4_000, seed=1, replications=4)
readout = P.run_readout(run)
for line in P.readout_lines(P.readout_summary(readout), "EUR"):
    print(line)
readout[["replication", "test", "estimate", "ci_lo", "ci_hi", "welch_ci_lo", "welch_ci_hi", "true_effect"]].round(3)"""),
        new_markdown_cell("""The true effect is on the *pilot stores*: stores chosen because they recruit best are
not the network, and a pilot there overstates what a national launch would do per customer.

## How many stores, for how long

`loyalty-sim pilot` answers this by simulation: for each number of stores k and duration d,
many pilots in k stores (here the best recruiters), each read against matched controls at
level 5%; power is the share of pilots that detect the effect. It writes power.csv,
power.png, readouts.csv and a manifest."""),
        new_code_cell("""loyalty_sim("pilot", "--playbook", playbook, "--choose", "best", "--stores", "4,8", "--months", "6,12",
            "--replications", "10", "--agents", "4000", "--workers", "1", "--out", work / "pilot_best")
power = pd.read_csv(work / "pilot_best" / "power.csv")
power[["stores", "months", "test", "power", "power_se", "power_welch", "mean_estimate", "true_effect"]].round(3)"""),
        new_markdown_cell("""**Read this before trusting a power figure.** A simulated store's noise is that of its
simulated customers: 4,000 agents give each store about 125 customers, where the market has
2.4 million customers, some 75,000 a store. Power here is far too low for that reason alone,
and 10 replications give it to +-0.15; re-run with `--agents` and `--replications` as large as
you can afford (the README shows 20,000 and 200,000 agents), and remember that real stores
also have shocks of their own (a competitor opening, roadworks) that the model does not
simulate, so the field's power is lower than the simulation's at the market's full size. The
club's effect on revenue per customer is small (a paid club for a minority of customers),
which is what makes it hard to detect."""),
    ],
}


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--execute", metavar="DIR", type=Path,
                    help="also run every notebook top to bottom and write the copies with their outputs into DIR")
    args = ap.parse_args(argv)
    for name, cells in NOTEBOOKS.items():
        for i, cell in enumerate(cells):
            cell.id = f"cell-{i:02d}"  # stable ids: rebuilding changes nothing unless a cell does
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        nbformat.write(nb, HERE / name)
    if args.execute is not None:
        from nbclient import NotebookClient

        args.execute.mkdir(parents=True, exist_ok=True)
        for name in NOTEBOOKS:
            nb = nbformat.read(HERE / name, as_version=4)
            NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
            nbformat.write(nb, args.execute / name)
            print(f"executed {args.execute / name}")


if __name__ == "__main__":
    main()
