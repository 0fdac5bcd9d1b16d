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

from simulator.engine import kernels
from simulator.engine.compiled import EXPIRY_AFTER, EXPIRY_FIXED, EXPIRY_INACTIVITY, CompiledProgram
from simulator.engine.state import RunState


def expire(run: RunState, program: CompiledProgram, t: int, calendar_month: int) -> int:
    """Consume the points expiring now (oldest first, one compiled pass: kernels.expire_run);
    return their total in centipoints."""
    trace = run.trace["expired"] if run.trace is not None else np.zeros(0, dtype=np.int64)
    L = run.snap.length
    if program.expiry == EXPIRY_AFTER:
        months_back = program.expiry_months
    elif program.expiry == EXPIRY_FIXED and calendar_month == program.expiry_month:
        months_back = program.expiry_min_age
    elif program.expiry == EXPIRY_INACTIVITY:
        return int(kernels.expire_run(run.earned, run.consumed, run.snap.arrays[:2], -1, run.recency, program.expiry_months, trace))
    else:
        return 0
    if months_back >= L:
        raise ValueError(f"ring of {L} months cannot look {months_back} months back")
    col = (t - months_back) % L if months_back else -1
    return int(kernels.expire_run(run.earned, run.consumed, run.snap.arrays[:2], col, run.recency, -1, trace))
