"""Shared, session-scoped CDNOW fixtures for the calibration tests (each is computed once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.calibration import read_cdnow

CDNOW_PATH = Path(__file__).resolve().parents[2] / "data" / "cdnow" / "CDNOW_sample.txt"
MAIN_SPLIT = ("1997-09-30", "1998-06-30")
SECOND_SPLIT = ("1997-06-30", "1998-03-31")


@pytest.fixture(scope="session")
def cdnow_log():
    return read_cdnow(CDNOW_PATH)


@pytest.fixture(scope="session")
def cdnow_calibration(cdnow_log):
    from simulator.calibration.estimate import calibrate

    return calibrate(cdnow_log, name="cdnow", currency="EUR", gross_margin=0.3, calibration_end=MAIN_SPLIT[0],
                     source=CDNOW_PATH)


@pytest.fixture(scope="session")
def main_backtest(cdnow_log):
    from simulator.calibration.backtest import backtest

    return backtest(cdnow_log, *MAIN_SPLIT)


@pytest.fixture(scope="session")
def second_backtest(cdnow_log):
    from simulator.calibration.backtest import backtest

    return backtest(cdnow_log, *SECOND_SPLIT)


# ----------------------------------------------------------------------------- synthetic logs


def synthetic_log(rng: np.random.Generator, n: int, months: int, *, r: float, alpha: float, a: float, b: float,
                  rho: float, arrival_months: int, start: str = "2020-01", season: np.ndarray | None = None) -> pd.DataFrame:
    """Customers of the lapse-and-return model: arrival month uniform over ``arrival_months``, first
    purchase on a uniform day; while active, Poisson(lambda * month length / 30.44 * season) purchases
    a month on distinct days; after a month with purchases, lapse w.p. p; lapsed return w.p. rho."""
    periods = pd.period_range(start, periods=months, freq="M")
    days = np.array([p.days_in_month for p in periods])
    s = np.ones(12) if season is None else season
    expo = days / 30.4375 * np.array([s[p.month - 1] for p in periods])
    lam = rng.gamma(r, 1.0 / alpha, n)
    lapse = rng.beta(a, b, n)
    arrive = rng.integers(0, arrival_months, n)
    d0 = 1 + np.floor(rng.random(n) * days[arrive]).astype(np.int64)
    phi = (days[arrive] - d0 + 0.5) / days[arrive]
    counts = np.zeros((n, months), dtype=np.int64)
    active = np.ones(n, dtype=bool)
    bought = np.ones(n, dtype=bool)
    for t in range(months):
        first = arrive == t
        live = arrive < t
        lapse_now = live & active & bought & (rng.random(n) < lapse)
        back = live & ~active & (rng.random(n) < rho)
        active = (active & ~lapse_now) | back
        y = np.where(live & active, rng.poisson(lam * expo[t]), 0)
        y = np.where(first, np.minimum(rng.poisson(lam * phi * expo[t]), days[t] - d0), np.minimum(y, days[t]))
        counts[:, t] = y + first
        bought = np.where(live, y > 0, bought)
    # days: the first purchase on d0, further first-month purchases on later days, others anywhere
    cust, month = np.nonzero(counts)
    k = counts[cust, month]
    lo = np.where(arrive[cust] == month, d0[cust], 1)
    keys = rng.random((len(cust), 31))
    dd = np.arange(1, 32)[None, :]
    keys[(dd > days[month][:, None]) | (dd < lo[:, None])] = np.inf
    keys[(arrive[cust] == month)[:, None] & (dd == d0[cust][:, None])] = -1.0   # the first purchase day
    order = np.argsort(keys, axis=1)
    take = np.arange(31)[None, :] < k[:, None]
    rows = np.repeat(np.arange(len(cust)), k)
    day = (order[take] + 1)
    mon = month[rows]
    return pd.DataFrame({
        "customer_id": np.char.add("c", np.char.zfill(cust[rows].astype(str), 5)),
        "date": pd.to_datetime(dict(year=periods.year[mon], month=periods.month[mon], day=day)),
        "amount": np.round(rng.lognormal(3.0, 0.5, len(rows)), 2),
    })
