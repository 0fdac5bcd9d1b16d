"""Reading and cleaning a retailer's transaction log.

A transaction log is one row per purchase (or purchase line) with at least a customer id, a
date and an amount. It comes as a CSV file exported anywhere in the world, a Parquet file, a
DuckDB or SQLite database or a database URL (:mod:`~simulator.calibration.sources`: read in
batches, each column dictionary-encoded or typed, no Python object per row). Numbers and dates
written the local way (``1 234,56``, ``1,00,000.50``, ``25.12.2023``) are recognised from the
file's own values (:mod:`~simulator.calibration.formats`) unless told. Then
:func:`read_transactions` applies the rules below and counts what each did in a
:class:`CleaningReport`:

* **bad rows** -- a missing customer id, an unparsable date, a missing / non-numeric /
  non-finite amount, a CSV row with another number of fields than the header. With
  ``on_bad_rows="fail"`` (default) every bad row is reported as an
  :class:`~simulator.errors.InputError` (path, line, column, what was expected; at most
  :data:`MAX_LISTED_BAD_ROWS` lines plus a final ``... and N more bad rows``); with
  ``on_bad_rows="skip"`` they are dropped, counted and their first lines listed
  (:attr:`CleaningReport.skipped_lines`). An option that does not fit the file (a
  ``date_format``, ``decimal`` or ``thousands`` under which most values do not parse) is
  one error naming the option and the first line it fails on, whatever ``on_bad_rows``;
* **blank lines** (every field read empty) are ignored and not counted as rows;
* **identical rows are kept**: two purchases of the same amount by one customer on one day
  are real (two invoices), and are counted (:attr:`CleaningReport.identical_rows`). With
  ``drop_duplicates=True`` a row identical to an earlier one in every column of the file is
  dropped and counted instead;
* **zero amounts** are kept: a transaction with zero spend (free items, fully discounted
  baskets);
* **negative amounts are returns**, not purchase occasions: each return is netted against
  the same customer's spend -- its own transaction's lines first when the log has a
  transaction id, then that day's purchases, then the customer's most recent earlier
  purchases, never taking a purchase below zero. Returns are processed in date order. A
  return with nothing to net against (no purchase on or before its day, or all of them
  already netted to zero) is dropped and counted as unmatched; the part of a return larger
  than the spend available is discarded. A purchase netted down to zero stays as a
  transaction with zero spend (the customer did come and buy);
* **a transaction** is, with a transaction id column (``transaction_col``, or a column named
  ``transaction_id``), the rows of one id for one customer: they are one basket, amounts
  summed, dated by their first day; two ids are two transactions even on one day. Without
  one, several rows of one customer on one day are merged into one transaction (the
  convention of the customer-base-analysis literature: a transaction is a customer-day);
  ``merge_same_day=False`` keeps one transaction per row. Rows of a log with a transaction
  id whose id is missing follow the rule of a log without one. A merged transaction keeps
  the first ``store`` / ``channel`` / ``category`` and is a member transaction if any of
  its rows is.

Optional columns (:data:`OPTIONAL_COLUMNS`) are used when named (``store_col`` ...) or when
the file has a column of that name. ``member`` is read as a flag (:func:`parse_member_flags`:
``1/true/yes/y/t/member`` or ``0/false/no/n/f/non_member``, any case; anything else, blank
included, is unknown -- never a bad row). Because merging keeps one ``store`` / ``channel`` /
``category`` per transaction, spend by each of them is summarised per month *before* the
merge (after returns netting) in :attr:`TransactionLog.spend_by` (:func:`spend_by_value`): a
basket of several categories counts for each. Columns used for nothing are listed in
:attr:`CleaningReport.ignored_columns`, with the option that would use them when their name
says what they are (``magasin`` -> ``--store-col``), never silently dropped.

Line numbers in error messages are 1-based lines of the file, the header being line 1
(quoted fields spanning several lines are accounted for). For Parquet files and databases
they are the row's position + 1 and the message says "row".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from simulator.calibration.formats import (
    BAD_DAY, AmbiguousDates, NumberFormat, UnknownDates, date_format_words, detect_date_format,
    detect_number_format, has_time_directive, parse_dates, parse_numbers, strip_time,
)
from simulator.calibration.sources import Column, RawLog, Source, open_source, raw_from_table, text_of
from simulator.errors import InputError, InputErrors

__all__ = [
    "CleaningReport",
    "MAX_LISTED_BAD_ROWS",
    "OPTIN_PREFIX",
    "OPTIONAL_COLUMNS",
    "TransactionLog",
    "column_hint",
    "parse_member_flags",
    "read_cdnow",
    "read_transactions",
    "spend_by_value",
]

#: Columns kept when present (after the three required ones), in this order.
OPTIONAL_COLUMNS: tuple[str, ...] = ("store", "channel", "category", "member")

#: Optional columns whose spend is summarised per month before same-day merging.
SPEND_BY_COLUMNS: tuple[str, ...] = ("store", "channel", "category")

#: Name of the transaction id column in :attr:`TransactionLog.transactions` (when the log has one).
TRANSACTION_COLUMN = "transaction_id"

#: Opt-in columns: ``optin_<channel>`` in :attr:`TransactionLog.transactions` (a nullable
#: boolean per transaction: the customer's contact consent on that channel as the till or the
#: CRM recorded it), read from the columns named with ``optin_cols`` or named
#: ``optin_<channel>`` / ``opt_in_<channel>`` / ``opt-in-<channel>`` in the file.
OPTIN_PREFIX = "optin_"
_OPTIN_NAME = re.compile(r"^opt[_\- ]?in[_\- ]([A-Za-z][A-Za-z0-9_\-]{0,63})$", re.IGNORECASE)
_OPTIN_TRUE = frozenset({"1", "true", "yes", "y", "t", "oui", "si", "ja", "opt_in", "optin", "opt-in", "opted_in",
                         "opted in", "in", "consent"})
_OPTIN_FALSE = frozenset({"0", "false", "no", "n", "f", "non", "nein", "opt_out", "optout", "opt-out", "opted_out",
                          "opted out", "out"})
_CHANNEL_WORDS = ("email", "mail", "sms", "app", "push", "phone", "post", "whatsapp")

#: Bad rows listed one per line before the final "... and N more bad rows" line (and skipped
#: lines listed in the cleaning report).
MAX_LISTED_BAD_ROWS = 20

# Values that mean "no value" in exports (SQL NULL, pandas NaN, spreadsheets' N/A).
_MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "<na>", "nat"})
# Values of a member flag (lowercased, stripped); anything else is unknown.
_MEMBER_TRUE = frozenset({"1", "true", "yes", "y", "t", "member"})
_MEMBER_FALSE = frozenset({"0", "false", "no", "n", "f", "non_member", "non-member"})

_CDNOW_COLUMNS = ("master_customer_id", "sample_customer_id", "date", "number_of_cds", "dollar_value")

# words in column names (English, French, Spanish, German, Italian, Hindi-English) that say
# which option would use the column
_COLUMN_WORDS: dict[str, frozenset[str]] = {
    "--customer-col": frozenset({
        "customer", "customers", "client", "clients", "cliente", "kunde", "kunden", "kundennummer", "kundennr",
        "grahak", "card", "carte", "tarjeta", "karte", "cust", "custid", "customerid", "clientid", "shopper"}),
    "--date-col": frozenset({
        "date", "fecha", "datum", "data", "jour", "day", "tarikh", "dia", "tag", "datetime", "timestamp",
        "purchased", "orderdate", "kaufdatum"}),
    "--amount-col": frozenset({
        "amount", "montant", "importe", "betrag", "total", "valor", "value", "prix", "precio", "preis", "rakam",
        "umsatz", "sales", "revenue", "spend", "ttc", "monto", "somme", "importo", "price", "net", "gross",
        "brutto", "netto", "kharcha", "mrp"}),
    "--store-col": frozenset({
        "store", "stores", "shop", "magasin", "boutique", "tienda", "sucursal", "filiale", "geschaeft", "geschaft",
        "laden", "markt", "branch", "outlet", "pdv", "dukan", "dukaan", "negozio", "standort", "storeid",
        "shopid", "location", "site"}),
    "--category-col": frozenset({
        "category", "categories", "categorie", "categoria", "kategorie", "warengruppe", "rayon", "famille",
        "familia", "department", "dept", "categoryid", "productcategory", "famiglia", "reparto", "sezione"}),
    "--channel-col": frozenset({"channel", "canal", "kanal", "vertriebskanal", "canale", "channelid"}),
    "--transaction-col": frozenset({
        "transaction", "transactions", "transactionid", "txn", "trx", "invoice", "facture", "factura", "ticket",
        "bon", "receipt", "recibo", "beleg", "belegnummer", "belegnr", "rechnung", "quittung", "kassenbon", "bill",
        "order", "orderid", "commande", "pedido", "bestellung", "basket", "panier", "boleta", "scontrino",
        "fattura", "ricevuta", "invoiceno", "billno"}),
    "--member-col": frozenset({
        "member", "members", "membre", "adherent", "socio", "mitglied", "loyalty", "fidelite", "fidelidad",
        "sadasya", "ismember", "miembro", "membership", "fidelity", "tesserato"}),
}
_ROLE_FLAGS = {"customer_id": "--customer-col", "date": "--date-col", "amount": "--amount-col",
               "store": "--store-col", "channel": "--channel-col", "category": "--category-col",
               "member": "--member-col", TRANSACTION_COLUMN: "--transaction-col"}


@dataclass(frozen=True)
class CleaningReport:
    """What reading and cleaning did to a transaction log.

    Attributes
    ----------
    rows_read : int
        Data rows in the file (blank lines excluded).
    bad_rows_skipped : int
        Rows dropped for a missing customer id, bad date or bad amount, or another number of
        fields than the header (``on_bad_rows="skip"``).
    duplicates_dropped : int
        Rows identical to an earlier row in every column of the file, dropped
        (``drop_duplicates=True``; 0 otherwise).
    returns_netted : int
        Return rows (negative amounts) netted, fully or in part, against the customer's spend.
    returns_unmatched : int
        Return rows dropped because the customer had no spend on or before that day to net
        against.
    rows_merged : int
        Purchase rows absorbed by merging rows of one transaction (rows before the merge
        minus transactions after it).
    zero_amount : int
        Purchase rows with an amount of exactly zero in the file, kept as zero-spend
        transactions (purchases netted down to zero by returns are not counted here).
    transactions : int
        Transactions in the cleaned log.
    customers : int
        Distinct customers in the cleaned log.
    first_date, last_date : datetime.date or None
        Date range of the cleaned log.
    identical_rows : int
        Rows identical to an earlier row in every column read, kept (two invoices of one
        customer on one day for the same amount are real); with ``drop_duplicates`` they
        are the ``duplicates_dropped`` instead and this is 0.
    merged_by : str
        What a transaction is: ``"transaction id"``, ``"customer-day"`` or ``"row"``.
    read_as : str
        How the file was read, to check and override: ``delimiter ';', encoding cp1252,
        decimal ',', thousands ' ', dates %d/%m/%Y``.
    columns : tuple of (str, str)
        (role, column of the file) of every column used.
    ignored_columns : tuple of str
        Columns of the file used for nothing.
    column_hints : tuple of (str, str)
        (column, option) for ignored columns whose name says what they are:
        ``("magasin", "--store-col")``.
    skipped_lines : tuple of int
        Lines (rows for Parquet and databases) of the first :data:`MAX_LISTED_BAD_ROWS` bad
        rows skipped.
    row_word : str
        ``"line"`` (CSV) or ``"row"``: what ``skipped_lines`` count.
    notes : tuple of str
        Choices made while reading that the data did not settle (ambiguous amounts or
        dates, an encoding changed mid-file).
    """

    rows_read: int
    bad_rows_skipped: int
    duplicates_dropped: int
    returns_netted: int
    returns_unmatched: int
    rows_merged: int
    zero_amount: int
    transactions: int
    customers: int
    first_date: date | None
    last_date: date | None
    identical_rows: int = 0
    merged_by: str = "customer-day"
    read_as: str = ""
    columns: tuple[tuple[str, str], ...] = ()
    ignored_columns: tuple[str, ...] = ()
    column_hints: tuple[tuple[str, str], ...] = ()
    skipped_lines: tuple[int, ...] = ()
    row_word: str = "line"
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """Plain, JSON-serialisable dict (dates as ISO strings, tuples as lists)."""
        out: dict = {}
        for key, value in asdict(self).items():
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[key] = value
        return out

    def ignored_text(self) -> str | None:
        """``ignored columns: magasin, note -- to use them: --store-col magasin`` (None if none)."""
        if not self.ignored_columns:
            return None
        text = "ignored columns: " + ", ".join(self.ignored_columns)
        if self.column_hints:
            text += " -- to use them: " + ", ".join(
                f"{flag}={_shell_word(col)}" if flag.startswith("--optin-col ") else f"{flag} {_shell_word(col)}"
                for col, flag in self.column_hints)
        return text

    def skipped_text(self) -> str | None:
        """``skipped lines: 5, 9, 12 and 480 more`` (None if no row was skipped)."""
        if not self.bad_rows_skipped:
            return None
        shown = ", ".join(str(n) for n in self.skipped_lines)
        rest = self.bad_rows_skipped - len(self.skipped_lines)
        return f"skipped {self.row_word}s: {shown}" + (f" and {rest:,} more" if rest > 0 else "")


def _shell_word(text: str) -> str:
    return text if re.fullmatch(r"[A-Za-z0-9_.\-]+", text) else "'" + text.replace("'", "'\\''") + "'"


@dataclass(frozen=True, eq=False)
class TransactionLog:
    """A cleaned transaction log.

    Attributes
    ----------
    transactions : pandas.DataFrame
        Columns ``customer_id`` (string), ``date`` (``datetime64[ns]`` at midnight: day
        precision), ``amount`` (float64, >= 0), then whichever of :data:`OPTIONAL_COLUMNS`
        the file had: ``store`` / ``channel`` / ``category`` as read (missing: NaN),
        ``member`` as a nullable ``boolean`` (NA: unknown), then ``transaction_id`` (string)
        when the log has one. Sorted by customer then date, with a fresh RangeIndex.
    report : CleaningReport
        Counts of what cleaning did.
    spend_by : dict of str to pandas.DataFrame
        For each of ``store`` / ``channel`` / ``category`` the file had, spend per calendar
        month and value, counted on the rows *before* merging (after returns netting), so
        that a transaction spread over several categories counts for each (see
        :func:`spend_by_value`). Empty for a log without those columns (the CDNOW sample).
    """

    transactions: pd.DataFrame
    report: CleaningReport
    spend_by: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.transactions)


# --------------------------------------------------------------------------------------
# public readers
# --------------------------------------------------------------------------------------


def read_transactions(
    path: str | Path,
    *,
    customer_col: str = "customer_id",
    date_col: str = "date",
    amount_col: str = "amount",
    date_format: str | None = None,
    on_bad_rows: Literal["fail", "skip"] = "fail",
    merge_same_day: bool = True,
    drop_duplicates: bool = False,
    store_col: str | None = None,
    channel_col: str | None = None,
    category_col: str | None = None,
    member_col: str | None = None,
    transaction_col: str | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    decimal: str | None = None,
    thousands: str | None = None,
    table: str | None = None,
    query: str | None = None,
    optin_cols: dict[str, str] | tuple[tuple[str, str], ...] | None = None,
) -> TransactionLog:
    """Read and clean a retailer's transaction log (CSV, Parquet, a database).

    Parameters
    ----------
    path : str or Path
        ``.csv`` / ``.txt`` (optionally ``.gz``), ``.parquet`` / ``.pq``, a DuckDB (``.duckdb``,
        ``.db``) or SQLite (``.sqlite``, ``.db``) file, or a database URL
        (``sqlite:///path.db``, ``duckdb:///path.duckdb``, ``postgresql://...``); see
        :mod:`~simulator.calibration.sources`. A CSV file needs a header line.
    customer_col, date_col, amount_col : str
        Names of the required columns (matched exactly, else case-insensitively). In the
        result they are renamed ``customer_id``, ``date`` and ``amount``.
    date_format : str, optional
        A :func:`~datetime.datetime.strptime` format such as ``"%d/%m/%Y"``. By default the
        layout is recognised from the dates themselves
        (:func:`~simulator.calibration.formats.detect_date_format`); a time of day after the
        date is allowed unless the format reads one, and only the calendar date as written is
        kept. Typed date / timestamp columns are used as they are (local wall-clock date).
    on_bad_rows : {"fail", "skip"}
        Raise on bad rows (default) or drop, count and list them.
    merge_same_day : bool
        Without a transaction id, merge several rows of one customer on one day into one
        transaction (default).
    drop_duplicates : bool
        Drop rows identical to an earlier one in every column of the file (default: keep).
    store_col, channel_col, category_col, member_col, transaction_col : str, optional
        Columns of the optional fields, when not named ``store``, ``channel``, ``category``,
        ``member``, ``transaction_id``.
    delimiter, encoding : str, optional
        CSV delimiter and text encoding (default: sniffed).
    decimal, thousands : str, optional
        Decimal mark (``"."`` or ``","``) and thousands separator (``","``, ``"."``, ``" "``,
        ``"'"`` or ``""`` for none) of text amounts (default: recognised from the amounts).
    table, query : str, optional
        For a database: the table, or an SQL query giving the rows.

    Returns
    -------
    TransactionLog

    Raises
    ------
    InputErrors
        The source cannot be read, is empty, lacks a required column, has no usable purchase
        rows, an option does not fit it, or (``on_bad_rows="fail"``) it has bad rows.
    """
    if on_bad_rows not in ("fail", "skip"):
        raise ValueError(f"on_bad_rows must be 'fail' or 'skip', not {on_bad_rows!r}")
    number = _number_options(decimal, thousands)
    source = open_source(path, delimiter=_delimiter_option(delimiter), encoding=encoding, table=table, query=query)
    where = source.where
    names = list(source.names)
    columns = _resolve_columns(source, {"customer_id": customer_col, "date": date_col, "amount": amount_col})
    explicit = {"store": store_col, "channel": channel_col, "category": category_col, "member": member_col,
                TRANSACTION_COLUMN: transaction_col}
    taken = set(columns.values())
    optional: dict[str, str] = {}
    for role in (*OPTIONAL_COLUMNS, TRANSACTION_COLUMN):
        given = explicit[role]
        if given is not None:
            found = _find_column(names, given)
            if found is None:
                raise InputErrors.one(where, f"no column {given!r} (given with {_ROLE_FLAGS[role]}); found columns "
                                      f"{_shown(names)}", line=_header_line(source))
            if found in taken:
                raise InputErrors.one("(command line)", f"column {found!r} is already used for another field",
                                      field=_ROLE_FLAGS[role])
        else:
            candidates = (role, "transaction") if role == TRANSACTION_COLUMN else (role,)
            found = next((f for f in (_find_column(names, c) for c in candidates) if f is not None), None)
            if found is None or found in taken:
                continue
        optional[role] = found
        taken.add(found)
    for channel, found in _optin_columns(source, names, taken, optin_cols).items():
        optional[OPTIN_PREFIX + channel] = found
        taken.add(found)
    roles = {**columns, **optional}
    ignored = [n for n in names if n not in taken]
    if drop_duplicates:
        roles.update({f"_other{i}": n for i, n in enumerate(ignored)})
    raw = source.read(roles)
    if raw.nrows == 0 and raw.ragged == 0:
        raise InputErrors.one(where, "no transaction rows after the header" if source.kind == "csv" else "no rows")
    hints = tuple((n, h) for n in ignored if (h := column_hint(n)) is not None and h not in
                  [_ROLE_FLAGS[r] for r in roles if r in _ROLE_FLAGS])
    hints += tuple((n, f"--optin-col {ch}") for n in ignored if (ch := optin_hint(n)) is not None
                   and not any(n == c for c, _ in hints))
    try:
        return _clean(
            raw,
            date_format=date_format,
            number=number,
            on_bad_rows=on_bad_rows,
            merge_same_day=merge_same_day,
            drop_duplicates=drop_duplicates,
            ignored=tuple(ignored),
            hints=hints,
        )
    finally:
        del raw
        # Arrow's allocator keeps what the read's batches freed for itself: hand it back, or a
        # 100-million-row log holds ~5 GB of nothing through the fits
        pa.default_memory_pool().release_unused()


def read_cdnow(path: str | Path) -> TransactionLog:
    """Read the CDNOW sample (Fader, Hardie & Lee 2005) into a :class:`TransactionLog`.

    The file is whitespace separated without header, five columns:
    ``master_customer_id sample_customer_id date(YYYYMMDD) number_of_cds dollar_value``.
    ``sample_customer_id`` is the customer id and ``dollar_value`` the amount. Rows of one
    customer on one day are merged (amounts summed), as in the literature; bad rows always
    fail (line numbers are file lines, the first row being line 1).

    Identical rows are kept, as in every log without a transaction id: the file has no order
    id, and its 21 repeated rows are separate orders of equal value on one day. Keeping them
    reproduces the published Gamma-Gamma fit on this sample (p = 6.25, q = 3.74, gamma =
    15.44, Fader & Hardie 2013); dropping them does not. (The transaction counts, 6,696
    customer-days of 2,357 customers, are the same either way.)
    """
    try:
        raw = pd.read_csv(
            path,
            sep=r"\s+",
            header=None,
            dtype=str,
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError:
        raise InputErrors.one(path, "file is empty; expected the CDNOW sample (5 whitespace-separated columns)") from None
    except pd.errors.ParserError as exc:
        raise _parser_error(path, exc, "expected 5 whitespace-separated columns per line") from None
    except UnicodeDecodeError:
        raise InputErrors.one(path, "not UTF-8 text; expected the CDNOW sample") from None
    except OSError as exc:
        raise InputErrors.one(path, f"cannot read the file: {exc.strerror or exc}") from None
    if raw.shape[1] != len(_CDNOW_COLUMNS):
        raise InputErrors.one(
            path,
            f"expected {len(_CDNOW_COLUMNS)} whitespace-separated columns "
            f"({' '.join(_CDNOW_COLUMNS)}), found {raw.shape[1]}",
        )
    raw.columns = list(_CDNOW_COLUMNS)
    lines = np.arange(1, len(raw) + 1, dtype=np.int64)
    blank = raw.isna().all(axis=1).to_numpy()
    raw, lines = raw.loc[~blank].reset_index(drop=True), lines[~blank]
    if raw.empty:
        raise InputErrors.one(path, "file has no rows; expected the CDNOW sample")
    table = pa.table({c: pa.array(raw[c].fillna("").astype(object).tolist(), pa.string()) for c in raw.columns})
    log = raw_from_table(str(path), table,
                         {"customer_id": "sample_customer_id", "date": "date", "amount": "dollar_value"}, lines)
    return _clean(log, date_format="%Y%m%d", number=(".", ""), on_bad_rows="fail",
                  merge_same_day=True, drop_duplicates=False, ignored=(), hints=())


def parse_member_flags(values: pd.Series) -> pd.Series:
    """A member column as a nullable ``boolean`` Series (same index).

    True for ``1``, ``true``, ``yes``, ``y``, ``t``, ``member``; False for ``0``, ``false``,
    ``no``, ``n``, ``f``, ``non_member``, ``non-member`` (any case, surrounding blanks
    ignored; Parquet booleans and 0/1 numbers as they are). Anything else -- blank, ``NA``,
    ``maybe``, ``2`` -- is NA (unknown): a flag nobody can read says nothing about
    membership, but the purchase is still a purchase, so it is never a bad row.
    """
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        number = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        out[number == 1.0] = True
        out[number == 0.0] = False
        return out
    text = _as_text(values).str.lower()
    out[text.isin(_MEMBER_TRUE).to_numpy(dtype=bool)] = True
    out[text.isin(_MEMBER_FALSE).to_numpy(dtype=bool)] = False
    return out


def spend_by_value(frame: pd.DataFrame, columns: tuple[str, ...] = SPEND_BY_COLUMNS) -> dict[str, pd.DataFrame]:
    """Spend per calendar month and value of each of ``columns`` present in ``frame``.

    ``frame`` holds purchase rows (``date``, ``amount`` and the columns). Returns, per column
    present, a frame with ``month`` (``Period[M]``), ``value`` (the value as text, stripped;
    None when missing: blank or a no-value token such as ``NA``), ``amount`` (spend) and
    ``rows``, sorted by month then value. A month summary is all a calibration needs: its
    window always ends on a month end.
    """
    out: dict[str, pd.DataFrame] = {}
    present = [c for c in columns if c in frame.columns]
    if not present:
        return out
    month = pd.to_datetime(frame["date"]).to_numpy().astype("datetime64[M]").astype(np.int64)
    amount = frame["amount"].to_numpy(dtype=np.float64)
    for name in present:
        try:
            codes, uniques = pd.factorize(frame[name], use_na_sentinel=True)
        except TypeError:  # unhashable cells (Parquet lists / maps)
            codes, uniques = pd.factorize(frame[name].astype(str), use_na_sentinel=True)
        text = _as_text(pd.Series(uniques)).to_numpy(dtype=object)
        out[name] = _month_table(month, amount, codes.astype(np.int64), text)
    return out


def column_hint(name: str) -> str | None:
    """The option that would use a column, judged from its name (``magasin`` ->
    ``--store-col``, ``N° facture`` -> ``--transaction-col``), or None."""
    plain = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    plain = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", plain).lower()
    tokens = [t for t in re.split(r"[^a-z0-9]+", plain) if t]
    words = tokens + ["".join(tokens)] + ["".join(tokens[i:i + 2]) for i in range(len(tokens) - 1)]
    for word in words:
        for flag, vocabulary in _COLUMN_WORDS.items():
            if word in vocabulary or (word.endswith("s") and word[:-1] in vocabulary):
                return flag
    return None


# --------------------------------------------------------------------------------------
# options and columns
# --------------------------------------------------------------------------------------


def _number_options(decimal: str | None, thousands: str | None) -> tuple[str | None, str | None]:
    from simulator.calibration.formats import THOUSANDS_CHOICES

    if decimal is not None and decimal not in (".", ","):
        raise InputErrors.one("(command line)", f"{decimal!r} is not a decimal mark (expected . or ,)", field="--decimal")
    if thousands is not None:
        key = thousands if thousands in THOUSANDS_CHOICES else thousands.strip().lower()
        if key not in THOUSANDS_CHOICES:
            raise InputErrors.one("(command line)", f"{thousands!r} is not a thousands separator "
                                  "(expected , or . or space or ' or none)", field="--thousands")
        thousands = THOUSANDS_CHOICES[key]
    if decimal is not None and thousands is not None and thousands == decimal:
        raise InputErrors.one("(command line)", f"the thousands separator cannot be the decimal mark {decimal!r}",
                              field="--thousands")
    return decimal, thousands


def _delimiter_option(delimiter: str | None) -> str | None:
    if delimiter is None:
        return None
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
    value = named.get(delimiter.strip().lower(), delimiter)
    if len(value) != 1 or value in "\r\n\"":
        raise InputErrors.one("(command line)", f"{delimiter!r} is not a delimiter (expected one character such as "
                              "',' ';' '|' or tab)", field="--delimiter")
    return value


def _find_column(columns: list[str], name: str) -> str | None:
    if name in columns:
        return name
    folded = [c for c in columns if c.casefold() == name.strip().casefold()]
    return folded[0] if len(folded) == 1 else None


def _optin_columns(source: Source, names: list[str], taken: set[str],
                   given: dict[str, str] | tuple[tuple[str, str], ...] | None) -> dict[str, str]:
    """The opt-in columns: channel -> column of the file, those named with ``optin_cols``
    (``--optin-col CHANNEL=COLUMN``) first, then the file's columns named ``optin_<channel>``."""
    out: dict[str, str] = {}
    pairs = list(given.items()) if isinstance(given, dict) else list(given or ())
    for channel, column in pairs:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]{0,63}", str(channel)):
            raise InputErrors.one("(command line)", f"{channel!r} is not a channel name (expected CHANNEL=COLUMN, the "
                                  "channel a letter, then letters, digits, _ or -, e.g. email=optin_mail)",
                                  field="--optin-col")
        found = _find_column(names, column)
        if found is None:
            raise InputErrors.one(source.where, f"no column {column!r} (given with --optin-col {channel}={column}); found "
                                  f"columns {_shown(names)}", line=_header_line(source))
        if found in taken or found in out.values():
            raise InputErrors.one("(command line)", f"column {found!r} is already used for another field",
                                  field="--optin-col")
        if channel in out:
            raise InputErrors.one("(command line)", f"channel {channel!r} given twice", field="--optin-col")
        out[channel] = found
    for n in names:
        m = _OPTIN_NAME.match(n)
        if m is None or n in taken or n in out.values():
            continue
        channel = m.group(1).lower()
        if channel not in out:
            out[channel] = n
    return out


