"""A study: several runs (one per scenario) compared and rolled up in one reporting currency.

A study directory holds ``study.json`` and one run directory per scenario (what
``loyalty-sim run`` writes). :func:`load_study` reads it into typed objects that the figures,
the HTML report and the Excel workbook share, so that every output shows the same numbers.

``study.json``::

    {"name": ..., "description": ..., "reporting_currency": "EUR", "seed": 1, "replications": 20,
     "scenarios": [{"id", "dir", "playbook", "design", "baseline", "market", "currency",
                    "fx_to_reporting"}, ...],
     "uncertain_parameters": [{"name", "distribution", "source"}, ...],     # optional
     "tornado": {scenario id: [{"parameter", "low", "high", "npv_low", "npv_high", "npv_base"}]},
     "breakeven": {scenario id: [{"parameter", "value", "meaning"}]},       # optional
     "ranking": [{"scenario", "npv_p50", "npv_p10", "npv_p90", "probability_npv_negative"}]}

Conventions
-----------
* Money in a run is in its market's currency ("local"). ``fx_to_reporting`` is reporting
  currency units per local unit (USD -> EUR 0.92); a scenario's local money times its
  ``fx_to_reporting`` is in the reporting currency. When ``study.json`` gives no rate the
  market's own ``fx_to_reporting`` (from the run's manifest) is used if the market reports in
  the study's currency.
* Tornado NPVs are read in the scenario's local currency (what a run's ``npv`` is in) unless a
  bar carries its own ``"currency"``; the ranking in ``study.json`` is in the reporting
  currency. When ``ranking`` is missing or empty, scenarios are ranked by NPV P50 in the
  reporting currency (highest first, ties by id).
* P10/P50/P90 are percentiles over replications by the one rule of
  :func:`simulator.finance.metrics.quantiles` (the replication nearest the rank), as in
  ``summary.json`` and the terminal. Payback month quantiles count a replication that never
  pays back as "never" (later than any month) instead of dropping it.
* Roll-up (:func:`rollup`): the group total of a metric is computed replication by
  replication: for replication r, the total is the sum over markets of replication r's value
  converted to the reporting currency, and P10/P50/P90 are taken over these totals. Summing
  P50s instead would overstate the spread's centre and give no valid P10/P90. Replication r
  of every scenario of a study is run with the same seed and replication index (common
  random numbers), so replication r is one coherent draw of "the world" for the whole group;
  markets are distinct customer bases, so the pairing adds no spurious correlation either.
  When scenarios have different numbers of replications, the first ``min`` are used and the
  roll-up says so in its notes.
* Verdict (:func:`verdict_lines`): NPV is incremental to a scenario's baseline, so scenarios
  are ranked only within a (market, baseline) group (:func:`baseline_groups`), one verdict
  line each. A group whose best design has NPV P50 < 0 says to keep what runs today. The
  group plan (:func:`plan_groups`, the default :func:`rollup`) takes in each market the group
  against the program running today (else against no program) and launches its best design
  only when it pays; a market that keeps adds 0 to the total in every replication, so the
  plan's P(NPV < 0) follows from these choices.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from simulator.errors import InputErrors
from simulator.finance.metrics import QUANTILES, quantiles  # noqa: F401  (the one percentile rule)

#: Metric -> unit kind: ``money`` (market currency), ``pct`` (a share, 0.25 = 25 %), ``months``,
#: ``count`` (customers), ``points``. Metrics not listed are plain numbers.
METRIC_UNITS: dict[str, str] = {
    "incremental_revenue": "money",
    "incremental_gross_margin": "money",
    "incremental_program_cost": "money",
    "incremental_net_margin": "money",
    "roi": "pct",
    "npv": "money",
    "payback_month": "months",
    "peak_cash_need": "money",
    "breakage_rate": "pct",
    "expected_breakage_used": "pct",
    "reward_cost_pct_sales": "pct",
    "reward_cost_pct_member_sales": "pct",
    "members_end": "count",
    "points_outstanding_end": "points",
    "liability_end": "money",
    "peak_liability": "money",
    "member_true_lift_revenue": "money",
    "member_naive_uplift_revenue": "money",
    "member_self_selection_revenue": "money",
    "incremental_reward_cost": "money",
    "incremental_benefit_cost": "money",
    "incremental_campaign_cost": "money",
    "incremental_enrolment_cost": "money",
    "incremental_fixed_cost": "money",
    "incremental_member_cost": "money",
    "incremental_fee_income": "money",
    "incremental_horizon_obligation": "money",
    "incremental_pnl_cost": "money",
    "discount_rate": "pct",
    "npv_rate_minus_2pt": "money",
    "npv_rate_plus_2pt": "money",
    "npv_after_tax": "money",
    "value_per_point_used": "number",
}

#: Human labels of the summary metrics (order = order of display).
METRIC_LABELS: dict[str, str] = {
    "npv": "NPV of incremental cash flow",
    "discount_rate": "Discount rate (annual)",
    "npv_rate_minus_2pt": "  NPV at the discount rate -2 points",
    "npv_rate_plus_2pt": "  NPV at the discount rate +2 points",
    "npv_after_tax": "  NPV after tax",
    "probability_npv_negative": "Probability NPV < 0",
    "roi": "ROI",
    "payback_month": "Payback month",
    "peak_cash_need": "Peak cash need",
    "incremental_revenue": "Incremental revenue",
    "incremental_gross_margin": "Incremental gross margin",
    "incremental_program_cost": "Incremental program cost",
    "incremental_reward_cost": "  rewards",
    "incremental_benefit_cost": "  tier benefits",
    "incremental_campaign_cost": "  campaigns",
    "incremental_enrolment_cost": "  enrolment drives",
    "incremental_fixed_cost": "  running + set-up",
    "incremental_member_cost": "  per-member costs",
    "incremental_horizon_obligation": "  obligation left at the horizon",
    "incremental_fee_income": "  fees received (subtracted)",
    "incremental_net_margin": "Net incremental margin",
    "member_naive_uplift_revenue": "Members' extra spend, naive",
    "member_true_lift_revenue": "  of which true lift",
    "member_self_selection_revenue": "  of which self-selection",
    "members_end": "Members at end",
    "points_outstanding_end": "Points outstanding at end",
    "liability_end": "Points liability at end",
    "peak_liability": "Peak points liability",
    "breakage_rate": "Breakage (simulated)",
    "expected_breakage_used": "Expected breakage used (IFRS 15)",
    "value_per_point_used": "Value of a point used (IFRS 15)",
    "incremental_pnl_cost": "Incremental program cost, P&L view",
    "reward_cost_pct_sales": "Reward cost / sales",
    "reward_cost_pct_member_sales": "Reward cost / members' sales",
}

#: Cost groups of the incremental program cost (summary metric, label); fees are subtracted.
COST_GROUPS: tuple[tuple[str, str], ...] = (
    ("incremental_reward_cost", "rewards"),
    ("incremental_benefit_cost", "tier benefits"),
    ("incremental_campaign_cost", "campaigns"),
    ("incremental_enrolment_cost", "enrolment drives"),
    ("incremental_fixed_cost", "running + set-up"),
    ("incremental_member_cost", "per-member costs"),
    ("incremental_horizon_obligation", "obligation left at the horizon"),
)
FEE_INCOME = "incremental_fee_income"

#: Metrics the roll-up adds across markets (all money, or counts for members).
ROLLUP_METRICS: tuple[str, ...] = (
    "npv", "incremental_revenue", "incremental_gross_margin", "incremental_program_cost",
    "incremental_net_margin", "liability_end",
)

RUN_FILES = ("summary.json", "manifest.json", "monthly.parquet", "monthly_replications.parquet")


def metric_unit(metric: str) -> str:
    return METRIC_UNITS.get(metric, "number")


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def ordered_metrics(names: Iterable[str]) -> list[str]:
    """Metrics in display order: the labelled ones first (in :data:`METRIC_LABELS` order),
    then any others alphabetically."""
    names = set(names)
    known = [m for m in METRIC_LABELS if m in names]
    return known + sorted(names - set(known))


# ----------------------------------------------------------------------------- typed objects
@dataclass(frozen=True)
class UncertainParameter:
    name: str
    distribution: str
    source: str


@dataclass(frozen=True)
class TornadoBar:
    """NPV when one parameter is set to its low and high value, others at base."""

    parameter: str
    low: float
    high: float
    npv_low: float
    npv_high: float
    npv_base: float
    currency: str | None = None  #: None = the scenario's local currency
    distribution: str = ""

    @property
    def swing(self) -> float:
        return abs(self.npv_high - self.npv_low)


@dataclass(frozen=True)
class BreakEven:
    parameter: str
    value: float | None
    meaning: str


@dataclass(frozen=True)
class RankEntry:
    """A scenario's place in the ranking; NPV in the reporting currency."""

    rank: int
    scenario: str
    npv_p10: float | None
    npv_p50: float | None
    npv_p90: float | None
    probability_npv_negative: float | None


