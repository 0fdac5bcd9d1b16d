r"""Self-selection, mapped onto the engine's ``self_selection`` by simulating the engine itself.

What the engine says (:mod:`simulator.engine.mechanisms.enrolment`). A non-member i who buys
in month t joins with probability ``h_s e_k w_i`` (``h_s`` the segment's
``enrolment_propensity``, ``e_k`` its home store's enrolment multiplier, a fee factor for a paid
program), where

.. code-block:: text

    w_i = m_i^beta / E_s[m^beta],    m_i ~ Gamma(k_s, 1/k_s)   (the customer's own rate multiplier)

and ``beta`` is ``self_selection``. Heavier buyers join first; and a log shows it as joiners who
bought more than comparable customers before joining.

The statistic. For each month ``g`` in which customers joined, the customers at risk: those who
were customers ``L`` months (6) before ``g``, had not joined by then, and bought in ``g`` (a
customer joins at the till). ``A_g`` is the at-risk set (joiners of ``g`` included), ``n_i`` a
customer's purchases over the ``L`` months before ``g``, ``mu_g`` their mean over ``A_g``:

.. code-block:: text

    R = (1 / J) sum_g sum_{i joined in g} n_i / mu_g        q = J / sum_g |A_g|

``R`` is 1 when joining ignores the rate (``beta`` = 0) and grows with ``beta``; ``q`` is the
monthly joining rate of buyers at risk.

Why not a closed form. If the at-risk customers' rates were a Gamma of shape ``a`` and their
purchases Poisson given the rate, the joiners' rates would be Gamma of shape ``a + beta`` and
``R = (a + beta) / a``, so ``beta = a (R - 1)`` with ``a`` the negative-binomial shape of the
counts (Ehrenberg 1959). On engine logs that recovers 0.11 for a true ``beta`` of 1 and 0.21
for 2 (means over seeds 1..5, 8,000 agents): the counts' heterogeneity is mostly the segments' rates,
which the joining weight does not select on (``w_i`` is normalised within the segment), and the
at-risk set at ``g`` is depleted of the heavy buyers who joined before (more so the higher the
joining propensity, and within stores of higher enrolment: with ``beta`` 0, ``R`` is 0.97, not
1). No formula of the log alone separates these.

Mapping by simulation (indirect inference: Gourieroux, Monfort & Renault 1993, "Indirect
inference", J. Applied Econometrics 8; Smith 1993). The engine is run on the market and the
design (the ``--playbook``) over the log's months (the launch at the log's first joining month),
with ``agents`` ``scale`` (4) times the log's customers over ``identified_share`` (at most
``MAX_AGENTS``, 200,000), for each ``beta`` of a grid
(0, 0.5, 1, 1.5, 2, 3, 5); at each, the market's enrolment propensities (every segment's) are
multiplied by the factor ``c`` that makes the simulated ``q`` the log's (one secant step from
``c`` = 1, as the rate is nearly proportional to ``c``; at 5 it cannot be reached, the joining
probabilities of heavy buyers clipping at 1), and ``R_sim(beta)`` computed exactly as on the log. The same seed for every ``beta`` (common random numbers), so the curve is smooth and
increasing; ``beta-hat = R_sim^{-1}(R)`` by linear interpolation (0 below the curve, 5 above it;
not estimated when the curve rises by less than the interval's half-width of ``R``, as under an
automatic program, which enrols every buyer).
Interval: the log's ``R`` -/+ ``z se``, ``se^2 = se_log^2 + se_sim^2`` (each a delete-a-group
jackknife over customers, 50 groups; the simulation's at the nearest grid point: its noise
shifts the whole curve), mapped through the same inverse.

Only the pre-joining months enter, so the program's effects after joining do not: only the
self-selection mechanism is switched on in the simulations. Enrolment drives of the playbook
are not simulated (the ``c`` match absorbs the log's average joining rate); per-segment
overrides of ``self_selection`` are replaced by the one measured value.

Assumptions, which the estimate is only as good as: the market describes the log's customers
(segments, their rates and rate shapes ``k_s``, transitions, stores); relative enrolment
propensities across segments and stores are the market's (only their common level is matched);
joining is at the till with a purchase.

Measured on engine logs (8,000 agents, fitted against the market they were generated from;
``tests/response/test_selection.py``, slow): the 90% interval held the chosen value in 35 of 40
seeds at 1 (seeds 100..139; mean 1.07, sd 0.48), 20 of 20 at 0 (mean 0.05) and 20 of 20 at 2
(mean 2.29, sd 1.13; seeds 100..119). The ratio flattens above about 1.5 (heavy buyers join at
once, later months are left with fewer of them), so there a ratio a little high reads as a
large value and the intervals are wide. Against a market whose relative enrolment propensities
are not the log's, it is off: the shipped log (generated with 1 and every segment's propensity
0.05) reads 0.34 (0.01..0.92) against ``markets/usa/market.yaml``, whose champions join at 0.18
and lapsed customers at 0.01.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from simulator.response.estimate import Panel

__all__ = ["SelectionStatistic", "SelfSelection", "selection_statistic", "simulated_panel", "fit_self_selection",
           "GRID", "PRE", "fit_scenario"]

#: Months before joining over which purchases are counted.
PRE = 6
#: self_selection values simulated (the field's bounds are 0 and 5).
GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)
BOUNDS = (0.0, 5.0)
#: Simulated agents at most (a large log's ratio is then compared with a simulation of fewer
#: customers than ``scale`` times its own: the simulation's standard error, in the interval, grows).
MAX_AGENTS = 200_000


@dataclass(frozen=True)
class SelectionStatistic:
    """``R`` and ``q`` of the module docstring, with ``R``'s jackknife standard error."""

    ratio: float
    se: float
    join_rate: float
    joiners: int
    at_risk: int
    cohorts: int