def optin_hint(name: str) -> str | None:
    """The channel of an opt-in column judged from its name (``email_consent`` -> ``email``,
    ``OptInSMS`` -> ``sms``), or None: an ignored column's hint ``--optin-col email=...``."""
    plain = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()
    tokens = [t for t in re.split(r"[^a-z0-9]+", plain) if t]
    joined = "".join(tokens)
    if not ("optin" in joined or "consent" in joined or "opted" in joined):
        return None
    for word in _CHANNEL_WORDS:
        if word in joined:
            return "email" if word == "mail" and "email" not in joined else word
    return None


def _optin_codes(raw: RawLog, col: Column, on_bad_rows: str) -> tuple[np.ndarray, int]:
    """Opt-in flag per row: 1 opted in, 0 not, -1 unknown (blank, NA); the number of rows with
    another value. With ``on_bad_rows="fail"`` such a value is an error naming the file, the
    line and the column (a consent nobody can read is a data problem to fix, not a guess); with
    ``"skip"`` it is unknown and counted."""
    values = col.values
    n = len(col.codes) if col.codes is not None else len(col.floats)
    if col.codes is None:  # numeric column: 1 / 0
        x = col.floats
        out = np.where(x == 1.0, 1, np.where(x == 0.0, 0, -1)).astype(np.int8)
        bad = np.isfinite(x) & (x != 1.0) & (x != 0.0)
    else:
        if pa.types.is_boolean(values.type):
            texts = np.array(["true" if v else "false" if v is not None else "" for v in values.to_pylist()], dtype=object)
        else:
            texts = np.asarray(text_of(values).to_numpy(zero_copy_only=False), dtype=object)
        low = np.array([str(t).strip().lower() if t is not None else "" for t in texts], dtype=object)
        if len(low) and pd.api.types.is_float_dtype(pd.to_numeric(pd.Series(low), errors="coerce")):
            num = pd.to_numeric(pd.Series(low), errors="coerce").to_numpy()
            low = np.where(num == 1.0, "1", np.where(num == 0.0, "0", low))
        per_value = np.array([1 if t in _OPTIN_TRUE else 0 if t in _OPTIN_FALSE else -1 if t in _MISSING_TOKENS else -2
                              for t in low], dtype=np.int8)
        out = np.full(n, -1, dtype=np.int8)
        ok = col.codes >= 0
        if len(per_value):
            out[ok] = per_value[col.codes[ok]]
        bad = out == -2
        out[bad] = -1
    n_bad = int(bad.sum())
    if n_bad and on_bad_rows == "fail":
        pos = int(np.flatnonzero(bad)[0])
        more = f" ({n_bad:,} rows have such values)" if n_bad > 1 else ""
        raise InputErrors.one(raw.where, f"{_value(col, pos)} is not an opt-in flag (expected yes/no, 1/0, true/false, "
                              f"or blank for unknown){more}", field=col.name, line=_line(raw, pos))
    return out, n_bad


