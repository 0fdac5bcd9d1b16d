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

from simulator.engine.compiled import CompiledProgram


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

