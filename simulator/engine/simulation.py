"""One replication: the design and its baseline, stepped together on the same agents.

Both runs share the population and every random draw (common random numbers): each decision
of an agent in a month reads the uniform of its coordinates (stream, month, agent, k), the
same in both runs. With every behavioural mechanism switched off the program changes no
purchase, so the incremental revenue is exactly zero; with them on, the difference is the
program's effect and not sampling noise.

The calendar (:mod:`simulator.engine.calendar`) drives the month's phases; each phase calls a
method here. The heavy phases are compiled passes over the agents (:mod:`simulator.engine.kernels`)
that hash their own uniforms and keep no population-sized temporaries: the step walks both
runs agent by agent, so a purchase count is searched once when both runs give the agent the
same rate, and a basket amount is drawn once when both see it in the same segment. Python
loops run over runs, segments, tiers, rewards or campaigns, never over customers.
"""

from __future__ import annotations

import datetime as dt
import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from simulator.engine import kernels
from simulator.engine.calendar import Calendar
from simulator.engine.compiled import CENTI, EXPIRY_AFTER, EXPIRY_FIXED, EXPIRY_NEVER, CompiledMarket, CompiledProgram
from simulator.engine.mechanisms import campaigns as camp
from simulator.engine import stores as store_figures
from simulator.engine.mechanisms import enrolment, expiry, fees, history, transitions
from simulator.engine.records import (CampaignArgs, DriveArgs, MarketArgs, MechanismFlags, PopulationArgs, ProgramArgs,
                                      RunArgs, StateArgs, StepOut, StoreArgs, StreamKeys, TraceArgs)
from simulator.engine.population import INIT_STREAMS, InitialAgents, Population, referral_capacity
from simulator.engine.state import NEVER, RunState
from simulator.engine.streams import Streams, seed_key
from simulator.scenario import Scenario
from simulator.specs.base import Spec, Triangular, Uniform
from simulator.specs.playbook import Mechanisms

#: Every random stream of a replication (one per decision point).
STREAMS = INIT_STREAMS + (
    "init.members", *history.STREAMS, "purchases", "basket", "enrolment", "redemption",
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
    "sales_with_points", "fee_revenue", "fee_unearned", "points_voucher_lapsed",
)


#: Costs that do not scale with the number of customers (added after scaling).
FIXED = ("fixed_cost", "setup_cash", "setup_amortisation", "campaign_cost_fixed", "enrolment_cost_fixed")


def month_index(start: dt.date, d: dt.date) -> int:
    return (d.year - start.year) * 12 + d.month - start.month


def months_between(a: dt.date, b: dt.date) -> int:
    return month_index(a, b)


@dataclass
class _MonthEnd:
    """The month-end phases registered this month (Simulation._month_end), by run."""

    tiers: dict[str, tuple] = field(default_factory=dict)           # thresholds, window, downgrade, grace
    expiry: dict[str, tuple[int, int]] = field(default_factory=dict)  # expiry.rule
    costs: dict[str, CompiledProgram] = field(default_factory=dict)  # members per tier of these programs
    transitions: bool = False
    before_fees_done: bool = False
    closing: dict[str, tuple] = field(default_factory=dict)  # outstanding, negative, members, counts by store


@dataclass
class _Month:
    """Scratch values of one run in the current month."""

    rec: dict[str, float] = field(default_factory=dict)
    counts: np.ndarray | None = None  # uint16 purchases per agent
    spend: np.ndarray | None = None   # net spend per agent (baseline run; empty for the design)
    enrolment_qualifying: np.ndarray | None = None  # welcome points that qualify for tiers
    by_store: np.ndarray | None = None   # [K, 6] the step's figures by store (stores.month_row)
    referred: np.ndarray | None = None   # [K] referred customers enrolled this month by home store


def _check_realised(scenario: Scenario) -> None:
    """Refuse a scenario that still holds a parameter given as a distribution: the engine only
    ever sees numbers (realise it first: simulator.executor.replication or uncertainty.realise)."""
    def walk(obj, path: str) -> None:
        if isinstance(obj, (Triangular, Uniform)):
            raise ValueError(f"{path} is a distribution: realise the scenario before the engine "
                             "(simulator.executor.replication or simulator.uncertainty.realise)")
        if isinstance(obj, Spec):
            for name in type(obj).model_fields:
                walk(getattr(obj, name), f"{path}.{name}")
        elif isinstance(obj, (tuple, list)):
            for i, v in enumerate(obj):
                walk(v, f"{path}[{i}]")
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{path}.{k}")

    walk(scenario.market, scenario.market.name)
    walk(scenario.playbook, scenario.playbook.name)


