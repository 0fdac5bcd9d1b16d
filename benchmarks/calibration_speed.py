"""Calibration at retail scale: wall time and peak memory of ``loyalty-sim calibrate`` on a
synthetic log.

Draws a log from the lapse-and-return model (:mod:`simulator.calibration.synthetic`, known
parameters) with about five transactions per customer over ``--months`` months, writes it as
CSV (or Parquet), then runs ``loyalty-sim calibrate`` on it in a fresh process and prints its
wall time, its peak memory (ru_maxrss of the child) and the fitted parameters beside the true
ones. Asserts nothing: the targets (10 million rows in 60 s and 4 GB on two cores) are in
README.md.

    python benchmarks/calibration_speed.py [--rows 10000000 ...] [--months 36] [--format csv|parquet] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.calibration.synthetic import SyntheticProcess, synthetic_log  # noqa: E402

#: The process drawn from: about 4.9 transactions per customer over 36 months.
PROCESS = SyntheticProcess(r=0.8, alpha=1.6, a=2.0, b=5.0, rho=0.05)
ROWS_PER_CUSTOMER = 4.92


#: Customers drawn at once: a larger log is written in chunks of this many customers (each
#: chunk its own seed and id prefix), so that drawing 100 million rows does not hold them all.
CHUNK_CUSTOMERS = 2_000_000


def write_log(rows: int, months: int, fmt: str, folder: Path, seed: int) -> tuple[Path, int, int, float]:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    n = max(100, int(round(rows / ROWS_PER_CUSTOMER)))
    t0 = time.perf_counter()
    chunks = [(n, seed, "c")] if n <= CHUNK_CUSTOMERS else [
        (min(CHUNK_CUSTOMERS, n - lo), seed * 1000 + k, f"c{k:03d}_") for k, lo in enumerate(range(0, n, CHUNK_CUSTOMERS))]
    path = folder / f"log_{rows}.{fmt}"
    writer = None
    got = 0
    try:
        for size, chunk_seed, prefix in chunks:
            frame = synthetic_log(size, months, process=PROCESS, seed=chunk_seed, id_prefix=prefix)
            got += len(frame)
            table = pa.Table.from_pandas(frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d")), preserve_index=False)
            del frame
            if writer is None:
                writer = pcsv.CSVWriter(path, table.schema) if fmt == "csv" else pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            del table
    finally:
        if writer is not None:
            writer.close()
    final = folder / f"log_{got}.{fmt}"
    path.rename(final)
    return final, n, got, time.perf_counter() - t0


CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import simulator.calibration.estimate as est
import simulator.calibration.states as states
import simulator.calibration.pipeline as pipe
from simulator.calibration.pipeline import LogSource, calibrate_file

spent = {}
peak = {}  # the process's peak resident memory (GiB) when each step first ended: which step set it
def timed(module, name, label):
    f = getattr(module, name)
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - t0
            peak.setdefault(label, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2)
    setattr(module, name, wrapper)

timed(LogSource, "read", "read")
timed(est, "monthly_panel", "panel")
timed(states, "fit_lapse_return", "fits")
timed(est, "fit_potential", "potential")
timed(states, "_posterior", "posterior")
timed(states, "_one_step_fit", "one-step")
timed(pipe, "report_html", "report")
path, out = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
done = calibrate_file(LogSource(Path(path)), out, currency="EUR", gross_margin=0.3, force=True)
wall = time.perf_counter() - t0
m = done.calibrated.diagnostics.model
print(json.dumps({"wall": wall, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "spent": spent, "peak": peak,
                  "model": None if m is None else m.params(), "customers": done.calibrated.market.customers}))
"""


def calibrate(path: Path, folder: Path) -> dict:
    """``calibrate_file`` (what ``loyalty-sim calibrate`` runs) in a fresh process: its wall time,
    the time of its main steps, its peak memory and the fitted parameters."""
    out = folder / "market" / "market.yaml"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(out)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"calibrate failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - t0
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--months", type=int, default=36)
    ap.add_argument("--format", choices=("csv", "parquet"), default="csv")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, default=None, help="folder for the logs and markets (default: a temporary one)")
    args = ap.parse_args()
    print(f"synthetic lapse-and-return logs, {args.months} months, {args.format}; true r={PROCESS.r} alpha={PROCESS.alpha} "
          f"a={PROCESS.a} b={PROCESS.b} rho={PROCESS.rho}; {os.cpu_count()} cores")
    print(f"{'rows':>12} {'customers':>11} {'draw s':>7} {'process s':>10} {'calibrate s':>12} {'peak GB':>8}  steps (s)")
    rows_fit = []
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            folder = args.keep / str(rows) if args.keep else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            path, n, got, draw = write_log(rows, args.months, args.format, folder, args.seed)
            r = calibrate(path, folder)
            steps = ", ".join(f"{k} {v:.1f}" for k, v in r["spent"].items())
            print(f"{got:>12,} {n:>11,} {draw:>7.1f} {r['process_s']:>10.1f} {r['wall']:>12.1f} "
                  f"{r['peak_kb'] / 1024 ** 2:>8.2f}  {steps}", flush=True)
            print(" " * 13 + "peak GiB when each step first ended: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in r["peak"].items()), flush=True)
            rows_fit.append((got, r["model"]))
    print("fitted (true: " + ", ".join(f"{k}={getattr(PROCESS, k)}" for k in ("r", "alpha", "a", "b", "rho")) + ")")
    for got, model in rows_fit:
        print(f"{got:>12,}  " + ("no model" if model is None else ", ".join(f"{k}={v:.4g}" for k, v in model.items())))

if __name__ == "__main__":
    main()
