"""The agents: every customer's own attributes, drawn once and shared by design and baseline.

Agents ``0 .. n_base-1`` are the customer base at the start; then come the arrivals of each
month (activated on schedule), then a pool of slots for customers referred by members
(activated only in a run whose program pays referral bonuses). All attributes are drawn from
named counter-based streams at period -1, so an agent's attributes depend only on its index
and the seed.

Individual heterogeneity (NBD, Ehrenberg 1959; Fader, Hardie & Lee 2005): an agent's purchase
rate is its segment's rate times ``rate_mult ~ Gamma(k, 1/k)`` (mean 1, k = segment
``rate_shape``); its mean basket is the segment's mean times a lognormal multiplier of mean 1.

Potential band (low / medium / high; playbooks target campaigns and drives by it): drawn from
the agent's segment's band mix when the market gives one (``Segment.potential``, written by
``loyalty-sim calibrate`` from the logistic potential score), else the thirds of the agents'
expected spend over the next 12 months given the segment dynamics.

Home store (markets with a store network, ``Market.stores``): agent i's store is the first
store k whose cumulative share in the agent's segment's mix exceeds u(init.store, i), i.e. a
draw from the segment's mix over the stores (``StoreNetwork.segment_mix``, else the stores'
``share``); arrivals and referred customers draw from the acquisition segment's mix. A store
is a small integer (uint8 up to 256 stores, else uint16) and stays the agent's for life. The
store scales the agent's opt-in draws: bit c of the reach mask is set when
u(init.reach, c) < min(1, p_c r_kc) and of the opt-in on joining when u(init.opt_in, c) <
min(1, q_c r_kc), p_c and q_c the market's opt-in shares (``reachability``), r_kc the store's
``reach`` multiplier (1 without a network, where the draws are the ones made before stores
existed). Staff who ask for contact details at the till raise a store's opt-in rate; the
network's share-weighted mean of r_kc need not be 1, so the market's opt-in share becomes
sum_k share_k min(1, p_c r_kc). The multipliers are the market's input (calibrated from the
opt-in shares per store of a member file, or illustrative); no published study fixes them.

Known customers. ``initial`` (:class:`InitialAgents`) starts the first agents from given
states -- real customers at a calibration date, as the back-test does -- instead of draws:
their segment (then every segment-dependent draw uses it), and optionally their recency,
purchase-rate and basket multipliers and potential band.
"""

from __future__ import annotations

import math
import queue
from dataclasses import dataclass, field
from typing import Callable, TypeVar

import numpy as np
from numba import njit
from scipy.special import gammaincinv

from simulator.engine import kernels
from simulator.engine.compiled import CompiledMarket
from simulator.engine.kernels import _GOLDEN, _K_STEP, _unit, norm_ppf
from simulator.engine.streams import Streams

_R = TypeVar("_R")


#: Streams used to draw the population (period -1).
INIT_STREAMS = ("init.segment", "init.rate", "init.basket", "init.identified", "init.reach", "init.opt_in",
                "init.birthday", "init.recency", "init.potential", "init.store")


@dataclass(frozen=True)
class InitialAgents:
    """Given starting states of the first ``len(segment)`` base agents (None: drawn as usual)."""

    segment: np.ndarray                      # segment index per agent
    recency: np.ndarray | None = None        # months since the last purchase
    rate_mult: np.ndarray | None = None      # purchase-rate multiplier (mean 1 within a segment)
    basket_mult: np.ndarray | None = None    # mean-basket multiplier (mean 1 within a segment)
    potential: np.ndarray | None = None      # 0 low, 1 medium, 2 high

    def __len__(self) -> int:
        return int(np.asarray(self.segment).shape[0])

    def check(self, agents: int, n_segments: int) -> None:
        n = len(self)
        if n > agents:
            raise ValueError(f"{n} initial agents for a population of {agents} (expected at most {agents})")
        for name in ("recency", "rate_mult", "basket_mult", "potential"):
            a = getattr(self, name)
            if a is not None and np.asarray(a).shape != (n,):
                raise ValueError(f"initial {name} has shape {np.asarray(a).shape} (expected ({n},))")
        seg = np.asarray(self.segment)
        if n and (seg.min() < 0 or seg.max() >= n_segments):
            raise ValueError(f"initial segment indices must be in 0..{n_segments - 1}")


