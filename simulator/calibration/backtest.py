"""Backtest: calibrate on a log up to a date, simulate the customers known then through a later
holdout, and compare with what they actually did -- next to the field's standard model.

:func:`backtest`

1. calibrates a market on every transaction up to ``calibration_end`` (moved back to the end of
   its month if needed; :func:`~simulator.calibration.estimate.calibrate`);
2. simulates, with the engine, the customers known at that date -- one agent each, no arrivals,
   no program -- through the holdout months (``calibration_end`` + 1 day .. ``holdout_end``),
   each agent starting from *its own customer's* state: its segment (for the default
   segmentation, the model type is drawn from the customer's posterior, at its own recency),
   and its own mean basket. ``replications`` runs with independent seeds are averaged (one run
   of a few thousand customers has a Poisson noise of about 7% a month);
3. fits the reference on the same split: BG/NBD for transactions and Gamma-Gamma for spend
   (:mod:`~simulator.calibration.reference`), their monthly holdout expectations computed over
   the same calendar months;
4. compares both with what the customers did: monthly transactions and revenue, totals and
   their errors, the mean absolute percentage error of the monthly series (MAPE), and the
   correlation across customers between forecast and actual holdout transactions.

How agents start from the data. Each agent is one known customer, started through the
engine's :class:`~simulator.engine.population.InitialAgents`: its segment, its recency, and its
own mean basket relative to its segment's; its purchase-rate multiplier is drawn by the engine
from its segment's gamma. Per-agent transactions are read after each month closes
(:meth:`~simulator.engine.simulation.Simulation.month_purchases`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from simulator.calibration.estimate import CalibratedMarket, calibrate, customer_states
from simulator.calibration.reference import BGNBD, GammaGamma, rfm_summary
from simulator.calibration.segmentation import RFMStates, RuleSet, calibration_month_end, monthly_panel
from simulator.calibration.transactions import TransactionLog

__all__ = ["BACKTEST_COLUMNS", "BacktestResult", "backtest", "write_backtest"]

#: Columns of ``backtest.csv``, in order.
BACKTEST_COLUMNS = ("period", "actual_transactions", "forecast_transactions", "reference_transactions",
                    "actual_revenue", "forecast_revenue", "reference_revenue")


@dataclass
class BacktestResult:
    """What :func:`backtest` found.

    Attributes
    ----------
    monthly : pandas.DataFrame
        One row per holdout month, columns :data:`BACKTEST_COLUMNS` (``forecast_*``: the
        simulation, mean over replications; ``reference_*``: BG/NBD and BG/NBD x Gamma-Gamma).
    summary : dict
        Totals, errors and settings (what ``backtest.json`` holds).
    customers : pandas.DataFrame
        Per customer known at the calibration end: ``actual``, ``forecast`` and ``reference``
        holdout transactions.
    calibration : CalibratedMarket
        The market calibrated on the calibration window.
    """

    monthly: pd.DataFrame
    summary: dict
    customers: pd.DataFrame
    calibration: CalibratedMarket
    replications_monthly: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (not written: files are reproducible)

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        return write_backtest(self, out_dir)


def _mape(forecast: np.ndarray, actual: np.ndarray) -> float:
    actual = np.asarray(actual, dtype=np.float64)
    ok = actual > 0
    if not ok.any():
        return float("nan")
    return float(np.mean(np.abs(np.asarray(forecast)[ok] - actual[ok]) / actual[ok]) * 100.0)


def _error(forecast: float, actual: float) -> float:
    return float((forecast / actual - 1.0) * 100.0) if actual > 0 else float("nan")


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def _no_program_scenario(cm: CalibratedMarket, start: dt.date, months: int):
    """A scenario that runs no program over ``months`` months from ``start``: the design
    launches after the horizon, and the baseline is "no program"."""
    from simulator.scenario import Scenario
    from simulator.specs.playbook import Mechanisms, Playbook
    from simulator.specs.program import Program

    market = cm.market.model_copy(update={"acquisition": cm.market.acquisition.model_copy(update={"per_month": 0.0})})
    program = Program.model_validate({
        "name": "no_program", "currency": market.currency, "earn": {"points_per_unit": 1.0},
        "rewards": {"cashback": {"threshold_points": 10 ** 9, "voucher_value": 1.0}}, "enrolment": {"mode": "opt_in"},
    })
    launch = (pd.Period(start, "M") + months).to_timestamp().date()
    off = Mechanisms(self_selection=False, goal_gradient=False, rewarded_behaviour=False, tier_status=False,
                     campaigns=False, transitions=False, referrals=False)
    playbook = Playbook.model_validate({"name": "backtest", "design": "none", "market": "none", "launch": launch,
                                        "start": start, "horizon_months": months, "mechanisms": off.model_dump()})
    return Scenario(program=program, baseline=None, market=market, playbook=playbook, fx_design_to_local=1.0)


def _simulate(cm: CalibratedMarket, start: dt.date, months: int, agents: int, replications: int, seed: int,
              progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Engine runs from the customers' own states. Returns per-replication monthly totals of
    transactions and revenue (scaled to all known customers) ``[replications, months]`` and the
    mean per-customer holdout transactions and revenue ``[customers]``."""
    from simulator.engine.population import InitialAgents
    from simulator.executor import replication

    scenario = _no_program_scenario(cm, start, months)
    cust = cm.customers
    n = len(cust)
    rng = np.random.default_rng(seed)
    pick = np.arange(agents) % n if agents >= n else np.sort(rng.choice(n, size=agents, replace=False))
    tx = np.zeros((replications, months))
    rev = np.zeros((replications, months))
    per_tx = np.zeros(n)
    per_rev = np.zeros(n)
    per_n = np.bincount(pick, minlength=n).astype(np.float64)
    bmult_raw = cust["basket_mult"].to_numpy()
    recency = np.minimum(cust["recency_months"].to_numpy(), 30000).astype(np.int16)
    for rep in range(replications):
        seg_all, _ = customer_states(cm, np.random.default_rng([seed, rep]))
        seg = seg_all[pick]
        # own basket, relative to its segment's mean (normalised so each segment keeps its mean);
        # the purchase-rate multiplier is the engine's own draw from the agent's segment's gamma
        bm = bmult_raw[pick]
        norm = pd.Series(bm).groupby(seg).transform("mean").to_numpy()
        initial = InitialAgents(segment=seg, recency=recency[pick], basket_mult=bm / np.where(norm > 0, norm, 1.0))
        sim = replication(scenario, agents=agents, seed=seed, replication=rep, mechanisms=scenario.playbook.mechanisms,
                          initial=initial)
        k = agents
        counts = np.zeros((months, k))
        spend = np.zeros((months, k))

        def grab(t: int, sim=sim, counts=counts, spend=spend) -> None:
            n, s = sim.month_purchases("baseline")
            counts[t] = n[:k]
            spend[t] = s[:k]

        sim.run(progress=grab)
        scale = sim.pop.scale
        tx[rep] = counts.sum(axis=1) * scale
        rev[rep] = spend.sum(axis=1) * scale
        per_tx += np.bincount(pick, weights=counts.sum(axis=0), minlength=n)
        per_rev += np.bincount(pick, weights=spend.sum(axis=0), minlength=n)
        if progress is not None:
            progress(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_tx = per_tx / (per_n * replications)
        per_rev = per_rev / (per_n * replications)
    return tx, rev, per_tx, per_rev


def _reference(log: TransactionLog | pd.DataFrame, end: pd.Timestamp, month_ends: list[pd.Timestamp],
               customers: pd.Index) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """BG/NBD expected transactions and BG/NBD x Gamma-Gamma expected revenue per holdout month,
    per-customer expected holdout transactions, and the fitted parameters."""
    summary = rfm_summary(log, end)
    summary.index = summary.index.astype(str)
    summary = summary.reindex(customers)
    bg = BGNBD.fit(summary)
    info: dict = {"bgnbd": {**bg.params, "log_likelihood": bg.log_likelihood}}
    try:
        gg = GammaGamma.fit(summary)
        spend = gg.conditional_expected_average_spend(summary).to_numpy()
        info["gamma_gamma"] = {**gg.params, "log_likelihood": gg.log_likelihood}
    except ValueError as exc:
        spend = np.full(len(summary), np.nan)
        info["gamma_gamma"] = {"error": str(exc)}
    tx = np.zeros(len(month_ends))
    rev = np.zeros(len(month_ends))
    per = np.zeros(len(summary))
    prev = 0.0
    for h, me in enumerate(month_ends):
        w = (me - end).days / 7.0
        x = bg.expected_purchases_in_window(summary, prev, w).to_numpy()
        prev = w
        tx[h] = x.sum()
        rev[h] = float(np.nansum(x * spend)) if np.isfinite(spend).any() else float("nan")
        per += x
    return tx, rev, per, info


def backtest(
    log: TransactionLog | pd.DataFrame,
    calibration_end: str | pd.Timestamp,
    holdout_end: str | pd.Timestamp | None = None,
    *,
    agents: int | None = None,
    replications: int = 20,
    seed: int = 20240601,
    segmentation: RFMStates | RuleSet | None = None,
    source: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    seasonality: str | tuple[float, ...] = "auto",
    seasonality_source: str | None = None,
) -> BacktestResult:
    """Calibrate up to ``calibration_end``, simulate the known customers through the holdout and
    compare with what they did and with BG/NBD (+ Gamma-Gamma).

    Parameters
    ----------
    log : TransactionLog or DataFrame
    calibration_end : date-like
        Last day of the calibration window (moved back to the end of its month if needed).
    holdout_end : date-like, optional
        Last day of the holdout (moved back to a month end); default the log's last complete
        month.
    agents : int, optional
        Agents per replication; default one per customer known at ``calibration_end``. Fewer:
        a random subset of the customers (results scaled up); more: customers cycled.
    replications : int
        Runs averaged (independent seeds, and independent draws of each customer's type).
    seed : int
    segmentation : RFMStates or RuleSet, optional
        As for :func:`~simulator.calibration.estimate.calibrate` (default ``RFMStates()``).
    source : path, optional
        The log's file (named in the calibrated market's header).
    progress : callable, optional
        Called with 1 after each replication.
    seasonality, seasonality_source : as :func:`~simulator.calibration.estimate.calibrate` takes them
        ("auto", "flat" or 12 multipliers borrowed from a market file, and that file's name).
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    cm = calibrate(log, name="backtest", currency="XXX", gross_margin=0.3, calibration_end=calibration_end,
                   segmentation=segmentation, potential_horizon=0, source=source, seasonality=seasonality,
                   seasonality_source=seasonality_source)
    timings["calibration_s"] = time.perf_counter() - t0
    end = cm.calibration_end
    h_end = calibration_month_end(log, holdout_end)
    if h_end <= end:
        raise ValueError(f"the holdout must end after the calibration end {end.date()} (got {h_end.date()})")
    full = monthly_panel(log, h_end)
    t_cal = full.month_index(end)
    known = full.first_month <= t_cal
    holdout = full.months[t_cal + 1:]
    H = len(holdout)
    ids = pd.Index(full.customers[known], name="customer_id")
    if not ids.equals(cm.customers.index):
        raise RuntimeError("the calibration's customers differ from the customers known at the calibration end")
    actual_counts = full.counts[known, t_cal + 1:]
    actual_spend = full.spend[known, t_cal + 1:]
    n = int(known.sum())
    k = n if agents is None else int(agents)
    if k < 1:
        raise ValueError(f"agents must be positive, not {agents}")
    if replications < 1:
        raise ValueError(f"replications must be positive, not {replications}")

    t0 = time.perf_counter()
    start = holdout[0].to_timestamp().date()
    sim_tx, sim_rev, per_tx, per_rev = _simulate(cm, start, H, k, replications, seed, progress)
    timings["simulation_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    month_ends = [p.end_time.normalize() for p in holdout]
    ref_tx, ref_rev, ref_per, ref_info = _reference(log, end, month_ends, ids)
    timings["reference_s"] = time.perf_counter() - t0

    monthly = pd.DataFrame({
        "period": [str(p) for p in holdout],
        "actual_transactions": actual_counts.sum(axis=0).astype(np.int64),
        "forecast_transactions": sim_tx.mean(axis=0),
        "reference_transactions": ref_tx,
        "actual_revenue": actual_spend.sum(axis=0),
        "forecast_revenue": sim_rev.mean(axis=0),
        "reference_revenue": ref_rev,
    }, columns=list(BACKTEST_COLUMNS))
    actual_per = actual_counts.sum(axis=1)
    customers = pd.DataFrame({"actual": actual_per, "forecast": per_tx, "reference": ref_per,
                              "actual_revenue": actual_spend.sum(axis=1), "forecast_revenue": per_rev}, index=ids)

    def block(col: str) -> dict:
        a = monthly[f"actual_{col}"].to_numpy(dtype=np.float64)
        f = monthly[f"forecast_{col}"].to_numpy(dtype=np.float64)
        r = monthly[f"reference_{col}"].to_numpy(dtype=np.float64)
        return {"actual": float(a.sum()), "forecast": float(f.sum()), "reference": float(r.sum()),
                "forecast_error_pct": _error(f.sum(), a.sum()), "reference_error_pct": _error(r.sum(), a.sum()),
                "forecast_mape_pct": _mape(f, a), "reference_mape_pct": _mape(r, a)}

    tx_block = block("transactions")
    tx_block["forecast_customer_correlation"] = _corr(per_tx, actual_per)
    tx_block["reference_customer_correlation"] = _corr(ref_per, actual_per)
    sd = sim_tx.sum(axis=1).std(ddof=1) if replications > 1 else float("nan")
    tx_block["forecast_total_sd_between_replications"] = float(sd)
    summary = {
        "calibration_end": str(end.date()),
        "holdout": {"first_month": str(holdout[0]), "last_month": str(holdout[-1]), "months": H},
        "customers": n,
        "agents": k,
        "replications": replications,
        "seed": seed,
        "segmentation": (segmentation.name if isinstance(segmentation, RuleSet) else "rfm_states"),
        "transactions": tx_block,
        "revenue": block("revenue"),
        "model": cm.model.params() if cm.model is not None else None,
        "reference_models": ref_info,
        "notes": cm.diagnostics.notes,
    }
    return BacktestResult(monthly=monthly, summary=summary, customers=customers, calibration=cm,
                          replications_monthly=sim_tx, timings={k_: round(v, 3) for k_, v in timings.items()})


def _plot(result: BacktestResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = result.monthly
    x = np.arange(len(m))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, col, unit in ((axes[0], "transactions", "transactions"), (axes[1], "revenue", "revenue")):
        ax.plot(x, m[f"actual_{col}"], "o-", color="black", label="actual")
        ax.plot(x, m[f"forecast_{col}"], "s-", color="tab:blue", label="simulation")
        ax.plot(x, m[f"reference_{col}"], "^--", color="tab:orange",
                label="BG/NBD" if col == "transactions" else "BG/NBD x Gamma-Gamma")
        s = result.summary[col]
        ax.set_title(f"Holdout {unit} per month\nsimulation {s['forecast_error_pct']:+.1f}% (MAPE {s['forecast_mape_pct']:.1f}%), "
                     f"reference {s['reference_error_pct']:+.1f}% (MAPE {s['reference_mape_pct']:.1f}%)", fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(m["period"], rotation=45, ha="right", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Backtest: calibration to {result.summary['calibration_end']}, {result.summary['customers']} customers", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def write_backtest(result: BacktestResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``backtest.csv`` (:data:`BACKTEST_COLUMNS`), ``backtest.json`` (the summary) and
    ``backtest.png`` (the three monthly series) into ``out_dir`` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "backtest.csv", "json": out / "backtest.json", "png": out / "backtest.png"}
    result.monthly.to_csv(paths["csv"], index=False, columns=list(BACKTEST_COLUMNS), float_format="%.4f")
    paths["json"].write_text(json.dumps(_jsonable(result.summary), indent=2) + "\n", encoding="utf-8")
    _plot(result, paths["png"])
    return paths
