"""The event study on engine-generated member logs: it recovers the engine's own lift, the naive
comparison does not, and with no effect it finds none (within its 90% intervals)."""

import numpy as np
import pytest

from simulator.response.estimate import event_study, lapse_study, panel_from_log
from simulator.response.generate import member_log
from simulator.specs.playbook import Mechanisms

PLAYBOOK = "markets/usa/cagnotte_launch.yaml"
EFFECTS = {"enrolment_propensity": 0.05, "goal_gradient": 0.25, "rewarded_behaviour": 0.2, "transition_effect": 0.3}


def true_post(log, es, outcome):
    """The engine's true lift over months 0..11 since joining of the joiners the estimate is about
    (those with ``pre`` months of history before joining), weighted by month as the estimate is."""
    t = log.truth[log.truth["customer_id"].isin(es.joiner_ids) & log.truth["event"].between(0, 11)]
    tr = t.groupby("event")[f"{outcome}_lift"].mean().reindex(range(12)).to_numpy()
    return float(np.average(tr, weights=es.joiners[es.events >= 0]))


@pytest.fixture(scope="module")
def moderate():
    log = member_log(PLAYBOOK, response={**EFFECTS, "self_selection": 1.0}, agents=8000, seed=101)
    return log, panel_from_log(log.transactions)


@pytest.mark.parametrize("outcome", ["purchases", "spend"])
def test_interval_covers_the_true_lift_where_the_naive_comparison_is_far(moderate, outcome):
    """One seed of the slow coverage test below: the 90% interval holds the engine's true lift,
    and the naive member comparison is far outside it."""
    log, panel = moderate
    es = event_study(panel, outcome=outcome)
    truth = true_post(log, es, outcome)
    est, lo, hi = es.post()
    assert truth > 0 and lo <= truth <= hi, (truth, est, lo, hi)
    # selection: the naive member uplift is far outside the interval, several times the truth
    assert es.naive > hi and es.naive > 3 * truth
    assert abs(est - truth) < abs(es.naive - truth) / 5


def test_joiners_bought_more_before_joining(moderate):
    _, panel = moderate
    es = event_study(panel, outcome="purchases")
    assert es.pre_ratio[1] > 1.0  # the interval's lower end: heavier buyers join first


def test_no_effect_no_selection_gives_zero_within_the_interval():
    off = Mechanisms(**{k: False for k in Mechanisms.model_fields})
    log = member_log(PLAYBOOK, response={**EFFECTS, "self_selection": 0.0}, agents=8000, seed=1, mechanisms=off)
    es = event_study(panel_from_log(log.transactions), outcome="purchases")
    assert (log.truth["purchases_lift"] == 0).all()
    est, lo, hi = es.post()
    assert lo <= 0 <= hi, (est, lo, hi)
    assert es.naive > hi  # buyers join at the till: members look better with no effect at all


@pytest.mark.xfail(strict=True, reason="known limit (docs/model.md): with strong self-selection on the rate "
                                       "(self_selection 2) and no effect, the estimate stays ~+0.08 purchase a month: "
                                       "not the base months' selection (a base before the launch leaves it); half "
                                       "of it is joining selecting on the segment (m^2 normalised within segments "
                                       "of different rate_shape), the rest joiners' rates far above the controls'")
def test_strong_self_selection_without_effect_gives_zero():
    only_selection = Mechanisms(**{k: k == "self_selection" for k in Mechanisms.model_fields})
    log = member_log(PLAYBOOK, response={**EFFECTS, "self_selection": 2.0}, agents=8000, seed=1,
                     mechanisms=only_selection)
    est, lo, hi = event_study(panel_from_log(log.transactions), outcome="purchases").post()
    assert lo <= 0 <= hi


def test_same_seed_same_intervals(moderate):
    _, panel = moderate
    a, b = event_study(panel, seed=4), event_study(panel, seed=4)
    assert np.array_equal(a.lo, b.lo) and np.array_equal(a.hi, b.hi)


def test_jackknife_and_bootstrap_intervals_agree(moderate):
    """Two resampling schemes over customers give intervals of the same width: a standard error
    from 50 jackknife groups has a relative sampling error of about 1/sqrt(2 x 49) = 0.10, the
    ratio of two such about 0.12 at most: three of those, 0.35 (measured over 60 seeds: the mean
    widths agree within 1%)."""
    _, panel = moderate
    j = event_study(panel, outcome="purchases").post()
    b = event_study(panel, outcome="purchases", variance="bootstrap", boot=499).post()
    assert abs((j[2] - j[1]) / (b[2] - b[1]) - 1) < 0.35, (j, b)


@pytest.mark.slow
def test_interval_covers_the_truth_in_90_percent_of_seeds():
    """160 seeds: the 90% intervals of the mean lift over months 0..11 must hold the engine's true
    lift in at least 90% of them (measured: 145/160 for purchases, 149/160 for spend)."""
    hits, n = {"purchases": 0, "spend": 0}, 0
    for seed in range(100, 260):
        log = member_log(PLAYBOOK, response={**EFFECTS, "self_selection": 1.0}, agents=8000, seed=seed)
        panel = panel_from_log(log.transactions)
        n += 1
        for outcome in hits:
            es = event_study(panel, outcome=outcome)
            _, lo, hi = es.post()
            hits[outcome] += lo <= true_post(log, es, outcome) <= hi
    assert min(hits.values()) / n >= 0.9, hits


def lapse_truth(log, es):
    t = log.truth[log.truth["customer_id"].isin(es.joiner_ids) & log.truth["event"].between(0, 11)]
    tr = t.groupby("event")["lapses_lift"].mean().reindex(range(12)).to_numpy()
    w = es.joiners[es.events >= 0]
    ok = w > 0
    return float(np.average(tr[ok], weights=w[ok]))


def test_lapse_reduction_recovered(moderate):
    """transition_effect 0.3 makes members lapse less; the matched comparison's interval holds
    the engine's true change in lapses of the same joiners, and excludes zero."""
    log, panel = moderate
    es = lapse_study(panel)
    est, lo, hi = es.post()
    truth = lapse_truth(log, es)
    assert truth < 0 and lo <= truth <= hi and hi < 0, (truth, est, lo, hi)
    assert es.counterfactual() > 0


def test_no_lapse_change_without_effects():
    only_selection = Mechanisms(**{k: k == "self_selection" for k in Mechanisms.model_fields})
    log = member_log(PLAYBOOK, response={**EFFECTS, "self_selection": 1.0}, agents=8000, seed=2,
                     mechanisms=only_selection)
    est, lo, hi = lapse_study(panel_from_log(log.transactions)).post()
    assert lo <= 0 <= hi, (est, lo, hi)


@pytest.mark.slow
def test_lapse_interval_covers_the_truth_in_90_percent_of_seeds():
    """Measured: 28 of 30 seeds."""
    hits, seeds = 0, range(100, 130)
    for seed in seeds:
        log = member_log(PLAYBOOK, response={**EFFECTS, "self_selection": 1.0}, agents=8000, seed=seed)
        es = lapse_study(panel_from_log(log.transactions))
        _, lo, hi = es.post()
        hits += lo <= lapse_truth(log, es) <= hi
    assert hits / len(seeds) >= 0.9, hits
