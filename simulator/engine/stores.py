"""The store network in a run: figures by home store, and pilots in some stores only.

Every customer has a home store (:mod:`simulator.engine.population`), a small integer drawn
once, shared by the design and the baseline runs. A run's month by store k is the market's
month restricted to the customers whose home store is k:

* customers, active (at least one purchase), purchases, revenue (net spend), members, new
  members (joined this month, at the till, by invitation or referred), members' revenue, and
  the members reachable on each channel (opted in to it) -- counts at the month's close, spend
  as the step draws it (:func:`simulator.engine.kernels.step_both` adds each purchase's
  amount into its home store's row);
* member revenue share = members' revenue / revenue (0 without revenue).

The market's figure is the sum over its stores: every customer has exactly one home store, so
for each month and run ``sum_k X_k = X`` -- exactly for the counts, and to the rounding of a
sum taken in another order for money (the stores' rows are summed task by task, the market's
block by block). Figures are scaled like the monthly table (each agent stands for
``customers / agents`` customers).

Pilots (``Playbook.pilot``). The design is launched in the pilot's stores only: in the design
run a customer whose home store is outside them has no program -- no enrolment, no campaign
or drive reaches them, no points -- and so, on common random numbers, lives exactly the
baseline's month (the pilot needs baseline ``none``: a running program kept in the other
stores is not modelled). Customers referred by pilot members join the design wherever their
home store is (the referral brings them). The design's set-up and running costs and the fixed
costs of the playbook's campaigns and drives are multiplied by the pilot's cost share, by
default the pilot stores' share s_P = sum over pilot stores of share_k of the network's
customers (a program's fixed costs roughly follow the stores it runs in; the playbook can set
the share when a pilot bears the whole IT set-up, say); staff challenges keep their own fixed
cost. Hence a pilot in every store is the launch, and a pilot in no store is the baseline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

from simulator.engine import kernels

#: Counts taken at the close, in this order, then the members reachable on each channel.
CLOSE_COUNTS = ("customers", "active", "purchases", "members")
#: Figures of the step (kernels.step_both's by_store columns).
STEP_FIGURES = ("revenue", "member_revenue", "new_members")


def columns(channels: tuple[str, ...]) -> tuple[str, ...]:
    """Figure columns of stores.parquet, after scenario, store, month and period."""
    return (CLOSE_COUNTS[:3] + ("revenue", "members", "new_members") + tuple(f"reachable_{c}" for c in channels)
            + ("member_revenue", "member_revenue_share"))


@njit(cache=True, nogil=True)
def _count_range(lo, hi, store, exists, counts, member, reach, C, K):
    """Customers, active, purchases, members and members reachable on each of C channels of
    agents lo .. hi-1, by home store ([K, 4 + C] int64)."""
    out = np.zeros((K, 4 + C), dtype=np.int64)
    for i in range(lo, hi):
        if not exists[i]:
            continue
        k = store[i]
        out[k, 0] += 1
        n = counts[i]
        if n > 0:
            out[k, 1] += 1
            out[k, 2] += n
        if member[i]:
            out[k, 3] += 1
            r = reach[i]
            for c in range(C):
                if (r >> c) & 1:
                    out[k, 4 + c] += 1
    return out


def count_by_store(store: np.ndarray, exists: np.ndarray, counts: np.ndarray, member: np.ndarray, reach: np.ndarray,
                   n_channels: int, n_stores: int, n_threads: int | None = None) -> np.ndarray:
    """:func:`_count_range` over every agent, on the step's threads (integer sums: the same on
    any number of threads)."""
    parts = kernels._threaded(_count_range, store.shape[0], n_threads, store, exists, counts, member, reach,
                              min(n_channels, 8), n_stores)
    return np.sum(parts, axis=0)


def month_row(close: np.ndarray, step: np.ndarray, referred: np.ndarray | None) -> np.ndarray:
    """One month of a run by store, unscaled: [K, columns] in :func:`columns` order (the
    member revenue share last, filled when the table is scaled)."""
    K, C = close.shape[0], close.shape[1] - 4
    out = np.zeros((K, 8 + C))
    out[:, 0:3] = close[:, 0:3]                  # customers, active, purchases
    out[:, 3] = step[:, 0]                       # revenue
    out[:, 4] = close[:, 3]                      # members
    out[:, 5] = step[:, 2] + (referred if referred is not None else 0)  # new members
    out[:, 6:6 + C] = close[:, 4:]               # reachable members by channel
    out[:, 6 + C] = step[:, 1]                   # members' revenue
    return out


def table(rows: list[np.ndarray], stores: tuple[str, ...], channels: tuple[str, ...], periods: list[str],
          scale: float) -> pd.DataFrame:
    """The months of one run by store (store-major, then month), counts and money scaled."""
    cols = columns(channels)
    data = np.stack(rows, axis=1) if rows else np.zeros((len(stores), 0, len(cols)))  # [K, T, columns]
    K, T = data.shape[0], data.shape[1]
    df = pd.DataFrame(data.reshape(K * T, len(cols)), columns=list(cols))
    scaled = [c for c in cols if c != "member_revenue_share"]
    df[scaled] = df[scaled] * scale
    rev = df["revenue"].to_numpy()
    df["member_revenue_share"] = np.divide(df["member_revenue"].to_numpy(), rev, out=np.zeros(K * T), where=rev > 0)
    df.insert(0, "store", np.repeat(np.array(stores, dtype=object), T))
    df.insert(1, "month", np.tile(np.arange(1, T + 1), K))
    df.insert(2, "period", np.tile(np.array(periods, dtype=object), K))
    return df
