r"""Synthetic transaction logs drawn from the lapse-and-return model, with known parameters.

Two uses: proving the estimator (a fit of :func:`~simulator.calibration.lapse_return.fit_lapse_return`
on a log drawn here must recover the parameters it was drawn with) and measuring calibration at
retail scale (``benchmarks/calibration_speed.py`` writes logs of 10 and 100 million rows).

The process is the model's own (see :mod:`simulator.calibration.states`), in calendar months:

* customer *i* arrives in a month uniform over the first ``arrival_months`` and makes its first
  purchase on a uniform day ``d0`` of that month; its rate while active is
  :math:`\lambda_i \sim \text{Gamma}(r, \alpha)` and its lapse probability
  :math:`p_i \sim \text{Beta}(a, b)`;
* in its first month it buys again :math:`\text{Poisson}(\lambda_i \varphi_i \ell_t)` times on
  later days, :math:`\varphi_i = (D - d_0 + 0.5)/D` the share of the month left;
* after a month with purchases it lapses with probability :math:`p_i`; a lapsed customer returns
  with probability :math:`\rho` at the start of each month; while active it buys
  :math:`\text{Poisson}(\lambda_i \ell_t)` times, :math:`\ell_t` the month's length over
  30.4375 days times its seasonal multiplier;
* purchases of a month fall on distinct days (a count above the month's free days is capped);
  amounts are lognormal, a customer's mean basket lognormal around the population's, with
  optionally a trend (``basket_drift``: log spend per transaction grows by it each month);
* optionally (``stores``) a store column: each customer's home store is drawn from the stores'
  shares, and each purchase is made there, except a share ``away_share`` made in one of the
  other stores (uniform). These draws come from their own stream, so the rest of the log is the
  one drawn without stores; the home stores are returned in ``frame.attrs["home_store"]``.

Everything is vectorised over customers, month by month, so ten million rows take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["SyntheticProcess", "synthetic_log"]

DAYS_PER_MONTH = 30.4375


@dataclass(frozen=True)
class SyntheticProcess:
    """Parameters of the lapse-and-return process a synthetic log is drawn from."""

    r: float = 0.6
    alpha: float = 2.0
    a: float = 2.0
    b: float = 4.0
    rho: float = 0.03
    basket_mean: float = 30.0
    basket_sigma_within: float = 0.5
    basket_sigma_between: float = 0.4
    #: Trend of log spend per transaction per month from the log's first month (0.01: +1% a month).
    basket_drift: float = 0.0


def _distinct_days(rng: np.random.Generator, cell: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One day per row, uniform on ``lo..hi``, distinct among rows of the same ``cell`` (rows of one
    cell share ``lo``/``hi`` and number at most ``hi - lo + 1``): draw, then redraw the collisions."""
    day = lo + np.floor(rng.random(len(cell)) * (hi - lo + 1)).astype(np.int64)
    todo = np.arange(len(cell))
    while len(todo):
        key = cell[todo] * 64 + day[todo]
        order = np.argsort(key, kind="stable")
        dup = np.zeros(len(todo), dtype=bool)
        dup[order[1:]] = key[order[1:]] == key[order[:-1]]
        todo = todo[dup]
        day[todo] = lo[todo] + np.floor(rng.random(len(todo)) * (hi[todo] - lo[todo] + 1)).astype(np.int64)
    return day


