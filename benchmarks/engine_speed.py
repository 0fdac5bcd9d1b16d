"""Engine speed and memory: customer-months per second and peak memory per agent.

Runs one replication (design + baseline) of a shipped playbook at each size, each in a fresh
process so that peak memory (ru_maxrss) belongs to that size alone; a 2,000-agent run first
loads the compiled kernels, and bytes per agent count the peak above that warm process. The
month's passes run on ``--threads`` threads (default: every core, as a single run does; BLAS
pinned to 1). Prints a table; asserts nothing (targets are in README).

    python benchmarks/engine_speed.py [--agents 100000 1000000] [--playbook PATH] [--months 36] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from simulator.scenario import resolve
from simulator.executor import replication
playbook, agents, months = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sc = resolve(playbook)
pb = sc.playbook.model_copy(update={"horizon_months": months})
sc = type(sc)(**{**sc.__dict__, "playbook": pb})
# warm up: load the compiled kernels (their machine code is the interpreter's, not the agents')
replication(sc, agents=2_000, seed=1).run()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
sim = replication(sc, agents=agents, seed=1)
t1 = time.perf_counter()
sim.run()
t2 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"agents": agents, "months": months, "init_s": t1 - t0, "run_s": t2 - t1,
                  "peak_kb": peak, "baseline_kb": base, "capacity": sim.pop.capacity,
                  "history_rows": int(sim.runs["design"].rows[0])}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--playbook", default="markets/france/points_tiers_launch.yaml")
    ap.add_argument("--months", type=int, default=36)
    ap.add_argument("--threads", type=int, default=None, help="threads of the step (default: every core)")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    if args.threads:
        env["LOYALTY_SIM_THREADS"] = str(args.threads)
    from simulator.engine.kernels import threads

    n_threads = args.threads or threads()
    print(f"playbook {args.playbook}, {args.months} months, one replication (design + baseline), "
          f"{n_threads} thread(s), {os.cpu_count()} cores")
    print(f"{'agents':>10} {'set-up s':>8} {'months s':>8} {'seconds':>8} {'customer-months/s':>18} {'peak MB':>8} "
          f"{'bytes/agent':>12} {'slots/agent':>11} {'with points':>11}")
    for n in args.agents:
        out = subprocess.run([sys.executable, "-c", CHILD, args.playbook, str(n), str(args.months)], cwd=ROOT,
                             env=env, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        total = r["init_s"] + r["run_s"]
        cm = n * args.months * 2 / total
        # peak memory above the warm interpreter's (numpy, pandas, scipy, the compiled kernels) per agent
        per_agent = (r["peak_kb"] - r["baseline_kb"]) * 1024 / n
        print(f"{n:>10,} {r['init_s']:>8.1f} {r['run_s']:>8.1f} {total:>8.1f} {cm:>18,.0f} {r['peak_kb'] / 1024:>8.0f} "
              f"{per_agent:>12,.0f} {r['capacity'] / n:>11.2f} {r['history_rows'] / r['capacity']:>11.0%}")
    print(f"(peak MB is the whole process; bytes/agent is the peak above the warm interpreter, "
          f"{r['baseline_kb'] / 1024:.0f} MB here, divided by the agents; slots: agents, the horizon's arrivals "
          f"and the pool for referred customers; with points: the design run's slots with a points history)")


if __name__ == "__main__":
    main()