def selection_statistic(panel: Panel, *, pre: int = PRE, groups: int = 50, seed: int = 0) -> SelectionStatistic:
    """``R``, ``q`` and the delete-a-group jackknife standard error of ``R`` (groups of customers
    drawn as :func:`simulator.response.estimate.event_study` draws them)."""
    P = panel.purchases
    N, T = P.shape
    cs = np.concatenate([np.zeros((N, 1)), np.cumsum(P, axis=1)], axis=1)
    joined = panel.joined
    group = np.random.default_rng(seed).permutation(N) % groups
    rows = []
    for c, g in enumerate(np.unique(joined[joined >= pre])):
        risk = np.flatnonzero((panel.first <= g - pre) & ((joined < 0) | (joined >= g)) & (P[:, g] > 0))
        rows.append((np.full(risk.size, c), cs[risk, g] - cs[risk, g - pre], joined[risk] == g, group[risk]))
    if not rows:
        return SelectionStatistic(float("nan"), float("nan"), float("nan"), 0, 0, 0)
    coh, n, j, grp = (np.concatenate(x) for x in zip(*rows))
    C = int(coh.max()) + 1
    flat = coh * groups + grp

    def by(w):  # [cohorts, groups] sums
        return np.bincount(flat, weights=w, minlength=C * groups).reshape(C, groups)

    S, K = by(n.astype(float)), by(np.ones(n.size))
    SJ, KJ = by(n * j), by(j.astype(float))

    def ratio(S, K, SJ, KJ):  # arrays over cohorts (last axis)
        mu = np.divide(S, K, out=np.zeros_like(S), where=K > 0)
        ok = mu > 0
        return np.divide(SJ, mu, out=np.zeros_like(SJ), where=ok).sum(-1) / np.maximum(np.where(ok, KJ, 0).sum(-1), 1)

    tot = [x.sum(1) for x in (S, K, SJ, KJ)]
    est = float(ratio(*tot))
    reps = np.array([ratio(*(t - x[:, k] for t, x in zip(tot, (S, K, SJ, KJ)))) for k in range(groups)])
    se = float(np.sqrt((groups - 1) / groups * ((reps - reps.mean()) ** 2).sum()))
    return SelectionStatistic(est, se, float(j.sum() / j.size), int(j.sum()), int(j.size), C)


