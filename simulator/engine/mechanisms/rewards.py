"""Rewards: progress toward the next reward, redemption, cash-back vouchers, and the
behaviour around them.

Goal gradient (Kivetz, Urminsky & Zheng 2006: inter-purchase time shrinks ~20% from the
first stamp to the last, and activity drops after the reward: "post-reward resetting"). A
member's purchase rate is multiplied by

    1 + g_s * (progress_i - 1/2),   progress_i = spendable_i / next_i

where ``next_i`` is the price of the cheapest reward of the member's tier that the balance
does not yet afford (a member who saves past one reward aims at the next; progress is 1 above
the dearest reward), or the cash-back threshold. With g = 0.25 the rate next to the goal is (1.125 / 0.875) = 1.29
times the rate just after a reward, Kivetz et al.'s ~20% shorter inter-purchase time. The
effect is centred: it moves purchases in time (before a reward, and a dip after one) and adds
sales on balance only when members hold more than half a reward's worth, as endowed progress
does (Nunes & Dreze 2006: welcome stamps raised completion from 19% to 34%).

Rewarded behaviour (Taylor & Neslin 2005; small, Nastasoiu et al. 2021). After a redemption
the rate is multiplied by ``1 + r_s * 2^(-months since redemption / half_life_s)``.

Redemption. Cash-back: when the spendable balance reaches the threshold, whole blocks are
converted into vouchers at once; a share ``voucher_use_rate`` of vouchers is used (stochastic
rounding per member), each costing ``voucher_value * voucher_cost_ratio`` net of VAT
(``/ (1 + vat)`` when prices include it: a voucher is a price reduction, and revenue is net);
the points of vouchers never used are breakage, not redemptions, for IFRS 15. A catalogue
reward of kind ``voucher`` costs its ``cost`` net of VAT likewise; products, experiences and
partner rewards cost what they cost. Catalogue: a member whose spendable balance affords a
reward of their tier redeems with probability ``redemption_propensity_s`` per month, taking the
most expensive reward they can afford (one per month). Points leave oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from simulator.engine.agent import draw
from simulator.engine.compiled import CompiledProgram
from simulator.engine.mechanisms import endowed_progress


def progress(program: CompiledProgram, spendable: np.ndarray, tier: np.ndarray) -> np.ndarray:
    """Progress toward the next reward (see module docstring), in [0, 1]."""
    out = np.ones(spendable.shape)
    for t in range(program.n_tiers):
        sel = np.flatnonzero(tier == t)
        if not sel.size:
            continue
        ladder = program.ladder[t]
        j = np.searchsorted(ladder, spendable[sel], side="right")
        below = j < len(ladder)
        out[sel[below]] = spendable[sel[below]] / ladder[j[below]]
    return out


def goal_gradient_lift(program: CompiledProgram, spendable: np.ndarray, tier: np.ndarray, g: np.ndarray) -> np.ndarray:
    return 1.0 + g * (progress(program, spendable, tier) - 0.5)


def rewarded_lift(since_reward: np.ndarray, r: np.ndarray, half_life: np.ndarray) -> np.ndarray:
    return 1.0 + r * np.exp2(-since_reward / half_life)


@dataclass
class Redemptions:
    points: np.ndarray        # int64 centipoints per agent of ``idx``
    cashback_points: int
    catalogue_points: int
    reward_cost: float
    reward_face: float
    vouchers_issued: int
    vouchers_used: int
    by_reward: np.ndarray     # [R] counts
    redeemed: np.ndarray      # bool per agent: redeemed something this month


def redeem(program: CompiledProgram, spendable: np.ndarray, tier: np.ndarray, propensity: np.ndarray,
           u_redeem: np.ndarray, u_voucher: np.ndarray) -> Redemptions:
    """Redemptions of the members ``idx`` (arrays are per member of ``idx``)."""
    n = spendable.shape[0]
    pts = np.zeros(n, dtype=np.int64)
    cost = face = 0.0
    issued = used = 0
    cb_pts = 0
    balance = spendable.copy()
    if program.cashback_threshold > 0:
        blocks = balance // program.cashback_threshold
        has = blocks > 0
        if has.any():
            b = blocks[has]
            use = np.floor(b * program.voucher_use_rate + u_voucher[has]).astype(np.int64)
            use = np.minimum(use, b)
            issued, used = int(b.sum()), int(use.sum())
            conv = blocks * program.cashback_threshold
            pts += conv
            balance -= conv
            cb_pts = int(conv.sum())
            cost += used * program.voucher_cost
            face += used * program.voucher_value
    by_reward = np.zeros(len(program.prices), dtype=np.int64)
    cat_pts = 0
    if len(program.prices):
        wants = (u_redeem < propensity) & (balance >= program.goal[tier])
        for t in range(program.n_tiers):
            sel = np.flatnonzero(wants & (tier == t))
            if not sel.size:
                continue
            rids = np.flatnonzero(program.eligible[t])
            if not rids.size:
                continue
            order = rids[np.argsort(program.prices[rids], kind="stable")]
            prices = program.prices[order]
            j = np.searchsorted(prices, balance[sel], side="right") - 1
            ok = j >= 0
            sel, j = sel[ok], j[ok]
            chosen = order[j]
            pts[sel] += program.prices[chosen]
            cat_pts += int(program.prices[chosen].sum())
            cost += float(program.cost[chosen].sum())
            face += float(program.face[chosen].sum())
            by_reward += np.bincount(chosen, minlength=len(program.prices))
    redeemed = pts > 0
    return Redemptions(pts, cb_pts, cat_pts, cost, face, issued, used, by_reward, redeemed)



# ----------------------------------------------------------------------------- compiled
# One member's month, inlined by Numba into the fused step (kernels._step_block); the NumPy
# functions above (progress, goal_gradient_lift, rewarded_lift, redeem) are their whole-array
# reference.

@njit(cache=True, nogil=True, inline="always")
def decayed(decay, s, m, half_life_s):
    """``2 ** (-m / half_life_s)``, from segment s's row of kernels.decay_table when it holds m."""
    return decay[s, m] if m < decay.shape[1] else 2.0 ** (-m / half_life_s)