@dataclass
class ScenarioRun:
    """One scenario of a study: the study's description of it and its run directory's files."""

    id: str
    dir: Path
    playbook: str
    design: str
    baseline: str
    market: str
    currency: str
    fx_to_reporting: float
    summary: dict[str, Any]
    manifest: dict[str, Any]
    monthly: pd.DataFrame
    replications: pd.DataFrame
    stores: pd.DataFrame | None = None  # stores.parquet of a market with a store network
    pilot: pd.DataFrame | None = None  # pilot.csv of a playbook piloting its design in some stores

    # ---- summary access
    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        return self.summary.get("metrics", {})

    @property
    def per_replication(self) -> list[dict[str, Any]]:
        return self.summary.get("per_replication", [])

    @property
    def n_replications(self) -> int:
        return len(self.per_replication)

    @property
    def metric_names(self) -> list[str]:
        """Summary metrics (numeric per-replication values), in display order; per-replication
        entries that are not numbers (``parameters``: the draws) are left out."""
        reps = self.per_replication
        if not reps:
            return ordered_metrics(self.metrics)
        names = [k for k in reps[0] if all(r.get(k) is None or (isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool))
                                           for r in reps)]
        return ordered_metrics(names)

    def parameter_draws(self) -> pd.DataFrame:
        """The uncertain parameters' draw in each replication (replication, parameter, value),
        from ``per_replication[r]["parameters"]``; empty when the run drew none."""
        rows = [(r, str(k), float(v)) for r, rep in enumerate(self.per_replication)
                for k, v in sorted((rep.get("parameters") or {}).items())
                if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return pd.DataFrame(rows, columns=["replication", "parameter", "value"])

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "unknown"))

    def values(self, metric: str, *, reporting: bool = False) -> list[float | None]:
        """Per-replication values of a summary metric (money converted when ``reporting``)."""
        vals = [r.get(metric) for r in self.per_replication]
        if reporting and metric_unit(metric) == "money":
            return [None if v is None else float(v) * self.fx_to_reporting for v in vals]
        return [None if v is None else float(v) for v in vals]

    def stat(self, metric: str, *, reporting: bool = False) -> dict[str, float | None]:
        """P10/P50/P90/mean of a metric from the per-replication values (payback: "never"
        counts as later than any month)."""
        if metric == "probability_npv_negative":
            p = self.summary.get("probability_npv_negative")
            return {"p10": p, "p50": p, "p90": p, "mean": p}
        if self.per_replication:
            return quantiles(self.values(metric, reporting=reporting), none_is_inf=(metric == "payback_month"))
        e = self.metrics.get(metric, {})
        k = self.fx_to_reporting if reporting and metric_unit(metric) == "money" else 1.0
        return {q: (None if e.get(q) is None else float(e[q]) * k) for q in ("p10", "p50", "p90", "mean")}

    def mean(self, metric: str, *, reporting: bool = False) -> float:
        v = self.stat(metric, reporting=reporting)["mean"]
        return 0.0 if v is None else float(v)

    @property
    def tiers(self) -> list[str]:
        """Tier columns of the monthly table (``members_tier_<tier>``), in table order."""
        return [c for c in self.monthly.columns if str(c).startswith("members_tier_")]

    def rows(self, scenario: str, *, replications: bool = False) -> pd.DataFrame:
        """Rows of one run (``design``, ``baseline`` or ``difference``), sorted by month."""
        df = self.replications if replications else self.monthly
        out = df[df["scenario"] == scenario]
        keys = ["replication", "month"] if replications else ["month"]
        return out.sort_values(keys, kind="mergesort").reset_index(drop=True)

    @property
    def label(self) -> str:
        return f"{self.id}"

    @property
    def title(self) -> str:
        return f"{self.design} vs {self.baseline} ({self.market}, {self.currency})"


