"""Compiled one-agent primitives shared by the kernels and the mechanisms' compiled functions
(Numba, inlined wherever they are called): the stream uniform of a hashed key and an agent's
cumulative earned points at a past month.

A leaf module (NumPy and Numba only): a mechanism module can import it without importing the
kernels, which import the mechanisms.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
#: The key's step per agent and per occurrence k (streams.py).
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
K_STEP = np.uint64(0xD1B54A32D192ED03)
_TO_UNIT = 1.0 / float(1 << 53)


@njit(cache=True, nogil=True, inline="always")
def unit(z):
    """SplitMix64 finaliser of a 64-bit key -> uniform in (0, 1) (see streams.py)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    z = z ^ (z >> np.uint64(31))
    return (float(z >> np.uint64(11)) + 0.5) * _TO_UNIT


@njit(cache=True, nogil=True, inline="always")
def draw(base, i):
    """Agent i's uniform of the stream whose month key is ``base`` (Streams.uniform, k = 0)."""
    return unit(base + np.uint64(i) * GOLDEN)


@njit(cache=True, nogil=True, inline="always")
def earned_until(earned_i, snap, r, col):
    """Cumulative earned of an agent (history row ``r``, -1 none) at the end of the month held
    in ring row ``col`` (``earned`` now if col < 0): ``earned - ((earned - snap) mod 2**32)``,
    the snapshot zero for an agent without a row (state.py)."""
    if col < 0:
        return earned_i
    s = snap[col, r] if r >= 0 else np.uint32(0)
    since = (np.uint32(earned_i & 0xFFFFFFFF) - s) & np.uint32(0xFFFFFFFF)
    return earned_i - np.int64(since)
