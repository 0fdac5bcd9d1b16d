r"""Fewer lapses, mapped onto the engine's ``transition_effect`` by simulating the engine itself.

What the engine says (:mod:`simulator.engine.mechanisms.transitions`). A member in a
non-lapsed segment ``s`` moves into a lapsed segment ``j`` next month with probability
``P[s, j] (1 - e)``, the rest of the cut staying in ``s``; ``e`` is ``transition_effect``.
A log shows no segment, only purchases: a customer also falls silent by chance, from an
active segment, and members buy more for other reasons (goal gradient, rewarded behaviour,
tier status), which also delays their lapses.

The statistic. The log's lapse study (:func:`simulator.response.estimate.lapse_study`): a
lapse is a month with a purchase followed by ``LAPSE_MONTHS`` (6) months without one; the
joiners' lapses per member-month after joining against comparison customers with the same
purchases over the 12 months before joining, averaged over months since joining weighted by
joiners (``D``, with its delete-a-group jackknife standard error ``se_log``).

Mapping by simulation (indirect inference: Gourieroux, Monfort & Renault 1993, "Indirect
inference", J. Applied Econometrics 8; Smith 1993), as for ``self_selection``
(:mod:`simulator.response.selection`). The engine is run on the market and the design (the
``--playbook``) over the log's months, the launch at the log's first joining month, with
``agents`` ``scale`` (4) times the log's customers over ``identified_share`` (at most
``MAX_AGENTS``), every mechanism of the design on, the other response fields at their central
values or, where measured from the same log, at their estimates; the enrolment propensities are
scaled once so that the simulated monthly joining rate of buyers at risk is the log's. For each
``e`` of a grid (0, 0.1, 0.2, 0.3, 0.5, 0.7, 1) the simulated log's ``D_sim(e)`` is computed
exactly as the log's, with the same seed (common random numbers: the curve falls smoothly);
``e-hat = D_sim^{-1}(D)`` by linear interpolation (0 above the curve, 1 below it). Interval:
``D -/+ z se``, ``se^2 = se_log^2 + se_sim^2`` (the simulation's jackknife at the nearest
grid point), mapped through the same inverse, so an end beyond the curve is the bound. Not
estimated when the curve moves by less than the log's interval half-width over the whole grid
(a market with no lapsed segment, or too few joiners to tell), nor when the log's whole
interval lies beyond the curve (the log contradicts the market and the other response values:
an interval of one point at a bound would state a certainty the log does not give).

What it is only as good as: the market's transition matrix describes the log's customers (the
cut acts on its moves into lapsed segments: a market whose members rarely reach a lapsed
segment needs a large ``e`` for a small change in lapses), and the other response fields are
right (a goal gradient set too high leaves fewer lapses to the transition effect). The fitted
values used are reported with the estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from simulator.response.estimate import Panel, lapse_study

__all__ = ["LapseStatistic", "TransitionEffect", "lapse_statistic", "fit_transition_effect", "GRID"]

#: transition_effect values simulated (the field's bounds are 0 and 1).
GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


@dataclass(frozen=True)
class LapseStatistic:
    """``D`` of the module docstring (change in lapses per member-month), its standard error and
    the joiners' counterfactual rate."""

    change: float
    se: float
    counterfactual: float
    cohorts: int


def lapse_statistic(panel: Panel, *, seed: int = 0, level: float = 0.90) -> LapseStatistic:
    """``D`` and its jackknife standard error (the lapse study's interval, back to a standard error)."""
    ls = lapse_study(panel, seed=seed, level=level)
    if not ls.cohorts:
        return LapseStatistic(float("nan"), float("nan"), float("nan"), 0)
    est, lo, hi = ls.post()
    z = float(stats.norm.ppf(0.5 + level / 2))
    return LapseStatistic(est, (hi - lo) / (2 * z), ls.counterfactual(), ls.cohorts)


@dataclass
class TransitionEffect:
    """The measured ``transition_effect``: estimate and interval, and the curve behind them."""

    estimate: float
    lo: float
    hi: float
    level: float
    observed: LapseStatistic
    curve: pd.DataFrame = field(default_factory=pd.DataFrame)  # effect, change, se
    agents: int = 0
    factor: float = 1.0
    held: dict[str, float] = field(default_factory=dict)
    se_total: float = float("nan")

    def as_dict(self) -> dict:
        o = self.observed
        return {"estimate": self.estimate, "lo": self.lo, "hi": self.hi, "level": self.level,
                "lapse_change": {"estimate": o.change, "se": o.se, "se_with_simulation": self.se_total},
                "counterfactual_lapses_per_member_month": o.counterfactual, "cohorts": o.cohorts,
                "simulated_agents": self.agents, "enrolment_factor": self.factor,
                "other_response_values_simulated": self.held,
                "curve": [{k: float(v) for k, v in r.items()} for r in self.curve.to_dict("records")]}


