"""Endowed progress measured: the share of members who joined in the first months after the
launch and reached their first reward within the horizon, with the mechanism off and with
``rewards.endowed_progress`` at 0.25 (Nunes & Dreze's 2 stamps on 8) and 1, at goal gradient
g = 0.25 and 1 (the market's response overridden for every segment). One replication,
common random numbers.

    python benchmarks/endowed_progress.py [--playbook P] [--agents N] [--seed S]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("LOYALTY_SIM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def completion(scenario, e: float, g: float, agents: int, seed: int) -> float:
    from simulator.executor import replication

    rewards = scenario.program.rewards.model_copy(update={"endowed_progress": e})
    program = scenario.program.model_copy(update={"rewards": rewards})
    response = scenario.market.response.model_copy(update={"goal_gradient": g, "segments": {
        k: v.model_copy(update={"goal_gradient": None}) for k, v in scenario.market.response.segments.items()}})
    market = scenario.market.model_copy(update={"response": response})
    sc = dataclasses.replace(scenario, program=program, market=market)
    sim = replication(sc, agents=agents, seed=seed)
    sim.run()
    run = sim.runs["design"]
    joined = run.member & (run.enrol_month >= sim.launch_t) & (run.enrol_month < sim.launch_t + 12)
    # months since a reward stays below "never" (state.NEVER) once a member has had one
    done = joined & (run.since_reward < 10_000)
    return float(done.sum()) / max(int(joined.sum()), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--playbook", default="markets/usa/cagnotte_launch.yaml")
    ap.add_argument("--agents", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    from simulator.scenario import resolve
    from simulator.uncertainty import central_values, with_values

    sc = resolve(str(ROOT / args.playbook) if not Path(args.playbook).is_absolute() else args.playbook)
    sc = with_values(sc, central_values(sc))
    print(f"{args.playbook}, {args.agents:,} agents, seed {args.seed}: members who joined in the launch year "
          f"and redeemed within the horizon")
    for g in (0.25, 1.0):
        row = [f"{100 * completion(sc, e, g, args.agents, args.seed):5.1f}%" for e in (0.0, 0.25, 1.0)]
        print(f"g = {g:<4}  off {row[0]}   e = 0.25 {row[1]}   e = 1 {row[2]}")


if __name__ == "__main__":
    main()
