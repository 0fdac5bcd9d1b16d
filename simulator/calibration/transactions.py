"""Reading and cleaning a retailer's transaction log.

A transaction log is one row per purchase line with at least a customer id, a date and an
amount. Real logs are messy, so :func:`read_transactions` applies the rules below and counts
what each rule did in a :class:`CleaningReport`:

* **bad rows** -- a missing customer id, an unparsable date or a missing / non-numeric /
  non-finite amount. With ``on_bad_rows="fail"`` (default) every bad row is reported as an
  :class:`~simulator.errors.InputError` (path, line, column, what was expected; at most
  :data:`MAX_LISTED_BAD_ROWS` lines plus a final ``... and N more bad rows``); with
  ``on_bad_rows="skip"`` they are dropped and counted;
* **blank lines** (every field empty) are ignored and not counted as rows;
* **exact duplicate rows** (every column of the file identical) are dropped and counted;
* **zero amounts** are kept: a transaction with zero spend (free items, fully discounted
  baskets);
* **negative amounts are returns**, not purchase occasions: each return is netted against
  the same customer's spend -- that day's purchases first, then the customer's most recent
  earlier purchases, never taking a purchase below zero. Returns are processed in date
  order. A return with nothing to net against (no purchase on or before its day, or all of
  them already netted to zero) is dropped and counted as unmatched; the part of a return
  larger than the spend available is discarded. A purchase netted down to zero stays as a
  transaction with zero spend (the customer did come and buy);
* **several rows of one customer on one day** are merged into one transaction, amounts
  summed, keeping the first ``store`` / ``channel`` / ``category`` (the convention of the
  customer-base-analysis literature: a transaction is a customer-day); the day is a member
  day if any of its rows is. Pass ``merge_same_day=False`` to keep one transaction per row.

Optional columns (:data:`OPTIONAL_COLUMNS`) are kept when the file has them. ``member`` is
read as a flag (:func:`parse_member_flags`: ``1/true/yes/y/t/member`` or
``0/false/no/n/f/non_member``, any case; anything else, blank included, is unknown -- never a
bad row). Because merging keeps one ``store`` / ``channel`` / ``category`` per customer-day,
spend by each of them is summarised per month *before* the merge (after returns netting) in
:attr:`TransactionLog.spend_by` (:func:`spend_by_value`): a basket of several categories
counts for each.

Line numbers in error messages are 1-based lines of the file, the header being line 1
(quoted fields spanning several lines are accounted for). For Parquet files they are the
row index + 1 and the message says "row".
"""

from __future__ import annotations

import gzip
import re
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from simulator.errors import InputError, InputErrors

__all__ = [
    "CleaningReport",
    "MAX_LISTED_BAD_ROWS",
    "OPTIONAL_COLUMNS",
    "TransactionLog",
    "parse_member_flags",
    "read_cdnow",
    "read_transactions",
    "spend_by_value",
]

#: Columns kept when present (after the three required ones), in this order.
OPTIONAL_COLUMNS: tuple[str, ...] = ("store", "channel", "category", "member")

#: Optional columns whose spend is summarised per month before same-day merging.
SPEND_BY_COLUMNS: tuple[str, ...] = ("store", "channel", "category")

#: Bad rows listed one per line before the final "... and N more bad rows" line.
MAX_LISTED_BAD_ROWS = 20

_CSV_SUFFIXES = (".csv", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_DELIMITERS = (",", "\t", ";", "|")
# Values that mean "no value" in exports (SQL NULL, pandas NaN, spreadsheets' N/A).
_MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "<na>", "nat"})
# Values of a member flag (lowercased, stripped); anything else is unknown.
_MEMBER_TRUE = frozenset({"1", "true", "yes", "y", "t", "member"})
_MEMBER_FALSE = frozenset({"0", "false", "no", "n", "f", "non_member", "non-member"})
# ISO 8601 date, optionally followed by a time and a UTC offset; only the date part is used.
_ISO_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
# datetime64[ns] covers 1677-09-21 .. 2262-04-11; keep well inside it.
_MIN_DATE = pd.Timestamp("1678-01-01")
_MAX_DATE = pd.Timestamp("2261-12-31")

