"""One replication: the design and its baseline, stepped together on the same agents.

Both runs share the population and every random draw (common random numbers): each month one
array of uniforms per decision point is drawn for the whole population and read by both runs.
With every behavioural mechanism switched off the program changes no purchase, so the
incremental revenue is exactly zero; with them on, the difference is the program's effect and
not sampling noise.

The calendar (:mod:`simulator.engine.calendar`) drives the month's phases; each phase calls a
method here that updates both runs with array operations (loops run over runs, segments,
tiers, rewards or campaigns, never over customers).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from simulator.engine import kernels
from simulator.engine.calendar import Calendar
from simulator.engine.compiled import CENTI, EXPIRY_FIXED, EXPIRY_NEVER, CompiledMarket, CompiledProgram
from simulator.engine.mechanisms import campaigns as camp
from simulator.engine.mechanisms import enrolment, expiry, fees, points, rewards, tiers, transitions
from simulator.engine.mechanisms.purchases import draw_baskets, poisson_icdf
from simulator.engine.population import INIT_STREAMS, InitialAgents, Population, referral_capacity
from simulator.engine.state import NEVER, RunState
from simulator.engine.streams import Streams, seed_key
from simulator.scenario import Scenario
from simulator.specs.playbook import Mechanisms

#: Every random stream of a replication (one per decision point).
STREAMS = INIT_STREAMS + (
    "init.members", "init.balance", "init.billing", "purchases", "basket", "enrolment", "redemption",
    "voucher", "transitions", "referral", "renewal",
)

#: Columns of the monthly record that are counts or money (scaled to the market's base).
SCALED = (
    "customers", "members", "new_members", "left_members", "active", "purchases", "revenue", "gross_margin",
    "member_revenue", "member_revenue_counterfactual", "nonmember_revenue", "nonmembers",
    "points_issued", "points_issued_purchase", "points_issued_bonus", "points_issued_migration",
    "points_redeemed", "points_redeemed_rewards", "points_redeemed_migration", "points_expired",
    "points_outstanding", "points_opening", "redemptions", "vouchers_issued", "vouchers_used",
    "reward_cost", "reward_face_value", "benefit_cost", "campaign_cost", "enrolment_cost", "member_cost", "fee_income", "upgrades", "demotions", "campaign_contacts", "referrals",
    "sales_with_points",
)


#: Costs that do not scale with the number of customers (added after scaling).
FIXED = ("fixed_cost", "setup_cash", "setup_amortisation", "campaign_cost_fixed", "enrolment_cost_fixed")


def month_index(start: dt.date, d: dt.date) -> int:
    return (d.year - start.year) * 12 + d.month - start.month


def months_between(a: dt.date, b: dt.date) -> int:
    return month_index(a, b)


@dataclass
class _Month:
    """Scratch values of one run in the current month."""

    rec: dict[str, float] = field(default_factory=dict)
    counts: np.ndarray | None = None
    spend: np.ndarray | None = None
    qual: np.ndarray | None = None
    campaign_hits: dict[str, np.ndarray] = field(default_factory=dict)
    enrolment_qualifying: np.ndarray | None = None  # welcome points that qualify for tiers


class Simulation:
    """Design and baseline of one scenario, one replication.

    Parameters
    ----------
    scenario : the resolved scenario.
    agents : simulated customers in the base at the start (results are scaled to the market's
        ``customers``).
    seed, replication : the run seed and the replication number (each replication's streams
        come from ``SeedSequence(seed).spawn``).
    mechanisms : override the playbook's switches (tests use this).
    initial : given starting states of the first base agents (real customers at a calibration
        date; :class:`~simulator.engine.population.InitialAgents`), instead of draws.
    """

    def __init__(self, scenario: Scenario, *, agents: int, seed: int, replication: int = 0,
                 mechanisms: Mechanisms | None = None, check_agents: bool = False,
                 parameters: dict[str, float] | None = None, initial: InitialAgents | None = None):
        from simulator.uncertainty import realise

        # parameters given as distributions are drawn for this replication (``parameters``
        # fixes some of them, as sensitivity analysis does); the engine sees numbers only
        scenario, self.parameters = realise(scenario, seed=seed, replication=replication, overrides=parameters)
        pb = scenario.playbook
        self.scenario = scenario
        self.mech = mechanisms or pb.mechanisms
        self.market = m = CompiledMarket.from_spec(scenario.market)
        start = pb.start or pb.launch
        self.start = dt.date(start.year, start.month, 1)
        self.H = pb.horizon_months
        self.launch_t = month_index(self.start, pb.launch)
        self.design = CompiledProgram.from_spec(scenario.program, scenario.market, extra_setup=pb.costs.setup,
                                                extra_running=pb.costs.running_per_year,
                                                extra_per_member=pb.costs.per_member_per_year)
        self.base_prog = CompiledProgram.from_spec(scenario.baseline, scenario.market) if scenario.baseline else None
        self.streams = Streams(seed_key(seed, replication), STREAMS)
        ref_rate = float(m.response["referrals_per_member_year"].max())
        programs = [p for p in (self.design, self.base_prog) if p is not None]
        slots = 0
        if self.mech.referrals and any(p.bonus_referral > 0 for p in programs):
            approx = agents + int(m.arrivals_per_month / (m.customers / agents) * self.H) + 1
            slots = referral_capacity(ref_rate, approx, self.H)
        self.pop = Population.draw(m, self.streams, agents=agents, horizon=self.H, referral_slots=slots,
                                   initial=initial)
        self.all_idx = np.arange(self.pop.capacity, dtype=np.int64)
        S = len(m.names)
        self.P_member = transitions.member_matrix(m, m.response["transition_effect"])
        self.transition_table = transitions.flat_table(m.P, self.P_member, transitions.row_order(m))
        tiers_design = self.design.tier_names
        self.campaigns = [camp.compile_campaign(c, month_index(self.start, c.start), m, tiers_design) for c in pb.campaigns]
        self.drives = [camp.compile_drive(d, month_index(self.start, d.start), m, tiers_design) for d in pb.enrolment_drives]
        self.active_campaigns: list[camp.CompiledCampaign] = []
        self.active_drives: list[camp.CompiledDrive] = []
        self.runs: dict[str, RunState] = {}
        for name in ("design", "baseline"):
            prog = self.base_prog  # both runs start with the program running today, if any
            ring = prog.ring if prog else 1
            window = prog.window_months if prog and prog.window == 0 else 1
            self.runs[name] = RunState.new(name, self.pop, ring, window, S)
        self.records: dict[str, list[dict[str, float]]] = {"design": [], "baseline": []}
        self.scratch: dict[str, _Month] = {}
        self.pending_referrals: dict[str, int] = {"design": 0, "baseline": 0}
        self.tier_names = tuple(dict.fromkeys(self.design.tier_names + (self.base_prog.tier_names if self.base_prog else ())))
        self.cal = Calendar(self.H)
        self._u: dict[str, np.ndarray] = {}
        self._progress: Callable[[int], None] | None = None
        self.check_agents = check_agents
        self._schedule()
        if self.base_prog is not None:
            for run in self.runs.values():
                self._start_running_program(run, self.base_prog, pb.baseline_age_months)

    # ---------------------------------------------------------------- set-up
    def program_of(self, run: str, t: int) -> CompiledProgram | None:
        if run == "design" and t >= self.launch_t:
            return self.design
        return self.base_prog

    def _start_running_program(self, run: RunState, prog: CompiledProgram, age: int) -> None:
        """A program already running at the start: members, opening balances, billing."""
        run.program = prog
        idx = np.flatnonzero(run.exists)
        u = self.streams.uniform("init.members", -1, idx)
        is_member = enrolment.initial_members(prog, self.pop, self.market, run.segment, idx, age, u, self.mech.self_selection)
        mem = idx[is_member]
        run.member[mem] = True
        run.enrol_month[mem] = -1 - np.floor(self.streams.uniform("init.billing", -1, mem, k=1) * 12).astype(np.int32)
        run.reach[mem] |= self.pop.opt_in_on_join[mem]
        run.earned[mem] = rewards.opening_balance(prog, self.streams.uniform("init.balance", -1, mem))
        run.snap[:] = run.earned.astype(np.uint32)[None, :]
        if prog.fee > 0:
            run.next_bill[mem] = np.floor(self.streams.uniform("init.billing", -1, mem) * prog.fee_months).astype(np.int32)

    def _schedule(self) -> None:
        c = self.cal
        c.monthly("period.open", self._open, "arrivals")
        if self.launch_t < self.H:
            c.at(max(self.launch_t, 0), "program.launch", self._launch, self.design.name)
        for d in self.drives:
            if d.end > 0 and d.start < self.H:
                c.at(max(d.start, 0), "drive.start", lambda t, d=d: self.active_drives.append(d), d.name)
                c.at(min(d.end, self.H) - 1, "drive.end", lambda t, d=d: self.active_drives.remove(d), d.name)
        for cp in self.campaigns:
            if cp.end > 0 and cp.start < self.H:
                c.at(max(cp.start, 0), "campaign.start", lambda t, cp=cp: self.active_campaigns.append(cp), cp.name)
                c.at(min(cp.end, self.H) - 1, "campaign.end", lambda t, cp=cp: self.active_campaigns.remove(cp), cp.name)
        c.monthly("period.step", self._step, "purchases, enrolment, earn, redemption")
        if any(p is not None and p.has_tiers for p in (self.design, self.base_prog)):
            c.monthly("tiers.review", self._tiers, "tiers")
        c.monthly("points.expiry", self._expiry, "expiry", when=self._expiry_due)
        if any(p is not None and p.fee > 0 for p in (self.design, self.base_prog)):
            c.monthly("fees.billing", self._fees, "fees")
        c.monthly("segments.transition", self._transitions, "transitions")
        c.monthly("costs.posting", self._costs, "costs")
        c.monthly("period.close", self._close, "close")

    def calendar_month(self, t: int) -> int:
        return (self.start.month - 1 + t) % 12 + 1

    def uniforms(self, name: str, t: int) -> np.ndarray:
        """The month's uniforms of one stream for the whole population, shared by both runs."""
        key = f"{name}@{t}"
        if key not in self._u:
            self._u[key] = self.streams.uniform_all(name, t, self.pop.capacity)
        return self._u[key]

    # ---------------------------------------------------------------- phases
    def _open(self, t: int) -> None:
        self._u.clear()
        a, b = self.pop.arrivals_by_month[t]
        for name, run in self.runs.items():
            self.scratch[name] = _Month()
            rec = self.scratch[name].rec
            rec["points_opening"] = float(run.outstanding().sum())
            if self.check_agents:
                run.start_trace()
            run.exists[a:b] = True
            run.segment[a:b] = self.market.arrival_segment
            run.recency[a:b] = 0
            n_ref = self.pending_referrals[name]
            if n_ref:
                lo = self.pop.referral_start + run.referrals_used
                hi = min(lo + n_ref, self.pop.capacity)
                new = np.arange(lo, hi)
                run.exists[new] = True
                run.segment[new] = self.market.arrival_segment
                run.recency[new] = 0
                prog = self.program_of(name, t)
                if prog is not None:
                    self._enrol(run, prog, t, new, rec)
                run.referrals_used += hi - lo
                self.pending_referrals[name] = 0

    def _launch(self, t: int) -> None:
        run = self.runs["design"]
        old = run.program
        new = self.design
        rec = self.scratch["design"].rec
        outstanding = run.outstanding()
        if old is not None:
            # Members of the current program move to the new design (if it is free to join);
            # balances convert at value: new points = old points * old value / new value.
            holders = np.flatnonzero(outstanding > 0)
            converted = (np.floor(outstanding[holders] / CENTI * old.value_per_point / new.value_per_point) * CENTI).astype(np.int64)
            rec["points_redeemed_migration"] = float(outstanding[holders].sum())
            rec["points_issued_migration"] = float(converted.sum())
            run.debit(outstanding[holders], holders, "redeemed")
            run.credit(converted, holders, "issued")
            if new.fee > 0:
                run.member[:] = False
                run.next_bill[:] = -1
            else:
                mem = np.flatnonzero(run.member)
                run.next_bill[mem] = -1
                run.enrol_month[mem] = t
        run.program = new
        run.reset_points_window(new)

    def _lifts(self, name: str, run: RunState, prog: CompiledProgram | None, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Rate multipliers L_i (purchases.py) and points multipliers of the month, per agent."""
        N = self.pop.capacity
        lift = np.ones(N)
        pmult = np.ones(N)
        if prog is None:
            return lift, pmult
        resp = self.market.response
        mi = np.flatnonzero(run.member)
        if mi.size and (self.mech.goal_gradient or self.mech.rewarded_behaviour or self.mech.tier_status):
            spendable = np.maximum(run.earned_until(t, prog.pending_months, mi) - run.consumed[mi], 0)
            lift[mi] = kernels.member_lift(
                run.segment[mi], run.tier[mi], spendable, run.since_reward[mi], run.since_demotion[mi],
                prog.ladder_flat, prog.ladder_start, prog.ladder_len, resp["goal_gradient"], resp["rewarded_behaviour"],
                resp["rewarded_half_life"], resp["tier_status"], resp["demotion_effect"], prog.n_tiers,
                self.mech.goal_gradient, self.mech.rewarded_behaviour, self.mech.tier_status, np.empty(mi.size))
        if name == "design" and t >= self.launch_t:
            sc = self.scratch[name]
            for cp in self.active_campaigns:
                hit = cp.target.mask(None, run.segment, run.member, run.tier, self.pop.potential, run.recency)
                hit &= camp.reached(cp.channel, None, run.reach) & run.exists
                contacts = float(hit.sum())
                sc.rec["campaign_contacts"] = sc.rec.get("campaign_contacts", 0.0) + contacts
                sc.rec["campaign_cost"] = sc.rec.get("campaign_cost", 0.0) + contacts * cp.cost_per_contact
                if self.mech.campaigns:
                    lf = resp["campaign_lift"][run.segment] if cp.lift is None else cp.lift
                    lift = np.where(hit, lift * (1.0 + lf), lift)
                if cp.kind == "points_multiplier":
                    pmult = np.where(hit & run.member, pmult * cp.multiplier, pmult)
                sc.campaign_hits[cp.name] = hit
        return lift, pmult

    def _enrol(self, run: RunState, prog: CompiledProgram, t: int, new: np.ndarray, rec: dict[str, float]) -> None:
        run.member[new] = True
        run.enrol_month[new] = t
        run.tier[new] = 0
        run.below[new] = 0
        run.since_reward[new] = NEVER
        run.since_demotion[new] = NEVER
        run.first_pending[new] = True
        run.reach[new] |= self.pop.opt_in_on_join[new]
        if prog.fee > 0:
            run.next_bill[new] = t + prog.trial_months
            run.spend_since_bill[new] = 0.0
        if prog.bonus_enrolment:
            run.credit(prog.bonus_enrolment, new, "issued")
            rec["points_issued_bonus"] = rec.get("points_issued_bonus", 0.0) + float(prog.bonus_enrolment * new.size)
            if prog.q_include_bonus:  # the welcome bonus qualifies like the other event bonuses
                sc = self.scratch[run.name]
                if sc.enrolment_qualifying is None:
                    sc.enrolment_qualifying = np.zeros(self.pop.capacity)
                sc.enrolment_qualifying[new] += prog.bonus_enrolment / CENTI
        rec["new_members"] = rec.get("new_members", 0.0) + float(new.size)

    def _step(self, t: int) -> None:
        m = self.market
        N = self.pop.capacity
        cm = self.calendar_month(t)
        u_buy = self.uniforms("purchases", t)
        spends: dict[str, np.ndarray] = {}
        for name, run in self.runs.items():
            prog = self.program_of(name, t)
            sc = self.scratch[name]
            rec = sc.rec
            lift, pmult = self._lifts(name, run, prog, t)
            lift *= m.season[cm - 1]
            lift *= run.exists
            lam = m.rate[run.segment] * self.pop.rate_mult
            lam *= lift
            n = poisson_icdf(u_buy, lam)
            pos, gross, spend = draw_baskets(self.streams, t, m, n, run.segment, self.pop.basket_mult)
            net = gross * m.net_factor
            spends[name] = spend
            bought = n > 0
            run.recency += 1
            run.recency[bought] = 0
            np.minimum(run.recency, 30000, out=run.recency)
            total = float(spend.sum())
            rec.update(customers=float(run.exists.sum()), active=float(bought.sum()), purchases=float(n.sum()),
                       revenue=total, gross_margin=total * m.gross_margin)
            sc.counts, sc.spend = n, spend
            sc.qual = None
            if prog is None:
                continue
            # enrolment (after the month's purchases: a customer joins at the till with a purchase)
            self._enrolment(name, run, prog, t, bought, rec)
            # earning
            mem = run.member
            mem_tx = mem[pos]
            tpos = pos[mem_tx]
            pts_tx, q_tx = points.purchase_points(prog, net[mem_tx], gross[mem_tx], run.tier[tpos], pmult[tpos])
            pts = points.cap(points.per_agent(tpos, pts_tx, N), prog)
            q = np.bincount(tpos, weights=q_tx, minlength=N)
            bonus = np.zeros(N, dtype=np.int64)
            if prog.bonus_first:
                bonus[mem & run.first_pending & bought] += prog.bonus_first
            run.first_pending[bought] = False
            if prog.bonus_birthday:
                bonus[mem & (self.pop.birthday == cm)] += prog.bonus_birthday
            if name == "design" and t >= self.launch_t:
                bonus_campaigns = [cp for cp in self.active_campaigns if cp.kind == "bonus_points"]
                if bonus_campaigns:
                    biggest = np.zeros(N)
                    np.maximum.at(biggest, pos, gross)
                    for cp in bonus_campaigns:
                        done = run.campaign_done.setdefault(cp.name, np.zeros(N, dtype=bool))
                        ok = sc.campaign_hits[cp.name] & mem & (biggest >= max(cp.min_spend, 1e-9)) & ~done
                        bonus[ok] += cp.bonus
                        done[ok] = True
            midx = np.flatnonzero(mem)
            if prog.bonus_referral and self.mech.referrals and midx.size:
                rate = m.response["referrals_per_member_year"][run.segment[midx]] / 12.0
                referrers = midx[self.streams.uniform("referral", t, midx) < rate]
                bonus[referrers] += prog.bonus_referral
                free = N - self.pop.referral_start - run.referrals_used - self.pending_referrals[name]
                self.pending_referrals[name] += min(referrers.size, max(free, 0))
                rec["referrals"] = float(referrers.size)
            run.credit(pts + bonus)
            rec["points_issued_purchase"] = float(pts.sum())
            rec["points_issued_bonus"] = rec.get("points_issued_bonus", 0.0) + float(bonus.sum())
            rec["sales_with_points"] = float(np.dot(spend, pts > 0))
            qual_total = q + (bonus / CENTI if prog.q_include_bonus else 0.0)
            if sc.enrolment_qualifying is not None:
                qual_total = qual_total + sc.enrolment_qualifying
            sc.qual = tiers.metric_of_month(prog, qual_total, spend, n) * mem
            if prog.fee > 0:
                run.spend_since_bill += spend
            # redemption
            if midx.size:
                spendable = np.maximum(run.earned_until(t, prog.pending_months, midx) - run.consumed[midx], 0)
                r = rewards.redeem(prog, spendable, run.tier[midx], m.response["redemption_propensity"][run.segment[midx]],
                                   self.streams.uniform("redemption", t, midx), self.streams.uniform("voucher", t, midx))
                run.debit(r.points, midx, "redeemed")
                run.since_reward[midx] = np.minimum(run.since_reward[midx] + 1, NEVER)
                run.since_reward[midx[r.redeemed]] = 0
                rec.update(points_redeemed_rewards=float(r.points.sum()), reward_cost=r.reward_cost,
                           reward_face_value=r.reward_face, vouchers_issued=float(r.vouchers_issued),
                           vouchers_used=float(r.vouchers_used), redemptions=float(r.redeemed.sum()))
            run.since_demotion[midx] = np.minimum(run.since_demotion[midx] + 1, NEVER)
        # members' revenue against what the same customers spent in the baseline run
        drec = self.scratch["design"].rec
        design = self.runs["design"]
        dmem = design.member & design.exists
        drec["member_revenue"] = float(np.dot(spends["design"], dmem))
        drec["member_revenue_counterfactual"] = float(np.dot(spends["baseline"], dmem))
        drec["nonmember_revenue"] = float(drec["revenue"] - drec["member_revenue"])
        drec["nonmembers"] = float(drec["customers"] - dmem.sum())
        if self.runs["baseline"].program is not None or self.base_prog is not None:
            base = self.runs["baseline"]
            self.scratch["baseline"].rec["member_revenue"] = float(np.dot(spends["baseline"], base.member & base.exists))

    def _enrolment(self, name: str, run: RunState, prog: CompiledProgram, t: int, bought_full: np.ndarray,
                   rec: dict[str, float]) -> None:
        cand = enrolment.candidates(prog, self.pop, run.exists, run.member, run.segment)
        if not cand.size:
            return
        bought = bought_full[cand]
        h = enrolment.hazard(prog, self.pop, self.market, run.segment, cand, self.mech.self_selection)
        till = np.zeros(cand.size)
        invitations: list[tuple[np.ndarray, float]] = []
        drive_masks: list[tuple[camp.CompiledDrive, np.ndarray]] = []
        if name == "design" and t >= self.launch_t:
            for d in self.active_drives:
                tgt = d.target.mask(cand, run.segment, run.member, run.tier, self.pop.potential, run.recency)
                if d.channel < 0:
                    till += d.uplift * tgt
                    contacts = tgt & bought
                else:
                    contacts = tgt & camp.reached(d.channel, cand, run.reach)
                    invitations.append((contacts, d.uplift))
                drive_masks.append((d, contacts))
                rec["enrolment_cost"] = rec.get("enrolment_cost", 0.0) + float(contacts.sum()) * d.cost_per_contact
        p = enrolment.join_probability(prog, h, bought, till, invitations)
        join = self.streams.uniform("enrolment", t, cand) < p
        for d, contacts in drive_masks:
            rec["enrolment_cost"] = rec.get("enrolment_cost", 0.0) + float((join & contacts).sum()) * d.cost_per_enrolment
        self._enrol(run, prog, t, cand[join], rec)

    def _tiers(self, t: int) -> None:
        cm = self.calendar_month(t)
        for name, run in self.runs.items():
            prog = self.program_of(name, t)
            if prog is None or not prog.has_tiers:
                continue
            qual = self.scratch[name].qual
            tiers.add_to_window(run, prog, t, cm, qual if qual is not None else np.zeros(self.pop.capacity))
            mem = np.flatnonzero(run.member)
            rec = self.scratch[name].rec
            rec["upgrades"] = float(tiers.upgrade(run, prog, mem))
            rec["demotions"] = float(tiers.review(run, prog, t, cm, mem))

    def _expiry_due(self, t: int) -> bool:
        """Whether an expiry rule of either run can act in month ``t``."""
        for name in self.runs:
            prog = self.program_of(name, t)
            if prog is None or prog.expiry == EXPIRY_NEVER:
                continue
            if prog.expiry != EXPIRY_FIXED or self.calendar_month(t) == prog.expiry_month:
                return True
        return False

    def _expiry(self, t: int) -> None:
        cm = self.calendar_month(t)
        for name, run in self.runs.items():
            prog = self.program_of(name, t)
            if prog is None:
                continue
            gone = expiry.expire(run, prog, t, cm)
            run.debit(gone, None, "expired")
            self.scratch[name].rec["points_expired"] = float(gone.sum())

    def _fees(self, t: int) -> None:
        for name, run in self.runs.items():
            prog = self.program_of(name, t)
            if prog is None or prog.fee <= 0:
                continue
            paid, left = fees.bill(run, prog, self.market, t, lambda due: self.streams.uniform("renewal", t, due))
            rec = self.scratch[name].rec
            rec["fee_income"] = paid * prog.fee
            rec["left_members"] = float(left)

    def _transitions(self, t: int) -> None:
        u = self.uniforms("transitions", t)
        design_members = self.runs["design"].member & self.runs["design"].exists
        S = len(self.market.names)
        for name, run in self.runs.items():
            prog = self.program_of(name, t)
            before = run.segment
            use_member = run.member if (prog is not None and self.mech.transitions) else None
            after = transitions.next_segment(before, u, use_member, self.transition_table)
            run.transitions_counts += np.bincount(before[design_members].astype(np.int64) * S + after[design_members],
                                                  minlength=S * S).reshape(S, S)
            run.segment = after

    def _costs(self, t: int) -> None:
        for name, run in self.runs.items():
            prog = self.program_of(name, t)
            rec = self.scratch[name].rec
            if prog is None:
                continue
            sc = self.scratch[name]
            mi = np.flatnonzero(run.member & run.exists)
            mt = run.tier[mi]
            members_by_tier = np.bincount(mt, minlength=prog.n_tiers)
            purchases_by_tier = np.bincount(mt, weights=sc.counts[mi], minlength=prog.n_tiers)
            rec["benefit_cost"] = float(members_by_tier @ prog.benefit_member_month + purchases_by_tier @ prog.benefit_per_purchase)
            rec["member_cost"] = float(mi.size) * prog.per_member_per_year / 12.0
            amortisation = 0.0
            if prog is self.design and name == "design":
                since = t - self.launch_t
                if 0 <= since < prog.amortisation_months:
                    amortisation = prog.setup / prog.amortisation_months
                if since == 0:
                    rec["setup_cash"] = prog.setup
            rec["setup_amortisation"] = amortisation
            rec["fixed_cost"] = prog.running_per_year / 12.0 + amortisation
            for tn, count in zip(prog.tier_names, members_by_tier):
                rec[f"members_tier_{tn}"] = float(count)
            if name == "design":
                rec["campaign_cost_fixed"] = sum(cp.cost for cp in self.campaigns if cp.start == t)
                rec["enrolment_cost_fixed"] = sum(d.cost for d in self.drives if d.start == t)

    def _close(self, t: int) -> None:
        for name, run in self.runs.items():
            rec = self.scratch[name].rec
            outstanding = run.outstanding()
            if (outstanding < 0).any():
                raise RuntimeError(f"points ledger: {int((outstanding < 0).sum())} agents hold negative points in month {t} ({name})")
            rec["points_outstanding"] = float(outstanding.sum())
            rec["members"] = float((run.member & run.exists).sum())
            rec["points_issued"] = (rec.get("points_issued_purchase", 0.0) + rec.get("points_issued_bonus", 0.0)
                                    + rec.get("points_issued_migration", 0.0))
            rec["points_redeemed"] = rec.get("points_redeemed_rewards", 0.0) + rec.get("points_redeemed_migration", 0.0)
            change = rec["points_outstanding"] - rec["points_opening"]
            balance = rec["points_issued"] - rec["points_redeemed"] - rec.get("points_expired", 0.0)
            if change != balance:
                raise RuntimeError(f"points ledger does not balance in month {t} ({name}): issued - redeemed - expired = "
                                   f"{balance / CENTI:.2f} but outstanding changed by {change / CENTI:.2f}")
            if self.check_agents:
                issued, redeemed, expired = run.check_trace(t)
                recorded = (rec["points_issued"], rec["points_redeemed"], rec.get("points_expired", 0.0))
                if (float(issued), float(redeemed), float(expired)) != recorded:
                    raise RuntimeError(f"month {t} ({name}): per-agent flows {issued, redeemed, expired} differ from the "
                                       f"recorded totals {recorded}")
            prog = self.program_of(name, t)
            rec["value_per_point"] = prog.value_per_point if prog is not None else 0.0
            rec["program_active"] = 1.0 if prog is not None else 0.0
            run.close_month(t)
            self.records[name].append(rec)
        if self._progress is not None:
            self._progress(t)

    # ---------------------------------------------------------------- run
    def month_purchases(self, run: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-agent purchases and net spend of the month just stepped in ``run`` ('design' or
        'baseline'), arrays over the population (read them from a ``progress`` callback)."""
        sc = self.scratch[run]
        return sc.counts, sc.spend

    def run(self, progress: Callable[[int], None] | None = None) -> "ReplicationResult":
        """Run the calendar; ``progress(month)`` is called after each month closes (it is not
        a calendar event, so it leaves the event log unchanged)."""
        self._progress = progress
        self.cal.run()
        frames = {}
        for name in ("design", "baseline"):
            df = pd.DataFrame(self.records[name]).fillna(0.0)
            for col in SCALED + FIXED:
                if col not in df:
                    df[col] = 0.0
            for tn in self.tier_names:
                if f"members_tier_{tn}" not in df:
                    df[f"members_tier_{tn}"] = 0.0
            pts_cols = [c for c in df.columns if c.startswith("points_")]
            df[pts_cols] = df[pts_cols] / CENTI
            scale_cols = [c for c in df.columns if c in SCALED or c.startswith("members_tier_")]
            df[scale_cols] = df[scale_cols] * self.pop.scale
            df["campaign_cost"] += df.pop("campaign_cost_fixed")
            df["enrolment_cost"] += df.pop("enrolment_cost_fixed")
            df.insert(0, "month", np.arange(1, len(df) + 1))
            df.insert(1, "period", [(pd.Period(self.start, "M") + i).strftime("%Y-%m") for i in range(len(df))])
            frames[name] = df
        return ReplicationResult(frames["design"], frames["baseline"], self.runs["design"].transitions_counts,
                                 self.runs["baseline"].transitions_counts, self.pop.scale, self.cal.log,
                                 dict(self.parameters))


@dataclass
class ReplicationResult:
    design: pd.DataFrame
    baseline: pd.DataFrame
    transitions_design: np.ndarray
    transitions_baseline: np.ndarray
    scale: float
    events: list[tuple[int, str, str]]
    parameters: dict[str, float] = field(default_factory=dict)
