"""The oracle: a small per-agent SimPy implementation of the engine's mechanics, for tests.

Every customer is a :class:`Customer` object holding its own state (segment, own rate and
basket multipliers, membership, tier, a list of point batches spent oldest first, the tier
window as a deque, ...). A SimPy process ticks the months: at each tick the month's arrivals
join the base (and, in the design run's launch month, the design replaces the program running
until then), then every customer lives the month, going through the phases of
:mod:`simulator.engine.calendar` in order

    step (lifts, purchases, enrolment, earning, redemption) -> tiers review -> expiry
    -> fees billing -> segment transition -> record

and adding its own numbers to the month's record. Customers do not interact in the scenarios
the oracle supports (no referrals, campaigns or drives), so running each customer's month in
one go gives the same aggregates as running each phase for the whole base.

One oracle run is one of the engine's two runs (``run="design"`` or ``"baseline"``). The
programs of a month: in the design run, the playbook's ``baseline`` program (if any) before
the launch month and the design from it; in the baseline run, the ``baseline`` program for the
whole horizon.

A program already running at the start (``baseline`` names a design, running for
``baseline_age_months`` A). Before month 0 each base customer lives its history with that
program (:meth:`Customer.open_history`): it joins in month j in -A .. -1, the first month a
coin of probability p_i (the monthly join probability: hazard times P(a purchase in a month))
comes up -- so P(member) = 1 - (1 - p_i)^A and P(j = -A + k | member) is proportional to
(1 - p_i)^k p_i -- then lives the months j .. -1 in its starting segment (or, with
``past="reversed"``, in segments drawn back from it along the time-reversed chain of monthly
moves), without lifts, tiers or referrals: enrolment bonus in its join month, Poisson purchases and lognormal
baskets earning tier-0 points (cap, first-purchase and birthday bonuses), redemption on the
spendable balance, expiry at the end of each month. Its batches keep their earn months, so
the first months of the horizon expire what was earned A - E months back, not the whole
balance. History months are not recorded.

Migration. At the opening of the design's launch month, in the design run, every customer's
outstanding points O of the old program are redeemed and floor(O * v_old / v_new) points of the
design issued (v: value per point, cash-back voucher value / threshold or the catalogue's mean
face value / price), dated as the playbook's ``migration.converted_points`` says: keep_dates,
the new points outstanding from batches up to month m are floor(O_m * v_old / v_new) with O_m
the old points outstanding from batches up to m; new_issue, all in the launch month. Members
of the old program become members of the design (enrolled in the launch month, tier 0), unless
the design charges a fee (then nobody is a member; points are kept).

Fees (``simulator/engine/mechanisms/fees.py``): the enrolment hazard is multiplied by
exp(-fee_sensitivity_s * annual fee / expected annual spend_i); a member pays at the end of the
trial, then every fee period; at each renewal after the first payment it stays with
probability exp(-fee_sensitivity_s * net fee / net spend since the last bill), or leaves (tier
lost, points kept until they expire). ``fee_income`` is the cash received, net of VAT.

Money recorded as the engine records it (README, docs/model.md): revenue net of VAT, and
vouchers -- cash-back vouchers, catalogue rewards of kind ``voucher`` -- cost net of VAT (a
voucher is a price reduction).

The equations are those stated in the docstrings of ``simulator/engine/mechanisms/*.py``,
written again from the specs (:mod:`simulator.specs`) with plain Python loops. Randomness
comes from one ``numpy.random.default_rng(seed)`` with ordinary draws (``rng.poisson``,
``rng.lognormal``, ``rng.gamma``, ``rng.random``), never from the engine's counter-based
streams nor its compiled arrays: the oracle is an independent implementation, and the engine
must match it in distribution, not draw by draw.

Unsupported features (campaigns, drives, referral bonuses, invitation-only programs, a paid
program running at the start, calendar/anniversary tier windows, tier metrics other than
qualifying points, inactivity/fixed-date expiry) raise ``NotImplementedError``.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pandas as pd
import simpy
from scipy.special import gammaln

from simulator.scenario import Scenario
from simulator.specs.market import Market
from simulator.specs.program import ExpireAfterMonths, NeverExpire, Program, RollingWindow

NEVER = 10_000  # "months since" an event that has not happened
DAYS_PER_MONTH = 365.25 / 12

#: Monthly record columns (counts, money, whole points).
COLUMNS = (
    "customers", "members", "new_members", "left_members", "active", "purchases", "revenue", "member_revenue",
    "points_issued", "points_issued_purchase", "points_issued_bonus", "points_issued_migration",
    "points_redeemed", "points_redeemed_migration", "points_expired",
    "points_outstanding", "redemptions", "reward_cost", "reward_face_value", "vouchers_issued", "vouchers_used",
    "upgrades", "demotions", "fee_income",
)

#: How the history of a program running at the start dates the opening balance:
#: "batches" (each batch in its earn month, the rule), or -- to check that the tests notice a
#: wrong opening -- "last_month" (every point earned in month -1) or "snapshot_today" (every
#: past snapshot of earned points = today's total: every point as old as can be).
OPENINGS = ("batches", "last_month", "snapshot_today")

#: The segment of a history month: "start" -- the customer's segment at the start, held fixed
#: (the rule the oracle is given); "reversed" -- drawn back month by month from the segment at
#: the start along the time-reversed chain of members' monthly moves,
#: P*[i, j] = pi_j P[j, i] / pi_i with pi the chain's stationary distribution (what the engine's
#: mechanisms/history.py docstring says it does).
PASTS = ("start", "reversed")


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


def reversed_chain(P: list[list[float]]) -> list[list[float]]:
    """P*[i][j] = pi_j P[j][i] / pi_i, pi the stationary distribution of P (by iterating
    pi <- pi P from the uniform); a segment pi never visits keeps its own past."""
    S = len(P)
    pi = [1 / S] * S
    for _ in range(10_000):
        nxt = [sum(pi[i] * P[i][j] for i in range(S)) for j in range(S)]
        done = max(abs(a - b) for a, b in zip(nxt, pi)) < 1e-15
        pi = nxt
        if done:
            break
    out = []
    for i in range(S):
        if pi[i] > 1e-15:
            row = [pi[j] * P[j][i] / pi[i] for j in range(S)]
            out.append([x / sum(row) for x in row])
        else:
            out.append([1.0 if j == i else 0.0 for j in range(S)])
    return out


class Rules:
    """One program (the design, or the program running at the start) as plain Python numbers."""

    def __init__(self, p: Program, m: Market):
        if p.enrolment.eligibility.invite_only:
            raise NotImplementedError("oracle: invitation-only programs")
        self.name = p.name

        # --- earning
        e = p.earn
        self.ppu, self.rounding, self.min_order = e.points_per_unit, e.rounding, e.minimum_order
        if m.categories and e.category_multipliers:
            self.category_factor = sum(sh * e.category_multipliers.get(c, 1.0) for c, sh in m.categories.items())
        else:
            self.category_factor = 1.0
        self.bonus_enrolment, self.bonus_first, self.bonus_birthday = (
            e.bonuses.enrolment, e.bonuses.first_purchase, e.bonuses.birthday)
        self.bonus_referral = e.bonuses.referral
        self.cap = e.caps.per_month
        self.qppu, self.bonus_qualifies = e.qualifying.points_per_unit, e.qualifying.include_bonuses
        self.pending = math.ceil(e.pending_days / DAYS_PER_MONTH)

        # --- enrolment and fees
        self.automatic = p.enrolment.mode == "automatic"
        elig = p.enrolment.eligibility.segments
        self.eligible = [(not elig) or (s.name in elig) for s in m.segments]
        fee = p.enrolment.fee
        self.fee = fee.amount if fee is not None else 0.0
        self.fee_months = (12 if fee.period == "year" else 1) if fee is not None else 12
        self.trial = fee.trial_months if fee is not None else 0
        self.annual_fee = self.fee * 12 / self.fee_months

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

        # --- rewards: per tier, the catalogue rewards it may redeem (price, face, cost); a
        # voucher is a price reduction, so it costs its cost net of VAT (rewards.py)
        net = 1 / (1 + m.economics.vat_rate) if m.economics.prices_include_tax else 1.0
        self.rewards = []
        for tier in self.tiers:
            self.rewards.append([(r.points_price, r.face_value, r.cost * (net if r.kind == "voucher" else 1.0))
                                 for r in p.rewards.catalogue if not r.tiers or tier in r.tiers])
        self.cashback = p.rewards.cashback
        if self.cashback is not None:  # a cash-back voucher used, net of VAT
            self.voucher_cost = self.cashback.voucher_value * self.cashback.voucher_cost_ratio * net
        # the prices a member of each tier can aim at (goal gradient)
        self.ladder = []
        for rewards in self.rewards:
            prices = {price for price, _, _ in rewards}
            if self.cashback is not None:
                prices = {x for x in prices if x < self.cashback.threshold_points} | {self.cashback.threshold_points}
            self.ladder.append(sorted(prices))
        # value of a point to the member: a voucher's value per point, else the catalogue's
        # mean face value per point
        if self.cashback is not None:
            self.value_per_point = self.cashback.voucher_value / self.cashback.threshold_points
        else:
            values = [r.face_value / r.points_price for r in p.rewards.catalogue]
            self.value_per_point = sum(values) / len(values)

        # --- expiry
        if isinstance(p.expiry, ExpireAfterMonths):
            self.expiry = p.expiry.months
        elif isinstance(p.expiry, NeverExpire):
            self.expiry = None
        else:
            raise NotImplementedError("oracle: inactivity and fixed-date expiry")


class World:
    """The market, the calendar and the programs as plain Python numbers, read from the specs.

    ``perturb`` multiplies response parameters (e.g. ``{"goal_gradient": 2.0}``) in every
    segment: the tests use it to check that the comparison can fail.
    """

    def __init__(self, scenario: Scenario, agents: int, perturb: dict[str, float] | None = None):
        m, pb = scenario.market, scenario.playbook
        if pb.campaigns or pb.enrolment_drives:
            raise NotImplementedError("oracle: campaigns and enrolment drives")
        self.mech = pb.mechanisms
        self.design = Rules(scenario.program, m)
        self.baseline = Rules(scenario.baseline, m) if scenario.baseline is not None else None
        if self.baseline is not None and self.baseline.fee > 0:
            raise NotImplementedError("oracle: a paid program running at the start")
        if self.mech.referrals and any(r is not None and r.bonus_referral for r in (self.design, self.baseline)):
            raise NotImplementedError("oracle: referrals")
        self.age = pb.baseline_age_months
        migration = getattr(pb, "migration", None)
        self.converted_points = migration.converted_points if migration is not None else "keep_dates"
        # every tier name either program records (the engine's members_tier_* columns)
        self.tier_names = list(dict.fromkeys(self.design.tiers + (self.baseline.tiers if self.baseline else [])))

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
        # the time-reversed chain of the moves in force before the start (PASTS)
        self.P_past = reversed_chain(self.P_member if self.mech.transitions else self.P)

        # --- calendar
        start = pb.start or pb.launch
        self.start_month = start.month
        self.horizon = pb.horizon_months
        self.launch = (pb.launch.year - start.year) * 12 + pb.launch.month - start.month

    def program(self, run: str, t: int) -> Rules | None:
        """The program of month t in a run (None: no program)."""
        if run == "design" and t >= self.launch:
            return self.design
        return self.baseline

    def calendar_month(self, t: int) -> int:
        """Calendar month (1..12) of month t, negative t (before the start) included."""
        return (self.start_month - 1 + t) % 12 + 1


class Customer:
    """One customer: own attributes, drawn once, and program state."""

    def __init__(self, oracle: "Oracle", segment: int, window: int):
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
        self.enrol_month = -1
        self.tier = 0
        self.below = 0                 # consecutive reviews below the tier's threshold
        self.since_reward = NEVER
        self.since_demotion = NEVER
        self.first_pending = False
        self.next_bill = -1            # month of the next fee, -1 none
        self.spend_since_bill = 0.0    # net spend since the last bill
        self.batches: list[list] = []  # [month earned, points left], oldest first
        self.window: deque = deque([0.0] * window, maxlen=window)

    # ------------------------------------------------------------ points
    def spendable(self, t: int, rules: Rules) -> float:
        """Points of batches old enough to spend (earned in month t - pending or before)."""
        return sum(left for month, left in self.batches if month <= t - rules.pending)

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

    # ------------------------------------------------------------ joining
    def hazard(self, rules: Rules) -> float:
        """h_i of enrolment.py: propensity x self-selection x the fee factor."""
        w = self.oracle.world
        s = self.segment
        r = w.response[s]
        h = r["enrolment_propensity"]
        if w.mech.self_selection:
            h *= self.rate_mult ** r["self_selection"] / w.selection_norm[s]
        if rules.fee > 0:
            # expected annual spend at the segment's rate and mean basket (no season, no lift)
            annual_spend = 12 * w.rate[s] * self.rate_mult * w.basket_mean[s] * self.basket_mult
            h *= math.exp(-r["fee_sensitivity"] * rules.annual_fee / max(annual_spend, 1e-9))
        return h

    def join(self, t: int, rules: Rules) -> None:
        self.member, self.enrol_month, self.tier, self.below = True, t, 0, 0
        self.since_reward = self.since_demotion = NEVER
        self.first_pending = True
        if rules.fee > 0:
            self.next_bill, self.spend_since_bill = t + rules.trial, 0.0

    # ------------------------------------------------------------ the program's past
    def open_history(self, rules: Rules, age: int, opening: str = "batches", past: str = "start") -> None:
        """The customer's life with a program that has run ``age`` months before the start
        (module docstring): join month, then months j .. -1, unrecorded. ``past`` is the
        segment of the history months (:data:`PASTS`)."""
        o = self.oracle
        w, rng = o.world, o.rng
        s = self.segment
        if not (self.identified and rules.eligible[s]):
            return
        p_buy = 1 - math.exp(-w.rate[s] * self.rate_mult)  # P(a purchase in a month), no season
        p = p_buy if rules.automatic else min(self.hazard(rules), 1.0) * p_buy
        joined = None
        for m in range(-age, 0):  # the first month the coin comes up
            if rng.random() < p:
                joined = m
                break
        if joined is None:
            return
        self.join(joined, rules)
        segment = dict.fromkeys(range(joined, 0), s)
        if past == "reversed":  # walk back from the segment at the start, one month at a time
            for m in range(-1, joined - 1, -1):
                s = segment[m] = draw_index(rng, w.P_past[s])
        for m in range(joined, 0):
            s = segment[m]
            mu, sig = w.basket_mean[s] * self.basket_mult, w.basket_sigma[s]
            cm = w.calendar_month(m)
            if m == joined:
                self.credit(m, rules.bonus_enrolment)
            n = int(rng.poisson(w.rate[s] * self.rate_mult * w.season[cm - 1]))
            points = 0
            for _ in range(n):
                a = float(rng.lognormal(math.log(mu) - sig * sig / 2, sig))
                if a >= rules.min_order:
                    points += round_points(rules.ppu * a * w.net_factor * rules.category_factor * rules.earn_mult[0],
                                           rules.rounding)
            if rules.cap is not None:
                points = min(points, rules.cap)
            bonus = 0
            if self.first_pending and n > 0:
                bonus += rules.bonus_first
                self.first_pending = False
            if self.birthday == cm:
                bonus += rules.bonus_birthday
            self.credit(m, points + bonus)
            # redemption on the spendable balance: whole cash-back blocks; or, with the
            # segment's propensity, the dearest tier-0 reward the balance affords
            balance = self.spendable(m, rules)
            redeemed = 0
            if rules.cashback is not None:
                redeemed += int(balance // rules.cashback.threshold_points) * rules.cashback.threshold_points
            affordable = [rw for rw in rules.rewards[0] if rw[0] <= balance - redeemed]
            if affordable and rng.random() < w.response[s]["redemption_propensity"]:
                redeemed += max(affordable, key=lambda rw: rw[0])[0]
            self.consume(redeemed)
            if rules.expiry is not None:
                self.expire(m, rules.expiry)
        if opening == "last_month":
            self.batches = [[-1, self.outstanding()]] if self.outstanding() else []
        elif opening == "snapshot_today":
            self.batches = [[-NEVER, self.outstanding()]] if self.outstanding() else []

    # ------------------------------------------------------------ the launch
    def migrate(self, t: int, old: Rules, new: Rules, rec: dict) -> None:
        """The design replaces the program running until month t (module docstring)."""
        w = self.oracle.world
        held = self.outstanding()
        if held > 0:
            if w.converted_points == "keep_dates":
                batches, old_upto, new_upto = [], 0.0, 0
                for month, left in self.batches:  # oldest first
                    old_upto += left
                    upto = math.floor(old_upto * old.value_per_point / new.value_per_point)
                    if upto > new_upto:
                        batches.append([month, upto - new_upto])
                    new_upto = upto
            else:
                converted = math.floor(held * old.value_per_point / new.value_per_point)
                batches = [[t, converted]] if converted else []
            rec["points_redeemed"] += held
            rec["points_redeemed_migration"] += held
            rec["points_issued_migration"] += sum(left for _, left in batches)
            self.batches = batches
        if new.fee > 0:
            self.member = False
        elif self.member:
            self.enrol_month = t
        self.next_bill = -1
        self.tier, self.below = 0, 0
        self.window = deque([0.0] * new.window, maxlen=new.window)

    # ------------------------------------------------------------ one month
    def lift(self, t: int, rules: Rules) -> float:
        """L_i of purchases.py: the product of the program's rate multipliers."""
        w, mech = self.oracle.world, self.oracle.world.mech
        if not self.member:
            return 1.0
        r = w.response[self.segment]
        lift = 1.0
        if mech.goal_gradient:
            balance = self.spendable(t, rules)
            progress = 1.0
            for price in rules.ladder[self.tier]:
                if balance < price:                    # the cheapest reward not yet affordable
                    progress = balance / price
                    break
            lift *= 1 + r["goal_gradient"] * (progress - 0.5)
        if mech.rewarded_behaviour:
            lift *= 1 + r["rewarded_behaviour"] * 2 ** (-self.since_reward / r["rewarded_half_life"])
        if mech.tier_status:
            if len(rules.tiers) > 1:
                lift *= 1 + r["tier_status"] * self.tier / (len(rules.tiers) - 1)
            lift *= 1 - r["demotion_effect"] * 2 ** (-self.since_demotion / r["rewarded_half_life"])
        return lift

    def month(self, t: int) -> None:
        o = self.oracle
        w, rng, rec = o.world, o.rng, o.records[t]
        s = self.segment
        cm = w.calendar_month(t)
        rules = w.program(o.run_name, t)
        program = rules is not None

        # purchases: Poisson count, lognormal amounts of mean basket_s * b_i
        lam = w.rate[s] * self.rate_mult * w.season[cm - 1] * (self.lift(t, rules) if program else 1.0)
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
            if not self.member and self.identified and rules.eligible[s] and n > 0:
                if rules.automatic:
                    joins = True
                else:
                    joins = rng.random() < min(self.hazard(rules), 1.0)
                if joins:
                    self.join(t, rules)
                    enrolment_bonus = rules.bonus_enrolment
                    rec["new_members"] += 1

            qualifying = 0.0
            if self.member:
                rec["member_revenue"] += spend
                # earning, per transaction
                purchase_points = 0
                for a in baskets:
                    if a >= rules.min_order:
                        net = a * w.net_factor
                        purchase_points += round_points(
                            rules.ppu * net * rules.category_factor * rules.earn_mult[self.tier], rules.rounding)
                        qualifying += round_points(rules.qppu * net, rules.rounding)
                if rules.cap is not None:
                    purchase_points = min(purchase_points, rules.cap)
                bonus = enrolment_bonus
                if self.first_pending and n > 0:
                    bonus += rules.bonus_first
                if self.birthday == cm:
                    bonus += rules.bonus_birthday
                if rules.bonus_qualifies:  # every bonus of earn.bonuses, the welcome bonus included (specs/program.py)
                    qualifying += bonus
                self.credit(t, purchase_points + bonus)
                rec["points_issued_purchase"] += purchase_points
                rec["points_issued_bonus"] += bonus
            if n > 0:
                self.first_pending = False
            if rules.fee > 0:
                self.spend_since_bill += spend

            # redemption
            if self.member:
                balance = self.spendable(t, rules)
                redeemed = 0
                if rules.cashback is not None:
                    cb = rules.cashback
                    blocks = int(balance // cb.threshold_points)
                    if blocks:
                        used = min(math.floor(blocks * cb.voucher_use_rate + rng.random()), blocks)
                        redeemed += blocks * cb.threshold_points
                        rec["vouchers_issued"] += blocks
                        rec["vouchers_used"] += used
                        rec["reward_face_value"] += used * cb.voucher_value
                        rec["reward_cost"] += used * rules.voucher_cost
                affordable = [rw for rw in rules.rewards[self.tier] if rw[0] <= balance - redeemed]
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
            if len(rules.tiers) > 1:
                self.window.append(qualifying if self.member else 0.0)
                if self.member:
                    total = sum(self.window)
                    supported = max(i for i, th in enumerate(rules.thresholds) if total + 1e-9 >= th)
                    if supported > self.tier:
                        self.tier, self.below = supported, 0
                        rec["upgrades"] += 1
                    if rules.downgrade != "never":
                        self.below = self.below + 1 if supported < self.tier else 0
                        if self.below > rules.grace:
                            self.tier = max(self.tier - 1, supported) if rules.downgrade == "one_tier" else supported
                            self.below, self.since_demotion = 0, 0
                            rec["demotions"] += 1

            # expiry at the end of the month, oldest batches first
            if rules.expiry is not None:
                rec["points_expired"] += self.expire(t, rules.expiry)

            # fees: the bill at the end of the trial, then every period; renewals may be refused
            if rules.fee > 0 and self.member and self.next_bill == t:
                renewal = self.enrol_month + rules.trial < t  # the first bill is the sign-up payment
                p_renew = math.exp(-w.response[s]["fee_sensitivity"] * rules.fee * w.net_factor
                                   / max(self.spend_since_bill, 1e-9))
                if not renewal or rng.random() < p_renew:
                    self.next_bill, self.spend_since_bill = t + rules.fee_months, 0.0
                    rec["fee_income"] += rules.fee * w.net_factor  # cash received, net of VAT
                else:
                    self.member, self.tier, self.next_bill = False, 0, -1
                    rec["left_members"] += 1

        # segment transition for next month
        P = w.P_member if (program and self.member and w.mech.transitions) else w.P
        self.segment = draw_index(rng, P[s])

        # the month's record
        if self.member:
            rec["members"] += 1
            rec[f"members_tier_{rules.tiers[self.tier]}"] += 1
        rec["points_outstanding"] += self.outstanding()


class Oracle:
    """A replication of one run (``run``: "design" or "baseline"), one customer at a time.

    ``Oracle(scenario, agents=N, seed=S).run()`` returns a DataFrame with one row per month
    and the engine's column names (points in whole points, counts and money scaled by
    ``market.customers / agents``). ``opening`` dates the opening balance of a program
    running at the start (:data:`OPENINGS`; only the default is the rule); ``past`` gives the
    segments of its history months (:data:`PASTS`).
    """

    def __init__(self, scenario: Scenario, *, agents: int, seed: int, perturb: dict[str, float] | None = None,
                 run: str = "design", opening: str = "batches", past: str = "start"):
        if run not in ("design", "baseline"):
            raise ValueError(f"run must be 'design' or 'baseline', got {run!r}")
        if opening not in OPENINGS:
            raise ValueError(f"opening must be one of {OPENINGS}, got {opening!r}")
        if past not in PASTS:
            raise ValueError(f"past must be one of {PASTS}, got {past!r}")
        self.past = past
        self.world = World(scenario, agents, perturb)
        self.agents = agents
        self.run_name = run
        self.opening = opening
        self.rng = np.random.default_rng(seed)
        columns = COLUMNS + tuple(f"members_tier_{t}" for t in self.world.tier_names)
        self.records = [dict.fromkeys(columns, 0.0) for _ in range(self.world.horizon)]

    def months(self, env: simpy.Environment):
        """The clock: one tick a month; arrivals join (and the design replaces the program
        running until then in its launch month), then every customer lives the month."""
        w = self.world
        first = w.program(self.run_name, 0) or w.design  # the tier window the customers start with
        customers = [Customer(self, draw_index(self.rng, w.share), first.window) for _ in range(self.agents)]
        if w.baseline is not None:  # the program running at the start: each base customer's past
            for customer in customers:
                customer.open_history(w.baseline, w.age, self.opening, self.past)
        while env.now < w.horizon:
            t = int(env.now)
            arrivals = int(round(w.arrivals_per_month * (t + 1))) - int(round(w.arrivals_per_month * t))
            customers += [Customer(self, w.arrival_segment, (w.program(self.run_name, t) or w.design).window)
                          for _ in range(arrivals)]
            if self.run_name == "design" and t == w.launch and w.baseline is not None:
                for customer in customers:
                    customer.migrate(t, w.baseline, w.design, self.records[t])
            for customer in customers:
                customer.month(t)
            yield env.timeout(1)

    def run(self) -> pd.DataFrame:
        env = simpy.Environment()
        env.process(self.months(env))
        env.run(until=self.world.horizon)
        df = pd.DataFrame(self.records)
        df["points_issued"] = df["points_issued_purchase"] + df["points_issued_bonus"] + df["points_issued_migration"]
        scaled = [c for c in df.columns if c not in ("month",)]
        df[scaled] = df[scaled] * self.world.scale
        df.insert(0, "month", np.arange(1, len(df) + 1))
        return df
