"""Points expiry, oldest first.

* ``after_months`` E: at the end of month t, points earned in month t-E or before that are
  still outstanding expire: ``expired_i = max(0, earned_i(end of t-E) - consumed_i)``.
* ``inactivity`` E: the whole outstanding balance expires after E months without a purchase.
* ``fixed_date`` (month M, min age A): at the end of each calendar month M, points earned at
  least A months earlier expire: ``max(0, earned_i(end of t-A) - consumed_i)``.
* ``never``: nothing expires; balances stay in the liability.

Customers who left the program or stopped buying keep their points in the ledger until these
rules expire them.
"""

from __future__ import annotations

import numpy as np

from simulator.engine.compiled import EXPIRY_AFTER, EXPIRY_FIXED, EXPIRY_INACTIVITY, CompiledProgram
from simulator.engine.state import RunState


def expire(run: RunState, program: CompiledProgram, t: int, calendar_month: int) -> np.ndarray:
    """Points expiring now (int64 centipoints per agent); the caller consumes them."""
    if program.expiry == EXPIRY_AFTER:
        return np.maximum(run.earned_until(t, program.expiry_months) - run.consumed, 0)
    if program.expiry == EXPIRY_FIXED:
        if calendar_month != program.expiry_month:
            return np.zeros_like(run.earned)
        return np.maximum(run.earned_until(t, program.expiry_min_age) - run.consumed, 0)
    if program.expiry == EXPIRY_INACTIVITY:
        return np.where(run.recency >= program.expiry_months, run.earned - run.consumed, 0)
    return np.zeros_like(run.earned)
