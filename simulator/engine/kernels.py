"""Compiled inner loops of the step (Numba, cached on disk so the CLI and tests compile once).

Each kernel computes exactly what its NumPy description says; the modules that call them
keep the equations and sources. Kernels run over whole arrays in one pass instead of the
several temporary arrays NumPy would need.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from simulator.engine.agent import GOLDEN as _GOLDEN, K_STEP as _K_STEP, earned_until as _earned_until, unit as _unit
from simulator.engine.mechanisms import expiry, points, purchases, rewards, tiers, transitions
from simulator.engine.records import BlockTotals, EndRunArgs, EndStoreArgs, StoreArgs, TransitionArgs

@njit(cache=True, nogil=True)
def mix_uniform(base, agents, k, out):
    """out[i] = uniform of key base + agents[i] * golden + k[i] * step."""
    for i in range(agents.shape[0]):
        out[i] = _unit(base + np.uint64(agents[i]) * _GOLDEN + np.uint64(k[i]) * _K_STEP)
    return out


@njit(cache=True, nogil=True)
def mix_uniform_k0(base, agents, out):
    for i in range(agents.shape[0]):
        out[i] = _unit(base + np.uint64(agents[i]) * _GOLDEN)
    return out


@njit(cache=True, nogil=True)
def mix_uniform_range(base, n, out):
    """Uniforms of agents 0 .. n-1 (the whole population)."""
    for i in range(n):
        out[i] = _unit(base + np.uint64(i) * _GOLDEN)
    return out


@njit(cache=True, nogil=True)
def poisson_icdf(u, lam, out):
    """Smallest n with P(N <= n) >= u, N ~ Poisson(lam) (sequential search)."""
    for i in range(u.shape[0]):
        la = lam[i]
        p = math.exp(-la)
        cdf = p
        n = 0
        ui = u[i]
        while ui > cdf and p > 0.0:
            n += 1
            p = p * la / n
            cdf += p
        out[i] = n
    return out


@njit(cache=True, nogil=True)
def next_segment(segment, u, member, use_member, keys, dest, S, out):
    """Row r = segment + S * member; the first table entry of row r above r + u (linear scan:
    rows have at most a few dozen entries)."""
    for i in range(segment.shape[0]):
        r = segment[i]
        if use_member and member[i]:
            r += S
        key = r + u[i]
        j = r * S
        end = j + S - 1
        while j < end and keys[j] <= key:
            j += 1
        out[i] = dest[j]
    return out


# Wichura (1988), Algorithm AS 241 (PPND16): the normal quantile to about 1e-16.
_A = (3.3871328727963666080e0, 1.3314166789178437745e+2, 1.9715909503065514427e+3, 1.3731693765509461125e+4,
      4.5921953931549871457e+4, 6.7265770927008700853e+4, 3.3430575583588128105e+4, 2.5090809287301226727e+3)
_B = (1.0, 4.2313330701600911252e+1, 6.8718700749205790830e+2, 5.3941960214247511077e+3,
      2.1213794301586595867e+4, 3.9307895800092710610e+4, 2.8729085735721942674e+4, 5.2264952788528545610e+3)
_C = (1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0, 3.64784832476320460504e0,
      1.27045825245236838258e0, 2.41780725177450611770e-1, 2.27238449892691845833e-2, 7.74545014278341407640e-4)
_D = (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
      1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4, 1.05075007164441684324e-9)
_E = (6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0, 2.96560571828504891230e-1,
      2.65321895265761230930e-2, 1.24266094738807843860e-3, 2.71155556874348757815e-5, 2.01033439929228813265e-7)
_F = (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
      7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7, 2.04426310338993978564e-15)


@njit(cache=True, nogil=True)
def _poly(c, x):
    return ((((((c[7] * x + c[6]) * x + c[5]) * x + c[4]) * x + c[3]) * x + c[2]) * x + c[1]) * x + c[0]


@njit(cache=True, nogil=True)
def norm_ppf(p):
    """Standard normal quantile (AS 241)."""
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * _poly(_A, r) / _poly(_B, r)
    r = p if q < 0.0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r -= 1.6
        val = _poly(_C, r) / _poly(_D, r)
    else:
        r -= 5.0
        val = _poly(_E, r) / _poly(_F, r)
    return -val if q < 0.0 else val


@njit(cache=True, nogil=True)
def norm_ppf_array(p, out):
    for i in range(p.shape[0]):
        out[i] = norm_ppf(p[i])
    return out


@njit(cache=True, nogil=True)
def baskets(counts, segment, basket_mult, mean_s, sigma_s, base, net_factor, pos, gross, spend):
    """Every purchase of the month: agent ``pos``, gross amount ``gross``; net spend per agent.

    The k-th purchase of agent i has z = Phi^-1(u(basket, t, i, k)) and amount
    mean_s * b_i * exp(sigma_s z - sigma_s^2 / 2) (purchases.py)."""
    t = 0
    for i in range(counts.shape[0]):
        c = counts[i]
        if c == 0:
            continue
        s = segment[i]
        mu = mean_s[s] * basket_mult[i]
        sg = sigma_s[s]
        total = 0.0
        for k in range(c):
            u = _unit(base + np.uint64(i) * _GOLDEN + np.uint64(k) * _K_STEP)
            a = mu * math.exp(sg * norm_ppf(u) - 0.5 * sg * sg)
            pos[t] = i
            gross[t] = a
            total += a
            t += 1
        spend[i] = total * net_factor
    return t


# ----------------------------------------------------------------------------- fused month
# The kernels below do one phase of the month in a single pass over the agents (both runs
# where the phase reads shared draws), hashing their own uniforms (the same keys as Streams.uniform: stream_base(name, t) + agent
# * golden), so that no population-sized temporaries are made. The NumPy reference of every
# step is kept in tests/engine/reference_step.py and compared with these kernels.

#: Slots of the integer totals of :func:`step_both` (per run).
N_CUSTOMERS, N_ACTIVE, N_PURCHASES, N_CANDIDATES, N_NEW_MEMBERS, N_POINTS_PURCHASE, N_POINTS_BONUS, \
    N_REFERRALS, N_MEMBERS, N_REDEEMED, N_CASHBACK_POINTS, N_VOUCHERS_ISSUED, N_VOUCHERS_USED, \
    N_REDEMPTIONS = range(14)
#: Slots of the floating totals of :func:`step_both` (per run).
F_REVENUE, F_SALES_WITH_POINTS, F_MEMBER_REVENUE, F_COUNTERFACTUAL = range(4)


#: Agents per block: the step's unit of work (a block's totals, snapshot-row candidates and
#: tier-window rows are its own, so blocks can run on any thread).
BLOCK = 1024
#: Tier-window row offset of an agent without one (state.RunState.qual_off).
NO_ROW = 0xFFFF


@njit(cache=True, nogil=True, inline="always")
def _window_sum(qual_ring, r):
    """An agent's rolling tier window summed in float64, in ring order (state.RunState.qual_total)."""
    value = 0.0
    for w in range(qual_ring.shape[1]):
        value += qual_ring[r, w]
    return value


