"""Where a transaction log comes from: CSV, Parquet, a DuckDB or SQLite file, a database URL.

Every source is read **in batches** and each column it is asked for is turned, batch by batch,
into dictionary codes (text: the distinct values once, an int32 code per row) or a typed array
(float64 amounts, int32 day numbers) -- never a Python object per row. What comes out is a
:class:`RawLog`: one :class:`Column` per role (``customer_id``, ``date``, ``amount``, the
optional columns), the source's column names, the number of rows and a way to turn row
positions into the file's line numbers, which is only worked out when a message needs them.

CSV (``.csv``, ``.txt``, optionally ``.gz``)
    The encoding and the delimiter are sniffed from the first 64 KB (:data:`SAMPLE_BYTES`):
    a UTF-8 BOM or valid UTF-8 means UTF-8, otherwise Windows-1252 (cp1252, a superset of
    Latin-1's printable characters); the delimiter -- comma, semicolon, tab or pipe -- is the
    one that splits the header and the sample's lines into the same number of fields. The
    file is then parsed by pyarrow's streaming CSV reader (quoted fields may span lines), only
    the columns used being converted. A file that is plain ASCII in its first 64 KB and not
    UTF-8 further on is read again as cp1252, and the output says so. Blank lines, and rows
    whose every field read is empty, are not rows. Rows with another number of fields than the
    header are listed with their line.

Parquet (``.parquet``, ``.pq``)
    Typed columns are used as they are (dates and timestamps: the local calendar date).

Databases
    A DuckDB file (``.duckdb``, ``.ddb``, or ``.db`` holding a DuckDB database), an SQLite
    file (``.sqlite``, ``.sqlite3``, or ``.db`` holding an SQLite database), or a database URL
    (``sqlite:///path.db``, ``duckdb:///path.duckdb``, ``postgresql://user@host/db`` or any
    URL SQLAlchemy knows, with its driver installed), with ``table`` or ``query``. DuckDB
    results stream as Arrow record batches; other databases through SQLAlchemy with a
    server-side cursor where the driver has one (``yield_per``). Rows are numbered in the
    order the database returns them.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simulator.calibration.formats import BAD_DAY
from simulator.errors import InputErrors

__all__ = ["Column", "RawLog", "SAMPLE_BYTES", "Source", "open_source", "raw_from_table", "text_of"]

#: Bytes sniffed at the start of a CSV file for its encoding and delimiter.
SAMPLE_BYTES = 64 * 1024
#: Rows per batch asked of Parquet files and databases.
BATCH_ROWS = 1_000_000
_BLOCK_BYTES = 4 << 20  # pyarrow CSV block: a row may not be longer than this
_LISTED = 20  # rows with a wrong number of fields whose lines are looked up (the messages list 20)
_CSV_SUFFIXES = (".csv", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_DUCKDB_SUFFIXES = (".duckdb", ".ddb")
_SQLITE_SUFFIXES = (".sqlite", ".sqlite3")
_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_WORDS = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")

# roles whose text is parsed (dates, amounts) and the others (kept as dictionary codes)
DATE, AMOUNT = "date", "amount"


# --------------------------------------------------------------------------------------
# what a source gives
# --------------------------------------------------------------------------------------


@dataclass(eq=False)
class Column:
    """One column of the log as read: dictionary codes, float64 or day numbers.

    ``codes`` (int32, -1: null) index ``values`` (the distinct values as read, typed or text,
    each once); or ``floats`` (float64, NaN: null) for a numeric amount; or ``days`` (int32
    days since 1970-01-01, :data:`~simulator.calibration.formats.BAD_DAY`: null) for a typed
    date.
    """

    name: str
    codes: np.ndarray | None = None
    values: pa.Array | None = None
    floats: np.ndarray | None = None
    days: np.ndarray | None = None

    @property
    def is_text(self) -> bool:
        return self.codes is not None

    def take(self, keep: np.ndarray) -> "Column":
        """The rows where ``keep`` (a boolean mask) is True."""
        return Column(self.name,
                      codes=None if self.codes is None else self.codes[keep],
                      values=self.values,
                      floats=None if self.floats is None else self.floats[keep],
                      days=None if self.days is None else self.days[keep])

    def weights(self) -> np.ndarray:
        """Rows holding each distinct value."""
        c = self.codes
        return np.bincount(c[c >= 0], minlength=len(self.values)).astype(np.int64)

    def raw(self, pos: int) -> object:
        """The value of row ``pos`` as read (for messages)."""
        if self.codes is not None:
            code = int(self.codes[pos])
            return None if code < 0 else self.values[code].as_py()
        if self.floats is not None:
            return self.floats[pos]
        d = int(self.days[pos])
        return None if d == BAD_DAY else str(np.datetime64(d, "D"))


@dataclass(eq=False)
class RawLog:
    """A log as read, before any parsing of its fields (see the module docstring)."""

    where: str
    columns: dict[str, Column]
    names: list[str]
    nrows: int
    row_word: str = "line"
    read_as: list[str] = field(default_factory=list)
    delimiter: str | None = None
    notes: list[str] = field(default_factory=list)
    ragged: int = 0
    _lines: Callable[[np.ndarray], np.ndarray] | None = None
    _ragged_lines: Callable[[], list[tuple[int, int]]] | None = None

    def lines(self, positions: np.ndarray) -> np.ndarray:
        """File line (CSV) or row number (other sources) of each row position."""
        positions = np.asarray(positions, dtype=np.int64)
        if self._lines is None:
            return positions + 1
        return self._lines(positions)

    def ragged_lines(self) -> list[tuple[int, int]]:
        """(line, fields) of the first 20 rows that have another number of fields than the header
        (:attr:`ragged` counts them all)."""
        return self._ragged_lines() if self._ragged_lines is not None else []


class Source:
    """An opened log: its column names, then :meth:`read` of the columns a caller needs."""

    where: str
    names: list[str]
    kind: str

    def read(self, roles: dict[str, str]) -> RawLog:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def file(self) -> Path | None:
        """The file holding the log (None for a database server)."""
        return None


def open_source(path: str | Path, *, delimiter: str | None = None, encoding: str | None = None,
                table: str | None = None, query: str | None = None) -> Source:
    """Open a log by its path or URL (see the module docstring); InputErrors when it cannot be."""
    text = str(path)
    if table is not None and query is not None:
        raise InputErrors.one("(command line)", "give --table or --query, not both", field="--query")
    if _URL.match(text):
        _no_csv_options(text, delimiter, encoding)
        return _url_source(text, table, query)
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    compression = None
    if suffixes and suffixes[-1] == ".gz":
        compression, suffixes = "gzip", suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    db = last in _DUCKDB_SUFFIXES + _SQLITE_SUFFIXES + (".db",) and compression is None
    if not db and (table is not None or query is not None):
        raise InputErrors.one("(command line)", f"--table and --query are for a database, not {p.name} "
                              "(expected a .duckdb, .db or .sqlite file or a database URL)",
                              field="--table" if table is not None else "--query")
    if last in _CSV_SUFFIXES:
        return CsvSource(text, compression, delimiter=delimiter, encoding=encoding)
    _no_csv_options(text, delimiter, encoding)
    if last in _PARQUET_SUFFIXES and compression is None:
        return ParquetSource(text)
    if db:
        magic = _magic(text)
        if last in _SQLITE_SUFFIXES or (last == ".db" and magic.startswith(b"SQLite format 3")):
            return _SqlAlchemySource(f"sqlite:///{p}", table, query, where=text, file=p)
        if last in _DUCKDB_SUFFIXES or magic[8:12] == b"DUCK":
            return DuckDbSource(text, p, table, query)
        raise InputErrors.one(text, "not a DuckDB or SQLite database (expected a .duckdb file, an SQLite file, "
                              "or a database URL such as sqlite:///path.db)")
    shown = "".join(p.suffixes) or "none"
    raise InputErrors.one(
        text,
        f"unsupported file type (extension {shown}); expected .csv or .txt (optionally .gz), "
        ".parquet / .pq, a .duckdb / .db / .sqlite database, or a database URL",
    )


def raw_from_table(where: str, table: pa.Table, roles: dict[str, str], lines: np.ndarray,
                   row_word: str = "line") -> RawLog:
    """A :class:`RawLog` of a table already in memory (text columns), with each row's line."""
    kinds = {r: (DATE if r == "date" else AMOUNT if r == "amount" else "text") for r in roles}
    collector = _Collector(roles, kinds)
    collector.add(collector.encode({r: table.column(name).combine_chunks() for r, name in roles.items()}),
                  table.num_rows)
    lines = np.asarray(lines, dtype=np.int64)
    return RawLog(where=where, columns=collector.columns(), names=list(table.column_names), nrows=table.num_rows,
                  row_word=row_word, _lines=lambda positions: lines[positions])


