"""A run's results: replications of a scenario turned into the monthly table, the summary a
strategist reads first, and the files scripts rely on.

Definitions (the same in README and ``docs/model.md``):

* program cost (P&L) = reward + benefit + campaign + enrolment-drive + fixed (running and
  amortised set-up) + per-member costs + the movement of the provision for bonus points
  (:mod:`simulator.finance.ifrs15`) - membership fees earned (net of VAT, over the months they
  pay for);
* program cash cost = the same with the set-up paid when the program launches instead of
  amortised, rewards when redeemed (no provision) and fees when received (net of VAT);
* obligation left at the horizon (:mod:`simulator.finance.obligation`) = expected cost of
  redeeming the points still outstanding + fees received for months after the horizon;
* incremental X = X(design) - X(baseline), month by month, on the same agents;
* incremental cash flow = incremental gross margin - incremental program cash cost, less the
  incremental obligation left at the horizon in the last month;
* NPV, payback month and peak cash need of the incremental cash flow (see
  :mod:`simulator.finance.metrics`), at the market's discount rate;
* ROI = (sum of the incremental cash flow) / (incremental program cash cost + incremental
  obligation left at the horizon): NPV's flows, undiscounted, so it counts the whole set-up
  even when the horizon is shorter than its amortisation, and the points still owed;
* breakage rate = points never redeemed (expired, or in cash-back vouchers never used) /
  (points redeemed for rewards + points expired), design run, months of the design;
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

from simulator.engine.simulation import ReplicationResult, month_index
from simulator.finance import ifrs15, metrics, obligation
from simulator.finance.statements import COST_GROUPS
from simulator.scenario import Scenario

#: Column order of monthly.csv (README documents each, in this order); tier columns follow members.
MONTHLY_COLUMNS = (
    "scenario", "month", "period", "currency", "program_active",
    "customers", "active", "purchases", "revenue", "gross_margin",
    "members", "new_members", "left_members", "referrals", "nonmembers", "member_revenue",
    "member_revenue_counterfactual", "nonmember_revenue", "upgrades", "demotions",
    "points_opening", "points_issued", "points_issued_purchase", "points_issued_bonus", "points_issued_migration",
    "points_redeemed", "points_redeemed_rewards", "points_redeemed_migration", "points_expired",
    "points_outstanding", "points_closing", "redemptions", "vouchers_issued", "vouchers_used",
    "reward_cost", "reward_face_value", "benefit_cost", "campaign_cost", "campaign_contacts", "enrolment_cost",
    "fixed_cost", "setup_amortisation", "setup_cash", "member_cost", "fee_income", "program_cost", "program_cash_cost",
    "fee_revenue", "fee_unearned", "points_voucher_lapsed",
    "sales_with_points", "value_per_point", "cost_per_point", "expected_breakage",
    "liability_opening", "liability_deferred", "liability_converted_in", "liability_converted_out",
    "liability_recognised", "liability_recognised_redemption", "liability_recognised_breakage", "liability_closing",
    "provision_opening", "provision_charged", "provision_used", "provision_remeasured", "provision_closing",
    "obligation_points", "obligation_fees", "horizon_obligation", "horizon_charge", "cash_flow", "cumulative_cash_flow",
)



def _phases(df: pd.DataFrame, phase: np.ndarray) -> list[np.ndarray]:
    """Month masks of each program phase (the programs a run goes through, in order)."""
    return [phase == p for p in dict.fromkeys(phase.tolist()) if p >= 0]


def simulated_breakage(df: pd.DataFrame, months: np.ndarray | None = None) -> float | None:
    """Points that are never redeemed / points consumed, over the run (or ``months``):
    (expired + in cash-back vouchers never used) / (redeemed for rewards + expired); None when
    no point was consumed."""
    d = df if months is None else df[months]
    redeemed, expired = float(d["points_redeemed_rewards"].sum()), float(d["points_expired"].sum())
    lapsed = float(d["points_voucher_lapsed"].sum())
    return (expired + lapsed) / (redeemed + expired) if redeemed + expired > 0 else None


def realised_per_point(df: pd.DataFrame, months: np.ndarray) -> tuple[float, float]:
    """Face value and cost (net of VAT) per point redeemed for rewards taken, over ``months``;
    the program's nominal figures where nothing was redeemed."""
    d = df[months]
    taken = float(d["points_redeemed_rewards"].sum() - d["points_voucher_lapsed"].sum())
    if taken > 0:
        return float(d["reward_face_value"].sum()) / taken, float(d["reward_cost"].sum()) / taken
    return float(d["value_per_point"].iloc[0]), float(d["cost_per_point"].iloc[0])


