r"""Optional columns of a transaction log, when it has them, over the calibration window
(:func:`optional_columns`):

* ``category`` -> the market's ``categories``: share of spend by category, counted on the rows
  before same-day merging (a basket of several categories counts for each). Names are made
  valid market names (:func:`category_names`; values that become equal are merged); the
  :data:`MAX_CATEGORIES` largest are kept and the rest summed into ``other``; spend of rows
  without a category goes to ``unknown`` (so that the shares are shares of all spend).
* ``member`` -> ``response.enrolment_propensity``, the engine's monthly probability that a
  purchasing non-member joins: the pooled hazard *joins / purchasing non-members*, where a
  customer buying in month t with no member-flagged transaction before t is at risk and joins
  if its first member-flagged transaction is in t. Months in the burn-in at the start of the
  log (as for arrivals) are not counted -- there, customers who were members before the log
  began would look like joiners -- but their flags are used (a customer flagged there is no
  longer at risk). Estimated only with at least one member-flagged customer, one join and
  :data:`MIN_ENROLMENT_AT_RISK` purchaser-months at risk; otherwise the default is kept.
* ``store`` -> the market's ``stores`` network (:mod:`~simulator.calibration.stores`): each
  customer's home store (most spend), the stores' shares of customers, each segment's mix over
  the stores (from the customers' segment weights) and, with a member column, each store's
  enrolment multiplier (its join rate over the market's); stores home to fewer than
  :data:`~simulator.calibration.stores.MIN_STORE_CUSTOMERS` customers merged into ``other``.
  Its figures by store go to the report and to ``stores.csv`` beside the market file.
* ``channel`` -> notes only (no market field): spend share by channel.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from simulator.calibration.segment_fit import _round, _rounded_row
from simulator.calibration.segmentation import MonthlyPanel
from simulator.calibration.stores import StoreFit
from simulator.calibration.transactions import OPTIONAL_COLUMNS, TransactionLog, parse_member_flags, spend_by_value
from simulator.specs.market import RESPONSE_DEFAULTS


#: Categories written to the market file at most (the largest); the rest are summed into
#: :data:`OTHER_CATEGORY`.
MAX_CATEGORIES = 20
#: Category of the spend lumped together beyond the :data:`MAX_CATEGORIES` largest.
OTHER_CATEGORY = "other"
#: Category of spend on rows without a category.
UNKNOWN_CATEGORY = "unknown"
#: Purchaser-months at risk needed to estimate ``enrolment_propensity`` from a member flag.
MIN_ENROLMENT_AT_RISK = 100
#: Channels listed in the calibration note.
TOP_CHANNELS = 5


@dataclass(frozen=True)
class EnrolmentFit:
    """Joining a program, from the log's member flag (see the module docstring).

    Attributes
    ----------
    estimate : float or None
        Pooled monthly hazard ``joiners / at_risk``, written as the market's
        ``response.enrolment_propensity``; None when there is too little information (the
        default is kept).
    joiners : int
        Customer-months in the counted months that hold a customer's first member-flagged
        transaction.
    at_risk : int
        Customer-months in the counted months with a purchase and no member-flagged
        transaction in an earlier month.
    member_customers : int
        Customers known at the calibration end with a member-flagged transaction.
    member_share : float
        ``member_customers`` over the customers known at the calibration end.
    unknown_share : float
        Share of the window's transactions whose flag is unknown (blank or unrecognised).
    months : tuple of pandas.Period or None
        First and last month counted (after the burn-in); None when none is.
    per_customer : pandas.DataFrame or None
        Per customer known at the calibration end (the panel's row order): ``at_risk``
        (purchaser-months at risk counted), ``joined`` (1 when its first member-flagged month is
        a counted month), ``member`` (1 when it has a member-flagged transaction); their sums are
        ``at_risk``, ``joiners`` and ``member_customers`` (the store network sums them by store).
    """

    estimate: float | None
    joiners: int
    at_risk: int
    member_customers: int
    member_share: float
    unknown_share: float
    months: tuple[pd.Period, pd.Period] | None
    per_customer: pd.DataFrame | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class OptionalColumnsFit:
    """What the log's optional columns gave, over the calibration window.

    Attributes
    ----------
    columns : tuple of str
        The optional columns the log has (of
        :data:`~simulator.calibration.transactions.OPTIONAL_COLUMNS`).
    categories : pandas.DataFrame or None
        Per market category (largest first): ``category`` (the market name), ``spend``,
        ``share`` (as written to the market file) and ``values`` (the log's values merged into
        it, ``(missing)`` for rows without one); None without a category column or spend.
    channels : pandas.DataFrame or None
        Per channel (largest spend first): ``channel`` (as in the log, ``(missing)``),
        ``spend``, ``share``.
    stores : int or None
        Distinct stores with a row in the window.
    enrolment : EnrolmentFit or None
    notes : list of str
        Calibration notes (added to the diagnostics' notes).
    network : StoreFit or None
        The market's store network from the store column
        (:func:`~simulator.calibration.stores.store_network`, set by :func:`calibrate` once the
        segments are known); None without a store column or a store in the window.
    """

    columns: tuple[str, ...]
    categories: pd.DataFrame | None
    channels: pd.DataFrame | None
    stores: int | None
    enrolment: EnrolmentFit | None
    notes: list[str]
    network: StoreFit | None = None

    def market_fields(self) -> dict:
        """The market-file fields they give: ``categories`` and ``response`` when estimated
        (nothing otherwise, so that a log without them gives the market it always did)."""
        out: dict = {}
        if self.categories is not None:
            out["categories"] = dict(zip(self.categories["category"], self.categories["share"]))
        if self.enrolment is not None and self.enrolment.estimate is not None:
            out["response"] = {"enrolment_propensity": self.enrolment.estimate}
        if self.network is not None:
            out["stores"] = self.network.network
        return out


def category_names(values: pd.Series | pd.Index | list) -> np.ndarray:
    """Valid market names (``^[A-Za-z][A-Za-z0-9_-]*$``, at most 64 characters) for category
    values: accents dropped, lower case, each run of other characters than ``a-z0-9`` one
    ``_``, no ``_`` at either end; ``c_`` in front of a name not starting with a letter
    (``c_`` and a short hash of the value when nothing is left). Missing values (None, NaN)
    become :data:`UNKNOWN_CATEGORY`. Different values may give one name (``Food``, ``FOOD ``):
    the caller merges them."""
    raw = pd.Series(list(values), dtype=object)
    missing = raw.isna().to_numpy(dtype=bool)
    text = raw.where(~missing, "").astype(str)
    name = (text.str.normalize("NFKD").str.encode("ascii", "ignore").str.decode("ascii").str.lower()
            .str.replace(r"[^a-z0-9]+", "_", regex=True).str.strip("_"))
    empty = (name == "").to_numpy(dtype=bool) & ~missing
    if empty.any():
        name[empty] = ["c_" + hashlib.sha1(t.encode("utf-8")).hexdigest()[:8] for t in text[empty]]
    prefix = ~name.str.match(r"[a-z]").to_numpy(dtype=bool)
    name[prefix] = "c_" + name[prefix]
    name = name.str.slice(0, 64).str.rstrip("_")
    name[missing] = UNKNOWN_CATEGORY
    return name.to_numpy(dtype=object)


def _window_table(spend_by: dict[str, pd.DataFrame], column: str, end: pd.Timestamp) -> pd.DataFrame | None:
    table = spend_by.get(column)
    if table is None:
        return None
    return table[(table["month"] <= end.to_period("M")).to_numpy(dtype=bool)]


def _category_fit(table: pd.DataFrame) -> tuple[pd.DataFrame | None, list[str]]:
    """Spend shares by market category (see the module docstring) and the notes on them."""
    by_value = table.groupby("value", dropna=False, sort=False)["amount"].sum()
    names = category_names(by_value.index)
    values = pd.Series(["(missing)" if pd.isna(v) else str(v) for v in by_value.index], dtype=object)
    spend = pd.DataFrame({"category": names, "spend": by_value.to_numpy(dtype=np.float64), "values": values})
    total = float(spend["spend"].sum())
    if not total > 0:
        return None, ["category: no spend in the calibration window, so no category shares (the market's "
                      "categories are left empty)"]
    merged = spend.groupby("category", sort=False).agg(spend=("spend", "sum"), values=("values", lambda v: ", ".join(sorted(v))),
                                                       n_values=("values", "size"))
    merged = merged.reset_index().sort_values(["spend", "category"], ascending=[False, True], kind="stable")
    merges = merged.loc[merged["n_values"] > 1, ["category", "values"]]
    merged = merged.drop(columns="n_values")
    lumped = 0
    if len(merged) > MAX_CATEGORIES:
        top, rest = merged.iloc[:MAX_CATEGORIES], merged.iloc[MAX_CATEGORIES:]
        lumped = len(rest)
        extra = pd.DataFrame({"category": [OTHER_CATEGORY], "spend": [float(rest["spend"].sum())],
                              "values": [f"{lumped} smaller categories"]})
        merged = pd.concat([top, extra], ignore_index=True)
        merged = merged.groupby("category", sort=False).agg(spend=("spend", "sum"), values=("values", "; ".join))
        merged = merged.reset_index().sort_values(["spend", "category"], ascending=[False, True], kind="stable")
    row = _rounded_row(dict(zip(merged["category"], merged["spend"] / total)))
    merged = merged[merged["category"].isin(list(row))].reset_index(drop=True)
    merged["share"] = merged["category"].map(row).astype(np.float64)
    merged = merged[["category", "spend", "share", "values"]]
    renamed = [(v, n) for v, n in zip(values, names) if v != n and v != "(missing)"]
    unknown = float(spend.loc[values.to_numpy() == "(missing)", "spend"].sum()) / total
    largest = ", ".join(f"{c} {sh:.1%}" for c, sh in zip(merged["category"][:5], merged["share"][:5]))
    note = (f"category: share of spend by category over the calibration window (rows before same-day merging) "
            f"written to the market's categories: {len(merged)} categories, largest {largest}")
    if lumped:
        note += f"; the {lumped} smallest beyond the {MAX_CATEGORIES} largest summed into '{OTHER_CATEGORY}'"
    if unknown > 0:
        note += f"; {unknown:.1%} of spend has no category (as '{UNKNOWN_CATEGORY}')"
    if renamed:
        shown = ", ".join(f"'{v}' -> '{n}'" for v, n in renamed[:3])
        note += f"; {len(renamed)} names made valid ({shown}{', ...' if len(renamed) > 3 else ''})"
    if len(merges):
        shown = "; ".join(f"{v} -> '{c}'" for c, v in zip(merges["category"][:3], merges["values"][:3]))
        note += f"; values merged into one name: {shown}{'; ...' if len(merges) > 3 else ''}"
    return merged, [note]


def _channel_fit(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    by_value = table.groupby("value", dropna=False, sort=False)["amount"].sum()
    channels = pd.DataFrame({"channel": ["(missing)" if pd.isna(v) else str(v) for v in by_value.index],
                             "spend": by_value.to_numpy(dtype=np.float64)})
    channels = channels.sort_values(["spend", "channel"], ascending=[False, True], kind="stable").reset_index(drop=True)
    total = float(channels["spend"].sum())
    channels["share"] = channels["spend"] / total if total > 0 else 0.0
    shown = ", ".join(f"{c} {sh:.1%}" for c, sh in zip(channels["channel"][:TOP_CHANNELS], channels["share"][:TOP_CHANNELS]))
    more = f" (top {TOP_CHANNELS} of {len(channels)})" if len(channels) > TOP_CHANNELS else f" ({len(channels)} in all)"
    return channels, [f"channel: share of spend by channel over the calibration window{more}: {shown}; "
                      "no market field uses it"]


def _store_fit(table: pd.DataFrame) -> tuple[int, list[str]]:
    given = table["value"].notna().to_numpy(dtype=bool)
    stores = int(table.loc[given, "value"].nunique())
    rows = float(table["rows"].sum())
    missing = float(table.loc[~given, "rows"].sum()) / rows if rows > 0 else 0.0
    note = f"store: {stores} stores with purchases in the calibration window"
    if missing > 0:
        note += f" ({missing:.1%} of rows without a store)"
    return stores, [note]


def _enrolment_fit(frame: pd.DataFrame, end: pd.Timestamp, panel: MonthlyPanel, burn_in: int) -> tuple[EnrolmentFit, list[str]]:
    """The pooled monthly hazard of joining, from the member flag (see the module docstring)."""
    days = pd.to_datetime(frame["date"]).to_numpy().astype("datetime64[D]")
    keep = days <= np.datetime64(end.date(), "D")
    flags = parse_member_flags(frame["member"]).array[keep]
    member = flags.fillna(False).to_numpy(dtype=bool)
    unknown = flags.isna()
    row = pd.Index(panel.customers).get_indexer(frame["customer_id"].astype(str).to_numpy()[keep])
    month = days[keep].astype("datetime64[M]")
    first = np.datetime64(panel.months[0].start_time.date(), "M")
    col = (month - first).astype(np.int64)
    n, T = panel.n_customers, panel.n_months
    first_member = np.full(n, T, dtype=np.int64)           # T: never flagged by the calibration end
    flagged = member & (row >= 0)
    np.minimum.at(first_member, row[flagged], col[flagged])
    t = np.arange(T)[None, :]
    counted = t >= burn_in
    bought = panel.counts > 0
    risk_c = (bought & (first_member[:, None] >= t) & counted).sum(axis=1).astype(np.int64)
    joined_c = ((first_member >= burn_in) & (first_member < T)).astype(np.int64)
    member_c = (first_member < T).astype(np.int64)
    at_risk, joiners, members = int(risk_c.sum()), int(joined_c.sum()), int(member_c.sum())
    share = members / max(n, 1)
    unknown_share = float(unknown.mean()) if len(unknown) else 0.0
    months = (panel.months[burn_in], panel.months[-1]) if burn_in < T else None
    enough = members >= 1 and joiners >= 1 and at_risk >= MIN_ENROLMENT_AT_RISK
    estimate = _round(joiners / at_risk) if enough else None
    span = f"{months[0]}..{months[1]}" if months else "no month"
    counts = (f"{joiners:,} joins over {at_risk:,} purchaser-months at risk in {span}, after the {burn_in}-month burn-in "
              "at the start of the log")
    tail = f"; {share:.1%} of the {n:,} customers known at the calibration end have a member-flagged transaction"
    if unknown_share > 0:
        tail += f"; flag unknown (blank or unrecognised) on {unknown_share:.1%} of transactions"
    if enough:
        note = (f"member: enrolment_propensity {estimate:.4g} written to the market's response, the monthly share of "
                f"purchasing non-members whose first member-flagged transaction falls in the month ({counts})" + tail)
    else:
        note = (f"member: too little information to estimate enrolment_propensity ({members} member-flagged customers, "
                f"{counts}; needed at least 1 join and {MIN_ENROLMENT_AT_RISK} purchaser-months at risk): the default "
                f"{RESPONSE_DEFAULTS['enrolment_propensity']:g} is kept" + tail)
    per_customer = pd.DataFrame({"at_risk": risk_c, "joined": joined_c, "member": member_c})
    return EnrolmentFit(estimate=estimate, joiners=joiners, at_risk=at_risk, member_customers=members, member_share=share,
                        unknown_share=unknown_share, months=months, per_customer=per_customer), [note]


def optional_columns(log: TransactionLog | pd.DataFrame, end: pd.Timestamp, panel: MonthlyPanel, *,
                     burn_in: int = 6) -> OptionalColumnsFit | None:
    """What the optional columns of ``log`` give over the window of ``panel`` ending on ``end``
    (see the module docstring); None when the log has none of them.

    Spend by category, channel and store comes from ``log.spend_by`` (rows before same-day
    merging); for a plain DataFrame, whose rows are the log's rows, from the frame itself.
    """
    frame = log.transactions if isinstance(log, TransactionLog) else log
    spend_by = log.spend_by if isinstance(log, TransactionLog) else {}
    if not spend_by:
        spend_by = spend_by_value(frame)
    columns = tuple(c for c in OPTIONAL_COLUMNS if c in frame.columns or c in spend_by)
    if not columns:
        return None
    notes: list[str] = []
    categories = channels = stores = enrolment = None
    table = _window_table(spend_by, "category", end)
    if table is not None:
        categories, more = _category_fit(table)
        notes += more
    if "member" in frame.columns:
        enrolment, more = _enrolment_fit(frame, end, panel, burn_in)
        notes += more
    table = _window_table(spend_by, "channel", end)
    if table is not None:
        channels, more = _channel_fit(table)
        notes += more
    table = _window_table(spend_by, "store", end)
    if table is not None:
        stores, more = _store_fit(table)
        notes += more
    return OptionalColumnsFit(columns=columns, categories=categories, channels=channels, stores=stores,
                              enrolment=enrolment, notes=notes)