@dataclass(frozen=True)
class RollupLine:
    """One line of a roll-up: a market (its chosen scenario) or the total, per replication in
    the reporting currency."""

    label: str
    scenarios: tuple[str, ...]
    currency: str
    fx_to_reporting: float | None
    values: dict[str, np.ndarray]
    keep: str = ""  #: a market that launches nothing: what it keeps ("no program", "keep the running X")

    def stat(self, metric: str) -> dict[str, float | None]:
        return quantiles(list(self.values[metric]))

    @property
    def probability_npv_negative(self) -> float:
        npv = self.values["npv"]
        return float((npv < 0).mean()) if npv.size else 0.0


@dataclass(frozen=True)
class Rollup:
    """Markets (one scenario each) and their total, in the reporting currency."""

    title: str
    reporting_currency: str
    markets: tuple[RollupLine, ...]
    total: RollupLine
    replications: int
    metrics: tuple[str, ...] = ROLLUP_METRICS
    notes: tuple[str, ...] = ()


@dataclass
class Study:
    path: Path
    name: str
    description: str
    reporting_currency: str
    seed: Any
    replications: Any
    scenarios: list[ScenarioRun]
    uncertain_parameters: list[UncertainParameter] = field(default_factory=list)
    tornado: dict[str, list[TornadoBar]] = field(default_factory=dict)
    breakeven: dict[str, list[BreakEven]] = field(default_factory=dict)
    ranking: list[RankEntry] = field(default_factory=list)
    ranking_source: str = "computed"  #: "study.json" or "computed"
    notes: list[str] = field(default_factory=list)
    optimisation: Any = None  #: the study's design search (:class:`simulator.reporting.optimisation.Optimisation`)

    def scenario(self, scenario_id: str) -> ScenarioRun:
        for s in self.scenarios:
            if s.id == scenario_id:
                return s
        raise KeyError(scenario_id)

    @property
    def ranked_scenarios(self) -> list[ScenarioRun]:
        """Scenarios in the order of :func:`baseline_groups` (by market, then baseline, best
        NPV P50 first): every listing uses it, so designs measured against different
        baselines are never ranked in one list."""
        return [self.scenario(r.scenario) for g in baseline_groups(self) for r in g.ranking]

    @property
    def markets(self) -> list[str]:
        """Markets in order of first appearance in ``scenarios``."""
        return list(dict.fromkeys(s.market for s in self.scenarios))

    @property
    def version(self) -> str:
        versions = sorted({s.version for s in self.scenarios})
        return ", ".join(versions) if versions else "unknown"

    def tornado_in_reporting(self, scenario_id: str) -> list[TornadoBar]:
        """Tornado bars of a scenario with NPVs in the reporting currency, widest swing first."""
        sc = self.scenario(scenario_id)
        out = []
        for b in self.tornado.get(scenario_id, []):
            k = 1.0 if b.currency == self.reporting_currency else sc.fx_to_reporting
            out.append(TornadoBar(b.parameter, b.low, b.high, b.npv_low * k, b.npv_high * k, b.npv_base * k,
                                  self.reporting_currency, b.distribution))
        return sorted(out, key=lambda b: (-b.swing, b.parameter))

    def sensitivity_replications(self) -> int | None:
        """Replications per point of the tornado and break-even searches, when ``study.json``
        records them (``sensitivity_replications``); None otherwise."""
        n = _read_json(self.path / "study.json").get("sensitivity_replications")
        return None if n is None else int(n)