def fit_scenario(scenario, values: dict[str, float], factor: float, *, pre_months: int, months: int):
    """The scenario simulated for one grid point: central values of every uncertain input, no
    program as the baseline, the launch ``pre_months`` after the first month, the response
    fields ``values`` set everywhere (per-segment overrides of them dropped) and every enrolment
    propensity multiplied by ``factor``."""
    from simulator.response.generate import with_response
    from simulator.specs.market import RESPONSE_DEFAULTS, Market
    from simulator.uncertainty import central_values, with_values

    scenario = with_values(scenario, central_values(scenario))
    r = scenario.market.response
    base_h = RESPONSE_DEFAULTS["enrolment_propensity"] if r.enrolment_propensity is None else float(r.enrolment_propensity)
    segments = {k: v.model_copy(update={**{f: None for f in values}, "enrolment_propensity": (
        None if v.enrolment_propensity is None else min(float(v.enrolment_propensity) * factor, 1.0))})
        for k, v in r.segments.items()}
    response = r.model_copy(update={**{f: float(x) for f, x in values.items()},
                                    "enrolment_propensity": min(base_h * factor, 1.0), "segments": segments})
    market = Market.model_validate(scenario.market.model_copy(update={"response": response}).model_dump())
    timed = with_response(scenario, {}, pre_months=pre_months, months=months)  # dates, no baseline, no drives
    return dataclasses.replace(timed, market=market)


def simulation_frame(panel: Panel, scenario, scale: float) -> tuple[int, int, int]:
    """The log's launch month (its first joining month), its length in months and the agents to
    simulate: ``scale`` times the log's customers over the market's ``identified_share`` (at most
    ``MAX_AGENTS``). Shared by every mapping onto an engine parameter by simulation."""
    launch = int(panel.joined[panel.joined >= 0].min())
    agents = min(int(np.ceil(scale * len(panel.customers) / max(float(scenario.market.identified_share), 1e-3))),
                 MAX_AGENTS)
    return launch, len(panel.months), agents


def held_values(scenario, values: dict[str, float], fields: tuple[str, ...]) -> dict[str, float]:
    """The response ``fields`` a mapping simulates at fixed values: measured from the same log
    (``values``) where they were, else the market's central values."""
    from simulator.uncertainty import central_values, with_values

    r = with_values(scenario, central_values(scenario)).market.response
    return {k: float(values[k]) if k in values else float(getattr(r, k))
            for k in fields if k in values or getattr(r, k, None) is not None}


def curve_inverse(statistic, grid):
    """The simulated ``statistic`` at each ``grid`` value made non-decreasing (common random
    numbers make it nearly so already), and its inverse: linear interpolation between grid points,
    the grid's first (last) value below (above) the curve."""
    S = np.maximum.accumulate(np.asarray(statistic, dtype=float))
    g = np.asarray(grid, dtype=float)

    def inverse(x: float) -> float:
        if x <= S[0]:
            return float(g[0])
        if x >= S[-1]:
            return float(g[-1])
        return float(np.interp(x, S + np.arange(len(S)) * 1e-12, g))

    return S, inverse


def nearest_se(curve: pd.DataFrame, column: str, value: float) -> float:
    """The simulation's standard error at the grid point nearest ``value``."""
    x = curve[column].to_numpy()
    return float(curve["se"].to_numpy()[int(np.argmin(np.abs(x - value)))])


ONLY = "self_selection"


