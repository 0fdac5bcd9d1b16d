"""Numeric views of the typed specs: the arrays the vectorised step works with.

The engine never reads YAML or dicts: a :class:`~simulator.scenario.Scenario` is compiled
once into :class:`CompiledMarket` and :class:`CompiledProgram` (NumPy arrays indexed by
segment, tier, reward), then every period works on those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.specs.market import RESPONSE_DEFAULTS, Market
from simulator.specs.program import (
    CalendarYearWindow, ExpireAfterMonths, ExpireOnFixedDate, ExpireOnInactivity, Program, RollingWindow,
)

#: Internal unit of points: hundredths of a point, as int64, so the ledger is exact.
CENTI = 100

ROUNDING = {"floor": 0, "round": 1, "ceil": 2, "none": 3}
EXPIRY_NEVER, EXPIRY_AFTER, EXPIRY_INACTIVITY, EXPIRY_FIXED = 0, 1, 2, 3
METRIC_POINTS, METRIC_SPEND, METRIC_PURCHASES = 0, 1, 2
WINDOW_ROLLING, WINDOW_CALENDAR, WINDOW_ANNIVERSARY = 0, 1, 2
DOWN_NEVER, DOWN_ONE, DOWN_SUPPORTED = 0, 1, 2


@dataclass(frozen=True)
class CompiledMarket:
    """Per-segment arrays of a market (local currency, monthly rates)."""

    names: tuple[str, ...]
    share: np.ndarray            # [S]
    rate: np.ndarray             # [S] purchases per month
    shape: np.ndarray            # [S] gamma shape of individual rates
    basket_mean: np.ndarray      # [S] currency
    basket_sigma: np.ndarray     # [S] lognormal sigma of one transaction around the customer's mean
    basket_ind_sigma: np.ndarray # [S] lognormal sigma of customers' means
    lapsed: np.ndarray           # [S] bool
    P: np.ndarray                # [S, S] row-stochastic monthly transitions
    season: np.ndarray           # [12]
    response: dict[str, np.ndarray]  # name -> [S]
    channels: tuple[str, ...]
    reach_share: np.ndarray      # [C]
    member_opt_in: np.ndarray    # [C]
    net_factor: float            # net sales per unit of basket amount
    gross_margin: float
    discount_rate: float
    arrivals_per_month: float
    arrival_segment: int
    identified_share: float
    customers: int
    category_share: dict[str, float]
    potential_mix: np.ndarray | None = None  # [S, 3] shares of low, medium, high potential (calibrated), or None
    lifecycle: tuple[str, ...] = ()  # [S] lifecycle stage of each segment (Market.lifecycles)
    value: tuple[str, ...] = ()      # [S] value band of each segment (Market.value_bands)
    stores: tuple[str, ...] = ()     # [K] store names of the network (empty: no stores)
    store_share: np.ndarray | None = None   # [K] stores' shares of the base
    store_mix: np.ndarray | None = None     # [S, K] each segment's shares over the stores (rows sum to 1)
    store_enrol: np.ndarray | None = None   # [K] enrolment-propensity multipliers
    store_reach: np.ndarray | None = None   # [K, C] opt-in multipliers by channel

    @property
    def store_dtype(self) -> type:
        """Smallest unsigned integer holding a store index."""
        return np.uint8 if len(self.stores) <= 256 else np.uint16

    @classmethod
    def from_spec(cls, m: Market) -> "CompiledMarket":
        names = m.segment_names
        idx = {n: i for i, n in enumerate(names)}
        S = len(names)
        P = np.zeros((S, S))
        for src, row in m.transitions.items():
            for dst, p in row.items():
                P[idx[src], idx[dst]] = p
        P = P / P.sum(axis=1, keepdims=True)  # exact renormalisation after the spec's tolerance check
        cv = np.array([s.basket.cv for s in m.segments])
        icv = np.array([s.basket.individual_cv for s in m.segments])
        response = {k: np.array([m.response.for_segment(n)[k] for n in names]) for k in RESPONSE_DEFAULTS}
        econ = m.economics
        return cls(
            names=names,
            share=np.array([s.share for s in m.segments]) / sum(s.share for s in m.segments),
            rate=np.array([s.purchase_rate for s in m.segments]),
            shape=np.array([s.rate_shape for s in m.segments]),
            basket_mean=np.array([s.basket.mean for s in m.segments]),
            basket_sigma=np.sqrt(np.log1p(cv ** 2)),
            basket_ind_sigma=np.sqrt(np.log1p(icv ** 2)),
            lapsed=np.array([s.lapsed for s in m.segments]),
            P=P,
            season=np.array(m.seasonality, dtype=float),
            response=response,
            channels=tuple(m.reachability.channels),
            reach_share=np.array(list(m.reachability.channels.values()), dtype=float),
            member_opt_in=np.array([m.reachability.member_opt_in.get(c, 0.0) for c in m.reachability.channels]),
            net_factor=1.0 / (1.0 + econ.vat_rate) if econ.prices_include_tax else 1.0,
            gross_margin=econ.gross_margin,
            discount_rate=econ.discount_rate,
            arrivals_per_month=m.acquisition.per_month,
            arrival_segment=idx[m.acquisition.segment],
            identified_share=m.identified_share,
            customers=m.customers,
            category_share=dict(m.categories),
            potential_mix=(np.array([[s.potential.get(b, 0.0) for b in ("low", "medium", "high")] for s in m.segments])
                           if all(s.potential is not None for s in m.segments) else None),
            lifecycle=m.lifecycles,
            value=m.value_bands,
            **_stores(m),
        )


def _stores(m: Market) -> dict:
    """The store network's arrays (CompiledMarket's store fields), none without a network."""
    net = m.stores
    if net is None:
        return {}
    channels = list(m.reachability.channels)
    mix = np.array(net.mix(m.segment_names), dtype=float)
    mix = mix / mix.sum(axis=1, keepdims=True)  # exact renormalisation after the spec's tolerance check
    share = np.array([s.share for s in net.stores], dtype=float)
    return dict(stores=net.names, store_share=share / share.sum(), store_mix=mix,
                store_enrol=np.array([s.enrolment for s in net.stores], dtype=float),
                store_reach=np.array([[s.reach.get(c, 1.0) for c in channels] for s in net.stores],
                                     dtype=float).reshape(len(net.stores), len(channels)))


@dataclass(frozen=True)
class CompiledProgram:
    """A program design as arrays (local currency; points in hundredths)."""

    name: str
    ppu: float
    rounding: int
    min_order: float
    category_factor: float
    bonus_enrolment: int         # centipoints
    bonus_first: int
    bonus_birthday: int
    bonus_referral: int
    cap_month: int               # centipoints, -1 = none
    qppu: float
    q_include_bonus: bool
    pending_months: int
    # tiers
    n_tiers: int
    tier_names: tuple[str, ...]
    thresholds: np.ndarray       # [T]
    earn_mult: np.ndarray        # [T]
    metric: int
    window: int
    window_months: int
    downgrade: int
    grace: int
    benefit_member_month: np.ndarray  # [T] currency per member-month
    benefit_per_purchase: np.ndarray  # [T] currency per purchase
    # rewards
    prices: np.ndarray           # [R] centipoints
    face: np.ndarray             # [R]
    cost: np.ndarray             # [R] cost to the company, net of VAT (a voucher's face value is a price reduction)
    reward_names: tuple[str, ...]
    eligible: np.ndarray         # [T, R] bool
    goal: np.ndarray             # [T] centipoints: price of the cheapest reward of the tier
    ladder: tuple[np.ndarray, ...]  # per tier: ascending prices a member can aim at (centipoints)
    cashback_threshold: int      # centipoints, 0 = none
    voucher_value: float
    voucher_use_rate: float
    voucher_cost: float          # cost of a voucher used, net of VAT (face x cost ratio x net factor)
    # expiry
    expiry: int
    expiry_months: int
    expiry_month: int
    expiry_min_age: int
    # enrolment
    automatic: bool
    fee: float
    fee_months: int              # 1 or 12
    trial_months: int
    eligible_segments: np.ndarray  # [S] bool
    invite_only: bool
    # costs
    setup: float
    amortisation_months: int
    running_per_year: float
    per_member_per_year: float
    value_per_point: float       # currency per point: nominal value to the member (IFRS 15 falls back on it)
    cost_per_point: float        # currency per point: nominal cost to the company, net of VAT
    endowed_progress: float = 0.0  # bonus stamps as a share of the first reward (mechanisms/endowed_progress.py)

    @property
    def ring(self) -> int:
        """Months of cumulative-earned snapshots kept (for expiry and pending points)."""
        need = [self.pending_months]
        if self.expiry == EXPIRY_AFTER:
            need.append(self.expiry_months)
        if self.expiry == EXPIRY_FIXED:
            need.append(self.expiry_min_age)
        return max(need) + 1

    @property
    def ladder_flat(self) -> np.ndarray:
        return np.concatenate(self.ladder).astype(np.float64) if self.ladder else np.zeros(0)

    @property
    def ladder_start(self) -> np.ndarray:
        return (np.cumsum([0] + [len(x) for x in self.ladder])[:-1]).astype(np.int64)

    @property
    def ladder_len(self) -> np.ndarray:
        return np.array([len(x) for x in self.ladder], dtype=np.int64)

    @property
    def has_tiers(self) -> bool:
        return self.n_tiers > 1

    @classmethod
    def from_spec(cls, p: Program, market: Market, *, extra_setup: float = 0.0, extra_running: float = 0.0,
                  extra_per_member: float = 0.0) -> "CompiledProgram":
        e = p.earn
        seg_names = market.segment_names
        econ = market.economics
        net = 1.0 / (1.0 + econ.vat_rate) if econ.prices_include_tax else 1.0  # a price reduction's net cost
        if market.categories and e.category_multipliers:
            factor = sum(share * e.category_multipliers.get(cat, 1.0) for cat, share in market.categories.items())
        else:
            factor = 1.0
        if p.tiers is not None:
            levels = p.tiers.levels
            tier_names = tuple(t.name for t in levels)
            thresholds = np.array([t.threshold for t in levels], dtype=float)
            earn_mult = np.array([t.earn_multiplier for t in levels], dtype=float)
            metric = {"qualifying_points": METRIC_POINTS, "spend": METRIC_SPEND, "purchases": METRIC_PURCHASES}[p.tiers.metric]
            w = p.tiers.window
            window = WINDOW_ROLLING if isinstance(w, RollingWindow) else WINDOW_CALENDAR if isinstance(w, CalendarYearWindow) else WINDOW_ANNIVERSARY
            window_months = w.months if isinstance(w, RollingWindow) else 12
            downgrade = {"never": DOWN_NEVER, "one_tier": DOWN_ONE, "to_supported": DOWN_SUPPORTED}[p.tiers.downgrade.policy]
            grace = p.tiers.downgrade.grace_months if window == WINDOW_ROLLING else math.ceil(p.tiers.downgrade.grace_months / 12)
            bmm = np.array([sum(b.cost_per_member_month for b in t.benefits) for t in levels])
            bpp = np.array([sum(b.cost_per_use * b.uses_per_purchase for b in t.benefits) for t in levels])
        else:
            tier_names, thresholds, earn_mult = ("member",), np.zeros(1), np.ones(1)
            metric, window, window_months, downgrade, grace = METRIC_POINTS, WINDOW_ROLLING, 12, DOWN_NEVER, 0
            bmm, bpp = np.zeros(1), np.zeros(1)
        T = len(tier_names)
        cat = p.rewards.catalogue
        prices = np.array([r.points_price * CENTI for r in cat], dtype=np.int64)
        eligible = np.array([[(not r.tiers) or (tn in r.tiers) for r in cat] for tn in tier_names], dtype=bool).reshape(T, len(cat))
        cb = p.rewards.cashback
        goal = np.zeros(T, dtype=np.int64)
        for ti in range(T):
            ps = prices[eligible[ti]]
            goal[ti] = ps.min() if len(ps) else (cb.threshold_points * CENTI if cb else 0)
            if cb is not None:
                goal[ti] = cb.threshold_points * CENTI if not len(ps) else min(goal[ti], cb.threshold_points * CENTI)
        ladder = []
        for ti in range(T):
            ps = np.unique(prices[eligible[ti]])
            if cb is not None:
                ps = np.unique(np.append(ps[ps < cb.threshold_points * CENTI], cb.threshold_points * CENTI))
            ladder.append(ps.astype(np.int64))
        cost = np.array([r.cost * (net if r.kind == "voucher" else 1.0) for r in cat], dtype=float)
        voucher_cost = cb.voucher_value * cb.voucher_cost_ratio * net if cb else 0.0
        if cb is not None:
            vpp = cb.voucher_value / cb.threshold_points
            cpp = voucher_cost / cb.threshold_points
        else:
            vpp = float(np.mean([r.face_value / r.points_price for r in cat]))
            cpp = float(np.mean(cost / np.array([r.points_price for r in cat])))
        x = p.expiry
        if isinstance(x, ExpireAfterMonths):
            expiry, em, emonth, eage = EXPIRY_AFTER, x.months, 0, 0
        elif isinstance(x, ExpireOnInactivity):
            expiry, em, emonth, eage = EXPIRY_INACTIVITY, x.months, 0, 0
        elif isinstance(x, ExpireOnFixedDate):
            expiry, em, emonth, eage = EXPIRY_FIXED, 0, x.month, x.min_age_months
        else:
            expiry, em, emonth, eage = EXPIRY_NEVER, 0, 0, 0
        fee = p.enrolment.fee
        elig = p.enrolment.eligibility.segments
        return cls(
            name=p.name,
            ppu=e.points_per_unit, rounding=ROUNDING[e.rounding], min_order=e.minimum_order, category_factor=factor,
            bonus_enrolment=e.bonuses.enrolment * CENTI, bonus_first=e.bonuses.first_purchase * CENTI,
            bonus_birthday=e.bonuses.birthday * CENTI, bonus_referral=e.bonuses.referral * CENTI,
            cap_month=-1 if e.caps.per_month is None else e.caps.per_month * CENTI,
            qppu=e.qualifying.points_per_unit, q_include_bonus=e.qualifying.include_bonuses,
            pending_months=math.ceil(e.pending_days / 30.4375) if e.pending_days else 0,
            n_tiers=T, tier_names=tier_names, thresholds=thresholds, earn_mult=earn_mult, metric=metric,
            window=window, window_months=window_months, downgrade=downgrade, grace=grace,
            benefit_member_month=bmm, benefit_per_purchase=bpp,
            prices=prices, face=np.array([r.face_value for r in cat], dtype=float),
            cost=cost, reward_names=tuple(r.name for r in cat),
            eligible=eligible, goal=goal, ladder=tuple(ladder),
            cashback_threshold=cb.threshold_points * CENTI if cb else 0,
            voucher_value=cb.voucher_value if cb else 0.0, voucher_use_rate=cb.voucher_use_rate if cb else 0.0,
            voucher_cost=voucher_cost,
            expiry=expiry, expiry_months=em, expiry_month=emonth, expiry_min_age=eage,
            automatic=p.enrolment.mode == "automatic",
            fee=fee.amount if fee else 0.0, fee_months=(12 if fee.period == "year" else 1) if fee else 12,
            trial_months=fee.trial_months if fee else 0,
            eligible_segments=np.array([(not elig) or (n in elig) for n in seg_names], dtype=bool),
            invite_only=p.enrolment.eligibility.invite_only,
            setup=p.costs.setup.amount + extra_setup, amortisation_months=p.costs.setup.amortisation_months,
            running_per_year=p.costs.running_per_year + extra_running,
            per_member_per_year=p.costs.per_member_per_year + extra_per_member,
            value_per_point=vpp, cost_per_point=cpp,
            endowed_progress=float(p.rewards.endowed_progress),
        )