# ----------------------------------------------------------------------------- loading
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputErrors.one(str(path), "file not found (expected a study directory written by `loyalty-sim compare`)") from None
    except json.JSONDecodeError as exc:
        raise InputErrors.one(str(path), f"is not valid JSON ({exc.msg})", line=exc.lineno) from None


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def _load_scenario(study_dir: Path, i: int, spec: dict[str, Any], reporting_currency: str) -> ScenarioRun:
    where = str(study_dir / "study.json")
    try:
        sid = str(spec["id"])
        run_dir = study_dir / str(spec["dir"])
    except (KeyError, TypeError):
        raise InputErrors.one(where, "needs 'id' and 'dir'", field=f"scenarios.{i}") from None
    missing = [f for f in RUN_FILES if not (run_dir / f).is_file()]
    if missing:
        raise InputErrors.one(str(run_dir), f"is not a complete run directory (missing {', '.join(missing)})",
                              field=f"scenarios.{i}.dir")
    summary = _read_json(run_dir / "summary.json")
    manifest = _read_json(run_dir / "manifest.json")
    market = (manifest.get("resolved") or {}).get("market") or {}
    currency = str(spec.get("currency") or summary.get("currency") or market.get("currency") or reporting_currency)
    fx = spec.get("fx_to_reporting")
    if fx is None:
        if currency == reporting_currency:
            fx = 1.0
        elif market.get("reporting_currency") == reporting_currency and market.get("fx_to_reporting") is not None:
            fx = market["fx_to_reporting"]
        else:
            raise InputErrors.one(where, f"no fx_to_reporting for {currency} -> {reporting_currency}",
                                  field=f"scenarios.{i}.fx_to_reporting")
    monthly = pd.read_parquet(run_dir / "monthly.parquet")
    reps = pd.read_parquet(run_dir / "monthly_replications.parquet")
    stores = pd.read_parquet(run_dir / "stores.parquet") if (run_dir / "stores.parquet").is_file() else None
    pilot = pd.read_csv(run_dir / "pilot.csv") if (run_dir / "pilot.csv").is_file() else None
    return ScenarioRun(
        id=sid, dir=run_dir,
        playbook=str(spec.get("playbook") or (manifest.get("arguments") or {}).get("playbook") or ""),
        design=str(spec.get("design") or summary.get("design") or ""),
        baseline=str(spec.get("baseline") or summary.get("baseline") or "none"),
        market=str(spec.get("market") or summary.get("market") or ""),
        currency=currency, fx_to_reporting=float(fx),
        summary=summary, manifest=manifest, monthly=monthly, replications=reps, stores=stores,
        pilot=pilot,
    )


#: Stores named leaders and laggards in the Network section (each end of the ranking).
NETWORK_ENDS = 5
#: Columns of :func:`network_table`.
NETWORK_COLUMNS = ("store", "label", "customers", "new_members", "recruitment_rate", "recruitment_index", "members",
                   "member_revenue_share", "incremental_revenue", "incremental_revenue_per_customer")


def network_table(s: ScenarioRun) -> pd.DataFrame | None:
    """The design run's stores ranked by recruitment (None without a store network), one row
    per store: ``store``, ``label``, ``customers`` (mean over the months), ``new_members`` (over
    the horizon), ``recruitment_rate`` = new members / customers, ``recruitment_index`` = the
    store's rate / the network's (sum of new members / sum of customers), ``members`` and
    ``member_revenue_share`` in the last month, ``incremental_revenue`` (design - baseline over
    the horizon, local currency) and ``incremental_revenue_per_customer``; highest rate first
    (ties by store). The Network section of the report and the workbook's Network sheet show it."""
    if s.stores is None or s.stores.empty:
        return None
    st = s.stores
    d, diff = st[st["scenario"] == "design"], st[st["scenario"] == "difference"]
    last = int(d["month"].max())
    g = d.groupby("store", sort=False)
    out = pd.DataFrame({"customers": g["customers"].mean(), "new_members": g["new_members"].sum()})
    at_end = d[d["month"] == last].set_index("store")
    out["members"] = at_end["members"]
    out["member_revenue_share"] = at_end["member_revenue_share"]
    out["incremental_revenue"] = diff.groupby("store", sort=False)["revenue"].sum()
    cust = out["customers"].to_numpy()
    out["recruitment_rate"] = np.divide(out["new_members"].to_numpy(), cust, out=np.zeros(len(out)), where=cust > 0)
    total = float(out["customers"].sum())
    network = float(out["new_members"].sum()) / total if total > 0 else 0.0
    rate = out["recruitment_rate"].to_numpy()
    out["recruitment_index"] = rate / network if network > 0 else np.zeros(len(out))
    out["incremental_revenue_per_customer"] = np.divide(out["incremental_revenue"].to_numpy(), cust,
                                                        out=np.zeros(len(out)), where=cust > 0)
    labels = {x.get("name"): x.get("label", "") for x in
              (((s.manifest.get("resolved") or {}).get("market") or {}).get("stores") or {}).get("stores", [])}
    out = out.reset_index()
    out.insert(1, "label", [labels.get(k, "") for k in out["store"]])
    out = out.sort_values(["recruitment_rate", "store"], ascending=[False, True], kind="mergesort").reset_index(drop=True)
    out = out[list(NETWORK_COLUMNS)].copy()
    out.attrs["network_rate"] = network  # the network's recruitment rate
    return out


def pilot_readout(s: ScenarioRun) -> dict[str, Any] | None:
    """A pilot's readout against matched control stores over the replications
    (:func:`simulator.pilot.readout_summary` of the run's pilot.csv); None without a pilot."""
    if s.pilot is None or s.pilot.empty:
        return None
    from simulator.pilot import readout_summary

    return readout_summary(s.pilot)


def compute_ranking(scenarios: Sequence[ScenarioRun]) -> list[RankEntry]:
    """Rank by NPV P50 in the reporting currency, highest first (ties by scenario id)."""
    rows = []
    for s in scenarios:
        st = s.stat("npv", reporting=True)
        rows.append((s, st))
    rows.sort(key=lambda t: (-(t[1]["p50"] if t[1]["p50"] is not None else -math.inf), t[0].id))
    return [RankEntry(i + 1, s.id, st["p10"], st["p50"], st["p90"], _num(s.summary.get("probability_npv_negative")))
            for i, (s, st) in enumerate(rows)]


