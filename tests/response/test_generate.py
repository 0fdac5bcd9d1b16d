"""The member-log generator: the engine's own purchases, members and balances, and the truth."""

import numpy as np
import pytest

from simulator.response.generate import member_log
from simulator.specs.playbook import Mechanisms

PLAYBOOK = "markets/usa/cagnotte_launch.yaml"
RESPONSE = {"self_selection": 2.0, "enrolment_propensity": 0.05, "goal_gradient": 0.25,
            "rewarded_behaviour": 0.2, "transition_effect": 0.3}


@pytest.fixture(scope="module")
def log():
    return member_log(PLAYBOOK, response=RESPONSE, agents=2000, seed=3, months=30)


def test_members_join_after_launch_and_stay(log):
    tx = log.transactions
    first_member = tx[tx["member"] == 1].groupby("customer_id")["date"].min()
    launch = np.datetime64(f"{log.start.year + (log.start.month - 1 + log.launch_month) // 12}-"
                           f"{(log.start.month - 1 + log.launch_month) % 12 + 1:02d}-01")
    assert (first_member.to_numpy() >= launch).all()
    # an opt-in free program: once a member, every later purchase is a member's
    after = tx.merge(first_member.rename("joined"), on="customer_id")
    assert (after.loc[after["date"] >= after["joined"], "member"] == 1).all()
    assert after.loc[after["member"] == 1, "balance"].notna().all()
    assert tx.loc[tx["member"] == 0, "balance"].isna().all()


def test_response_values_are_the_chosen_ones(log):
    for k, v in RESPONSE.items():
        assert log.response[k] == v


def test_truth_is_zero_before_joining_and_positive_after(log):
    before = log.truth[log.truth["event"] < 0]
    assert (before["purchases_lift"] == 0).all() and (before["spend_lift"] == 0).all()
    assert log.true_lift("purchases", range(1, 12)).mean() > 0.05


def test_all_mechanisms_off_change_no_purchase():
    off = Mechanisms(**{k: False for k in Mechanisms.model_fields})
    log = member_log(PLAYBOOK, response=RESPONSE, agents=1500, seed=4, months=24, mechanisms=off)
    assert (log.truth["purchases_lift"] == 0).all() and (log.truth["spend_lift"] == 0).all()
    assert (log.transactions["member"] == 1).any()


def test_same_seed_same_log():
    a = member_log(PLAYBOOK, response=RESPONSE, agents=800, seed=5, months=20)
    b = member_log(PLAYBOOK, response=RESPONSE, agents=800, seed=5, months=20)
    assert a.transactions.equals(b.transactions)


def test_unknown_response_field_is_refused():
    with pytest.raises(ValueError, match="unknown response parameter"):
        member_log(PLAYBOOK, response={"goal_gradiant": 0.2}, agents=100, seed=1)
