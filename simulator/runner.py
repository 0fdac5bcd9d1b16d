"""Running a scenario and writing what a run promises: the monthly table, the summary, the
manifest, written atomically; and reproducing a run from its manifest.

Files of a run directory (documented in README):

``summary.json``            headline figures with P10/P50/P90 over replications, per replication,
                            and the members' segment transition matrices
``summary.txt``             the same headline figures as a person reads them
``monthly.csv`` / ``.parquet``  one row per (scenario, month), scenario in design / baseline /
                            difference, mean over replications
``monthly_replications.parquet``  the same for every replication
``pnl_by_year.csv``         the P&L by fiscal year of design, baseline and difference (mean
                            monthly table; :mod:`simulator.finance.statements`), with the
                            playbook's fiscal year start and tax rate, and a ``currency`` column
``ifrs15_by_year.csv``      the IFRS 15 liability and bonus-points provision roll-forwards and
                            IFRS 15 revenue by fiscal year, design and baseline
``stores.parquet``          markets with a store network: one row per (scenario, store, month),
                            scenario in design / baseline / difference, mean over replications
                            (:mod:`simulator.engine.stores`)
``pilot.csv``               playbooks with a pilot by store: the pilot read against matched
                            control stores, one row per replication, with the true effect
                            (:mod:`simulator.pilot`)
``events.csv``              the calendar's event log of replication 0
``manifest.json``           inputs and their SHA-256, resolved parameters, version, seed,
                            agents, replications, and the SHA-256 of every output file
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from simulator import __version__, pilot
from simulator.executor import Executor, replication, tasks_for
from simulator.errors import InputError, InputErrors
from simulator.finance import statements
from simulator.output import staged_directory
from simulator.results import RunResult
from simulator.scenario import Scenario, resolve, sha256, with_design

#: Written when the market has a store network.
STORE_FILE = "stores.parquet"
#: Written when the playbook pilots the design in some stores.
PILOT_FILE = "pilot.csv"
RESULT_FILES = ("summary.json", "summary.txt", "monthly.csv", "monthly.parquet", "monthly_replications.parquet", "events.csv",
                "pnl_by_year.csv", "ifrs15_by_year.csv")


def simulate(scenario: Scenario, *, agents: int, seed: int, replications: int,
             progress: Callable[[int], None] | None = None, executor: Executor | None = None,
             parameters: dict[str, float] | None = None) -> RunResult:
    """Run ``replications`` replications (each design + baseline on common random numbers).

    ``progress(months)`` is called with the number of simulated months just completed (month
    by month in this process, a replication at a time on a pool). Results do not depend on
    the executor."""
    H = scenario.playbook.horizon_months
    if executor is None or (not executor.parallel and executor.checkpoint is None) or (replications == 1 and not executor.parallel):
        reps = []
        for r in range(replications):
            sim = replication(scenario, agents=agents, seed=seed, replication=r, parameters=parameters)
            reps.append(sim.run(None if progress is None else (lambda t: progress(1))))
        return RunResult(scenario, reps, agents, seed)
    tasks = tasks_for(scenario, agents=agents, seed=seed, replications=range(replications), parameters=parameters)
    reps = executor.map(tasks, done=None if progress is None else (lambda i: progress(H)))
    return RunResult(scenario, reps, agents, seed)


def _json(obj: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, (np.integer,)):
            return int(o)
        if isinstance(o, (np.floating,)):
            return float(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
        return str(o)

    return json.dumps(obj, indent=2, default=default, allow_nan=False) + "\n"


def _clean(obj: Any) -> Any:
    """Replace NaN/inf by None so JSON stays valid."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def manifest(scenario: Scenario, *, agents: int, seed: int, replications: int) -> dict[str, Any]:
    return {
        "tool": "loyalty-sim",
        "version": __version__,
        "command": "run",
        "arguments": {"playbook": scenario.paths["playbook"], "baseline": scenario.overrides.get("baseline"),
                      "design": scenario.overrides.get("design"), "horizon_months": scenario.overrides.get("horizon_months"),
                      "agents": agents, "replications": replications, "seed": seed},
        "inputs": scenario.inputs,
        "roles": scenario.paths,
        "resolved": {
            "program": scenario.program.model_dump(mode="json"),
            "baseline": scenario.baseline.model_dump(mode="json") if scenario.baseline else None,
            "market": scenario.market.model_dump(mode="json"),
            "playbook": scenario.playbook.model_dump(mode="json"),
            "fx_design_to_local": scenario.fx_design_to_local,
        },
        "environment": environment(),
    }