def _shown(columns: list[str]) -> str:
    return ", ".join(repr(c) for c in columns[:20]) + (f", ... ({len(columns)} in all)" if len(columns) > 20 else "")


def _header_line(source: Source) -> int | None:
    return 1 if source.kind == "csv" else None


def _resolve_columns(source: Source, wanted: dict[str, str]) -> dict[str, str]:
    columns = list(source.names)
    found: dict[str, str] = {}
    missing: list[tuple[str, str]] = []
    for role, name in wanted.items():
        col = _find_column(columns, name)
        if col is None:
            missing.append((role, name))
        else:
            found[role] = col
    if missing:
        shown = _shown(columns)
        hint = ""
        first = columns[0] if columns else ""
        if source.kind == "csv" and re.fullmatch(r"[\d\s.,:/\-+]+", first or "x"):
            hint = "; the first line looks like data: the file needs a header line naming the columns"
        elif source.kind == "csv" and len(columns) == 1:
            hint = f"; is the delimiter right? (read with {source.describe()[0]}; --delimiter to change)"
        else:
            suggestions = []
            for role, _ in missing:
                flag = _ROLE_FLAGS[role]
                match = next((c for c in columns if c not in found.values() and column_hint(c) == flag), None)
                if match is not None:
                    suggestions.append(f"{flag} {_shell_word(match)}")
            if suggestions:
                hint = "; name them with " + ", ".join(suggestions)
        plural = "s" if len(missing) > 1 else ""
        raise InputErrors.one(
            source.where,
            f"not a transaction log: missing required column{plural} "
            f"{', '.join(repr(m) for _, m in missing)}; found columns {shown}{hint}",
            line=_header_line(source),
        )
    return found