@contextmanager
def gc_paused():
    """The garbage collector off for a while: the set-up and the months allocate small objects
    by the thousand, and each collection they trigger walks every object of the interpreter;
    cycles, if any, wait for the end."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
    drawn : the values drawn for the parameters the specs give as distributions, recorded in the
        result (the scenario comes realised: the engine only sees numbers; see
        :func:`simulator.executor.replication`, which realises and builds).
    initial : given starting states of the first base agents (real customers at a calibration
        date; :class:`~simulator.engine.population.InitialAgents`), instead of draws.
    """

    def __init__(self, scenario: Scenario, *, agents: int, seed: int, replication: int = 0,
                 mechanisms: Mechanisms | None = None, check_agents: bool = False,
                 drawn: dict[str, float] | None = None, initial: InitialAgents | None = None):
        with gc_paused():
            self._set_up(scenario, agents, seed, replication, mechanisms, check_agents, drawn, initial)

    def _set_up(self, scenario: Scenario, agents: int, seed: int, replication: int, mechanisms: Mechanisms | None,
                check_agents: bool, drawn: dict[str, float] | None, initial: InitialAgents | None) -> None:
        # parameters given as distributions were drawn for this replication before the engine
        # (executor.replication); the engine sees numbers only
        _check_realised(scenario)
        self.parameters = dict(drawn or {})
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
        S = len(m.names)
        self.P_member = transitions.member_matrix(m, m.response["transition_effect"])
        self.transition_table = transitions.flat_table(m.P, self.P_member, transitions.row_order(m))
        tiers_design = self.design.tier_names
        self.campaigns = [camp.compile_campaign(c, month_index(self.start, c.start), m, tiers_design) for c in pb.campaigns]
        self.drives = [camp.compile_drive(d, month_index(self.start, d.start), m, tiers_design) for d in pb.enrolment_drives]
        self.drives += [camp.compile_challenge(ch, month_index(self.start, ch.start), m) for ch in pb.staff_challenges]
        self._set_up_pilot(pb)
        self.active_campaigns: list[camp.CompiledCampaign] = []
        self.active_drives: list[camp.CompiledDrive] = []
        self.runs: dict[str, RunState] = {}
        for name in ("design", "baseline"):
            prog = self.base_prog  # both runs start with the program running today, if any
            ring = prog.ring if prog else 1
            if name == "design" and prog is not None and self._dates_beyond_ring(prog, pb):
                ring = max(ring, self.design.ring)  # the old points' dates, as far back as the design looks
            window = prog.window_months if prog and prog.window == 0 else 1
            self.runs[name] = RunState.new(name, self.pop, ring, window, S)
            if not any(p.fee > 0 for p in programs):
                self.runs[name].spend_since_bill = np.zeros(0)  # no paid program: nothing to bill
        self.records: dict[str, list[dict[str, float]]] = {"design": [], "baseline": []}
        self.store_rows: dict[str, list[np.ndarray]] = {"design": [], "baseline": []}  # stores.month_row by month
        self.scratch: dict[str, _Month] = {}
        # purchases of the month per agent and run, and the baseline's net spend (the design's
        # members' counterfactual revenue; the design's own spend is only summed), rewritten monthly
        self._month_arrays = {name: (np.zeros(self.pop.capacity, dtype=np.uint16),
                                     np.zeros(self.pop.capacity if name == "baseline" else 0)) for name in self.runs}
        self._prog_cache: dict[int, tuple] = {}
        # months since a reward or a demotion stay below the horizon (or are NEVER)
        self._decay = kernels.decay_table(m.response["rewarded_half_life"], self.H + 1)
        self._selection: tuple | None = None
        self._done: np.ndarray | None = None  # once-only flags of bonus campaigns, one row each
        self._opening: dict[str, int | None] = {name: None for name in self.runs}  # outstanding at the last close
        self._end = _MonthEnd()  # the month-end phases waiting for the month-end pass
        self.pending_referrals: dict[str, int] = {"design": 0, "baseline": 0}
        # membership fees received, by the month they are earned in (fees.py)
        self._fee_schedule = {name: np.zeros(self.H + 12) for name in self.runs}
        self.tier_names = tuple(dict.fromkeys(self.design.tier_names + (self.base_prog.tier_names if self.base_prog else ())))
        self.cal = Calendar(self.H)
        self._progress: Callable[[int], None] | None = None
        self.check_agents = check_agents
        self.threads = kernels.threads()  # the step's threads (results do not depend on it)
        self._schedule()
        if self.base_prog is not None:
            self._start_running_program(self.base_prog, pb.baseline_age_months)

    # ---------------------------------------------------------------- set-up
    def _set_up_pilot(self, pb) -> None:
        """The pilot's stores as a mask over the network (empty: the design everywhere) and the
        share of the fixed costs it bears (stores.py)."""
        m = self.market
        self.pilot = np.zeros(0, dtype=np.bool_)
        self.pilot_cost_share = 1.0
        if pb.pilot is None:
            return
        if not m.stores:
            raise ValueError(f"playbook {pb.name} pilots the design in stores but market has no store network")
        if self.base_prog is not None:
            raise ValueError("a pilot by store needs baseline 'none' (a design replacing a running program in some "
                             "stores only is not modelled)")
        self.pilot = np.isin(np.array(m.stores, dtype=object), list(pb.pilot.stores))
        # the pilot stores' share of the network's customers (all of it, exactly, for every store)
        share = 1.0 if self.pilot.all() else float(m.store_share[self.pilot].sum())
        self.pilot_cost_share = pb.pilot.fixed_cost_share if pb.pilot.fixed_cost_share is not None else share

    @staticmethod
    def _dates_beyond_ring(prog: CompiledProgram, pb) -> bool:
        """Whether the design run must keep the running program's snapshots further back than
        that program does, to date its points at a migration (keep_dates): only when they can
        be older than its ring (no expiry after a fixed age: never, inactivity, fixed date)."""
        return pb.migration.converted_points == "keep_dates" and prog.expiry != EXPIRY_AFTER

    def program_of(self, run: str, t: int) -> CompiledProgram | None:
        if run == "design" and t >= self.launch_t:
            return self.design
        return self.base_prog

    def _start_running_program(self, prog: CompiledProgram, age: int) -> None:
        """A program already running at the start: members, their join months, their balances
        with the months they were earned in (mechanisms/history.py), billing. Both runs start
        from the same agents and draws, so the states are drawn once and copied."""
        first, second = self.runs["design"], self.runs["baseline"]
        first.program = prog
        idx = np.flatnonzero(first.exists)
        u = self.streams.uniform("init.members", -1, idx)
        is_member = enrolment.initial_members(prog, self.pop, self.market, first.segment, idx, age, u,
                                              self.mech.self_selection)
        mem = idx[is_member]
        p_month = enrolment.monthly_join_probability(prog, self.pop, self.market, first.segment, mem,
                                                     self.mech.self_selection)
        join = history.join_months(p_month, age, self.streams.uniform("init.join", -1, mem))
        first.member[mem] = True
        first.enrol_month[mem] = join
        first.reach[mem] |= self.pop.opt_in_on_join[mem]
        history.replay(prog, self.market, self.streams, first, mem, join,
                       self.P_member if self.mech.transitions else self.market.P, self.pop.rate_mult,
                       self.pop.basket_mult, self.pop.birthday, self.start.month, age)
        if prog.fee > 0:
            first.next_bill[mem] = history.first_bill(join, prog)
        second.program = prog
        for name in ("member", "enrol_month", "reach", "earned", "consumed", "first_pending", "next_bill", "row", "rows"):
            getattr(second, name)[:] = getattr(first, name)
        rows = int(first.rows[0])
        L1, L2 = first.snap.shape[0], second.snap.shape[0]  # the design's ring may reach further back
        for b in range(1, min(L1, L2)):
            second.snap[L2 - b, :rows] = first.snap[L1 - b, :rows]

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

    # ---------------------------------------------------------------- phases
    def _open(self, t: int) -> None:
        if self._opening["design"] is None:  # the points outstanding at the start
            packed = [kernels.end_run(run, self._month_arrays[name][0], close=-1) for name, run in self.runs.items()]
            totals = kernels.month_end(t, self.calendar_month(t), kernels.STAGE_ALL, *packed, n_threads=self.threads)
            for name, (tot, *_) in zip(self.runs, totals):
                self._opening[name] = int(tot[kernels.E_OUTSTANDING])
        self._end = _MonthEnd()
        for name, run in self.runs.items():
            counts, spend = self._month_arrays[name]
            self.scratch[name] = _Month(counts=counts, spend=spend)
            rec = self.scratch[name].rec
            rec["points_opening"] = float(self._opening[name])  # what the last close counted
            if self.check_agents:
                run.start_trace()
            self._arrive(name, run, t, rec)

    def _arrive(self, name: str, run: RunState, t: int, rec: dict[str, float]) -> None:
        """The month's new customers and the customers referred last month join the base (the
        referred ones as members of the run's program)."""
        a, b = self.pop.arrivals_by_month[t]
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
                if self.market.stores:
                    self.scratch[name].referred = np.bincount(self.pop.store[new], minlength=len(self.market.stores))
            run.referrals_used += hi - lo
            self.pending_referrals[name] = 0

    def _launch(self, t: int) -> None:
        run = self.runs["design"]
        old = run.program
        new = self.design
        rec = self.scratch["design"].rec
        if old is not None:
            # Members of the current program move to the new design (if it is free to join);
            # balances convert at value, new points = floor(old points * old value / new
            # value), dated as the playbook says (history.convert).
            redeemed, issued = history.convert(run, old, new, t,
                                               self.scenario.playbook.migration.converted_points == "keep_dates")
            rec["points_redeemed_migration"] = float(redeemed)
            rec["points_issued_migration"] = float(issued)
            if new.fee > 0:
                run.member[:] = False
                run.next_bill[:] = -1
            else:
                mem = np.flatnonzero(run.member)
                run.next_bill[mem] = -1
                run.enrol_month[mem] = t
        else:
            run.reset_points_window(new)
        run.program = new

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

    # ------------------------------------------------ arguments of the compiled step
    def _program_args(self, run: RunState, prog: CompiledProgram, t: int) -> ProgramArgs:
        """The program as the named scalars and arrays kernels._step_block reads."""
        if id(prog) not in self._prog_cache:
            order, start, length = [], [], []
            for ti in range(prog.n_tiers):  # each tier's rewards by price (stable)
                rids = np.flatnonzero(prog.eligible[ti])
                start.append(len(order))
                length.append(len(rids))
                order.extend(rids[np.argsort(prog.prices[rids], kind="stable")])
            order = np.array(order, dtype=np.int64)
            self._prog_cache[id(prog)] = dict(
                ppu=float(prog.ppu), rounding=int(prog.rounding), min_order=float(prog.min_order),
                category_factor=float(prog.category_factor), earn_mult=prog.earn_mult.astype(np.float64),
                cap_month=int(prog.cap_month), qppu=float(prog.qppu), q_include_bonus=bool(prog.q_include_bonus),
                metric=int(prog.metric), bonus_enrolment=int(prog.bonus_enrolment), bonus_first=int(prog.bonus_first),
                bonus_birthday=int(prog.bonus_birthday), bonus_referral=int(prog.bonus_referral),
                ladder=prog.ladder_flat, ladder_start=prog.ladder_start, ladder_len=prog.ladder_len,
                n_tiers=int(prog.n_tiers), window=int(prog.window), window_months=int(prog.window_months),
                eligible_segments=prog.eligible_segments, automatic=bool(prog.automatic),
                invite_only=bool(prog.invite_only),
                annual_fee=float(prog.fee * 12 / prog.fee_months) if prog.fee > 0 else 0.0, fee=float(prog.fee),
                trial_months=int(prog.trial_months), cashback_threshold=int(prog.cashback_threshold),
                voucher_use_rate=float(prog.voucher_use_rate), goal=prog.goal.astype(np.int64), cat_order=order,
                cat_start=np.array(start, dtype=np.int64), cat_len=np.array(length, dtype=np.int64),
                cat_prices=prog.prices[order].astype(np.int64), endowed=float(prog.endowed_progress))
        pending_col = (t - prog.pending_months) % run.snap.shape[0] if prog.pending_months else -1
        return ProgramArgs(has_program=True, pending_col=pending_col, **self._prog_cache[id(prog)])

    def _targets(self, targets: list[camp.CompiledTarget]) -> tuple:
        """Targets as arrays (one row each) for kernels._targeted."""
        S, C = len(self.market.names), len(targets)
        T = max([len(tg.tiers) for tg in targets if tg.tiers is not None] + [1])
        seg = np.ones((C, S), dtype=bool)
        members = np.zeros(C, dtype=np.int64)
        tiers_ok = np.zeros((C, T), dtype=bool)
        use_tiers = np.zeros(C, dtype=bool)
        pot = np.ones((C, 3), dtype=bool)
        inactive = np.zeros((C, 2), dtype=np.int64)  # months since the last purchase: at least, at most (-1: any)
        for c, tg in enumerate(targets):
            if tg.segments is not None:
                seg[c] = tg.segments
            members[c] = tg.members
            if tg.tiers is not None:
                use_tiers[c] = True
                tiers_ok[c, : len(tg.tiers)] = tg.tiers
                tiers_ok[c, len(tg.tiers):] = tg.tiers[-1]
            if tg.potential is not None:
                pot[c] = tg.potential
            inactive[c] = (tg.inactive_months, tg.recent_months)
        return seg, members, tiers_ok, use_tiers, pot, inactive

    def _campaign_args(self, run: RunState, active: list[camp.CompiledCampaign]) -> CampaignArgs:
        """Active campaigns as arrays, and each bonus campaign's once-only flags as one row of
        ``done``."""
        S = len(self.market.names)
        C = len(active)
        if C > 62:
            raise ValueError("at most 62 campaigns can run in the same month")
        kind = np.array([{"points_multiplier": 1, "bonus_points": 2}.get(cp.kind, 0) for cp in active], dtype=np.int64)
        lift = np.empty((C, S))
        for c, cp in enumerate(active):
            lift[c] = self.market.response["campaign_lift"] if cp.lift is None else cp.lift
        bonus_names = [cp.name for cp in self.campaigns if cp.kind == "bonus_points"]
        if bonus_names and self._done is None:
            self._done = np.zeros((len(bonus_names), self.pop.capacity), dtype=bool)
            for r, nm in enumerate(bonus_names):
                run.campaign_done.setdefault(nm, self._done[r])
        done = self._done if self._done is not None else np.zeros((0, 0), dtype=bool)
        done_row = np.array([bonus_names.index(cp.name) if cp.kind == "bonus_points" else -1 for cp in active],
                            dtype=np.int64)
        seg, members, tiers_ok, use_tiers, pot, inactive = self._targets([cp.target for cp in active])
        return CampaignArgs(kind=kind, seg=seg, members=members, tiers=tiers_ok, use_tiers=use_tiers, pot=pot,
                            inactive=inactive, channel=np.array([cp.channel for cp in active], dtype=np.int64),
                            lift=lift, mult=np.array([cp.multiplier for cp in active], dtype=np.float64),
                            bonus=np.array([cp.bonus for cp in active], dtype=np.int64),
                            min_spend=np.array([max(cp.min_spend, 1e-9) for cp in active], dtype=np.float64),
                            done_row=done_row, done=done)

    def _drive_args(self, active: list[camp.CompiledDrive]) -> DriveArgs:
        if len(active) > 62:
            raise ValueError("at most 62 enrolment drives can run in the same month")
        seg, members, tiers_ok, use_tiers, pot, inactive = self._targets([d.target for d in active])
        return DriveArgs(uplift=np.array([d.uplift for d in active], dtype=np.float64), seg=seg, members=members,
                         tiers=tiers_ok, use_tiers=use_tiers, pot=pot, inactive=inactive,
                         channel=np.array([d.channel for d in active], dtype=np.int64))

    def _store_args(self, name: str, cps: list[camp.CompiledCampaign], drives: list[camp.CompiledDrive]) -> StoreArgs:
        """A run's store arguments of kernels.step_both: home stores, enrolment multipliers, the
        month's [K, 3] figures by store, the pilot's stores (design run; empty: none), the first
        referral slot, and the active campaigns' and drives' store masks."""
        K = len(self.market.stores)

        def masks(items) -> np.ndarray:
            out = np.ones((len(items), K), dtype=bool)
            for c, it in enumerate(items):
                if it.target.stores is not None:
                    out[c] = it.target.stores
            return out

        pilot = self.pilot if name == "design" else self.pilot[:0]
        return StoreArgs(home=self.pop.store, enrol_mult=self.market.store_enrol, money=np.zeros((K, 2)), pilot=pilot,
                         referral_start=int(self.pop.referral_start), camp_masks=masks(cps), drive_masks=masks(drives),
                         counts=np.zeros((K, 4), dtype=np.int64))

    def _selection_args(self) -> tuple:
        """``rate_mult ** beta`` for each distinct self-selection beta, and each segment's index."""
        if self._selection is None:
            beta = self.market.response["self_selection"]
            if self.mech.self_selection:
                betas = list(dict.fromkeys(float(b) for b in beta))
                # rate_mult ** 1.0 is rate_mult: no cached copy for the usual beta of 1
                self._selection = (tuple(self.pop.rate_mult if b == 1.0 else self.pop.rate_power(b) for b in betas),
                                   np.array([betas.index(float(b)) for b in beta], dtype=np.int64))
            else:
                self._selection = ((np.zeros(0),), np.zeros(len(beta), dtype=np.int64))
        return self._selection

    # ---------------------------------------------------------------- phases (continued)
    def _step(self, t: int) -> None:
        """Purchases, enrolment, earning and redemption of both runs in one compiled pass over
        the agents (kernels.step_both), then the month's records."""
        m = self.market
        cm = self.calendar_month(t)
        resp = m.response
        pop = self.pop
        powers, sel_index = self._selection_args()
        pop_args = PopulationArgs(rate_mult=pop.rate_mult, basket_mult=pop.basket_mult, identified=pop.identified,
                                  opt_in_on_join=pop.opt_in_on_join, birthday=pop.birthday, potential=pop.potential,
                                  sel_power=powers, sel_index=sel_index, sel_norm=pop.selection_norm)
        market_args = MarketArgs(rate=m.rate, season=float(m.season[cm - 1]), basket_mean=m.basket_mean,
                                 basket_sigma=m.basket_sigma, net_factor=m.net_factor,
                                 goal_gradient=resp["goal_gradient"], rewarded=resp["rewarded_behaviour"],
                                 half_life=resp["rewarded_half_life"], status=resp["tier_status"],
                                 demotion=resp["demotion_effect"], enrol_prop=resp["enrolment_propensity"],
                                 fee_sens=resp["fee_sensitivity"], referral_rate=resp["referrals_per_member_year"],
                                 redeem_prop=resp["redemption_propensity"], decay=self._decay)
        keys = StreamKeys(*(self.streams.stream_base(k, t) for k in StreamKeys._fields))
        no_i64 = np.zeros(0, dtype=np.int64)
        packed = {}
        for name, run in self.runs.items():
            prog = self.program_of(name, t)
            sc = self.scratch[name]
            design_live = name == "design" and t >= self.launch_t
            cps = self.active_campaigns if design_live else []
            drives = self.active_drives if design_live else []
            prog_args = self._program_args(run, prog if prog is not None else self.design, t)
            if prog is None:
                prog_args = prog_args._replace(has_program=False)
            tr = run.trace
            trace = TraceArgs(tr["issued"], tr["redeemed"]) if tr is not None else TraceArgs(no_i64, no_i64)
            eq = sc.enrolment_qualifying if sc.enrolment_qualifying is not None else np.zeros(0)
            state = StateArgs(
                exists=run.exists, segment=run.segment, reach=run.reach, recency=run.recency, member=run.member,
                enrol_month=run.enrol_month, tier=run.tier, below=run.below, since_reward=run.since_reward,
                since_demotion=run.since_demotion, first_pending=run.first_pending, next_bill=run.next_bill,
                spend_since_bill=run.spend_since_bill, earned=run.earned, consumed=run.consumed, snap=run.snap,
                qual_ring=run.qual_ring, qual_off=run.qual_off, qual_used=run.qual_used, qual_sum=run.qual_sum,
                row=run.row, row_asks=run.candidates, row_asks_n=run.n_candidates, eq_extra=eq)
            flags = MechanismFlags(goal=self.mech.goal_gradient, rewarded=self.mech.rewarded_behaviour,
                                   status=self.mech.tier_status, campaigns=self.mech.campaigns,
                                   self_selection=self.mech.self_selection,
                                   referrals=bool(prog is not None and prog.bonus_referral and self.mech.referrals))
            T, R = (prog.n_tiers, len(prog.prices)) if prog is not None else (1, 0)
            out = StepOut(counts=sc.counts, spend=sc.spend, ints=np.zeros(14, dtype=np.int64), floats=np.zeros(4),
                          by_tier_reward=np.zeros((T, R), dtype=np.int64), camp_contacts=np.zeros(len(cps), dtype=np.int64),
                          drive_contacts=np.zeros(len(drives), dtype=np.int64),
                          drive_joins=np.zeros(len(drives), dtype=np.int64))
            packed[name] = RunArgs(state, trace, prog_args, self._campaign_args(run, cps), self._drive_args(drives), flags,
                                   out)
            packed[name, "meta"] = (prog, cps, drives, flags)
            packed[name, "stores"] = self._store_args(name, cps, drives) if m.stores else None
        kernels.step_both(pop_args, market_args, keys, t, cm, packed["baseline"], packed["design"], self.threads,
                          packed["baseline", "stores"], packed["design", "stores"])
        K = kernels
        for name, run in self.runs.items():
            prog, cps, drives, flags = packed[name, "meta"]
            kernels.give_rows(run.row, run.rows, run.candidates, run.n_candidates)  # for the first points (state.py)
            _, _, ints, floats, by_tier_reward, camp_contacts, drive_contacts, drive_joins = packed[name].out
            if m.stores:
                money, counts = packed[name, "stores"].money, packed[name, "stores"].counts
                self.scratch[name].by_store = np.concatenate([money, counts[:, :1].astype(float)], axis=1)
            rec = self.scratch[name].rec
            # the month's record, key by key in the order the phases define them
            for cp, contacts in zip(cps, camp_contacts):
                rec["campaign_contacts"] = rec.get("campaign_contacts", 0.0) + float(contacts)
                rec["campaign_cost"] = rec.get("campaign_cost", 0.0) + float(contacts) * cp.cost_per_contact
            total = float(floats[K.F_REVENUE])
            rec.update(customers=float(ints[K.N_CUSTOMERS]), active=float(ints[K.N_ACTIVE]),
                       purchases=float(ints[K.N_PURCHASES]), revenue=total, gross_margin=total * m.gross_margin)
            if prog is None:
                if name == "design":
                    self._member_revenue(rec, floats, ints)
                continue
            if ints[K.N_CANDIDATES]:
                for d, contacts in zip(drives, drive_contacts):
                    rec["enrolment_cost"] = rec.get("enrolment_cost", 0.0) + float(contacts) * d.cost_per_contact
                for d, joins in zip(drives, drive_joins):
                    rec["enrolment_cost"] = rec.get("enrolment_cost", 0.0) + float(joins) * d.cost_per_enrolment
                joined = int(ints[K.N_NEW_MEMBERS])
                if prog.bonus_enrolment:
                    rec["points_issued_bonus"] = rec.get("points_issued_bonus", 0.0) + float(prog.bonus_enrolment * joined)
                rec["new_members"] = rec.get("new_members", 0.0) + float(joined)
            members = int(ints[K.N_MEMBERS])
            if flags.referrals and members:
                referrers = int(ints[K.N_REFERRALS])
                free = self.pop.capacity - self.pop.referral_start - run.referrals_used - self.pending_referrals[name]
                self.pending_referrals[name] += min(referrers, max(free, 0))
                rec["referrals"] = float(referrers)
            rec["points_issued_purchase"] = float(ints[K.N_POINTS_PURCHASE])
            rec["points_issued_bonus"] = rec.get("points_issued_bonus", 0.0) + float(ints[K.N_POINTS_BONUS])
            rec["sales_with_points"] = float(floats[K.F_SALES_WITH_POINTS])
            if members:
                cost = face = 0.0
                if ints[K.N_VOUCHERS_ISSUED]:
                    used = int(ints[K.N_VOUCHERS_USED])
                    cost += used * prog.voucher_cost
                    face += used * prog.voucher_value
                for ti in range(prog.n_tiers):
                    if by_tier_reward[ti].any():
                        cost += float(np.dot(by_tier_reward[ti], prog.cost))
                        face += float(np.dot(by_tier_reward[ti], prog.face))
                rec.update(points_redeemed_rewards=float(ints[K.N_REDEEMED]), reward_cost=cost, reward_face_value=face,
                           vouchers_issued=float(ints[K.N_VOUCHERS_ISSUED]),
                           vouchers_used=float(ints[K.N_VOUCHERS_USED]), redemptions=float(ints[K.N_REDEMPTIONS]))
            if name == "design":
                self._member_revenue(rec, floats, ints)
            else:
                rec["member_revenue"] = float(floats[K.F_MEMBER_REVENUE])

    def _member_revenue(self, rec: dict[str, float], floats: np.ndarray, ints: np.ndarray) -> None:
        """Members' revenue against what the same customers spent in the baseline run."""
        rec["member_revenue"] = float(floats[kernels.F_MEMBER_REVENUE])
        rec["member_revenue_counterfactual"] = float(floats[kernels.F_COUNTERFACTUAL])
        rec["nonmember_revenue"] = float(rec["revenue"] - rec["member_revenue"])
        rec["nonmembers"] = float(rec["customers"] - ints[kernels.N_MEMBERS])

    # The phases after the step register their work (and their record's keys, in phase order)
    # and one compiled pass over the agents does it for both runs at the close
    # (kernels.month_end), or in two passes around the fees, which are billed in between.
    def _tiers(self, t: int) -> None:
        for name in self.runs:
            prog = self.program_of(name, t)
            if prog is None or not prog.has_tiers:
                continue
            # this month's metric went into the window in the step (kernels.step_both)
            self._end.tiers[name] = (prog.thresholds, prog.window, prog.downgrade, prog.grace)
            self.scratch[name].rec.update(upgrades=0.0, demotions=0.0)

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
            rule = expiry.rule(prog, t, cm, run.snap.shape[0])
            if rule is not None:
                self._end.expiry[name] = rule
            self.scratch[name].rec["points_expired"] = 0.0

    def _fees(self, t: int) -> None:
        self._month_end(t, close=False)  # tiers and expiry come first
        for name, run in self.runs.items():
            prog = self.program_of(name, t)
            if prog is None or prog.fee <= 0:
                continue
            paid, left = fees.bill(run, prog, self.market, t, lambda due: self.streams.uniform("renewal", t, due))
            rec = self.scratch[name].rec
            cash = paid * prog.fee * self.market.net_factor  # net of VAT
            rec["fee_income"] = cash
            rec["left_members"] = float(left)
            # earned over the months the fee pays for (fees.py)
            self._fee_schedule[name][t: t + prog.fee_months] += cash / prog.fee_months

    def _transitions(self, t: int) -> None:
        self._end.transitions = True

    def _costs(self, t: int) -> None:
        for name in self.runs:
            prog = self.program_of(name, t)
            rec = self.scratch[name].rec
            if prog is None:
                continue
            self._end.costs[name] = prog
            none = np.zeros(prog.n_tiers, dtype=np.int64)  # members per tier: the month-end pass
            self._post_costs(name, prog, t, rec, none, none)

    def _post_costs(self, name: str, prog: CompiledProgram, t: int, rec: dict[str, float],
                    members_by_tier: np.ndarray, purchases_by_tier: np.ndarray) -> None:
        """The month's costs of a run's program: benefits per member and purchase by tier, the
        per-member cost, running and set-up costs (amortised), members per tier, and the fixed
        costs of the campaigns and drives starting this month."""
        rec["benefit_cost"] = float(members_by_tier @ prog.benefit_member_month
                                    + purchases_by_tier @ prog.benefit_per_purchase)
        rec["member_cost"] = float(members_by_tier.sum()) * prog.per_member_per_year / 12.0
        amortisation = 0.0
        share = self.pilot_cost_share if prog is self.design and name == "design" else 1.0  # a pilot's share (stores.py)
        if prog is self.design and name == "design":
            since = t - self.launch_t
            if 0 <= since < prog.amortisation_months:
                amortisation = share * prog.setup / prog.amortisation_months
            if since == 0:
                rec["setup_cash"] = share * prog.setup
        rec["setup_amortisation"] = amortisation
        rec["fixed_cost"] = share * prog.running_per_year / 12.0 + amortisation
        for tn, count in zip(prog.tier_names, members_by_tier):
            rec[f"members_tier_{tn}"] = float(count)
        if name == "design":
            n_drives = len(self.scenario.playbook.enrolment_drives)  # then the staff challenges, at their own cost
            rec["campaign_cost_fixed"] = share * sum(cp.cost for cp in self.campaigns if cp.start == t)
            rec["enrolment_cost_fixed"] = (share * sum(d.cost for d in self.drives[:n_drives] if d.start == t)
                                           + sum(d.cost for d in self.drives[n_drives:] if d.start == t))

    def _month_end(self, t: int, close: bool) -> None:
        """The registered month-end phases of both runs in one pass over the agents: tiers
        (upgrades, reviews), expiry, segment transitions, members per tier (costs) and the close
        (ledger totals, the month's snapshot of earned points). Before the fees (``close``
        False) it stops after expiry; at the close it does what is left."""
        e = self._end
        before, after = not e.before_fees_done, close
        stage = (kernels.STAGE_ALL if before else kernels.STAGE_AFTER_FEES) if after else kernels.STAGE_BEFORE_FEES
        m = self.market
        C = min(len(m.channels), 8)
        by_store = {name: np.zeros((len(m.stores), 2 * (1 + 2 ** C) + 1), dtype=np.int64) for name in self.runs}
        packed = {name: kernels.end_run(run, self.scratch[name].counts,
                                        tiers=e.tiers.get(name) if before else None,
                                        expiry=e.expiry.get(name) if before else None,
                                        cost_tiers=e.costs[name].n_tiers if after and name in e.costs else 0,
                                        close=t % run.snap.shape[0] if after else None)
                  for name, run in self.runs.items()}
        stores = {name: (self.pop.store, run.reach, C, by_store[name]) if after and m.stores
                  else None for name, run in self.runs.items()}
        trans = kernels.NO_TRANSITIONS
        if after and e.transitions:
            d, b = self.runs["design"], self.runs["baseline"]
            use = [self.program_of(name, t) is not None and self.mech.transitions for name in ("design", "baseline")]
            trans = kernels.end_transitions(self.transition_table, len(self.market.names),
                                            self.streams.stream_base("transitions", t), use[0], use[1], d.segment,
                                            b.segment)
        totals = kernels.month_end(t, self.calendar_month(t), stage, packed["design"], packed["baseline"], trans,
                                   n_threads=self.threads, stores_design=stores["design"],
                                   stores_baseline=stores["baseline"])
        for (name, run), (tot, members_by_tier, purchases_by_tier, moves) in zip(self.runs.items(), totals):
            rec = self.scratch[name].rec
            if before:
                if name in e.tiers:
                    rec.update(upgrades=float(tot[kernels.E_UPGRADES]), demotions=float(tot[kernels.E_DEMOTIONS]))
                if name in e.expiry:
                    rec["points_expired"] = float(tot[kernels.E_EXPIRED])
            if not after:
                continue
            if e.transitions:
                run.transitions_counts += moves
            prog = e.costs.get(name)
            if prog is not None:
                self._post_costs(name, prog, t, rec, members_by_tier[: prog.n_tiers], purchases_by_tier[: prog.n_tiers])
            if tot[kernels.E_UNROWED]:
                raise RuntimeError(f"{int(tot[kernels.E_UNROWED])} agents hold points without a history row in month "
                                   f"{t} ({name})")
            e.closing[name] = (int(tot[kernels.E_OUTSTANDING]), int(tot[kernels.E_NEGATIVE]), int(tot[kernels.E_MEMBERS]),
                               by_store[name] if m.stores else None)
        e.before_fees_done = True

    def _close(self, t: int) -> None:
        self._month_end(t, close=True)
        for name, run in self.runs.items():
            # totals and the month's snapshot of earned points (RunState.close_month): the month-end pass
            self._record_close(name, run, t, *self._end.closing[name])
        if self._progress is not None:
            self._progress(t)

    def _record_close(self, name: str, run: RunState, t: int, outstanding: int, negative: int, members: int,
                      by_store: np.ndarray | None = None) -> None:
        """The month's record of a run, from the close's totals, after the ledger checks: no
        agent holds negative points, issued - redeemed - expired = change in outstanding, and
        (``check_agents``) the per-agent flows add up to the recorded totals; with a store
        network, the month by store (``by_store``: the close's counts, stores.month_row)."""
        rec = self.scratch[name].rec
        self._opening[name] = outstanding
        if negative:
            raise RuntimeError(f"points ledger: {negative} agents hold negative points in month {t} ({name})")
        rec["points_outstanding"] = float(outstanding)
        rec["members"] = float(members)
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
        rec["fee_revenue"] = float(self._fee_schedule[name][t])
        rec["fee_unearned"] = float(self._fee_schedule[name][t + 1:].sum())
        if prog is not None and prog.cashback_threshold and rec.get("vouchers_issued"):
            lapsed = rec["vouchers_issued"] - rec.get("vouchers_used", 0.0)
            rec["points_voucher_lapsed"] = lapsed * prog.cashback_threshold
        rec["value_per_point"] = prog.value_per_point if prog is not None else 0.0
        rec["cost_per_point"] = prog.cost_per_point if prog is not None else 0.0
        rec["program_active"] = 1.0 if prog is not None else 0.0
        self.records[name].append(rec)
        if by_store is not None:
            sc = self.scratch[name]
            self.store_rows[name].append(store_figures.month_row(by_store, sc.by_store, sc.referred))

    # ---------------------------------------------------------------- run
    def month_purchases(self, run: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-agent purchases and net spend of the month just stepped in ``run``, arrays over
        the population (read them from a ``progress`` callback). Purchases are kept for both
        runs; per-agent spend for the baseline only (the design's is summed as it is drawn)."""
        sc = self.scratch[run]
        if sc.spend.shape[0] != sc.counts.shape[0]:
            raise ValueError(f"per-agent spend is kept for the baseline run only, not '{run}'")
        return sc.counts, sc.spend

    def run(self, progress: Callable[[int], None] | None = None) -> "ReplicationResult":
        """Run the calendar; ``progress(month)`` is called after each month closes (it is not
        a calendar event, so it leaves the event log unchanged)."""
        self._progress = progress
        with gc_paused():
            self.cal.run()
        frames = {}
        periods = [(pd.Period(self.start, "M") + i).strftime("%Y-%m") for i in range(self.H)]
        by_store = {name: store_figures.table(self.store_rows[name], self.market.stores, self.market.channels,
                                              periods[: len(self.store_rows[name])], self.pop.scale)
                    for name in ("design", "baseline")} if self.market.stores else {}
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
                                 dict(self.parameters), by_store.get("design"), by_store.get("baseline"))


@dataclass
class ReplicationResult:
    design: pd.DataFrame
    baseline: pd.DataFrame
    transitions_design: np.ndarray
    transitions_baseline: np.ndarray
    scale: float
    events: list[tuple[int, str, str]]
    parameters: dict[str, float] = field(default_factory=dict)
    stores_design: pd.DataFrame | None = None    # the months by home store (engine/stores.py), None without a network
    stores_baseline: pd.DataFrame | None = None