def load_study(study_dir: str | Path) -> Study:
    """Read a study directory (``study.json`` and the run directories it names)."""
    study_dir = Path(study_dir)
    data = _read_json(study_dir / "study.json")
    where = str(study_dir / "study.json")
    if not isinstance(data, dict) or not isinstance(data.get("scenarios"), list) or not data["scenarios"]:
        raise InputErrors.one(where, "needs a non-empty 'scenarios' list", field="scenarios")
    reporting = str(data.get("reporting_currency") or "EUR")
    scenarios = [_load_scenario(study_dir, i, s, reporting) for i, s in enumerate(data["scenarios"])]
    ids = [s.id for s in scenarios]
    if len(set(ids)) != len(ids):
        raise InputErrors.one(where, "scenario ids must be unique", field="scenarios")

    uncertain = [UncertainParameter(str(u.get("name", "")), str(u.get("distribution", "")), str(u.get("source", "")))
                 for u in (data.get("uncertain_parameters") or [])]
    tornado: dict[str, list[TornadoBar]] = {}
    for sid, bars in sorted((data.get("tornado") or {}).items()):
        if sid not in ids:
            raise InputErrors.one(where, f"tornado names unknown scenario '{sid}'", field=f"tornado.{sid}")
        tornado[sid] = [TornadoBar(str(b["parameter"]), float(b["low"]), float(b["high"]), float(b["npv_low"]),
                                   float(b["npv_high"]), float(b["npv_base"]), b.get("currency"),
                                   str(b.get("distribution") or "")) for b in bars]
    breakeven: dict[str, list[BreakEven]] = {}
    for sid, rows in sorted((data.get("breakeven") or {}).items()):
        breakeven[sid] = [BreakEven(str(r.get("parameter", "")), _num(r.get("value")), str(r.get("meaning", "")))
                          for r in rows]

    notes: list[str] = []
    computed = compute_ranking(scenarios)
    given = data.get("ranking") or []
    if given:
        by_id = {r.scenario: r for r in computed}
        ranking, seen = [], set()
        for i, r in enumerate(given):
            sid = str(r["scenario"])
            if sid not in by_id:
                raise InputErrors.one(where, f"ranking names unknown scenario '{sid}'", field=f"ranking.{i}")
            seen.add(sid)
            c = by_id[sid]
            ranking.append(RankEntry(len(ranking) + 1, sid, _num(r.get("npv_p10", c.npv_p10)), _num(r.get("npv_p50", c.npv_p50)),
                                     _num(r.get("npv_p90", c.npv_p90)),
                                     _num(r.get("probability_npv_negative", c.probability_npv_negative))))
            if c.npv_p50 is not None and ranking[-1].npv_p50 is not None and \
                    abs(ranking[-1].npv_p50 - c.npv_p50) > 1e-6 * max(1.0, abs(c.npv_p50)):
                notes.append(f"study.json ranks {sid} at NPV P50 {ranking[-1].npv_p50:,.0f} {reporting}; its run's "
                             f"summary converted gives {c.npv_p50:,.0f} {reporting}.")
        for c in computed:  # scenarios the given ranking leaves out go last, in computed order
            if c.scenario not in seen:
                ranking.append(RankEntry(len(ranking) + 1, c.scenario, c.npv_p10, c.npv_p50, c.npv_p90,
                                         c.probability_npv_negative))
        source = "study.json"
    else:
        ranking, source = computed, "computed"
    optimisation = None
    opt = data.get("optimisation")
    if opt:
        from simulator.reporting.optimisation import load as load_optimisation

        opt_dir = study_dir / str(opt.get("dir") or "optimisation")
        if not (opt_dir / "optimisation.json").is_file():
            raise InputErrors.one(where, f"the design search's directory {opt_dir} has no optimisation.json "
                                         "(expected the files of `loyalty-sim optimise`)", field="optimisation.dir")
        optimisation = load_optimisation(opt_dir)
    return Study(path=study_dir, name=str(data.get("name") or study_dir.name), description=str(data.get("description") or ""),
                 reporting_currency=reporting, seed=data.get("seed"), replications=data.get("replications"),
                 scenarios=scenarios, uncertain_parameters=uncertain, tornado=tornado, breakeven=breakeven,
                 ranking=ranking, ranking_source=source, notes=notes, optimisation=optimisation)


# ----------------------------------------------------------------------------- verdict
def in_words(name: str) -> str:
    """A design's or program's name as words (``premium_club`` -> "premium club")."""
    return name.replace("_", " ")


def market_words(name: str) -> str:
    """A market's name as words, capitalised; a name of up to 3 letters is an acronym (USA)."""
    return name.upper() if len(name) <= 3 else in_words(name).title()


def baseline_words(baseline: str) -> str:
    return "no program" if baseline == "none" else f"the running {in_words(baseline)}"


def short_money(v: float | None, currency: str = "") -> str:
    """Money with 2-3 significant digits and at most one decimal: 640, 9.5k, 95.4k, 954k,
    1.7M, 12.3M, 1.2B; with the currency first when given ("EUR 1.7M", "-EUR 954k")."""
    if v is None or not math.isfinite(v):
        return "n/a"
    for div, unit in ((1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "B")):
        x = abs(v) / div
        text = f"{x:.0f}" if not unit or x >= 99.95 else f"{x:.1f}"
        if float(text) < 1000:
            break
    sign = "-" if v < 0 and float(text) else ""
    return f"{sign}{currency + ' ' if currency else ''}{text}{unit}"


def chance(p: float | None) -> str:
    """A probability in whole percent, never rounded to a certainty it is not (<1%, >99%)."""
    if p is None:
        return "n/a"
    r = round(100 * p)
    if r == 0 and p > 0:
        return "<1%"
    return ">99%" if r == 100 and p < 1 else f"{r}%"


def npv_words(p50: float | None, p10: float | None, p90: float | None, p_loss: float | None, currency: str) -> str:
    """"EUR 1.7M NPV (P10 1.0M, P90 2.3M), probability of a loss 0%"."""
    return (f"{short_money(p50, currency)} NPV (P10 {short_money(p10)}, P90 {short_money(p90)}), "
            f"probability of a loss {chance(p_loss)}")