def _parser_error(path: str | Path, exc: Exception, expected: str) -> InputErrors:
    text = str(exc)
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if match:
        want, line, saw = (int(g) for g in match.groups())
        return InputErrors.one(path, f"{expected}: expected {want} fields, found {saw}", line=line)
    return InputErrors.one(path, f"cannot parse the file: {text.strip().splitlines()[-1] if text.strip() else exc!r}")


# --------------------------------------------------------------------------------------
# field parsing (on the distinct values of each column)
# --------------------------------------------------------------------------------------


def _as_text(s: pd.Series) -> pd.Series:
    """A column as stripped strings ("" for missing), integral floats without ``.0``."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("string").fillna("").astype(object)
    if pd.api.types.is_float_dtype(s.dtype):
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(vals)
        if finite.any() and np.all(vals[finite] == np.round(vals[finite])):
            s = pd.Series(vals, index=s.index).astype("Int64")
    if pd.api.types.is_integer_dtype(s.dtype) or isinstance(s.dtype, pd.Int64Dtype):
        return s.astype("string").fillna("").astype(object)
    if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
        return s.fillna("").str.strip()
    text = s.astype(object).where(s.notna(), "")
    return text.astype(str).str.strip()


def _value_texts(col: Column) -> np.ndarray:
    """The distinct values of a text column as stripped Python strings (missing: None)."""
    text = text_of(col.values)
    out = np.asarray(pc.utf8_trim_whitespace(text).to_numpy(zero_copy_only=False), dtype=object)
    missing = np.array([v is None or v.lower() in _MISSING_TOKENS for v in out], dtype=bool)
    out[missing] = None
    return out


def _describe(value: object) -> str:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
    if not text:
        return "the field is empty"
    if len(text) > 40:
        text = text[:37] + "..."
    return f"got {text!r}"


def _customers(col: Column) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """Customer codes ranked in text order (-1: missing), the ids in that order, and bad rows."""
    text = pc.utf8_trim_whitespace(text_of(col.values))
    if not pa.types.is_string(col.values.type) and pc.count_distinct(text).as_py() < len(text):
        # typed ids whose text coincides (7 and 7.0): one customer
        enc = pc.dictionary_encode(text)
        remap = np.append(np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int32), -1)
        col = Column(col.name, codes=remap[col.codes], values=enc.dictionary)
        text = enc.dictionary
    lowered = pc.utf8_lower(pc.fill_null(text, ""))
    missing = np.asarray(pc.is_in(lowered, value_set=pa.array(sorted(_MISSING_TOKENS))).to_numpy(zero_copy_only=False),
                         dtype=bool)
    order = np.asarray(pc.sort_indices(text).to_numpy(), dtype=np.int64)
    order = order[~missing[order]]  # ids in text order, the missing ones left out
    rank = np.full(len(text) + 1, -1, dtype=np.int32)  # code -1 (null) -> the last entry
    rank[order] = np.arange(len(order), dtype=np.int32)
    ranked = rank[col.codes]
    return ranked, text.take(pa.array(order)), ranked < 0


def _amounts(col: Column, given: tuple[str | None, str | None], delimiter: str | None
             ) -> tuple[np.ndarray, NumberFormat | None, str | None]:
    """Amounts as float64 (NaN: bad), the number format of text amounts, a note."""
    if col.floats is not None:
        return col.floats, None, None
    decimal, thousands = given
    values = text_of(col.values)
    fmt, note = detect_number_format(values, col.weights(), delimiter=delimiter, decimal=decimal, thousands=thousands)
    parsed = parse_numbers(values, fmt)
    out = parsed[np.maximum(col.codes, 0)] if len(parsed) else np.full(len(col.codes), np.nan)
    out[col.codes < 0] = np.nan
    return out, fmt, note


def _dates(col: Column, date_format: str | None, *, day_first_hint: bool, where: str, raw: RawLog
           ) -> tuple[np.ndarray, str | None, str | None]:
    """Day numbers (BAD_DAY: bad), the format of text dates, a note.

    A time of day after the date is cut off the distinct values (unless ``date_format``
    reads one); the rows keep the codes of their full text, so two purchases at different
    times of one day stay different rows.
    """
    if col.days is not None:
        return col.days, None, None
    values = pc.utf8_trim_whitespace(text_of(col.values))
    weights = col.weights()
    to_date = None
    if (date_format is None or not has_time_directive(date_format)) and len(values) \
            and pc.max(pc.utf8_length(values)).as_py() > 10:
        enc = pc.dictionary_encode(strip_time(values))
        to_date = np.asarray(pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
        values = enc.dictionary
        weights = np.bincount(to_date, weights=weights, minlength=len(values)).astype(np.int64)
    note = None
    fmt = date_format
    if fmt is None:
        try:
            fmt, note = detect_date_format(values, weights, day_first_hint=day_first_hint)
        except (AmbiguousDates, UnknownDates) as exc:
            pos = _first_row_with(col, exc.example)
            raise InputErrors.one(where, str(exc), field=col.name,
                                  line=int(raw.lines(np.array([pos]))[0]) if pos is not None else None) from None
    parsed = parse_dates(values, fmt)
    if to_date is not None:
        parsed = parsed[to_date]
    out = parsed[np.maximum(col.codes, 0)] if len(parsed) else np.full(len(col.codes), BAD_DAY, np.int32)
    out[col.codes < 0] = BAD_DAY
    return out, fmt, note


def _first_row_with(col: Column, text: str) -> int | None:
    values = pc.utf8_trim_whitespace(text_of(col.values))
    same = pc.or_(pc.equal(values, text), pc.equal(strip_time(values), text))
    hits = np.flatnonzero(np.asarray(same.fill_null(False).to_numpy(zero_copy_only=False), bool))
    if not len(hits):
        return None
    rows = np.flatnonzero(np.isin(col.codes, hits))
    return int(rows[0]) if len(rows) else None


def _member_codes(col: Column) -> np.ndarray:
    """Member flag per row: 1 member, 0 not, -1 unknown."""
    values = col.values
    if pa.types.is_boolean(values.type) or pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        series = pd.Series(values.to_pandas())
    else:
        series = pd.Series(np.asarray(text_of(values).to_numpy(zero_copy_only=False), dtype=object))
    flags = parse_member_flags(series)
    per_value = np.where(flags.isna().to_numpy(), -1, flags.fillna(False).to_numpy(dtype=bool).astype(np.int8))
    per_value = per_value.astype(np.int8)
    out = np.full(len(col.codes), -1, dtype=np.int8)
    ok = col.codes >= 0
    if len(per_value):
        out[ok] = per_value[col.codes[ok]]
    return out


# --------------------------------------------------------------------------------------
# cleaning pipeline (arrays in, one frame out)
# --------------------------------------------------------------------------------------


def _clean(
    raw: RawLog,
    *,
    date_format: str | None,
    number: tuple[str | None, str | None],
    on_bad_rows: str,
    merge_same_day: bool,
    drop_duplicates: bool,
    ignored: tuple[str, ...],
    hints: tuple[tuple[str, str], ...],
) -> TransactionLog:
    where = raw.where
    cols = raw.columns
    n = raw.nrows
    notes = list(raw.notes)

    cust, labels, bad_customer = _customers(cols["customer_id"])
    amounts, number_format, note = _amounts(cols["amount"], number, raw.delimiter)
    if note:
        notes.append(note)
    bad_amount = ~np.isfinite(amounts)
    day_first_hint = raw.delimiter == ";" or (number_format is not None and number_format.decimal == ",")
    days, fmt, note = _dates(cols["date"], date_format, day_first_hint=day_first_hint, where=where, raw=raw)
    if note:
        notes.append(note)
    bad_date = days == BAD_DAY

    _check_overrides(raw, date_format, fmt, bad_date, number, number_format, bad_amount)
    date_words = date_format_words(fmt) if fmt else None
    checks = [
        (cols["customer_id"], bad_customer, "expected a customer id"),
        (cols["date"], bad_date, (f"expected a date in the format {date_format!r}" if date_format else
                                  f"expected a date as {date_words}") if fmt else "expected a date"),
        (cols["amount"], bad_amount, f"expected a number such as {number_format.example()}" if number_format else
         "expected a number"),
    ]
    bad = bad_customer | bad_date | bad_amount
    read_as = ", ".join(raw.read_as + ([number_format.words()] if number_format else [])
                        + ([f"dates {fmt}"] if fmt else []))

    bad_rows_skipped = 0
    skipped_lines: tuple[int, ...] = ()
    if bad.any() or raw.ragged:
        if on_bad_rows == "fail":
            raise _bad_row_errors(raw, bad, checks, date_format=date_format, fmt=fmt, number_format=number_format)
        bad_rows_skipped = int(bad.sum()) + raw.ragged
        skipped_lines = _first_bad_lines(raw, bad)

    from simulator.calibration._kernels import argsort_pair, net_returns, pair_starts

    idx = np.flatnonzero(~bad) if bad.any() else None
    if (idx is not None and not len(idx)) or n == 0:
        raise InputErrors.one(where, f"no usable transaction rows ({bad_rows_skipped} bad rows skipped)")
    # rows sorted by customer, day, file order: `rows` are their positions in the file's rows
    c = cust if idx is None else cust[idx]
    d = days if idx is None else days[idx]
    day0 = int(d.min())
    span = int(d.max()) - day0 + 1
    perm = argsort_pair(c, len(labels), (d - day0).astype(np.int32), span)
    rows = perm if idx is None else idx[perm]
    del perm, c, d, idx
    cust, days, amounts = cust[rows], days[rows], amounts[rows]
    optional = {r: cols[r] for r in (*OPTIONAL_COLUMNS, TRANSACTION_COLUMN) if r in cols}
    row_codes = {r: _present_codes(c, r)[rows] for r, c in optional.items()}
    member = _member_codes(optional["member"])[rows] if "member" in optional else None
    optins: dict[str, np.ndarray] = {}
    for role in [r for r in cols if r.startswith(OPTIN_PREFIX)]:
        flags, n_bad = _optin_codes(raw, cols[role], on_bad_rows)
        optins[role] = flags[rows]
        if n_bad:
            notes.append(f"{n_bad:,} rows of the opt-in column {cols[role].name!r} have a value that is not a flag "
                         "(yes/no, 1/0, true/false): read as unknown")

    # identical rows: only rows of one customer on one day can be
    starts = pair_starts(cust, days)
    identical = _identical_rows(starts, rows, amounts, [c for r, c in cols.items() if r != "customer_id"])
    duplicates_dropped = 0
    identical_rows = int(identical.sum())

    def subset(sel: np.ndarray) -> None:
        nonlocal cust, days, amounts, rows, member, row_codes, optins
        cust, days, amounts, rows = cust[sel], days[sel], amounts[sel], rows[sel]
        row_codes = {r: v[sel] for r, v in row_codes.items()}
        optins = {r: v[sel] for r, v in optins.items()}
        member = member[sel] if member is not None else None

    if drop_duplicates and identical.any():
        duplicates_dropped, identical_rows = identical_rows, 0
        subset(~identical)
    del identical

    zero_amount = int((amounts == 0.0).sum())
    returns = amounts < 0
    returns_netted = returns_unmatched = 0
    if returns.any():
        txn = row_codes.get(TRANSACTION_COLUMN)
        spend, returns_netted, returns_unmatched = net_returns(
            cust, days, amounts, txn if txn is not None else np.full(len(cust), -1, np.int64))
        amounts = spend
        subset(~returns)
        if not len(cust):
            raise InputErrors.one(where, "no purchase rows: every amount is negative (returns only)")
    del returns

    rows_before_merge = len(cust)
    spend_by = {}
    if any(r in optional for r in SPEND_BY_COLUMNS):
        month = days.astype(np.int64).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        spend_by = {r: _month_table(month, amounts, row_codes[r], _value_texts(optional[r]))
                    for r in SPEND_BY_COLUMNS if r in optional}
        del month

    # transactions
    txn = row_codes.get(TRANSACTION_COLUMN)
    regroup = None
    if txn is not None:
        merged_by = "transaction id"
        ntx = int(txn.max()) + 1 if len(txn) else 0
        rest = (days - day0).astype(np.int64) if merge_same_day else span + np.arange(len(txn), dtype=np.int64)
        sub = np.where(txn >= 0, txn, ntx + rest)
        regroup = argsort_pair(cust, len(labels), sub, int(sub.max()) + 1)
        starts = pair_starts(cust[regroup], sub[regroup])
        del sub, rest
    elif merge_same_day:
        merged_by = "customer-day"
        starts = pair_starts(cust, days)
    else:
        merged_by = "row"
        starts = np.arange(len(cust), dtype=np.int64)

    def arranged(a: np.ndarray) -> np.ndarray:
        return a if regroup is None else a[regroup]

    g_cust = arranged(cust)[starts]
    g_amount = np.add.reduceat(arranged(amounts), starts)
    g_days = np.minimum.reduceat(arranged(days), starts)
    g_pos = np.minimum.reduceat(arranged(rows), starts)
    g_codes = {r: _first_present(arranged(v), starts) for r, v in row_codes.items()}
    g_member = np.maximum.reduceat(arranged(member), starts) if member is not None else None
    # a transaction is opted in on a channel if any of its rows says so (max of -1 / 0 / 1)
    g_optins = {r: np.maximum.reduceat(arranged(v), starts) for r, v in optins.items()}
    del cust, days, amounts, rows, row_codes, member, optins
    if regroup is not None:  # back to customer, date, file order
        final = np.lexsort((g_pos, g_days, g_cust))
        g_cust, g_amount, g_days, g_pos = g_cust[final], g_amount[final], g_days[final], g_pos[final]
        g_codes = {r: v[final] for r, v in g_codes.items()}
        g_member = g_member[final] if g_member is not None else None
        g_optins = {r: v[final] for r, v in g_optins.items()}

    frame = pd.DataFrame({
        "customer_id": pd.array(labels.take(pa.array(g_cust)), dtype=pd.StringDtype()),
        "date": g_days.astype(np.int64).astype("datetime64[D]").astype("datetime64[ns]"),
        "amount": g_amount.astype(np.float64),
    }, copy=False)
    for r in OPTIONAL_COLUMNS:
        if r == "member" and g_member is not None:
            frame["member"] = _member_array(g_member)
        elif r in g_codes:
            frame[r] = _as_read(optional[r], g_codes[r])
    if TRANSACTION_COLUMN in g_codes:
        text = text_of(optional[TRANSACTION_COLUMN].values)
        frame[TRANSACTION_COLUMN] = pd.array(
            text.take(pa.array(g_codes[TRANSACTION_COLUMN], mask=g_codes[TRANSACTION_COLUMN] < 0)),
            dtype=pd.StringDtype())
    for r, v in g_optins.items():
        frame[r] = _member_array(v)

    used = [("customer_id", cols["customer_id"].name), ("date", cols["date"].name), ("amount", cols["amount"].name)]
    used += [(r, optional[r].name) for r in (*OPTIONAL_COLUMNS, TRANSACTION_COLUMN) if r in optional]
    used += [(r, cols[r].name) for r in g_optins]
    report = CleaningReport(
        rows_read=n + raw.ragged,
        bad_rows_skipped=bad_rows_skipped,
        duplicates_dropped=duplicates_dropped,
        returns_netted=int(returns_netted),
        returns_unmatched=int(returns_unmatched),
        rows_merged=rows_before_merge - len(frame),
        zero_amount=zero_amount,
        transactions=len(frame),
        customers=int(len(g_cust) and 1 + np.count_nonzero(np.diff(g_cust))),
        first_date=frame["date"].min().date(),
        last_date=frame["date"].max().date(),
        identical_rows=identical_rows,
        merged_by=merged_by,
        read_as=read_as,
        columns=tuple(used),
        ignored_columns=ignored,
        column_hints=hints,
        skipped_lines=skipped_lines,
        row_word=raw.row_word,
        notes=tuple(notes),
    )
    return TransactionLog(transactions=frame, report=report, spend_by=spend_by)


def _row_values(col: Column) -> np.ndarray:
    """A column's rows as int64 keys (codes, day numbers) or float64 (numeric amounts)."""
    if col.codes is not None:
        return col.codes.astype(np.int64)
    if col.days is not None:
        return col.days.astype(np.int64)
    return col.floats


