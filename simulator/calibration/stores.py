"""The market's store network from a log's store column (``calibrate --store-col``).

Over the calibration window (the rows on or before its last day, after same-day merging: a
transaction keeps the first store of its rows, so a customer-day spread over two stores counts
for the first), for the customers known at its end.

Home store. Customer i's spend in store k is S_ik, the sum of the amounts of i's transactions
in k, and N_ik their number; i's home store is

    home(i) = the k with the largest S_ik; on a tie the largest N_ik; then the first store
              name in text order

so that the same log always gives the same home stores. Transactions without a store count
for no store; a customer with none at all has no home store (counted apart: the network's
shares are over the customers with one, and the market's customers without one follow those
shares).

Sparse stores. A store that is the home store of fewer than ``MIN_STORE_CUSTOMERS`` = 30
customers (``calibrate(min_store_customers=...)``) is merged into one store ``other``, whose
customers are theirs and whose label says how many stores it holds (30 customers give a
share to about 1/sqrt(30) = 18% of itself). Store ids are made valid market names: accents
dropped, each run of characters other than letters, digits, ``_`` and ``-`` one ``_``, ``s_``
in front of an id not starting with a letter, ``_2``, ``_3``... after an id met before; the
log's value is the store's ``label``. The network lists the stores by customers, most first,
``other`` last.

Per store k of the network, over its home customers H_k (the customers the engine reports by
home store in ``stores.parquet``), written to ``stores.csv`` and the report:

    customers_k        = |H_k|
    share_k            = |H_k| / sum_j |H_j|                          (the market's stores.share)
    active_k           = customers of H_k with a purchase in the last ACTIVE_MONTHS + 1 = 3
                         calendar months of the window (the calibration's lifecycle 'active')
    frequency_k        = sum over H_k of transactions (any store) / sum over H_k of the months
                         from the month of the first purchase to the last month of the window
                         (purchases per customer-month, the unit of a segment's purchase_rate)
    basket_k           = their spend / their transactions
    home_spend_share_k = sum over i in H_k of S_i,home(i) / their spend

With a member column, from the enrolment estimate's own counts (the market's
``enrolment_propensity`` h = joins / purchaser-months at risk, after the burn-in), summed over
each store's home customers:

    members_k      = customers of H_k with a member-flagged transaction
    join_rate_k    = joins_k / at_risk_k
    enrolment_k    = min(join_rate_k / h, 20)     (the market's stores.enrolment; 1 when
                                                   at_risk_k = 0 or h is not estimated)
    enrolment_se_k = enrolment_k / sqrt(joins_k)  (joins as Poisson counts, h taken as known)

so that h x enrolment_k is the store's own monthly rate of joining, as the engine's hazard
multiplies the propensity by the home store's multiplier. It is written as estimated, not
shrunk toward 1: a store with 25 joins has its multiplier to about 20% (``enrolment_se``).
Without a member column every multiplier is 1 (omitted).

Each segment's mix over the stores, with w_is the weight of customer i on segment s at the
calibration end (the calibration's segment membership, whose column sums are the segment
shares):

    segment_mix_sk = sum over i in H_k of w_is / sum over i with a home store of w_is

A segment without weight is left out (it follows the stores' ``share``).

Opt-in by channel (:func:`with_opt_in`, applied by ``loyalty-sim calibrate`` after the
calibration): a log's ``channel`` is where a purchase was made, not consent to be contacted, so
opt-ins come from their own columns, ``optin_<channel>`` (or ``calibrate --optin-col
CHANNEL=COLUMN``), a yes/no flag per transaction (a transaction is opted in if any of its rows
is). Customer i's flag on channel c is o_ic = its last recorded value in the calibration window
(consent can be withdrawn: the state at the end is what a campaign meets); a customer with no
recorded value counts as not opted in (no consent on file: not contactable). Over the customers
C known at the calibration end and over each store's home customers H_k:

    p_c     = sum over C of o_ic / |C|           (the market's reachability.channels[c])
    p_kc    = sum over H_k of o_ic / |H_k|       (stores.csv: optin_<c>)
    reach_kc = min(p_kc / p_c, 20)               (the store's reach[c]; stores.csv: reach_<c>)

so that the engine's opt-in draw min(1, p_c reach_kc) for a customer of store k is p_kc. Channels
without a column keep the market's shares (the defaults or ``--channel``); ``member_opt_in``
(the opt-in on joining) is not in a log and stays as it was. Without an opt-in column the
stores' ``reach`` multipliers are not estimated (omitted: 1) and the notes say so.

Everything is grouped with pandas / numpy over the rows once (customer x store spend first,
then one row per customer): no loop over customers.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from simulator.calibration.groups import ACTIVE_MONTHS

__all__ = ["MIN_STORE_CUSTOMERS", "OTHER_STORE", "StoreFit", "customer_opt_in", "home_stores", "store_names",
           "store_network", "with_opt_in"]

#: A store of the network is the home store of at least this many customers of the log; the
#: stores with fewer are merged into :data:`OTHER_STORE`. With 30 customers a store's share is
#: known to about 1/sqrt(30) = 18% of itself (binomial), and its figures are means over 30.
MIN_STORE_CUSTOMERS = 30
#: Name of the store holding the stores with fewer than the minimum of customers.
OTHER_STORE = "other"
#: Bound of a store's enrolment multiplier in the market spec.
MAX_ENROLMENT_MULTIPLIER = 20.0
#: Bound of a store's reach multiplier in the market spec.
MAX_REACH_MULTIPLIER = 20.0

_MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "<na>", "nat"})

#: Columns of :attr:`StoreFit.table` (the ones about members only with a member column).
TABLE_COLUMNS = ("store", "label", "customers", "share", "active", "active_share", "transactions", "frequency",
                 "spend", "basket", "home_spend_share", "members", "member_share", "joins", "at_risk", "join_rate",
                 "enrolment", "enrolment_se", "stores_merged")


@dataclass(frozen=True)
class StoreFit:
    """The store network estimated from a log's store column.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per store of the network, in the market's order (most customers first,
        :data:`OTHER_STORE` last), with :data:`TABLE_COLUMNS` (without the member columns when
        the log has no member column). Written as ``stores.csv`` beside the market file.
    network : dict
        The market's ``stores:`` section (:class:`~simulator.specs.market.StoreNetwork` fields).
    home : numpy.ndarray
        Per customer of the panel (its row order), the index of its home store in ``table``
        (-1: no store in the window).
    min_customers : int
    merged : int
        Stores of the log merged into :data:`OTHER_STORE`.
    log_stores : int
        Distinct stores with a transaction in the window.
    without_store : int
        Customers known at the calibration end without a transaction with a store.
    notes : list of str
    """

    table: pd.DataFrame
    network: dict
    home: np.ndarray = field(repr=False)
    min_customers: int
    merged: int
    log_stores: int
    without_store: int
    notes: list[str]


def _clean_texts(values: np.ndarray) -> np.ndarray:
    """Store values as stripped text (integral floats without ``.0``); None when missing."""
    from simulator.calibration.transactions import _as_text

    text = _as_text(pd.Series(values)).to_numpy(dtype=object)
    return np.array([None if str(t).strip().lower() in _MISSING else str(t).strip() for t in text], dtype=object)


def store_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each row's store as a code into the sorted distinct store texts (-1: no store), and
    those texts. Values equal as stripped text are one store."""
    try:
        raw_codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # unhashable cells
        raw_codes, uniques = pd.factorize(values.astype(str), use_na_sentinel=True)
    clean = _clean_texts(np.asarray(uniques, dtype=object))
    codes_of_unique, texts = pd.factorize(pd.Series(clean, dtype=object), sort=True, use_na_sentinel=True)
    codes_of_unique = np.append(codes_of_unique.astype(np.int64), -1)  # raw code -1 (missing) -> -1
    return codes_of_unique[raw_codes], np.asarray(texts, dtype=object)