def _no_csv_options(where: str, delimiter: str | None, encoding: str | None) -> None:
    for flag, value in (("--delimiter", delimiter), ("--encoding", encoding)):
        if value is not None:
            raise InputErrors.one("(command line)", f"{flag} is for CSV files, not {Path(where).name}", field=flag)


def _magic(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(16)
    except FileNotFoundError:
        raise InputErrors.one(path, "cannot read the file: no such file") from None
    except OSError as exc:
        raise InputErrors.one(path, f"cannot read the file: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------------------
# batches -> columns
# --------------------------------------------------------------------------------------


def _strip_text(arr: pa.Array) -> pa.Array:
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    return pc.utf8_trim_whitespace(arr)


def _encode(arr: pa.Array, kind: str) -> tuple[str, pa.Array]:
    """One batch of one column as ("dict", DictionaryArray), ("float", float64), ("days", int32)
    or ("null", NullArray). Text is dictionary-encoded first and its distinct values trimmed
    (cheaper than trimming every row; values equal once trimmed are merged later)."""
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        arr = pc.dictionary_encode(arr)
        t = arr.type
    if pa.types.is_dictionary(t):
        values = arr.dictionary
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            return "dict", pa.DictionaryArray.from_arrays(arr.indices, _strip_text(values))
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_null(t):
        return "null", arr
    if kind == AMOUNT and (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        return "float", pc.cast(arr, pa.float64())
    if kind == DATE and (pa.types.is_date(t) or pa.types.is_timestamp(t)):
        if pa.types.is_timestamp(t) and t.tz is not None:
            arr = pc.local_timestamp(arr)  # the local wall-clock date
        days = pc.cast(pc.cast(arr, pa.date32()), pa.int32())
        return "days", days
    if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_floating(t):
        return "dict", pc.dictionary_encode(arr)
    return "dict", pc.dictionary_encode(text_of(arr))


def text_of(values: pa.Array) -> pa.Array:
    """Values as text (null stays null): integral floats without ``.0``, booleans
    ``true``/``false``, dates ISO, anything else as Python prints it."""
    t = values.type
    if pa.types.is_string(t):
        return values
    if pa.types.is_large_string(t) or pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_date(t) \
            or pa.types.is_timestamp(t):
        return pc.cast(values, pa.string())
    if pa.types.is_null(t):
        return pa.nulls(len(values), pa.string())
    if pa.types.is_boolean(t):
        return pc.if_else(values, "true", "false")
    if pa.types.is_floating(t):
        v = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
        finite = np.isfinite(v)
        if finite.any() and np.all(v[finite] == np.round(v[finite])) and np.all(np.abs(v[finite]) < 2**53):
            ints = pa.array(np.where(finite, v, 0).astype(np.int64), mask=~finite)
            return pc.cast(ints, pa.string())
        return pc.cast(values, pa.string())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pa.array([None if b is None else b.decode("utf-8", "replace") for b in values.to_pylist()],
                        pa.string())
    return pa.array([None if v is None else str(v) for v in values.to_pylist()], pa.string())


#: Roles with about one distinct value per row (a customer or transaction id): their text is
#: kept as read and encoded once at the end, which is cheaper than encoding each batch and
#: unifying batch dictionaries that hardly overlap.
KEY_ROLES = ("customer_id", "transaction_id")


def _plain_integers(text: pa.Array) -> bool:
    """Every value is 1 to 18 decimal digits without a leading zero (checked on a slice first)."""
    for part in (text.slice(0, 1000), text):
        if not pc.all(pc.ascii_is_decimal(part)).as_py():
            return False
        lengths = pc.binary_length(part)
        if pc.max(lengths).as_py() > 18:
            return False
        if pc.any(pc.and_(pc.starts_with(part, "0"), pc.greater(lengths, 1))).as_py():
            return False
    return True


class _Collector:
    """Columns gathered batch by batch (encoded on worker threads, in order)."""

    def __init__(self, roles: dict[str, str], kinds: dict[str, str]):
        self.roles, self.kinds = roles, kinds
        self.chunks: dict[str, list[tuple[str, pa.Array]]] = {r: [] for r in roles}
        self.nrows = 0

    def encode(self, batch: dict[str, pa.Array]) -> dict[str, tuple[str, pa.Array]]:
        out = {}
        for role in self.roles:
            arr = batch[role]
            if role in KEY_ROLES and (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
                out[role] = ("raw", arr)
            else:
                out[role] = _encode(arr, self.kinds.get(role, "text"))
        return out

    def add(self, encoded: dict[str, tuple[str, pa.Array]], nrows: int) -> None:
        for role, chunk in encoded.items():
            self.chunks[role].append(chunk)
        self.nrows += nrows

    def run(self, batches: Iterable[dict[str, pa.Array]]) -> None:
        """Encode batches on two threads (pyarrow releases the GIL), at most four in flight."""
        with ThreadPoolExecutor(2) as pool:
            pending: deque = deque()
            for batch in batches:
                n = len(next(iter(batch.values()))) if batch else 0
                pending.append((pool.submit(self.encode, batch), n))
                if len(pending) >= 4:
                    fut, k = pending.popleft()
                    self.add(fut.result(), k)
            while pending:
                fut, k = pending.popleft()
                self.add(fut.result(), k)

    def columns(self) -> dict[str, Column]:
        out = {}
        for role in list(self.chunks):
            chunks = self.chunks.pop(role)  # let each column's batches go as soon as it is done
            out[role] = _finish(self.roles[role], chunks, self.kinds.get(role, "text"))
            del chunks
        return out


def _encode_raw(chunks: list[pa.Array]) -> tuple[pa.DictionaryArray, bool]:
    """Text batches of a key column encoded at once, its distinct values trimmed; and whether
    they are still distinct (trimming removed nothing).

    Ids written as plain integers (no sign, no leading zero: ``0042`` stays text) are
    factorised as integers, several times faster than hashing their text."""
    total = sum(c.nbytes for c in chunks)
    target = pa.large_string() if total > (1 << 31) - (1 << 26) else pa.string()
    combined = pa.chunked_array([c.cast(target) for c in chunks], target).combine_chunks()
    if combined.null_count == 0 and len(combined) and _plain_integers(combined):
        import pandas as pd

        codes, uniques = pd.factorize(pc.cast(combined, pa.int64()).to_numpy(), sort=False)
        return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)),
                                              pc.cast(pa.array(uniques), pa.string())), True
    enc = pc.dictionary_encode(combined)
    trimmed = _strip_text(enc.dictionary)
    same = pc.sum(pc.binary_length(trimmed)).as_py() == pc.sum(pc.binary_length(enc.dictionary)).as_py()
    return pa.DictionaryArray.from_arrays(enc.indices, trimmed), bool(same)


def _finish(name: str, chunks: list[tuple[str, pa.Array]], kind: str) -> Column:
    """The batches of one column as one :class:`Column`."""
    distinct = False  # values known to be distinct already
    if chunks and any(tag == "raw" for tag, _ in chunks):
        raw = [a for tag, a in chunks if tag == "raw"]
        if len(raw) == len(chunks):
            encoded, distinct = _encode_raw(raw)
            chunks = [("dict", encoded)]
        else:  # some batches typed (a database column of mixed types): encode each
            chunks = [(tag, a) if tag != "raw" else _encode(a, kind) for tag, a in chunks]
    tags = {tag for tag, _ in chunks}
    if not chunks:
        return Column(name, codes=np.zeros(0, np.int32), values=pa.array([], pa.string()))
    if tags <= {"float", "null"} and "float" in tags:
        parts = [np.asarray(pc.fill_null(pc.cast(a, pa.float64()), np.nan).to_numpy(zero_copy_only=False), np.float64)
                 for _, a in chunks]
        return Column(name, floats=np.concatenate(parts))
    if tags <= {"days", "null"} and "days" in tags:
        parts = [np.asarray(pc.fill_null(pc.cast(a, pa.int32()), BAD_DAY).to_numpy(zero_copy_only=False), np.int32)
                 for _, a in chunks]
        return Column(name, days=np.concatenate(parts))
    dicts: list[pa.DictionaryArray] = []
    for tag, a in chunks:
        if tag == "dict":
            dicts.append(a)
        elif tag == "days":
            dicts.append(pc.dictionary_encode(pc.cast(pc.cast(a, pa.date32()), pa.string())))
        elif tag == "float":
            dicts.append(pc.dictionary_encode(text_of(a)))
        else:  # all null
            dicts.append(pa.DictionaryArray.from_arrays(pa.nulls(len(a), pa.int32()), pa.array([], pa.string())))
    types = {d.dictionary.type for d in dicts if len(d.dictionary)}
    if len(types) > 1 or any(d.dictionary.type not in types for d in dicts if types):
        target = types.pop() if len(types) == 1 else pa.string()
        fixed = []
        for d in dicts:
            values = d.dictionary if d.dictionary.type == target else (
                text_of(d.dictionary) if target == pa.string() else d.dictionary.cast(target))
            fixed.append(pa.DictionaryArray.from_arrays(d.indices.cast(pa.int32()), values))
        dicts = fixed
    else:
        dicts = [pa.DictionaryArray.from_arrays(d.indices.cast(pa.int32()), d.dictionary) for d in dicts]
    unified = pa.chunked_array(dicts).unify_dictionaries()
    values = unified.chunk(0).dictionary if unified.num_chunks else pa.array([], pa.string())
    codes = np.concatenate([np.asarray(pc.fill_null(c.indices, -1).to_numpy(zero_copy_only=False), np.int32)
                            for c in unified.chunks]) if unified.num_chunks else np.zeros(0, np.int32)
    # values equal once trimmed (or as text) are one value: unifying several chunks merged them,
    # a single chunk's dictionary may still hold both
    uniq = pc.dictionary_encode(values) if unified.num_chunks == 1 and not distinct else None
    if uniq is not None and (len(uniq.dictionary) < len(values) or uniq.null_count):
        remap = np.asarray(pc.fill_null(uniq.indices, -1).to_numpy(zero_copy_only=False), np.int32)
        codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1).astype(np.int32)
        values = uniq.dictionary
    return Column(name, codes=codes, values=values)