def environment() -> dict[str, str]:
    """Versions a manifest records beside the tool's own."""
    return {"python": sys.version.split()[0], "numpy": np.__version__, "pandas": pd.__version__,
            "platform": platform.platform()}


def summary_text(summary: dict[str, Any]) -> str:
    """The summary a strategist reads first (plain text, also printed by ``run``)."""
    m = summary["metrics"]
    cur = summary["currency"]

    def money(key: str) -> list[str]:
        e = m[key]
        return [f"{e[f'p{q}']:>16,.0f}" if f"p{q}" in e else f"{'n/a':>16}" for q in (10, 50, 90)]

    def pct(key: str) -> list[str]:
        e = m[key]
        return [f"{100 * e[f'p{q}']:>15.1f}%" if f"p{q}" in e else f"{'n/a':>16}" for q in (10, 50, 90)]

    def num(key: str, fmt: str = ",.0f") -> list[str]:
        e = m[key]
        return [f"{format(e[f'p{q}'], fmt):>16}" if e.get(f"p{q}") is not None else f"{'never':>16}" for q in (10, 50, 90)]

    rows = [  # (label, format, metric); a metric the summary lacks (NPV after tax without a tax rate) is left out
        ("Incremental revenue", money, "incremental_revenue"),
        ("Incremental gross margin", money, "incremental_gross_margin"),
        ("Incremental program cost", money, "incremental_program_cost"),
        ("  rewards", money, "incremental_reward_cost"),
        ("  tier benefits", money, "incremental_benefit_cost"),
        ("  campaigns", money, "incremental_campaign_cost"),
        ("  enrolment drives", money, "incremental_enrolment_cost"),
        ("  running + set-up", money, "incremental_fixed_cost"),
        ("  per-member", money, "incremental_member_cost"),
        ("  obligation left at horizon", money, "incremental_horizon_obligation"),
        ("  fees received (-)", money, "incremental_fee_income"),
        ("Net incremental margin", money, "incremental_net_margin"),
        ("ROI", pct, "roi"),
        ("NPV", money, "npv"),
        ("NPV at rate -2 pts", money, "npv_rate_minus_2pt"),
        ("NPV at rate +2 pts", money, "npv_rate_plus_2pt"),
        ("NPV after tax", money, "npv_after_tax"),
        ("Payback month", num, "payback_month"),
        ("Peak cash need", money, "peak_cash_need"),
        ("Members at end", num, "members_end"),
        ("Breakage (simulated)", pct, "breakage_rate"),
        ("Reward cost / sales", pct, "reward_cost_pct_sales"),
        ("Points liability at end", money, "liability_end"),
        ("Members' extra spend: naive", money, "member_naive_uplift_revenue"),
        ("  of which true lift", money, "member_true_lift_revenue"),
        ("  of which self-selection", money, "member_self_selection_revenue"),
    ]
    head = (f"{summary['playbook']}: {summary['design']} against {summary['baseline']} on {summary['market']} "
            f"({cur}), {summary['horizon_months']} months from {summary['start']}\n"
            f"{summary['agents']:,} agents x {summary['replications']} replication(s), seed {summary['seed']}; "
            f"{summary['scaling']}\n")
    lines = [head, f"{f'(money in {cur})':30s}{'P10':>16}{'P50':>16}{'P90':>16}"]
    lines += [f"{label:30s}{''.join(fmt(key))}" for label, fmt, key in rows if key in m]
    rate = m.get("discount_rate", {})
    if rate.get("p50") is not None:
        spread = f" (P10 {100 * rate['p10']:.1f}%, P90 {100 * rate['p90']:.1f}%)" if rate["p10"] != rate["p90"] else ""
        lines.append(f"\nDiscount rate used: {100 * rate['p50']:.1f}% a year, P50 over replications{spread}; "
                     "monthly flows discounted at (1 + rate)^(month / 12)")
    lines.append(f"\nProbability that NPV < 0: {summary['probability_npv_negative']:.0%}   "
                 f"(money in {cur}; incremental = design minus baseline on the same customers)")
    return "\n".join(lines) + "\n"