def _present_codes(col: Column, role: str) -> np.ndarray:
    """Codes of an optional column with blank values (and, for a transaction id, no-value
    tokens such as NA) as -1: missing."""
    codes = _row_values(col)
    if col.codes is None:
        return codes
    text = pc.utf8_trim_whitespace(text_of(col.values))
    if role == TRANSACTION_COLUMN:
        missing = pc.is_in(pc.utf8_lower(text), value_set=pa.array(sorted(_MISSING_TOKENS)))
    else:
        missing = pc.equal(text, "")
    missing = np.asarray(missing.fill_null(True).to_numpy(zero_copy_only=False), dtype=bool)
    if not missing.any():
        return codes
    return np.where(np.append(missing, True)[codes], -1, codes)


def _first_present(codes: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per group, the first code that is not missing (-1 if none): pandas' ``first``."""
    if not len(starts):
        return codes[:0]
    idx = np.arange(len(codes), dtype=np.int64)
    big = np.int64(len(codes))
    first = np.minimum.reduceat(np.where(codes >= 0, idx, big), starts)
    out = np.full(len(starts), -1, dtype=codes.dtype)
    ok = first < big
    out[ok] = codes[first[ok]]
    return out


def _identical_rows(starts: np.ndarray, rows: np.ndarray, amounts: np.ndarray, columns: list[Column]) -> np.ndarray:
    """Sorted rows equal to an earlier row of their group (one customer on one day, ``starts``;
    rows in file order within a group) in the amount and in every one of ``columns`` as read
    (``rows``: each sorted row's position in the columns)."""
    n = len(rows)
    out = np.zeros(n, dtype=bool)
    if n < 2 or len(starts) == n:
        return out
    ends = np.append(starts[1:], n)
    big = (ends - starts) > 1
    edge = np.zeros(n + 1, dtype=np.int8)  # +1 where a group of several rows begins, -1 after it
    edge[starts[big]] = 1
    edge[ends[big]] -= 1
    multi = np.flatnonzero(np.cumsum(edge[:n], dtype=np.int8))
    group = np.searchsorted(starts, multi, side="right")
    frame = pd.DataFrame({"g": group, "a": amounts[multi],
                          **{f"c{i}": _row_values(c)[rows[multi]] for i, c in enumerate(columns)}})
    out[multi] = frame.duplicated(keep="first").to_numpy(dtype=bool)
    return out


def _member_array(member: np.ndarray) -> pd.arrays.BooleanArray:
    return pd.arrays.BooleanArray(member == 1, member < 0)


def _as_read(col: Column, codes: np.ndarray) -> pd.Series | np.ndarray:
    """A store / channel / category column as read (strings stripped, blank: NaN)."""
    values = col.values
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)
    taken = values.take(pa.array(codes, mask=codes < 0))
    return taken.to_pandas()


