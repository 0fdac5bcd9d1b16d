"""Numbers and dates as market teams' exports write them: detection and vectorised parsing.

A log exported in France, Germany or India writes ``1 234,56``, ``1.234,56`` or
``1,00,000.50`` and ``25/12/2023``, ``25.12.2023`` or ``25-12-2023``. The functions here
decide how a column is written from its **distinct values** (each weighted by the rows that
hold it), then parse the distinct values once; the reader maps them back to the rows. A log
of ten million rows has a few thousand distinct dates and some hundred thousand distinct
amounts, so detection sees every value of the file and parsing stays cheap.

Numbers (:func:`detect_number_format`, :func:`parse_numbers`)
    A value such as ``1.234,56`` (both separators) or ``12,50`` (a lone comma not followed by
    exactly three digits) settles the decimal mark; ``1,234,567`` or ``1,00,000`` (Indian
    lakh grouping) settle the thousands separator. The convention with the most rows of
    evidence wins (ties: decimal comma in a ``;``-delimited file). When the only evidence is
    ambiguous -- ``1,234`` alone can be 1234 or 1.234 -- the separator is read as thousands
    (an amount with exactly three decimals everywhere is rarer than amounts above a
    thousand) and a note says so. Thousands separators: ``,``, ``.``, space (also the
    no-break spaces U+00A0 and U+202F), apostrophe (``1'234.50``). Parsing is strict: with
    thousands ``.`` the value ``12.50`` is not a number (its grouping is wrong), so a file
    that mixes conventions gets bad rows rather than silently wrong amounts. A leading
    ``+``/``-``, a trailing ``-`` (``12,50-``) and a currency symbol or ISO code
    (``12,50 €``, ``Rs. 1,000``, ``EUR 12.50``) are accepted.

Dates (:func:`detect_date_format`, :func:`parse_dates`)
    ``YYYY-MM-DD``, ``YYYY/MM/DD``, ``DD/MM/YYYY`` or ``MM/DD/YYYY`` with ``/``, ``.`` or
    ``-`` (two-digit years too) and ``YYYYMMDD``, each optionally followed by a time of day
    (``10:30``, ``T10:30:00+05:00``, ``2:05 PM``) of which only the calendar date as written
    is kept. Day-first if any first field is above 12, month-first if any second field is;
    when no value tells (every field <= 12), day-first for dotted dates and for
    ``;``-delimited or decimal-comma files, otherwise :class:`AmbiguousDates` (the caller
    names ``--date-format``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "AmbiguousDates",
    "BAD_DAY",
    "NumberFormat",
    "UnknownDates",
    "date_format_words",
    "detect_date_format",
    "detect_number_format",
    "has_time_directive",
    "parse_dates",
    "parse_numbers",
    "strip_time",
]

#: Day number (days since 1970-01-01) of a value that is not a date.
BAD_DAY = np.iinfo(np.int32).min
# datetime64[ns] covers 1677-09-21 .. 2262-04-11; keep well inside it.
_MIN_DAY = int(np.datetime64("1678-01-01", "D").astype(np.int64))
_MAX_DAY = int(np.datetime64("2261-12-31", "D").astype(np.int64))

# --------------------------------------------------------------------------------- numbers

#: Thousands separators understood, as written on the command line.
THOUSANDS_CHOICES = {",": ",", ".": ".", " ": " ", "space": " ", "'": "'", "none": "", "": ""}
_SPACES = "\u00a0\u202f\u2009"  # no-break, narrow no-break, thin space: read as a space
# a currency symbol or ISO code before or after the number: "€12,50", "12,50 €", "Rs. 1,000", "EUR 12.50"
_CURRENCY = r"^(?:[€$£₹¥]\s*|Rs\.?\s*|[A-Z]{3}\s+)|(?:\s*[€$£₹¥]|\s+[A-Z]{3})$"


@dataclass(frozen=True)
class NumberFormat:
    """How amounts are written: the decimal mark and the thousands separator ("" for none)."""

    decimal: str = "."
    thousands: str = ""

    def __post_init__(self) -> None:
        if self.decimal not in (".", ","):
            raise ValueError(f"decimal must be '.' or ',', not {self.decimal!r}")
        if self.thousands not in ("", ",", ".", " ", "'"):
            raise ValueError(f"thousands must be one of ',', '.', ' ', \"'\" or none, not {self.thousands!r}")
        if self.thousands == self.decimal:
            raise ValueError(f"the thousands separator cannot be the decimal mark {self.decimal!r}")

    def words(self) -> str:
        """``decimal ',', thousands ' '`` (as the "read as" line shows it)."""
        return f"decimal '{self.decimal}', thousands " + (f"'{self.thousands}'" if self.thousands else "none")

    def example(self) -> str:
        """A number written this way, for messages: ``1 234,56``."""
        return f"1{self.thousands}234{self.decimal}56" if self.thousands else f"12{self.decimal}50"


def _normalised(values: pa.Array) -> pa.Array:
    """Trimmed text with no-break spaces as spaces, the typographic apostrophe as ', no
    currency symbol or code around the number."""
    text = pc.utf8_trim_whitespace(values)
    for ch in _SPACES:
        text = pc.replace_substring(text, ch, " ")
    text = pc.replace_substring(text, "\u2019", "'")
    text = pc.replace_substring_regex(text, _CURRENCY, "")
    return pc.utf8_trim_whitespace(text)


def _rows(mask: pa.Array, weights: np.ndarray) -> int:
    m = np.asarray(mask.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    return int(weights[m].sum())


def detect_number_format(values: pa.Array, weights: np.ndarray, *, delimiter: str | None = None,
                         decimal: str | None = None, thousands: str | None = None) -> tuple[NumberFormat, str | None]:
    """Decide how the distinct ``values`` (text) of an amount column are written.

    ``weights``: rows holding each value. ``decimal`` / ``thousands``: what the user gave
    (kept; the other is still detected). Returns the format and a note when the choice was
    not settled by the data (ambiguous or mixed), else None.
    """
    n = _normalised(values)
    w = np.asarray(weights, dtype=np.int64)
    S, E = r"^[+-]?", r"-?$"

    def rows(pattern: str) -> int:
        return _rows(pc.match_substring_regex(n, pattern), w)

    # evidence for each decimal mark: a lone separator not followed by exactly three digits
    # (or after a 0 / more than three digits), a number grouped by the other separator with
    # a fraction, or several groups of the other separator
    amb = {c: rows(rf"{S}[1-9]\d{{0,2}}{re.escape(c)}\d{{3}}{E}") for c in ".,"}
    lone = {c: rows(rf"{S}\d*{re.escape(c)}\d+{E}") - amb[c] for c in ".,"}
    grouped_dec = {
        ",": rows(rf"{S}\d{{1,3}}(?:[. ']\d{{3}})+,\d*{E}"),
        ".": rows(rf"{S}(?:\d{{1,3}}(?:[, ']\d{{3}})+|\d{{1,2}}(?:,\d{{2}})+,\d{{3}})\.\d*{E}"),
    }
    multi_group = {  # 1.234.567 -> thousands '.', decimal ','; 1,234,567 or 1,00,000 -> decimal '.'
        ",": rows(rf"{S}\d{{1,3}}(?:\.\d{{3}}){{2,}}{E}"),
        ".": rows(rf"{S}(?:\d{{1,3}}(?:,\d{{3}}){{2,}}|\d{{1,2}}(?:,\d{{2}})+,\d{{3}}){E}"),
    }
    votes = {c: lone[c] + grouped_dec[c] + multi_group[c] for c in ".,"}
    note = None
    semicolon = delimiter == ";"
    if decimal is None:
        if votes["."] or votes[","]:
            if votes["."] == votes[","]:
                decimal = "," if semicolon else "."
            else:
                decimal = max(votes, key=lambda c: votes[c])
            other = "." if decimal == "," else ","
            if votes[other]:
                note = (f"amounts mix decimal '{decimal}' ({votes[decimal]:,} rows) and decimal '{other}' "
                        f"({votes[other]:,} rows): read with decimal '{decimal}' (--decimal to change)")
        elif amb["."] or amb[","]:
            sep = "," if amb[","] >= amb["."] else "."
            decimal = "." if sep == "," else ","
            example = "1,234" if sep == "," else "1.234"
            note = (f"amounts such as {example} can be read either way: read with '{sep}' as the thousands "
                    f"separator ({example} = 1234); give --decimal '{sep}' if it is the decimal mark")
        else:
            decimal = "," if semicolon else "."
    if thousands is None:
        candidates = {
            ",": rows(rf"{S}(?:\d{{1,3}}(?:,\d{{3}})+|\d{{1,2}}(?:,\d{{2}})+,\d{{3}})(?:\.\d*)?{E}"),
            ".": rows(rf"{S}\d{{1,3}}(?:\.\d{{3}})+(?:,\d*)?{E}"),
            " ": rows(rf"{S}\d{{1,3}}(?: \d{{3}})+(?:[.,]\d*)?{E}"),
            "'": rows(rf"{S}\d{{1,3}}(?:'\d{{3}})+(?:[.,]\d*)?{E}"),
        }
        candidates.pop(decimal)
        best = max(candidates, key=lambda c: candidates[c])
        thousands = best if candidates[best] else ""
    return NumberFormat(decimal, thousands), note


def parse_numbers(values: pa.Array, fmt: NumberFormat) -> np.ndarray:
    """The distinct ``values`` (text) as float64; NaN where a value is not a number written in
    ``fmt`` (or is not finite)."""
    n = _normalised(values)
    d = re.escape(fmt.decimal)
    if fmt.thousands:
        t = re.escape(fmt.thousands)
        whole = rf"\d+|\d{{1,3}}(?:{t}\d{{3}})+"
        if fmt.thousands == ",":
            whole += r"|\d{1,2}(?:,\d{2})+,\d{3}"
    else:
        whole = r"\d+"
    valid = pc.match_substring_regex(n, rf"^(?:[+-]?(?:(?:{whole})(?:{d}\d*)?|{d}\d+)(?:[eE][+-]?\d+)?|"
                                        rf"(?:(?:{whole})(?:{d}\d*)?|{d}\d+)-)$")
    text = n
    if fmt.thousands:
        text = pc.replace_substring(text, fmt.thousands, "")
    if fmt.decimal == ",":
        text = pc.replace_substring(text, ",", ".")
    trailing = pc.ends_with(text, "-")
    text = pc.if_else(trailing, pc.binary_join_element_wise("-", pc.utf8_slice_codeunits(text, 0, -1), ""), text)
    text = pc.if_else(valid, text, pa.scalar(None, pa.string()))
    out = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
    out = np.array(out, dtype=np.float64)
    out[~np.isfinite(out)] = np.nan
    return out


# ----------------------------------------------------------------------------------- dates

# A time of day after the date: " 10:30", "T10:30:00.123Z", " 2:05 PM", "T00:30:00+05:00".
_TIME = r"(?:[T ]\s*\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[AaPp]\.?[Mm]\.?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)?)"
_TIME_SUFFIX = re.compile(rf"^(\S+?){_TIME}$")
_TIME_DIRECTIVES = re.compile(r"%[HIMSfpzZTXcr]")

# date layouts recognised without --date-format: name -> (regex with named groups, format)
_SHAPES: dict[str, tuple[str, str]] = {
    "iso": (r"^(?P<y>\d{4})-(?P<a>\d{1,2})-(?P<b>\d{1,2})$", "%Y-%m-%d"),
    "ymd/": (r"^(?P<y>\d{4})/(?P<a>\d{1,2})/(?P<b>\d{1,2})$", "%Y/%m/%d"),
    "ymd.": (r"^(?P<y>\d{4})\.(?P<a>\d{1,2})\.(?P<b>\d{1,2})$", "%Y.%m.%d"),
    "xy/": (r"^(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4}|\d{2})$", "/"),
    "xy.": (r"^(?P<a>\d{1,2})\.(?P<b>\d{1,2})\.(?P<y>\d{4}|\d{2})$", "."),
    "xy-": (r"^(?P<a>\d{1,2})-(?P<b>\d{1,2})-(?P<y>\d{4}|\d{2})$", "-"),
    "compact": (r"^(?P<y>(?:19|20)\d{2})(?P<a>\d{2})(?P<b>\d{2})$", "%Y%m%d"),
}

_WORDS = {"%Y-%m-%d": "YYYY-MM-DD", "%Y/%m/%d": "YYYY/MM/DD", "%Y.%m.%d": "YYYY.MM.DD", "%Y%m%d": "YYYYMMDD"}


class AmbiguousDates(ValueError):
    """No value tells whether dates are day-first or month-first (every field <= 12)."""

    def __init__(self, example: str, sep: str, year: str):
        self.example = example
        self.formats = (f"%d{sep}%m{sep}{year}", f"%m{sep}%d{sep}{year}")
        super().__init__(
            f"dates such as {example!r} can be day-first or month-first (no day above 12 in the file); "
            f"give --date-format '{self.formats[0]}' or --date-format '{self.formats[1]}'")


class UnknownDates(ValueError):
    """Most dates have no layout recognised without ``--date-format``."""

    def __init__(self, example: str):
        self.example = example
        super().__init__(
            f"cannot tell how dates such as {example!r} are written (expected YYYY-MM-DD, DD/MM/YYYY, "
            "MM/DD/YYYY, DD.MM.YYYY, DD-MM-YYYY, optionally with a time); give --date-format, e.g. '%d %b %Y'")


def has_time_directive(fmt: str) -> bool:
    """Whether a strptime format reads a time of day (then times are not cut off before it)."""
    return bool(_TIME_DIRECTIVES.search(fmt))


def strip_time(values: pa.Array) -> pa.Array:
    """Text values with a trailing time of day removed (``2024-01-02T10:30:00+05:00`` ->
    ``2024-01-02``); values that are not a date followed by a time are left as they are."""
    return pc.replace_substring_regex(values, _TIME_SUFFIX.pattern, r"\1")


def date_format_words(fmt: str) -> str:
    """``%d/%m/%Y`` -> ``DD/MM/YYYY`` (for messages)."""
    if fmt in _WORDS:
        return _WORDS[fmt]
    return fmt.replace("%d", "DD").replace("%m", "MM").replace("%Y", "YYYY").replace("%y", "YY")


def _fields(values: pa.Array, shape: str) -> pd.DataFrame:
    """The named groups of ``shape`` as integers (NaN where a value has another shape)."""
    got = pc.extract_regex(values, _SHAPES[shape][0])
    out = {}
    for name in ("y", "a", "b"):
        col = pc.struct_field(got, name)
        out[name] = pd.to_numeric(pd.Series(col.to_numpy(zero_copy_only=False)), errors="coerce")
    return pd.DataFrame(out)


def detect_date_format(values: pa.Array, weights: np.ndarray, *, day_first_hint: bool = False) -> tuple[str, str | None]:
    """Decide how the distinct ``values`` (text, times already stripped) of a date column are
    written; returns a strptime format and a note when the choice was not unanimous.

    ``day_first_hint``: the file looks European (``;``-delimited or decimal comma), so
    dates with every field <= 12 are read day-first. Raises :class:`AmbiguousDates` or
    :class:`UnknownDates`.
    """
    w = np.asarray(weights, dtype=np.int64)
    text = pc.utf8_trim_whitespace(values)
    present = np.asarray(pc.greater(pc.utf8_length(text), 0).fill_null(False).to_numpy(zero_copy_only=False), bool)
    if not present.any():
        return "%Y-%m-%d", None
    rows = {}
    for shape, (pattern, _) in _SHAPES.items():
        m = np.asarray(pc.match_substring_regex(text, pattern).fill_null(False).to_numpy(zero_copy_only=False), bool)
        rows[shape] = (int(w[m].sum()), m)
    shape = max(rows, key=lambda s: rows[s][0])
    total = int(w[present].sum())
    if rows[shape][0] * 2 < total:
        unmatched = present & ~np.logical_or.reduce([m for _, m in rows.values()])
        first = np.flatnonzero(unmatched)
        example = str(text[int(first[0])]) if len(first) else str(text[int(np.flatnonzero(present)[0])])
        raise UnknownDates(example)
    note = None
    if not shape.startswith("xy"):
        fmt = _SHAPES[shape][1]
    else:
        sep = _SHAPES[shape][1]
        mask = rows[shape][1]
        f = _fields(text.filter(pa.array(mask)), shape)
        ww = w[mask]
        first_big = int(ww[(f["a"] > 12).to_numpy()].sum())
        second_big = int(ww[(f["b"] > 12).to_numpy()].sum())
        long_year = int(ww[(f["y"] >= 100).to_numpy()].sum())
        year = "%Y" if long_year * 2 >= int(ww.sum()) else "%y"
        if first_big and second_big:
            day_first = first_big >= second_big
            note = (f"dates are day-first in {first_big:,} rows and month-first in {second_big:,}: read "
                    f"{'day' if day_first else 'month'}-first (--date-format to change)")
        elif first_big or second_big:
            day_first = bool(first_big)
        elif sep == "." or day_first_hint:
            day_first = True
            note = (f"no date tells day from month (every field <= 12): read day-first as the file is "
                    f"{'dotted' if sep == '.' else 'European-style'} (--date-format '%m{sep}%d{sep}{year}' if not)")
        else:
            example = str(text.filter(pa.array(mask))[0])
            raise AmbiguousDates(example, sep, year)
        fmt = f"%d{sep}%m{sep}{year}" if day_first else f"%m{sep}%d{sep}{year}"
    return fmt, note


def _days_from_fields(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Day numbers of calendar dates (BAD_DAY where the date does not exist)."""
    out = np.full(len(year), BAD_DAY, dtype=np.int32)
    ok = np.isfinite(year) & np.isfinite(month) & np.isfinite(day)
    if ok.any():
        frame = pd.DataFrame({"year": year[ok], "month": month[ok], "day": day[ok]}).astype(np.int64)
        stamp = pd.to_datetime(frame, errors="coerce")
        days = stamp.to_numpy().astype("datetime64[D]")
        good = ~np.isnat(days)
        vals = np.full(int(ok.sum()), BAD_DAY, dtype=np.int64)
        vals[good] = days[good].astype(np.int64)
        out[ok] = vals.astype(np.int32)
    return out


