"""Named random streams: counter-based, so every draw is a pure function of its coordinates.

A draw is ``uniform(stream, period, agent, k)``: the SplitMix64 finaliser (Steele, Lea &
Flood 2014, "Fast splittable pseudorandom number generators") applied to a key made of the
run seed, the stream's name, the period, the agent's index and an occurrence counter ``k``
(the k-th purchase of the agent in the period, say). Consequences:

* **Common random numbers.** The design and the baseline ask for the same coordinates and so
  see the same luck: an agent's third purchase of March has the same basket in both runs
  whatever the program did to the first two. The difference between the runs is the program.
* **Reproducible on any number of workers.** No generator state is carried from one draw to
  the next, so the order in which periods, agents or replications are computed does not
  matter.
* **No global random state** is touched anywhere.

Each decision point registers its stream name once per :class:`Streams`; asking for an
unregistered name, or registering a name twice, is an error (as in vivarium).
"""

from __future__ import annotations

import hashlib

import numpy as np

from simulator.engine import kernels

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_K_STEP = np.uint64(0xD1B54A32D192ED03)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 1.0 / float(1 << 53)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, vectorised over uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def _mix_scalar(x: int) -> int:
    with np.errstate(over="ignore"):
        return int(_mix(np.array([x & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0])


def seed_key(seed: int, replication: int = 0) -> int:
    """The 64-bit key of one replication, from the run seed by :class:`numpy.random.SeedSequence`."""
    # the replication-th child of SeedSequence(seed).spawn(...), built directly (O(1))
    ss = np.random.SeedSequence(int(seed), spawn_key=(int(replication),))
    return int(ss.generate_state(1, dtype=np.uint64)[0])


class Streams:
    """Uniform and normal draws from named, counter-based streams for one replication."""

    def __init__(self, key: int, names: tuple[str, ...]):
        self.key = int(key) & 0xFFFFFFFFFFFFFFFF
        self._keys: dict[str, int] = {}
        for name in names:
            self.register(name)

    def register(self, name: str) -> None:
        if name in self._keys:
            raise ValueError(f"random stream '{name}' registered twice: each decision point needs its own stream")
        digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
        self._keys[name] = _mix_scalar(self.key ^ digest)

    def _base(self, name: str, period: int) -> np.uint64:
        try:
            k = self._keys[name]
        except KeyError:
            raise KeyError(f"random stream '{name}' is not registered") from None
        return np.uint64(_mix_scalar(k + (period + 1) * 0x632BE59BD9B4E019))

    def stream_base(self, name: str, period: int) -> np.uint64:
        """The 64-bit key of (stream, period), for compiled kernels that hash agents themselves."""
        return self._base(name, period)

    def bits(self, name: str, period: int, agents: np.ndarray, k: np.ndarray | int = 0) -> np.ndarray:
        """64 random bits for each (agent, k) in ``period``."""
        base = self._base(name, period)
        with np.errstate(over="ignore"):
            z = base + agents.astype(np.uint64) * _GOLDEN
            if not (isinstance(k, int) and k == 0):
                z = z + np.asarray(k, dtype=np.uint64) * _K_STEP
            return _mix(z)

    def uniform(self, name: str, period: int, agents: np.ndarray, k: np.ndarray | int = 0) -> np.ndarray:
        """Uniform draws in (0, 1), one per agent (and occurrence ``k``); the same values as
        :meth:`bits` gives, computed in one compiled pass."""
        base = self._base(name, period)
        out = np.empty(agents.shape[0])
        if isinstance(k, int):
            if k == 0:
                return kernels.mix_uniform_k0(base, agents, out)
            k = np.full(agents.shape[0], k, dtype=np.int64)
        return kernels.mix_uniform(base, agents, np.asarray(k, dtype=np.int64), out)

    def uniform_all(self, name: str, period: int, n: int) -> np.ndarray:
        """Uniforms of agents ``0 .. n-1`` (equal to ``uniform(name, period, arange(n))``)."""
        return kernels.mix_uniform_range(self._base(name, period), n, np.empty(n))

    def normal(self, name: str, period: int, agents: np.ndarray, k: np.ndarray | int = 0) -> np.ndarray:
        """Standard normal draws by inverse CDF (so they keep the coupling of the uniforms);
        the quantile is Wichura's AS 241, as in the compiled kernels."""
        u = self.uniform(name, period, agents, k)
        return kernels.norm_ppf_array(u, np.empty(u.shape[0]))
