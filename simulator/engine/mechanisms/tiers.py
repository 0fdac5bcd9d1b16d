"""Tiers: qualification, upgrades, reviews and downgrades, and status effects.

Qualification. The tier metric (qualifying points, net spend, or purchases) is summed over
the window: the last ``months`` months (rolling), the calendar year, or the member year since
the enrolment anniversary. A member moves up as soon as the window's sum reaches a higher
threshold. At a review (monthly for rolling windows, December for the calendar year, the
last month of each member year for anniversaries) a member below their tier's threshold for
more than ``grace`` reviews is downgraded: never, one tier, or to the tier the window supports.

Status effect (Wang, Lewis, Cryder & Sprigg 2016; Kopalle et al. 2012). A member's rate is
multiplied by ``1 + s_s * tier / (number of tiers - 1)``; after a demotion it is multiplied by
``1 - d_s * 2^(-months since demotion / half_life_s)`` (the loss felt on demotion).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from simulator.engine.compiled import (
    DOWN_NEVER, DOWN_ONE, METRIC_POINTS, METRIC_PURCHASES, WINDOW_ANNIVERSARY, WINDOW_CALENDAR, WINDOW_ROLLING,
    CompiledProgram,
)
from simulator.engine.mechanisms.rewards import decayed

if TYPE_CHECKING:  # state imports the kernels, which inline this module's compiled functions
    from simulator.engine.state import RunState


def metric_of_month(program: CompiledProgram, qual_points: np.ndarray, net_spend: np.ndarray, purchases: np.ndarray) -> np.ndarray:
    if program.metric == METRIC_POINTS:
        return qual_points
    if program.metric == METRIC_PURCHASES:
        return purchases.astype(float)
    return net_spend


def add_to_window(run: RunState, program: CompiledProgram, t: int, calendar_month: int, value: np.ndarray) -> None:
    """Add this month's metric of every agent to its window (resetting annual windows)."""
    if program.window == WINDOW_ROLLING:
        run.set_qual(t, value)
        run.qual_sum = run.qual_total()  # exact re-sum, no drift
        return
    if program.window == WINDOW_CALENDAR:
        if calendar_month == 1:
            run.qual_sum[:] = 0.0
    else:  # anniversary: a new member year starts in the enrolment month
        restart = run.member & (run.enrol_month >= 0) & ((t - run.enrol_month) % 12 == 0)
        run.qual_sum[restart] = 0.0
    run.qual_sum += value


def supported(program: CompiledProgram, qual_sum: np.ndarray) -> np.ndarray:
    return (np.searchsorted(program.thresholds, qual_sum + 1e-9, side="right") - 1).astype(np.int8)


def upgrade(run: RunState, program: CompiledProgram, idx: np.ndarray) -> int:
    """Move members up to the tier their window supports; return the number upgraded."""
    sup = supported(program, run.qual_sum[idx])
    up = sup > run.tier[idx]
    run.tier[idx[up]] = sup[up]
    run.below[idx[up]] = 0
    return int(up.sum())


def is_review_month(program: CompiledProgram, t: int, calendar_month: int, run: RunState, idx: np.ndarray) -> np.ndarray:
    if program.window == WINDOW_ROLLING:
        return np.ones(idx.shape, dtype=bool)
    if program.window == WINDOW_CALENDAR:
        return np.full(idx.shape, calendar_month == 12)
    assert program.window == WINDOW_ANNIVERSARY
    return (t - run.enrol_month[idx]) % 12 == 11


def review(run: RunState, program: CompiledProgram, t: int, calendar_month: int, idx: np.ndarray) -> int:
    """Downgrade reviewed members below threshold beyond the grace; return the number demoted."""
    if program.downgrade == DOWN_NEVER:
        return 0
    rev = is_review_month(program, t, calendar_month, run, idx)
    idx = idx[rev]
    if not idx.size:
        return 0
    sup = supported(program, run.qual_sum[idx])
    below = sup < run.tier[idx]
    run.below[idx] = np.where(below, run.below[idx] + 1, 0)
    down = below & (run.below[idx] > program.grace)
    d = idx[down]
    if program.downgrade == DOWN_ONE:
        run.tier[d] = np.maximum(run.tier[d] - 1, sup[down])
    else:
        run.tier[d] = sup[down]
    run.below[d] = 0
    run.since_demotion[d] = 0
    return int(d.size)


def status_lift(program: CompiledProgram, tier: np.ndarray, s: np.ndarray) -> np.ndarray:
    if program.n_tiers <= 1:
        return np.ones(tier.shape)
    return 1.0 + s * tier / (program.n_tiers - 1)


def demotion_factor(since_demotion: np.ndarray, d: np.ndarray, half_life: np.ndarray) -> np.ndarray:
    return 1.0 - d * np.exp2(-since_demotion / half_life)


# ----------------------------------------------------------------------------- compiled
# One member's tier moves at the month end, inlined by Numba into kernels.month_end; the NumPy
# functions above (upgrade, review) are their whole-array reference.

@njit(cache=True, nogil=True, inline="always")
def supported_one(thresholds, value):
    """Highest tier whose threshold the window's sum reaches (:func:`supported`)."""
    j = -1
    x = value + 1e-9
    while j + 1 < thresholds.shape[0] and thresholds[j + 1] <= x:
        j += 1
    return j


@njit(cache=True, nogil=True, inline="always")
def status_one(status_s, tier_i, n_tiers):
    """Status lift ``1 + s tier / (T - 1)`` of a member (T > 1 tiers: :func:`status_lift`)."""
    return 1.0 + status_s * tier_i / (n_tiers - 1)


@njit(cache=True, nogil=True, inline="always")
def demotion_one(d, decay, s, m, half_life_s):
    """Demotion ``1 - d 2^(-m / half_life)``, m months after a demotion (:func:`demotion_factor`)."""
    return 1.0 - d * decayed(decay, s, m, half_life_s)


@njit(cache=True, nogil=True, inline="always")
def upgrade_and_review(i, tier, below, since_demotion, qual_sum_i, enrol_month_i, thresholds, window, downgrade,
                       grace, t, cm):
    """Member i's upgrade, then review (:func:`upgrade`, :func:`review`), in place on ``tier``,
    ``below`` and ``since_demotion``; returns (upgraded, demoted), each 0 or 1."""
    ups = 0
    downs = 0
    sup = supported_one(thresholds, qual_sum_i)
    if sup > tier[i]:
        tier[i] = sup
        below[i] = 0
        ups = 1
    if downgrade != 0:
        if window == 1:
            reviewed = cm == 12
        elif window == 2:
            reviewed = (t - enrol_month_i) % 12 == 11
        else:
            reviewed = True
        if reviewed:
            if sup < tier[i]:
                below[i] += 1
                if below[i] > grace:
                    tier[i] = max(tier[i] - 1, sup) if downgrade == 1 else sup
                    below[i] = 0
                    since_demotion[i] = 0
                    downs = 1
            else:
                below[i] = 0
    return ups, downs