def fit_transition_effect(panel: Panel, scenario, *, values: dict[str, float] | None = None,
                          grid: tuple[float, ...] = GRID, scale: float = 4.0, seed: int = 1,
                          level: float = 0.90) -> TransitionEffect:
    """``transition_effect`` from the log's panel and the scenario (market and design) it comes
    from (module docstring). ``values``: response fields measured from the same log, simulated at
    these values instead of the market's."""
    from simulator.response.selection import (curve_inverse, fit_scenario, held_values, nearest_se,
                                              selection_statistic, simulated_panel, simulation_frame)

    values = dict(values or {})
    obs = lapse_statistic(panel, seed=seed, level=level)
    if not obs.cohorts:
        raise ValueError("no joiner with 12 months of history before joining and a month after it whose lapse "
                         "the log shows")
    if not any(s.lapsed for s in scenario.market.segments):
        raise ValueError("the market has no lapsed segment: transition_effect changes nothing in it")
    launch, T, agents = simulation_frame(panel, scenario, scale)
    held = held_values(scenario, values, ("self_selection", "goal_gradient", "rewarded_behaviour", "tier_status"))

    def panel_at(effect: float, factor: float) -> Panel:
        sc = fit_scenario(scenario, {**held, "transition_effect": float(effect)}, factor, pre_months=launch, months=T)
        return simulated_panel(sc, agents=agents, seed=seed, mechanisms=None)

    # the joining rate of buyers at risk matched once, at the first grid point (one secant step)
    q_log = selection_statistic(panel).join_rate
    q_sim = selection_statistic(panel_at(grid[0], 1.0)).join_rate
    factor = q_log / q_sim if q_sim > 0 and np.isfinite(q_log) else 1.0
    rows = []
    for e in grid:
        s = lapse_statistic(panel_at(e, factor), seed=seed, level=level)
        rows.append({"effect": e, "change": s.change, "se": s.se})
    curve = pd.DataFrame(rows)
    # D_sim falls with e; as an increasing function of e: -D
    U, inverse_u = curve_inverse(-curve["change"], curve["effect"])
    e = curve["effect"].to_numpy()

    def inverse(d: float) -> float:
        return inverse_u(-d)

    z = float(stats.norm.ppf(0.5 + level / 2))
    if not U[-1] - U[0] > z * obs.se:
        raise ValueError(f"the simulated change in lapses hardly moves with transition_effect ({-U[0]:+.4f} at "
                         f"{e[0]:g}, {-U[-1]:+.4f} at {e[-1]:g} per member-month, against the log's interval "
                         f"-/+{z * obs.se:.4f}), so the log cannot tell its value")
    held_text = ", ".join(f"{k} {v:.3g}" for k, v in held.items())
    ses = curve["se"].to_numpy()
    s0, s1 = float(np.hypot(obs.se, ses[0])), float(np.hypot(obs.se, ses[-1]))
    if obs.change - z * s0 > -U[0]:
        raise ValueError(f"the log's change in lapses ({obs.change:+.4f} a member-month, {level:.0%} interval "
                         f"{obs.change - z * s0:+.4f}..{obs.change + z * s0:+.4f}, with the simulation's error) is above what the engine gives "
                         f"with no transition effect ({-U[0]:+.4f}, with {held_text}): the other response values or the "
                         "market's transitions already account for more than the log shows, so no transition_effect fits")
    if obs.change + z * s1 < -U[-1]:
        raise ValueError(f"the log's change in lapses ({obs.change:+.4f} a member-month, {level:.0%} interval "
                         f"{obs.change - z * s1:+.4f}..{obs.change + z * s1:+.4f}, with the simulation's error) is below what the engine gives "
                         f"at transition_effect {e[-1]:g} ({-U[-1]:+.4f}, with {held_text}): the market's transitions "
                         "lead its members into lapsed segments less often than the log's members lapse")
    est = inverse(obs.change)
    se = float(np.hypot(obs.se, nearest_se(curve, "effect", est)))
    # a larger effect means fewer lapses (a lower D): the interval's low end comes from D's high end
    return TransitionEffect(est, inverse(obs.change + z * se), inverse(obs.change - z * se), level, obs, curve,
                            agents, float(factor), held, se)