def _drop_blank(columns: dict[str, Column]) -> np.ndarray | None:
    """Rows where every column read is empty (or null); None when there are none."""
    empties = []
    for col in columns.values():
        if col.codes is not None:
            text = text_of(col.values)
            empty = np.asarray(pc.fill_null(pc.equal(text, ""), True).to_numpy(zero_copy_only=False), bool)
            if not empty.any() and (len(col.codes) == 0 or col.codes.min() >= 0):
                return None  # this column is never empty: no row is blank
            empties.append(("codes", col.codes, empty))
        elif col.floats is not None:
            empties.append(("floats", col.floats, None))
        else:
            empties.append(("days", col.days, None))
    blank = None
    for kind, data, empty in empties:
        if kind == "codes":
            this = (data < 0) | (empty[np.maximum(data, 0)] if len(empty) else True)
        elif kind == "floats":
            this = np.isnan(data)
        else:
            this = data == BAD_DAY
        blank = this if blank is None else (blank & this)
        if not blank.any():
            return None
    return blank


# --------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------


def _opener(path: str, compression: str | None):
    return gzip.open(path, "rb") if compression == "gzip" else open(path, "rb")


def _ascii_compatible(encoding: str) -> bool:
    try:
        return "\n\r,;\t|\" ".encode(encoding) == b"\n\r,;\t|\" "
    except (LookupError, UnicodeError):
        return False