@dataclass(frozen=True)
class BaselineGroup:
    """A market's scenarios measured against one baseline ("none" or the running program's
    name), ranked by NPV P50 in the reporting currency (ranks from 1 within the group)."""

    market: str
    baseline: str
    ranking: tuple[RankEntry, ...]
    runs: tuple[ScenarioRun, ...]  #: the ranking's scenarios, same order

    @property
    def best(self) -> RankEntry:
        return self.ranking[0]

    @property
    def pays(self) -> bool:
        """The best design's NPV P50 is not negative (otherwise the market keeps its baseline)."""
        return self.best.npv_p50 is not None and self.best.npv_p50 >= 0

    @property
    def keep(self) -> str:
        return "no program" if self.baseline == "none" else f"keep {baseline_words(self.baseline)}"

    @property
    def choice(self) -> str:
        """What the market does: its best design in words, or what it keeps."""
        return in_words(self.runs[0].design) if self.pays else self.keep

    def verdict(self, currency: str) -> str:
        b, design = self.best, in_words(self.runs[0].design)
        if self.pays:
            return (f"{market_words(self.market)}: {design} beats {baseline_words(self.baseline)} by "
                    + npv_words(b.npv_p50, b.npv_p10, b.npv_p90, b.probability_npv_negative, currency))
        return (f"{market_words(self.market)}: no design pays: keep {baseline_words(self.baseline)} "
                f"(best: {design}, NPV P50 {short_money(b.npv_p50, currency)}, "
                f"probability of a loss {chance(b.probability_npv_negative)})")


def baseline_groups(study: Study) -> list[BaselineGroup]:
    """The scenarios grouped by (market, baseline): markets in order of first appearance, a
    market's baselines likewise; within a group, highest NPV P50 first (a missing P50 last,
    ties in the study's ranking order). NPVs against different baselines answer different
    questions, so they are only ranked within a group."""
    keys: dict[tuple[str, str], list[RankEntry]] = {(s.market, s.baseline): [] for s in study.scenarios}
    for r in study.ranking:
        s = study.scenario(r.scenario)
        keys[(s.market, s.baseline)].append(r)
    out = []
    for (market, baseline), entries in sorted(keys.items(), key=lambda kv: study.markets.index(kv[0][0])):
        if not entries:  # a scenario left out of the ranking
            continue
        entries = sorted(entries, key=lambda r: (r.npv_p50 is None, -(r.npv_p50 or 0.0)))
        out.append(BaselineGroup(market, baseline, tuple(replace(r, rank=i + 1) for i, r in enumerate(entries)),
                                 tuple(study.scenario(r.scenario) for r in entries)))
    return out


def plan_groups(study: Study) -> list[BaselineGroup]:
    """Each market's group for the group plan: the one against the program running today (the
    first running-program baseline studied in that market), else the one against no program."""
    plan: dict[str, BaselineGroup] = {}
    for g in baseline_groups(study):
        if g.market not in plan or (plan[g.market].baseline == "none" and g.baseline != "none"):
            plan[g.market] = g
    return list(plan.values())


def verdict_lines(study: Study) -> list[str]:
    """The verdict: one line per (market, baseline) group, then the group plan (its NPV summed
    replication by replication over the markets' choices), then which baseline the plan takes
    where a market was studied against several."""
    cur = study.reporting_currency
    groups, chosen = baseline_groups(study), plan_groups(study)
    lines = [g.verdict(cur) for g in groups]
    plan = rollup(study)
    npv = plan.total.stat("npv")
    choices = "; ".join(f"{market_words(g.market)}: {g.choice}" for g in chosen)
    lines.append(f"Group plan ({choices}): " + (
        npv_words(npv["p50"], npv["p10"], npv["p90"], plan.total.probability_npv_negative, cur) if plan.total.scenarios
        else "nothing to launch, no change to NPV"))
    today = {g.market: g.baseline for g in chosen}
    for g in groups:
        if g.baseline != today[g.market]:
            lines.append(f"{market_words(g.market)} against {baseline_words(g.baseline)} is not in the group plan, "
                         f"which takes its verdict against {baseline_words(today[g.market])}.")
    return lines


# ----------------------------------------------------------------------------- roll-up
def _line(label: str, runs: Sequence[ScenarioRun], n: int, metrics: Sequence[str], currency: str,
          fx: float | None, keep: str = "") -> RollupLine:
    values = {}
    for m in metrics:
        total = np.zeros(n)
        for s in runs:
            v = s.values(m, reporting=True)[:n]
            total += np.array([0.0 if x is None else x for x in v], dtype=float)
        values[m] = total
    return RollupLine(label, tuple(s.id for s in runs), currency, fx, values, keep)


def rollup(study: Study, scenario_ids: Sequence[str] | None = None, *, title: str | None = None,
           metrics: Sequence[str] = ROLLUP_METRICS) -> Rollup:
    """Per-market lines and the group total in the reporting currency.

    ``scenario_ids`` picks one scenario per market; by default the group plan: each market's
    verdict (:func:`plan_groups`), its best design when that pays, else nothing (the market
    keeps what runs today and adds 0 to the total in every replication). The total is summed
    replication by replication (see the module docstring), so its P10/P50/P90 and P(NPV < 0)
    are those of the group total, not sums of the markets' figures.
    """
    if scenario_ids is None:
        groups = plan_groups(study)
        picks = [(g.runs[0], "" if g.pays else g.keep) for g in groups]
        title = title or "Group plan: each market's verdict (its best design when it pays, else what runs today)"
    else:
        picks = [(study.scenario(i), "") for i in scenario_ids]
        markets = [s.market for s, _ in picks]
        if len(set(markets)) != len(markets):
            raise ValueError("a roll-up takes one scenario per market")
        title = title or "Roll-up"
    runs = [s for s, keep in picks if not keep]
    notes = []
    counts = sorted({s.n_replications for s in runs or study.scenarios})
    n = counts[0] if counts else 0
    if len(counts) > 1:
        notes.append(f"scenarios have {', '.join(map(str, counts))} replications; the total uses the first {n} of each")
    seeds = sorted({str((s.manifest.get("arguments") or {}).get("seed")) for s in runs})
    if len(seeds) > 1:
        notes.append(f"scenarios were run with different seeds ({', '.join(seeds)}); replication r of each is still one draw per market")
    lines = tuple(_line(s.market, [] if keep else [s], n, metrics, s.currency, s.fx_to_reporting, keep) for s, keep in picks)
    total = _line("Total", runs, n, metrics, study.reporting_currency, None)
    return Rollup(title, study.reporting_currency, lines, total, n, tuple(metrics), tuple(notes))


