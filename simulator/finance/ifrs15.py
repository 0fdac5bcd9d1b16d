"""Points liability under IFRS 15 / ASC 606, and the provision for points given without a sale.

**Points earned with a sale** give a material right: a separate performance obligation. The
standalone selling price (SSP) of a point is the value of what it buys times the probability
it is redeemed (ifrscommunity.com, "customer loyalty programmes"):

    ssp_t = v_t (1 - b_t)

with ``v_t`` the value to the member of a point redeemed -- what redemptions realise, the face
value of the rewards taken (vouchers used) per point redeemed for them, not the catalogue's
average -- and ``b_t`` the expected breakage of the program running in month t. Part of each
sale's price is deferred, allocated by relative standalone selling price:

    deferred_t = S_t (P_t ssp_t) / (S_t + P_t ssp_t)

(S: net sales that earned points, P: points they earned). Revenue is recognised as points are
redeemed, with expected breakage recognised in proportion to the pattern of redemptions
(ASC 606-10-55-48) and a cumulative catch-up when the estimate changes (KPMG IFRS 15 handbook:
9,000 allocated; 4,500 redeemed of 9,700 expected gives 4,175). The estimate of total
redemptions is updated every month from what is still outstanding:

    recognised to date = A * R / (R + O (1 - b))

A: transaction price allocated to the pool of sale points, R: points of the pool redeemed, O:
points of the pool outstanding. When the points are redeemed and expire in the expected
proportion, the liability ``A - recognised`` is the outstanding points times their allocated
price; once no point is outstanding it is zero, whatever the breakage turned out to be. Of a
month's recognised revenue, ``redeemed x allocated price per point`` is for the points redeemed
(capped by the month's total) and the rest is breakage (negative in a month whose catch-up
reverses some).

**Points given without a sale** (welcome, first purchase, birthday, referral and campaign
bonuses) are not part of a revenue contract: the expected cost of their redemption is a
marketing expense when granted, with a provision (IAS 37):

    charged_t = B_t c_t (1 - b_t),    provision_t = O^B_t c_t (1 - b_t)

(c: cost to the company per point redeemed, net of VAT; O^B: bonus points outstanding); the
cost of bonus points redeemed is taken from the provision, and the provision is re-measured
to its best estimate every month (the difference is expense or release).

**Pools.** Points are fungible: the month's redemptions, expiries and lapsed vouchers are
shared between the sale pool and the bonus pool in proportion to the points each holds. Points
held at the start (a program already running) are taken as sale points, allocated at that
program's SSP.

**Cash-back vouchers.** Points converted into a voucher leave the points ledger; a voucher
that will be used is a redemption, one that will not (``1 - voucher_use_rate``) is breakage,
not a redemption: its points are counted with the expired points.

**A migration** (the design replacing the program running today) moves the same balances:
the liability and the provision of the old points pass to the points they convert into, at
the same amount (the old points out and the new points in appear in both roll-forwards, in
points and in money), and the new pool starts from there.

Roll-forward per month, in money: opening + deferred + converted in - converted out -
recognised = closing (contract liability), and opening + charged - used + re-measured =
closing (provision).
"""

from __future__ import annotations

import numpy as np

#: Columns of the contract-liability and provision roll-forwards (money, per month).
COLUMNS = ("liability_opening", "liability_deferred", "liability_converted_in", "liability_converted_out",
           "liability_recognised", "liability_recognised_redemption", "liability_recognised_breakage",
           "liability_closing", "provision_opening", "provision_charged", "provision_used", "provision_remeasured",
           "provision_closing")


def recognised_to_date(allocated: float, redeemed: float, expected: float) -> float:
    """Cumulative revenue recognised (the KPMG cumulative catch-up formula): ``allocated x
    redeemed / expected`` redemptions, all of it once redemptions reach the expectation."""
    if expected <= 0 or redeemed >= expected:
        return allocated
    return allocated * (redeemed / expected)


def allocate(sales: float, points: float, ssp: float) -> float:
    """Revenue deferred for ``points`` earned with ``sales`` (relative standalone selling price)."""
    value = points * ssp
    if sales + value <= 0:
        return 0.0
    return sales * value / (sales + value)