def parse_dates(values: pa.Array, fmt: str) -> np.ndarray:
    """The distinct ``values`` (text) as day numbers (days since 1970-01-01, int32),
    :data:`BAD_DAY` where a value is not a date in ``fmt`` (or is outside 1678..2261).

    Times are expected to be stripped already unless ``fmt`` reads them; only the calendar
    date as written is kept (a UTC offset does not move it).
    """
    text = pc.utf8_trim_whitespace(values)
    shape = next((s for s, (_, f) in _SHAPES.items() if f == fmt), None)
    m = re.fullmatch(r"%([dm])([/.\-])%([dm])\2%([Yy])", fmt)
    if shape is not None or (m and m.group(1) != m.group(3)):
        if shape is None:
            shape = {"/": "xy/", ".": "xy.", "-": "xy-"}[m.group(2)]
        f = _fields(text, shape)
        year = f["y"].to_numpy(dtype=np.float64)
        if m:
            wants_long = m.group(4) == "Y"
            year = np.where((year >= 100) == wants_long, year, np.nan)
            if not wants_long:
                year = np.where(year < 69, 2000 + year, 1900 + year)  # strptime's %y pivot
        a, b = f["a"].to_numpy(dtype=np.float64), f["b"].to_numpy(dtype=np.float64)
        month, day = (b, a) if (m and m.group(1) == "d") else (a, b)
        days = _days_from_fields(year, month, day)
    else:
        if re.search(r"%[zZ]\s*$", fmt):  # a UTC offset at the end: the date as written is before it
            fmt = re.sub(r"\s*%[zZ]\s*$", "", fmt)
            text = pc.replace_substring_regex(text, r"\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$", "")
        series = pd.Series(text.to_numpy(zero_copy_only=False), dtype=object)
        try:
            stamp = pd.to_datetime(series, format=fmt, errors="coerce")
        except ValueError:  # mixed UTC offsets elsewhere in the format
            stamp = pd.to_datetime(series, format=fmt, errors="coerce", utc=True)
        if getattr(stamp.dt, "tz", None) is not None:
            stamp = stamp.dt.tz_localize(None)
        d = stamp.to_numpy().astype("datetime64[D]")
        days = np.full(len(d), BAD_DAY, dtype=np.int32)
        good = ~np.isnat(d)
        days[good] = d[good].astype(np.int64).astype(np.int32)
    out_of_range = (days != BAD_DAY) & ((days < _MIN_DAY) | (days > _MAX_DAY))
    days[out_of_range] = BAD_DAY
    return days
