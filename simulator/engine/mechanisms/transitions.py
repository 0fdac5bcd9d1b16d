"""Segment transitions ("matrice de passage") and the program's effect on them.

Equation. An agent in segment s moves to segment j next month with probability ``P[s, j]``
(the market's monthly matrix). For a member of a program with the transitions mechanism on,
moves from a non-lapsed segment into lapsed segments are cut by the segment's
``transition_effect`` e_s and the probability mass stays in s:

    P'[s, j] = P[s, j] (1 - e_s)              for lapsed j != s
    P'[s, s] = P[s, s] + e_s * sum_{lapsed j != s} P[s, j]

(fewer lapses among engaged members; Meyer-Waarden 2007, Liu 2007 for the sign; the size is a
market assumption). Coupling: one uniform per agent and month, shared by both runs, is read
against each row's cumulative probabilities in the order *lapsed targets, stay, others*, so
the only agents whose next segment differs between runs are those the cut keeps from lapsing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simulator.engine.compiled import CompiledMarket


def row_order(market: CompiledMarket) -> list[np.ndarray]:
    """Column order of each row: lapsed targets (other than s), s itself, then the rest."""
    S = len(market.names)
    out = []
    for s in range(S):
        lapsed = [j for j in range(S) if market.lapsed[j] and j != s]
        rest = [j for j in range(S) if not market.lapsed[j] and j != s]
        out.append(np.array(lapsed + [s] + rest, dtype=np.int16))
    return out


def member_matrix(market: CompiledMarket, effect: np.ndarray) -> np.ndarray:
    """P' for members (see module docstring)."""
    P = market.P.copy()
    S = P.shape[0]
    for s in range(S):
        if market.lapsed[s]:
            continue
        lapse = [j for j in range(S) if market.lapsed[j] and j != s]
        cut = P[s, lapse] * effect[s]
        P[s, lapse] -= cut
        P[s, s] += cut.sum()
    return P


def flat_table(P: np.ndarray, P_member: np.ndarray, order: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rows r = segment + S * is_member, as one ascending table: ``r + cumsum(row in order)``,
    and the segment each entry leads to. One ``searchsorted`` of ``row + u`` then samples
    every agent's next segment at once."""
    S = P.shape[0]
    keys = np.empty(2 * S * S)
    dest = np.empty(2 * S * S, dtype=np.int16)
    for r in range(2 * S):
        s = r % S
        matrix = P if r < S else P_member
        cols = order[s]
        cum = np.cumsum(matrix[s, cols])
        cum[-1] = 1.0
        keys[r * S:(r + 1) * S] = r + np.minimum(cum, 1.0)
        dest[r * S:(r + 1) * S] = cols
    return keys, dest


def next_segment(segment: np.ndarray, u: np.ndarray, use_member: np.ndarray | None, table: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Next month's segment of each agent (``table`` from :func:`flat_table`): the first entry
    of row ``segment + S * member`` whose cumulative probability exceeds ``u``."""
    keys, dest = table
    S = int(round(np.sqrt(keys.size // 2)))
    member = use_member if use_member is not None else np.zeros(0, dtype=bool)
    from simulator.engine import kernels  # not at the top: the kernels import this module

    return kernels.next_segment(segment, u, member, use_member is not None, keys, dest, S,
                                np.empty(segment.shape[0], dtype=np.int16))


def stationary(P: np.ndarray, iterations: int = 10_000, tol: float = 1e-13) -> np.ndarray:
    """The stationary distribution pi = pi P of a monthly matrix (power iteration from the
    uniform distribution; for a chain with several closed classes, the one reached from it)."""
    pi = np.full(P.shape[0], 1.0 / P.shape[0])
    for _ in range(iterations):
        nxt = pi @ P
        nxt /= nxt.sum()
        if np.abs(nxt - pi).max() < tol:
            return nxt
        pi = nxt
    return pi


def reversed_matrix(P: np.ndarray) -> np.ndarray:
    """The time-reversed chain, ``P*[i, j] = pi_j P[j, i] / pi_i`` (Kelly 1979, *Reversibility
    and Stochastic Networks*, 1.7): the segment a customer in segment i was in the month
    before, for a chain in its stationary state. A segment the stationary chain never visits
    (pi_i = 0) is given its own past (P*[i, i] = 1)."""
    pi = stationary(P)
    S = P.shape[0]
    out = np.eye(S)
    for i in range(S):
        if pi[i] > 1e-15:
            row = pi * P[:, i] / pi[i]
            out[i] = row / row.sum()
    return out


@njit(cache=True, nogil=True, inline="always")
def next_entry(r, key, keys, S):
    """Index of the first entry of table row r above ``key`` (rows ascend: count those below),
    the lookup :func:`next_segment` makes, branch-free for one agent; inlined by Numba into
    the month-end pass."""
    j = r * S
    c = 0
    for k in range(S - 1):
        c += keys[j + k] <= key
    return j + c