_CDNOW_COLUMNS = ("master_customer_id", "sample_customer_id", "date", "number_of_cds", "dollar_value")


@dataclass(frozen=True)
class CleaningReport:
    """What cleaning did to a transaction log.

    Attributes
    ----------
    rows_read : int
        Data rows in the file (blank lines excluded).
    bad_rows_skipped : int
        Rows dropped for a missing customer id, bad date or bad amount (``on_bad_rows="skip"``).
    duplicates_dropped : int
        Exact duplicate rows dropped (all columns identical to an earlier row).
    returns_netted : int
        Return rows (negative amounts) netted, fully or in part, against the customer's spend.
    returns_unmatched : int
        Return rows dropped because the customer had no spend on or before that day to net
        against.
    rows_merged : int
        Purchase rows absorbed by merging rows of one customer on one day (rows before the
        merge minus transactions after it).
    zero_amount : int
        Purchase rows with an amount of exactly zero in the file, kept as zero-spend
        transactions (purchases netted down to zero by returns are not counted here).
    transactions : int
        Transactions in the cleaned log.
    customers : int
        Distinct customers in the cleaned log.
    first_date, last_date : datetime.date or None
        Date range of the cleaned log.
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

    def to_dict(self) -> dict[str, int | str | None]:
        """Plain, JSON-serialisable dict (dates as ISO strings)."""
        out: dict[str, int | str | None] = {}
        for key, value in asdict(self).items():
            out[key] = value.isoformat() if isinstance(value, date) else value
        return out


@dataclass(frozen=True, eq=False)
class TransactionLog:
    """A cleaned transaction log.

    Attributes
    ----------
    transactions : pandas.DataFrame
        Columns ``customer_id`` (string), ``date`` (``datetime64[ns]`` at midnight: day
        precision), ``amount`` (float64, >= 0), then whichever of :data:`OPTIONAL_COLUMNS`
        the file had: ``store`` / ``channel`` / ``category`` as read (missing: NaN),
        ``member`` as a nullable ``boolean`` (NA: unknown). Sorted by customer then date, with
        a fresh RangeIndex.
    report : CleaningReport
        Counts of what cleaning did.
    spend_by : dict of str to pandas.DataFrame
        For each of ``store`` / ``channel`` / ``category`` the file had, spend per calendar
        month and value, counted on the rows *before* same-day merging (after returns
        netting), so that a customer-day spread over several categories counts for each (see
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
) -> TransactionLog:
    """Read and clean a retailer's transaction log (CSV or Parquet).

    Parameters
    ----------
    path : str or Path
        ``.csv`` / ``.txt`` (optionally gzip-compressed: ``.csv.gz``, ``.txt.gz``) or
        ``.parquet`` / ``.pq``, chosen by extension. A CSV file needs a header line; its
        delimiter (comma, tab, semicolon or pipe) is taken from the header line; text must
        be UTF-8.
    customer_col, date_col, amount_col : str
        Names of the required columns (matched exactly, else case-insensitively). In the
        result they are renamed ``customer_id``, ``date`` and ``amount``.
    date_format : str, optional
        A :func:`~datetime.datetime.strptime` format such as ``"%d/%m/%Y"``. By default
        dates are ISO 8601, ``YYYY-MM-DD``, optionally followed by a time (``T10:30:00``,
        with or without UTC offset), of which only the calendar date as written is kept.
        Parquet timestamp / date columns are used as they are (local wall-clock date).
    on_bad_rows : {"fail", "skip"}
        Raise on bad rows (default) or drop and count them.
    merge_same_day : bool
        Merge several rows of one customer on one day into one transaction (default).

    Returns
    -------
    TransactionLog

    Raises
    ------
    InputErrors
        The file cannot be read, is empty, lacks a required column, has no usable purchase
        rows, or (``on_bad_rows="fail"``) has bad rows.
    """
    if on_bad_rows not in ("fail", "skip"):
        raise ValueError(f"on_bad_rows must be 'fail' or 'skip', not {on_bad_rows!r}")
    kind, compression = _file_kind(path)
    if kind == "parquet":
        raw = _read_parquet_raw(path)
        lines = np.arange(1, len(raw) + 1, dtype=np.int64)
        row_word = "row"
    else:
        raw, lines = _read_csv_raw(path, compression)
        row_word = "line"
    columns = _resolve_columns(path, raw, {"customer_id": customer_col, "date": date_col, "amount": amount_col})
    if raw.empty:
        raise InputErrors.one(path, "no transaction rows after the header")
    taken = set(columns.values())
    optional: dict[str, str] = {}
    for name in OPTIONAL_COLUMNS:
        found = _find_column(list(raw.columns), name)
        if found is not None and found not in taken:
            optional[name] = found
    return _clean(
        raw,
        path=path,
        lines=lines,
        row_word=row_word,
        columns=columns,
        optional=optional,
        date_format=date_format,
        on_bad_rows=on_bad_rows,
        merge_same_day=merge_same_day,
        drop_duplicates=True,
    )


