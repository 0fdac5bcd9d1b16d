"""A search file (``markets/<m>/*_search.yaml``): which design maximises value under finance's
constraints (:mod:`simulator.optimise` runs it).

It names

* ``variables``: fields of the design as the playbook runs it (``earn.points_per_unit``,
  ``tiers.levels[1].threshold``, ``rewards.catalogue[0].points_price``, ``expiry.months``,
  ``rewards.cashback.voucher_value``, ``enrolment.fee.amount``), or of the playbook with the
  prefix ``playbook.`` (``playbook.campaigns[0].lift``), each with ``low`` and ``high`` (and
  optionally ``step`` and ``type``), or with ``choices`` (values the field may take, such as
  ``[as_designed, null]`` for tiers on or off, or expiry policies written out);
* ``objective``: a summary metric and a statistic over replications (NPV P50 by default; P10,
  ``mean_minus_sd`` with ``k``, ``expected_shortfall`` with ``alpha`` are risk-aware);
* ``constraints``: any summary metric, a statistic and a ``max`` or ``min`` bound;
* ``sampler``, ``trials``, ``batch``, ``seed``, the ``racing`` stages and ``marginal_trials``
  (a short search per constraint, its bound relaxed, for its marginal value).

Paths are checked against the design and playbook in :mod:`simulator.optimise` (the design is
known only then); everything else is checked here.
"""

from __future__ import annotations

import re
from typing import Any, Iterator, Literal

from pydantic import Field

from simulator.specs.base import Name, Spec

#: Summary metrics a search may name: every per-replication figure of a run's summary
#: (:meth:`simulator.results.RunResult.replication_metrics`) plus the search's own
#: (:data:`DERIVED_METRICS`) and the probability that NPV is negative.
RUN_METRICS = (
    "npv", "npv_rate_minus_2pt", "npv_rate_plus_2pt", "npv_after_tax", "roi", "payback_month", "peak_cash_need",
    "incremental_revenue", "incremental_gross_margin", "incremental_program_cost", "incremental_net_margin",
    "incremental_pnl_cost", "incremental_horizon_obligation", "incremental_reward_cost", "incremental_benefit_cost",
    "incremental_campaign_cost", "incremental_enrolment_cost", "incremental_fixed_cost", "incremental_member_cost",
    "incremental_fee_income", "breakage_rate", "reward_cost_pct_sales", "reward_cost_pct_member_sales",
    "members_end", "points_outstanding_end", "liability_end", "peak_liability", "member_true_lift_revenue",
    "member_naive_uplift_revenue", "member_self_selection_revenue",
)
#: Metrics only a search computes, from the design run of each replication.
DERIVED_METRICS = {
    "program_cost_pct_sales": "the design's program cost (P&L: rewards, benefits, campaigns, drives, running and "
                              "amortised set-up, per-member costs, bonus-point provision, less fees) / its sales, "
                              "over the horizon",
    "reward_cost_per_member": "the design's reward cost per member per year (reward cost / member-months x 12)",
}
#: Across replications, not per replication: takes no statistic.
PROBABILITY_METRICS = ("probability_npv_negative",)
METRICS = RUN_METRICS + tuple(DERIVED_METRICS) + PROBABILITY_METRICS

STATISTICS = ("p10", "p50", "p90", "mean", "min", "max", "mean_minus_sd", "expected_shortfall")

_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])*(\.[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])*)*$")


def parse_path(text: str) -> tuple[str | int, ...]:
    """``tiers.levels[1].threshold`` -> ``("tiers", "levels", 1, "threshold")``."""
    out: list[str | int] = []
    for part in text.split("."):
        name, *idx = part.split("[")
        out.append(name)
        out.extend(int(i.rstrip("]")) for i in idx)
    return tuple(out)


class Statistic(Spec):
    """A statistic of a metric over replications (all replications on the same seeds)."""

    metric: str = Field("npv", description="a summary metric (`loyalty-sim reference` lists them; e.g. npv, "
                                           "program_cost_pct_sales, peak_liability, members_end, probability_npv_negative)")
    statistic: Literal["p10", "p50", "p90", "mean", "min", "max", "mean_minus_sd", "expected_shortfall"] = Field(
        "p50", description="over replications: a percentile, the mean, mean minus k standard deviations, or the "
                           "expected shortfall (mean of the worst alpha share of replications)")
    k: float = Field(1.0, ge=0, description="standard deviations subtracted by mean_minus_sd")
    alpha: float = Field(0.2, gt=0, le=1, description="share of the worst replications averaged by expected_shortfall "
                                                      "(worst = lowest for a maximised metric)")

    def issues(self) -> Iterator[tuple[tuple, str]]:
        if self.metric not in METRICS:
            from simulator.specs.base import did_you_mean

            yield ("metric",), (f"unknown metric '{self.metric}'{did_you_mean(self.metric, METRICS)} "
                                f"(expected one of: {', '.join(METRICS)})")

    def label(self) -> str:
        if self.metric in PROBABILITY_METRICS:
            return self.metric
        extra = f"_k{self.k:g}" if self.statistic == "mean_minus_sd" else (
            f"_a{self.alpha:g}" if self.statistic == "expected_shortfall" else "")
        return f"{self.metric}_{self.statistic}{extra}"


class Objective(Statistic):
    direction: Literal["maximize", "minimize"] = Field("maximize", description="maximise (NPV) or minimise (a cost)")


