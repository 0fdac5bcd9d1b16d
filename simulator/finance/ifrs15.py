"""Points liability under IFRS 15 / ASC 606.

Points that give a material right are a separate performance obligation. The standalone
selling price (SSP) of a point is the value of what it buys times the probability it is
redeemed (ifrscommunity.com, "customer loyalty programmes"):

    ssp = value_per_point * (1 - expected_breakage)

Part of each sale's price is allocated to the points it earns, by relative standalone selling
price:

    deferred = sale * (points * ssp) / (sale + points * ssp)

Points given without a sale (welcome, birthday, campaign bonuses) are recognised as a cost
provision at ``points * ssp`` and join the same pool.

Recognition follows redemptions, with expected breakage recognised in proportion to the
pattern of redemptions (ASC 606-10-55-48) and a cumulative catch-up when the estimate changes
(KPMG IFRS 15 handbook: 9,000 allocated; 4,500 redeemed of 9,700 expected gives 4,175):

    recognised_to_date = allocated_to_date * min(1, redeemed_to_date / expected_redemptions)
    expected_redemptions = issued_to_date * (1 - expected_breakage)

Roll-forward per period, in money: opening + deferred - recognised = closing, where the
recognised amount is split into the part for points redeemed (``redeemed * ssp``, capped by
the total) and breakage recognised in proportion.
"""

from __future__ import annotations

import numpy as np


def recognised_to_date(allocated: float, redeemed: float, expected: float) -> float:
    """Cumulative revenue recognised (the KPMG cumulative catch-up formula)."""
    if expected <= 0:
        return 0.0
    if redeemed >= expected:  # all recognised (and no overflow when expected is tiny)
        return allocated
    return allocated * (redeemed / expected)


def allocate(sales: float, points: float, ssp: float) -> float:
    """Revenue deferred for ``points`` earned with ``sales`` (relative standalone selling price)."""
    value = points * ssp
    if sales + value <= 0:
        return 0.0
    return sales * value / (sales + value)


def roll_forward(sales_with_points: np.ndarray, purchase_points: np.ndarray, bonus_points: np.ndarray,
                 redeemed: np.ndarray, value_per_point: np.ndarray, expected_breakage: float,
                 opening_points: float = 0.0) -> dict[str, np.ndarray]:
    """Monthly liability roll-forward (money). Arrays are per period, points in whole points.

    ``value_per_point`` may change by period (a migration to another program); the opening
    pool (points held at the start) is valued at the first period's SSP.
    """
    T = len(redeemed)
    out = {k: np.zeros(T) for k in ("liability_opening", "liability_deferred", "liability_recognised",
                                    "liability_recognised_redemption", "liability_recognised_breakage",
                                    "liability_closing")}
    ssp0 = value_per_point[0] * (1 - expected_breakage) if T else 0.0
    allocated = opening_points * ssp0
    issued = opening_points
    redeemed_cum = 0.0
    recognised = 0.0
    for t in range(T):
        ssp = value_per_point[t] * (1 - expected_breakage)
        deferred = allocate(sales_with_points[t], purchase_points[t], ssp) + bonus_points[t] * ssp
        out["liability_opening"][t] = allocated - recognised
        allocated += deferred
        issued += purchase_points[t] + bonus_points[t]
        redeemed_cum += redeemed[t]
        now = recognised_to_date(allocated, redeemed_cum, issued * (1 - expected_breakage))
        rec = now - recognised
        recognised = now
        on_redemption = min(rec, redeemed[t] * ssp) if rec > 0 else rec
        out["liability_deferred"][t] = deferred
        out["liability_recognised"][t] = rec
        out["liability_recognised_redemption"][t] = on_redemption
        out["liability_recognised_breakage"][t] = rec - on_redemption
        out["liability_closing"][t] = allocated - recognised
    return out