def by_year(monthly: pd.DataFrame, statement: Callable[[pd.DataFrame], pd.DataFrame], runs: tuple[str, ...],
            currency: str) -> pd.DataFrame:
    """A statement by fiscal year (:mod:`simulator.finance.statements`) of each run of the
    monthly table: columns ``scenario``, ``currency``, then the statement's."""
    parts = []
    for run in runs:
        f = statement(monthly[monthly["scenario"] == run])
        f.insert(0, "currency", currency)
        f.insert(0, "scenario", run)
        parts.append(f)
    return pd.concat(parts, ignore_index=True)


def write_run(result: RunResult, out: str | Path, *, force: bool) -> dict[str, Any]:
    """Write every result file into ``out`` atomically; return the summary."""
    summary = _clean(result.summary())
    man = manifest(result.scenario, agents=result.agents, seed=result.seed, replications=len(result.replications))
    with staged_directory(out, force) as tmp:
        (tmp / "summary.json").write_text(_json(summary), encoding="utf-8")
        (tmp / "summary.txt").write_text(summary_text(summary), encoding="utf-8")
        monthly = result.monthly()
        monthly.to_csv(tmp / "monthly.csv", index=False)
        monthly.to_parquet(tmp / "monthly.parquet", index=False)
        result.monthly_all().to_parquet(tmp / "monthly_replications.parquet", index=False)
        pd.DataFrame(result.replications[0].events, columns=["month", "phase", "event"]).to_csv(tmp / "events.csv", index=False)
        acc, cur = result.scenario.playbook.accounting, result.scenario.market.currency
        by_year(monthly, lambda d: statements.pnl_by_year(d, acc.fiscal_year_start, acc.tax_rate),
                ("design", "baseline", "difference"), cur).to_csv(tmp / "pnl_by_year.csv", index=False)
        by_year(monthly, lambda d: statements.ifrs15_by_year(d, acc.fiscal_year_start),
                ("design", "baseline"), cur).to_csv(tmp / "ifrs15_by_year.csv", index=False)
        files = RESULT_FILES
        by_store = result.stores()
        if by_store is not None:
            by_store.to_parquet(tmp / STORE_FILE, index=False)
            files += (STORE_FILE,)
        readout = pilot.run_readout(result)
        if readout is not None:
            readout.to_csv(tmp / PILOT_FILE, index=False, float_format="%.10g")
            files += (PILOT_FILE,)
        man["outputs"] = {f: hashlib.sha256((tmp / f).read_bytes()).hexdigest() for f in files}
        (tmp / "manifest.json").write_text(_json(man), encoding="utf-8")
    return summary


def reproduce(run_dir: str | Path, out: str | Path, *, force: bool, progress: Callable[[int], None] | None = None,
              executor: Executor | None = None) -> tuple[list[str], list[str]]:
    """Re-run a run from its manifest into ``out``; return (identical files, differing files).

    Refuses (InputErrors) if an input file changed since the run.
    """
    path = Path(run_dir) / "manifest.json"
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
        args = man["arguments"]
        inputs = man["inputs"]
    except FileNotFoundError:
        raise InputErrors.one(str(path), "no manifest here (expected the directory of a loyalty-sim run)") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputErrors.one(str(path), f"is not a loyalty-sim manifest ({exc})") from None
    problems = []
    for file, digest in inputs.items():
        p = Path(file)
        if not p.is_file():
            problems.append(InputError(file, None, "", "input of the run is missing (run reproduce from the directory the run was made in)"))
        elif sha256(p.read_bytes()) != digest:
            problems.append(InputError(file, None, "", f"input changed since the run (SHA-256 {digest[:12]}... expected)"))
    if problems:
        raise InputErrors(problems)
    scenario = resolve(args["playbook"], baseline=args.get("baseline"))
    if args.get("design"):
        scenario = with_design(scenario, args["design"])
    if args.get("horizon_months"):
        scenario = scenario.with_horizon(int(args["horizon_months"]))
    result = simulate(scenario, agents=args["agents"], seed=args["seed"], replications=args["replications"],
                      progress=progress, executor=executor)
    write_run(result, out, force=force)
    new = json.loads((Path(out) / "manifest.json").read_text(encoding="utf-8"))["outputs"]
    files = list(dict.fromkeys([*RESULT_FILES, *new, *man.get("outputs", {})]))
    same = [f for f in files if new.get(f) == man.get("outputs", {}).get(f)]
    differ = [f for f in files if f not in same]
    return same, differ
