"""Named, typed records the compiled passes take instead of positional tuples (Numba compiles
a NamedTuple's fields by name): a field is added here, where it is filled
(simulation.Simulation, kernels.end_run / end_transitions) and where it is read (kernels),
never by its position in a long tuple.

The month's step (kernels.step_both) takes PopulationArgs, MarketArgs, StreamKeys and, per
run, a RunArgs (StateArgs, TraceArgs, ProgramArgs, CampaignArgs, DriveArgs, MechanismFlags,
StepOut) and optionally StoreArgs; the month end (kernels.month_end) takes an EndRunArgs per
run and a TransitionArgs.
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


class PopulationArgs(NamedTuple):
    """The agents' fixed traits in the step (population.Population)."""

    rate_mult: np.ndarray       # [N] purchase-rate multiplier m_i
    basket_mult: np.ndarray     # [N] basket multiplier b_i
    identified: np.ndarray      # [N] bool: can enrol at the till
    opt_in_on_join: np.ndarray  # [N] channel bitmask opted into on joining
    birthday: np.ndarray        # [N] calendar month of the birthday
    potential: np.ndarray       # [N] potential band (campaign targets)
    sel_power: tuple            # rate_mult ** beta for each distinct self-selection beta
    sel_index: np.ndarray       # [S] each segment's index into sel_power
    sel_norm: np.ndarray        # [S] the segments' normalisers of sel_power


class MarketArgs(NamedTuple):
    """The market and its response parameters in the step (compiled.CompiledMarket)."""

    rate: np.ndarray            # [S] purchases per month
    season: float               # this month's seasonal multiplier
    basket_mean: np.ndarray     # [S]
    basket_sigma: np.ndarray    # [S]
    net_factor: float
    goal_gradient: np.ndarray   # [S]
    rewarded: np.ndarray        # [S] rewarded-behaviour lift
    half_life: np.ndarray       # [S] rewarded-behaviour half-life, months
    status: np.ndarray          # [S] tier status lift
    demotion: np.ndarray        # [S] demotion effect
    enrol_prop: np.ndarray      # [S] enrolment propensity
    fee_sens: np.ndarray        # [S] fee sensitivity
    referral_rate: np.ndarray   # [S] referrals per member-year
    redeem_prop: np.ndarray     # [S] redemption propensity
    decay: np.ndarray           # [S, months] 2 ** (-m / half_life) (kernels.decay_table)


class StreamKeys(NamedTuple):
    """The month's stream keys of the step (Streams.stream_base(name, t))."""

    purchases: np.uint64
    basket: np.uint64
    enrolment: np.uint64
    redemption: np.uint64
    voucher: np.uint64
    referral: np.uint64


class StateArgs(NamedTuple):
    """A run's agent state in the step (state.RunState, updated in place)."""

    exists: np.ndarray
    segment: np.ndarray
    reach: np.ndarray
    recency: np.ndarray
    member: np.ndarray
    enrol_month: np.ndarray
    tier: np.ndarray
    below: np.ndarray
    since_reward: np.ndarray
    since_demotion: np.ndarray
    first_pending: np.ndarray
    next_bill: np.ndarray
    spend_since_bill: np.ndarray
    earned: np.ndarray
    consumed: np.ndarray
    snap: np.ndarray
    qual_ring: np.ndarray
    qual_off: np.ndarray
    qual_used: np.ndarray
    qual_sum: np.ndarray
    row: np.ndarray
    row_asks: np.ndarray        # RunState.candidates: agents asking for a history row, by block
    row_asks_n: np.ndarray      # RunState.n_candidates: how many, per block
    eq_extra: np.ndarray        # enrolment's qualifying points (empty: none)


class TraceArgs(NamedTuple):
    """A run's per-agent trace of points issued and redeemed (empty arrays: not traced)."""

    issued: np.ndarray
    redeemed: np.ndarray


class CampaignArgs(NamedTuple):
    """The month's active campaigns, one row each (Simulation._campaign_args)."""

    kind: np.ndarray            # [C] 0 lift only, 1 points multiplier, 2 bonus points
    seg: np.ndarray             # target: [C, S] bool
    members: np.ndarray         # target: [C] 0 anyone, 1 members, 2 non-members
    tiers: np.ndarray           # target: [C, T] bool
    use_tiers: np.ndarray       # target: [C] bool
    pot: np.ndarray             # target: [C, 3] bool
    inactive: np.ndarray        # target: [C, 2] months since the last purchase, at least / at most
    channel: np.ndarray         # [C] channel, -1 none
    lift: np.ndarray            # [C, S]
    mult: np.ndarray            # [C] points multiplier
    bonus: np.ndarray           # [C] bonus points
    min_spend: np.ndarray       # [C] smallest basket for the bonus
    done_row: np.ndarray        # [C] row of ``done``, -1 none
    done: np.ndarray            # [bonus campaigns, N] bool: the once-only bonus given


