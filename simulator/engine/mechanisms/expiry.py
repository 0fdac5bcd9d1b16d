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

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from simulator.engine.agent import earned_until
from simulator.engine.compiled import EXPIRY_AFTER, EXPIRY_FIXED, EXPIRY_INACTIVITY, CompiledProgram

if TYPE_CHECKING:
    from simulator.engine.state import RunState


def rule(program: CompiledProgram, t: int, calendar_month: int, ring: int) -> tuple[int, int] | None:
    """What expires at the end of month ``t``, as the month-end pass applies it per agent
    (kernels.month_end): ``(column, -1)`` -- the points outstanding from batches earned up to
    the month held in snapshot column ``column`` (-1: every point), ``max(0, earned_i(end of
    t - months back) - consumed_i)``, expire -- or ``(-1, E)``: the whole balance of agents E
    months or more without a purchase; None when nothing can expire this month."""
    if program.expiry == EXPIRY_AFTER:
        months_back = program.expiry_months
    elif program.expiry == EXPIRY_FIXED and calendar_month == program.expiry_month:
        months_back = program.expiry_min_age
    elif program.expiry == EXPIRY_INACTIVITY:
        return -1, program.expiry_months
    else:
        return None
    if months_back >= ring:
        raise ValueError(f"ring of {ring} months cannot look {months_back} months back")
    return ((t - months_back) % ring if months_back else -1), -1


@njit(cache=True, nogil=True, inline="always")
def expiring(earned_i, consumed_i, recency_i, snap, row_i, col, inactive):
    """Points of one agent expiring at the end of the month under ``rule``'s ``(col, inactive)``
    (an agent with points outstanding): the whole balance after ``inactive`` months without a
    purchase, else ``max(0, earned_i(end of the month in snapshot column col) - consumed_i)``.
    Inlined by Numba into the month-end pass (kernels.month_end)."""
    if inactive >= 0:
        return earned_i - consumed_i if recency_i >= inactive else 0
    return max(earned_until(earned_i, snap, row_i, col) - consumed_i, 0)


def expiring_numpy(run: RunState, program: CompiledProgram, t: int, calendar_month: int) -> np.ndarray:
    """NumPy reference over the whole population: points expiring at the end of month ``t``
    per agent, not yet consumed (tests/engine/reference_step.py)."""
    if program.expiry == EXPIRY_AFTER:
        return np.maximum(run.earned_until(t, program.expiry_months) - run.consumed, 0)
    if program.expiry == EXPIRY_FIXED:
        if calendar_month != program.expiry_month:
            return np.zeros_like(run.earned)
        return np.maximum(run.earned_until(t, program.expiry_min_age) - run.consumed, 0)
    if program.expiry == EXPIRY_INACTIVITY:
        return np.where(run.recency >= program.expiry_months, run.earned - run.consumed, 0)
    return np.zeros_like(run.earned)