def read_cdnow(path: str | Path) -> TransactionLog:
    """Read the CDNOW sample (Fader, Hardie & Lee 2005) into a :class:`TransactionLog`.

    The file is whitespace separated without header, five columns:
    ``master_customer_id sample_customer_id date(YYYYMMDD) number_of_cds dollar_value``.
    ``sample_customer_id`` is the customer id and ``dollar_value`` the amount. Rows of one
    customer on one day are merged (amounts summed), as in the literature; bad rows always
    fail (line numbers are file lines, the first row being line 1).

    Identical rows are **not** dropped here: the file has no order id, and its 21 repeated
    rows are separate orders of equal value on one day. Keeping them reproduces the
    published Gamma-Gamma fit on this sample (p = 6.25, q = 3.74, gamma = 15.44, Fader &
    Hardie 2013); dropping them does not. (The transaction counts, 6,696 customer-days of
    2,357 customers, are the same either way.)
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
    return _clean(
        raw.fillna(""),
        path=path,
        lines=lines,
        row_word="line",
        columns={"customer_id": "sample_customer_id", "date": "date", "amount": "dollar_value"},
        optional={},
        date_format="%Y%m%d",
        on_bad_rows="fail",
        merge_same_day=True,
        drop_duplicates=False,
    )


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
    month0 = int(month.min()) if len(month) else 0
    month -= month0
    amount = frame["amount"].to_numpy(dtype=np.float64)
    for name in present:
        # text and missing-ness are worked out on the distinct values only (fast on big logs)
        try:
            codes, uniques = pd.factorize(frame[name], use_na_sentinel=True)
        except TypeError:  # unhashable cells (Parquet lists / maps)
            codes, uniques = pd.factorize(frame[name].astype(str), use_na_sentinel=True)
        text = _as_text(pd.Series(uniques))
        text = text.where(~text.str.lower().isin(_MISSING_TOKENS).to_numpy(dtype=bool))
        text_codes, texts = pd.factorize(text, use_na_sentinel=True)  # values equal as text merge
        value = np.zeros(len(codes), dtype=np.int64)  # 0: missing
        if len(text_codes):
            value = np.where(codes >= 0, text_codes[np.maximum(codes, 0)], -1) + 1
        key = month * (len(texts) + 1) + value
        ukey, pos = np.unique(key, return_inverse=True)
        labels = np.concatenate([[None], np.asarray(texts, dtype=object)])
        start = (ukey // (len(texts) + 1) + month0).astype("datetime64[M]")
        table = pd.DataFrame({
            "month": pd.PeriodIndex(pd.DatetimeIndex(start), freq="M"),
            "value": pd.Series(labels[ukey % (len(texts) + 1)], dtype=object),
            "amount": np.bincount(pos, weights=amount, minlength=len(ukey)),
            "rows": np.bincount(pos, minlength=len(ukey)).astype(np.int64),
        })
        out[name] = table.sort_values(["month", "value"], na_position="last", kind="stable").reset_index(drop=True)
    return out


# --------------------------------------------------------------------------------------
# reading raw files
# --------------------------------------------------------------------------------------


def _file_kind(path: str | Path) -> tuple[str, str | None]:
    suffixes = [s.lower() for s in Path(path).suffixes]
    compression = None
    if suffixes and suffixes[-1] == ".gz":
        compression = "gzip"
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in _CSV_SUFFIXES:
        return "csv", compression
    if last in _PARQUET_SUFFIXES and compression is None:
        return "parquet", None
    shown = "".join(Path(path).suffixes) or "none"
    raise InputErrors.one(
        path,
        f"unsupported file type (extension {shown}); expected .csv or .txt (optionally .gz) "
        "or .parquet / .pq",
    )


def _read_csv_raw(path: str | Path, compression: str | None) -> tuple[pd.DataFrame, np.ndarray]:
    """All columns as stripped-header strings, blank lines removed, plus each row's file line."""
    try:
        opener = gzip.open if compression == "gzip" else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            header = fh.readline()
    except UnicodeDecodeError:
        raise InputErrors.one(path, "not UTF-8 text; expected a CSV transaction log (re-save it as UTF-8)") from None
    except OSError as exc:
        raise InputErrors.one(path, f"cannot read the file: {exc.strerror or exc}") from None
    if not header.strip():
        raise InputErrors.one(path, "file is empty; expected a header line naming the columns, then one row per purchase")
    delimiter = max(_DELIMITERS, key=header.count) if any(d in header for d in _DELIMITERS) else ","
    try:
        raw = pd.read_csv(
            path,
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
            compression=compression,
        )
    except pd.errors.EmptyDataError:
        raise InputErrors.one(path, "file is empty; expected a header line naming the columns") from None
    except pd.errors.ParserError as exc:
        raise _parser_error(path, exc, "expected the same number of fields as the header") from None
    except UnicodeDecodeError:
        raise InputErrors.one(path, "not UTF-8 text; expected a CSV transaction log (re-save it as UTF-8)") from None
    except OSError as exc:
        raise InputErrors.one(path, f"cannot read the file: {exc.strerror or exc}") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    raw = raw.fillna("")
    # File line of each row: header is line 1; quoted fields may span several lines.
    n = len(raw)
    newlines = np.zeros(n, dtype=np.int64)
    for col in raw.columns:
        s = raw[col]
        has_nl = s.str.contains("\n", regex=False).to_numpy(dtype=bool)
        if has_nl.any():
            newlines += s.str.count("\n").to_numpy(dtype=np.int64)
    lines = 2 + np.arange(n, dtype=np.int64) + np.concatenate(([0], np.cumsum(newlines)[:-1])) if n else np.zeros(0, np.int64)
    blank = np.ones(n, dtype=bool)
    for col in raw.columns:
        blank &= (raw[col].str.strip() == "").to_numpy(dtype=bool)
    if blank.any():
        raw, lines = raw.loc[~blank].reset_index(drop=True), lines[~blank]
    return raw, lines


