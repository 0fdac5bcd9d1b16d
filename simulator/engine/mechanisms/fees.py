"""Paid membership: billing and renewal.

A member of a paid program pays its fee at the end of the trial and then every fee period
(12 months for a yearly fee, 1 for a monthly fee). At each renewal after the first payment the
member renews with probability ``exp(-fee_sensitivity_s * fee / spend since the last bill)``,
both net of VAT (the enrolment rule of ``enrolment.py``, which weighs the fee against the
expected spend, both with VAT, applied to realised spend), or leaves the program:
membership ends, tier is lost, and the points already earned stay in the ledger until they
expire. Fees are income net of VAT (``fee / (1 + vat)`` when prices include it), earned over the
months they pay for: a yearly fee is twelve months of revenue, the part not yet earned a
contract liability (``fee_unearned``), charged at the horizon (:mod:`simulator.finance.obligation`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from simulator.engine.compiled import CompiledMarket, CompiledProgram
from simulator.engine.state import RunState


def bill(run: RunState, program: CompiledProgram, market: CompiledMarket, t: int,
         uniform: Callable[[np.ndarray], np.ndarray]) -> tuple[int, int]:
    """Bill members due this month; return (fees paid, members who left). ``uniform(agents)``
    draws the renewal stream for those agents."""
    due = np.flatnonzero(run.member & (run.next_bill == t))
    if not due.size:
        return 0, 0
    u = uniform(due)
    renewal = run.enrol_month[due] + program.trial_months < t  # the first bill is the sign-up payment
    s = run.segment[due]
    spend = np.maximum(run.spend_since_bill[due], 1e-9)
    p_renew = np.exp(-market.response["fee_sensitivity"][s] * program.fee * market.net_factor / spend)
    stays = ~renewal | (u < p_renew)
    payers, leavers = due[stays], due[~stays]
    run.next_bill[payers] = t + program.fee_months
    run.spend_since_bill[payers] = 0.0
    run.member[leavers] = False
    run.tier[leavers] = 0
    run.next_bill[leavers] = -1
    return int(payers.size), int(leavers.size)
