"""Per-run agent state: what the program changes, held as arrays over the population.

The design and the baseline each have a :class:`RunState` over the same
:class:`~simulator.engine.population.Population`.

Points, exactly and oldest first. Points are int64 hundredths of a point. Each agent keeps
``earned`` (cumulative points credited) and ``consumed`` (cumulative points redeemed or
expired), and a ring of snapshots ``snap[m % L]`` of ``earned`` at the end of month ``m``.
Because consumption is first-in-first-out, the points still outstanding from batches earned
up to month ``m`` are ``max(0, snap[m] - consumed)``: expiry of a batch and the spendable
balance (excluding pending points) cost one array operation, not one per batch, and the
ledger identity ``issued = redeemed + expired + change in outstanding`` holds per agent by
construction (checked every period).

History rows. The snapshots and the rolling tier window are kept only for agents that have
some: many customers never earn a point, and their history is all zeros. The rings are
allocated zero-filled with room for every agent, and the operating system maps a page only
when it is first written, so their memory grows with the agents that have a history, not
with the population; rows are given in an order that does not depend on the number of
threads.

* Snapshots: an agent gets a row (``row``, -1 none) after the step of the month it first has
  points; rows are numbered from 0 month by month, in agent order. Its snapshot of month m is
  ``snap[m % L, row[i]]``: a month's snapshots side by side, as expiry and the close read or
  write one of them for every agent.
* Tier window: an agent gets a row the first time its monthly metric is not zero, in the
  region of rows of its block of ``kernels.BLOCK`` agents (``qual_off``, NO_ROW none; rows of
  a block in order from the block's first): ``qual_ring[block * BLOCK + qual_off[i], m % W]``,
  the agent's window side by side near its block's agents, as the step writes and sums it.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field

import numpy as np

from simulator.engine import kernels
from simulator.engine.compiled import CompiledProgram, WINDOW_ROLLING
from simulator.engine.population import Population

NEVER = 10_000  # "months since" for an event that has not happened


def lazy_zeros(shape: tuple[int, ...], dtype) -> np.ndarray:
    """A zero-filled array whose memory pages are mapped only when first written (anonymous
    memory map, without transparent huge pages: NumPy advises huge pages for big arrays, and
    one row written would then map 2 MiB)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes < 1 << 20:
        return np.zeros(shape, dtype=dtype)
    buf = mmap.mmap(-1, nbytes)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        buf.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


