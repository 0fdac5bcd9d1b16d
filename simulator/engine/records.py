"""Named, typed records the compiled step takes instead of positional tuples (Numba compiles
a NamedTuple's fields by name): a field is added here, where it is filled
(simulation.Simulation) and where it is read (kernels), never by its position in a long tuple.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ProgramArgs(NamedTuple):
    """A run's program in the month's step (kernels._step_block), from CompiledProgram."""

    has_program: bool         # False: the run has no program this month (the fields are the design's, unused)
    # earning (points.py)
    ppu: float
    rounding: int
    min_order: float
    category_factor: float
    earn_mult: np.ndarray     # [T]
    cap_month: int            # centipoints, -1 none
    qppu: float
    q_include_bonus: bool
    metric: int
    bonus_enrolment: int
    bonus_first: int
    bonus_birthday: int
    bonus_referral: int
    pending_col: int          # ring row of the month pending points become spendable, -1 none
    # rewards, goal gradient (rewards.py)
    ladder: np.ndarray        # float64, each tier's prices a member can aim at, tier after tier
    ladder_start: np.ndarray  # [T]
    ladder_len: np.ndarray    # [T]
    # tiers (tiers.py)
    n_tiers: int
    window: int
    window_months: int
    # enrolment and fees (enrolment.py, fees.py)
    eligible_segments: np.ndarray  # [S] bool
    automatic: bool
    invite_only: bool
    annual_fee: float
    fee: float
    trial_months: int
    # redemption (rewards.py)
    cashback_threshold: int
    voucher_use_rate: float
    goal: np.ndarray          # [T] int64
    cat_order: np.ndarray     # each tier's rewards by price (stable), tier after tier
    cat_start: np.ndarray     # [T]
    cat_len: np.ndarray       # [T]
    cat_prices: np.ndarray    # prices in cat_order
    # endowed progress (endowed_progress.py)
    endowed: float            # bonus stamps as a share of the first reward