def home_stores(customer: np.ndarray, store: np.ndarray, amount: np.ndarray, n_customers: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Each customer's home store (see the module docstring) from its transactions.

    ``customer``: each row's customer index (0..n_customers-1; -1: not a customer of the
    panel, left out); ``store``: each row's store code (-1: none), codes in text order so that
    the smallest code is the first name; ``amount``: spend. Returns the home store code per
    customer (-1: no row with a store) and the customer x store table (``customer``,
    ``store``, ``spend``, ``transactions``).
    """
    ok = (customer >= 0) & (store >= 0)
    home = np.full(n_customers, -1, dtype=np.int64)
    if not ok.any():
        return home, pd.DataFrame({"customer": np.zeros(0, np.int64), "store": np.zeros(0, np.int64),
                                   "spend": np.zeros(0), "transactions": np.zeros(0, np.int64)})
    K = int(store[ok].max()) + 1
    key = customer[ok].astype(np.int64) * K + store[ok].astype(np.int64)
    codes, ukey = pd.factorize(key, sort=False)          # hashing: one pass over the rows
    spend = np.bincount(codes, weights=amount[ok].astype(np.float64), minlength=len(ukey))
    count = np.bincount(codes, minlength=len(ukey)).astype(np.int64)
    del codes, key
    order = np.argsort(ukey, kind="stable")               # the pairs by customer, then store
    ukey, spend, count = ukey[order], spend[order], count[order]
    pc, ps = ukey // K, ukey % K
    # per customer (consecutive pairs): the most spend, then the most transactions, then the smallest code
    starts = np.flatnonzero(np.concatenate([[True], pc[1:] != pc[:-1]]))
    group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(pc))))
    best = spend == np.maximum.reduceat(spend, starts)[group]
    n_best = np.where(best, count, -1)
    best &= count == np.maximum.reduceat(n_best, starts)[group]
    home[pc[starts]] = np.minimum.reduceat(np.where(best, ps, K), starts)
    return home, pd.DataFrame({"customer": pc, "store": ps, "spend": spend, "transactions": count})


def store_names(labels: list[str]) -> list[str]:
    """Valid market names (``^[A-Za-z][A-Za-z0-9_-]*$``, at most 64 characters) for store
    values, distinct: see the module docstring."""
    out: list[str] = []
    seen: set[str] = set()
    for text in labels:
        plain = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
        name = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_-") else " " for ch in plain)
        name = "_".join(name.split())
        if not name or not name[0].isalpha():
            name = "s_" + name
        name = name[:60].rstrip("_-") or "s"
        base, k = name, 2
        while name.lower() in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name.lower())
        out.append(name)
    return out


def _rows_of(ids: pd.Series, customers: np.ndarray) -> np.ndarray:
    """Each id's position in ``customers`` (-1: not there), looked up once per distinct id
    (codes first: no Python string per row for a column of Arrow strings)."""
    codes, uniques = pd.factorize(ids, use_na_sentinel=True)
    found = pd.Index(customers).get_indexer(pd.Index(uniques).astype(str)).astype(np.int64)
    return np.where(codes >= 0, found[np.maximum(codes, 0)], -1) if len(found) else np.full(len(codes), -1, np.int64)


def _shares(values: np.ndarray, digits: int = 6) -> np.ndarray:
    """Shares of ``values`` rounded, the largest adjusted so they sum to 1."""
    s = np.round(values / values.sum(), digits)
    top = int(np.argmax(s))
    s[top] = round(s[top] + 1.0 - float(s.sum()), digits)
    return s


def store_network(frame: pd.DataFrame, *, customers: np.ndarray, end: pd.Timestamp, counts: np.ndarray,
                  spend: np.ndarray, first_month: np.ndarray, recency: np.ndarray, weights: sparse.spmatrix,
                  segments: tuple[str, ...],
                  enrolment: pd.DataFrame | None = None, propensity: float | None = None,
                  min_customers: int = MIN_STORE_CUSTOMERS, column: str = "store",
                  source: str = "") -> StoreFit | None:
    """The store network of a log's store column (see the module docstring).

    ``frame``: the log's transactions (``customer_id``, ``date``, ``amount``, ``store``);
    ``customers``: the panel's customer ids (its row order), ``counts`` / ``spend`` its
    ``[customers, months]`` transactions and spend, ``first_month`` each customer's first month
    index, ``recency`` its months since its last purchase at the end; ``weights``:
    ``[customers, segments]`` weight of each customer on each segment at the calibration end
    (``segments`` their names); ``enrolment``: per customer (panel order) ``at_risk``, ``joined``,
    ``member`` from the member flag (None without one) and ``propensity`` the market's pooled
    rate; ``column``: the store column's name in the log; ``source``: the log's file name (both
    for the network's description). None when no row of the window has a store.
    """
    days = pd.to_datetime(frame["date"]).to_numpy().astype("datetime64[D]")
    keep = days <= np.datetime64(end.date(), "D")
    n = len(customers)
    row = _rows_of(frame["customer_id"][keep], customers)
    code, texts = store_codes(frame["store"][keep])
    amount = frame["amount"].to_numpy(dtype=np.float64)[keep]
    log_stores = len(texts)
    if log_stores == 0:
        return None
    home, cs = home_stores(row, code, amount, n)
    del row, code, amount
    has = home >= 0
    without = int(n - has.sum())

    # sparse stores merged into 'other'; the network's order: most customers first, other last
    per_store = np.bincount(home[has], minlength=log_stores)
    big = per_store >= min_customers
    small = np.flatnonzero(~big & (per_store > 0))
    order = sorted(np.flatnonzero(big), key=lambda k: (-per_store[k], str(texts[k])))
    labels = [str(texts[k]) for k in order]
    names = store_names(labels)
    target = np.full(log_stores, -1, dtype=np.int64)
    target[order] = np.arange(len(order))
    if len(small):
        target[small] = len(order)
        other = OTHER_STORE
        while other.lower() in {x.lower() for x in names}:
            other += "_stores"
        names.append(other)
        labels.append(f"{len(small)} stores with fewer than {min_customers} customers each")
    K = len(names)
    net_home = np.where(has, target[np.maximum(home, 0)], -1)

    # per customer -> per store
    T = counts.shape[1]
    cust_tx = counts.sum(axis=1).astype(np.float64)
    cust_spend = spend.sum(axis=1)
    active = (recency >= 0) & (recency <= ACTIVE_MONTHS)
    exposure = (T - first_month).astype(np.float64)
    h = net_home[has]

    def by_store(values: np.ndarray) -> np.ndarray:
        return np.bincount(h, weights=np.asarray(values, dtype=np.float64)[has], minlength=K)

    n_k = np.bincount(h, minlength=K).astype(np.int64)
    tx_k, spend_k = by_store(cust_tx), by_store(cust_spend)
    home_pairs = cs["store"].to_numpy() == home[cs["customer"].to_numpy()]
    in_home = np.bincount(net_home[cs["customer"].to_numpy()[home_pairs]], weights=cs["spend"].to_numpy()[home_pairs],
                          minlength=K)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame({
            "store": names, "label": labels, "customers": n_k, "share": _shares(n_k.astype(np.float64)),
            "active": by_store(active).astype(np.int64),
            "active_share": by_store(active) / np.maximum(n_k, 1),
            "transactions": tx_k.astype(np.int64), "frequency": tx_k / np.maximum(by_store(exposure), 1e-12),
            "spend": spend_k, "basket": np.where(tx_k > 0, spend_k / np.maximum(tx_k, 1), np.nan),
            "home_spend_share": np.where(spend_k > 0, in_home / np.maximum(spend_k, 1e-300), np.nan),
        })
    merged_count = np.zeros(K, dtype=np.int64)
    merged_count[: len(order)] = 1
    if len(small):
        merged_count[-1] = len(small)

    enrol_note = "no member column: the stores' enrolment multipliers are 1 (omitted)"
    mult = np.ones(K)
    if enrolment is not None:
        members_k = by_store(enrolment["member"].to_numpy()).astype(np.int64)
        joins_k = by_store(enrolment["joined"].to_numpy()).astype(np.int64)
        risk_k = by_store(enrolment["at_risk"].to_numpy()).astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate_k = np.where(risk_k > 0, joins_k / np.maximum(risk_k, 1), np.nan)
        if propensity is not None and propensity > 0:
            mult = np.where(risk_k > 0, np.minimum(rate_k / propensity, MAX_ENROLMENT_MULTIPLIER), 1.0)
            mult = np.round(mult, 4)
            lo, hi = int(np.argmin(mult)), int(np.argmax(mult))
            enrol_note = (f"enrolment multipliers = each store's join rate (joins / purchaser-months at risk of its home "
                          f"customers) over the market's enrolment_propensity {propensity:.4g}: from {mult[lo]:.3g} "
                          f"({names[lo]}) to {mult[hi]:.3g} ({names[hi]})")
        else:
            enrol_note = ("the member flag gave no enrolment_propensity, so the stores' enrolment multipliers are 1 "
                          "(join rates by store in stores.csv)")
        with np.errstate(invalid="ignore", divide="ignore"):
            estimated = (joins_k > 0) & (risk_k > 0) & (propensity is not None and propensity > 0)
            se = np.where(estimated, mult / np.sqrt(np.maximum(joins_k, 1)), np.nan)
        table = table.assign(members=members_k, member_share=members_k / np.maximum(n_k, 1), joins=joins_k,
                             at_risk=risk_k, join_rate=rate_k, enrolment=mult, enrolment_se=se)
    table["stores_merged"] = merged_count

    # each segment's mix over the stores, from the customers' segment weights
    W = sparse.csr_matrix(weights)[np.flatnonzero(has)]
    H = sparse.csr_matrix((np.ones(len(h)), (np.arange(len(h)), h)), shape=(len(h), K))
    mix = np.asarray((W.T @ H).todense())
    segment_mix = {}
    for s, seg in enumerate(segments):
        tot = mix[s].sum()
        if tot > 0:
            sh = _shares(mix[s])
            segment_mix[seg] = {names[k]: float(sh[k]) for k in range(K) if sh[k] > 0}

    stores = []
    for k in range(K):
        entry = {"name": names[k], "label": labels[k], "share": float(table["share"].iloc[k])}
        if mult[k] != 1.0:
            entry["enrolment"] = float(mult[k])
        stores.append(entry)
    src = f" of {source}" if source else ""
    description = (f"Calibrated by loyalty-sim calibrate from the store column '{column}'{src} over the calibration window "
                   f"(to {end.date()}): a customer's home store is the one with most of their spend; shares of the "
                   f"{int(n_k.sum()):,} customers with a store; "
                   + ("enrolment = the store's join rate over the market's" if enrolment is not None and propensity
                      else "enrolment not estimated (1)")
                   + "; reach not estimated (1). Figures by store: stores.csv.")
    network = {"description": description, "stores": tuple(stores), "segment_mix": segment_mix}

    note = (f"store: each customer's home store is the store with most of their spend in the calibration window (ties: "
            f"more transactions, then the first name); written to the market's stores: {K} stores")
    if len(small):
        note += (f", of which '{names[-1]}' holds the {len(small)} stores home to fewer than {min_customers} customers "
                 f"each, the minimum of a store ({int(n_k[-1]):,} customers)")
    else:
        note += f" (none home to fewer than {min_customers} customers, the minimum of a store: fewer are merged into one)"

    note += f"; largest {', '.join(f'{a} {b:.1%}' for a, b in zip(names[:5], table['share'][:5]))}"
    if without:
        note += f"; {without:,} customers ({without / max(n, 1):.1%}) have no store in the window and follow the shares"
    renamed = [(lab, nm) for lab, nm in zip(labels[:len(order)], names[:len(order)]) if lab != nm]
    if renamed:
        shown = ", ".join(f"'{a}' -> '{b}'" for a, b in renamed[:3])
        note += f"; {len(renamed)} store ids made valid names, the log's value kept as label ({shown}{', ...' if len(renamed) > 3 else ''})"
    notes = [note, f"store: {enrol_note}; segment_mix from the customers' segment weights at the calibration end; "
                   "reach multipliers not estimated (the log has no opt-in by channel)"]
    return StoreFit(table=table, network=network, home=net_home, min_customers=int(min_customers),
                    merged=int(len(small)), log_stores=int(log_stores), without_store=without, notes=notes)


# --------------------------------------------------------------------------------------
# opt-in by channel
# --------------------------------------------------------------------------------------


def optin_channels(frame: pd.DataFrame) -> list[str]:
    """The channels of a log's opt-in columns (``optin_<channel>``), in column order."""
    from simulator.calibration.transactions import OPTIN_PREFIX

    return [c[len(OPTIN_PREFIX):] for c in frame.columns if str(c).startswith(OPTIN_PREFIX)]


def customer_opt_in(frame: pd.DataFrame, customers: np.ndarray, end: pd.Timestamp) -> pd.DataFrame:
    """Per customer of ``customers`` (their order) and opt-in channel of ``frame``: the last
    recorded value on or before ``end`` (1 opted in, 0 not, -1 no value), as int8 columns named
    by channel. ``frame`` is a cleaned log (sorted by customer then date)."""
    from simulator.calibration.transactions import OPTIN_PREFIX

    days = pd.to_datetime(frame["date"]).to_numpy().astype("datetime64[D]")
    keep = days <= np.datetime64(end.date(), "D")
    row = _rows_of(frame["customer_id"][keep], customers)
    out = {}
    for ch in optin_channels(frame):
        col = frame[OPTIN_PREFIX + ch][keep]
        known = (~col.isna()).to_numpy(dtype=bool) & (row >= 0)
        value = col.fillna(False).to_numpy(dtype=bool)[known].astype(np.int8)
        flags = np.full(len(customers), -1, dtype=np.int8)
        if known.any():
            last = pd.Series(value).groupby(row[known], sort=False).last()  # rows in date order: the last
            flags[last.index.to_numpy()] = last.to_numpy()
        out[ch] = flags
    return pd.DataFrame(out)


_NOT_ESTIMATED = "; reach multipliers not estimated (the log has no opt-in by channel)"


def _reach_told(note: str) -> str:
    """A store note without its 'reach not estimated' clause (the opt-in columns estimate it)."""
    return note.replace(_NOT_ESTIMATED, "")


def with_opt_in(cm, log) -> list[str]:
    """Write the opt-in shares of a log's ``optin_<channel>`` columns into a calibrated market
    (see the module docstring): the market's ``reachability.channels``, each store's ``reach``
    and ``stores.csv``'s ``optin_<c>`` / ``reach_<c>`` columns when it has a store network.
    ``cm``: the :class:`~simulator.calibration.estimate.CalibratedMarket` of ``log`` (a
    :class:`~simulator.calibration.transactions.TransactionLog` or its frame), changed in place
    (its market, its network, its notes). Returns the notes added (none without an opt-in
    column)."""
    import dataclasses

    from simulator.specs.market import Reachability, StoreNetwork

    frame = log.transactions if hasattr(log, "transactions") else log
    channels = optin_channels(frame)
    if not channels:
        return []
    customers = np.asarray(cm.panel.customers)
    flags = customer_opt_in(frame, customers, cm.calibration_end)
    n = len(customers)
    market = cm.market
    shares = {ch: float(np.round((flags[ch].to_numpy() == 1).sum() / max(n, 1), 6)) for ch in channels}
    unknown = {ch: float((flags[ch].to_numpy() < 0).mean()) if n else 0.0 for ch in channels}
    before = dict(market.reachability.channels)
    reach = Reachability.model_validate({"channels": {**before, **shares},
                                         "member_opt_in": dict(market.reachability.member_opt_in)})
    kept = [c for c in before if c not in shares]
    notes = [f"opt-in: {', '.join(f'{ch} {shares[ch]:.1%}' for ch in channels)} of the {n:,} customers known at the "
             f"calibration end opted in (each customer's last recorded value in the window; no value counts as not "
             f"opted in: {', '.join(f'{ch} {unknown[ch]:.1%}' for ch in channels)}), written to reachability.channels"
             + (f"; {', '.join(kept)} kept as before (no opt-in column: --optin-col CHANNEL=COLUMN)" if kept else "")
             + (f"; replaced --channel/default shares {', '.join(f'{c} {before[c]:g}' for c in channels if c in before)}"
                if any(c in before for c in channels) else "")]
    update = {"reachability": reach}

    opt = cm.diagnostics.optional_columns
    net = opt.network if opt is not None else None
    if net is not None and market.stores is not None:
        home = net.home
        has = home >= 0
        K = len(net.table)
        n_k = np.bincount(home[has], minlength=K).astype(np.float64)
        table = net.table.copy()
        stores = [dict(s) for s in net.network["stores"]]
        spread = []
        for ch in channels:
            opted = (flags[ch].to_numpy() == 1)[has].astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                p_k = np.where(n_k > 0, np.bincount(home[has], weights=opted, minlength=K) / np.maximum(n_k, 1), np.nan)
            p = shares[ch]
            mult = np.where((p > 0) & np.isfinite(p_k), np.minimum(p_k / p if p > 0 else 1.0, MAX_REACH_MULTIPLIER), 1.0)
            mult = np.round(mult, 4)
            table[f"optin_{ch}"] = p_k
            table[f"reach_{ch}"] = mult
            for k, entry in enumerate(stores):
                if mult[k] != 1.0:
                    entry["reach"] = {**entry.get("reach", {}), ch: float(mult[k])}
            lo, hi = int(np.argmin(mult)), int(np.argmax(mult))
            spread.append(f"{ch} {mult[lo]:.3g} ({table['store'].iloc[lo]}) .. {mult[hi]:.3g} ({table['store'].iloc[hi]})")
        description = str(net.network.get("description", "")).replace(
            "reach not estimated (1)", "reach = the store's opt-in share over the market's, by channel ("
            + ", ".join(channels) + ")")
        network = {**net.network, "stores": tuple(stores), "description": description}
        update["stores"] = StoreNetwork.model_validate(network)
        store_note = ("store: reach multipliers = each store's opt-in share (its home customers) over the market's: "
                      + "; ".join(spread) + " (stores.csv: optin_<channel>, reach_<channel>)")
        notes.append(store_note)
        net = dataclasses.replace(net, table=table, network=network, notes=net.notes + [store_note])
        opt = dataclasses.replace(opt, network=net, notes=opt.notes + notes)
    elif opt is not None:
        opt = dataclasses.replace(opt, notes=opt.notes + notes)
    cm.market = market.model_copy(update=update)
    cm.diagnostics = dataclasses.replace(cm.diagnostics, optional_columns=opt,
                                         notes=[_reach_told(x) for x in cm.diagnostics.notes] + notes)
    if opt is not None:
        if opt.network is not None:
            opt = dataclasses.replace(opt, network=dataclasses.replace(
                opt.network, notes=[_reach_told(x) for x in opt.network.notes]))
        cm.diagnostics.optional_columns = dataclasses.replace(opt, notes=[_reach_told(x) for x in opt.notes])
    return notes
