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

Known customers. ``initial`` (:class:`InitialAgents`) starts the first agents from given
states -- real customers at a calibration date, as the back-test does -- instead of draws:
their segment (then every segment-dependent draw uses it), and optionally their recency,
purchase-rate and basket multipliers and potential band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaincinv

from simulator.engine.compiled import CompiledMarket
from simulator.engine.streams import Streams

#: Streams used to draw the population (period -1).
INIT_STREAMS = ("init.segment", "init.rate", "init.basket", "init.identified", "init.reach", "init.opt_in",
                "init.birthday", "init.recency", "init.potential")


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
    _powers: dict[float, np.ndarray] = field(default_factory=dict, repr=False)

    def rate_power(self, beta: float) -> np.ndarray:
        """``rate_mult ** beta`` for every agent (cached: few distinct betas per market)."""
        if beta not in self._powers:
            self._powers[beta] = self.rate_mult ** beta
        return self._powers[beta]

    @classmethod
    def draw(cls, market: CompiledMarket, streams: Streams, *, agents: int, horizon: int,
             referral_slots: int = 0, initial: InitialAgents | None = None) -> "Population":
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
        idx = np.arange(capacity, dtype=np.int64)
        S = len(market.names)

        seg = np.full(capacity, market.arrival_segment, dtype=np.int16)
        u = streams.uniform("init.segment", -1, idx[:agents])
        cum = np.cumsum(market.share)
        cum[-1] = 1.0
        seg[:agents] = np.searchsorted(cum, u, side="right").clip(0, S - 1)
        k0 = 0
        if initial is not None:
            initial.check(agents, S)
            k0 = len(initial)
            seg[:k0] = initial.segment
        arrival_month = np.full(capacity, -1, dtype=np.int32)
        for t, (a, b) in enumerate(arrivals):
            arrival_month[a:b] = t
        arrival_month[referral_start:] = horizon  # set when activated

        shape = market.shape[seg]
        rate_mult = gammaincinv(shape, streams.uniform("init.rate", -1, idx)) / shape
        sig = market.basket_ind_sigma[seg]
        basket_mult = np.exp(sig * streams.normal("init.basket", -1, idx) - 0.5 * sig ** 2)
        identified = streams.uniform("init.identified", -1, idx) < market.identified_share
        reach = np.zeros(capacity, dtype=np.uint8)
        opt_in = np.zeros(capacity, dtype=np.uint8)
        for c in range(len(market.channels)):
            reach |= ((streams.uniform("init.reach", -1, idx, k=c) < market.reach_share[c]).astype(np.uint8) << c)
            opt_in |= ((streams.uniform("init.opt_in", -1, idx, k=c) < market.member_opt_in[c]).astype(np.uint8) << c)
        birthday = (1 + np.floor(streams.uniform("init.birthday", -1, idx) * 12)).astype(np.int8)
        lam = np.maximum(market.rate[seg] * rate_mult, 1e-6)
        recency = np.minimum(np.floor(-np.log(streams.uniform("init.recency", -1, idx)) / lam), 240).astype(np.int16)
        recency[agents:] = 0
        if initial is not None:
            if initial.recency is not None:
                recency[:k0] = np.minimum(initial.recency, 30000)
            if initial.rate_mult is not None:
                rate_mult[:k0] = initial.rate_mult
            if initial.basket_mult is not None:
                basket_mult[:k0] = initial.basket_mult

        if market.potential_mix is not None:
            # calibrated: the band drawn from the agent's segment's mix
            cum = np.cumsum(market.potential_mix, axis=1)
            cum /= cum[:, -1:]
            up = streams.uniform("init.potential", -1, idx)
            potential = (up > cum[seg, 0]).astype(np.int8)
            potential += up > cum[seg, 1]
        else:
            # expected value over the next 12 months given segment dynamics, in thirds
            e = np.zeros(S)
            Ph = np.eye(S)
            for _ in range(12):
                Ph = Ph @ market.P
                e += Ph @ market.rate
            value = e[seg] * rate_mult * market.basket_mean[seg] * basket_mult
            cuts = np.quantile(value[:agents], [1 / 3, 2 / 3])
            potential = np.searchsorted(cuts, value, side="right").astype(np.int8)
        if initial is not None and initial.potential is not None:
            potential[:k0] = initial.potential

        beta = market.response["self_selection"]
        base_seg = seg[:agents]
        norm = np.ones(S)
        for s in range(S):
            members = rate_mult[:agents][base_seg == s]
            if len(members):
                norm[s] = float(np.mean(members ** beta[s])) or 1.0
        return cls(capacity=capacity, n_base=agents, scale=scale, arrival_month=arrival_month,
                   arrivals_by_month=arrivals, referral_start=referral_start, segment0=seg, rate_mult=rate_mult,
                   basket_mult=basket_mult, identified=identified, reach=reach, opt_in_on_join=opt_in,
                   birthday=birthday, recency0=recency, potential=potential, selection_norm=norm)


def referral_capacity(rate_per_member_year: float, capacity_without: int, horizon: int) -> int:
    """Slots reserved for referred customers: enough if every customer were a member."""
    return int(math.ceil(rate_per_member_year / 12.0 * capacity_without * horizon * 1.2)) + 16
