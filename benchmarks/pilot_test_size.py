"""Empirical size of a pilot's tests: how often the paired t-test and Welch's reject when the
program does nothing, and how the readout does when it does something.

Each replication r runs the playbook's design piloted in k stores of its market's network
(chosen by ``--choose``, as ``loyalty-sim pilot --choose`` does), ``--pre-months`` before launch
and ``--months`` after (simulator/pilot.py). Two readouts of the same stores' months:

* no effect: the baseline run read as if it were the design (the true effect is exactly 0;
  the stores, their customers and their noise are the pilot's): the share of replications
  whose p-value is under ``--alpha`` is the test's empirical size, which should be alpha;
* the design: the estimate against the true effect (design minus baseline on the pilot
  stores' customers, which the simulation knows): the mean bias with its standard error over
  replications, and the share of replications whose interval holds the true effect
  (coverage, which should be 1 - alpha), for both tests.

Prints one table (size and its binomial standard error, bias, coverage, for both tests) and
the replications as they are done (on stderr). Asserts nothing.

    python benchmarks/pilot_test_size.py [--playbook markets/france/premium_club_pilot.yaml]
        [--stores 4 8] [--months 6] [--pre-months 6] [--replications 200] [--agents 20000]
        [--choose random|best|matched] [--alpha 0.05] [--seed 1] [--workers 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from simulator import pilot as P
    from simulator.executor import Executor, tasks_for
    from simulator.scenario import resolve

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--playbook", default="markets/france/premium_club_pilot.yaml",
                    help="playbook whose design is piloted (baseline none; its market needs a store network)")
    ap.add_argument("--stores", type=int, nargs="+", default=[4, 8], help="numbers of pilot stores")
    ap.add_argument("--months", type=int, default=6, help="months read after launch")
    ap.add_argument("--pre-months", type=int, default=6, help="months before launch (matching, the 'before')")
    ap.add_argument("--replications", type=int, default=200, help="replications per number of stores")
    ap.add_argument("--agents", type=int, default=20_000, help="simulated customers")
    ap.add_argument("--choose", default="random", choices=P.CHOICES, help="how the pilot stores are chosen")
    ap.add_argument("--alpha", type=float, default=0.05, help="level of the tests")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="local processes")
    args = ap.parse_args(argv)

    sc = resolve(ROOT / args.playbook if not Path(args.playbook).is_absolute() else args.playbook)
    P.check_scenario(sc, args.playbook)
    problems = P.candidates_check(len(sc.market.stores.stores), args.stores, [args.months])
    if problems:
        ap.error(problems[0])
    enrol = P._enrolment(sc)
    R = args.replications
    rows = []
    t0 = time.perf_counter()
    with Executor(args.workers) as ex:
        for k in args.stores:
            tasks = []
            for r in range(R):
                stores = P.pilot_stores(sc, args.choose, args.seed, r, k)
                run = P.pilot_scenario(sc, stores, pre_months=args.pre_months, months=args.months)
                tasks += tasks_for(run, agents=args.agents, seed=args.seed, replications=[r])
            done = [0]

            def tick(_i: int, k: int = k) -> None:
                done[0] += 1
                if done[0] % 10 == 0 or done[0] == R:
                    print(f"  {k} stores: {done[0]}/{R} replications, {time.perf_counter() - t0:.0f} s",
                          file=sys.stderr, flush=True)

            results = ex.map(tasks, done=tick, fn=P.pilot_task)
            for r, (design, baseline) in enumerate(results):
                stores = P.pilot_stores(sc, args.choose, args.seed, r, k)
                for effect, panel in (("none", P.Panel(baseline, baseline, enrol)),
                                      ("design", P.Panel(design, baseline, enrol))):
                    ro = P.Panel.readout(panel, stores, pre_months=args.pre_months, months=args.months,
                                         alpha=args.alpha)
                    rows.append({"stores": k, "effect": effect, **P._row(r, ro)})
    t = pd.DataFrame(rows)
    cur = sc.market.currency
    print(f"{sc.playbook.name}: {sc.program.name} piloted in k of the {len(sc.market.stores.stores)} stores of "
          f"{sc.market.name} ({args.choose}), {args.pre_months} months before launch, {args.months} after; "
          f"{args.agents:,} agents x {R} replications, level {args.alpha:g}, {time.perf_counter() - t0:.0f} s")
    print(f"{'stores':>6} {'main test':>9} | {'size paired':>12} {'size Welch':>11} | {'true':>7} {'bias':>7} "
          f"{'+-se':>6} | {'cover paired':>12} {'cover Welch':>11}   ({cur} per customer-month)")
    for k, g in t.groupby("stores"):
        none, des = g[g["effect"] == "none"], g[g["effect"] == "design"]

        def rate(p: pd.Series) -> tuple[float, float]:
            x = float((np.nan_to_num(p.to_numpy(float), nan=1.0) < args.alpha).mean())
            return x, float(np.sqrt(x * (1 - x) / len(p)))

        def cover(lo: str, hi: str) -> float:
            return float(((des[lo] <= des["true_effect"]) & (des["true_effect"] <= des[hi])).mean())

        # the paired test's figures whatever the main test is: recomputed from the pairs if Welch is main
        paired_p = none["p_value"] if (none["test"] == P.PAIRED).all() else pd.Series(dtype=float)
        sp, sw = rate(paired_p) if len(paired_p) else (float("nan"), float("nan")), rate(none["welch_p_value"])
        bias = des["bias"].to_numpy(float)
        print(f"{k:>6} {str(g['test'].iloc[0]):>9} | {sp[0]:>7.3f}+-{sp[1]:.3f} {sw[0]:>6.3f}+-{sw[1]:.3f} | "
              f"{des['true_effect'].mean():>+7.3f} {bias.mean():>+7.3f} {bias.std(ddof=1) / np.sqrt(len(bias)):>6.3f} | "
              f"{cover('ci_lo', 'ci_hi') if (des['test'] == P.PAIRED).all() else float('nan'):>12.2f} "
              f"{cover('welch_ci_lo', 'welch_ci_hi'):>11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
