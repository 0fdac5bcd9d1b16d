"""Customers' monthly history, their RFM features at a date, and segmentations.

A calibration works on calendar months. :func:`monthly_panel` turns a cleaned
:class:`~simulator.calibration.transactions.TransactionLog` into a :class:`MonthlyPanel`: one
row per customer, one column per calendar month, holding the month's transactions (customer-days)
and spend. Everything else -- RFM features, segment assignments, the potential score, the
estimation of a market -- reads the panel.

**RFM features at the end of a month** (:func:`rfm_features`), for the customers known by then
(first purchase on or before that month):

``recency_months``
    whole calendar months since the month of the last purchase (0: bought this month);
``frequency``
    transactions so far (the first one included);
``frequency_12m``
    transactions in the last 12 months (this month included);
``monetary``
    mean spend per transaction so far;
``spend_12m``
    spend in the last 12 months;
``tenure_months``
    whole calendar months since the month of the first purchase (0: first bought this month).

**Segmentations.** Two kinds:

* :class:`RFMStates` (the default of :func:`~simulator.calibration.estimate.calibrate`): states
  *frequency tier x recency in months* (``0 .. recency_months``; the last bucket holds everyone
  silent that long or longer). The tiers are the latent purchase-rate classes of the fitted
  behavioural model (see :mod:`~simulator.calibration.states`), so a customer's tier is
  estimated from its whole history and its recency ages it month by month: the states let
  customers age and drop out.
* :class:`RuleSet`: a named, ordered list of segments with conditions on the RFM features,
  read from YAML (:func:`load_ruleset`); the first segment whose conditions a customer meets is
  its segment. Example: ``rulesets/value_engagement.yaml``.

A rule set file::

    name: value_engagement
    description: value x engagement, 10 segments
    segments:
      - name: ambassadors
        description: bought in the last 2 months, 6+ purchases, high basket
        when:
          recency_months: {max: 2}
          frequency: {min: 6}
          monetary: {min: 40}
      - ...
      - name: dormant
        lapsed: true
        when: {}          # the last segment has no condition: it catches everyone else

Conditions are inclusive bounds ``{min: a, max: b}`` (either may be left out) on the features
above; several features combine with AND. The last segment must have no condition, so that every
customer has a segment. Errors name the file, line and field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from pydantic import Field

from simulator.calibration.transactions import TransactionLog
from simulator.specs.base import Name, Spec, unique_names, validate_document
from simulator.specs.yamlio import read_yaml

__all__ = [
    "FEATURES",
    "Bounds",
    "MonthlyPanel",
    "RFMStates",
    "RuleSegment",
    "RuleSet",
    "assign_rules",
    "calibration_month_end",
    "load_ruleset",
    "monthly_panel",
    "rfm_features",
]

#: RFM features a rule can test, with what each one is.
FEATURES: dict[str, str] = {
    "recency_months": "whole calendar months since the month of the last purchase (0: bought this month)",
    "frequency": "transactions so far, the first one included",
    "frequency_12m": "transactions in the last 12 months, this month included",
    "monetary": "mean spend per transaction so far",
    "spend_12m": "spend in the last 12 months",
    "tenure_months": "whole calendar months since the month of the first purchase",
}

#: Mean days per calendar month (365.25 / 12): rates are per month of this length.
DAYS_PER_MONTH = 30.4375


# --------------------------------------------------------------------------------------
# the monthly panel
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MonthlyPanel:
    """Each customer's transactions and spend per calendar month.

    Attributes
    ----------
    customers : numpy.ndarray
        Customer ids (strings), sorted; row ``i`` of every array is customer ``customers[i]``.
    months : pandas.PeriodIndex
        Consecutive calendar months, from the month of the first transaction in the log to the
        month of ``end``.
    counts : numpy.ndarray
        ``[customers, months]`` int32: transactions (customer-days) in the month.
    spend : numpy.ndarray
        ``[customers, months]`` float64: spend in the month.
    first_date : numpy.ndarray
        ``datetime64[D]`` day of each customer's first transaction.
    first_month : numpy.ndarray
        int64 index (into ``months``) of the month of the first transaction.
    end : pandas.Timestamp
        Last day the panel covers (transactions after it are left out).
    visits : pandas.DataFrame, optional
        One row per customer-day (``row``: the customer's index, ``date``, ``amount``), sorted by
        customer then day, when asked for (:func:`monthly_panel` with ``visits=True``); not carried
        by :meth:`restrict` and :meth:`truncate`.
    """

    customers: np.ndarray
    months: pd.PeriodIndex
    counts: np.ndarray
    spend: np.ndarray
    first_date: np.ndarray
    first_month: np.ndarray
    end: pd.Timestamp
    visits: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def n_customers(self) -> int:
        return int(self.counts.shape[0])

    @property
    def n_months(self) -> int:
        return int(self.counts.shape[1])

    def month_index(self, when: str | pd.Timestamp | pd.Period) -> int:
        """Index of the calendar month containing ``when``."""
        period = when if isinstance(when, pd.Period) else pd.Timestamp(when).to_period("M")
        return int((period - self.months[0]).n)

    def known(self, t: int) -> np.ndarray:
        """Customers whose first purchase is in month ``t`` or earlier (bool mask)."""
        return self.first_month <= t

    def days_in_month(self) -> np.ndarray:
        """Length of each month in days (float)."""
        return np.array([p.days_in_month for p in self.months], dtype=np.float64)

    def first_month_fraction(self) -> np.ndarray:
        """Share of the first month left after the first purchase day (the first purchase's day
        counts half): the exposure, in months of that length, during which a new customer can
        buy again in its first month."""
        day = pd.DatetimeIndex(self.first_date).day.to_numpy()
        dim = pd.DatetimeIndex(self.first_date).days_in_month.to_numpy()
        return (dim - day + 0.5) / dim

    def restrict(self, rows: np.ndarray) -> "MonthlyPanel":
        """The panel of a subset of customers (boolean mask or indices)."""
        return MonthlyPanel(self.customers[rows], self.months, self.counts[rows], self.spend[rows],
                            self.first_date[rows], self.first_month[rows], self.end)

    def truncate(self, t: int) -> "MonthlyPanel":
        """The panel up to and including month ``t``, customers known by then."""
        keep = self.first_month <= t
        end = self.months[t].end_time.normalize()
        return MonthlyPanel(self.customers[keep], self.months[: t + 1], self.counts[keep, : t + 1],
                            self.spend[keep, : t + 1], self.first_date[keep], self.first_month[keep], end)


def calibration_month_end(log: TransactionLog | pd.DataFrame, calibration_end: str | pd.Timestamp | None) -> pd.Timestamp:
    """Last day of the last complete calendar month on or before ``calibration_end``.

    With ``calibration_end=None``: the last complete month of the log (its last month if the
    log's last transaction is on the month's last day, else the month before).
    """
    frame = log.transactions if isinstance(log, TransactionLog) else log
    if calibration_end is None:
        last = pd.Timestamp(frame["date"].max()).normalize()
        end = last if last.is_month_end else (last.to_period("M") - 1).end_time.normalize()
    else:
        day = pd.Timestamp(calibration_end).normalize()
        end = day if day.is_month_end else (day.to_period("M") - 1).end_time.normalize()
    return end


#: Customers per block when the monthly panel is built (bounds its per-row temporaries).
PANEL_BLOCK = 1_000_000


def monthly_panel(log: TransactionLog | pd.DataFrame, end: str | pd.Timestamp | None = None, *,
                  visits: bool = False) -> MonthlyPanel:
    """Monthly transactions and spend of every customer up to ``end`` (inclusive).

    Parameters
    ----------
    log : TransactionLog or pandas.DataFrame
        A cleaned log (one row per customer-day; a frame with ``customer_id``, ``date`` and
        ``amount`` is merged per customer-day here).
    end : date-like, optional
        Last day covered; default the log's last day. Customers first seen after it are left
        out.
    visits : bool
        Keep the customer-day table (:attr:`MonthlyPanel.visits`).

    Raises
    ------
    ValueError
        No transaction on or before ``end``.
    """
    frame = log.transactions if isinstance(log, TransactionLog) else log
    days = pd.to_datetime(frame["date"]).to_numpy().astype("datetime64[D]")
    stop = pd.Timestamp(days.max()) if end is None else pd.Timestamp(end).normalize()
    mask = days <= np.datetime64(stop.date(), "D")
    if not mask.any():
        raise ValueError(f"no transaction on or before {stop.date()}")
    ids = frame["customer_id"]
    codes, uniques = pd.factorize(ids[mask] if not mask.all() else ids, sort=False)
    names = np.asarray(uniques).astype(str)
    order = np.argsort(names, kind="stable")
    customers = names[order]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    row = rank[codes]
    del codes, rank
    day = days[mask] if not mask.all() else days
    del days
    amount = frame["amount"].to_numpy(dtype=np.float64)
    amount = amount[mask] if not mask.all() else amount
    del mask
    # one transaction per customer-day (a log read with merge_same_day=False is merged here)
    d0 = day.min()
    span = int((day.max() - d0).astype(np.int64)) + 1
    key = row * span
    key += (day - d0).astype(np.int64)
    del row, day
    if len(key) > 1 and bool(np.all(key[1:] >= key[:-1])):
        # already in customer-day order (a cleaned log usually is): runs of equal keys, no sort
        new = np.r_[True, key[1:] != key[:-1]]
        if not new.all():
            ukey = key[new]
            amount = np.add.reduceat(amount, np.flatnonzero(new))
        else:
            ukey = key
        del new
    else:
        ukey, pos = np.unique(key, return_inverse=True)
        amount = np.bincount(pos, weights=amount, minlength=len(ukey))
        del pos
    del key
    row = ukey // span
    day = d0 + (ukey % span).astype("timedelta64[D]")
    del ukey
    month = day.astype("datetime64[M]")
    first_m = month.min()
    months = pd.period_range(pd.Timestamp(first_m).to_period("M"), stop.to_period("M"), freq="M")
    col = (month - first_m).astype(np.int32)
    del month
    n, T = len(customers), len(months)
    # counts and spend of the customer x month grid, built over blocks of whole customers (rows
    # are in customer order): a cell's transactions all fall in one block and are added in row
    # order, as one bincount over the whole grid would add them, without per-row arrays as
    # long as the log
    counts = np.zeros(n * T, dtype=np.int32)  # a month holds < 2^31 purchases
    spend = np.zeros(n * T)
    bounds = np.searchsorted(row, np.arange(0, n + PANEL_BLOCK, PANEL_BLOCK))
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if hi == lo:
            continue
        base = int(row[lo]) * T
        local = (row[lo:hi] * T - base) + col[lo:hi]
        width = int(row[hi - 1]) * T + T - base
        counts[base: base + width] += np.bincount(local, minlength=width).astype(np.int32)
        spend[base: base + width] += np.bincount(local, weights=amount[lo:hi], minlength=width)
        del local
    counts, spend = counts.reshape(n, T), spend.reshape(n, T)
    # keys are sorted by customer then day: each customer's first row is its first day
    starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
    first_date = day[starts]
    first_month = col[starts].astype(np.int64)  # every customer has a row, rows in customer order
    table = None
    if visits:
        # the panel's own arrays, not copies (1.6 GB at 100 million transactions)
        table = pd.DataFrame({"row": row, "date": day.astype("datetime64[ns]"), "amount": amount}, copy=False)
    return MonthlyPanel(customers.astype(str), months, counts, spend, first_date, first_month, stop, table)


# --------------------------------------------------------------------------------------
# RFM features
# --------------------------------------------------------------------------------------


def _last_purchase_month(counts: np.ndarray, t: int) -> np.ndarray:
    """Index of each customer's last month with a purchase in ``0..t`` (-1: none)."""
    bought = counts[:, : t + 1] > 0
    any_ = bought.any(axis=1)
    last = t - np.argmax(bought[:, ::-1], axis=1)
    return np.where(any_, last, -1)


def rfm_arrays(panel: MonthlyPanel, t: int) -> dict[str, np.ndarray]:
    """RFM features at the end of month ``t`` for every customer of the panel (customers not
    yet known get NaN / -1; see :func:`rfm_features`)."""
    counts, spend = panel.counts, panel.spend
    freq = counts[:, : t + 1].sum(axis=1)
    total = spend[:, : t + 1].sum(axis=1)
    lo = max(0, t - 11)
    last = _last_purchase_month(counts, t)
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(freq > 0, total / np.maximum(freq, 1), np.nan)
    return {
        "recency_months": np.where(last >= 0, t - last, -1).astype(np.int64),
        "frequency": freq.astype(np.int64),
        "frequency_12m": counts[:, lo: t + 1].sum(axis=1).astype(np.int64),
        "monetary": monetary,
        "spend_12m": spend[:, lo: t + 1].sum(axis=1),
        "tenure_months": (t - panel.first_month).astype(np.int64),
    }


def rfm_features(log_or_panel: TransactionLog | pd.DataFrame | MonthlyPanel, at: str | pd.Timestamp) -> pd.DataFrame:
    """RFM features of the customers known at the end of the month containing ``at``.

    Parameters
    ----------
    log_or_panel : TransactionLog, DataFrame or MonthlyPanel
    at : date-like
        Any day of the month; features are at the end of that month (transactions of the whole
        month count).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id``, one column per :data:`FEATURES` entry.
    """
    month_end = pd.Timestamp(at).to_period("M").end_time.normalize()
    panel = log_or_panel if isinstance(log_or_panel, MonthlyPanel) else monthly_panel(log_or_panel, month_end)
    t = panel.month_index(month_end)
    if not 0 <= t < panel.n_months:
        raise ValueError(f"{month_end.date()} is outside the panel's months {panel.months[0]}..{panel.months[-1]}")
    known = panel.known(t)
    feats = rfm_arrays(panel, t)
    out = pd.DataFrame({k: v[known] for k, v in feats.items()}, index=pd.Index(panel.customers[known], name="customer_id"))
    return out


# --------------------------------------------------------------------------------------
# the default segmentation: frequency tier x recency
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RFMStates:
    """Default segmentation: frequency tier x months since the last purchase.

    Attributes
    ----------
    recency_months : int
        Recency buckets ``0, 1, ..., recency_months``; the last one holds every customer silent
        that many months or more ("dormant").
    rate_tiers : int
        Frequency tiers: nodes of the fitted distribution of purchase rates (light to heavy).
    lapse_tiers : int
        Within each frequency tier, classes of the propensity to lapse after a purchase month
        (1: none; 2: "steady" and "fickle").
    lapsed_from : int
        Recency (months) from which a state is flagged ``lapsed`` in the market (the program's
        transition effect then cuts members' moves into it).
    """

    recency_months: int = 12
    rate_tiers: int = 4
    lapse_tiers: int = 2
    lapsed_from: int = 6

    def __post_init__(self) -> None:
        if not 1 <= self.recency_months <= 60:
            raise ValueError(f"recency_months must be in 1..60, not {self.recency_months}")
        if not 1 <= self.rate_tiers <= 8:
            raise ValueError(f"rate_tiers must be in 1..8, not {self.rate_tiers}")
        if not 1 <= self.lapse_tiers <= 4:
            raise ValueError(f"lapse_tiers must be in 1..4, not {self.lapse_tiers}")
        if not 1 <= self.lapsed_from <= self.recency_months:
            raise ValueError(f"lapsed_from must be in 1..recency_months, not {self.lapsed_from}")


# --------------------------------------------------------------------------------------
# rule sets
# --------------------------------------------------------------------------------------


class Bounds(Spec):
    """Inclusive bounds on one feature; either may be left out."""

    min: float | None = Field(None, description="smallest value allowed (inclusive)")
    max: float | None = Field(None, description="largest value allowed (inclusive)")

    def issues(self) -> Iterator[tuple[tuple, str]]:
        if self.min is None and self.max is None:
            yield (), "give min, max or both (expected a bound; leave the feature out to not test it)"
        elif self.min is not None and self.max is not None and self.min > self.max:
            yield ("max",), f"max {self.max:g} is below min {self.min:g} (expected min <= max)"


class Conditions(Spec):
    """Conditions on the RFM features (all must hold)."""

    recency_months: Bounds | None = Field(None, description=FEATURES["recency_months"])
    frequency: Bounds | None = Field(None, description=FEATURES["frequency"])
    frequency_12m: Bounds | None = Field(None, description=FEATURES["frequency_12m"])
    monetary: Bounds | None = Field(None, description=FEATURES["monetary"], json_schema_extra={"unit": "currency"})
    spend_12m: Bounds | None = Field(None, description=FEATURES["spend_12m"], json_schema_extra={"unit": "currency"})
    tenure_months: Bounds | None = Field(None, description=FEATURES["tenure_months"])

    def tested(self) -> dict[str, Bounds]:
        return {k: getattr(self, k) for k in FEATURES if getattr(self, k) is not None}


class RuleSegment(Spec):
    """One segment of a rule set: a name and the conditions its customers meet."""

    name: Name
    description: str = ""
    lapsed: bool = Field(False, description="a disengaged segment (the market's lapsed flag)")
    when: Conditions = Field(default_factory=Conditions, description="conditions on RFM features; empty = everyone left")


class RuleSet(Spec):
    """A named segmentation: ordered segments, the first match wins."""

    name: Name
    description: str = ""
    segments: tuple[RuleSegment, ...] = Field(min_length=2, description="segments in order of precedence; the last one has no condition")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.segments)

    def issues(self) -> Iterator[tuple[tuple, str]]:
        yield from unique_names(self.segments, "segments", "segment")
        last = len(self.segments) - 1
        if self.segments[last].when.tested():
            yield ("segments", last, "when"), ("the last segment must have no condition, so that every customer has a "
                                               "segment (expected when: {} on the last segment)")
        for i, seg in enumerate(self.segments[:last]):
            if not seg.when.tested():
                yield ("segments", i, "when"), (f"segment '{seg.name}' has no condition, so the segments after it are never "
                                                "used (expected conditions, or move it last)")


def load_ruleset(path: str | Path, *, display: str | None = None) -> RuleSet:
    """Read and validate a rule set file.

    Raises
    ------
    simulator.errors.InputErrors
        Every problem, each as ``path:line: field: message``.
    """
    return validate_document(RuleSet, read_yaml(path, display=display))


def assign_rules(rules: RuleSet, features: dict[str, np.ndarray] | pd.DataFrame) -> np.ndarray:
    """Segment index (into ``rules.segments``) of each customer: the first segment whose
    conditions hold. ``features`` as returned by :func:`rfm_arrays` / :func:`rfm_features`."""
    cols = {k: np.asarray(features[k], dtype=np.float64) for k in FEATURES}
    n = len(next(iter(cols.values())))
    out = np.full(n, -1, dtype=np.int64)
    for i, seg in enumerate(rules.segments):
        ok = out < 0
        for feat, b in seg.when.tested().items():
            x = cols[feat]
            with np.errstate(invalid="ignore"):
                if b.min is not None:
                    ok &= x >= b.min
                if b.max is not None:
                    ok &= x <= b.max
        out[ok] = i
    return out