def _read_parquet_raw(path: str | Path) -> pd.DataFrame:
    try:
        raw = pd.read_parquet(path)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise InputErrors.one(path, "cannot read the file: no such file") from None
        raise InputErrors.one(path, f"not a readable Parquet file: {exc}") from None
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        raise InputErrors.one(path, f"not a readable Parquet file: {exc}") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    return raw.reset_index(drop=True)


def _parser_error(path: str | Path, exc: Exception, expected: str) -> InputErrors:
    text = str(exc)
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if match:
        want, line, saw = (int(g) for g in match.groups())
        return InputErrors.one(path, f"{expected}: expected {want} fields, found {saw}", line=line)
    return InputErrors.one(path, f"cannot parse the file: {text.strip().splitlines()[-1] if text.strip() else exc!r}")


def _find_column(columns: list[str], name: str) -> str | None:
    if name in columns:
        return name
    folded = [c for c in columns if c.casefold() == name.strip().casefold()]
    return folded[0] if len(folded) == 1 else None


def _resolve_columns(path: str | Path, raw: pd.DataFrame, wanted: dict[str, str]) -> dict[str, str]:
    columns = list(raw.columns)
    found: dict[str, str] = {}
    missing: list[str] = []
    for role, name in wanted.items():
        col = _find_column(columns, name)
        if col is None:
            missing.append(name)
        else:
            found[role] = col
    if missing:
        shown = ", ".join(repr(c) for c in columns[:20]) + (f", ... ({len(columns)} in all)" if len(columns) > 20 else "")
        hint = ""
        first = columns[0] if columns else ""
        if re.fullmatch(r"[\d\s.,:/\-+]+", first or "x"):
            hint = "; the first line looks like data: the file needs a header line naming the columns"
        plural = "s" if len(missing) > 1 else ""
        raise InputErrors.one(
            path,
            f"not a transaction log: missing required column{plural} "
            f"{', '.join(repr(m) for m in missing)}; found columns {shown}{hint}",
            line=1 if not _is_parquet_path(path) else None,
        )
    return found


