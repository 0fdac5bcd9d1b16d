"""Benchmark of ``loyalty-sim optimise`` (not a timed test; issue #14).

1. Candidates per minute at 20,000 agents x 36 months (the France points + tiers search, one
   replication per candidate, racing at the full count).
2. Time to a confirmed optimum on the shipped France search (markets/france/points_tiers_search.yaml,
   as shipped: 200 candidates raced, the best confirmed at the full count). Target: 10 minutes.

Run: PYTHONPATH=. python benchmarks/optimise_bench.py [--workers N] [--candidates N]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from simulator.executor import Executor
from simulator.optimise import load_problem, run_search

ROOT = Path(__file__).resolve().parents[1]
SEARCH = ROOT / "markets" / "france" / "points_tiers_search.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=None, help="local processes (default: all cores)")
    ap.add_argument("--candidates", type=int, default=48, help="candidates timed at 20,000 agents")
    args = ap.parse_args()
    problem = load_problem(SEARCH)
    s = problem.search
    with Executor(args.workers) as ex:
        # warm the pool (and the engine's compiled kernels) outside the timings
        warm = dataclasses.replace(problem, search=s.model_copy(update={"trials": 2, "batch": 2, "replications": 1,
                                                                         "racing": s.racing.model_copy(update={"confirm": 1})}))
        run_search(warm, ex)
        rate = s.model_copy(update={"trials": args.candidates, "agents": 20_000, "replications": 1,
                                    "racing": s.racing.model_copy(update={"agents": 20_000, "replications": 1, "confirm": 1})})
        t = time.perf_counter()
        run_search(dataclasses.replace(problem, search=rate), ex)
        dt = time.perf_counter() - t
        print(f"candidates per minute at 20,000 agents x {problem.scenario.playbook.horizon_months} months: "
              f"{(args.candidates + 2) / dt * 60:.1f} ({args.candidates + 2} candidate runs incl. start and one "
              f"confirmation, {dt:.1f} s, {ex.workers} worker(s))")
        t = time.perf_counter()
        out = run_search(problem, ex)
        dt = time.perf_counter() - t
    best = out.best
    print(f"shipped France search ({s.trials} candidates on {s.racing.agents:,} agents x {s.racing.replications}, "
          f"best {s.racing.confirm} + start confirmed on {s.agents:,} x {s.replications}): {dt / 60:.1f} minutes; "
          + (f"best NPV P50 {best['objective']:,.0f} against {out.start['objective']:,.0f} for the start" if best else
             "no feasible candidate"))


if __name__ == "__main__":
    main()
