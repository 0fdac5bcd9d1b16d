"""IFRS 15 points liability and the IAS 37 provision for bonus points, on cases small enough to
work out by hand, and invariants that must hold for any flows.

Every case states its arithmetic; the tests compare exactly (to float rounding). A recognition
rule that ignores redemptions (say half of what is allocated each month) fails them: the
liability must equal the outstanding points times their allocated price when points are
redeemed and expire in the expected proportion, and must be zero once no point is left.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.finance import ifrs15


def flows(T, **given):
    """Monthly inputs of roll_forward: zeros except those given (lists of length T)."""
    keys = ("sales_with_points", "purchase_points", "bonus_points", "redeemed", "lapsed", "expired",
            "converted_out", "converted_in", "value_per_point", "cost_per_point", "expected_breakage")
    out = {k: np.zeros(T) for k in keys}
    for k, v in given.items():
        if k in keys:
            out[k] = np.asarray(v, dtype=float) if np.ndim(v) else np.full(T, float(v))
        else:
            out[k] = v
    return out


def closes(out):
    """The two roll-forward identities, month by month, and continuity between months."""
    liab = (out["liability_opening"] + out["liability_deferred"] + out["liability_converted_in"]
            - out["liability_converted_out"] - out["liability_recognised"])
    prov = out["provision_opening"] + out["provision_charged"] - out["provision_used"] + out["provision_remeasured"]
    return (np.allclose(liab, out["liability_closing"], atol=1e-9)
            and np.allclose(prov, out["provision_closing"], atol=1e-9)
            and np.allclose(out["liability_opening"][1:], out["liability_closing"][:-1])
            and np.allclose(out["provision_opening"][1:], out["provision_closing"][:-1])
            and np.allclose(out["liability_recognised_redemption"] + out["liability_recognised_breakage"],
                            out["liability_recognised"]))


def test_kpmg_cumulative_catch_up_example():
    # KPMG IFRS 15 handbook: 9,000 allocated to points; 4,500 redeemed of 9,700 expected.
    assert ifrs15.recognised_to_date(9_000, 4_500, 9_700) == pytest.approx(4_175.26, abs=0.01)


def test_relative_standalone_selling_price_allocation():
    # a 100 sale earning 10 points worth 0.5 each after breakage: 100 * 5 / 105
    assert ifrs15.allocate(100.0, 10.0, 0.5) == pytest.approx(100 * 5 / 105)
    assert ifrs15.allocate(0.0, 0.0, 0.5) == 0.0


# D: what a sale of 1,000 earning 100 points defers when a point is worth 0.10 and 20% of
# points are expected never to be redeemed: ssp = 0.10 * 0.8 = 0.08, 100 points = 8 at SSP,
# deferred = 1,000 * 8 / 1,008; the allocated price of a point is D / 100.
D = 1000 * 8 / 1008


def test_liability_follows_the_points_when_breakage_is_as_expected():
    """Month 1: the sale above. Month 2: 40 points redeemed, 10 expire (10 / 50 = 20%, as
    expected): expected redemptions 40 + 50 * 0.8 = 80, recognised to date D * 40 / 80 = D / 2,
    of which 40 * D / 100 on redemption and 10 * D / 100 breakage; the liability, D / 2, is
    the 50 points left times D / 100. Month 3: the other 40 redeemed and 10 expire: nothing is
    left, all of D is recognised, the liability is 0."""
    out = ifrs15.roll_forward(**flows(3, sales_with_points=[1000, 0, 0], purchase_points=[100, 0, 0],
                                      redeemed=[0, 40, 40], expired=[0, 10, 10], value_per_point=0.1,
                                      expected_breakage=0.2))
    assert out["liability_deferred"][0] == pytest.approx(D)
    assert out["liability_closing"] == pytest.approx([D, D / 2, 0.0])
    assert out["liability_recognised"] == pytest.approx([0.0, D / 2, D / 2])
    assert out["liability_recognised_redemption"][1] == pytest.approx(0.4 * D)
    assert out["liability_recognised_breakage"][1] == pytest.approx(0.1 * D)
    assert out["liability_closing"][1] == pytest.approx(50 * D / 100)  # outstanding x allocated price
    assert closes(out)


def test_a_different_breakage_is_caught_up_and_nothing_stays_once_the_points_are_gone():
    """Month 2: 30 redeemed, 20 expire (40%, not 20%): expected redemptions 30 + 50 * 0.8 =
    70, recognised D * 30 / 70; liability 4 D / 7. Month 3: the 50 left are redeemed: the
    liability is 0 (the estimate now knows every point's fate)."""
    out = ifrs15.roll_forward(**flows(3, sales_with_points=[1000, 0, 0], purchase_points=[100, 0, 0],
                                      redeemed=[0, 30, 50], expired=[0, 20, 0], value_per_point=0.1,
                                      expected_breakage=0.2))
    assert out["liability_closing"] == pytest.approx([D, 4 * D / 7, 0.0])
    assert out["liability_recognised"] == pytest.approx([0.0, 3 * D / 7, 4 * D / 7])
    assert closes(out)


def test_a_rule_that_ignores_redemptions_fails_these_checks():
    """The strawman of the issue: recognise half of what is left every month, whatever is
    redeemed. Its liability is not the outstanding points at their price, and does not reach
    zero when the points are gone."""
    left = D
    strawman = []
    for _ in range(3):
        left /= 2
        strawman.append(left)
    assert not np.allclose(strawman, [D, D / 2, 0.0])


def test_bonus_points_are_a_provision_not_deferred_revenue():
    """50 welcome points, cost 0.06 per point redeemed, 20% expected breakage. Month 1: charged
    50 * 0.06 * 0.8 = 2.40 (a marketing cost), no revenue deferred. Month 2: 20 redeemed use
    20 * 0.06 = 1.20; the 30 left are worth 30 * 0.048 = 1.44, so 0.24 more is provided. Month 3:
    the 30 expire, the provision is released (-1.44)."""
    out = ifrs15.roll_forward(**flows(3, bonus_points=[50, 0, 0], redeemed=[0, 20, 0], expired=[0, 0, 30],
                                      value_per_point=0.1, cost_per_point=0.06, expected_breakage=0.2))
    assert out["liability_deferred"] == pytest.approx([0, 0, 0])
    assert out["provision_charged"] == pytest.approx([2.4, 0, 0])
    assert out["provision_used"] == pytest.approx([0, 1.2, 0])
    assert out["provision_remeasured"] == pytest.approx([0, 0.24, -1.44])
    assert out["provision_closing"] == pytest.approx([2.4, 1.44, 0])
    assert closes(out)


def test_a_migration_moves_the_liability_with_the_points_at_one_value():
    """100 points held at the start, valued at the old program's SSP 0.05: liability 5.00.
    At the opening of month 1 they convert into 75 new points: 5.00 out, 5.00 in, nothing
    recognised or deferred. Month 2: the new program (breakage 10%) sees 67.5 of them
    redeemed and 7.5 expire (10%): the liability is 0."""
    out = ifrs15.roll_forward(**flows(2, converted_out=[100, 0], converted_in=[75, 0], redeemed=[0, 67.5],
                                      expired=[0, 7.5], value_per_point=0.08, expected_breakage=0.1),
                              opening_points=100, opening_ssp=0.05)
    assert out["liability_opening"][0] == pytest.approx(5.0)
    assert out["liability_converted_out"][0] == pytest.approx(5.0)
    assert out["liability_converted_in"][0] == pytest.approx(5.0)
    assert out["liability_recognised"][0] == pytest.approx(0.0)
    assert out["liability_closing"] == pytest.approx([5.0, 0.0])
    assert out["liability_recognised_redemption"][1] == pytest.approx(67.5 * 5 / 75)
    assert closes(out)


def test_unused_cash_back_vouchers_are_breakage_not_redemption():
    """A cagnotte: a 1,000 sale earns 1,000 points (0.01 each, 10% expected breakage: SSP
    0.009, deferred 1,000 * 9 / 1,009). Month 2 converts them into vouchers of which 90% are
    used: 900 points redeemed, 100 in vouchers never used. All is recognised; 900 / 1,000 of
    it on redemption, the rest as breakage."""
    d = 1000 * 9 / 1009
    out = ifrs15.roll_forward(**flows(2, sales_with_points=[1000, 0], purchase_points=[1000, 0], redeemed=[0, 900],
                                      lapsed=[0, 100], value_per_point=0.01, expected_breakage=0.1))
    assert out["liability_closing"] == pytest.approx([d, 0.0])
    assert out["liability_recognised_redemption"][1] == pytest.approx(0.9 * d)
    assert out["liability_recognised_breakage"][1] == pytest.approx(0.1 * d)


@st.composite
def histories(draw):
    """Monthly flows that never consume more points than are held, the last month consuming
    every point left; a migration in some month."""
    T = draw(st.integers(2, 18))
    held = draw(st.floats(0, 1e5))
    opening = held
    rows = []
    migrate = draw(st.integers(-1, T - 1))
    for t in range(T):
        out_, in_ = 0.0, 0.0
        if t == migrate and held > 0:
            out_, in_ = held, held * draw(st.floats(0.5, 2.0))
            held = in_
        p, b = draw(st.floats(0, 1e5)), draw(st.floats(0, 1e4))
        held += p + b
        if t == T - 1:
            r = held * draw(st.floats(0, 1))
            lapsed = (held - r) * draw(st.floats(0, 1))
            e = held - r - lapsed
        else:
            r, lapsed, e = (held * draw(st.floats(0, 0.33)) for _ in range(3))
        held -= r + lapsed + e
        rows.append((draw(st.floats(0, 1e6)), p, b, r, lapsed, e, out_, in_))
    cols = [np.array(c) for c in zip(*rows)]
    return opening, T, cols


@settings(max_examples=100, deadline=None)
@given(histories(), st.floats(0.0, 0.9), st.floats(0.001, 1.0), st.floats(0.0, 1.0))
def test_roll_forwards_close_and_end_at_zero(history, breakage, vpp, cpp):
    opening, T, (sales, p, b, r, lapsed, e, out_, in_) = history
    out = ifrs15.roll_forward(**flows(T, sales_with_points=sales, purchase_points=p, bonus_points=b, redeemed=r,
                                      lapsed=lapsed, expired=e, converted_out=out_, converted_in=in_,
                                      value_per_point=vpp, cost_per_point=cpp, expected_breakage=breakage),
                              opening_points=opening)
    assert closes(out)
    scale = 1.0 + float(np.abs(out["liability_deferred"]).sum()) + opening * vpp
    assert (out["liability_closing"] >= -1e-9 * scale).all()
    assert (out["provision_closing"] >= -1e-9 * scale).all()
    # every point redeemed or gone: nothing is owed any more
    assert abs(out["liability_closing"][-1]) <= 1e-9 * scale
    assert abs(out["provision_closing"][-1]) <= 1e-9 * scale