def rollups_by_design(study: Study) -> list[Rollup]:
    """For each design run in two or more markets, the roll-up "launch this design in every
    market that studied it" (a market's best-ranked scenario of that design)."""
    out = []
    rank = {r.scenario: r.rank for r in study.ranking}
    for design in sorted({s.design for s in study.scenarios}):
        best: dict[str, ScenarioRun] = {}
        for s in sorted((s for s in study.scenarios if s.design == design), key=lambda s: (rank.get(s.id, 10**9), s.id)):
            best.setdefault(s.market, s)
        if len(best) >= 2:
            ids = [best[m].id for m in study.markets if m in best]
            out.append(rollup(study, ids, title=f"Design {design} in every market that studied it"))
    return out


# ----------------------------------------------------------------------------- inputs
def input_roles(manifest: dict[str, Any]) -> dict[str, str]:
    """Input file -> role (playbook, design, market, baseline) from a run's manifest.

    The manifest lists the input files but not their roles; the resolved playbook names its
    design, market and baseline relative to itself, which identifies them when the run used
    the playbook's own files. A file left over (a design or baseline swapped in by a study)
    takes a role still open: the one whose resolved ``name`` is the file's stem, else in the
    order design, baseline."""
    inputs = list((manifest.get("inputs") or {}))
    args = manifest.get("arguments") or {}
    resolved = manifest.get("resolved") or {}
    pb = resolved.get("playbook") or {}
    playbook = str(args.get("playbook") or "")
    base = os.path.dirname(playbook)

    def norm(p: str) -> str:
        return os.path.normpath(os.path.join(base, p)) if p else ""

    wanted = {"playbook": os.path.normpath(playbook) if playbook else "",
              "design": norm(str(pb.get("design") or "")),
              "market": norm(str(pb.get("market") or "")),
              "baseline": ""}
    if args.get("baseline") and args.get("baseline") != "none":
        wanted["baseline"] = os.path.normpath(str(args["baseline"]))
    elif pb.get("baseline") and pb.get("baseline") != "none":
        wanted["baseline"] = norm(str(pb["baseline"]))
    roles: dict[str, str] = {}
    for f in inputs:
        nf = os.path.normpath(f)
        role = next((r for r, w in wanted.items() if w and w == nf and r not in roles.values()), None)
        if role is not None:
            roles[f] = role
    open_roles = [r for r in ("design", "baseline", "market", "playbook") if r not in roles.values()
                  and (r != "baseline" or resolved.get("baseline") is not None)]
    names = {"design": (resolved.get("program") or {}).get("name"), "baseline": (resolved.get("baseline") or {}).get("name")}
    for f in inputs:
        if f in roles:
            continue
        stem = Path(f).stem
        role = next((r for r in open_roles if names.get(r) and names[r] == stem), None)
        if role is None:
            role = open_roles[0] if open_roles else "input"
        if role in open_roles:
            open_roles.remove(role)
        roles[f] = role
    return {f: roles[f] for f in inputs}


#: Resolved section of the manifest -> role of the file it comes from.
RESOLVED_ROLES = {"program": "design", "baseline": "baseline", "market": "market", "playbook": "playbook"}
RESOLVED_NOTES = {"program": "in the market's currency, after the playbook's overrides",
                  "baseline": "in the market's currency"}