class Constraint(Statistic):
    """``metric``'s statistic must be at most ``max`` and/or at least ``min``."""

    statistic: Literal["p10", "p50", "p90", "mean", "min", "max", "mean_minus_sd", "expected_shortfall"] = Field(
        "p50", description="over replications (ignored for probability_npv_negative)")
    max: float | None = Field(None, description="upper bound, in the metric's unit (share, currency, members)")
    min: float | None = Field(None, description="lower bound")

    def issues(self) -> Iterator[tuple[tuple, str]]:
        yield from super().issues()
        if self.max is None and self.min is None:
            yield (), "a constraint needs a bound (expected max, min or both)"
        if self.max is not None and self.min is not None and self.min > self.max:
            yield ("min",), f"min {self.min:g} is above max {self.max:g} (expected min <= max)"


class Variable(Spec):
    """One decision variable: a numeric field between bounds, or a field taking one of ``choices``."""

    path: str = Field(description="field of the design as the playbook runs it (earn.points_per_unit, "
                                  "tiers.levels[1].threshold), or of the playbook after 'playbook.'")
    low: float | None = Field(None, description="lowest value tried (in the field's unit, local currency for money)")
    high: float | None = Field(None, description="highest value tried")
    step: float | None = Field(None, gt=0, description="values tried are low + n x step")
    type: Literal["int", "float"] | None = Field(None, description="default: the field's own type")
    log: bool = Field(False, description="search on a log scale (rates spanning orders of magnitude)")
    choices: tuple[Any, ...] | None = Field(None, min_length=2, description="values the field may take instead of a range; "
                                                                             "'as_designed' keeps the starting design's "
                                                                             "value, null removes an optional part (tiers)")

    def issues(self) -> Iterator[tuple[tuple, str]]:
        if not _PATH.match(self.path):
            yield ("path",), f"'{self.path}' is not a field path (expected names joined by dots, list items as [i]: tiers.levels[1].threshold)"
        if self.choices is not None:
            for f in ("low", "high", "step"):
                if getattr(self, f) is not None:
                    yield (f,), "a variable with choices takes no range (expected choices or low/high, not both)"
            return
        if self.low is None or self.high is None:
            yield ("low" if self.low is None else "high",), "a range needs low and high (expected both, or choices)"
            return
        if self.low >= self.high:
            yield ("high",), f"bounds reversed or empty: high {self.high:g} is not above low {self.low:g} (expected low < high)"
        if self.log and self.low <= 0:
            yield ("low",), f"a log scale needs low > 0, got {self.low:g} (expected a positive low)"
        if self.log and self.step is not None:
            yield ("step",), "a log scale takes no step (expected step or log, not both)"
        if self.step is not None and self.step > self.high - self.low:
            yield ("step",), f"step {self.step:g} is wider than the range {self.high - self.low:g} (expected a smaller step)"

    @property
    def parts(self) -> tuple[str | int, ...]:
        return parse_path(self.path)

    @property
    def column(self) -> str:
        """Its column in trials.csv."""
        return self.path


class Racing(Spec):
    """Many candidates on few agents and replications; the best confirmed on more."""

    agents: int = Field(5_000, ge=100, description="simulated customers per candidate in the race")
    replications: int = Field(2, ge=1, le=1000, description="replications per candidate in the race")
    confirm: int = Field(5, ge=1, le=100, description="best feasible candidates of the race re-run at the full count "
                                                     "(the starting design is always re-run too)")
    z: float = Field(1.645, ge=0, description="a confirmed candidate meets each constraint with z standard errors to "
                                              "spare (1.645: one-sided 95%), so it holds on other seeds")


class Search(Spec):
    """The best design for a playbook under constraints."""

    name: Name
    description: str = ""
    playbook: str | None = Field(None, description="playbook file, relative to this file (the command's --playbook replaces it)")
    variables: tuple[Variable, ...] = Field(min_length=1)
    objective: Objective = Field(default_factory=Objective)
    trade_off: Objective | None = Field(None, description="a second objective (e.g. minimise program_cost_pct_sales): "
                                                          "the search becomes two-objective (NSGA-II)")
    constraints: tuple[Constraint, ...] = ()
    frontier: Statistic = Field(default_factory=lambda: Statistic(metric="program_cost_pct_sales", statistic="p50"),
                                description="the cost or risk axis of the efficient frontier (default: the trade-off, "
                                            "else program cost as a share of sales)")
    sampler: Literal["tpe", "cmaes", "nsga2"] = Field("tpe", description="Optuna sampler (nsga2 with a trade_off)")
    trials: int = Field(200, ge=1, le=100_000, description="candidates tried in the race (the starting design is the first)")
    batch: int = Field(8, ge=1, le=1000, description="candidates asked of the sampler at a time and run in parallel; "
                                                     "results depend on it, never on the number of workers")
    seed: int = Field(1, ge=0, description="seed of the sampler and of every simulation (common random numbers)")
    agents: int = Field(20_000, ge=100, description="simulated customers at the full count")
    replications: int = Field(10, ge=1, le=10_000, description="replications at the full count")
    racing: Racing = Field(default_factory=Racing)
    marginal_trials: int = Field(0, ge=0, le=10_000, description="for the marginal value of each constraint: a search "
                                                                 "of this many candidates with that bound relaxed by 10% "
                                                                 "(on the race count); 0 reads it off the candidates "
                                                                 "already tried")

    def issues(self) -> Iterator[tuple[tuple, str]]:
        seen: dict[str, int] = {}
        for i, v in enumerate(self.variables):
            if v.path in seen:
                yield ("variables", i, "path"), f"'{v.path}' is already variable {seen[v.path]} (expected each field once)"
            seen.setdefault(v.path, i)
        if self.sampler == "nsga2" and self.trade_off is None:
            yield ("sampler",), "nsga2 searches two objectives (expected a trade_off, or sampler tpe or cmaes)"
        if self.trade_off is not None and self.sampler != "nsga2":
            yield ("sampler",), f"a trade_off makes two objectives: {self.sampler} searches one (expected sampler: nsga2)"