def synthetic_log(n: int, months: int, *, process: SyntheticProcess = SyntheticProcess(), arrival_months: int | None = None,
                  start: str = "2020-01", season: np.ndarray | None = None, seed: int = 0,
                  id_prefix: str = "c", stores: dict[str, float] | None = None, away_share: float = 0.0) -> pd.DataFrame:
    """A transaction log of ``n`` customers over ``months`` calendar months from ``start``.

    Parameters
    ----------
    n, months : int
    process : SyntheticProcess
        The parameters drawn from.
    arrival_months : int, optional
        Customers arrive uniformly over the first ``arrival_months`` (default: every month).
    season : array of 12, optional
        Calendar-month multipliers of the rate (default flat).
    seed : int
        The same seed gives the same log.
    stores : dict, optional
        Store name -> share of customers whose home store it is (summing to 1): adds a ``store``
        column (see the module docstring).
    away_share : float
        Share of purchases made in another store than the customer's home store.

    Returns
    -------
    pandas.DataFrame
        ``customer_id`` (str), ``date`` (datetime64), ``amount`` (float, 2 decimals), and
        ``store`` with ``stores``, sorted by date then customer. With ``stores``,
        ``attrs["home_store"]`` is each customer's home store (a Series indexed by customer id).
    """
    p = process
    rng = np.random.default_rng(seed)
    arrival_months = months if arrival_months is None else int(arrival_months)
    periods = pd.period_range(start, periods=months, freq="M")
    days = np.array([q.days_in_month for q in periods], dtype=np.int64)
    s = np.ones(12) if season is None else np.asarray(season, dtype=np.float64)
    expo = days / DAYS_PER_MONTH * np.array([s[q.month - 1] for q in periods])
    lam = rng.gamma(p.r, 1.0 / p.alpha, n)
    lapse = rng.beta(p.a, p.b, n)
    arrive = rng.integers(0, arrival_months, n)
    d0 = 1 + np.floor(rng.random(n) * days[arrive]).astype(np.int64)
    phi = (days[arrive] - d0 + 0.5) / days[arrive]
    counts = np.zeros((n, months), dtype=np.int32)
    active = np.ones(n, dtype=bool)
    bought = np.ones(n, dtype=bool)
    for t in range(months):
        first = arrive == t
        live = arrive < t
        lapse_now = live & active & bought & (rng.random(n) < lapse)
        back = live & ~active & (rng.random(n) < p.rho)
        active = (active & ~lapse_now) | back
        y = np.where(live & active, rng.poisson(lam * expo[t]), 0)
        y = np.where(first, np.minimum(rng.poisson(lam * phi * expo[t]), days[t] - d0), np.minimum(y, days[t]))
        counts[:, t] = y + first
        bought = np.where(live, y > 0, bought)
    cust, month = np.nonzero(counts)
    k = counts[cust, month].astype(np.int64)
    del counts
    cell = np.repeat(np.arange(len(cust), dtype=np.int64), k)
    is_first = np.zeros(len(cell), dtype=bool)
    starts = np.concatenate([[0], np.cumsum(k)[:-1]])
    firsts = arrive[cust] == month
    is_first[starts[firsts]] = True
    c, m = cust[cell], month[cell]
    in_first_month = arrive[c] == m
    lo = np.where(in_first_month, d0[c] + 1, 1)
    hi = days[m]
    day = np.empty(len(cell), dtype=np.int64)
    rest = ~is_first
    day[is_first] = d0[c[is_first]]
    day[rest] = _distinct_days(rng, cell[rest], lo[rest], hi[rest])
    mean = np.log(p.basket_mean) - 0.5 * (p.basket_sigma_within ** 2 + p.basket_sigma_between ** 2)
    cust_mu = mean + p.basket_sigma_between * rng.standard_normal(n)
    log_amount = cust_mu[c] + p.basket_sigma_within * rng.standard_normal(len(c))
    if p.basket_drift:
        log_amount = log_amount + p.basket_drift * m
    amount = np.round(np.exp(log_amount), 2)
    month_start = periods.start_time.to_numpy().astype("datetime64[D]")
    date = month_start[m] + (day - 1).astype("timedelta64[D]")
    width = max(len(str(n - 1)), 1)
    ids = np.char.add(id_prefix, np.char.zfill(np.arange(n).astype(str), width))
    frame = pd.DataFrame({"customer_id": ids[c], "date": date.astype("datetime64[ns]"), "amount": np.maximum(amount, 0.01)})
    home_store = None
    if stores:
        names = np.array(list(stores), dtype=object)
        share = np.array(list(stores.values()), dtype=np.float64)
        if np.any(share < 0) or abs(share.sum() - 1.0) > 1e-6:
            raise ValueError(f"store shares must be >= 0 and sum to 1, got {share.sum():g}")
        if not 0.0 <= away_share < 1.0:
            raise ValueError(f"away_share must be in [0, 1), got {away_share!r}")
        srng = np.random.default_rng([seed, 18])  # a stream of its own: the log above is unchanged
        K = len(names)
        home = np.minimum(np.searchsorted(np.cumsum(share), srng.random(n), side="right"), K - 1)
        away = (srng.random(len(c)) < away_share) & (K > 1)
        step = 1 + np.floor(srng.random(len(c)) * max(K - 1, 1)).astype(np.int64)
        frame["store"] = names[np.where(away, (home[c] + step) % K, home[c])]
        home_store = pd.Series(names[home], index=pd.Index(ids, name="customer_id"), name="home_store")
    frame = frame.sort_values(["date", "customer_id"], kind="stable", ignore_index=True)
    if home_store is not None:
        frame.attrs["home_store"] = home_store
    return frame
