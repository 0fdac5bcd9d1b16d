"""A run's results: replications of a scenario turned into the monthly table, the summary a
strategist reads first, and the files scripts rely on.

Definitions (the same in README and ``docs/model.md``):

* program cost (P&L) = reward + benefit + campaign + enrolment-drive + fixed (running and
  amortised set-up) + per-member costs - membership fees;
* program cash cost = the same with the set-up paid when the program launches instead of
  amortised;
* incremental X = X(design) - X(baseline), month by month, on the same agents;
* incremental cash flow = incremental gross margin - incremental program cash cost;
* ROI = (incremental gross margin - incremental program cost) / incremental program cost;
* NPV, payback month and peak cash need of the incremental cash flow (see
  :mod:`simulator.finance.metrics`), at the market's discount rate;
* breakage rate = points expired / (points redeemed for rewards + points expired), design run;
* true lift = what the design's members spent in the design run minus what the same
  customers spent in the baseline run; naive member uplift = members' spend minus what they
  would spend at the non-members' average; self-selection = naive uplift - true lift
  (Nastasoiu et al. 2021: most of the apparent effect of a program is selection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from simulator.engine.simulation import ReplicationResult
from simulator.finance import ifrs15, metrics
from simulator.scenario import Scenario

#: Column order of monthly.csv (README documents each, in this order); tier columns follow members.
MONTHLY_COLUMNS = (
    "scenario", "month", "period", "program_active",
    "customers", "active", "purchases", "revenue", "gross_margin",
    "members", "new_members", "left_members", "referrals", "nonmembers", "member_revenue",
    "member_revenue_counterfactual", "nonmember_revenue", "upgrades", "demotions",
    "points_opening", "points_issued", "points_issued_purchase", "points_issued_bonus", "points_issued_migration",
    "points_redeemed", "points_redeemed_rewards", "points_redeemed_migration", "points_expired",
    "points_outstanding", "points_closing", "redemptions", "vouchers_issued", "vouchers_used",
    "reward_cost", "reward_face_value", "benefit_cost", "campaign_cost", "campaign_contacts", "enrolment_cost",
    "fixed_cost", "setup_amortisation", "setup_cash", "member_cost", "fee_income", "program_cost", "program_cash_cost",
    "sales_with_points", "value_per_point", "expected_breakage",
    "liability_opening", "liability_deferred", "liability_recognised", "liability_recognised_redemption",
    "liability_recognised_breakage", "liability_closing", "cash_flow", "cumulative_cash_flow",
)

COST_GROUPS = ("reward_cost", "benefit_cost", "campaign_cost", "enrolment_cost", "fixed_cost", "member_cost")
QUANTILES = (10, 50, 90)


def simulated_breakage(df: pd.DataFrame) -> float:
    """Points expired / (points redeemed for rewards + points expired) over the run."""
    redeemed, expired = float(df["points_redeemed_rewards"].sum()), float(df["points_expired"].sum())
    return expired / (redeemed + expired) if redeemed + expired > 0 else 0.0


def add_finance(df: pd.DataFrame, *, expected_breakage: float | None, value_per_point: float | None) -> pd.DataFrame:
    """Program cost, cash cost and the IFRS 15 liability roll-forward of one run's table.

    ``expected_breakage`` None uses the run's own simulated breakage (the projection is the
    entity's estimate)."""
    df = df.copy()
    if expected_breakage is None:
        expected_breakage = simulated_breakage(df)
    df["expected_breakage"] = expected_breakage
    df["program_cost"] = df[list(COST_GROUPS)].sum(axis=1) - df["fee_income"]
    df["program_cash_cost"] = df["program_cost"] - df["setup_amortisation"] + df["setup_cash"]
    vpp = df["value_per_point"].to_numpy() if value_per_point is None else np.full(len(df), value_per_point)
    bonus = df["points_issued_bonus"].to_numpy()
    roll = ifrs15.roll_forward(df["sales_with_points"].to_numpy(), df["points_issued_purchase"].to_numpy(), bonus,
                               df["points_redeemed_rewards"].to_numpy(), vpp, expected_breakage,
                               opening_points=float(df["points_opening"].iloc[0]) if len(df) else 0.0)
    for k, v in roll.items():
        df[k] = v
    df["points_closing"] = df["points_outstanding"]
    return df


