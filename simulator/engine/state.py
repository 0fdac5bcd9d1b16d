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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.engine.compiled import CompiledProgram, WINDOW_ROLLING
from simulator.engine.population import Population

NEVER = 10_000  # "months since" for an event that has not happened


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
    snap: np.ndarray              # uint32 [L, N] earned (mod 2**32) at the end of month m (row m % L)
    qual_ring: np.ndarray         # float32 [W, N] monthly tier metric (rolling windows)
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
            snap=np.zeros((ring, N), dtype=np.uint32), qual_ring=np.zeros((window, N), dtype=np.float32), qual_sum=np.zeros(N),
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
        L = self.snap.shape[0]
        if months_back >= L:
            raise ValueError(f"ring of {L} months cannot look {months_back} months back")
        snap = self.snap[(t - months_back) % L]
        if idx is not None:
            snap = snap[idx]
        since = earned.astype(np.uint32) - snap  # wraps modulo 2**32
        return earned - since.astype(np.int64)

    def spendable(self, t: int) -> np.ndarray:
        p = self.program
        pending = p.pending_months if p is not None else 0
        return np.maximum(self.earned_until(t, pending) - self.consumed, 0)

    def close_month(self, t: int) -> None:
        self.snap[t % self.snap.shape[0]] = self.earned.astype(np.uint32)

    def reset_points_window(self, program: CompiledProgram) -> None:
        """Resize the snapshot ring and tier window for a new program (at a migration)."""
        N = self.earned.shape[0]
        self.snap = np.repeat(self.earned.astype(np.uint32)[None, :], program.ring, axis=0)
        W = program.window_months if program.window == WINDOW_ROLLING else 1
        self.qual_ring = np.zeros((W, N), dtype=np.float32)
        self.qual_sum = np.zeros(N)
        self.tier[:] = 0
        self.below[:] = 0