@njit(cache=True, nogil=True, inline="always")
def goal_gradient_one(spendable, start, length, ladder, g, endowed, since_reward_i):
    """``1 + g (progress - 1/2)`` of a member with ``spendable`` points, the tier's ladder
    ``ladder[start : start + length]`` (progress as an endowed card shows it:
    endowed_progress.perceived, ``endowed`` its bonus stamps in centipoints)."""
    pr = 1.0
    for j in range(start, start + length):
        if ladder[j] > spendable:
            pr = spendable / ladder[j]
            pr = endowed_progress.perceived(pr, spendable, ladder[j], endowed, since_reward_i)
            break
    return 1.0 + g * (pr - 0.5)


@njit(cache=True, nogil=True, inline="always")
def rewarded_one(r, decay, s, m, half_life_s):
    """Rewarded behaviour ``1 + r 2^(-m / half_life)``, m months after the last reward."""
    return 1.0 + r * decayed(decay, s, m, half_life_s)


@njit(cache=True, nogil=True, inline="always")
def cashback_one(balance, threshold, use_rate, voucher_key, i):
    """Cash-back of member i with ``balance`` >= ``threshold`` spendable: whole blocks
    converted at once, the vouchers used by stochastic rounding of ``blocks * use_rate`` with
    the member's uniform; returns (points converted, vouchers issued, vouchers used)."""
    blocks = balance // threshold
    if blocks > 0:
        uv = draw(voucher_key, i)
        use = min(np.int64(np.floor(blocks * use_rate + uv)), blocks)
        return blocks * threshold, blocks, use
    zero = np.int64(0)
    return zero, zero, zero


@njit(cache=True, nogil=True, inline="always")
def catalogue_one(balance, start, length, prices, goal, propensity, redemption_key, i):
    """The catalogue reward member i redeems this month: with ``balance`` >= ``goal`` (the
    cheapest reward of the tier), with probability ``propensity``, the dearest reward of
    ``prices[start : start + length]`` (by price, stable) it affords -- among equal prices
    the last in stable order, as searchsorted(prices, balance, 'right') - 1 picks. Returns
    its index in ``prices``, -1 none."""
    if length > 0 and balance >= goal:
        if draw(redemption_key, i) < propensity:
            j = start + length - 1
            while j >= start and prices[j] > balance:
                j -= 1
            if j >= start:
                return j
    return -1