def _month_table(month: np.ndarray, amount: np.ndarray, codes: np.ndarray, texts: np.ndarray) -> pd.DataFrame:
    """Spend and rows per month and value text (see :func:`spend_by_value`).

    ``codes`` index ``texts`` (-1: missing); values equal as text are one value; a text that
    is blank or a no-value token is missing (None).
    """
    texts = np.asarray(texts, dtype=object)
    clean = np.array([None if t is None or str(t).strip().lower() in _MISSING_TOKENS else str(t).strip()
                      for t in texts], dtype=object)
    text_codes, uniq = pd.factorize(pd.Series(clean, dtype=object), use_na_sentinel=True)
    nvals = len(uniq)
    value = np.zeros(len(codes), dtype=np.int64)  # 0: missing
    if len(text_codes):
        value = np.where(codes >= 0, text_codes[np.maximum(codes, 0)], -1) + 1
    month0 = int(month.min()) if len(month) else 0
    key = (month - month0) * (nvals + 1) + value
    ukey, pos = np.unique(key, return_inverse=True)
    labels = np.concatenate([[None], np.asarray(uniq, dtype=object)])
    start = (ukey // (nvals + 1) + month0).astype("datetime64[M]")
    table = pd.DataFrame({
        "month": pd.PeriodIndex(pd.DatetimeIndex(start.astype("datetime64[ns]")), freq="M"),
        "value": pd.Series(labels[ukey % (nvals + 1)], dtype=object),
        "amount": np.bincount(pos, weights=amount, minlength=len(ukey)),
        "rows": np.bincount(pos, minlength=len(ukey)).astype(np.int64),
    })
    return table.sort_values(["month", "value"], na_position="last", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------
# bad rows and options that do not fit
# --------------------------------------------------------------------------------------


def _check_overrides(raw: RawLog, date_format: str | None, fmt: str | None, bad_date: np.ndarray,
                     number: tuple[str | None, str | None], number_format: NumberFormat | None,
                     bad_amount: np.ndarray) -> None:
    """An option under which most values of its column do not parse is wrong: one line naming
    it and the first line it fails on."""
    def failing(col: Column, bad: np.ndarray) -> tuple[int, int, int] | None:
        present = col.codes >= 0 if col.codes is not None else np.ones(len(bad), bool)
        if col.codes is not None:
            empty = np.asarray(pc.equal(text_of(col.values), "").fill_null(True).to_numpy(zero_copy_only=False), bool)
            if len(empty):
                present &= ~empty[np.maximum(col.codes, 0)]
        n_present = int(present.sum())
        n_bad = int((bad & present).sum())
        if n_present == 0 or n_bad * 2 <= n_present:
            return None
        return int(np.flatnonzero(bad & present)[0]), n_bad, n_present

    col = raw.columns["date"]
    if date_format is not None and col.codes is not None:
        hit = failing(col, bad_date)
        if hit is not None:
            pos, n_bad, n_present = hit
            guess = ""
            try:
                guessed, _ = detect_date_format(text_of(col.values), col.weights(), day_first_hint=False)
                guess = f"; the dates look like {guessed!r}"
            except ValueError:
                pass
            raise InputErrors.one(
                raw.where, f"{_value(col, pos)} is not a date in --date-format {date_format!r} ({n_bad:,} of "
                f"{n_present:,} rows are not){guess}", field=col.name, line=_line(raw, pos))
    col = raw.columns["amount"]
    decimal, thousands = number
    if number_format is not None and (decimal is not None or thousands is not None):
        hit = failing(col, bad_amount)
        if hit is not None:
            pos, n_bad, n_present = hit
            flags = " and ".join(f for f, v in (("--decimal", decimal), ("--thousands", thousands)) if v is not None)
            guessed, _ = detect_number_format(text_of(col.values), col.weights(), delimiter=raw.delimiter)
            raise InputErrors.one(
                raw.where, f"{_value(col, pos)} is not a number with {flags} ({number_format.words()}; "
                f"{n_bad:,} of {n_present:,} rows are not); the amounts look like {guessed.words()}",
                field=col.name, line=_line(raw, pos))


def _value(col: Column, pos: int) -> str:
    v = col.raw(pos)
    text = "" if v is None else str(v)
    return repr(text[:37] + "..." if len(text) > 40 else text)


def _line(raw: RawLog, pos: int) -> int:
    return int(raw.lines(np.array([pos]))[0])


def _first_bad_lines(raw: RawLog, bad: np.ndarray) -> tuple[int, ...]:
    """Lines of the first bad rows (field problems and ragged rows), in file order."""
    first = np.flatnonzero(bad)[:MAX_LISTED_BAD_ROWS]
    lines = [int(x) for x in raw.lines(first)] if len(first) else []
    if raw.ragged:
        lines += [line for line, _ in raw.ragged_lines()[:MAX_LISTED_BAD_ROWS]]
    return tuple(sorted(lines)[:MAX_LISTED_BAD_ROWS])


def _bad_row_errors(raw: RawLog, bad: np.ndarray, checks: list[tuple[Column, np.ndarray, str]], *,
                    date_format: str | None, fmt: str | None, number_format: NumberFormat | None) -> InputErrors:
    """One error per bad row (first bad column in the field, the others appended), the ragged
    rows, then a hint naming the options."""
    where = raw.where
    positions = np.flatnonzero(bad)
    listed = positions[:MAX_LISTED_BAD_ROWS]
    lines = raw.lines(listed) if len(listed) else np.zeros(0, np.int64)
    errors: list[InputError] = []
    for pos, line in zip(listed, lines):
        problems = [(col.name, f"{expected}, {_describe(col.raw(int(pos)))}") for col, mask, expected in checks if mask[pos]]
        field_, message = problems[0]
        if len(problems) > 1:
            message += "".join(f"; also {c}: {m}" for c, m in problems[1:])
        if raw.row_word == "row":
            message = f"row {int(line)}: {message}"
        errors.append(InputError(where, int(line), field_, message))
    if raw.ragged:
        ncols = len(raw.names)
        for line, found in raw.ragged_lines()[:MAX_LISTED_BAD_ROWS]:
            errors.append(InputError(where, int(line), "", f"expected {ncols} fields, found {found} (the header has {ncols}; "
                                       "is a delimiter inside an unquoted value?)"))
    errors.sort(key=lambda e: e.line or 0)
    total = len(positions) + raw.ragged
    errors = errors[:MAX_LISTED_BAD_ROWS]
    hint = "fix them, or skip bad rows with --on-bad-rows skip"
    fields = {c.name for c, mask, _ in checks if mask.any()}
    date_col, amount_col = checks[1][0].name, checks[2][0].name
    if date_col in fields and fmt and date_format is None:
        hint += f"; dates are read as {fmt} (--date-format to change)"
    if amount_col in fields and number_format is not None:
        hint += f"; amounts with {number_format.words()} (--decimal, --thousands to change)"
    rest = total - len(errors)
    if rest > 0:
        errors.append(InputError(where, None, "", f"... and {rest} more bad rows ({total} in all); {hint}"))
    else:
        last = errors[-1]
        errors[-1] = InputError(last.path, last.line, last.field, f"{last.message} ({hint})" if total == 1 else
                                last.message)
        if total > 1:
            errors.append(InputError(where, None, "", f"{total} bad rows: {hint}"))
    return InputErrors(errors)
