r"""Arrivals of new customers.

Arrivals per month are the mean number of customers whose first purchase falls in each of the
last 12 months of the window, after a burn-in at the start of the log (its first months are full
of existing customers seen for the first time).
"""

from __future__ import annotations

import numpy as np

from simulator.calibration.segmentation import MonthlyPanel


def _acquisition(panel: MonthlyPanel, burn_in: int, window: int = 12) -> tuple[float, str]:
    T = panel.n_months
    lo = max(burn_in, T - window)
    if lo >= T:
        return 0.0, (f"no arrivals estimated: the log has {T} months, not more than the {burn_in}-month burn-in at its start "
                     "(customers first seen in a log's first months are mostly existing customers)")
    new = np.bincount(panel.first_month, minlength=T)[lo:T]
    return float(new.mean()), (f"arrivals: mean new customers per month over {panel.months[lo]}..{panel.months[-1]} "
                               f"({T - lo} months after a {burn_in}-month burn-in at the start of the log)")
