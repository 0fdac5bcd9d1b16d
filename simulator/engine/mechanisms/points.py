"""Earning points.

Equation. A member's transaction of gross amount ``a`` (net ``a * net_factor`` after tax)
earns, if ``a >= minimum_order``,

    points = round_rule(points_per_unit * net * category_factor * tier_multiplier * campaign_multiplier)

with ``category_factor = sum_c share_c * multiplier_c`` over the market's category mix, the
design's rounding per transaction, and the month's purchase points capped at ``caps.per_month``.
Qualifying points (for tiers) are ``qualifying.points_per_unit * net`` with the same rounding,
never spent nor expired. Bonuses (enrolment, first purchase, birthday, referral, campaign) are
credited on their event. Internally points are int64 hundredths (see ``state.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simulator.engine.compiled import CENTI, CompiledProgram


def round_points(raw: np.ndarray, rounding: int) -> np.ndarray:
    """Points (as float) -> int64 hundredths, by the design's rounding rule."""
    if rounding == 0:
        return (np.floor(raw + 1e-9) * CENTI).astype(np.int64)
    if rounding == 1:
        return (np.floor(raw + 0.5) * CENTI).astype(np.int64)
    if rounding == 2:
        return (np.ceil(raw - 1e-9) * CENTI).astype(np.int64)
    return np.floor(raw * CENTI + 0.5).astype(np.int64)


def purchase_points(program: CompiledProgram, net: np.ndarray, gross: np.ndarray, tier: np.ndarray,
                    multiplier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per transaction: (spendable centipoints, qualifying points as float)."""
    ok = gross >= program.min_order
    raw = program.ppu * net * program.category_factor * program.earn_mult[tier] * multiplier
    pts = np.where(ok, round_points(raw, program.rounding), 0)
    q = np.where(ok, round_points(program.qppu * net, program.rounding) / CENTI, 0.0)
    return pts, q


def per_agent(pos: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Sum transaction values per agent position (exact for int64 below 2**53)."""
    if values.dtype.kind == "i":
        # float64 sums of int64 hundredths are exact below 2**53, then cast back
        return np.bincount(pos, weights=values, minlength=n).astype(np.int64)
    return np.bincount(pos, weights=values, minlength=n)


def cap(points: np.ndarray, program: CompiledProgram) -> np.ndarray:
    return points if program.cap_month < 0 else np.minimum(points, program.cap_month)


@njit(cache=True, nogil=True, inline="always")
def round_one(raw, rounding):
    """One transaction's points (float) -> int64 hundredths by the rounding rule
    (:func:`round_points`, its NumPy reference); inlined by Numba into the fused step and the
    opening history."""
    if rounding == 0:
        return np.int64(np.floor(raw + 1e-9) * 100)
    if rounding == 1:
        return np.int64(np.floor(raw + 0.5) * 100)
    if rounding == 2:
        return np.int64(np.ceil(raw - 1e-9) * 100)
    return np.int64(np.floor(raw * 100 + 0.5))