def simulated_panel(scenario, *, agents: int, seed: int, mechanisms=ONLY) -> Panel:
    """Purchases by month and joining month of the identified customers of one engine run (the
    panel a log of it gives), with only the self-selection mechanism on (``mechanisms``: a
    :class:`~simulator.specs.playbook.Mechanisms`, or None for the design's own)."""
    from simulator.executor import replication
    from simulator.specs.playbook import Mechanisms

    if mechanisms == ONLY:
        mechanisms = Mechanisms(**{k: k == "self_selection" for k in Mechanisms.model_fields})
    sim = replication(scenario, agents=agents, seed=seed, mechanisms=mechanisms)
    design = sim.runs["design"]
    counts = np.zeros((sim.H, sim.pop.capacity), dtype=np.uint16)

    def record(t: int) -> None:
        counts[t] = sim.scratch["design"].counts

    sim.run(progress=record)
    P = counts.T.astype(float)
    keep = sim.pop.identified & (P.sum(axis=1) > 0)
    P = P[keep]
    first = np.argmax(P > 0, axis=1)
    months = pd.period_range(pd.Period(sim.start, freq="M"), periods=sim.H, freq="M")
    return Panel(np.flatnonzero(keep).astype(str), months, np.zeros_like(P), P, first,
                 design.enrol_month.astype(np.int64)[keep])


@dataclass
class SelfSelection:
    """The measured ``self_selection``: estimate and interval, and the curve behind them."""

    estimate: float
    lo: float
    hi: float
    level: float
    observed: SelectionStatistic
    curve: pd.DataFrame = field(default_factory=pd.DataFrame)  # beta, factor, join_rate, ratio, se
    agents: int = 0
    se_total: float = float("nan")

    def as_dict(self) -> dict:
        o = self.observed
        return {"estimate": self.estimate, "lo": self.lo, "hi": self.hi, "level": self.level,
                "ratio": {"estimate": o.ratio, "se": o.se, "se_with_simulation": self.se_total},
                "join_rate_at_risk": o.join_rate, "joiners": o.joiners, "at_risk_customer_months": o.at_risk,
                "cohorts": o.cohorts, "simulated_agents": self.agents,
                "curve": [{k: float(v) for k, v in r.items()} for r in self.curve.to_dict("records")]}


def fit_self_selection(panel: Panel, scenario, *, pre: int = PRE, grid: tuple[float, ...] = GRID, scale: float = 4.0,
                       seed: int = 1, level: float = 0.90) -> SelfSelection:
    """``self_selection`` from the log's panel and the scenario (market and design) it comes from
    (module docstring)."""
    obs = selection_statistic(panel, pre=pre)
    if obs.joiners == 0:
        raise ValueError(f"no joiner with {pre} months of history before joining")
    launch, T, agents = simulation_frame(panel, scenario, scale)
    rows = []
    for beta in grid:
        factor = 1.0
        for _ in range(2):  # c = 1, then the secant step to the log's joining rate
            sim = selection_statistic(simulated_panel(fit_scenario(scenario, {"self_selection": beta}, factor, pre_months=launch, months=T),
                                                      agents=agents, seed=seed), pre=pre)
            if _ == 0:
                factor = factor * obs.join_rate / sim.join_rate if sim.join_rate > 0 else factor
        rows.append({"beta": beta, "factor": factor, "join_rate": sim.join_rate, "ratio": sim.ratio, "se": sim.se})
    curve = pd.DataFrame(rows)
    R, inverse = curve_inverse(curve["ratio"], curve["beta"])
    b = curve["beta"].to_numpy()
    z = float(stats.norm.ppf(0.5 + level / 2))
    if not R[-1] - R[0] > z * obs.se:
        raise ValueError(f"under this design the simulated ratio hardly moves with self_selection ({R[0]:.3f} at "
                         f"{b[0]:g}, {R[-1]:.3f} at {b[-1]:g}: an automatic program enrols every buyer), so the log "
                         "cannot tell its value")
    est = inverse(obs.ratio)
    se = float(np.hypot(obs.se, nearest_se(curve, "beta", est)))
    return SelfSelection(est, inverse(obs.ratio - z * se), inverse(obs.ratio + z * se), level, obs, curve, agents, se)
