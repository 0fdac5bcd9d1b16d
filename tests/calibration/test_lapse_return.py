"""The lapse-and-return likelihood from sufficient statistics and its Newton fit.

The month-by-month forward recursion the project used before (kept here as the reference) and
the gap-table form must give the same log-likelihood for every customer and type, up to the
terms no type changes; the fit must recover the parameters a synthetic log was drawn with, and
scanning the rho grid on a subset must land on the same estimate as scanning it on every row.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from numba import njit
from scipy.special import gammaln

from simulator.calibration.lapse_return import _type_independent, exposure, fit_lapse_return, type_loglik
from simulator.calibration.segmentation import monthly_panel
from simulator.calibration.synthetic import SyntheticProcess, synthetic_log


@njit(cache=True)
def _reference_loglik(counts, first, phi, ex, lam, lapse, rho, ll):
    """The forward recursion, month by month (with the y log(exposure) terms, without -log y!)."""
    n, T = counts.shape
    for i in range(n):
        f = first[i]
        y0 = counts[i, f] - 1
        for g in range(lam.shape[0]):
            lg = lam[g]
            mu = lg * phi[i] * ex[f]
            s = y0 * (math.log(lg) + math.log(phi[i]) + math.log(ex[f])) - mu if y0 > 0 else -mu
            a = 1.0
            bought = True
            for t in range(f + 1, T):
                y = counts[i, t]
                if y > 0:
                    if bought:
                        s += math.log(max(1.0 - lapse[g], 1e-300))
                    else:
                        s += math.log(max(a + (1.0 - a) * rho, 1e-300))
                    s += y * (math.log(lg) + math.log(ex[t])) - lg * ex[t]
                    a = 1.0
                    bought = True
                else:
                    pred = (1.0 - lapse[g]) if bought else a + (1.0 - a) * rho
                    ea = pred * math.exp(-lg * ex[t])
                    tot = ea + 1.0 - pred
                    s += math.log(max(tot, 1e-300))
                    a = ea / tot if tot > 0 else 0.0
                    bought = False
            ll[i, g] = s


@pytest.fixture(scope="module")
def panel():
    log = synthetic_log(3000, 26, process=SyntheticProcess(r=0.8, alpha=1.6, a=2.0, b=5.0, rho=0.05), seed=11)
    return monthly_panel(log)


def test_gap_table_equals_the_forward_recursion(panel):
    ex = exposure(panel, np.linspace(0.7, 1.4, 12))
    lam = np.array([0.01, 0.2, 0.9, 3.0, 12.0])
    lapse = np.array([0.02, 0.3, 0.5, 0.8, 0.999])
    ll = type_loglik(panel, ex, lam, lapse, 0.07)
    ref = np.empty_like(ll)
    _reference_loglik(panel.counts, panel.first_month, panel.first_month_fraction(), ex, lam, lapse, 0.07, ref)
    # the same up to terms no type changes: their sum over customers is _type_independent's
    # (which also holds -log y!)
    diff = ref - ll
    assert np.ptp(diff, axis=1).max() < 1e-9
    c = panel.counts.copy()
    c[np.arange(panel.n_customers), panel.first_month] -= 1
    assert diff[:, 0].sum() - float(gammaln(c + 1.0).sum()) == pytest.approx(_type_independent(panel, ex), abs=1e-6)


def test_fit_recovers_the_process_within_its_standard_errors(panel):
    """The fitted mean active rate and mean lapse probability are within 3 standard errors of
    the truth (delta method from the fit's own standard errors, here about 4% and 8%)."""
    m = fit_lapse_return(panel)
    se = dict(m.standard_errors)
    assert set(se) == {"r", "alpha", "a", "b"} and all(np.isfinite(v) and v > 0 for v in se.values())
    assert m.on_bound == ()
    true_rate, true_lapse = 0.8 / 1.6, 2.0 / 7.0
    rate_se = m.mean_rate * math.hypot(se["r"] / m.r, se["alpha"] / m.alpha)
    lapse_se = math.hypot(m.b * se["a"], m.a * se["b"]) / (m.a + m.b) ** 2
    assert abs(m.mean_rate - true_rate) < 3 * rate_se, (m.mean_rate, rate_se)
    assert abs(m.mean_lapse - true_lapse) < 3 * lapse_se, (m.mean_lapse, lapse_se)
    assert abs(m.rho - 0.05) < 0.015
    assert max(m.profile, key=lambda x: x[1])[0] == pytest.approx(m.rho)


def test_scanning_the_grid_on_a_subset_gives_the_same_fit(panel):
    full = fit_lapse_return(panel)
    sub = fit_lapse_return(panel, subset_rows=600)
    assert sub.rho == pytest.approx(full.rho, rel=1e-6)
    for k in ("r", "alpha", "a", "b"):
        assert getattr(sub, k) == pytest.approx(getattr(full, k), rel=1e-6)
    assert sub.log_likelihood == pytest.approx(full.log_likelihood, abs=1e-6)
    # only the best grid value, its neighbours and the refinement were fitted on every row
    assert len(sub.profile) < len(full.profile)


def test_a_parameter_on_its_bound_is_named():
    """Every customer buys every month: nobody lapses, the Beta's b runs to its upper bound."""
    months = pd.period_range("2021-01", periods=14, freq="M")
    rows = [(f"c{i}", p.start_time + pd.Timedelta(days=int(i % 27)), 10.0) for i in range(200) for p in months]
    m = fit_lapse_return(monthly_panel(pd.DataFrame(rows, columns=["customer_id", "date", "amount"])))
    assert "b" in m.on_bound or "a" in m.on_bound
    assert math.isnan(dict(m.standard_errors)[m.on_bound[0]])