@dataclass
class Population:
    """Shared per-agent attributes (arrays of length ``capacity``)."""

    capacity: int
    n_base: int
    scale: float                 # customers represented by one agent
    arrival_month: np.ndarray    # int32, -1 for the base, else the month of arrival
    arrivals_by_month: list[tuple[int, int]]  # [(first index, end index)] per month
    referral_start: int          # first slot of the referral pool
    segment0: np.ndarray         # int16 initial segment
    rate_mult: np.ndarray        # float64, mean 1
    basket_mult: np.ndarray      # float64, mean 1
    identified: np.ndarray       # bool
    reach: np.ndarray            # uint8 bitmask of channels opted in at the start
    opt_in_on_join: np.ndarray   # uint8 bitmask of channels the agent opts in to when joining
    birthday: np.ndarray         # int8 calendar month 1..12
    recency0: np.ndarray         # int16 months since last purchase at the start
    potential: np.ndarray        # int8 0 low, 1 medium, 2 high
    selection_norm: np.ndarray   # [S] normaliser of rate_mult ** self_selection
    store: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))  # home store (uint8/16); empty: no network
    _powers: dict[float, np.ndarray] = field(default_factory=dict, repr=False)

    def rate_power(self, beta: float) -> np.ndarray:
        """``rate_mult ** beta`` for every agent (cached: few distinct betas per market)."""
        if beta not in self._powers:
            self._powers[beta] = self.rate_mult ** beta
        return self._powers[beta]

    @classmethod
    def draw(cls, market: CompiledMarket, streams: Streams, *, agents: int, horizon: int,
             referral_slots: int = 0, initial: InitialAgents | None = None,
             n_threads: int | None = None) -> "Population":
        """Draw every agent's attributes (equations in the module docstring), on ``n_threads``
        threads (default :func:`kernels.threads`); an agent's values depend only on its index
        and the seed, so not on the threads."""
        scale = market.customers / agents
        per_month = market.arrivals_per_month / scale
        arrivals: list[tuple[int, int]] = []
        start = agents
        for t in range(horizon):
            n = int(round(per_month * (t + 1))) - int(round(per_month * t))
            arrivals.append((start, start + n))
            start += n
        referral_start = start
        capacity = start + referral_slots
        S = len(market.names)
        threads = _threads_for(capacity, n_threads)
        keys = np.array([streams.stream_base(name, -1) for name in INIT_STREAMS], dtype=np.uint64)

        seg = np.empty(capacity, dtype=np.int16)
        cum = np.cumsum(market.share)
        cum[-1] = 1.0
        kernels._threaded(_segments, capacity, threads, keys, agents, cum, market.arrival_segment, seg)
        k0 = 0
        if initial is not None:
            initial.check(agents, S)
            k0 = len(initial)
            seg[:k0] = initial.segment
        if market.stores:
            store = np.empty(capacity, dtype=market.store_dtype)
            cum_mix = np.cumsum(market.store_mix, axis=1)
            cum_mix[:, -1] = 1.0
            kernels._threaded(_stores, capacity, threads, keys, seg, cum_mix, store)
            store_reach = np.ascontiguousarray(market.store_reach, dtype=np.float64)
        else:
            store = np.zeros(0, dtype=np.uint8)
            store_reach = np.ones((1, len(market.reach_share)))
        arrival_month = np.full(capacity, -1, dtype=np.int32)
        for t, (a, b) in enumerate(arrivals):
            arrival_month[a:b] = t
        arrival_month[referral_start:] = horizon  # set when activated

        d = _Draws(
            keys=keys, agents=agents, seg=seg,
            shape=np.asarray(market.shape, dtype=np.float64), rate=np.asarray(market.rate, dtype=np.float64),
            sigma=np.asarray(market.basket_ind_sigma, dtype=np.float64),
            half_var=np.asarray(0.5 * market.basket_ind_sigma ** 2, dtype=np.float64),
            identified_share=float(market.identified_share),
            reach_share=np.asarray(market.reach_share, dtype=np.float64),
            opt_in_share=np.asarray(market.member_opt_in, dtype=np.float64), store=store, store_reach=store_reach,
            rate_mult=np.empty(capacity), basket_mult=np.empty(capacity),
            identified=np.empty(capacity, dtype=np.bool_), reach=np.empty(capacity, dtype=np.uint8),
            opt_in=np.empty(capacity, dtype=np.uint8), birthday=np.empty(capacity, dtype=np.int8),
            recency=np.empty(capacity, dtype=np.int16))
        # without a calibrated mix: the bands are the thirds of the expected spend over the next
        # 12 months given the segment dynamics, e_s rate_mult basket_mean_s basket_mult
        e = _expected_purchases_12m(market) if market.potential_mix is None else None
        basket_mean = np.asarray(market.basket_mean, dtype=np.float64)

        def from_base_agents() -> tuple[np.ndarray | None, np.ndarray]:
            """Once the base agents are drawn: their given states, the band cuts, the selection norm."""
            if initial is not None:
                if initial.recency is not None:
                    d.recency[:k0] = np.minimum(initial.recency, 30000)
                if initial.rate_mult is not None:
                    d.rate_mult[:k0] = initial.rate_mult
                if initial.basket_mult is not None:
                    d.basket_mult[:k0] = initial.basket_mult
            cuts = None
            if e is not None:
                value = np.empty(agents)
                _expected_value(0, agents, seg, e, basket_mean, d.rate_mult, d.basket_mult, value)
                cuts = np.quantile(value, [1 / 3, 2 / 3], overwrite_input=True)
            return cuts, _selection_norm(seg[:agents], d.rate_mult, market.response["self_selection"])

        # the base agents first; then the arrivals and referral slots, while the calling thread
        # works out what depends on the base agents only
        _draw_chunks(d, 0, agents, threads)
        cuts, norm = _draw_chunks(d, agents, capacity, threads, meanwhile=from_base_agents)

        potential = np.empty(capacity, dtype=np.int8)
        if market.potential_mix is not None:
            # calibrated: the band drawn from the agent's segment's mix
            cum = np.cumsum(market.potential_mix, axis=1)
            cum /= cum[:, -1:]
            kernels._threaded(_potential_from_mix, capacity, threads, keys, seg,
                              np.ascontiguousarray(cum[:, 0]), np.ascontiguousarray(cum[:, 1]), potential)
        else:
            kernels._threaded(_potential_from_value, capacity, threads, seg, e, basket_mean, d.rate_mult,
                              d.basket_mult, cuts, potential)
        if initial is not None and initial.potential is not None:
            potential[:k0] = initial.potential
        return cls(capacity=capacity, n_base=agents, scale=scale, arrival_month=arrival_month,
                   arrivals_by_month=arrivals, referral_start=referral_start, segment0=seg, rate_mult=d.rate_mult,
                   basket_mult=d.basket_mult, identified=d.identified, reach=d.reach, opt_in_on_join=d.opt_in,
                   birthday=d.birthday, recency0=d.recency, potential=potential, selection_norm=norm, store=store)


