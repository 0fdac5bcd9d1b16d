"""Per-run agent state: what the program changes, held as arrays over the population.

The design and the baseline each have a :class:`RunState` over the same
:class:`~simulator.engine.population.Population`.

Points, exactly and oldest first. Points are int64 hundredths of a point. Each agent keeps
``earned`` (cumulative points credited) and ``consumed`` (cumulative points redeemed or
expired), and a ring of snapshots (column ``m % L``) of ``earned`` at the end of month ``m``.
Because consumption is first-in-first-out, the points still outstanding from batches earned
up to month ``m`` are ``max(0, snap[m] - consumed)``: expiry of a batch and the spendable
balance (excluding pending points) cost one array operation, not one per batch, and the
ledger identity ``issued = redeemed + expired + change in outstanding`` holds per agent by
construction (checked every period).

Compact rings. The snapshots and the rolling tier window are per-agent rings of the last L
months (:class:`AgentRings`), kept only for the agents that ever had a non-zero value: many
customers never earn a point, and their history is all zeros. An agent gets a row the first
time it has something to keep (at the month's close for snapshots, in the step for the tier
metric), in the region of rows of its block of ``BLOCK`` agents; the array is allocated
zero-filled and the operating system maps a page only when a row on it is first written, so
memory grows with the agents that earn, not with the population.
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
class AgentRings:
    """The last ``length`` monthly values of each agent (column ``m % length`` for month m),
    stored for the agents that have a row.

    ``values[r]`` is the ring of the agent whose row is ``r``; agent i of block
    ``b = i // BLOCK`` has row ``b * BLOCK + offset[i]`` (``offset`` NO_ROW: no row, every
    value zero). Rows of a block are given in order from ``b * BLOCK`` (``used[b]`` taken), so
    the rows in use fill the start of each block's region and only those pages are touched.
    The same agents get the same rows whatever the number of threads (a block is always
    handled by one thread, in agent order).
    """

    values: np.ndarray  # [capacity, length]
    offset: np.ndarray  # uint16 [capacity]
    used: np.ndarray    # int32 [blocks]

    @classmethod
    def new(cls, n: int, length: int, dtype) -> "AgentRings":
        return cls(values=lazy_zeros((n, length), dtype), offset=np.full(n, kernels.NO_ROW, dtype=np.uint16),
                   used=np.zeros((n + kernels.BLOCK - 1) // kernels.BLOCK, dtype=np.int32))

    @property
    def length(self) -> int:
        return self.values.shape[1]

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values, offset, used), as the compiled kernels take them."""
        return self.values, self.offset, self.used

    def rows(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Row of agents ``idx`` (all if None), -1 for none."""
        off = self.offset if idx is None else self.offset[idx]
        i = np.arange(self.offset.shape[0]) if idx is None else np.asarray(idx)
        return np.where(off == kernels.NO_ROW, -1, (i // kernels.BLOCK) * kernels.BLOCK + off.astype(np.int64))

    def give_rows(self, need: np.ndarray) -> None:
        """Rows for the agents where ``need`` (a mask over all agents) that have none."""
        kernels.give_rows(self.offset, self.used, np.flatnonzero(need & (self.offset == kernels.NO_ROW)))

    def column(self, m: int, idx: np.ndarray | None = None) -> np.ndarray:
        """Month m's values of agents ``idx`` (all if None), zero for agents without a row."""
        r = self.rows(idx)
        out = np.zeros(r.shape[0], dtype=self.values.dtype)
        has = r >= 0
        out[has] = self.values[r[has], m % self.length]
        return out

    def set_column(self, m: int, value: np.ndarray, keep: np.ndarray) -> None:
        """Month m's value of every agent; agents where ``keep`` get a row if they have none
        (agents without a row must have a zero value)."""
        self.give_rows(keep)
        r = self.rows()
        has = r >= 0
        self.values[r[has], m % self.length] = value[has]

    def total(self) -> np.ndarray:
        """Each agent's sum over the ring in float64 (columns in order), zero without a row."""
        r = self.rows()
        out = np.zeros(r.shape[0])
        has = r >= 0
        out[has] = self.values[r[has]].astype(np.float64).sum(axis=1)
        return out

    def fill(self, value: np.ndarray, keep: np.ndarray) -> None:
        """Every month's value = ``value`` (agents where ``keep`` get a row)."""
        self.give_rows(keep)
        r = self.rows()
        has = r >= 0
        self.values[r[has]] = value[has, None]


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
    snap: AgentRings              # uint32 rings of L months: earned (mod 2**32) at the end of month m (column m % L)
    qual_ring: AgentRings         # float32 rings of W months: monthly tier metric (rolling windows)
    qual_sum: np.ndarray          # float64 tier metric over an annual window (a rolling one is summed from qual_ring)
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
            snap=AgentRings.new(N, ring, np.uint32), qual_ring=AgentRings.new(N, window, np.float32), qual_sum=np.zeros(N),
            transitions_counts=np.zeros((n_segments, n_segments), dtype=np.int64),
        )

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
        L = self.snap.length
        if months_back >= L:
            raise ValueError(f"ring of {L} months cannot look {months_back} months back")
        snap = self.snap.column(t - months_back, idx)  # zero for agents who had earned nothing
        since = earned.astype(np.uint32) - snap  # wraps modulo 2**32
        return earned - since.astype(np.int64)

    def spendable(self, t: int) -> np.ndarray:
        p = self.program
        pending = p.pending_months if p is not None else 0
        return np.maximum(self.earned_until(t, pending) - self.consumed, 0)

    def close_month(self, t: int) -> None:
        self.snap.set_column(t, self.earned.astype(np.uint32), keep=self.earned != 0)

    def fill_snapshots(self) -> None:
        """Every snapshot = today's earned (a program running before the start, or a new ring)."""
        self.snap.fill(self.earned.astype(np.uint32), keep=self.earned != 0)

    def reset_points_window(self, program: CompiledProgram) -> None:
        """Resize the snapshot ring and tier window for a new program (at a migration)."""
        N = self.earned.shape[0]
        self.snap = AgentRings.new(N, program.ring, np.uint32)
        self.fill_snapshots()
        W = program.window_months if program.window == WINDOW_ROLLING else 1
        self.qual_ring = AgentRings.new(N, W, np.float32)
        self.qual_sum = np.zeros(N)
        self.tier[:] = 0
        self.below[:] = 0
