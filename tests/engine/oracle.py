"""The oracle: a small per-agent SimPy implementation of the engine's mechanics, for tests.

Every customer is a :class:`Customer` object holding its own state (segment, own rate and
basket multipliers, membership, tier, a list of point batches spent oldest first, the tier
window as a deque, ...). A SimPy process ticks the months: at each tick the month's arrivals
join the base, then every customer lives the month, going through the phases of
:mod:`simulator.engine.calendar` in order

    step (lifts, purchases, enrolment, earning, redemption) -> tiers review -> expiry
    -> segment transition -> record

and adding its own numbers to the month's record. Customers do not interact in the scenarios
the oracle supports (no referrals, campaigns, drives or fees), so running each customer's
month in one go gives the same aggregates as running each phase for the whole base.

The equations are those stated in the docstrings of ``simulator/engine/mechanisms/*.py``,
written again from the specs (:mod:`simulator.specs`) with plain Python loops. Randomness
comes from one ``numpy.random.default_rng(seed)`` with ordinary draws (``rng.poisson``,
``rng.lognormal``, ``rng.gamma``, ``rng.random``), never from the engine's counter-based
streams nor its compiled arrays: the oracle is an independent implementation, and the engine
must match it in distribution, not draw by draw.

Unsupported features (fees, campaigns, drives, referral bonuses, a baseline program,
calendar/anniversary tier windows, inactivity/fixed-date expiry) raise ``NotImplementedError``.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pandas as pd
import simpy
from scipy.special import gammaln

from simulator.scenario import Scenario
from simulator.specs.program import ExpireAfterMonths, NeverExpire, RollingWindow

NEVER = 10_000  # "months since" an event that has not happened
DAYS_PER_MONTH = 365.25 / 12

#: Monthly record columns (counts, money, whole points).
COLUMNS = (
    "customers", "members", "new_members", "active", "purchases", "revenue", "member_revenue",
    "points_issued", "points_issued_purchase", "points_issued_bonus", "points_redeemed", "points_expired",
    "points_outstanding", "redemptions", "reward_cost", "reward_face_value", "vouchers_issued", "vouchers_used",
    "upgrades", "demotions",
)


def draw_index(rng: np.random.Generator, probs: list[float]) -> int:
    """Inverse-CDF draw of an index with the given probabilities."""
    u = float(rng.random())
    acc = 0.0
    for j, p in enumerate(probs):
        acc += p
        if u < acc:
            return j
    return max(j for j, p in enumerate(probs) if p > 0)


def round_points(x: float, rule: str) -> float:
    """A transaction's points by the design's rounding rule ("none": to the hundredth)."""
    if rule == "floor":
        return math.floor(x)
    if rule == "round":
        return math.floor(x + 0.5)
    if rule == "ceil":
        return math.ceil(x)
    return math.floor(x * 100 + 0.5) / 100


class World:
    """The market and the program as plain Python numbers, read from the specs.

    ``perturb`` multiplies response parameters (e.g. ``{"goal_gradient": 2.0}``) in every
    segment: the tests use it to check that the comparison can fail.
    """

    def __init__(self, scenario: Scenario, agents: int, perturb: dict[str, float] | None = None):
        m, p, pb = scenario.market, scenario.program, scenario.playbook
        if scenario.baseline is not None:
            raise NotImplementedError("oracle: baseline programs")
        if pb.campaigns or pb.enrolment_drives:
            raise NotImplementedError("oracle: campaigns and enrolment drives")
        if p.enrolment.fee is not None or p.enrolment.eligibility.invite_only:
            raise NotImplementedError("oracle: paid or invitation-only programs")
        if p.earn.bonuses.referral and pb.mechanisms.referrals:
            raise NotImplementedError("oracle: referrals")
        self.mech = pb.mechanisms

        # --- market
        self.segments = [s.name for s in m.segments]
        S = len(self.segments)
        total_share = sum(s.share for s in m.segments)
        self.share = [s.share / total_share for s in m.segments]
        self.rate = [s.purchase_rate for s in m.segments]
        self.rate_shape = [s.rate_shape for s in m.segments]
        self.basket_mean = [s.basket.mean for s in m.segments]
        # lognormal sigma for a coefficient of variation cv: sqrt(log(1 + cv^2))
        self.basket_sigma = [math.sqrt(math.log(1 + s.basket.cv ** 2)) for s in m.segments]
        self.individual_sigma = [math.sqrt(math.log(1 + s.basket.individual_cv ** 2)) for s in m.segments]
        self.lapsed = [s.lapsed for s in m.segments]
        self.season = list(m.seasonality)
        self.net_factor = 1 / (1 + m.economics.vat_rate) if m.economics.prices_include_tax else 1.0
        self.identified_share = m.identified_share
        self.scale = m.customers / agents
        self.arrivals_per_month = m.acquisition.per_month / self.scale
        self.arrival_segment = self.segments.index(m.acquisition.segment)
        self.response = []
        for name in self.segments:
            r = dict(m.response.for_segment(name))
            for key, factor in (perturb or {}).items():
                r[key] *= factor
            self.response.append(r)
        # E[m^beta] for m ~ Gamma(k, 1/k): Gamma(k + beta) / (Gamma(k) k^beta)
        self.selection_norm = []
        for s in range(S):
            k, beta = self.rate_shape[s], self.response[s]["self_selection"]
            self.selection_norm.append(math.exp(gammaln(k + beta) - gammaln(k) - beta * math.log(k)))
        # transitions: P for everyone; for members, moves into lapsed segments cut by e_s
        self.P = []
        for name in self.segments:
            row = [m.transitions[name].get(other, 0.0) for other in self.segments]
            self.P.append([x / sum(row) for x in row])
        self.P_member = []
        for s in range(S):
            row = list(self.P[s])
            if not self.lapsed[s]:
                e = self.response[s]["transition_effect"]
                for j in range(S):
                    if self.lapsed[j] and j != s:
                        row[s] += row[j] * e
                        row[j] *= 1 - e
            self.P_member.append(row)

        # --- calendar
        start = pb.start or pb.launch
        self.start_month = start.month
        self.horizon = pb.horizon_months
        self.launch = (pb.launch.year - start.year) * 12 + pb.launch.month - start.month

        # --- program: earning
        e = p.earn
        self.ppu, self.rounding, self.min_order = e.points_per_unit, e.rounding, e.minimum_order
        if m.categories and e.category_multipliers:
            self.category_factor = sum(sh * e.category_multipliers.get(c, 1.0) for c, sh in m.categories.items())
        else:
            self.category_factor = 1.0
        self.bonus_enrolment, self.bonus_first, self.bonus_birthday = (
            e.bonuses.enrolment, e.bonuses.first_purchase, e.bonuses.birthday)
        self.cap = e.caps.per_month
        self.qppu, self.bonus_qualifies = e.qualifying.points_per_unit, e.qualifying.include_bonuses
        self.pending = math.ceil(e.pending_days / DAYS_PER_MONTH)
        self.automatic = p.enrolment.mode == "automatic"
        elig = p.enrolment.eligibility.segments
        self.eligible = [(not elig) or (n in elig) for n in self.segments]

        # --- tiers
        if p.tiers is None:
            self.tiers = ["member"]
            self.thresholds, self.earn_mult = [0.0], [1.0]
            self.window, self.downgrade, self.grace = 1, "never", 0
        else:
            if not isinstance(p.tiers.window, RollingWindow):
                raise NotImplementedError("oracle: calendar-year and anniversary tier windows")
            if p.tiers.metric != "qualifying_points":
                raise NotImplementedError("oracle: tier metrics other than qualifying points")
            self.tiers = [t.name for t in p.tiers.levels]
            self.thresholds = [t.threshold for t in p.tiers.levels]
            self.earn_mult = [t.earn_multiplier for t in p.tiers.levels]
            self.window = p.tiers.window.months
            self.downgrade, self.grace = p.tiers.downgrade.policy, p.tiers.downgrade.grace_months

        # --- rewards: per tier, the catalogue rewards it may redeem (price, face, cost)
        self.rewards = []
        for tier in self.tiers:
            self.rewards.append([(r.points_price, r.face_value, r.cost) for r in p.rewards.catalogue
                                 if not r.tiers or tier in r.tiers])
        self.cashback = p.rewards.cashback
        # the prices a member of each tier can aim at (goal gradient)
        self.ladder = []
        for rewards in self.rewards:
            prices = {price for price, _, _ in rewards}
            if self.cashback is not None:
                prices = {x for x in prices if x < self.cashback.threshold_points} | {self.cashback.threshold_points}
            self.ladder.append(sorted(prices))

        # --- expiry
        if isinstance(p.expiry, ExpireAfterMonths):
            self.expiry = p.expiry.months
        elif isinstance(p.expiry, NeverExpire):
            self.expiry = None
        else:
            raise NotImplementedError("oracle: inactivity and fixed-date expiry")

    def program_on(self, t: int) -> bool:
        return t >= self.launch

    def calendar_month(self, t: int) -> int:
        return (self.start_month - 1 + t) % 12 + 1


class Customer:
    """One customer: own attributes, drawn once, and program state."""

    def __init__(self, oracle: "Oracle", segment: int):
        w, rng = oracle.world, oracle.rng
        self.oracle = oracle
        self.segment = segment
        k = w.rate_shape[segment]
        self.rate_mult = float(rng.gamma(k, 1 / k))                      # mean 1 (NBD heterogeneity)
        sig = w.individual_sigma[segment]
        self.basket_mult = float(rng.lognormal(-sig * sig / 2, sig))  # mean 1
        self.identified = bool(rng.random() < w.identified_share)
        self.birthday = int(rng.integers(1, 13))
        self.member = False
        self.tier = 0
        self.below = 0                 # consecutive reviews below the tier's threshold
        self.since_reward = NEVER
        self.since_demotion = NEVER
        self.first_pending = False
        self.batches: list[list] = []  # [month earned, points left], oldest first
        self.window: deque = deque([0.0] * w.window, maxlen=w.window)

    # ------------------------------------------------------------ points
    def spendable(self, t: int) -> float:
        """Points of batches old enough to spend (earned in month t - pending or before)."""
        return sum(left for month, left in self.batches if month <= t - self.oracle.world.pending)

    def outstanding(self) -> float:
        return sum(left for _, left in self.batches)

    def credit(self, t: int, points: float) -> None:
        if points:
            self.batches.append([t, points])

    def consume(self, points: float) -> None:
        """Take points from the oldest batches first."""
        for batch in self.batches:
            take = min(batch[1], points)
            batch[1] -= take
            points -= take
        assert points < 1e-9, "consumed more than the batches hold"
        self.batches = [b for b in self.batches if b[1] > 0]

    def expire(self, t: int, months: int) -> float:
        """Drop what is left of batches earned in month t - months or before."""
        gone = sum(left for month, left in self.batches if month <= t - months)
        self.batches = [b for b in self.batches if b[0] > t - months]
        return gone

    # ------------------------------------------------------------ one month
    def lift(self, t: int) -> float:
        """L_i of purchases.py: the product of the program's rate multipliers."""
        w, mech = self.oracle.world, self.oracle.world.mech
        if not self.member:
            return 1.0
        r = w.response[self.segment]
        lift = 1.0
        if mech.goal_gradient:
            balance = self.spendable(t)
            progress = 1.0
            for price in w.ladder[self.tier]:
                if balance < price:                    # the cheapest reward not yet affordable
                    progress = balance / price
                    break
            lift *= 1 + r["goal_gradient"] * (progress - 0.5)
        if mech.rewarded_behaviour:
            lift *= 1 + r["rewarded_behaviour"] * 2 ** (-self.since_reward / r["rewarded_half_life"])
        if mech.tier_status:
            if len(w.tiers) > 1:
                lift *= 1 + r["tier_status"] * self.tier / (len(w.tiers) - 1)
            lift *= 1 - r["demotion_effect"] * 2 ** (-self.since_demotion / r["rewarded_half_life"])
        return lift

    def month(self, t: int) -> None:
        o = self.oracle
        w, rng, rec = o.world, o.rng, o.records[t]
        s = self.segment
        cm = w.calendar_month(t)
        program = w.program_on(t)

        # purchases: Poisson count, lognormal amounts of mean basket_s * b_i
        lam = w.rate[s] * self.rate_mult * w.season[cm - 1] * (self.lift(t) if program else 1.0)
        n = int(rng.poisson(lam))
        mu, sig = w.basket_mean[s] * self.basket_mult, w.basket_sigma[s]
        baskets = [float(rng.lognormal(math.log(mu) - sig * sig / 2, sig)) for _ in range(n)]
        spend = sum(a * w.net_factor for a in baskets)
        rec["customers"] += 1
        rec["active"] += n > 0
        rec["purchases"] += n
        rec["revenue"] += spend

        if program:
            # enrolment, at the till with a purchase
            enrolment_bonus = 0
            if not self.member and self.identified and w.eligible[s] and n > 0:
                if w.automatic:
                    joins = True
                else:
                    r = w.response[s]
                    selection = self.rate_mult ** r["self_selection"] / w.selection_norm[s] if w.mech.self_selection else 1.0
                    joins = rng.random() < min(r["enrolment_propensity"] * selection, 1.0)
                if joins:
                    self.member, self.tier, self.below = True, 0, 0
                    self.since_reward = self.since_demotion = NEVER
                    self.first_pending = True
                    enrolment_bonus = w.bonus_enrolment
                    rec["new_members"] += 1

            qualifying = 0.0
            if self.member:
                rec["member_revenue"] += spend
                # earning, per transaction
                purchase_points = 0
                for a in baskets:
                    if a >= w.min_order:
                        net = a * w.net_factor
                        purchase_points += round_points(w.ppu * net * w.category_factor * w.earn_mult[self.tier], w.rounding)
                        qualifying += round_points(w.qppu * net, w.rounding)
                if w.cap is not None:
                    purchase_points = min(purchase_points, w.cap)
                bonus = enrolment_bonus
                if self.first_pending and n > 0:
                    bonus += w.bonus_first
                if self.birthday == cm:
                    bonus += w.bonus_birthday
                if w.bonus_qualifies:  # every bonus of earn.bonuses, the welcome bonus included (specs/program.py)
                    qualifying += bonus
                self.credit(t, purchase_points + bonus)
                rec["points_issued_purchase"] += purchase_points
                rec["points_issued_bonus"] += bonus
            if n > 0:
                self.first_pending = False

            # redemption
            if self.member:
                balance = self.spendable(t)
                redeemed = 0
                if w.cashback is not None:
                    blocks = int(balance // w.cashback.threshold_points)
                    if blocks:
                        used = min(math.floor(blocks * w.cashback.voucher_use_rate + rng.random()), blocks)
                        redeemed += blocks * w.cashback.threshold_points
                        rec["vouchers_issued"] += blocks
                        rec["vouchers_used"] += used
                        rec["reward_face_value"] += used * w.cashback.voucher_value
                        rec["reward_cost"] += used * w.cashback.voucher_value * w.cashback.voucher_cost_ratio
                affordable = [rw for rw in w.rewards[self.tier] if rw[0] <= balance - redeemed]
                if affordable and rng.random() < w.response[s]["redemption_propensity"]:
                    price, face, cost = max(affordable, key=lambda rw: rw[0])   # the dearest it can afford
                    redeemed += price
                    rec["reward_face_value"] += face
                    rec["reward_cost"] += cost
                self.consume(redeemed)
                rec["points_redeemed"] += redeemed
                rec["redemptions"] += redeemed > 0
                self.since_reward = 0 if redeemed else min(self.since_reward + 1, NEVER)
                self.since_demotion = min(self.since_demotion + 1, NEVER)

            # tiers: rolling window of qualifying points, upgrade at once, monthly review
            if len(w.tiers) > 1:
                self.window.append(qualifying if self.member else 0.0)
                if self.member:
                    total = sum(self.window)
                    supported = max(i for i, th in enumerate(w.thresholds) if total + 1e-9 >= th)
                    if supported > self.tier:
                        self.tier, self.below = supported, 0
                        rec["upgrades"] += 1
                    if w.downgrade != "never":
                        self.below = self.below + 1 if supported < self.tier else 0
                        if self.below > w.grace:
                            self.tier = max(self.tier - 1, supported) if w.downgrade == "one_tier" else supported
                            self.below, self.since_demotion = 0, 0
                            rec["demotions"] += 1

            # expiry at the end of the month, oldest batches first
            if w.expiry is not None:
                rec["points_expired"] += self.expire(t, w.expiry)

        # segment transition for next month
        P = w.P_member if (program and self.member and w.mech.transitions) else w.P
        self.segment = draw_index(rng, P[s])

        # the month's record
        if self.member:
            rec["members"] += 1
            rec[f"members_tier_{w.tiers[self.tier]}"] += 1
        rec["points_outstanding"] += self.outstanding()


class Oracle:
    """A replication of the design run, one customer at a time.

    ``Oracle(scenario, agents=N, seed=S).run()`` returns a DataFrame with one row per month
    and the engine's column names (points in whole points, counts and money scaled by
    ``market.customers / agents``).
    """

    def __init__(self, scenario: Scenario, *, agents: int, seed: int, perturb: dict[str, float] | None = None):
        self.world = World(scenario, agents, perturb)
        self.agents = agents
        self.rng = np.random.default_rng(seed)
        columns = COLUMNS + tuple(f"members_tier_{t}" for t in self.world.tiers)
        self.records = [dict.fromkeys(columns, 0.0) for _ in range(self.world.horizon)]

    def months(self, env: simpy.Environment):
        """The clock: one tick a month; arrivals join, then every customer lives the month."""
        w = self.world
        customers = [Customer(self, draw_index(self.rng, w.share)) for _ in range(self.agents)]
        while env.now < w.horizon:
            t = int(env.now)
            arrivals = int(round(w.arrivals_per_month * (t + 1))) - int(round(w.arrivals_per_month * t))
            customers += [Customer(self, w.arrival_segment) for _ in range(arrivals)]
            for customer in customers:
                customer.month(t)
            yield env.timeout(1)

    def run(self) -> pd.DataFrame:
        env = simpy.Environment()
        env.process(self.months(env))
        env.run(until=self.world.horizon)
        df = pd.DataFrame(self.records)
        df["points_issued"] = df["points_issued_purchase"] + df["points_issued_bonus"]
        scaled = [c for c in df.columns if c not in ("month",)]
        df[scaled] = df[scaled] * self.world.scale
        df.insert(0, "month", np.arange(1, len(df) + 1))
        return df