@njit(cache=True, nogil=True)
def give_rows(row, rows, candidates, n_candidates):
    """Snapshot rows for the step's candidates, block after block in agent order (the same
    rows on any number of threads)."""
    for b in range(n_candidates.shape[0]):
        for k in range(n_candidates[b]):
            i = candidates[b * BLOCK + k]
            row[i] = rows[0]
            rows[0] += 1
        n_candidates[b] = 0
    return 0


@njit(cache=True, nogil=True, inline="always")
def _qual_row(qual_off, i):
    """Agent i's tier-window row, -1 none (state.RunState.qual_rows)."""
    o = qual_off[i]
    return -1 if o == NO_ROW else (i // BLOCK) * BLOCK + np.int64(o)


@njit(cache=True, nogil=True, inline="always")
def _new_qual_row(qual_off, qual_used, i):
    """The next tier-window row of agent i's block (the agent has none)."""
    b = i // BLOCK
    o = qual_used[b]
    qual_used[b] = o + 1
    qual_off[i] = o
    return b * BLOCK + np.int64(o)


@njit(cache=True, nogil=True)
def give_qual_rows(qual_off, qual_used, idx):
    """Tier-window rows for agents ``idx`` (ascending, without rows), in order."""
    for j in range(idx.shape[0]):
        _new_qual_row(qual_off, qual_used, idx[j])
    return 0


@njit(cache=True, nogil=True, inline="always")
def _targeted(c, i, seg_ok, members, tiers_ok, use_tiers, pot_ok, inactive, channel,
              segment, member, tier, potential, recency, reach):
    """Whether target c (campaigns.CompiledTarget.mask and campaigns.reached) takes agent i."""
    if not seg_ok[c, segment[i]]:
        return False
    if members[c] == 1 and not member[i]:
        return False
    if members[c] == 2 and member[i]:
        return False
    if use_tiers[c]:
        if not (member[i] and tiers_ok[c, min(tier[i], tiers_ok.shape[1] - 1)]):
            return False
    if not pot_ok[c, potential[i]]:
        return False
    if inactive[c, 0] > 0 and recency[i] < inactive[c, 0]:
        return False
    if inactive[c, 1] >= 0 and recency[i] > inactive[c, 1]:
        return False
    if channel[c] >= 0 and (reach[i] >> channel[c]) & 1 == 0:
        return False
    return True


@njit(cache=True, nogil=True)
def opening_history(lo, hi, agents, join_off, segment, past_cum, rate_mult, basket_mult, birthday, rate, season, cal_month,
                    basket_mean, basket_sigma, net_factor, ppu, rounding, min_order, category_factor, em0, cap_month,
                    bonus_enrolment, bonus_first, bonus_birthday, cashback_threshold, ladder, goal, redeem_prop,
                    pending, expiry, keys, age, out_earned, out_consumed, snap, row, out_first_pending):
    """Members lo .. hi-1 of ``agents`` live their history under a running program
    (mechanisms/history.py): history month o = 0 .. age-1 is month o - age; ``join_off`` is
    the join month + age; ``keys[o]`` the (purchases, basket, redemption, segment) stream keys;
    ``past_cum`` the cumulative rows of the time-reversed segment chain. Month -b's snapshot of
    earned points goes to ``snap[L - b, row[i]]`` (b = 1 .. L-1, zeros left unwritten)."""
    hist = np.zeros(age + 1, dtype=np.int64)  # earned at the end of history month o
    segs = np.zeros(age + 1, dtype=np.int64)  # segment in history month o
    S = past_cum.shape[0]
    kind, e_months, e_month, e_age = expiry[0], expiry[1], expiry[2], expiry[3]
    L = snap.shape[0]
    for j in range(lo, hi):
        i = agents[j]
        j0 = join_off[j]
        s = np.int64(segment[i])  # the segment at the start; the months before, walking back
        for o in range(age - 1, j0 - 1, -1):
            u = _unit(keys[o, 3] + np.uint64(i) * _GOLDEN)
            nxt = 0
            while nxt < S - 1 and past_cum[s, nxt] < u:
                nxt += 1
            s = nxt
            segs[o] = s
        earned = np.int64(0)
        consumed = np.int64(0)
        first_pending = True
        since = 0
        for o in range(age):
            if o < j0:
                hist[o] = 0
                continue
            if o == j0:
                earned += bonus_enrolment
            s = segs[o]
            mu = basket_mean[s] * basket_mult[i]
            sg = basket_sigma[s]
            la = rate[s] * rate_mult[i] * season[o]
            n = purchases.poisson_one(_unit(keys[o, 0] + np.uint64(i) * _GOLDEN), la)
            pts = np.int64(0)
            for k in range(n):
                uk = _unit(keys[o, 1] + np.uint64(i) * _GOLDEN + np.uint64(k) * _K_STEP)
                a = mu * math.exp(sg * norm_ppf(uk) - 0.5 * sg * sg)
                if a >= min_order:
                    pts += points.round_one(ppu * a * net_factor * category_factor * em0, rounding)
            if cap_month >= 0:
                pts = min(pts, cap_month)
            bonus = np.int64(0)
            if n > 0:
                if first_pending:
                    bonus += bonus_first
                first_pending = False
                since = 0
            else:
                since += 1
            if birthday[i] == cal_month[o]:
                bonus += bonus_birthday
            earned += pts + bonus
            # redemption of the spendable balance
            if pending > 0:
                avail = hist[o - pending] if o - pending >= 0 else np.int64(0)
            else:
                avail = earned
            balance = max(avail - consumed, 0)
            if cashback_threshold > 0 and balance >= cashback_threshold:
                conv = (balance // cashback_threshold) * cashback_threshold
                consumed += conv
                balance -= conv
            if ladder.shape[0] > 0 and balance >= goal:
                if _unit(keys[o, 2] + np.uint64(i) * _GOLDEN) < redeem_prop[s]:
                    r = ladder.shape[0] - 1
                    while r >= 0 and ladder[r] > balance:
                        r -= 1
                    if r >= 0:
                        consumed += ladder[r]
            # expiry at the end of the month, oldest first
            back = -1
            if kind == 1:
                back = e_months
            elif kind == 3 and cal_month[o] == e_month:
                back = e_age
            if back == 0:
                consumed = earned
            elif back > 0 and o - back >= 0:
                consumed = max(consumed, hist[o - back])
            if kind == 2 and since >= e_months:
                consumed = earned
            hist[o] = earned
        out_earned[j] = earned
        out_consumed[j] = consumed
        out_first_pending[j] = first_pending
        for b in range(1, min(L, age + 1)):
            if hist[age - b] != 0:
                snap[L - b, row[i]] = np.uint32(hist[age - b] & 0xFFFFFFFF)
    return 0


#: Basket amounts kept per agent of a block for the design (step_both).
BLOCK_AMOUNTS = 8


@njit(cache=True, nogil=True)
def _step_block(lo, hi, first, pop, market, keys, t, cm, run, blk_lam, blk_n, blk_seg, blk_held, blk_amount,
                other_spend, ints, floats, by_tier_reward, camp_contacts, drive_contacts, drive_joins, stores):
    """One run's month for agents lo .. hi-1 (see step_both). The first run (baseline) keeps
    each agent's lambda, purchases, segment and first basket amounts in the ``blk_*`` arrays;
    the second (design) reuses them when its lambda or segment is the same. ``stores`` is None
    (no store network: the code below under ``stores is not None`` is not even compiled) or a
    records.StoreArgs (home store per agent, enrolment multiplier per store, [K, 2] float64 accumulator of
    revenue and members' revenue by store, pilot stores mask (empty: no pilot), first
    referral slot, campaigns' store masks, drives' store masks, [K, 4] int64 accumulator of new
    members by store in column 0) (stores.py). Customers, active customers and purchases by
    store are counted at the close (month_end), from the purchases kept per agent."""
    # the inputs by name (records.py)
    rate_mult = pop.rate_mult
    basket_mult = pop.basket_mult
    identified = pop.identified
    opt_in_on_join = pop.opt_in_on_join
    birthday = pop.birthday
    potential = pop.potential
    sel_power = pop.sel_power
    sel_index = pop.sel_index
    sel_norm = pop.sel_norm
    rate = market.rate
    season = market.season
    basket_mean = market.basket_mean
    basket_sigma = market.basket_sigma
    net_factor = market.net_factor
    gg = market.goal_gradient
    rb = market.rewarded
    half_life = market.half_life
    status = market.status
    demotion = market.demotion
    enrol_prop = market.enrol_prop
    fee_sens = market.fee_sens
    referral_rate = market.referral_rate
    redeem_prop = market.redeem_prop
    decay = market.decay
    k_purchases = keys.purchases
    k_basket = keys.basket
    k_enrolment = keys.enrolment
    k_redemption = keys.redemption
    k_voucher = keys.voucher
    k_referral = keys.referral
    state, prog, camps, drives, flags, out = run.state, run.prog, run.camps, run.drives, run.flags, run.out
    exists = state.exists
    segment = state.segment
    reach = state.reach
    recency = state.recency
    member = state.member
    enrol_month = state.enrol_month
    tier = state.tier
    below = state.below
    since_reward = state.since_reward
    since_demotion = state.since_demotion
    first_pending = state.first_pending
    next_bill = state.next_bill
    spend_since_bill = state.spend_since_bill
    earned = state.earned
    consumed = state.consumed
    snap = state.snap
    qual_ring = state.qual_ring
    qual_off = state.qual_off
    qual_used = state.qual_used
    qual_sum = state.qual_sum
    row = state.row
    row_asks = state.row_asks
    row_asks_n = state.row_asks_n
    eq_extra = state.eq_extra
    trace_issued, trace_redeemed = run.trace.issued, run.trace.redeemed
    # the program by name (records.ProgramArgs)
    has_program = prog.has_program
    ppu = prog.ppu
    rounding = prog.rounding
    min_order = prog.min_order
    category_factor = prog.category_factor
    earn_mult = prog.earn_mult
    cap_month = prog.cap_month
    qppu = prog.qppu
    q_include_bonus = prog.q_include_bonus
    metric = prog.metric
    bonus_enrolment = prog.bonus_enrolment
    bonus_first = prog.bonus_first
    bonus_birthday = prog.bonus_birthday
    bonus_referral = prog.bonus_referral
    pending_col = prog.pending_col
    ladder = prog.ladder
    ladder_start = prog.ladder_start
    ladder_len = prog.ladder_len
    n_tiers = prog.n_tiers
    window = prog.window
    window_months = prog.window_months
    eligible_segments = prog.eligible_segments
    automatic = prog.automatic
    invite_only = prog.invite_only
    annual_fee = prog.annual_fee
    fee = prog.fee
    trial_months = prog.trial_months
    cashback_threshold = prog.cashback_threshold
    voucher_use_rate = prog.voucher_use_rate
    goal = prog.goal
    cat_order = prog.cat_order
    cat_start = prog.cat_start
    cat_len = prog.cat_len
    cat_prices = prog.cat_prices
    endowed = prog.endowed
    c_kind = camps.kind
    c_seg = camps.seg
    c_members = camps.members
    c_tiers = camps.tiers
    c_use_tiers = camps.use_tiers
    c_pot = camps.pot
    c_inactive = camps.inactive
    c_channel = camps.channel
    c_lift = camps.lift
    c_mult = camps.mult
    c_bonus = camps.bonus
    c_min_spend = camps.min_spend
    c_done_row = camps.done_row
    done = camps.done
    d_uplift = drives.uplift
    d_seg = drives.seg
    d_members = drives.members
    d_tiers = drives.tiers
    d_use_tiers = drives.use_tiers
    d_pot = drives.pot
    d_inactive = drives.inactive
    d_channel = drives.channel
    use_goal = flags.goal
    use_rewarded = flags.rewarded
    use_status = flags.status
    use_campaigns = flags.campaigns
    self_selection = flags.self_selection
    use_referrals = flags.referrals
    counts, spend = out.counts, out.spend  # the block's totals go to the arrays given (step_both adds them up)
    tracing = trace_issued.shape[0] > 0
    keep_spend = spend.shape[0] > 0  # the design's spend is not kept
    col_w = t % qual_ring.shape[1]
    blk = lo // BLOCK
    n_cand = 0  # the block's agents asking for a history row (give_rows, after the step)
    # the block's totals, kept in registers and added to ``ints`` / ``floats`` at the end
    n_customers = 0
    n_active = 0
    n_purchases = 0
    n_candidates = 0
    n_new_members = 0
    n_referrals = 0
    n_points_purchase = 0
    n_points_bonus = 0
    n_members = 0
    n_vouchers_issued = 0
    n_vouchers_used = 0
    n_cashback_points = 0
    n_redeemed = 0
    n_redemptions = 0
    f_revenue = 0.0
    f_sales_with_points = 0.0
    f_member_revenue = 0.0
    f_counterfactual = 0.0
    for i in range(lo, hi):
        bj = i - lo  # the agent's row in the block arrays
        s = segment[i]
        if not exists[i]:
            # not (yet) in the base: no purchase, recency goes on, a zero month in the window
            if first:
                blk_lam[bj] = -1.0
            counts[i] = 0
            if keep_spend:
                spend[i] = 0.0
            recency[i] = min(recency[i] + 1, 30000)
            if has_program and n_tiers > 1:
                if window == 0:
                    q = _qual_row(qual_off, i)
                    if q >= 0:
                        qual_ring[q, col_w] = 0.0
                        qual_sum[i] = _window_sum(qual_ring, q)
                else:
                    if window == 1 and cm == 1:
                        qual_sum[i] = 0.0
                    qual_sum[i] += 0.0
            continue
        # ---- lifts: members' goal gradient, rewarded behaviour, status, demotion; campaigns
        prog_i = has_program
        in_pilot = True
        if stores is not None:
            pilot_ok = stores.pilot  # outside a pilot's stores an agent has no program (referred customers do)
            if pilot_ok.shape[0] > 0 and i < stores.referral_start and not pilot_ok[stores.home[i]]:
                in_pilot = False
                prog_i = False
        lift = 1.0
        pmult = 1.0
        if prog_i and member[i] and (use_goal or use_rewarded or use_status):
            sp = max(_earned_until(earned[i], snap, row[i], pending_col) - consumed[i], 0)
            ti = tier[i]
            f = 1.0
            if use_goal:  # rewards.py, with endowed_progress.py
                f *= rewards.goal_gradient_one(sp, ladder_start[ti], ladder_len[ti], ladder, gg[s], endowed * goal[ti],
                                               since_reward[i])
            m = since_reward[i]
            if use_rewarded and m < 10_000:  # rewards.py
                f *= rewards.rewarded_one(rb[s], decay, s, m, half_life[s])
            if use_status:  # tiers.py
                if n_tiers > 1:
                    f *= tiers.status_one(status[s], ti, n_tiers)
                m = since_demotion[i]
                if m < 10_000:
                    f *= tiers.demotion_one(demotion[s], decay, s, m, half_life[s])
            lift = f
        hits = 0
        for c in range(c_kind.shape[0] if in_pilot else 0):
            if _targeted(c, i, c_seg, c_members, c_tiers, c_use_tiers, c_pot, c_inactive, c_channel,
                         segment, member, tier, potential, recency, reach):
                if stores is not None:
                    if not stores.camp_masks[c, stores.home[i]]:  # a target's stores
                        continue
                hits |= 1 << c
                camp_contacts[c] += 1
                if use_campaigns:
                    lift = lift * (1.0 + c_lift[c, s])
                if c_kind[c] == 1 and member[i]:
                    pmult = pmult * c_mult[c]
        # ---- purchases (purchases.py): one Poisson search unless the baseline had the same lambda
        la = rate[s] * rate_mult[i] * (lift * season)
        if first:
            n = purchases.poisson_one(_unit(k_purchases + np.uint64(i) * _GOLDEN), la)
            blk_lam[bj] = la
            blk_n[bj] = n
            blk_seg[bj] = s
            valid = 0
        else:
            n = blk_n[bj] if la == blk_lam[bj] else purchases.poisson_one(_unit(k_purchases + np.uint64(i) * _GOLDEN), la)
            valid = blk_held[bj] if (blk_lam[bj] >= 0.0 and blk_seg[bj] == s) else 0
        if n > 65535:
            raise ValueError("more than 65535 purchases of one agent in a month")
        n_customers += 1
        counts[i] = n
        rc = recency[i] + 1
        if stores is not None:
            k_store = stores.home[i]
        if n > 0:
            rc = 0
            n_active += 1
            n_purchases += n
        recency[i] = min(rc, 30000)
        # ---- enrolment (enrolment.py): a customer joins at the till with a purchase
        joined = False
        if prog_i and not member[i] and identified[i] and eligible_segments[s]:
            n_candidates += 1
            h = enrol_prop[s]
            if stores is not None:
                h = h * stores.enrol_mult[stores.home[i]]
            if self_selection:
                h = h * (sel_power[sel_index[s]][i] / sel_norm[s])
            if annual_fee > 0.0:
                annual_spend = 12 * rate[s] * rate_mult[i] * basket_mean[s] * basket_mult[i]
                h = h * math.exp(-fee_sens[s] * annual_fee / max(annual_spend, 1e-9))
            till = 0.0
            reached = 0  # bit d: drive d contacted the agent
            for d in range(d_uplift.shape[0]):
                if _targeted(d, i, d_seg, d_members, d_tiers, d_use_tiers, d_pot, d_inactive, d_channel,
                             segment, member, tier, potential, recency, reach):
                    if stores is not None:
                        if not stores.drive_masks[d, stores.home[i]]:  # a target's stores
                            continue
                    if d_channel[d] < 0:
                        till += d_uplift[d]
                        if n > 0:
                            reached |= 1 << d
                    else:
                        reached |= 1 << d
            if automatic:
                pj = 1.0 if n > 0 else 0.0
            else:
                base = 0.0 if invite_only else 1.0
                stay_out = 1.0 - min(h * (base + till), 1.0) * (1.0 if n > 0 else 0.0)
                for d in range(d_uplift.shape[0]):
                    if d_channel[d] >= 0:
                        stay_out = stay_out * (1.0 - min(h * d_uplift[d], 1.0) * (1.0 if (reached >> d) & 1 else 0.0))
                pj = 1.0 - stay_out
            for d in range(d_uplift.shape[0]):
                if (reached >> d) & 1:
                    drive_contacts[d] += 1
            if _unit(k_enrolment + np.uint64(i) * _GOLDEN) < pj:
                joined = True
                for d in range(d_uplift.shape[0]):
                    if (reached >> d) & 1:
                        drive_joins[d] += 1
                n_new_members += 1
                if stores is not None:
                    stores.counts[k_store, 0] += 1
                member[i] = True
                enrol_month[i] = t
                tier[i] = 0
                below[i] = 0
                since_reward[i] = 10_000
                since_demotion[i] = 10_000
                first_pending[i] = True
                reach[i] |= opt_in_on_join[i]
                if fee > 0.0:
                    next_bill[i] = t + trial_months
                    spend_since_bill[i] = 0.0
                if bonus_enrolment:
                    earned[i] += bonus_enrolment
                    if tracing:
                        trace_issued[i] += bonus_enrolment
        is_member = prog_i and member[i]
        # ---- baskets (purchases.py) and points per transaction (points.py)
        mu = basket_mean[s] * basket_mult[i]
        sg = basket_sigma[s]
        em = earn_mult[tier[i]] if is_member else 1.0
        total = 0.0
        pts = 0
        q = 0.0
        biggest = 0.0
        for k in range(n):
            if k < valid:
                a = blk_amount[bj, k]
            else:
                uk = _unit(k_basket + np.uint64(i) * _GOLDEN + np.uint64(k) * _K_STEP)
                a = mu * math.exp(sg * norm_ppf(uk) - 0.5 * sg * sg)
                if first and k < blk_amount.shape[1]:
                    blk_amount[bj, k] = a
            total += a
            if is_member:
                biggest = max(biggest, a)
                if a >= min_order:
                    net = a * net_factor
                    pts += points.round_one(ppu * net * category_factor * em * pmult, rounding)
                    q += points.round_one(qppu * net, rounding) / 100
        if first:
            blk_held[bj] = min(n, blk_amount.shape[1])
        sp_i = total * net_factor if n > 0 else 0.0
        if keep_spend:
            spend[i] = sp_i
        f_revenue += sp_i
        if stores is not None:
            if n > 0:  # spend is 0 otherwise (adding 0 changes no sum)
                stores.money[k_store, 0] += sp_i
        if not prog_i:
            continue
        if is_member and cap_month >= 0:
            pts = min(pts, cap_month)
        # ---- bonuses
        bonus = 0
        if is_member and first_pending[i] and n > 0:
            bonus += bonus_first
        if n > 0:
            first_pending[i] = False
        if is_member and birthday[i] == cm:
            bonus += bonus_birthday
        if is_member:
            for c in range(c_kind.shape[0]):
                if c_kind[c] == 2 and (hits >> c) & 1 and biggest >= c_min_spend[c] and not done[c_done_row[c], i]:
                    bonus += c_bonus[c]
                    done[c_done_row[c], i] = True
            if use_referrals and _unit(k_referral + np.uint64(i) * _GOLDEN) < referral_rate[s] / 12.0:
                bonus += bonus_referral
                n_referrals += 1
        earned[i] += pts + bonus
        if tracing:
            trace_issued[i] += pts + bonus
        n_points_purchase += pts
        n_points_bonus += bonus
        if pts > 0:
            f_sales_with_points += sp_i
        # ---- the month's tier metric into the window (tiers.metric_of_month, tiers.add_to_window)
        asks = row[i] < 0 and earned[i] != 0  # the first points: a snapshot row (state.py)
        if n_tiers > 1:
            qv = 0.0
            if is_member:
                if metric == 0:
                    qv = q + (bonus / 100 if q_include_bonus else 0.0)
                    if q_include_bonus and (joined or eq_extra.shape[0] > 0):
                        extra = eq_extra[i] if eq_extra.shape[0] > 0 else 0.0
                        if joined:
                            extra += bonus_enrolment / 100
                        qv = qv + extra
                elif metric == 2:
                    qv = float(n)
                else:
                    qv = sp_i
            if window == 0:  # the window's sum, re-added while its row is in cache
                q = _qual_row(qual_off, i)
                if q < 0 and qv != 0.0:
                    q = _new_qual_row(qual_off, qual_used, i)
                if q >= 0:
                    qual_ring[q, col_w] = qv
                    qual_sum[i] = _window_sum(qual_ring, q)
            else:
                if window == 1:
                    if cm == 1:
                        qual_sum[i] = 0.0
                elif is_member and enrol_month[i] >= 0 and (t - enrol_month[i]) % 12 == 0:
                    qual_sum[i] = 0.0
                qual_sum[i] += qv
        if asks:
            row_asks[lo + n_cand] = i
            n_cand += 1
        if fee > 0.0:
            spend_since_bill[i] += sp_i
        if not is_member:
            continue
        # ---- redemption (rewards.py): cash-back blocks, then one catalogue reward
        n_members += 1
        f_member_revenue += sp_i
        if stores is not None:
            if n > 0:
                stores.money[k_store, 1] += sp_i
        if not first:
            f_counterfactual += other_spend[i]
        balance = max(_earned_until(earned[i], snap, row[i], pending_col) - consumed[i], 0)
        r = 0
        if cashback_threshold > 0 and balance >= cashback_threshold:
            conv, issued, used = rewards.cashback_one(balance, cashback_threshold, voucher_use_rate, k_voucher, i)
            n_vouchers_issued += issued
            n_vouchers_used += used
            r += conv
            balance -= conv
            n_cashback_points += conv
        ti = tier[i]
        j = rewards.catalogue_one(balance, cat_start[ti], cat_len[ti], cat_prices, goal[ti], redeem_prop[s], k_redemption, i)
        if j >= 0:
            r += cat_prices[j]
            by_tier_reward[ti, cat_order[j]] += 1
        if r > 0:
            consumed[i] += r
            if tracing:
                trace_redeemed[i] += r
            n_redeemed += r
            n_redemptions += 1
            since_reward[i] = 0
        else:
            since_reward[i] = min(since_reward[i] + 1, 10_000)
        since_demotion[i] = min(since_demotion[i] + 1, 10_000)

    row_asks_n[blk] = n_cand
    ints[N_CUSTOMERS] += n_customers
    ints[N_ACTIVE] += n_active
    ints[N_PURCHASES] += n_purchases
    ints[N_CANDIDATES] += n_candidates
    ints[N_NEW_MEMBERS] += n_new_members
    ints[N_REFERRALS] += n_referrals
    ints[N_POINTS_PURCHASE] += n_points_purchase
    ints[N_POINTS_BONUS] += n_points_bonus
    ints[N_MEMBERS] += n_members
    ints[N_VOUCHERS_ISSUED] += n_vouchers_issued
    ints[N_VOUCHERS_USED] += n_vouchers_used
    ints[N_CASHBACK_POINTS] += n_cashback_points
    ints[N_REDEEMED] += n_redeemed
    ints[N_REDEMPTIONS] += n_redemptions
    floats[F_REVENUE] += f_revenue
    floats[F_SALES_WITH_POINTS] += f_sales_with_points
    floats[F_MEMBER_REVENUE] += f_member_revenue
    floats[F_COUNTERFACTUAL] += f_counterfactual
    return 0


@njit(cache=True, nogil=True)
def decay_table(half_life, months):
    """``out[s, m] = 2 ** (-m / half_life[s])`` for m < months: the rewarded-behaviour and
    demotion decay of members ``m`` whole months after the event, looked up by step_both."""
    out = np.empty((half_life.shape[0], months))
    for s in range(half_life.shape[0]):
        for m in range(months):
            out[s, m] = 2.0 ** (-m / half_life[s])
    return out


def threads() -> int:
    """Threads the month's step uses: ``LOYALTY_SIM_THREADS`` if set (the process pool's
    workers set 1: replications already fill the cores), else every core this process may
    use. Results do not depend on it."""
    env = os.environ.get("LOYALTY_SIM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


_POOL: ThreadPoolExecutor | None = None


def _thread_pool(n: int) -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL._max_workers < n:
        if _POOL is not None:
            _POOL.shutdown(wait=True)
        _POOL = ThreadPoolExecutor(n, thread_name_prefix="loyalty-sim-step")
    return _POOL


def _drop_thread_pool() -> None:
    """Before a fork: stop the idle step threads (a forked child inherits none of them but
    would wait for them at exit); the next step starts a new pool."""
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(wait=True)
        _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_drop_thread_pool)


#: Agents per thread below which a pass runs on one thread (threads cost more than they save).
MIN_AGENTS_PER_THREAD = 50_000


#: Blocks per task when a pass runs on several threads: the threads take the tasks in turn
#: (agents differ in cost -- the arrivals not yet in the base and the pool for referred
#: customers cost little -- so one equal range per thread would leave a thread idle).
TASK_BLOCKS = 32


def _tasks(nb: int) -> list[tuple[int, int]]:
    """Block ranges of TASK_BLOCKS blocks covering blocks 0 .. nb-1, in order."""
    return [(b, min(b + TASK_BLOCKS, nb)) for b in range(0, nb, TASK_BLOCKS)]


def _threaded(kernel, N: int, n_threads: int | None, *args) -> list:
    """``kernel(lo, hi, *args)`` over agent ranges of whole blocks, on the step's threads;
    the results in range order. Kernels write only their own agents' entries (and their
    blocks' rows) and return integer totals, so the outcome does not depend on the number of
    threads."""
    n = threads() if n_threads is None else max(1, int(n_threads))
    n = max(1, min(n, N // MIN_AGENTS_PER_THREAD))
    if n == 1:
        return [kernel(0, N, *args)]
    pool = _thread_pool(n)
    nb = (N + BLOCK - 1) // BLOCK
    futures = [pool.submit(kernel, a * BLOCK, min(b * BLOCK, N), *args) for a, b in _tasks(nb)]
    return [f.result() for f in futures]


def step_both(pop, market, keys, t, cm, base_run, design_run, n_threads: int = 1, base_stores=None,
              design_stores=None) -> None:
    """Both runs' month for every agent (simulation._step; equations in purchases.py,
    enrolment.py, points.py, rewards.py, tiers.py), block by block, baseline then design:

    lifts L_i, lambda_i = rate_s m_i season L_i, n_i = Poisson inverse CDF of the shared
    u(purchases, t, i) (one search when both runs have the same lambda_i), the baskets (an
    amount drawn once when both runs see the agent in the same segment), recency; with a
    program: enrolment, points per transaction (rounded, capped per month), bonuses, the
    tier metric into the window, redemption, months since reward and demotion.

    ``pop``, ``market``, ``keys`` are records.PopulationArgs, MarketArgs, StreamKeys; a run is a
    records.RunArgs as simulation._step fills it; its ``out`` (StepOut) receives per agent the
    purchases and net spend, and the month's totals
    (slots N_* / F_*, redemptions per tier and reward, campaign contacts, drive contacts and
    sign-ups). The design's members' counterfactual revenue is the baseline's spend of the
    same agents.

    With a store network, ``*_stores`` are records.StoreArgs (home store per agent, enrolment
    multiplier per store, money [K, 2], pilot stores mask, first referral slot, campaigns' store
    masks [C, K], drives' store masks [D, K], counts [K, 4]): ``money`` receives each run's revenue and
    members' revenue, ``counts`` its new members, customers, active customers and purchases by
    home store (stores.py), summed per task of blocks and then in task order.

    Tasks of TASK_BLOCKS blocks run on ``n_threads`` threads (the kernel releases the GIL): an
    agent's month touches only its own state (every draw is hashed from its coordinates) and
    each block keeps its own totals, added up in block order afterwards -- so the figures are
    the same bits whatever the number of threads.
    """
    N = base_run.state.exists.shape[0]
    nb = (N + BLOCK - 1) // BLOCK
    tots = (_block_totals(base_run.out, nb), _block_totals(design_run.out, nb))
    # figures by home store: one accumulator per task (a task's blocks run on one thread, in
    # order), added up in task order -- the same bits on any number of threads
    n_tasks = (nb + TASK_BLOCKS - 1) // TASK_BLOCKS
    accs = [None if st is None else np.zeros((n_tasks,) + st.money.shape) for st in (base_stores, design_stores)]
    # (counts are integers: the threads' tasks add into one accumulator per task as well, for simplicity)
    counts = [None if st is None else np.zeros((n_tasks,) + st.counts.shape, dtype=np.int64)
              for st in (base_stores, design_stores)]
    by_task = [None if st is None else st._replace(money=acc, counts=c)
               for st, acc, c in zip((base_stores, design_stores), accs, counts)]
    n = max(1, min(int(n_threads), nb))
    if n == 1:
        step_blocks(0, nb, pop, market, keys, t, cm, base_run, design_run, tots[0], tots[1], *by_task)
    else:
        pool = _thread_pool(n)
        futures = [pool.submit(step_blocks, a, b, pop, market, keys, t, cm, base_run, design_run, tots[0], tots[1],
                               *by_task)
                   for a, b in _tasks(nb)]
        for f in futures:
            f.result()
    add_block_totals(base_run.out, tots[0])
    add_block_totals(design_run.out, tots[1])
    for st, acc, cnt in zip((base_stores, design_stores), accs, counts):
        if st is not None:
            out, out_n = st.money, st.counts
            for task in range(n_tasks):
                out += acc[task]
                out_n += cnt[task]


def _block_totals(out, nb):
    """Per-block accumulators shaped like the totals of ``out`` (ints, floats, redemptions by
    tier x reward, campaign contacts, drive contacts, drive sign-ups)."""
    return BlockTotals(np.zeros((nb, out.ints.shape[0]), dtype=np.int64), np.zeros((nb, out.floats.shape[0])),
                       np.zeros((nb,) + out.by_tier_reward.shape, dtype=np.int64),
                       np.zeros((nb, out.camp_contacts.shape[0]), dtype=np.int64),
                       np.zeros((nb, out.drive_contacts.shape[0]), dtype=np.int64),
                       np.zeros((nb, out.drive_joins.shape[0]), dtype=np.int64))


@njit(cache=True, nogil=True)
def step_blocks(b0, b1, pop, market, keys, t, cm, base_run, design_run, base_tot, design_tot, base_stores, design_stores):
    """Blocks ``b0 .. b1-1`` of step_both, each block's totals into its row of ``*_tot`` and
    (``*_stores`` not None) the figures by home store into its task's row of ``*_stores.money``
    and ``*_stores.counts``."""
    N = base_run.state.exists.shape[0]
    blk_lam = np.empty(BLOCK)
    blk_n = np.empty(BLOCK, dtype=np.int64)
    blk_seg = np.empty(BLOCK, dtype=np.int64)
    blk_held = np.zeros(BLOCK, dtype=np.int64)
    blk_amount = np.empty((BLOCK, BLOCK_AMOUNTS))
    base_spend = base_run.out.spend
    bi, bf, bt, bc = base_tot.ints, base_tot.floats, base_tot.by_tier_reward, base_tot.camp_contacts
    bdc, bdj = base_tot.drive_contacts, base_tot.drive_joins
    di, df, dt, dc = design_tot.ints, design_tot.floats, design_tot.by_tier_reward, design_tot.camp_contacts
    ddc, ddj = design_tot.drive_contacts, design_tot.drive_joins
    for b in range(b0, b1):
        lo = b * BLOCK
        hi = min(lo + BLOCK, N)
        if base_stores is None:
            _step_block(lo, hi, True, pop, market, keys, t, cm, base_run, blk_lam, blk_n, blk_seg, blk_held,
                        blk_amount, base_spend, bi[b], bf[b], bt[b], bc[b], bdc[b], bdj[b], None)
            _step_block(lo, hi, False, pop, market, keys, t, cm, design_run, blk_lam, blk_n, blk_seg, blk_held,
                        blk_amount, base_spend, di[b], df[b], dt[b], dc[b], ddc[b], ddj[b], None)
        else:
            task = b // TASK_BLOCKS
            bs, ds = base_stores, design_stores
            _step_block(lo, hi, True, pop, market, keys, t, cm, base_run, blk_lam, blk_n, blk_seg, blk_held,
                        blk_amount, base_spend, bi[b], bf[b], bt[b], bc[b], bdc[b], bdj[b],
                        StoreArgs(bs.home, bs.enrol_mult, bs.money[task], bs.pilot, bs.referral_start, bs.camp_masks,
                                  bs.drive_masks, bs.counts[task]))
            _step_block(lo, hi, False, pop, market, keys, t, cm, design_run, blk_lam, blk_n, blk_seg, blk_held,
                        blk_amount, base_spend, di[b], df[b], dt[b], dc[b], ddc[b], ddj[b],
                        StoreArgs(ds.home, ds.enrol_mult, ds.money[task], ds.pilot, ds.referral_start, ds.camp_masks,
                                  ds.drive_masks, ds.counts[task]))
    return 0


@njit(cache=True, nogil=True)
def add_block_totals(out, tot):
    """Add the blocks' totals into ``out``, block after block (the additions one thread makes
    in one pass, in the same order)."""
    bi, bf, bt, bc, bdc, bdj = tot.ints, tot.floats, tot.by_tier_reward, tot.camp_contacts, tot.drive_contacts, tot.drive_joins
    ints, floats, by_tier_reward, camp = out.ints, out.floats, out.by_tier_reward, out.camp_contacts
    dcon, djoin = out.drive_contacts, out.drive_joins
    for b in range(bi.shape[0]):
        for k in range(bi.shape[1]):
            ints[k] += bi[b, k]
        for k in range(bf.shape[1]):
            floats[k] += bf[b, k]
        for x in range(bt.shape[1]):
            for y in range(bt.shape[2]):
                by_tier_reward[x, y] += bt[b, x, y]
        for k in range(bc.shape[1]):
            camp[k] += bc[b, k]
        for k in range(bdc.shape[1]):
            dcon[k] += bdc[b, k]
            djoin[k] += bdj[b, k]
    return 0


# ----------------------------------------------------------------------------- month end
# After the step, the month's other agent phases -- tiers, expiry, (fees,) transitions, costs
# and the close -- read and write only each agent's own state, so they run as one pass over
# the agents for both runs (month_end), each agent going through the phases in calendar order.

#: Slots of a run's month-end totals (month_end).
E_UPGRADES, E_DEMOTIONS, E_EXPIRED, E_OUTSTANDING, E_NEGATIVE, E_MEMBERS, E_UNROWED = range(7)
#: Stages of month_end: every phase, the phases before the fees, the phases after them.
STAGE_ALL, STAGE_BEFORE_FEES, STAGE_AFTER_FEES = 0, 1, 2


def end_run(run, counts, *, tiers=None, expiry=None, cost_tiers=0, close=None) -> EndRunArgs:
    """One run's part of a month_end pass. ``run`` is a state.RunState (its arrays are updated
    in place), ``counts`` the month's purchases per agent; the phases it takes part in:

    * ``tiers`` (thresholds, window, downgrade, grace): upgrades, then reviews (tiers.py) on
      the window's sum ``qual_sum`` (a rolling window's is re-added in the step, in ring order:
      state.RunState.qual_total);
    * ``expiry`` (column, inactive months) from expiry.rule: ``max(0, earned_until(column) -
      consumed)`` consumed (column -1: all points), or with inactive months >= 0 the whole
      balance of agents that many months without a purchase (expiry.py);
    * ``cost_tiers`` > 0: members (``member & exists``) and their purchases per tier;
    * ``close`` (None: off; -1: totals only; a ring row: also the month's snapshot of every
      agent with a history row): points outstanding, agents with a negative balance, members,
      agents with points and no history row (none, or a bug) (state.RunState.close_month).
    """
    tr = run.trace["expired"] if run.trace is not None else np.zeros(0, dtype=np.int64)
    th, window, downgrade, grace = tiers if tiers is not None else (np.zeros(1), 0, 0, 0)
    col, inactive = expiry if expiry is not None else (-1, -1)
    return EndRunArgs(member=run.member, exists=run.exists, tier=run.tier, below=run.below,
                      since_demotion=run.since_demotion, enrol_month=run.enrol_month, recency=run.recency,
                      counts=counts, earned=run.earned, consumed=run.consumed, snap=run.snap, row=run.row,
                      qual_sum=run.qual_sum, trace_expired=tr, tiers_on=tiers is not None,
                      thresholds=np.asarray(th, dtype=np.float64), window=int(window), downgrade=int(downgrade),
                      grace=int(grace), expiry_on=expiry is not None, exp_col=int(col), exp_inactive=int(inactive),
                      cost_tiers=int(cost_tiers), close_on=close is not None,
                      close_col=int(close) if close is not None else -1)


def end_transitions(table, S, base, use_member_design, use_member_baseline, segment_design, segment_baseline):
    """The segment transitions of a month_end pass (transitions.next_segment, one shared
    uniform u(transitions, t, i) hashed once for both runs); the moves of the design's
    members (``member & exists`` before the move) are counted in each run's table."""
    keys, dest = table
    return TransitionArgs(on=True, keys=keys, dest=dest, S=int(S), base=np.uint64(base),
                          use_member_design=bool(use_member_design), use_member_baseline=bool(use_member_baseline),
                          segment_design=segment_design, segment_baseline=segment_baseline)


NO_TRANSITIONS = TransitionArgs(on=False, keys=np.zeros(1), dest=np.zeros(1, dtype=np.int64), S=1, base=np.uint64(0),
                                use_member_design=False, use_member_baseline=False,
                                segment_design=np.zeros(1, dtype=np.int16), segment_baseline=np.zeros(1, dtype=np.int16))


def month_end(t, cm, stage, design, baseline, transitions=NO_TRANSITIONS, n_threads=None, stores_design=None,
              stores_baseline=None):
    """The month-end phases of both runs in one pass over the agents (ranges on the step's
    threads; integer totals, so the same whatever the number of threads). ``design`` and
    ``baseline`` come from end_run, ``transitions`` from end_transitions. Returns per run
    (totals by E_* slot, members per tier, purchases per tier, moves [S, S]).

    ``stores_*`` (with the close; None: no store network) are (home store per agent, the run's
    reach masks, number of channels C, out [K, 2 (1 + 2**C) + 1] int64): the run's customers by
    home store and code 2 g + a -- g 0 for a non-member, 1 + the channels bitmask for a member;
    a 1 when the customer bought this month -- and in the last column their purchases, are
    added into ``out`` (stores.py; integer sums, in any order): two counts per customer, no
    branch."""
    N = design.member.shape[0]
    S = transitions.S
    # (home stores, reach masks, the channels' bitmask 2**C - 1, stores K) of each run
    sd, sb = ((None if st is None else (st[0], st[1], (1 << int(st[2])) - 1, st[3].shape[0]))
              for st in (stores_design, stores_baseline))
    parts = _threaded(_month_end_range, N, n_threads, t, cm, stage, design, baseline, transitions, S, sd, sb)
    out = []
    for k, st in enumerate((stores_design, stores_baseline)):
        tot, bm, bp, moves = (sum(p[k][j] for p in parts) for j in range(4))
        out.append((tot, bm, bp, moves))
        if st is not None:
            by_store = st[3]
            for p in parts:
                by_store += p[k][4]
    return out


@njit(cache=True, nogil=True)
def _end_before_fees(lo, hi, r, t, cm, tot):
    """Tiers (upgrades, reviews) then expiry of agents lo .. hi-1 in run r (see end_run)."""
    member, exists, tier, below, since_demotion = r.member, r.exists, r.tier, r.below, r.since_demotion
    enrol_month, recency, earned, consumed, snap, row = r.enrol_month, r.recency, r.earned, r.consumed, r.snap, r.row
    qual_sum, trace_expired, tiers_on, thresholds = r.qual_sum, r.trace_expired, r.tiers_on, r.thresholds
    window, downgrade, grace = r.window, r.downgrade, r.grace
    expiry_on, exp_col, exp_inactive = r.expiry_on, r.exp_col, r.exp_inactive
    tracing = trace_expired.shape[0] > 0
    ups = 0
    downs = 0
    expired = 0
    for i in range(lo, hi):
        # the phases in calendar order, each a mechanism's compiled function
        if tiers_on and member[i]:  # tiers.py
            up, down = tiers.upgrade_and_review(i, tier, below, since_demotion, qual_sum[i], enrol_month[i], thresholds,
                                                window, downgrade, grace, t, cm)
            ups += up
            downs += down
        if expiry_on and earned[i] != consumed[i]:  # expiry.py (nothing outstanding, nothing to expire)
            gone = expiry.expiring(earned[i], consumed[i], recency[i], snap, row[i], exp_col, exp_inactive)
            if gone != 0:
                consumed[i] += gone
                if tracing:
                    trace_expired[i] += gone
                expired += gone
    tot[E_UPGRADES] += ups
    tot[E_DEMOTIONS] += downs
    tot[E_EXPIRED] += expired
    return 0


@njit(cache=True, nogil=True)
def _end_transitions(lo, hi, tr, S, member_d, exists_d, member_b, moves_d, moves_b):
    """Segment transitions of agents lo .. hi-1 in both runs (see end_transitions)."""
    keys, dest, base = tr.keys, tr.dest, tr.base
    use_member_d, use_member_b, seg_d, seg_b = tr.use_member_design, tr.use_member_baseline, tr.segment_design, tr.segment_baseline
    for i in range(lo, hi):
        u = _unit(base + np.uint64(i) * _GOLDEN)
        sd = seg_d[i]
        sb = seg_b[i]
        rd = sd + S if use_member_d and member_d[i] else sd
        rb = sb + S if use_member_b and member_b[i] else sb
        ad = dest[transitions.next_entry(rd, rd + u, keys, S)]
        ab = ad if rb == rd else dest[transitions.next_entry(rb, rb + u, keys, S)]
        seg_d[i] = ad
        seg_b[i] = ab
        if member_d[i] and exists_d[i]:
            moves_d[sd, ad] += 1
            moves_b[sb, ab] += 1
    return 0


@njit(cache=True, nogil=True)
def _end_after_fees(lo, hi, r, tot, by_members, by_purchases, stores):
    """Costs (members and purchases per tier) and the close of agents lo .. hi-1 in run r (see
    end_run); ``stores`` (home stores, reach masks, channels bitmask, out [K, 1 + 2**C]) or
    None (not compiled): the close's counts by home store and code, and purchases (month_end)."""
    member, exists, tier, counts, earned, consumed = r.member, r.exists, r.tier, r.counts, r.earned, r.consumed
    snap, row, cost_tiers, close_on, close_col = r.snap, r.row, r.cost_tiers, r.close_on, r.close_col
    outstanding = 0
    negative = 0
    members = 0
    unrowed = 0
    for i in range(lo, hi):
        if stores is not None:
            if close_on and exists[i]:  # by home store and code (month_end); purchases in the last column
                k = stores.home[i]
                n = np.int64(counts[i])
                m = np.int64(member[i])
                hist = stores.out
                hist[k, 2 * m * (1 + (np.int64(stores.reach[i]) & stores.channels)) + (n > 0)] += 1
                hist[k, hist.shape[1] - 1] += n
        if cost_tiers > 0 and member[i] and exists[i]:
            by_members[tier[i]] += 1
            by_purchases[tier[i]] += counts[i]
        if close_on:
            b = earned[i] - consumed[i]
            outstanding += b
            if b < 0:
                negative += 1
            if member[i] and exists[i]:
                members += 1
            if close_col >= 0:
                q = row[i]
                if q >= 0:
                    snap[close_col, q] = np.uint32(earned[i] & 0xFFFFFFFF)
                elif earned[i] != 0:
                    unrowed += 1  # points without a history row: a broken invariant (Simulation raises)
    tot[E_OUTSTANDING] += outstanding
    tot[E_NEGATIVE] += negative
    tot[E_MEMBERS] += members
    tot[E_UNROWED] += unrowed
    return 0


@njit(cache=True, nogil=True)
def _month_end_range(lo, hi, t, cm, stage, d, b, tr, S, sd, sb):
    """month_end for agents lo .. hi-1, block by block (each phase over a block's agents, in
    calendar order: an agent's phases touch only its own state); returns this range's totals
    of each run. ``sd``, ``sb``: (home stores, reach masks, channels bitmask 2**C - 1, stores
    K) of each run, or None; the counts by store and code come back as [K, 2 (1 + 2**C) + 1]
    ([0, 2] without)."""
    tot_d = np.zeros(7, dtype=np.int64)
    tot_b = np.zeros(7, dtype=np.int64)
    cost_tiers_d, cost_tiers_b = d.cost_tiers, b.cost_tiers
    bm_d = np.zeros(max(cost_tiers_d, 1), dtype=np.int64)
    bp_d = np.zeros(max(cost_tiers_d, 1), dtype=np.int64)
    bm_b = np.zeros(max(cost_tiers_b, 1), dtype=np.int64)
    bp_b = np.zeros(max(cost_tiers_b, 1), dtype=np.int64)
    moves_d = np.zeros((S, S), dtype=np.int64)
    moves_b = np.zeros((S, S), dtype=np.int64)
    st_d = np.zeros((0, 2), dtype=np.int64) if sd is None else np.zeros((sd[3], 2 * (2 + sd[2]) + 1), dtype=np.int64)
    st_b = np.zeros((0, 2), dtype=np.int64) if sb is None else np.zeros((sb[3], 2 * (2 + sb[2]) + 1), dtype=np.int64)
    for a in range(lo, hi, BLOCK):
        z = min(a + BLOCK, hi)
        if stage != STAGE_AFTER_FEES:
            _end_before_fees(a, z, d, t, cm, tot_d)
            _end_before_fees(a, z, b, t, cm, tot_b)
        if stage == STAGE_BEFORE_FEES:
            continue
        if tr.on:
            _end_transitions(a, z, tr, S, d.member, d.exists, b.member, moves_d, moves_b)
        if sd is None:
            _end_after_fees(a, z, d, tot_d, bm_d, bp_d, None)
        else:
            _end_after_fees(a, z, d, tot_d, bm_d, bp_d, EndStoreArgs(sd[0], sd[1], sd[2], st_d))
        if sb is None:
            _end_after_fees(a, z, b, tot_b, bm_b, bp_b, None)
        else:
            _end_after_fees(a, z, b, tot_b, bm_b, bp_b, EndStoreArgs(sb[0], sb[1], sb[2], st_b))
    return (tot_d, bm_d, bp_d, moves_d, st_d), (tot_b, bm_b, bp_b, moves_b, st_b)