def _is_parquet_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in _PARQUET_SUFFIXES


# --------------------------------------------------------------------------------------
# field parsing
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


def _parse_customers(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    text = _as_text(s)
    bad = text.str.lower().isin(_MISSING_TOKENS).to_numpy(dtype=bool)
    return text, bad


def _parse_dates(s: pd.Series, date_format: str | None) -> tuple[pd.Series, np.ndarray, str]:
    """Dates at day precision (datetime64[ns]); ``bad`` marks unparsable ones."""
    expected = f"a date in the format {date_format!r}" if date_format else "a date as YYYY-MM-DD"
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        parsed = s
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)  # keep the local wall-clock date
    elif s.dtype == object and isinstance(s.dropna().iloc[0] if s.notna().any() else None, date):
        parsed = pd.to_datetime(s, errors="coerce")
    else:
        text = _as_text(s)
        if date_format is None:
            iso = text.str.fullmatch(_ISO_DATE.pattern).fillna(False).astype(bool)
            parsed = pd.to_datetime(text.str.slice(0, 10).where(iso), format="%Y-%m-%d", errors="coerce")
        else:
            try:
                parsed = pd.to_datetime(text, format=date_format, errors="coerce")
            except ValueError:  # mixed UTC offsets: fall back to UTC dates
                parsed = pd.to_datetime(text, format=date_format, errors="coerce", utc=True)
            if getattr(parsed.dt, "tz", None) is not None:
                parsed = parsed.dt.tz_localize(None)
    parsed = pd.Series(parsed, index=s.index)
    bad = (parsed.isna() | (parsed < _MIN_DATE) | (parsed > _MAX_DATE)).to_numpy(dtype=bool)
    parsed = parsed.where(~bad).dt.normalize().astype("datetime64[ns]")
    return parsed, bad, expected


