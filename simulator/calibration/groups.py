r"""What a calibrated market's segments are, in words every market shares, and segments that
hold whole customers.

**Portable groups** (:func:`state_groups`, :func:`rule_groups`). Every segment of a calibrated
market gets a ``lifecycle`` stage and a ``value`` band (the market fields of
:class:`~simulator.specs.market.Segment`), so that a playbook can target ``lifecycle: [at_risk]``
or ``value: [high]`` on any market, hand-written or calibrated:

* *lifecycle*, from the months since the last purchase ``k`` of the segment: ``new`` for the
  customers in their first month, ``active`` for ``k <=`` :data:`ACTIVE_MONTHS`, ``at_risk``
  from ``k = ACTIVE_MONTHS + 1`` until the segmentation's lapsed recency, ``lapsed`` from it
  on (the segments flagged ``lapsed``). For a rule set, the recency is the median of the
  segment's customers at the calibration end (a lapsed segment is ``lapsed``, an empty one
  ``active``).
* *value*, thirds of the customers by expected spend
  (:func:`~simulator.specs.market.value_thirds`). For the default states the groups ranked
  are the frequency tiers (types of the lapse-and-return model), by their spend while active
  (active purchase rate x the tier's basket), weighted by their customers at the calibration
  end, so that a tier keeps its band at every recency (value and lifecycle are two axes: the
  value x engagement grid). ``new`` takes the band its expected spend (the tiers' mix among new
  customers) falls in. For a rule set, the segments are ranked by purchase rate x basket, as
  for a hand-written market.

**Sparse segments merged** (:func:`merge_sparse`). A segment of the default states must hold at
least :data:`MIN_SEGMENT_CUSTOMERS` whole customer: at the calibration end or in one of the
:data:`PROJECTION_MONTHS` months after it, as the chain moves the customers of the calibration
end and the arrivals (:func:`projected_customers`; counting the smaller of the log's customers and
the market's base: the log's customers are the evidence behind a segment, the base is what the
market file holds). The months after matter: a state nobody has reached yet at the end of a
young log (silent for longer than the log is old) fills as the customers age, and merging it
would age them wrongly. Two steps:

1. *tiers*: while a frequency tier (or tiers already merged) holds fewer customers in all, it
   is merged with an adjacent tier -- the next frequency tier with the same lapse tier, or the
   next lapse tier with the same frequency tier, whichever has the closest active purchase rate
   -- recency by recency (the states of both at recency k become one group), so that the
   groups still age month by month;
2. *recency*: while a group holds fewer, the smallest is merged with the group of an adjacent
   recency of the same tier(s) whose purchase rate is closest.

``new`` is never merged: arrivals start there. A rule set's segments are the user's names and
are kept (the calibration notes name those holding less than one customer).

A merged group is one segment of the market (a lumped Markov chain; Kemeny & Snell 1960, 6.3):
with lumping weights :math:`w_i`, its transition to a group :math:`B` is
:math:`\sum_{i \in A} w_i P(i, B) / \sum_{i \in A} w_i` (rows still sum to 1), its purchase rate
the :math:`w`-weighted mean rate, its ``rate_shape`` the gamma shape with the mean and variance of
the mixture of its states' rates, its basket the mean weighted by expected transactions
(:math:`w_i \times` rate), its share the sum of its states' shares (customers are kept). The
weights are the chain's stationary distribution within each frequency tier (the tiers do not
mix), scaled to the tier's customers at the calibration end: with them the lumped chain keeps
the stationary distribution exactly (the merged group holds the sum of its states' stationary
shares) and, within a tier, the mean time customers spend in the group. A group whose states
hold no stationary weight (a tier without return, ``rho = 0``, whose states before the last
are transient) falls back on the calibration-end shares, then on equal weights. Its lifecycle
stage and value band are its largest state's (by weight); it is ``lapsed`` when most of its
weight is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.specs.market import value_thirds

__all__ = ["ACTIVE_MONTHS", "MIN_SEGMENT_CUSTOMERS", "Merge", "merge_sparse", "rule_groups", "state_groups"]

#: Customers silent at most this many months are ``active``; from one more month on, until the
#: lapsed recency, ``at_risk``.
ACTIVE_MONTHS = 2
#: A calibrated segment holds at least this many customers, at the calibration end or in one of
#: the :data:`PROJECTION_MONTHS` after it.
MIN_SEGMENT_CUSTOMERS = 1.0
#: Months after the calibration end over which a segment's customers are projected (the
#: playbooks' default horizon).
PROJECTION_MONTHS = 36


def projected_customers(held: np.ndarray, P: np.ndarray, arrivals: float, months: int) -> np.ndarray:
    """Expected customers of each segment at the calibration end (``held``) and in each of the
    ``months`` after it as the chain moves them, with ``arrivals`` a month into segment 0
    (``new``): ``[months + 1, segments]``."""
    X = np.zeros((months + 1, len(held)))
    X[0] = held
    a = np.zeros(len(held))
    a[0] = arrivals
    for t in range(months):
        X[t + 1] = X[t] @ P + a
    return X


def _stage(recency: float, lapsed: bool) -> str:
    if lapsed:
        return "lapsed"
    return "active" if recency <= ACTIVE_MONTHS else "at_risk"


def state_groups(type_rate: np.ndarray, type_basket: np.ndarray, type_weight: np.ndarray, shares: np.ndarray,
                 recency_months: int, lapsed: np.ndarray) -> tuple[list[str], list[str]]:
    """Lifecycle stage and value band of each of the default states' segments (``new`` first,
    then type g at recency k at ``1 + g (R + 1) + k``)."""
    G, R = len(type_rate), recency_months
    spend = np.asarray(type_rate) * np.asarray(type_basket)
    customers = np.asarray(shares)[1:].reshape(G, R + 1).sum(axis=1)
    new_spend = float(np.sum(np.asarray(type_weight) * spend) / max(float(np.sum(type_weight)), 1e-12))
    # new: a group of no customers, placed among the tiers by its expected spend
    bands = value_thirds(list(spend) + [new_spend], list(customers) + [0.0])
    life, value = ["new"], [bands[-1]]
    for g in range(G):
        for k in range(R + 1):
            life.append(_stage(k, bool(lapsed[1 + g * (R + 1) + k])))
            value.append(bands[g])
    return life, value


def rule_groups(names: tuple[str, ...], new_name: str, rates: np.ndarray, baskets: np.ndarray, shares: np.ndarray,
                lapsed: np.ndarray, segment_of_customer: np.ndarray, recency_of_customer: np.ndarray) -> tuple[list[str], list[str]]:
    """Lifecycle stage and value band of each segment of a rule set (``new_name`` first)."""
    life = []
    for s, name in enumerate(names):
        if name == new_name and s == 0:
            life.append("new")
            continue
        rec = recency_of_customer[segment_of_customer == s]
        life.append(_stage(float(np.median(rec)) if len(rec) else 0.0, bool(lapsed[s])))
    return life, list(value_thirds(list(np.asarray(rates) * np.asarray(baskets)), list(shares)))


@dataclass(frozen=True)
class Merge:
    """Segments after :func:`merge_sparse`: ``segment_of[s]`` is the merged segment of the
    unmerged segment s; the arrays are per merged segment."""

    segment_of: np.ndarray      # [S] int
    names: tuple[str, ...]
    descriptions: list[str]
    shares: np.ndarray
    rates: np.ndarray
    shapes: np.ndarray
    baskets: np.ndarray
    lapsed: np.ndarray
    transitions: np.ndarray
    lifecycle: list[str]
    value: list[str]
    merged: list[tuple[str, ...]]  # per merged segment: the unmerged names it holds (one: not merged)
    most_customers: np.ndarray | None = None  # per merged segment: most customers, at the end or projected

    @property
    def indicator(self) -> np.ndarray:
        """[S, S'] 0/1: unmerged segment -> merged segment."""
        M = np.zeros((len(self.segment_of), len(self.names)))
        M[np.arange(len(self.segment_of)), self.segment_of] = 1.0
        return M


def _stationary(P: np.ndarray) -> np.ndarray:
    """A stationary distribution of a row-stochastic block (least squares on pi (P - I) = 0, sum 1)."""
    n = len(P)
    A = np.vstack([(P - np.eye(n)).T, np.ones((1, n))])
    b = np.zeros(n + 1)
    b[-1] = 1.0
    pi = np.linalg.lstsq(A, b, rcond=None)[0]
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum() if pi.sum() > 0 else np.full(n, 1.0 / n)


def _label(type_name: str, ks: list[int], R: int) -> str:
    lo, hi = min(ks), max(ks)
    end = f"{hi:02d}" + ("plus" if hi == R else "")
    return f"{type_name}_r{end}" if lo == hi else f"{type_name}_r{lo:02d}to{end}"


def merge_sparse(*, names: tuple[str, ...], descriptions: list[str], shares: np.ndarray, rates: np.ndarray,
                 shapes: np.ndarray, baskets: np.ndarray, lapsed: np.ndarray, transitions: np.ndarray,
                 lifecycle: list[str], value: list[str], type_names: tuple[str, ...], lapse_tiers: int,
                 recency_months: int, customers: float, type_rate: np.ndarray, arrivals: float = 0.0,
                 months: int = PROJECTION_MONTHS, min_customers: float = MIN_SEGMENT_CUSTOMERS) -> Merge:
    """Merge the default states' segments holding fewer than ``min_customers`` (share x
    ``customers``) into neighbours (see the module docstring). Segment 0 is ``new`` and is
    kept; segment ``1 + g (R + 1) + k`` is type g at recency k."""
    S = len(names)
    G, R, L = len(type_names), recency_months, max(lapse_tiers, 1)
    shares = np.asarray(shares, dtype=np.float64)
    P = np.asarray(transitions, dtype=np.float64)
    cell = {1 + g * (R + 1) + k: (g, k) for g in range(G) for k in range(R + 1)}
    X = projected_customers(shares * customers, P, arrivals, months)
    # lumping weights: stationary within each tier, scaled to the tier's customers at the end
    w = np.zeros(S)
    for g in range(G):
        idx = np.arange(1 + g * (R + 1), 1 + (g + 1) * (R + 1))
        block = P[np.ix_(idx, idx)]
        block = block / np.maximum(block.sum(axis=1, keepdims=True), 1e-300)
        w[idx] = _stationary(block) * max(float(shares[idx].sum()), 1e-12)

    # 1. tiers: while a tier (or tiers merged) holds fewer than min_customers, merge it with the
    #    adjacent tier of the closest active purchase rate, recency by recency
    tier_of = {g: g for g in range(G)}             # tier -> tier group id (its smallest tier)
    tiers: dict[int, list[int]] = {g: [g] for g in range(G)}
    t_rate = np.asarray(type_rate, dtype=np.float64)

    def tier_customers(tid: int) -> float:
        cells = [c for g in tiers[tid] for c in range(1 + g * (R + 1), 1 + (g + 1) * (R + 1))]
        return float(X[:, cells].sum(axis=1).max())

    def tier_rate(tid: int) -> float:
        c = np.array([shares[1 + g * (R + 1): 1 + (g + 1) * (R + 1)].sum() for g in tiers[tid]])
        c = c / c.sum() if c.sum() > 0 else np.full(len(c), 1.0 / len(c))
        return float(c @ t_rate[tiers[tid]])

    while len(tiers) > 1:
        small = [tid for tid in tiers if tier_customers(tid) < min_customers]
        if not small:
            break
        tid = min(small, key=lambda x: (tier_customers(x), x))
        near = set()
        for g in tiers[tid]:
            tier, lap = divmod(g, L)
            for gg in [(tier + d) * L + lap for d in (-1, 1) if 0 <= tier + d < G // L] + \
                      [tier * L + lap + d for d in (-1, 1) if 0 <= lap + d < L]:
                if tier_of[gg] != tid:
                    near.add(tier_of[gg])
        if not near:
            break
        r = tier_rate(tid)
        into = min(near, key=lambda x: (abs(tier_rate(x) - r), x))
        keep, gone = min(tid, into), max(tid, into)
        tiers[keep] = sorted(tiers[keep] + tiers.pop(gone))
        for g in tiers[keep]:
            tier_of[g] = keep

    # 2. recency: within each tier group, while a group holds fewer than min_customers, merge the
    #    smallest with the adjacent recency group of the closest purchase rate
    members: dict[int, list[int]] = {}
    group: dict[int, int] = {}
    for tid, gs in tiers.items():
        for k in range(R + 1):
            cells = sorted(1 + g * (R + 1) + k for g in gs)
            members[cells[0]] = cells
            for c in cells:
                group[c] = cells[0]

    def size(gid: int) -> float:
        return float(X[:, members[gid]].sum(axis=1).max())

    def weights(cells: list[int]) -> np.ndarray:
        for x in (w[cells], shares[cells], np.ones(len(cells))):
            if x.sum() > 0:
                return x / x.sum()
        raise AssertionError  # equal weights always sum to more than 0

    def rate_of(gid: int) -> float:
        cells = members[gid]
        return float(weights(cells) @ np.asarray(rates)[cells])

    def neighbours(gid: int) -> set[int]:
        out = set()
        for c in members[gid]:
            g, k = cell[c]
            for kk in (k - 1, k + 1):
                if 0 <= kk <= R:
                    other = group[1 + g * (R + 1) + kk]
                    if other != gid:
                        out.add(other)
        return out

    while True:
        small = [gid for gid in members if size(gid) < min_customers]
        cands = set()
        while small:
            gid = min(small, key=lambda x: (size(x), x))
            cands = neighbours(gid)
            if cands:
                break
            small.remove(gid)
        if not cands:
            break
        r = rate_of(gid)
        into = min(cands, key=lambda x: (abs(rate_of(x) - r), x))
        keep, gone = min(gid, into), max(gid, into)
        members[keep] = sorted(members[keep] + members.pop(gone))
        for c in members[keep]:
            group[c] = keep

    order = [0] + sorted(members)
    segment_of = np.zeros(S, dtype=np.int64)
    for j, gid in enumerate(order[1:], start=1):
        segment_of[members[gid]] = j
    Sm = len(order)
    cells_of = [[0]] + [members[gid] for gid in order[1:]]
    out_names, out_desc, merged = [], [], []
    rates, shapes, baskets = np.asarray(rates, dtype=np.float64), np.asarray(shapes, dtype=np.float64), np.asarray(baskets, dtype=np.float64)
    m_rate, m_shape, m_basket, m_lapsed = np.zeros(Sm), np.zeros(Sm), np.zeros(Sm), np.zeros(Sm, dtype=bool)
    m_share = np.array([shares[c].sum() for c in cells_of])
    life, val = [], []
    Q = np.zeros((Sm, Sm))
    M = np.zeros((S, Sm))
    M[np.arange(S), segment_of] = 1.0
    used: set[str] = set()
    for j, cells in enumerate(cells_of):
        wt = weights(cells) if j > 0 else np.ones(1)
        r = rates[cells]
        m_rate[j] = float(wt @ r)
        var = float(wt @ (r ** 2 / shapes[cells] + (r - m_rate[j]) ** 2))
        m_shape[j] = shapes[cells[0]] if len(cells) == 1 else (
            float(min(max(m_rate[j] ** 2 / var, 0.05), 1000.0)) if var > 0 else 1000.0)
        tx = wt * r
        m_basket[j] = float(tx @ baskets[cells] / tx.sum()) if tx.sum() > 0 else float(wt @ baskets[cells])
        lap = float(wt @ np.asarray(lapsed, dtype=np.float64)[cells])
        top = cells[int(np.argmax(wt))]
        m_lapsed[j] = lap > 0.5 or (lap == 0.5 and bool(lapsed[top]))
        life.append(lifecycle[top])
        val.append(value[top])
        Q[j] = wt @ (P[cells] @ M)
        if len(cells) == 1:
            name, desc = names[cells[0]], descriptions[cells[0]]
        else:
            by_type: dict[int, list[int]] = {}
            for c in cells:
                by_type.setdefault(cell[c][0], []).append(cell[c][1])
            ks = sorted({cell[c][1] for c in cells})
            name = _label("_and_".join(type_names[g] for g in sorted(by_type)), ks, R)
            desc = (f"{len(cells)} states merged so that the segment holds at least {min_customers:g} whole customer at "
                    f"the calibration end: {', '.join(_label(type_names[g], by_type[g], R) for g in sorted(by_type))}")
        name = name[:64]
        base, n = name, 2
        while name in used:
            suffix = f"_{n}"
            name = base[:64 - len(suffix)] + suffix
            n += 1
        used.add(name)
        out_names.append(name)
        out_desc.append(desc)
        merged.append(tuple(names[c] for c in cells))
    Q = Q / Q.sum(axis=1, keepdims=True)
    most = np.array([X[:, cells].sum(axis=1).max() for cells in cells_of])
    return Merge(segment_of=segment_of, names=tuple(out_names), descriptions=out_desc, shares=m_share, rates=m_rate,
                 shapes=m_shape, baskets=m_basket, lapsed=m_lapsed, transitions=Q, lifecycle=life, value=val,
                 merged=merged, most_customers=most)
