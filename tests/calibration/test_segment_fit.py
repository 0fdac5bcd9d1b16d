"""Pieces both segmentations share."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from simulator.calibration.segment_fit import row_argmax


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 12), st.integers(1, 9), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_row_argmax_is_scipys(rows, cols, density, seed):
    """The two-reduction row argmax gives scipy's column on any non-negative matrix, ties (small
    integer entries) and empty rows included."""
    from scipy import sparse as sp
    rng = np.random.default_rng(seed)
    m = sp.random(rows, cols, density=density, format="csr", random_state=rng,
                  data_rvs=lambda k: rng.integers(1, 4, size=k).astype(float))
    assert np.array_equal(row_argmax(m), np.asarray(m.argmax(axis=1)).ravel().astype(np.int64))
