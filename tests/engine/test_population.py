"""The agents' shared attributes: potential bands (computed or calibrated), known initial states."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.engine.compiled import CompiledMarket
from simulator.engine.population import INIT_STREAMS, InitialAgents, Population
from simulator.engine.simulation import Simulation
from simulator.executor import replication
from simulator.engine.streams import Streams, seed_key
from simulator.scenario import resolve
from simulator.uncertainty import central_values, with_values

PLAYBOOK = "markets/france/points_tiers_launch.yaml"


@pytest.fixture(scope="module")
def scenario():
    sc = resolve(PLAYBOOK)
    return with_values(sc, central_values(sc))


def _market_with_mix(scenario, mix: dict[str, dict[str, float]]):
    segs = tuple(s.model_copy(update={"potential": mix[s.name]}) for s in scenario.market.segments)
    return scenario.market.model_copy(update={"segments": segs})


def _draw(market, agents=40_000, initial=None, seed=3):
    return Population.draw(CompiledMarket.from_spec(market), Streams(seed_key(seed), INIT_STREAMS), agents=agents,
                           horizon=12, initial=initial)


def test_default_bands_are_thirds_of_expected_value(scenario):
    pop = _draw(scenario.market)
    shares = np.bincount(pop.potential[:pop.n_base], minlength=3) / pop.n_base
    assert shares == pytest.approx([1 / 3] * 3, abs=1e-3)


def test_calibrated_bands_follow_each_segments_mix(scenario):
    names = scenario.market.segment_names
    rng = np.random.default_rng(0)
    mix = {}
    for n in names:
        p = rng.dirichlet([1, 1, 1])
        p = np.round(p, 6)
        p[2] = round(1 - p[0] - p[1], 6)
        mix[n] = dict(zip(("low", "medium", "high"), p.tolist()))
    market = _market_with_mix(scenario, mix)
    pop = _draw(market)
    seg = pop.segment0[:pop.n_base]
    band = pop.potential[:pop.n_base]
    for s, n in enumerate(names):
        k = int((seg == s).sum())
        if k < 200:
            continue
        got = np.bincount(band[seg == s], minlength=3) / k
        want = np.array([mix[n]["low"], mix[n]["medium"], mix[n]["high"]])
        se = np.sqrt(want * (1 - want) / k)
        assert np.all(np.abs(got - want) <= 5 * se + 1e-12), (n, got, want)


def test_campaign_by_potential_reaches_only_that_band(scenario):
    """A playbook campaign aimed at high potential contacts exactly the high-potential
    customers (bands of unequal sizes, so that another band would give another count)."""
    from simulator.specs.playbook import Campaign

    mix = {n: {"low": 0.6, "medium": 0.3, "high": 0.1} for n in scenario.market.segment_names}
    pb = scenario.playbook
    camp = Campaign.model_validate({"name": "perks_high", "kind": "reactivation", "start": pb.launch, "months": 3,
                                    "target": {"potential": ("high",)}, "lift": 0.3})
    sc = type(scenario)(**{**scenario.__dict__, "market": _market_with_mix(scenario, mix),
                           "playbook": pb.model_copy(update={"campaigns": (camp,)})})
    sim = replication(sc, agents=5_000, seed=2)
    seen = []

    def look(t):
        contacts = sim.records["design"][-1].get("campaign_contacts", 0.0)
        if contacts:
            high = int(((sim.pop.potential == 2) & sim.runs["design"].exists).sum())
            seen.append((contacts, high, int(sim.runs["design"].exists.sum())))

    sim.run(progress=look)
    assert len(seen) == 3
    for contacts, high, customers in seen:
        assert contacts == high  # no channel: every targeted customer is reached
        assert 0.05 < high / customers < 0.15


def test_initial_agents_start_from_given_states(scenario):
    market = scenario.market
    S = len(market.segments)
    k = 3_000
    rng = np.random.default_rng(1)
    seg = rng.integers(0, S, k)
    rec = rng.integers(0, 20, k)
    basket = rng.uniform(0.5, 2.0, k)
    pot = rng.integers(0, 3, k).astype(np.int8)
    pop = _draw(market, agents=10_000, initial=InitialAgents(segment=seg, recency=rec, basket_mult=basket, potential=pot))
    assert np.array_equal(pop.segment0[:k], seg)
    assert np.array_equal(pop.recency0[:k], rec)
    assert np.array_equal(pop.basket_mult[:k], basket)
    assert np.array_equal(pop.potential[:k], pot)
    # the purchase-rate multipliers not given are drawn from the given segment's gamma (mean 1)
    assert pop.rate_mult[:k].mean() == pytest.approx(1.0, abs=0.08)
    # agents after the given ones are drawn as usual: identical to a population without them
    plain = _draw(market, agents=10_000)
    assert np.array_equal(pop.segment0[k:], plain.segment0[k:])
    assert np.array_equal(pop.rate_mult[k:], plain.rate_mult[k:])


def test_initial_segment_drives_segment_dependent_draws(scenario):
    """The given segment, not the drawn one, sets the gamma shape of the rate multiplier."""
    segs = list(scenario.market.segments)
    segs[0] = segs[0].model_copy(update={"rate_shape": 1000.0})
    market = scenario.market.model_copy(update={"segments": tuple(segs)})
    k = 2_000
    pop = _draw(market, agents=4_000, initial=InitialAgents(segment=np.zeros(k, dtype=np.int64)))
    assert np.abs(pop.rate_mult[:k] - 1.0).max() < 0.15  # shape 1000: sd 0.03


@pytest.mark.parametrize("initial, words", [
    (InitialAgents(segment=np.zeros(20, dtype=np.int64)), "20 initial agents for a population of 10"),
    (InitialAgents(segment=np.zeros(5, dtype=np.int64), recency=np.zeros(4)), "initial recency has shape"),
    (InitialAgents(segment=np.full(5, 99)), "segment indices must be in"),
])
def test_initial_agents_are_checked(scenario, initial, words):
    with pytest.raises(ValueError, match=words):
        _draw(scenario.market, agents=10, initial=initial)


def test_draws_do_not_depend_on_the_threads(scenario):
    """Drawn on 3 threads (chunks of agents taken as threads come free), the population is the
    same arrays as on 1 thread: with given states, and with calibrated bands too."""
    from simulator.engine import kernels, population

    agents = 3 * kernels.MIN_AGENTS_PER_THREAD + 1_234  # chunks do not end at the base's end
    S = len(scenario.market.segments)
    rng = np.random.default_rng(5)
    k = 1_000
    initial = InitialAgents(segment=rng.integers(0, S, k), recency=rng.integers(0, 20, k),
                            rate_mult=rng.uniform(0.5, 2.0, k))
    mix = {n: {"low": 0.5, "medium": 0.3, "high": 0.2} for n in scenario.market.segment_names}
    for market in (scenario.market, _market_with_mix(scenario, mix)):
        compiled = CompiledMarket.from_spec(market)
        pops = [Population.draw(compiled, Streams(seed_key(4), INIT_STREAMS), agents=agents, horizon=12,
                                referral_slots=10_000, initial=initial, n_threads=n) for n in (1, 3)]
        assert population._threads_for(pops[0].capacity, 3) == 3
        for name, a in vars(pops[0]).items():
            if isinstance(a, np.ndarray):
                b = getattr(pops[1], name)
                assert a.dtype == b.dtype and np.array_equal(a, b), name