def flatten(obj: Any, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    """(path, leaf value) pairs of nested dicts/lists in a stable order (dict order as
    written; empty containers are kept as leaves)."""
    if isinstance(obj, dict) and obj:
        out = []
        for k, v in obj.items():
            out += flatten(v, prefix + (k,))
        return out
    if isinstance(obj, (list, tuple)) and obj:
        out = []
        for i, v in enumerate(obj):
            out += flatten(v, prefix + (i,))
        return out
    return [(prefix, obj)]


def _locate(file: str, digest: str, study_dir: Path) -> Path | None:
    """The input file with the recorded SHA-256: relative to the current directory or to the
    study directory or one of its parents."""
    import hashlib

    candidates = [Path(file)] + [d / file for d in [study_dir.resolve(), *study_dir.resolve().parents]]
    for p in candidates:
        try:
            if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == digest:
                return p
        except OSError:
            continue
    return None


@dataclass(frozen=True)
class ResolvedParameter:
    scenario: str
    role: str
    file: str
    field: str
    value: Any
    line: int | None
    note: str

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else (f"{self.file} (default)" if self.file else "")


def resolved_parameters(study: Study) -> list[ResolvedParameter]:
    """Every resolved parameter of every scenario (design, baseline, market, playbook), with
    the file it comes from and, when that file is found with the SHA-256 the manifest
    recorded, the line where it is written (None: not written there, the default applies, or
    the file was not found)."""
    from simulator.specs.yamlio import read_yaml

    out: list[ResolvedParameter] = []
    for s in study.scenarios:
        roles = input_roles(s.manifest)
        by_role = {r: f for f, r in roles.items()}
        lines_of: dict[str, Any] = {}
        for f, digest in (s.manifest.get("inputs") or {}).items():
            p = _locate(f, digest, study.path)
            if p is not None:
                try:
                    lines_of[f] = read_yaml(p, display=f).lines
                except Exception:  # noqa: BLE001 - line numbers are a convenience
                    pass
        resolved = s.manifest.get("resolved") or {}
        for section, value in resolved.items():
            role = RESOLVED_ROLES.get(section, "")
            file = by_role.get(role, "")
            note = RESOLVED_NOTES.get(section, "")
            if value is None:
                out.append(ResolvedParameter(s.id, role or section, file, section, None, None, "none"))
                continue
            if not isinstance(value, (dict, list)):
                out.append(ResolvedParameter(s.id, "resolution", "", section, value, None, ""))
                continue
            lm = lines_of.get(file)
            for path, leaf in flatten(value):
                line = None
                if lm is not None:
                    line = lm.lines.get(tuple(path))
                out.append(ResolvedParameter(s.id, role, file, ".".join(map(str, path)), leaf, line, note))
    return out


# ----------------------------------------------------------------------------- frames for figures
def cash_flow_bands(study: Study) -> pd.DataFrame:
    """Cumulative incremental cash flow per scenario and month, P10/P50/P90 over replications,
    in the reporting currency (from ``monthly_replications``, difference rows).

    Columns: scenario, month, period, p10, p50, p90."""
    parts = []
    for s in study.ranked_scenarios:
        d = s.rows("difference", replications=True)
        wide = d.pivot(index="month", columns="replication", values="cumulative_cash_flow").sort_index()
        q = np.percentile(wide.to_numpy(dtype=float) * s.fx_to_reporting, QUANTILES, axis=1)
        periods = d.drop_duplicates("month").set_index("month")["period"].reindex(wide.index)
        parts.append(pd.DataFrame({"scenario": s.id, "month": wide.index.to_numpy(), "period": periods.to_numpy(),
                                   "p10": q[0], "p50": q[1], "p90": q[2]}))
    return pd.concat(parts, ignore_index=True)


def npv_samples(study: Study) -> pd.DataFrame:
    """Each replication's NPV per scenario in the reporting currency (scenario, replication, npv)."""
    rows = []
    for s in study.ranked_scenarios:
        for r, v in enumerate(s.values("npv", reporting=True)):
            if v is not None:
                rows.append((s.id, r, v))
    return pd.DataFrame(rows, columns=["scenario", "replication", "npv"])


def tier_members(study: Study) -> pd.DataFrame:
    """Members by tier at month end in the design run, mean over replications
    (scenario, month, tier, members); a design without tiers has one tier, ``members``."""
    parts = []
    for s in study.ranked_scenarios:
        d = s.rows("design")
        tiers = s.tiers
        if not tiers:
            parts.append(pd.DataFrame({"scenario": s.id, "month": d["month"], "tier": "members", "members": d["members"]}))
            continue
        for c in tiers:
            parts.append(pd.DataFrame({"scenario": s.id, "month": d["month"], "tier": c[len("members_tier_"):],
                                       "members": d[c]}))
    return pd.concat(parts, ignore_index=True)


def points_liability(study: Study) -> pd.DataFrame:
    """Points outstanding and the IFRS 15 liability at month end, design and baseline runs,
    mean over replications; liability in the reporting currency.

    Columns: scenario, run, month, points_outstanding, liability_closing."""
    parts = []
    for s in study.ranked_scenarios:
        for run in ("design", "baseline"):
            d = s.rows(run)
            parts.append(pd.DataFrame({"scenario": s.id, "run": run, "month": d["month"],
                                       "points_outstanding": d["points_outstanding"],
                                       "liability_closing": d["liability_closing"] * s.fx_to_reporting}))
    return pd.concat(parts, ignore_index=True)


def cost_breakdown(study: Study) -> pd.DataFrame:
    """Incremental program cost by group per scenario over the horizon, mean over
    replications (means add up to the mean total, quantiles would not), reporting currency;
    fees received appear as a negative group. Columns: scenario, group, amount."""
    rows = []
    for s in study.ranked_scenarios:
        for metric, label in COST_GROUPS:
            rows.append((s.id, label, s.mean(metric, reporting=True)))
        rows.append((s.id, "fees received", -s.mean(FEE_INCOME, reporting=True)))
    return pd.DataFrame(rows, columns=["scenario", "group", "amount"])


def margin_sources(study: Study) -> pd.DataFrame:
    """Where members' apparent extra spend comes from, per scenario, mean over replications,
    reporting currency: naive uplift = true lift + self-selection; with the incremental gross
    margin and incremental revenue for reference.

    Columns: scenario, true_lift, self_selection, naive, incremental_revenue, incremental_gross_margin."""
    rows = []
    for s in study.ranked_scenarios:
        rows.append((s.id, s.mean("member_true_lift_revenue", reporting=True),
                     s.mean("member_self_selection_revenue", reporting=True),
                     s.mean("member_naive_uplift_revenue", reporting=True),
                     s.mean("incremental_revenue", reporting=True),
                     s.mean("incremental_gross_margin", reporting=True)))
    return pd.DataFrame(rows, columns=["scenario", "true_lift", "self_selection", "naive", "incremental_revenue",
                                       "incremental_gross_margin"])


def migration(s: ScenarioRun) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """(segments, members' monthly transition matrix in the design run, same customers in the
    baseline run) from ``summary.json``, or None when the run has none."""
    t = s.summary.get("transitions") or {}
    if not t.get("segments") or t.get("members_design") is None or t.get("members_baseline") is None:
        return None
    return list(t["segments"]), np.array(t["members_design"], dtype=float), np.array(t["members_baseline"], dtype=float)


def tornado_frame(study: Study, scenario_id: str) -> pd.DataFrame:
    """Tornado bars of a scenario, widest first, NPVs in the reporting currency."""
    bars = study.tornado_in_reporting(scenario_id)
    return pd.DataFrame([(b.parameter, b.low, b.high, b.npv_low, b.npv_high, b.npv_base) for b in bars],
                        columns=["parameter", "low", "high", "npv_low", "npv_high", "npv_base"])