def _expected_purchases_12m(market: CompiledMarket) -> np.ndarray:
    """e_s: expected purchases over the next 12 months of a customer now in segment s, given
    the segment dynamics (sum over h = 1..12 of P^h rate)."""
    S = len(market.names)
    e = np.zeros(S)
    Ph = np.eye(S)
    for _ in range(12):
        Ph = Ph @ market.P
        e += Ph @ market.rate
    return e


def _selection_norm(base_seg: np.ndarray, rate_mult: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Per segment s, the mean of rate_mult ** beta_s over the base agents in s (1 if none or 0)."""
    S = beta.shape[0]
    norm = np.ones(S)
    by_segment, ends = _group_by_segment(base_seg, rate_mult, S)
    for s in range(S):
        members = by_segment[(ends[s - 1] if s else 0):ends[s]]
        if len(members):
            norm[s] = float(np.mean(members ** beta[s])) or 1.0
    return norm


# ---------------------------------------------------------------------------------------------
# The draws, compiled. Each kernel fills agents lo .. hi-1 of its output arrays from the
# counter-based streams (uniform of agent i, occurrence k = the SplitMix64 finaliser of
# base + i * golden + k * step, the same values Streams.uniform gives), so any split of the
# agents into ranges, on any number of threads, gives the same arrays. The exp, log and gamma
# quantile are NumPy / SciPy ufuncs applied a chunk at a time (the same functions as an
# array-wide call, element by element).

#: Agents per chunk: a thread draws a chunk at a time (its temporaries stay in cache).
CHUNK = 1 << 14

_SEGMENT, _RATE, _BASKET, _IDENTIFIED, _REACH, _OPT_IN, _BIRTHDAY, _RECENCY, _POTENTIAL, _STORE = range(len(INIT_STREAMS))


@dataclass
class _Draws:
    """Inputs and outputs of :func:`_draw_chunk` (arrays over the capacity; keys in INIT_STREAMS order)."""

    keys: np.ndarray
    agents: int
    seg: np.ndarray
    shape: np.ndarray            # [S] gamma shape
    rate: np.ndarray             # [S] purchases per month
    sigma: np.ndarray            # [S] lognormal sigma of the mean basket
    half_var: np.ndarray         # [S] sigma ** 2 / 2
    identified_share: float
    reach_share: np.ndarray      # [C]
    opt_in_share: np.ndarray     # [C]
    store: np.ndarray            # home store of each agent (empty: no network)
    store_reach: np.ndarray      # [K, C] opt-in multipliers of each store
    rate_mult: np.ndarray
    basket_mult: np.ndarray
    identified: np.ndarray
    reach: np.ndarray
    opt_in: np.ndarray
    birthday: np.ndarray
    recency: np.ndarray


def _threads_for(agents: int, n_threads: int | None) -> int:
    """Threads for ``agents`` agents: ``n_threads`` (default kernels.threads()), at most one
    per kernels.MIN_AGENTS_PER_THREAD agents (as kernels._threaded)."""
    n = kernels.threads() if n_threads is None else max(1, int(n_threads))
    return max(1, min(n, agents // kernels.MIN_AGENTS_PER_THREAD))


def _draw_chunks(d: _Draws, lo: int, hi: int, n: int, meanwhile: Callable[[], _R] | None = None) -> _R | None:
    """:func:`_draw_chunk` over agents lo .. hi-1, chunk by chunk, on ``n`` threads (the
    calling one included); a thread takes the next chunk when done with one -- the gamma
    quantile costs more for some shapes than others, and arrivals all have one segment, so
    equal ranges of agents would not be equal work. ``meanwhile`` (which must not touch
    agents lo .. hi-1) runs on the calling thread before it joins in; its result is returned."""
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for a in range(lo, hi, CHUNK):
        todo.put(a)

    def work() -> None:
        shape, log_u = np.empty(CHUNK), np.empty(CHUNK)
        while True:
            try:
                a = todo.get_nowait()
            except queue.Empty:
                return
            _draw_chunk(a, min(a + CHUNK, hi), d, shape, log_u)

    helpers = [kernels._thread_pool(n - 1).submit(work) for _ in range(n - 1)] if n > 1 else []
    result = meanwhile() if meanwhile is not None else None
    work()
    for f in helpers:
        f.result()
    return result


def _draw_chunk(a: int, b: int, d: _Draws, shape: np.ndarray, log_u: np.ndarray) -> None:
    """Every draw but the segment and the potential band, for agents a .. b-1 (``shape`` and
    ``log_u``: scratch arrays of at least b - a entries):

    rate_mult = P^-1(shape_s, u(init.rate)) / shape_s  (P the regularised lower incomplete gamma),
    basket_mult = exp(sigma_s z - sigma_s^2 / 2), z = Phi^-1(u(init.basket)),
    identified, reach and opt-in bits, birthday, and the base agents' recency
    floor(-log u(init.recency) / max(rate_s rate_mult, 1e-6)) capped at 240 months (0 for the others).
    """
    n = b - a
    rate_mult = d.rate_mult[a:b]
    _gamma_inputs(a, b, d.keys, d.seg, d.shape, rate_mult, shape)
    gammaincinv(shape[:n], rate_mult, out=rate_mult)
    np.divide(rate_mult, shape[:n], out=rate_mult)
    _basket_exponents(a, b, d.keys, d.seg, d.sigma, d.half_var, d.basket_mult)
    np.exp(d.basket_mult[a:b], out=d.basket_mult[a:b])
    _recency_uniforms(a, b, d.keys, d.agents, log_u)
    np.log(log_u[:n], out=log_u[:n])
    _recency(a, b, d.agents, d.seg, d.rate, d.rate_mult, log_u, d.recency)
    _flags(a, b, d.keys, d.identified_share, d.reach_share, d.opt_in_share, d.store, d.store_reach, d.identified,
           d.reach, d.opt_in, d.birthday)


@njit(cache=True, nogil=True, inline="always")
def _uniform(key, i, k):
    """Uniform of agent ``i``, occurrence ``k`` in the stream of base key ``key``."""
    return _unit(key + np.uint64(i) * _GOLDEN + np.uint64(k) * _K_STEP)


@njit(cache=True, nogil=True)
def _segments(lo, hi, keys, agents, cum_share, arrival_segment, seg):
    """Base agents: the first segment whose cumulative share exceeds u(init.segment) (the last
    if none); arrivals and referral slots: the acquisition segment."""
    last = cum_share.shape[0] - 1
    for i in range(min(hi, agents), hi):
        seg[i] = arrival_segment
    for i in range(lo, min(hi, agents)):
        u = _uniform(keys[_SEGMENT], i, 0)
        s = 0
        for j in range(last):  # cum_share is sorted: count the entries <= u, without branches
            s += cum_share[j] <= u
        seg[i] = s
    return 0


@njit(cache=True, nogil=True)
def _gamma_inputs(lo, hi, keys, seg, shape_s, u, shape):
    """u(init.rate) and the gamma shape of agents lo .. hi-1, into u[0 .. hi-lo-1] and shape[...]."""
    for i in range(lo, hi):
        u[i - lo] = _uniform(keys[_RATE], i, 0)
        shape[i - lo] = shape_s[seg[i]]
    return 0


@njit(cache=True, nogil=True)
def _basket_exponents(lo, hi, keys, seg, sigma_s, half_var_s, out):
    """sigma_s z - sigma_s^2 / 2 with z = Phi^-1(u(init.basket)) (AS 241): the log of the
    agent's mean-basket multiplier."""
    for i in range(lo, hi):
        s = seg[i]
        out[i] = sigma_s[s] * norm_ppf(_uniform(keys[_BASKET], i, 0)) - half_var_s[s]
    return 0


@njit(cache=True, nogil=True)
def _recency_uniforms(lo, hi, keys, agents, u):
    """u(init.recency) of the base agents among lo .. hi-1, into u[0 .. hi-lo-1] (1 for the others)."""
    for i in range(lo, hi):
        u[i - lo] = _uniform(keys[_RECENCY], i, 0) if i < agents else 1.0
    return 0


@njit(cache=True, nogil=True, error_model="numpy")
def _recency(lo, hi, agents, seg, rate_s, rate_mult, log_u, recency):
    """Months since the last purchase: floor(-log u / lambda) capped at 240, lambda =
    max(rate_s rate_mult, 1e-6) (exponential waiting time); 0 for arrivals and referral slots."""
    for i in range(lo, hi):
        if i >= agents:
            recency[i] = 0
            continue
        lam = rate_s[seg[i]] * rate_mult[i]
        if not (lam >= 1e-6 or lam != lam):  # np.maximum(lam, 1e-6): NaN stays NaN
            lam = 1e-6
        months = np.floor(-log_u[i - lo] / lam)
        recency[i] = np.int16(months if months < 240.0 or months != months else 240.0)
    return 0


@njit(cache=True, nogil=True)
def _stores(lo, hi, keys, seg, cum_mix, store):
    """Home store: the first store whose cumulative share in the agent's segment's mix exceeds
    u(init.store) (searchsorted 'right'; the last if none)."""
    last = cum_mix.shape[1] - 1
    for i in range(lo, hi):
        u = _uniform(keys[_STORE], i, 0)
        s = seg[i]
        a, b = 0, last  # binary search: the first k with cum_mix[s, k] > u (the last store if none)
        while a < b:
            mid = (a + b) // 2
            if cum_mix[s, mid] <= u:
                a = mid + 1
            else:
                b = mid
        store[i] = a
    return 0


@njit(cache=True, nogil=True)
def _flags(lo, hi, keys, identified_share, reach_share, opt_in_share, store, store_reach, identified, reach, opt_in,
           birthday):
    """identified: u(init.identified) < share; bit c of reach (opt_in_on_join): u(init.reach,
    k=c) < reach share of channel c (u(init.opt_in, k=c) < member opt-in), each times the home
    store's multiplier capped at 1 when the market has stores; birthday month
    1 + floor(12 u(init.birthday))."""
    C = min(reach_share.shape[0], 8)
    has_stores = store.shape[0] > 0
    for i in range(lo, hi):
        identified[i] = _uniform(keys[_IDENTIFIED], i, 0) < identified_share
        r = 0
        o = 0
        for c in range(C):
            p = reach_share[c]
            q = opt_in_share[c]
            if has_stores:
                m = store_reach[store[i], c]
                p = min(p * m, 1.0)
                q = min(q * m, 1.0)
            if _uniform(keys[_REACH], i, c) < p:
                r |= 1 << c
            if _uniform(keys[_OPT_IN], i, c) < q:
                o |= 1 << c
        reach[i] = r
        opt_in[i] = o
        birthday[i] = np.int8(1.0 + np.floor(_uniform(keys[_BIRTHDAY], i, 0) * 12.0))
    return 0


@njit(cache=True, nogil=True)
def _potential_from_mix(lo, hi, keys, seg, cum_low, cum_medium, potential):
    """Calibrated band: (u > cum_low_s) + (u > cum_medium_s), u = u(init.potential)."""
    for i in range(lo, hi):
        u = _uniform(keys[_POTENTIAL], i, 0)
        s = seg[i]
        potential[i] = (1 if u > cum_low[s] else 0) + (1 if u > cum_medium[s] else 0)
    return 0


@njit(cache=True, nogil=True, inline="always")
def _value(i, seg, e, basket_mean, rate_mult, basket_mult):
    """Expected spend over the next 12 months: e_s rate_mult basket_mean_s basket_mult."""
    s = seg[i]
    return e[s] * rate_mult[i] * basket_mean[s] * basket_mult[i]


@njit(cache=True, nogil=True)
def _expected_value(lo, hi, seg, e, basket_mean, rate_mult, basket_mult, out):
    """out[i] = the expected spend of agent i over the next 12 months."""
    for i in range(lo, hi):
        out[i] = _value(i, seg, e, basket_mean, rate_mult, basket_mult)
    return 0


@njit(cache=True, nogil=True, inline="always")
def _sorts_before(a, b):
    """a < b in NumPy's sort order (NaN last), as searchsorted compares."""
    return a < b or (b != b and a == a)


@njit(cache=True, nogil=True)
def _potential_from_value(lo, hi, seg, e, basket_mean, rate_mult, basket_mult, cuts, potential):
    """Band = number of cuts at or below the agent's expected value (searchsorted 'right')."""
    for i in range(lo, hi):
        v = _value(i, seg, e, basket_mean, rate_mult, basket_mult)
        band = 0
        for j in range(cuts.shape[0]):
            if not _sorts_before(v, cuts[j]):
                band += 1
        potential[i] = band
    return 0


@njit(cache=True, nogil=True)
def _group_by_segment(seg, values, S):
    """values[i] of agents i < len(seg) grouped by segment, in agent order within a segment
    (what values[seg == s] gives, for every s at once), and the end of each group."""
    ends = np.zeros(S, dtype=np.int64)
    for i in range(seg.shape[0]):
        ends[seg[i]] += 1
    for s in range(1, S):
        ends[s] += ends[s - 1]
    pos = np.empty(S, dtype=np.int64)
    for s in range(S):
        pos[s] = ends[s - 1] if s else 0
    out = np.empty(seg.shape[0])
    for i in range(seg.shape[0]):
        s = seg[i]
        out[pos[s]] = values[i]
        pos[s] += 1
    return out, ends


def referral_capacity(rate_per_member_year: float, capacity_without: int, horizon: int) -> int:
    """Slots reserved for referred customers: enough if every customer were a member."""
    return int(math.ceil(rate_per_member_year / 12.0 * capacity_without * horizon * 1.2)) + 16
