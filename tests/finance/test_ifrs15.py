"""IFRS 15 points liability: the KPMG handbook example and the roll-forward identity."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.finance import ifrs15


def test_kpmg_cumulative_catch_up_example():
    # KPMG IFRS 15 handbook: 9,000 allocated to points; 4,500 redeemed of 9,700 expected.
    assert ifrs15.recognised_to_date(9_000, 4_500, 9_700) == pytest.approx(4_175.26, abs=0.01)


def test_relative_standalone_selling_price_allocation():
    # a 100 sale earning 10 points worth 0.5 each after breakage: 100 * 5 / 105
    assert ifrs15.allocate(100.0, 10.0, 0.5) == pytest.approx(100 * 5 / 105)
    assert ifrs15.allocate(0.0, 0.0, 0.5) == 0.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e6), st.floats(0, 1e5), st.floats(0, 1e4), st.floats(0, 1e5)), min_size=1, max_size=24),
       st.floats(0.0, 0.9), st.floats(0.001, 1.0))
def test_roll_forward_closes(rows, breakage, vpp):
    sales, pts, bonus, red = (np.array(c) for c in zip(*rows))
    out = ifrs15.roll_forward(sales, pts, bonus, red, np.full(len(rows), vpp), breakage)
    closing = out["liability_opening"] + out["liability_deferred"] - out["liability_recognised"]
    assert np.allclose(closing, out["liability_closing"], rtol=1e-9, atol=1e-6)
    assert np.allclose(out["liability_opening"][1:], out["liability_closing"][:-1])
    assert (out["liability_closing"] >= -1e-6).all()
    assert np.allclose(out["liability_recognised_redemption"] + out["liability_recognised_breakage"], out["liability_recognised"])
