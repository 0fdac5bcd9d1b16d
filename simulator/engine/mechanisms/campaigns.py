"""Who a playbook action reaches: targets, channels, campaign and enrolment-drive calendars.

A campaign reaches the targeted customers opted in to its channel (the market's
``reachability``; members may have opted in when they joined); with no channel it reaches
every targeted customer (in-store, mass media). During a campaign month a reached customer's
purchase rate is multiplied by ``1 + lift`` (campaign effect; Taylor & Neslin 2005 find
short-term promotional lifts of this order; the default is the market's ``campaign_lift``),
reached members earn ``multiplier`` times the points, and a ``bonus_points`` campaign credits
its bonus once per campaign on a reached member's first purchase of at least ``min_spend``.

A target takes an agent when every condition it gives holds: its segment is among those the
target names (``segments``), in the ``lifecycle`` stages and in the ``value`` bands it lists --
each segment carries one stage and one band, declared in the market file or derived (a lapsed
segment is ``lapsed``, others ``active``; bands are thirds of the base by expected spend), so
these are sets of segments like ``segments`` and work on any market -- its potential band is
listed, its months since the last purchase are at least ``inactive_months`` (and
``recency.min``) and at most ``recency.max``, its membership and tier match, and its home
store is among the target's ``stores`` (markets with a store network).

Store-staff enrolment challenges (``Playbook.staff_challenges``) are at-the-till enrolment
drives aimed at the customers of the chosen stores: during the challenge a purchasing
non-member of those stores joins with probability min(1, h_i (1 + uplift)) instead of
min(1, h_i) (equation in :mod:`simulator.engine.mechanisms.enrolment`), the staff are paid
``cost_per_enrolment`` for every customer who joins in those stores during the challenge, and
the ``cost`` is paid in its first month; both go into the month's enrolment cost. Staff
incentives are how retailers recruit at the till; the uplift is the playbook's assumption (no
published study in the project's notes measures it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.engine.compiled import CompiledMarket, CENTI
from simulator.specs.playbook import Campaign, EnrolmentDrive, StaffChallenge, Target

POTENTIAL = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True)
class CompiledTarget:
    segments: np.ndarray | None     # [S] bool
    tiers: np.ndarray | None        # [T] bool (tiers of the design)
    potential: np.ndarray | None    # [3] bool
    members: int                    # 0 any, 1 members, 2 non-members
    inactive_months: int            # at least this many months since the last purchase (0: no bound)
    recent_months: int = -1         # at most this many months since the last purchase (-1: no bound)
    stores: np.ndarray | None = None  # [K] bool: home stores taken (None: any)

    @classmethod
    def from_spec(cls, t: Target, market: CompiledMarket, tier_names: tuple[str, ...]) -> "CompiledTarget":
        segs = segment_mask(t, market)
        tiers = np.isin(np.array(tier_names), t.tiers) if t.tiers else None
        pot = np.array([b in t.potential for b in ("low", "medium", "high")]) if t.potential else None
        members = {"any": 0, "members": 1, "non_members": 2}[t.members]
        if tiers is not None:
            members = 1
        low = max(t.inactive_months, t.recency.min if t.recency is not None else 0)
        high = t.recency.max if t.recency is not None and t.recency.max is not None else -1
        stores = np.isin(np.array(market.stores, dtype=object), list(t.stores)) if t.stores else None
        return cls(segs, tiers, pot, members, low, high, stores)

    def mask(self, idx: np.ndarray | None, segment: np.ndarray, member: np.ndarray, tier: np.ndarray,
             potential: np.ndarray, recency: np.ndarray, store: np.ndarray | None = None) -> np.ndarray:
        """Targeted agents among ``idx`` (None: the whole population; arrays are full-population)."""
        if idx is None:
            idx = slice(None)
            m = np.ones(segment.shape, dtype=bool)
        else:
            m = np.ones(idx.shape, dtype=bool)
        if self.segments is not None:
            m &= self.segments[segment[idx]]
        if self.members == 1:
            m &= member[idx]
        elif self.members == 2:
            m &= ~member[idx]
        if self.tiers is not None:
            m &= self.tiers[np.minimum(tier[idx], len(self.tiers) - 1)] & member[idx]
        if self.potential is not None:
            m &= self.potential[potential[idx]]
        if self.inactive_months:
            m &= recency[idx] >= self.inactive_months
        if self.recent_months >= 0:
            m &= recency[idx] <= self.recent_months
        if self.stores is not None and store is not None and store.shape[0]:
            m &= self.stores[store[idx]]
        return m


def segment_mask(t: Target, market: CompiledMarket) -> np.ndarray | None:
    """The segments a target takes ([S] bool), or None when it names none: those named in
    ``segments``, in a ``lifecycle`` stage and in a ``value`` band it lists (each condition given
    restricts; they combine with AND)."""
    mask = None
    for wanted, of_segment in ((t.segments, market.names), (t.lifecycle, market.lifecycle), (t.value, market.value)):
        if wanted:
            m = np.isin(np.array(of_segment, dtype=object), list(wanted))
            mask = m if mask is None else mask & m
    return mask


@dataclass(frozen=True)
class CompiledCampaign:
    name: str
    kind: str
    start: int              # first month (period index)
    end: int                # month after the last
    channel: int            # bit index, -1 none
    target: CompiledTarget
    multiplier: float
    bonus: int              # centipoints
    min_spend: float
    lift: float | None
    cost: float
    cost_per_contact: float


@dataclass(frozen=True)
class CompiledDrive:
    name: str
    start: int
    end: int
    uplift: float
    channel: int
    target: CompiledTarget
    cost: float
    cost_per_contact: float
    cost_per_enrolment: float


def _channel(market: CompiledMarket, name: str | None) -> int:
    return -1 if name is None else market.channels.index(name)


def compile_campaign(c: Campaign, start: int, market: CompiledMarket, tiers: tuple[str, ...]) -> CompiledCampaign:
    return CompiledCampaign(c.name, c.kind, start, start + c.months, _channel(market, c.channel),
                            CompiledTarget.from_spec(c.target, market, tiers), c.multiplier, c.bonus_points * CENTI,
                            c.min_spend, c.lift, c.cost, c.cost_per_contact)


def compile_drive(d: EnrolmentDrive, start: int, market: CompiledMarket, tiers: tuple[str, ...]) -> CompiledDrive:
    return CompiledDrive(d.name, start, start + d.months, d.uplift, _channel(market, d.channel),
                         CompiledTarget.from_spec(d.target, market, tiers), d.cost, d.cost_per_contact, d.cost_per_enrolment)


def compile_challenge(ch: StaffChallenge, start: int, market: CompiledMarket) -> CompiledDrive:
    """A store-staff enrolment challenge as an at-the-till drive aimed at its stores' customers."""
    target = CompiledTarget(None, None, None, 0, 0, -1, np.isin(np.array(market.stores, dtype=object), list(ch.stores)))
    return CompiledDrive(ch.name, start, start + ch.months, ch.uplift, -1, target, ch.cost, 0.0, ch.cost_per_enrolment)


def reached(channel: int, idx: np.ndarray | None, reach: np.ndarray) -> np.ndarray:
    """Agents among ``idx`` (None: everyone) the channel reaches (all of them for no channel)."""
    r = reach if idx is None else reach[idx]
    if channel < 0:
        return np.ones(r.shape, dtype=bool)
    return (r >> np.uint8(channel)) & np.uint8(1) == 1
