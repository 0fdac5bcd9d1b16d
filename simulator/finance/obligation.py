"""What a projection that stops at a horizon still owes.

Members hold points at the horizon, and paid members have paid for months after it. A
comparison that ignores them favours the designs that accumulate points (the liability
grows, the cost of honouring it falls after the horizon) and the ones that bill ahead. The
obligation left at the horizon is charged, as its own line, in the horizon's month:

    obligation_H = O_H (1 - b_H) c_H  +  F_H

* ``O_H`` points outstanding at the end of the last month, ``b_H`` the expected breakage of the
  program then running (the share that will never be redeemed), ``c_H`` its cost per point
  redeemed, net of VAT: the expected cost of the redemptions still to come;
* ``F_H`` membership fees received for months after the horizon (net of VAT): the unearned
  part, a contract liability under IFRS 15, that the company still has to serve.

It is discounted with the last month's flows and enters NPV, ROI, payback and P(NPV < 0);
incremental, like every other line (design minus baseline). An expiry rule that falls after the
horizon therefore no longer flatters a design: its points are still owed.
"""

from __future__ import annotations


def horizon_obligation(points_outstanding: float, expected_breakage: float, cost_per_point: float) -> float:
    """The expected cost of redeeming the points outstanding at the horizon."""
    return points_outstanding * (1.0 - expected_breakage) * cost_per_point
