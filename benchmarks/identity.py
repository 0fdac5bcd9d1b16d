"""Identity harness: the result hashes of every shipped playbook and program design, to prove a
restructuring of the engine changes no output bit.

Runs each shipped playbook (``markets/*/*.yaml`` that name a design) as shipped, with each
other shipped design (``programs/*.yaml``) in its place, and, where it has no pilot, against
each shipped design as the program running today, plus the member log of the response
generator; each with fixed seeds, few agents and two replications (so that parameters given
as distributions are drawn), in this process on one thread. A run's hashes are the SHA-256
of its result files as the run's manifest records them (``manifest.json`` "outputs").

    python benchmarks/identity.py                    # writes benchmarks/identity_<commit>.json
    python benchmarks/identity.py --out FILE         # writes FILE
    python benchmarks/identity.py --check FILE       # recomputes, reports every difference, exit 1 if any

The check is also a slow-marked test (tests/test_identity.py, ``pytest -m slow``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("LOYALTY_SIM_THREADS", "1")  # results do not depend on it; the machine is shared

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

AGENTS = 1500
REPLICATIONS = 2
SEED = 7


def _rel(p: Path) -> str:
    return p.resolve().relative_to(ROOT).as_posix()


def cases() -> list[dict]:
    """Every (playbook, design, baseline) run of the harness, in a fixed order."""
    import yaml

    designs = sorted(_rel(p) for p in (ROOT / "programs").glob("*.yaml"))
    out = []
    for pb in sorted((ROOT / "markets").glob("*/*.yaml")):
        doc = yaml.safe_load(pb.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or "design" not in doc or "launch" not in doc:
            continue  # a market file or a search file
        own = _rel((pb.parent / doc["design"]))
        pilot = doc.get("pilot") is not None
        out.append({"playbook": _rel(pb), "design": None, "baseline": None})
        for d in designs:
            if d != own:
                out.append({"playbook": _rel(pb), "design": d, "baseline": None})
        if not pilot:
            for b in designs:
                if b != own and doc.get("baseline") not in (f"../../{b}",):
                    out.append({"playbook": _rel(pb), "design": None, "baseline": b})
    return out


def run_case(case: dict, tmp: Path) -> dict[str, str]:
    from simulator.runner import simulate, write_run
    from simulator.scenario import resolve, with_design

    cwd = os.getcwd()
    os.chdir(ROOT)  # manifests name inputs relative to the working directory
    try:
        sc = resolve(case["playbook"], baseline=case["baseline"])
        if case["design"]:
            sc = with_design(sc, case["design"])
        result = simulate(sc, agents=AGENTS, seed=SEED, replications=REPLICATIONS)
        out = tmp / "run"
        write_run(result, out, force=True)
        return json.loads((out / "manifest.json").read_text(encoding="utf-8"))["outputs"]
    finally:
        os.chdir(cwd)


def member_log_hashes() -> dict[str, str]:
    """The response generator's member log and truth (response/generate.py builds its own Simulation)."""
    from simulator.response.generate import member_log

    log = member_log(str(ROOT / "markets/france/premium_club_pilot.yaml"),
                     response={"goal_gradient": 0.3, "enrolment_propensity": 0.05}, agents=AGENTS, seed=SEED,
                     pre_months=6, months=18)
    out = {}
    for name in ("transactions", "truth"):
        frame = getattr(log, name, None)
        if frame is not None:
            out[name] = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    return out


def compute(verbose: bool = True) -> dict[str, dict[str, str]]:
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as d:
        for case in cases():
            key = case["playbook"] + (f" design={case['design']}" if case["design"] else "") + \
                (f" baseline={case['baseline']}" if case["baseline"] else "")
            results[key] = run_case(case, Path(d))
            if verbose:
                print(f"  {key}", flush=True)
    results["response.generate.member_log markets/france/premium_club_pilot.yaml"] = member_log_hashes()
    return results


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def check(path: Path, verbose: bool = True) -> list[str]:
    """Differences between the recorded hashes in ``path`` and the recomputed ones."""
    want = json.loads(path.read_text(encoding="utf-8"))["runs"]
    got = compute(verbose)
    diffs = []
    for key in sorted(set(want) | set(got)):
        if key not in got:
            diffs.append(f"{key}: not run any more")
        elif key not in want:
            diffs.append(f"{key}: new run, no recorded hashes")
        else:
            for f in sorted(set(want[key]) | set(got[key])):
                if want[key].get(f) != got[key].get(f):
                    diffs.append(f"{key}: {f} differs")
    return diffs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", type=Path, help="recorded hashes to compare with")
    ap.add_argument("--out", type=Path, help="where to write the hashes (default benchmarks/identity_<commit>.json)")
    args = ap.parse_args()
    if args.check:
        diffs = check(args.check)
        n = len(json.loads(args.check.read_text(encoding="utf-8"))["runs"])
        if diffs:
            print(f"{len(diffs)} difference(s) against {args.check}:")
            print("\n".join(f"  {x}" for x in diffs))
            sys.exit(1)
        print(f"identical: {n} runs, every result file, against {args.check}")
        return
    runs = compute()
    c = commit()
    out = args.out or ROOT / "benchmarks" / f"identity_{c}.json"
    payload = {"commit": c, "agents": AGENTS, "replications": REPLICATIONS, "seed": SEED, "runs": runs}
    out.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(runs)} runs written to {out}")


if __name__ == "__main__":
    main()