class DriveArgs(NamedTuple):
    """The month's active enrolment drives and staff challenges (Simulation._drive_args)."""

    uplift: np.ndarray
    seg: np.ndarray
    members: np.ndarray
    tiers: np.ndarray
    use_tiers: np.ndarray
    pot: np.ndarray
    inactive: np.ndarray
    channel: np.ndarray


class MechanismFlags(NamedTuple):
    """Which response mechanisms are on in the step (playbook.Mechanisms)."""

    goal: bool
    rewarded: bool
    status: bool
    campaigns: bool
    self_selection: bool
    referrals: bool


class StepOut(NamedTuple):
    """What the step writes for a run: per agent and the month's totals (kernels.step_both)."""

    counts: np.ndarray          # [N] purchases
    spend: np.ndarray           # [N] net spend (empty: not kept)
    ints: np.ndarray            # integer totals by kernels.N_* slot
    floats: np.ndarray          # float totals by kernels.F_* slot
    by_tier_reward: np.ndarray  # [T, R] redemptions
    camp_contacts: np.ndarray   # [C]
    drive_contacts: np.ndarray  # [D]
    drive_joins: np.ndarray     # [D]


class RunArgs(NamedTuple):
    """One run's part of the step (Simulation._step)."""

    state: StateArgs
    trace: TraceArgs
    prog: ProgramArgs
    camps: CampaignArgs
    drives: DriveArgs
    flags: MechanismFlags
    out: StepOut


class StoreArgs(NamedTuple):
    """A run's store network in the step (Simulation._store_args; stores.py)."""

    home: np.ndarray            # [N] home store
    enrol_mult: np.ndarray      # [K] enrolment multiplier
    money: np.ndarray           # [K, 2] revenue, members' revenue (per task inside step_both)
    pilot: np.ndarray           # [K] bool pilot stores (empty: no pilot)
    referral_start: int         # first referral slot (referred customers have the program anywhere)
    camp_masks: np.ndarray      # [C, K] campaigns' stores
    drive_masks: np.ndarray     # [D, K] drives' stores
    counts: np.ndarray          # [K, 4] int64 new members in column 0 (per task inside step_both)


class EndRunArgs(NamedTuple):
    """One run's part of a month-end pass (kernels.end_run builds it)."""

    member: np.ndarray
    exists: np.ndarray
    tier: np.ndarray
    below: np.ndarray
    since_demotion: np.ndarray
    enrol_month: np.ndarray
    recency: np.ndarray
    counts: np.ndarray
    earned: np.ndarray
    consumed: np.ndarray
    snap: np.ndarray
    row: np.ndarray
    qual_sum: np.ndarray
    trace_expired: np.ndarray   # empty: not traced
    tiers_on: bool
    thresholds: np.ndarray
    window: int
    downgrade: int
    grace: int
    expiry_on: bool
    exp_col: int
    exp_inactive: int
    cost_tiers: int
    close_on: bool
    close_col: int


class TransitionArgs(NamedTuple):
    """The segment transitions of a month-end pass (kernels.end_transitions builds it)."""

    on: bool
    keys: np.ndarray
    dest: np.ndarray
    S: int
    base: np.uint64
    use_member_design: bool
    use_member_baseline: bool
    segment_design: np.ndarray
    segment_baseline: np.ndarray


class BlockTotals(NamedTuple):
    """StepOut's totals, one row per block of agents (kernels.step_both adds them up in block
    order, so they are the same bits on any number of threads)."""

    ints: np.ndarray
    floats: np.ndarray
    by_tier_reward: np.ndarray
    camp_contacts: np.ndarray
    drive_contacts: np.ndarray
    drive_joins: np.ndarray


class EndStoreArgs(NamedTuple):
    """A run's store network in a month-end pass (kernels.month_end)."""

    home: np.ndarray            # [N] home store
    reach: np.ndarray           # [N] the run's channel bitmasks
    channels: int               # the channels' bitmask 2**C - 1
    out: np.ndarray             # [K, 2 (1 + 2**C) + 1] int64 counts by home store and code, purchases last