class CsvSource(Source):
    """A CSV file: encoding, delimiter and header sniffed, rows read by pyarrow (module docstring)."""

    kind = "csv"

    def __init__(self, path: str, compression: str | None, *, delimiter: str | None = None,
                 encoding: str | None = None):
        self.where = path
        self.compression = compression
        self.notes: list[str] = []
        try:
            with _opener(path, compression) as fh:
                sample = fh.read(SAMPLE_BYTES)
                self.whole = len(sample) < SAMPLE_BYTES or not fh.read(1)
        except FileNotFoundError:
            raise InputErrors.one(path, "cannot read the file: no such file") from None
        except (OSError, EOFError) as exc:
            raise InputErrors.one(path, f"cannot read the file: {getattr(exc, 'strerror', None) or exc}") from None
        self.bom = sample.startswith(codecs.BOM_UTF8)
        self.given_encoding = encoding is not None
        self.encoding = self._encoding(sample, encoding)
        if b"\x00" in sample and not self.encoding.startswith(("utf-16", "utf-32", "utf_16", "utf_32")):
            raise InputErrors.one(path, "binary data, not text (expected a CSV transaction log: UTF-8, cp1252 or "
                                  "UTF-16 text)")
        text = self._decode_sample(sample)
        first = text.split("\n", 1)[0].rstrip("\r")
        if not first.strip():
            raise InputErrors.one(path, "file is empty; expected a header line naming the columns, then one row per purchase")
        lines = text.splitlines()
        if not self.whole and len(lines) > 1:
            lines = lines[:-1]  # the sample may end mid-line
        self.delimiter = self._delimiter(lines, delimiter)
        header = next(csv.reader([first], delimiter=self.delimiter, quotechar='"'), [])
        names: list[str] = []
        for raw in header:
            name = raw.strip()
            base, k = name, 1
            while name in names:  # duplicate names: 'amount', 'amount.1' (as pandas does)
                name, k = f"{base}.{k}", k + 1
            names.append(name)
        self.names = names
        self.ascii_sample = sample.isascii()

    @property
    def file(self) -> Path:
        return Path(self.where)

    def _encoding(self, sample: bytes, given: str | None) -> str:
        if given is not None:
            try:
                return codecs.lookup(given).name
            except LookupError:
                raise InputErrors.one("(command line)", f"{given!r} is not an encoding Python knows "
                                      "(expected e.g. utf-8, cp1252, latin-1, utf-16)", field="--encoding") from None
        if self.bom:
            return "utf-8"
        if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        try:
            codecs.getincrementaldecoder("utf-8")().decode(sample, final=self.whole)
            return "utf-8"
        except UnicodeDecodeError:
            pass
        try:
            sample.decode("cp1252")
            return "cp1252"
        except UnicodeDecodeError:
            return "latin-1"

    def _decode_sample(self, sample: bytes) -> str:
        enc = "utf-8-sig" if self.encoding == "utf-8" else self.encoding
        try:
            return codecs.getincrementaldecoder(enc)().decode(sample, final=self.whole)
        except UnicodeDecodeError as exc:
            line = sample[: exc.start].count(b"\n") + 1
            raise InputErrors.one(self.where, f"not {self.encoding} text (byte 0x{sample[exc.start]:02x}); "
                                  "give the file's encoding with --encoding, e.g. --encoding cp1252", line=line) from None

    def _delimiter(self, lines: list[str], given: str | None) -> str:
        if given is not None:
            return given
        header = lines[0]
        best, best_key = ",", None
        for d in _DELIMITERS:
            try:
                rows = list(csv.reader(lines[:200], delimiter=d, quotechar='"'))
            except csv.Error:
                continue
            if not rows or len(rows[0]) < 2:
                continue
            width = len(rows[0])
            data = [r for r in rows[1:] if r and any(f.strip() for f in r)]
            same = sum(len(r) == width for r in data) / len(data) if data else 1.0
            key = (same, width)
            if best_key is None or key > best_key:
                best, best_key = d, key
        if best_key is None and header:
            return max(_DELIMITERS, key=header.count) if any(d in header for d in _DELIMITERS) else ","
        return best

    def describe(self) -> list[str]:
        enc = self.encoding + (" (BOM)" if self.bom and self.encoding == "utf-8" else "")
        return [f"delimiter {_DELIMITER_WORDS.get(self.delimiter, repr(self.delimiter))}", f"encoding {enc}"]

    # ---- reading

    def read(self, roles: dict[str, str]) -> RawLog:
        while True:
            try:
                return self._read(roles)
            except _NotUtf8:
                # a file plain ASCII at its start may be cp1252 further on; cp1252 leaves five
                # bytes undefined, which Latin-1 reads. Anything else is a wrong encoding.
                if not self.given_encoding and self.encoding == "utf-8" and self.ascii_sample:
                    self.encoding = "cp1252"
                elif not self.given_encoding and self.encoding == "cp1252":
                    self.encoding = "latin-1"
                else:
                    raise InputErrors.one(self.where, self._first_undecodable(), line=self._undecodable_line) from None
                self.notes = [n for n in self.notes if not n.startswith("the file is not")]
                self.notes.append(f"the file is not UTF-8 beyond its first 64 KB: read as {self.encoding} "
                                  "(--encoding to change)")

    def _read(self, roles: dict[str, str]) -> RawLog:
        import pyarrow.csv as pacsv

        index = {name: i for i, name in enumerate(self.names)}
        internal = [f"c{i}" for i in range(len(self.names))]
        wanted = {role: internal[index[name]] for role, name in roles.items()}
        include = sorted(set(wanted.values()), key=lambda c: int(c[1:]))
        invalid: list[tuple[int, str]] = []
        lock = threading.Lock()

        def on_invalid(row) -> str:
            text = row.text or ""
            if text.strip():
                with lock:
                    invalid.append((row.actual_columns, text))
            return "skip"

        read_opts = pacsv.ReadOptions(column_names=internal, skip_rows=1, block_size=_BLOCK_BYTES,
                                      encoding="utf8" if self.encoding == "utf-8" else self.encoding)
        parse_opts = pacsv.ParseOptions(delimiter=self.delimiter, quote_char='"', double_quote=True,
                                        newlines_in_values=True, ignore_empty_lines=True,
                                        invalid_row_handler=on_invalid)
        convert_opts = pacsv.ConvertOptions(include_columns=include, column_types={c: pa.string() for c in include},
                                            strings_can_be_null=False, quoted_strings_can_be_null=False)
        kinds = {r: (DATE if r == "date" else AMOUNT if r == "amount" else "text") for r in roles}
        collector = _Collector(roles, kinds)

        def batches() -> Iterator[dict[str, pa.Array]]:
            try:
                reader = pacsv.open_csv(self.where, read_opts, parse_opts, convert_opts)
                for batch in reader:
                    yield {role: batch.column(include.index(c)) for role, c in wanted.items()}
            except pa.ArrowInvalid as exc:
                raise self._arrow_error(exc) from None
            except UnicodeDecodeError as exc:
                raise self._arrow_error(exc) from None
            except StopIteration:  # pragma: no cover - empty file after the header
                return

        try:
            collector.run(batches())
        except pa.ArrowInvalid as exc:
            raise self._arrow_error(exc) from None
        columns = collector.columns()
        nrows = collector.nrows
        blank = _drop_blank(columns)
        if blank is not None:
            columns = {r: c.take(~blank) for r, c in columns.items()}
            nrows = int((~blank).sum())
        kept = None if blank is None else np.flatnonzero(~blank)

        def lines(positions: np.ndarray) -> np.ndarray:
            rows = positions if kept is None else kept[positions]
            return self._scan(rows)[0]

        def ragged() -> list[tuple[int, int]]:
            return self._scan(np.zeros(0, np.int64), _LISTED)[1]

        return RawLog(where=self.where, columns=columns, names=list(self.names), nrows=nrows, row_word="line",
                      read_as=self.describe(), delimiter=self.delimiter, notes=list(self.notes), ragged=len(invalid),
                      _lines=lines, _ragged_lines=ragged)

    def _arrow_error(self, exc: Exception) -> Exception:
        text = str(exc)
        if isinstance(exc, UnicodeDecodeError) or "UTF8" in text or "utf8" in text.lower() and "invalid" in text.lower():
            return _NotUtf8()
        if "straddling" in text or "block size" in text:
            return InputErrors.one(self.where, "a row is longer than 4 MB: is the delimiter or the quoting right? "
                                   f"(read with delimiter {_DELIMITER_WORDS.get(self.delimiter)}; --delimiter to change)")
        last = text.strip().splitlines()[-1] if text.strip() else repr(exc)
        return InputErrors.one(self.where, f"cannot parse the file: {last}")

    _undecodable_line: int | None = None

    def _first_undecodable(self) -> str:
        """Where the text stops being valid in its encoding: the message (the line is kept)."""
        enc = "utf-8" if self.encoding == "utf-8" else self.encoding
        decoder = codecs.getincrementaldecoder(enc)()
        newlines, offset = 0, 0
        with _opener(self.where, self.compression) as fh:
            while True:
                chunk = fh.read(1 << 22)
                try:
                    decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as exc:
                    pos = max(exc.start, 0)
                    # the failing byte is in this chunk when the decoder keeps no pending bytes
                    bad = chunk[pos] if pos < len(chunk) else 0
                    self._undecodable_line = newlines + chunk[:pos].count(b"\n") + 1
                    return (f"not {self.encoding} text (byte 0x{bad:02x}); give the file's encoding with --encoding, "
                            "e.g. --encoding cp1252")
                if not chunk:
                    break
                newlines += chunk.count(b"\n")
                offset += len(chunk)
        return f"not {self.encoding} text; give the file's encoding with --encoding, e.g. --encoding cp1252"

    # ---- line numbers

    def _bytes(self) -> Iterator[bytes]:
        """The file's bytes, in an ASCII-compatible encoding (transcoded to UTF-8 if not)."""
        with _opener(self.where, self.compression) as fh:
            if _ascii_compatible(self.encoding):
                while chunk := fh.read(1 << 22):
                    yield chunk
            else:
                text = io.TextIOWrapper(fh, encoding=self.encoding, errors="replace", newline="")
                while chunk := text.read(1 << 20):
                    yield chunk.encode("utf-8")

    def _scan(self, rows: np.ndarray, ragged_wanted: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Lines of the data rows ``rows`` (pyarrow's row indices) and (line, fields) of the first
        ``ragged_wanted`` rows with another number of fields than the header; the scan stops
        as soon as it has them."""
        from simulator.calibration._kernels import scan_records

        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        wanted = rows[order]
        out = np.zeros(len(rows), dtype=np.int64)
        ragged: list[tuple[int, int]] = []
        state = np.zeros(8, dtype=np.int64)
        state[3] = 1  # line of the first byte
        state[5] = 1
        ncols = len(self.names)
        seen_header = False
        row = 0  # data rows seen so far
        j = 0  # next wanted
        delim = ord(self.delimiter)
        for chunk in self._bytes():
            buf = np.frombuffer(chunk, dtype=np.uint8)
            rec_line, rec_fields, rec_blank = scan_records(buf, delim, 34, state, False)
            seen_header, row, j = self._advance(rec_line, rec_fields, rec_blank, ncols, wanted, out, order, ragged,
                                                seen_header, row, j)
            if j == len(wanted) and len(ragged) >= ragged_wanted:
                return out, ragged[:ragged_wanted]
        rec_line, rec_fields, rec_blank = scan_records(np.zeros(0, np.uint8), delim, 34, state, True)
        self._advance(rec_line, rec_fields, rec_blank, ncols, wanted, out, order, ragged, seen_header, row, j)
        return out, ragged[:ragged_wanted]

    @staticmethod
    def _advance(rec_line, rec_fields, rec_blank, ncols, wanted, out, order, ragged, seen_header, row, j):
        if len(rec_line) == 0:
            return seen_header, row, j
        if not seen_header:
            rec_line, rec_fields, rec_blank = rec_line[1:], rec_fields[1:], rec_blank[1:]
            seen_header = True
        valid = rec_fields == ncols
        bad = ~valid & ~rec_blank
        if bad.any() and len(ragged) < _LISTED:
            ragged.extend(zip(rec_line[bad][:_LISTED].tolist(), rec_fields[bad][:_LISTED].tolist()))
        lines = rec_line[valid]
        while j < len(wanted) and wanted[j] < row + len(lines):
            out[order[j]] = lines[wanted[j] - row]
            j += 1
        row += len(lines)
        return seen_header, row, j


class _NotUtf8(Exception):
    """pyarrow met bytes that are not UTF-8."""


# --------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------


class ParquetSource(Source):
    """A Parquet file, read by row groups / batches."""

    kind = "parquet"

    def __init__(self, path: str):
        import pyarrow.parquet as pq

        self.where = path
        try:
            self.pf = pq.ParquetFile(path)
        except FileNotFoundError:
            raise InputErrors.one(path, "cannot read the file: no such file") from None
        except Exception as exc:  # pyarrow raises its own error types for corrupt files
            raise InputErrors.one(path, f"not a readable Parquet file: {exc}") from None
        self.names = [str(n).strip() for n in self.pf.schema_arrow.names]

    @property
    def file(self) -> Path:
        return Path(self.where)

    def read(self, roles: dict[str, str]) -> RawLog:
        raw_names = self.pf.schema_arrow.names
        by_name = {str(n).strip(): n for n in raw_names}
        cols = sorted({by_name[c] for c in roles.values()}, key=raw_names.index)
        kinds = {r: (DATE if r == "date" else AMOUNT if r == "amount" else "text") for r in roles}
        collector = _Collector(roles, kinds)

        def batches() -> Iterator[dict[str, pa.Array]]:
            try:
                for batch in self.pf.iter_batches(batch_size=BATCH_ROWS, columns=cols):
                    yield {role: batch.column(cols.index(by_name[name])) for role, name in roles.items()}
            except Exception as exc:
                raise InputErrors.one(self.where, f"not a readable Parquet file: {exc}") from None

        collector.run(batches())
        return RawLog(where=self.where, columns=collector.columns(), names=list(self.names), nrows=collector.nrows,
                      row_word="row", read_as=["Parquet"])


# --------------------------------------------------------------------------------------
# databases
# --------------------------------------------------------------------------------------


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DuckDbSource(Source):
    """A DuckDB database file: a table or a query, streamed as Arrow record batches."""

    kind = "duckdb"

    def __init__(self, where: str, path: Path, table: str | None, query: str | None):
        import duckdb

        self.where, self.path = where, path
        self.table, self.query = table, query
        if table is None and query is None:
            raise InputErrors.one(where, "a database: give the table with --table NAME or the rows with --query 'SELECT ...'")
        if not path.is_file():
            raise InputErrors.one(where, "cannot read the file: no such file")
        try:
            self.con = duckdb.connect(str(path), read_only=True)
        except Exception as exc:
            raise InputErrors.one(where, f"not a readable DuckDB database: {_first_line(exc)}") from None
        self.sql = query if query is not None else "SELECT * FROM " + ".".join(_quote_ident(p) for p in _split_table(table))
        try:
            rel = self.con.execute(f"SELECT * FROM ({self.sql}) AS _log LIMIT 0")
            self.names = [str(d[0]).strip() for d in rel.description]
            self.raw_names = [str(d[0]) for d in rel.description]
        except Exception as exc:
            raise InputErrors.one(where, self._failed(exc), field="--query" if query is not None else "--table") from None

    def _failed(self, exc: Exception) -> str:
        text = _first_line(exc)
        if self.query is not None:
            return f"the query failed: {text}"
        try:
            tables = [r[0] for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        except Exception:  # pragma: no cover - a database without the catalogue
            tables = []
        return (f"no table {self.table!r} in the database (tables: {', '.join(tables) or 'none'})"
                if "does not exist" in text or "not found" in text.lower() else f"cannot read table {self.table!r}: {text}")

    @property
    def file(self) -> Path:
        return self.path

    def describe(self) -> list[str]:
        return [f"DuckDB {'table ' + repr(self.table) if self.table is not None else 'query'}"]

    def read(self, roles: dict[str, str]) -> RawLog:
        by_name = dict(zip(self.names, self.raw_names))
        cols = list(dict.fromkeys(by_name[c] for c in roles.values()))
        select = ", ".join(_quote_ident(c) for c in cols)
        kinds = {r: (DATE if r == "date" else AMOUNT if r == "amount" else "text") for r in roles}
        collector = _Collector(roles, kinds)

        def batches() -> Iterator[dict[str, pa.Array]]:
            try:
                rel = self.con.sql(f"SELECT {select} FROM ({self.sql}) AS _log")
                reader = (rel.to_arrow_reader(BATCH_ROWS) if hasattr(rel, "to_arrow_reader")
                          else rel.fetch_record_batch(BATCH_ROWS))  # duckdb before 1.4
                for batch in reader:
                    yield {role: batch.column(cols.index(by_name[name])) for role, name in roles.items()}
            except InputErrors:
                raise
            except Exception as exc:
                raise InputErrors.one(self.where, self._failed(exc),
                                      field="--query" if self.query is not None else "--table") from None

        try:
            collector.run(batches())
        finally:
            self.con.close()
        return RawLog(where=self.where, columns=collector.columns(), names=list(self.names), nrows=collector.nrows,
                      row_word="row", read_as=self.describe())


def _split_table(table: str) -> list[str]:
    return [p.strip().strip('"') for p in table.split(".")] if table else [table]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _url_source(url: str, table: str | None, query: str | None) -> Source:
    if url.lower().startswith("duckdb://"):
        rest = url[len("duckdb:///"):] if url.lower().startswith("duckdb:///") else url[len("duckdb://"):]
        return DuckDbSource(url, Path(rest), table, query)
    file = None
    if url.lower().startswith("sqlite:///"):
        file = Path(url[len("sqlite:///"):])
        if not file.is_file():
            raise InputErrors.one(url, f"no such database file: {file}")
    return _SqlAlchemySource(url, table, query, where=_masked(url), file=file)


def _masked(url: str) -> str:
    """The URL with any password hidden (for messages and manifests)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


class _SqlAlchemySource(Source):
    """A database through SQLAlchemy: a table or a query, fetched in partitions."""

    kind = "sql"

    def __init__(self, url: str, table: str | None, query: str | None, *, where: str, file: Path | None):
        self.where, self.table, self.query, self._file = where, table, query, file
        if table is None and query is None:
            raise InputErrors.one(where, "a database: give the table with --table NAME or the rows with --query 'SELECT ...'")
        try:
            import sqlalchemy as sa

            self.sa = sa
            self.engine = sa.create_engine(url)
        except ImportError as exc:
            raise InputErrors.one(where, f"cannot open the database: the driver is not installed ({exc}); install it "
                                  "(e.g. pip install psycopg2-binary for postgresql://)") from None
        except Exception as exc:
            raise InputErrors.one(where, f"not a database URL SQLAlchemy can open: {_first_line(exc)} "
                                  "(expected e.g. sqlite:///path.db or postgresql://user@host/db)") from None
        try:
            with self.engine.connect() as con:
                if table is not None:
                    insp = sa.inspect(con)
                    parts = _split_table(table)
                    schema, name = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
                    if not insp.has_table(name, schema=schema):
                        tables = insp.get_table_names(schema=schema)
                        raise InputErrors.one(where, f"no table {table!r} in the database (tables: "
                                              f"{', '.join(tables) or 'none'})", field="--table")
                    self.names = [str(c["name"]).strip() for c in insp.get_columns(name, schema=schema)]
                    prep = self.engine.dialect.identifier_preparer
                    self.sql = "SELECT * FROM " + ".".join(prep.quote(p) for p in parts)
                else:
                    self.sql = query
                    result = con.execute(sa.text(query))
                    self.names = [str(k).strip() for k in result.keys()]
                    result.close()
        except InputErrors:
            raise
        except Exception as exc:
            raise InputErrors.one(where, f"the query failed: {_first_line(exc)}" if query is not None else
                                  f"cannot read the database: {_first_line(exc)}",
                                  field="--query" if query is not None else "") from None

    @property
    def file(self) -> Path | None:
        return self._file

    def describe(self) -> list[str]:
        dialect = self.engine.dialect.name
        label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(dialect, dialect)
        return [f"{label} {'table ' + repr(self.table) if self.table is not None else 'query'}"]

    def read(self, roles: dict[str, str]) -> RawLog:
        sa = self.sa
        kinds = {r: (DATE if r == "date" else AMOUNT if r == "amount" else "text") for r in roles}
        collector = _Collector(roles, kinds)
        index = {name: i for i, name in enumerate(self.names)}
        wanted = {role: index[name] for role, name in roles.items()}

        def batches() -> Iterator[dict[str, pa.Array]]:
            try:
                with self.engine.connect() as con:
                    result = con.execution_options(stream_results=True, yield_per=100_000).execute(sa.text(self.sql))
                    for rows in result.partitions():
                        columns = list(zip(*rows)) if rows else []
                        yield {role: _to_arrow(columns[i]) for role, i in wanted.items()}
            except InputErrors:
                raise
            except Exception as exc:
                raise InputErrors.one(self.where, f"the query failed: {_first_line(exc)}" if self.query is not None
                                      else f"cannot read the database: {_first_line(exc)}") from None

        try:
            collector.run(batches())
        finally:
            self.engine.dispose()
        return RawLog(where=self.where, columns=collector.columns(), names=list(self.names), nrows=collector.nrows,
                      row_word="row", read_as=self.describe())


def _to_arrow(values: tuple) -> pa.Array:
    """One column of fetched rows (Python objects) as Arrow; mixed types as text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