def _parse_amounts(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        values = pd.to_numeric(s, errors="coerce").astype("float64")
    elif pd.api.types.is_bool_dtype(s.dtype):
        values = pd.Series(np.nan, index=s.index)
    else:
        values = pd.to_numeric(_as_text(s), errors="coerce").astype("float64")
    arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(arr)
    return pd.Series(arr, index=s.index), bad


def _describe(value: object) -> str:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
    if not text:
        return "the field is empty"
    if len(text) > 40:
        text = text[:37] + "..."
    return f"got {text!r}"


# --------------------------------------------------------------------------------------
# cleaning pipeline
# --------------------------------------------------------------------------------------


def _clean(
    raw: pd.DataFrame,
    *,
    path: str | Path,
    lines: np.ndarray,
    row_word: str,
    columns: dict[str, str],
    optional: dict[str, str],
    date_format: str | None,
    on_bad_rows: str,
    merge_same_day: bool,
    drop_duplicates: bool,
) -> TransactionLog:
    rows_read = len(raw)
    cust_col, date_col, amount_col = columns["customer_id"], columns["date"], columns["amount"]
    customers, bad_customer = _parse_customers(raw[cust_col])
    dates, bad_date, date_expected = _parse_dates(raw[date_col], date_format)
    amounts, bad_amount = _parse_amounts(raw[amount_col])
    bad = bad_customer | bad_date | bad_amount

    bad_rows_skipped = 0
    if bad.any():
        if on_bad_rows == "fail":
            raise _bad_row_errors(
                path,
                raw,
                lines,
                row_word,
                [
                    (cust_col, bad_customer, "expected a customer id"),
                    (date_col, bad_date, f"expected {date_expected}"),
                    (amount_col, bad_amount, "expected a number such as 12.50"),
                ],
            )
        bad_rows_skipped = int(bad.sum())

    keep = ~bad
    duplicates_dropped = 0
    if drop_duplicates and keep.any():
        good_raw = raw.loc[keep]
        try:
            dup = good_raw.duplicated(keep="first").to_numpy(dtype=bool)
        except TypeError:  # unhashable cells (Parquet lists / maps)
            dup = good_raw.astype(str).duplicated(keep="first").to_numpy(dtype=bool)
        duplicates_dropped = int(dup.sum())
        keep[np.flatnonzero(keep)[dup]] = False

    frame = pd.DataFrame(
        {
            "customer_id": customers.to_numpy(dtype=object),
            "date": dates.to_numpy(),
            "amount": amounts.to_numpy(dtype=np.float64),
        }
    )
    for name, col in optional.items():
        values = raw[col]
        if name == "member":
            frame[name] = parse_member_flags(values).array
            continue
        if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
            stripped = values.astype(object).where(values.notna(), "").astype(str).str.strip()
            values = stripped.where(stripped != "")
        frame[name] = values.to_numpy()
    frame["_order"] = np.arange(len(frame), dtype=np.int64)
    frame = frame.loc[keep].reset_index(drop=True)
    if frame.empty:
        raise InputErrors.one(path, f"no usable transaction rows ({bad_rows_skipped} bad rows skipped)")

    zero_amount = int((frame["amount"] == 0.0).sum())
    frame, returns_netted, returns_unmatched = _net_returns(frame)
    if frame.empty:
        raise InputErrors.one(path, "no purchase rows: every amount is negative (returns only)")

    rows_before_merge = len(frame)
    spend_by = spend_by_value(frame)
    if merge_same_day:
        frame = _merge_same_day(frame)
    else:
        frame = frame.sort_values(["customer_id", "date", "_order"], kind="stable")
    frame = frame.drop(columns="_order").reset_index(drop=True)
    frame["customer_id"] = frame["customer_id"].astype("string")
    frame["date"] = frame["date"].astype("datetime64[ns]")
    frame["amount"] = frame["amount"].astype("float64")

    report = CleaningReport(
        rows_read=rows_read,
        bad_rows_skipped=bad_rows_skipped,
        duplicates_dropped=duplicates_dropped,
        returns_netted=returns_netted,
        returns_unmatched=returns_unmatched,
        rows_merged=rows_before_merge - len(frame),
        zero_amount=zero_amount,
        transactions=len(frame),
        customers=int(frame["customer_id"].nunique()),
        first_date=frame["date"].min().date(),
        last_date=frame["date"].max().date(),
    )
    return TransactionLog(transactions=frame, report=report, spend_by=spend_by)


def _bad_row_errors(
    path: str | Path,
    raw: pd.DataFrame,
    lines: np.ndarray,
    row_word: str,
    checks: list[tuple[str, np.ndarray, str]],
) -> InputErrors:
    """One error per bad row (first bad column in the field, the others appended)."""
    any_bad = np.zeros(len(raw), dtype=bool)
    for _, mask, _ in checks:
        any_bad |= mask
    positions = np.flatnonzero(any_bad)
    errors: list[InputError] = []
    for pos in positions[:MAX_LISTED_BAD_ROWS]:
        problems = [
            (col, f"{expected}, {_describe(raw[col].iloc[pos])}") for col, mask, expected in checks if mask[pos]
        ]
        field, message = problems[0]
        if len(problems) > 1:
            message += "".join(f"; also {col}: {msg}" for col, msg in problems[1:])
        if row_word == "row":
            message = f"row {int(lines[pos])}: {message}"
        errors.append(InputError(str(path), int(lines[pos]), field, message))
    rest = len(positions) - MAX_LISTED_BAD_ROWS
    if rest > 0:
        errors.append(
            InputError(
                str(path),
                None,
                "",
                f"... and {rest} more bad rows ({len(positions)} in all); "
                "fix them or skip bad rows (on_bad_rows='skip')",
            )
        )
    return InputErrors(errors)


def _net_returns(frame: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Net negative amounts (returns) against the customer's spend; drop the return rows.

    Only customers with at least one return are processed (one numpy pass per return over
    the customer's purchases on or before the return day, most recent first).
    """
    is_return = (frame["amount"] < 0).to_numpy()
    if not is_return.any():
        return frame, 0, 0
    frame = frame.sort_values(["customer_id", "date", "_order"], kind="stable").reset_index(drop=True)
    is_return = (frame["amount"] < 0).to_numpy()
    affected = frame["customer_id"].isin(frame.loc[is_return, "customer_id"].unique()).to_numpy()
    amounts = frame["amount"].to_numpy(dtype=np.float64).copy()
    days = frame["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    codes = pd.factorize(frame["customer_id"])[0]
    netted = unmatched = 0
    idx = np.flatnonzero(affected)
    # rows of one customer are contiguous (sorted); split the affected rows by customer
    boundaries = np.flatnonzero(np.diff(codes[idx])) + 1
    for rows in np.split(idx, boundaries):
        cust_amounts = amounts[rows]
        cust_days = days[rows]
        returns = cust_amounts < 0
        spend = np.where(returns, 0.0, cust_amounts)
        for i in np.flatnonzero(returns):
            need = -cust_amounts[i]
            k = int(np.searchsorted(cust_days, cust_days[i], side="right"))
            segment = spend[:k]  # view: purchases on or before the return day
            available = segment[::-1]  # most recent first (same day first)
            before = np.cumsum(available) - available
            take = np.clip(need - before, 0.0, available)
            if take.sum() > 0.0:
                netted += 1
                segment -= take[::-1]
                np.maximum(segment, 0.0, out=segment)
            else:
                unmatched += 1
        amounts[rows] = np.where(returns, cust_amounts, spend)
    frame = frame.assign(amount=amounts)
    frame = frame.loc[~is_return].reset_index(drop=True)
    return frame, netted, unmatched


def _merge_same_day(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.sort_values(["customer_id", "date", "_order"], kind="stable")
    grouped = frame.groupby(["customer_id", "date"], sort=True, dropna=False)
    agg: dict[str, tuple[str, str]] = {"amount": ("amount", "sum"), "_order": ("_order", "min")}
    for name in OPTIONAL_COLUMNS:
        if name in frame.columns:
            # a member day if any row is (max of a nullable boolean: True > False > unknown)
            agg[name] = (name, "max" if name == "member" else "first")
    merged = grouped.agg(**agg).reset_index()
    return merged