@dataclass
class RunState:
    """State of one run (design or baseline)."""

    name: str
    exists: np.ndarray            # bool: the customer is in the base
    segment: np.ndarray           # int16
    reach: np.ndarray             # uint8 channel bitmask
    recency: np.ndarray           # int16 months since last purchase
    member: np.ndarray            # bool
    enrol_month: np.ndarray       # int16 month of joining, -1 never (before the start: -1 .. -13)
    tier: np.ndarray              # int8
    below: np.ndarray             # int16 consecutive reviews below the tier's threshold
    since_reward: np.ndarray      # int16 months since last redemption
    since_demotion: np.ndarray    # int16 months since last demotion
    first_pending: np.ndarray     # bool: member has not yet made the first purchase bonus
    next_bill: np.ndarray         # int16 month of the next fee, -1 none
    spend_since_bill: np.ndarray  # float64 net spend since the last bill (empty when no program charges a fee)
    earned: np.ndarray            # int64 centipoints, cumulative
    consumed: np.ndarray          # int64 centipoints, cumulative
    snap: np.ndarray              # uint32 [L, capacity] earned (mod 2**32) at the end of month m: snap[m % L, row]
    qual_ring: np.ndarray         # float32 [capacity, W] monthly tier metric (rolling windows): qual_ring[qual row, m % W]
    qual_off: np.ndarray          # uint16 tier-window row within the agent's block, NO_ROW none
    qual_used: np.ndarray         # int32 [blocks] tier-window rows given in each block
    row: np.ndarray               # int32 snapshot row of each agent, -1 none
    rows: np.ndarray              # int64 [1] snapshot rows given
    candidates: np.ndarray        # int32 [capacity] agents with their first points in the step, by block (give_rows)
    n_candidates: np.ndarray      # int32 [blocks] candidates of each block
    qual_sum: np.ndarray          # float64 tier metric over the window (a rolling one re-added from qual_ring in the step)
    referrals_used: int = 0
    campaign_done: dict[str, np.ndarray] = field(default_factory=dict)
    program: CompiledProgram | None = None
    transitions_counts: np.ndarray | None = None  # [S, S] member transitions
    trace: dict[str, np.ndarray] | None = None    # per-agent flows of the month (tests)

    # ------------------------------------------------------------------ points flows
    def credit(self, amount: np.ndarray | int, idx: np.ndarray | None = None, kind: str = "issued") -> None:
        """Add points (int64 hundredths) to agents ``idx`` (all if None; ``idx`` unique)."""
        self._move(self.earned, amount, idx, kind)

    def debit(self, amount: np.ndarray, idx: np.ndarray | None = None, kind: str = "redeemed") -> None:
        """Consume points (redeemed or expired) of agents ``idx`` (all if None), oldest first."""
        self._move(self.consumed, amount, idx, kind)

    def _move(self, target: np.ndarray, amount: np.ndarray | int, idx: np.ndarray | None, kind: str) -> None:
        arrays = [target] if self.trace is None else [target, self.trace[kind]]
        for arr in arrays:
            if idx is None:
                arr += amount
            else:
                arr[idx] += amount

    def start_trace(self) -> None:
        """Record per-agent flows for the month: issued, redeemed, expired, and the opening
        earned/consumed they must explain (used by the ledger tests)."""
        N = self.earned.shape[0]
        self.trace = {k: np.zeros(N, dtype=np.int64) for k in ("issued", "redeemed", "expired")}
        self.trace["earned0"] = self.earned.copy()
        self.trace["consumed0"] = self.consumed.copy()

    def check_trace(self, t: int) -> tuple[int, int, int]:
        """Per-agent identity: issued - redeemed - expired = change in outstanding, and the
        month's flows explain every change of earned and consumed. Returns the totals."""
        tr = self.trace
        assert tr is not None
        d_earned = self.earned - tr["earned0"]
        d_consumed = self.consumed - tr["consumed0"]
        bad = np.flatnonzero((d_earned != tr["issued"]) | (d_consumed != tr["redeemed"] + tr["expired"]))
        if bad.size:
            i = int(bad[0])
            raise RuntimeError(f"points ledger of agent {i} in month {t} ({self.name}): earned +{int(d_earned[i])} "
                               f"vs issued {int(tr['issued'][i])}; consumed +{int(d_consumed[i])} vs redeemed "
                               f"{int(tr['redeemed'][i])} + expired {int(tr['expired'][i])}")
        return int(tr["issued"].sum()), int(tr["redeemed"].sum()), int(tr["expired"].sum())

    @classmethod
    def new(cls, name: str, pop: Population, ring: int, window: int, n_segments: int) -> "RunState":
        N = pop.capacity
        exists = np.zeros(N, dtype=bool)
        exists[: pop.n_base] = True
        return cls(
            name=name, exists=exists, segment=pop.segment0.copy(), reach=pop.reach.copy(), recency=pop.recency0.copy(),
            member=np.zeros(N, dtype=bool), enrol_month=np.full(N, -1, dtype=np.int16), tier=np.zeros(N, dtype=np.int8),
            below=np.zeros(N, dtype=np.int16), since_reward=np.full(N, NEVER, dtype=np.int16),
            since_demotion=np.full(N, NEVER, dtype=np.int16), first_pending=np.zeros(N, dtype=bool),
            next_bill=np.full(N, -1, dtype=np.int16), spend_since_bill=np.zeros(N),
            earned=np.zeros(N, dtype=np.int64), consumed=np.zeros(N, dtype=np.int64),
            snap=lazy_zeros((ring, N), np.uint32), qual_ring=lazy_zeros((N, window), np.float32), qual_sum=np.zeros(N),
            qual_off=np.full(N, kernels.NO_ROW, dtype=np.uint16),
            qual_used=np.zeros((N + kernels.BLOCK - 1) // kernels.BLOCK, dtype=np.int32),
            row=np.full(N, -1, dtype=np.int32), rows=np.zeros(1, dtype=np.int64),
            candidates=lazy_zeros((N,), np.int32),
            n_candidates=np.zeros((N + kernels.BLOCK - 1) // kernels.BLOCK, dtype=np.int32),
            transitions_counts=np.zeros((n_segments, n_segments), dtype=np.int64),
        )

    # ------------------------------------------------------------------ history rows
    def give_rows(self, need: np.ndarray) -> None:
        """Snapshot rows for the agents where ``need`` that have none, in agent order."""
        new = np.flatnonzero(need & (self.row < 0))
        start = int(self.rows[0])
        self.row[new] = np.arange(start, start + new.size, dtype=np.int32)
        self.rows[0] = start + new.size

    def snapshot(self, m: int, idx: np.ndarray | None = None) -> np.ndarray:
        """Earned (mod 2**32) at the end of month m of agents ``idx`` (all if None); zero for
        agents without a row."""
        r = self.row if idx is None else self.row[idx]
        out = np.zeros(r.shape[0], dtype=np.uint32)
        has = r >= 0
        out[has] = self.snap[m % self.snap.shape[0], r[has]]
        return out

    def set_snapshot(self, m: int, earned: np.ndarray) -> None:
        """Month m's snapshot of every agent with a row (the others must have earned nothing)."""
        has = self.row >= 0
        self.snap[m % self.snap.shape[0], self.row[has]] = earned[has].astype(np.uint32)

    def qual_rows(self) -> np.ndarray:
        """Each agent's tier-window row, -1 none."""
        i = np.arange(self.qual_off.shape[0])
        return np.where(self.qual_off == kernels.NO_ROW, -1, i // kernels.BLOCK * kernels.BLOCK + self.qual_off)

    def set_qual(self, m: int, value: np.ndarray) -> None:
        """Month m's tier metric of every agent; agents with a non-zero one and no row get one
        (in agent order, as the compiled step gives them)."""
        new = np.flatnonzero((value != 0) & (self.qual_off == kernels.NO_ROW))
        kernels.give_qual_rows(self.qual_off, self.qual_used, new)
        r = self.qual_rows()
        has = r >= 0
        self.qual_ring[r[has], m % self.qual_ring.shape[1]] = value[has]

    def qual_total(self) -> np.ndarray:
        """Each agent's rolling window sum, float64 in ring order (zero without a row)."""
        r = self.qual_rows()
        out = np.zeros(r.shape[0])
        has = r >= 0
        out[has] = self.qual_ring[r[has]].sum(axis=1, dtype=np.float64)
        return out

    # ------------------------------------------------------------------ points views
    def outstanding(self) -> np.ndarray:
        return self.earned - self.consumed

    def earned_until(self, t: int, months_back: int, idx: np.ndarray | None = None) -> np.ndarray:
        """Cumulative earned at the end of month ``t - months_back`` (``earned`` now if 0),
        for agents ``idx`` (all if None).

        Snapshots hold ``earned mod 2**32``; the points earned since a snapshot are fewer than
        2**32 hundredths (43 million points), so ``earned - ((earned - snap) mod 2**32)`` is
        exact.
        """
        earned = self.earned if idx is None else self.earned[idx]
        if months_back == 0:
            return earned
        L = self.snap.shape[0]
        if months_back >= L:
            raise ValueError(f"ring of {L} months cannot look {months_back} months back")
        snap = self.snapshot(t - months_back, idx)  # zero for agents who had earned nothing
        since = earned.astype(np.uint32) - snap  # wraps modulo 2**32
        return earned - since.astype(np.int64)

    def spendable(self, t: int) -> np.ndarray:
        p = self.program
        pending = p.pending_months if p is not None else 0
        return np.maximum(self.earned_until(t, pending) - self.consumed, 0)

    def close_month(self, t: int) -> None:
        self.set_snapshot(t, self.earned)

    def reset_points_window(self, program: CompiledProgram, snap: np.ndarray | None = None) -> None:
        """A new program's snapshot ring and tier window (at a launch): ``snap``, the converted
        points dated (mechanisms/history.convert), or an empty ring when no program ran before
        (no points yet)."""
        N = self.earned.shape[0]
        self.snap = lazy_zeros((program.ring, N), np.uint32) if snap is None else snap
        W = program.window_months if program.window == WINDOW_ROLLING else 1
        self.qual_ring = lazy_zeros((N, W), np.float32)
        self.qual_off[:] = kernels.NO_ROW
        self.qual_used[:] = 0
        self.qual_sum = np.zeros(N)
        self.tier[:] = 0
        self.below[:] = 0