def add_finance(df: pd.DataFrame, *, phase: np.ndarray, expected_breakage: float | None = None,
                value_per_point: float | None = None, design_phase: int = 1,
                known: dict[int, tuple[float, float, float]] | None = None) -> pd.DataFrame:
    """Program cost, cash cost, the IFRS 15 liability and bonus-points provision, and the
    obligation left at the horizon of one run's table.

    ``phase`` gives each month's program (-1 none, 0 the program running at the start, 1 the
    design). Per phase, the value and cost of a point are what its redemptions realise and the
    expected breakage is the phase's simulated breakage; ``expected_breakage`` and
    ``value_per_point`` (the playbook's accounting assumptions) replace them for the design.
    ``known`` gives a phase's (value, cost, breakage) estimated elsewhere (the running
    program's, from the baseline run, which runs it over the whole horizon: one estimate for
    one program in both runs). The points held at the start are the running program's, valued
    at its SSP (the first month's program when no estimate is given)."""
    df = df.copy()
    T = len(df)
    b = np.zeros(T)
    v = np.zeros(T)
    c = np.zeros(T)
    for months in _phases(df, phase):
        p = int(phase[months][0])
        if known and p in known:
            v[months], c[months], b[months] = known[p]
            continue
        is_design = p == design_phase
        vp, cp = realised_per_point(df, months)
        b[months] = expected_breakage if is_design and expected_breakage is not None else (
            simulated_breakage(df, months) or 0.0)
        v[months] = value_per_point if is_design and value_per_point is not None else vp
        c[months] = cp
    df["value_per_point"] = v
    df["cost_per_point"] = c
    df["expected_breakage"] = b
    roll = ifrs15.roll_forward(
        sales_with_points=df["sales_with_points"].to_numpy(), purchase_points=df["points_issued_purchase"].to_numpy(),
        bonus_points=df["points_issued_bonus"].to_numpy(),
        redeemed=(df["points_redeemed_rewards"] - df["points_voucher_lapsed"]).to_numpy(),
        lapsed=df["points_voucher_lapsed"].to_numpy(), expired=df["points_expired"].to_numpy(),
        converted_out=df["points_redeemed_migration"].to_numpy(), converted_in=df["points_issued_migration"].to_numpy(),
        value_per_point=v, cost_per_point=c, expected_breakage=b,
        opening_points=float(df["points_opening"].iloc[0]) if T else 0.0,
        opening_ssp=known[0][0] * (1.0 - known[0][2]) if known and 0 in known else None)
    for k, col in roll.items():
        df[k] = col
    # P&L: set-up amortised, fees as earned, bonus points expensed when granted (the provision's
    # movement); cash: set-up when paid, fees when received, rewards when redeemed
    groups = df[list(COST_GROUPS)].sum(axis=1)
    df["program_cost"] = groups + (df["provision_closing"] - df["provision_opening"]) - df["fee_revenue"]
    df["program_cash_cost"] = groups - df["setup_amortisation"] + df["setup_cash"] - df["fee_income"]
    for col in ("obligation_points", "obligation_fees", "horizon_charge"):
        df[col] = 0.0
    if T:
        last = df.index[-1]
        points = obligation.horizon_obligation(float(df["points_outstanding"].iloc[-1]), b[-1], c[-1])
        df.loc[last, "obligation_points"] = points
        df.loc[last, "obligation_fees"] = float(df["fee_unearned"].iloc[-1])
        # the P&L's view: bonus points are provided for already, fees received for later
        # months were never booked as revenue; left to charge: the points earned with sales
        df.loc[last, "horizon_charge"] = points - float(df["provision_closing"].iloc[-1])
    df["horizon_obligation"] = df["obligation_points"] + df["obligation_fees"]
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
        phase_d, phase_b = self.phases()
        self.frames: list[dict[str, pd.DataFrame]] = []
        for rep in self.replications:
            b = add_finance(rep.baseline, phase=phase_b)
            # the points held at the start, and the months before the launch, are the running
            # program's in both runs: one value, cost and breakage for it
            running = {0: tuple(float(b[k].iloc[0]) for k in ("value_per_point", "cost_per_point", "expected_breakage"))
                       } if len(b) and phase_b[0] == 0 else None
            d = add_finance(rep.design, phase=phase_d, expected_breakage=acc.expected_breakage,
                            value_per_point=acc.value_per_point, known=running)
            cols = [c for c in d.columns if c not in ("month", "period") and pd.api.types.is_numeric_dtype(d[c])]
            diff = d[["month", "period"]].copy()
            diff[cols] = d[cols].to_numpy() - b.reindex(columns=cols, fill_value=0.0).to_numpy()
            diff["cash_flow"] = diff["gross_margin"] - diff["program_cash_cost"] - diff["horizon_obligation"]
            diff["cumulative_cash_flow"] = diff["cash_flow"].cumsum()
            for f in (d, b):
                f["cash_flow"] = 0.0
                f["cumulative_cash_flow"] = 0.0
            self.frames.append({"design": d, "baseline": b, "difference": diff})

    def phases(self) -> tuple[np.ndarray, np.ndarray]:
        """Each month's program in the design and the baseline run: -1 none, 0 the program
        running at the start (the baseline design), 1 the design (from its launch)."""
        pb = self.scenario.playbook
        H = pb.horizon_months
        launch = month_index(pb.start or pb.launch, pb.launch)
        before = 0 if self.scenario.baseline is not None else -1
        design = np.where(np.arange(H) >= launch, 1, before)
        return design, np.full(H, before)

    # ------------------------------------------------------------------ tables
    def monthly_all(self) -> pd.DataFrame:
        """Every replication: columns ``replication`` then :data:`MONTHLY_COLUMNS`."""
        parts = []
        for r, fr in enumerate(self.frames):
            for name in ("design", "baseline", "difference"):
                f = fr[name].copy()
                f.insert(0, "scenario", name)
                f.insert(0, "replication", r)
                f.insert(4, "currency", self.scenario.market.currency)  # of every money column
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
        keys = ["scenario", "month", "period", "currency"]
        num = [c for c in allf.columns if c not in ["replication"] + keys]
        g = allf.groupby(keys, sort=False)[num].mean().reset_index()
        order = {"design": 0, "baseline": 1, "difference": 2}
        return g.sort_values(["scenario", "month"], key=lambda s: s.map(order) if s.name == "scenario" else s).reset_index(drop=True)

    def stores_all(self) -> pd.DataFrame | None:
        """Every replication's months by home store (:mod:`simulator.engine.stores`): columns
        ``replication``, ``scenario`` (design, baseline, difference), ``store``, ``month``,
        ``period``, ``currency``, then the figures; None when the market has no store network."""
        if not self.replications or self.replications[0].stores_design is None:
            return None
        parts = []
        for r, rep in enumerate(self.replications):
            d, b = rep.stores_design, rep.stores_baseline
            num = [c for c in d.columns if c not in ("store", "month", "period")]
            diff = d.copy()
            diff[num] = d[num].to_numpy() - b[num].to_numpy()
            for name, f in (("design", d), ("baseline", b), ("difference", diff)):
                f = f.copy()
                f.insert(0, "scenario", name)
                f.insert(0, "replication", r)
                f.insert(5, "currency", self.scenario.market.currency)
                parts.append(f)
        return pd.concat(parts, ignore_index=True)

    def stores(self) -> pd.DataFrame | None:
        """Mean over replications for each (scenario, store, month) of :meth:`stores_all`; the
        member revenue share is the mean members' revenue over the mean revenue (design and
        baseline) and the difference of the two (difference)."""
        allf = self.stores_all()
        if allf is None:
            return None
        keys = ["scenario", "store", "month", "period", "currency"]
        num = [c for c in allf.columns if c not in ["replication"] + keys]
        g = allf.groupby(keys, sort=False)[num].mean().reset_index()
        for name in ("design", "baseline"):
            m = g["scenario"] == name
            rev = g.loc[m, "revenue"].to_numpy()
            g.loc[m, "member_revenue_share"] = np.divide(g.loc[m, "member_revenue"].to_numpy(), rev,
                                                         out=np.zeros(rev.shape), where=rev > 0)
        d, b = (g[g["scenario"] == n]["member_revenue_share"].to_numpy() for n in ("design", "baseline"))
        g.loc[g["scenario"] == "difference", "member_revenue_share"] = d - b
        return g

    # ------------------------------------------------------------------ summary
    def discount_rate(self, r: int) -> float:
        """The annual discount rate of replication r (drawn when the market gives a range)."""
        rate = self.scenario.market.economics.discount_rate
        if isinstance(rate, (int, float)):
            return float(rate)
        name = f"{self.scenario.market.name}.economics.discount_rate"
        return float(self.replications[r].parameters.get(name, rate.central))

    def replication_metrics(self) -> list[dict[str, Any]]:
        live = self.phases()[0] == 1  # the design's months
        tax = self.scenario.playbook.accounting.tax_rate
        out = []
        for r, fr in enumerate(self.frames):
            rate = self.discount_rate(r)
            d, diff = fr["design"], fr["difference"]
            inc_margin = float(diff["gross_margin"].sum())
            inc_obligation = float(diff["horizon_obligation"].sum())
            # what NPV counts, undiscounted: set-up when paid, fees when received, the
            # obligation left at the horizon
            inc_cost = float(diff["program_cash_cost"].sum()) + inc_obligation
            cf = diff["cash_flow"].to_numpy()
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
                "discount_rate": rate,
                "npv_rate_minus_2pt": metrics.npv(cf, max(rate - 0.02, 0.0)),
                "npv_rate_plus_2pt": metrics.npv(cf, rate + 0.02),
                "payback_month": metrics.payback_month(cf),
                "peak_cash_need": metrics.peak_cash_need(cf),
                "incremental_horizon_obligation": inc_obligation,
                "incremental_pnl_cost": float(diff["program_cost"].sum()),
                "breakage_rate": simulated_breakage(d, live),
                "expected_breakage_used": float(d["expected_breakage"].iloc[-1]) if len(d) else None,
                "value_per_point_used": float(d["value_per_point"].iloc[-1]) if len(d) else None,
                "reward_cost_pct_sales": float(d["reward_cost"].sum()) / rev if rev > 0 else None,
                "reward_cost_pct_member_sales": float(d["reward_cost"].sum()) / mrev if mrev > 0 else None,
                "members_end": float(members[-1]) if len(members) else 0.0,
                "points_outstanding_end": float(d["points_outstanding"].iloc[-1]) if len(d) else 0.0,
                "liability_end": float(d["liability_closing"].iloc[-1] + d["provision_closing"].iloc[-1]) if len(d) else 0.0,
                "peak_liability": float((d["liability_closing"] + d["provision_closing"]).max()) if len(d) else 0.0,
                "member_true_lift_revenue": true_lift,
                "member_naive_uplift_revenue": naive,
                "member_self_selection_revenue": naive - true_lift,
            }
            if tax is not None:
                # tax on each month's incremental P&L result (the points still to be redeemed at
                # the horizon are deductible as the costs they stand for will be); a loss saves tax
                taxable = (diff["gross_margin"] - diff["program_cost"] - diff["horizon_charge"]).to_numpy()
                row["npv_after_tax"] = metrics.npv(cf - tax * taxable, rate)
            for g in COST_GROUPS + ("fee_income",):
                row[f"incremental_{g}"] = float(diff[g].sum())
            # the cost groups as NPV counts them: the set-up when paid (in full, even when the
            # horizon is shorter than its amortisation)
            row["incremental_fixed_cost"] = float((diff["fixed_cost"] - diff["setup_amortisation"] + diff["setup_cash"]).sum())
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
                entry = {"never": sum(v is None for v in vals)}
                entry.update({k: v for k, v in metrics.quantiles(vals, none_is_inf=True).items() if k != "mean"})
                stats[key] = entry
                continue
            entry: dict[str, Any] = {"missing": sum(v is None for v in vals)}
            if entry["missing"] < len(vals):
                entry.update(metrics.quantiles(vals))
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
