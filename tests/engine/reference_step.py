"""The engine's month in plain NumPy, as it was before the compiled passes: the reference the
compiled kernels (kernels.step_both, kernels.month_end) are compared with in test_reference.py.

:class:`ReferenceSimulation` overrides the phases of :class:`Simulation` with whole-array
NumPy operations (one population-sized uniform array per stream and month, fancy-index
gathers over members), reading and writing the same :class:`RunState`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simulator.engine.compiled import (
    CENTI, CompiledProgram,
)
from simulator.engine.mechanisms import campaigns as camp
from simulator.engine.mechanisms import enrolment, expiry, points, rewards, tiers, transitions
from simulator.engine.mechanisms.purchases import draw_baskets, poisson_icdf
from simulator.engine.simulation import Simulation, _Month
from simulator.engine.state import NEVER, RunState


#: Points expiring now per agent, not yet consumed: expiry.py's NumPy reference.
expire = expiry.expiring_numpy



@njit(cache=True)
def member_lift(segment, tier, spendable, since_reward, since_demotion, ladder, ladder_start, ladder_len,
                g, r, half_life, s_status, d_demotion, n_tiers, use_goal, use_rewarded, use_status, out):
    """Product of the members' rate multipliers (rewards.py and tiers.py give the equations):
    goal gradient 1 + g (progress - 1/2), rewarded behaviour 1 + r 2^(-since/h), status
    1 + s tier / (T - 1), demotion 1 - d 2^(-since/h)."""
    for i in range(segment.shape[0]):
        s = segment[i]
        t = tier[i]
        f = 1.0
        if use_goal:
            prog = 1.0
            a = ladder_start[t]
            for j in range(a, a + ladder_len[t]):
                if ladder[j] > spendable[i]:
                    prog = spendable[i] / ladder[j]
                    break
            f *= 1.0 + g[s] * (prog - 0.5)
        if use_rewarded and since_reward[i] < 10_000:
            f *= 1.0 + r[s] * 2.0 ** (-since_reward[i] / half_life[s])
        if use_status:
            if n_tiers > 1:
                f *= 1.0 + s_status[s] * t / (n_tiers - 1)
            if since_demotion[i] < 10_000:
                f *= 1.0 - d_demotion[s] * 2.0 ** (-since_demotion[i] / half_life[s])
        out[i] = f
    return out

class ReferenceSimulation(Simulation):
    """:class:`Simulation` with the month's phases in NumPy (see the module docstring)."""

    def uniforms(self, name: str, t: int) -> np.ndarray:
        """The month's uniforms of one stream for the whole population, shared by both runs."""
        key = f"{name}@{t}"
        if key not in self._u:
            self._u[key] = self.streams.uniform_all(name, t, self.pop.capacity)
        return self._u[key]

    # ---------------------------------------------------------------- phases
    def _open(self, t: int) -> None:
        self._u = {}
        for name, run in self.runs.items():
            self.scratch[name] = _Month()
            self.scratch[name].qual = None
            self.scratch[name].campaign_hits = {}
            rec = self.scratch[name].rec
            rec["points_opening"] = float(run.outstanding().sum())
            if self.check_agents:
                run.start_trace()
            self._arrive(name, run, t, rec)

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
            lift[mi] = member_lift(
                run.segment[mi], run.tier[mi], spendable, run.since_reward[mi], run.since_demotion[mi],
                prog.ladder_flat, prog.ladder_start, prog.ladder_len, resp["goal_gradient"], resp["rewarded_behaviour"],
                resp["rewarded_half_life"], resp["tier_status"], resp["demotion_effect"], prog.n_tiers,
                self.mech.goal_gradient, self.mech.rewarded_behaviour, self.mech.tier_status, np.empty(mi.size))
        if name == "design" and t >= self.launch_t:
            sc = self.scratch[name]
            for cp in self.active_campaigns:
                hit = cp.target.mask(None, run.segment, run.member, run.tier, self.pop.potential, run.recency, self.pop.store)
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
            run.give_rows(run.earned != 0)  # snapshot rows for the first points, in agent order (state.py)
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
        if m.stores:  # the step's figures by home store (engine/stores.py)
            K = len(m.stores)
            for name, run in self.runs.items():
                sc = self.scratch[name]
                store = self.pop.store
                members = run.member & run.exists if self.program_of(name, t) is not None else np.zeros(N, dtype=bool)
                joined = getattr(sc, "joined", np.zeros(0, dtype=np.int64))
                sc.by_store = np.stack([np.bincount(store, weights=spends[name], minlength=K),
                                        np.bincount(store, weights=spends[name] * members, minlength=K),
                                        np.bincount(store[joined], minlength=K).astype(float)], axis=1)

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
                tgt = d.target.mask(cand, run.segment, run.member, run.tier, self.pop.potential, run.recency, self.pop.store)
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
        self.scratch[name].joined = cand[join]
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

    def _expiry(self, t: int) -> None:
        cm = self.calendar_month(t)
        for name, run in self.runs.items():
            prog = self.program_of(name, t)
            if prog is None:
                continue
            gone = expire(run, prog, t, cm)
            run.debit(gone, None, "expired")
            self.scratch[name].rec["points_expired"] = float(gone.sum())

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
            self._post_costs(name, prog, t, rec, members_by_tier, purchases_by_tier)

    def _close(self, t: int) -> None:
        for name, run in self.runs.items():
            outstanding = run.outstanding()
            run.close_month(t)
            by_store = None
            if self.market.stores:  # the close's counts by home store and code (engine/stores.py)
                K, C = len(self.market.stores), min(len(self.market.channels), 8)
                ex = run.exists
                n = self.scratch[name].counts
                group = (run.member & ex) * (1 + (run.reach.astype(np.int64) & ((1 << C) - 1)))
                code = 2 * group + (n > 0)
                W = 2 * (1 + 2 ** C)
                st = self.pop.store.astype(np.int64)[ex]
                by_store = np.zeros((K, W + 1), dtype=np.int64)
                by_store[:, :W] = np.bincount(st * W + code[ex], minlength=K * W).reshape(K, W)
                by_store[:, W] = np.bincount(st, weights=n[ex], minlength=K).astype(np.int64)
            self._record_close(name, run, t, int(outstanding.sum()), int((outstanding < 0).sum()),
                               int((run.member & run.exists).sum()), by_store)
        if self._progress is not None:
            self._progress(t)

    # ---------------------------------------------------------------- run