def _left(held: float, gone: float) -> float:
    """Points left in a pool, none when what is left is rounding dust of what was held (a pool
    emptied by shares computed in floating point must be empty, or its liability would stay)."""
    left = held - gone
    return left if left > 1e-10 * held else 0.0


def roll_forward(*, sales_with_points: np.ndarray, purchase_points: np.ndarray, bonus_points: np.ndarray,
                 redeemed: np.ndarray, lapsed: np.ndarray, expired: np.ndarray, converted_out: np.ndarray,
                 converted_in: np.ndarray, value_per_point: np.ndarray, cost_per_point: np.ndarray,
                 expected_breakage: np.ndarray, opening_points: float = 0.0,
                 opening_ssp: float | None = None) -> dict[str, np.ndarray]:
    """Monthly roll-forwards (module docstring). Arrays are per month; points in whole points:
    ``redeemed`` for rewards taken (vouchers used), ``lapsed`` in vouchers never used,
    ``expired``; ``converted_out``/``converted_in`` the old and new points of a migration
    (opening of the month); value, cost per point and expected breakage of the program running
    that month. The points held at the start are valued at ``opening_ssp`` (the SSP of the
    program that issued them; default the first month's)."""
    T = len(redeemed)
    out = {k: np.zeros(T) for k in COLUMNS}
    if opening_ssp is not None:
        ssp0 = float(opening_ssp)
    else:
        ssp0 = float(value_per_point[0]) * (1.0 - float(expected_breakage[0])) if T else 0.0
    sale, bonus = float(opening_points), 0.0          # points in each pool
    allocated, entered = sale * ssp0, sale           # the sale pool: price allocated, points that entered
    done, recognised = 0.0, 0.0                      # points of the sale pool redeemed, revenue recognised
    provision = 0.0
    for t in range(T):
        v, c, b = float(value_per_point[t]), float(cost_per_point[t]), float(expected_breakage[t])
        ssp = v * (1.0 - b)
        out["liability_opening"][t] = allocated - recognised
        out["provision_opening"][t] = provision
        if converted_out[t] > 0:  # a migration: the same amounts follow the new points
            moved = allocated - recognised
            share = sale / (sale + bonus) if sale + bonus > 0 else 1.0
            out["liability_converted_out"][t] = moved
            out["liability_converted_in"][t] = moved
            sale, bonus = float(converted_in[t]) * share, float(converted_in[t]) * (1.0 - share)
            allocated, entered, done, recognised = moved, sale, 0.0, 0.0
        deferred = allocate(float(sales_with_points[t]), float(purchase_points[t]), ssp)
        allocated += deferred
        sale += float(purchase_points[t])
        entered += float(purchase_points[t])
        charged = float(bonus_points[t]) * c * (1.0 - b)
        bonus += float(bonus_points[t])
        held = sale + bonus
        share = sale / held if held > 0 else 1.0
        r_sale = float(redeemed[t]) * share
        gone_sale = float(lapsed[t] + expired[t]) * share
        r_bonus = float(redeemed[t]) - r_sale
        sale = _left(sale, r_sale + gone_sale)
        bonus = _left(bonus, r_bonus + float(lapsed[t] + expired[t]) * (1.0 - share))
        done += r_sale
        now = recognised_to_date(allocated, done, done + sale * (1.0 - b))
        rec = now - recognised
        recognised = now
        price = allocated / entered if entered > 0 else 0.0
        on_redemption = min(rec, r_sale * price) if rec > 0 else 0.0
        used = min(r_bonus * c, provision + charged)
        closing_provision = bonus * c * (1.0 - b)
        out["liability_deferred"][t] = deferred
        out["liability_recognised"][t] = rec
        out["liability_recognised_redemption"][t] = on_redemption
        out["liability_recognised_breakage"][t] = rec - on_redemption
        out["liability_closing"][t] = allocated - recognised
        out["provision_charged"][t] = charged
        out["provision_used"][t] = used
        out["provision_remeasured"][t] = closing_provision - (provision + charged - used)
        out["provision_closing"][t] = closing_provision
        provision = closing_provision
    return out
