"""The store network in a run: figures by home store, and pilots in some stores only.

Every customer has a home store (:mod:`simulator.engine.population`), a small integer drawn
once, shared by the design and the baseline runs. A run's month by store k is the market's
month restricted to the customers whose home store is k:

* customers, active (at least one purchase), purchases, revenue (net spend), members, new
  members (joined this month, at the till, by invitation or referred), members' revenue, and
  the members reachable on each channel (opted in to it). Spend and new members are added
  into the home store's row as the step meets them (:func:`simulator.engine.kernels.step_both`);
  the rest is counted at the month's close (:func:`simulator.engine.kernels.month_end`): one
  count per customer by store and code -- whether a member and on which channels, whether
  they bought this month -- and their purchases, from which customers, active customers,
  members and members reachable on each channel are sums over codes;
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

#: The step's figures by store, in this order (kernels.step_both).
STEP_FIGURES = ("revenue", "member_revenue", "new_members")


def columns(channels: tuple[str, ...]) -> tuple[str, ...]:
    """Figure columns of stores.parquet, after scenario, store, month and period."""
    return (("customers", "active", "purchases", "revenue", "members", "new_members")
            + tuple(f"reachable_{c}" for c in channels) + ("member_revenue", "member_revenue_share"))


def month_row(close: np.ndarray, step: np.ndarray, referred: np.ndarray | None) -> np.ndarray:
    """One month of a run by store, unscaled: [K, columns] in :func:`columns` order (the
    member revenue share last, filled when the table is scaled). ``close`` [K, 2 (1 + 2**C) +
    1] counts the customers at the close by code 2 g + a, g 0 for a non-member and 1 + the
    bitmask of the channels a member is opted in to, a 1 for a customer who bought in the
    month, and holds their purchases in the last column (kernels.month_end); ``step`` [K, 3]
    holds :data:`STEP_FIGURES`; ``referred`` the referred customers enrolled in the month."""
    K = close.shape[0]
    by_code = close[:, :-1]
    codes = np.arange(by_code.shape[1])
    group = codes // 2  # 0 non-member, 1 + the member's channels
    C = int(np.log2(by_code.shape[1] // 2 - 1))
    out = np.zeros((K, 8 + C))
    out[:, 0] = by_code.sum(axis=1)                          # customers
    out[:, 1] = by_code[:, codes % 2 == 1].sum(axis=1)       # active
    out[:, 2] = close[:, -1]                                 # purchases
    out[:, 3] = step[:, 0]                                   # revenue
    out[:, 4] = by_code[:, group >= 1].sum(axis=1)           # members
    out[:, 5] = step[:, 2] + (referred if referred is not None else 0)  # new members
    for c in range(C):                                       # members opted in to channel c
        out[:, 6 + c] = by_code[:, (group >= 1) & (((group - 1) >> c) & 1 == 1)].sum(axis=1)
    out[:, 6 + C] = step[:, 1]                               # members' revenue
    return out


def table(rows: list[np.ndarray], stores: tuple[str, ...], channels: tuple[str, ...], periods: list[str],
          scale: float) -> pd.DataFrame:
    """The months of one run by store (store-major, then month), counts and money scaled
    (reach is held for the first 8 channels: population.py's bitmask)."""
    cols = columns(channels[:8])
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