@dataclass
class RunResult:
    """All replications of one scenario."""

    scenario: Scenario
    replications: list[ReplicationResult]
    agents: int
    seed: int

    def __post_init__(self) -> None:
        acc = self.scenario.playbook.accounting
        self.frames: list[dict[str, pd.DataFrame]] = []
        for rep in self.replications:
            d = add_finance(rep.design, expected_breakage=acc.expected_breakage, value_per_point=acc.value_per_point)
            b = add_finance(rep.baseline, expected_breakage=acc.expected_breakage, value_per_point=acc.value_per_point)
            cols = [c for c in d.columns if c not in ("month", "period") and pd.api.types.is_numeric_dtype(d[c])]
            diff = d[["month", "period"]].copy()
            diff[cols] = d[cols].to_numpy() - b.reindex(columns=cols, fill_value=0.0).to_numpy()
            diff["cash_flow"] = diff["gross_margin"] - diff["program_cash_cost"]
            diff["cumulative_cash_flow"] = diff["cash_flow"].cumsum()
            for f in (d, b):
                f["cash_flow"] = 0.0
                f["cumulative_cash_flow"] = 0.0
            self.frames.append({"design": d, "baseline": b, "difference": diff})

    # ------------------------------------------------------------------ tables
    def monthly_all(self) -> pd.DataFrame:
        """Every replication: columns ``replication`` then :data:`MONTHLY_COLUMNS`."""
        parts = []
        for r, fr in enumerate(self.frames):
            for name in ("design", "baseline", "difference"):
                f = fr[name].copy()
                f.insert(0, "scenario", name)
                f.insert(0, "replication", r)
                parts.append(f)
        allf = pd.concat(parts, ignore_index=True).fillna(0.0)
        tiers = [c for c in allf.columns if c.startswith("members_tier_")]
        order = ["replication"]
        for c in MONTHLY_COLUMNS:
            order.append(c)
            if c == "members":
                order += tiers
        order += [c for c in allf.columns if c not in order]
        return allf[[c for c in order if c in allf.columns]]

    def monthly(self) -> pd.DataFrame:
        """Mean over replications for each (scenario, month)."""
        allf = self.monthly_all()
        num = [c for c in allf.columns if c not in ("replication", "scenario", "month", "period")]
        g = allf.groupby(["scenario", "month", "period"], sort=False)[num].mean().reset_index()
        order = {"design": 0, "baseline": 1, "difference": 2}
        return g.sort_values(["scenario", "month"], key=lambda s: s.map(order) if s.name == "scenario" else s).reset_index(drop=True)

    # ------------------------------------------------------------------ summary
    def replication_metrics(self) -> list[dict[str, Any]]:
        rate = self.scenario.market.economics.discount_rate
        out = []
        for fr in self.frames:
            d, diff = fr["design"], fr["difference"]
            inc_margin = float(diff["gross_margin"].sum())
            inc_cost = float(diff["program_cost"].sum())
            cf = diff["cash_flow"].to_numpy()
            redeemed = float(d["points_redeemed_rewards"].sum())
            expired = float(d["points_expired"].sum())
            members = d["members"].to_numpy()
            nonmembers = d["nonmembers"].to_numpy()
            nonmember_avg = np.divide(d["nonmember_revenue"].to_numpy(), nonmembers, out=np.zeros(len(d)), where=nonmembers > 0)
            naive = float((d["member_revenue"].to_numpy() - members * nonmember_avg).sum())
            true_lift = float((d["member_revenue"] - d["member_revenue_counterfactual"]).sum())
            rev = float(d["revenue"].sum())
            mrev = float(d["member_revenue"].sum())
            row: dict[str, Any] = {
                "incremental_revenue": float(diff["revenue"].sum()),
                "incremental_gross_margin": inc_margin,
                "incremental_program_cost": inc_cost,
                "incremental_net_margin": inc_margin - inc_cost,
                "roi": metrics.roi(inc_margin, inc_cost),
                "npv": metrics.npv(cf, rate),
                "payback_month": metrics.payback_month(cf),
                "peak_cash_need": metrics.peak_cash_need(cf),
                "breakage_rate": expired / (redeemed + expired) if redeemed + expired > 0 else None,
                "expected_breakage_used": float(d["expected_breakage"].iloc[0]) if len(d) else None,
                "reward_cost_pct_sales": float(d["reward_cost"].sum()) / rev if rev > 0 else None,
                "reward_cost_pct_member_sales": float(d["reward_cost"].sum()) / mrev if mrev > 0 else None,
                "members_end": float(members[-1]) if len(members) else 0.0,
                "points_outstanding_end": float(d["points_outstanding"].iloc[-1]) if len(d) else 0.0,
                "liability_end": float(d["liability_closing"].iloc[-1]) if len(d) else 0.0,
                "peak_liability": float(d["liability_closing"].max()) if len(d) else 0.0,
                "member_true_lift_revenue": true_lift,
                "member_naive_uplift_revenue": naive,
                "member_self_selection_revenue": naive - true_lift,
            }
            for g in COST_GROUPS + ("fee_income",):
                row[f"incremental_{g}"] = float(diff[g].sum())
            out.append(row)
        for row, rep in zip(out, self.replications):
            row["parameters"] = dict(rep.parameters)
        return out

    def summary(self) -> dict[str, Any]:
        reps = self.replication_metrics()
        stats: dict[str, Any] = {}
        for key in [k for k in reps[0] if k != "parameters"]:
            vals = [r[key] for r in reps]
            if key == "payback_month":
                # a replication that never pays back is later than any month: it counts, as
                # infinity, and a percentile that lands on it is null ("never")
                arr = np.array([np.inf if v is None else v for v in vals], dtype=float)
                entry = {"never": int(np.isinf(arr).sum())}
                for q in QUANTILES:
                    v = float(np.percentile(arr, q, method="inverted_cdf"))
                    entry[f"p{q}"] = None if np.isinf(v) else v
                stats[key] = entry
                continue
            num = np.array([v for v in vals if v is not None], dtype=float)
            entry: dict[str, Any] = {"missing": len(vals) - len(num)}
            if len(num):
                entry.update({f"p{q}": float(np.percentile(num, q)) for q in QUANTILES})
                entry["mean"] = float(num.mean())
            stats[key] = entry
        npvs = np.array([r["npv"] for r in reps])
        sc = self.scenario
        return {
            "playbook": sc.playbook.name,
            "design": sc.program.name,
            "baseline": sc.baseline.name if sc.baseline else "none",
            "market": sc.market.name,
            "currency": sc.market.currency,
            "start": self.frames[0]["design"]["period"].iloc[0],
            "horizon_months": sc.playbook.horizon_months,
            "agents": self.agents,
            "customers": sc.market.customers,
            "scale": self.replications[0].scale,
            "scaling": f"each simulated agent stands for {self.replications[0].scale:.4g} customers; counts and money are scaled to the market's {sc.market.customers:,} customers",
            "replications": len(reps),
            "seed": self.seed,
            "expected_breakage": ("assumed" if sc.playbook.accounting.expected_breakage is not None else "simulated"),
            "probability_npv_negative": float((npvs < 0).mean()),
            "metrics": stats,
            "per_replication": reps,
            "transitions": self.transition_matrices(),
        }

    def transition_matrices(self) -> dict[str, Any]:
        """Monthly segment transitions of the design's members, in the design run and (same
        customers) in the baseline run, pooled over replications, rows normalised."""
        names = list(self.scenario.market.segment_names)
        out: dict[str, Any] = {"segments": names}
        for key, attr in (("members_design", "transitions_design"), ("members_baseline", "transitions_baseline")):
            counts = sum(getattr(r, attr) for r in self.replications).astype(float)
            rows = counts.sum(axis=1, keepdims=True)
            out[key] = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0).round(6).tolist()
        return out
