"""The calibration commands end to end: read a log file, calibrate or back-test, write the files.

``loyalty-sim calibrate`` and ``loyalty-sim backtest`` are thin layers over
:func:`calibrate_file` and :func:`backtest_file`, which notebooks can call as well. Both turn
every problem with the user's input -- an unreadable log, a window with no complete month, a
holdout before the calibration end, a bad rule set -- into
:class:`~simulator.errors.InputErrors` (one line naming the file, exit code 2 in the CLI), and
write their outputs atomically: nothing is written when anything fails, and an existing output
is replaced only when asked.

Outputs
-------
``calibrate``: the market file (``markets/<market>/market.yaml``, validated by reading it back
as any market file is read; with opt-in columns, ``optin_<channel>`` or ``optin_cols``, their
shares in its ``reachability.channels`` and its stores' ``reach``:
:func:`~simulator.calibration.stores.with_opt_in`) and beside it ``calibration_report.html`` (segment sizes, the
transition matrix as a heatmap, fitted against observed distributions, the potential score's
out-of-time AUC and calibration table); with a store column, ``stores.csv`` beside the market
file too: the figures by store of the market's store network
(:mod:`simulator.calibration.stores`), which the market spec has no field for.

``backtest``: a directory with ``backtest.csv`` (monthly actual / simulated / reference
transactions and revenue), ``backtest.json`` (totals, errors and MAPE of both forecasts),
``backtest.png``, ``customers.csv`` (per customer: actual, simulated and reference holdout
transactions), ``calibration_report.html`` (the calibration of the split, with the back-test)
and ``manifest.json`` (the log's SHA-256, the arguments, the seed and the version).

``backtest --rolling``: a directory with ``rolling.csv`` (one row per quarter-end split: the
errors and monthly MAPEs of the simulation and of BG/NBD, and their gap), ``rolling.json``
(the same, with per metric the means, the worst gap and whether the goal of issue #12 is met),
``rolling.png``, ``splits/<calibration end>/`` (each split's back-test directory, as above) and
``manifest.json`` (:func:`rolling_backtest_file`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Literal

import pandas as pd
from pydantic import TypeAdapter, ValidationError

from simulator import __version__
from simulator.calibration.backtest import BacktestResult, backtest, write_backtest
from simulator.calibration.estimate import CalibratedMarket, calibrate
from simulator.calibration.market_file import market_yaml
from simulator.calibration.report import report_html
from simulator.calibration.rolling import RollingResult, rolling_backtest, rolling_splits, split_row, write_rolling
from simulator.calibration.segmentation import RFMStates, RuleSet, load_ruleset
from simulator.calibration.stores import MIN_STORE_CUSTOMERS, with_opt_in
from simulator.calibration.sources import _URL, _masked
from simulator.calibration.transactions import TransactionLog, read_cdnow, read_transactions
from simulator.errors import InputErrors
from simulator.output import check_destination, staged_directory, write_text_atomic
from simulator.specs.base import Currency, Name

__all__ = ["LogSource", "CalibrationOutcome", "backtest_file", "calibrate_file", "rolling_backtest_file",
           "segmentation_from"]

REPORT_NAME = "calibration_report.html"
#: Figures by store of a calibrated store network, beside the market file.
STORES_NAME = "stores.csv"


@dataclass(frozen=True)
class LogSource:
    """A transaction log and how to read it: the options ``calibrate`` and ``backtest`` share.

    ``path``: a file (CSV, Parquet, DuckDB, SQLite) or a database URL. ``format``:
    ``"table"`` for a log with named columns (``customer_col``, ``date_col``, ``amount_col``
    and the optional ``store_col`` ... ``transaction_col``), or ``"cdnow"`` for the CDNOW
    sample's whitespace-separated layout. The other fields are
    :func:`~simulator.calibration.transactions.read_transactions`' options of the same name
    (None: recognised from the file).
    """

    path: Path | str
    format: Literal["table", "cdnow"] = "table"
    customer_col: str = "customer_id"
    date_col: str = "date"
    amount_col: str = "amount"
    date_format: str | None = None
    on_bad_rows: Literal["fail", "skip"] = "fail"
    merge_same_day: bool = True
    drop_duplicates: bool = False
    store_col: str | None = None
    channel_col: str | None = None
    category_col: str | None = None
    member_col: str | None = None
    transaction_col: str | None = None
    delimiter: str | None = None
    encoding: str | None = None
    decimal: str | None = None
    thousands: str | None = None
    table: str | None = None
    query: str | None = None
    optin_cols: tuple[tuple[str, str], ...] = ()

    @property
    def is_url(self) -> bool:
        return bool(_URL.match(str(self.path)))

    @property
    def file(self) -> Path | None:
        """The file holding the log, whose SHA-256 identifies it (None for a database server)."""
        text = str(self.path)
        if not self.is_url:
            return Path(self.path)
        for scheme in ("sqlite:///", "duckdb:///"):
            if text.lower().startswith(scheme):
                return Path(text[len(scheme):])
        return None

    @property
    def name(self) -> str:
        """The log as the user named it (a URL without its password)."""
        return _masked(str(self.path)) if self.is_url else str(self.path)

    def read(self) -> TransactionLog:
        if not self.is_url and not Path(self.path).is_file():
            raise InputErrors.one(str(self.path), "no such file (expected a transaction log: CSV, Parquet or a "
                                  "DuckDB / SQLite database)")
        if self.format == "cdnow":
            return read_cdnow(self.path)
        options = {k: v for k, v in asdict(self).items() if k not in ("path", "format")}
        return read_transactions(self.path, **options)

    def describe(self, sha256: str | None = None) -> dict:
        """The log with its SHA-256 (of its file, computed unless given; None for a database
        server) and the reading options (for manifests)."""
        d = asdict(self)
        d["path"] = self.name
        file = self.file
        d["sha256"] = sha256 or (_sha256(file) if file is not None and file.is_file() else None)
        return d


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _named(cm: CalibratedMarket, source: LogSource) -> None:
    """A log from a database server has no file to hash: name it (without password)."""
    if not cm.source:
        cm.source = {"name": source.name}


@dataclass
class CalibrationOutcome:
    """What :func:`calibrate_file` wrote."""

    calibrated: CalibratedMarket
    log: TransactionLog
    market_path: Path
    report_path: Path
    notes: list[str] = field(default_factory=list)
    stores_path: Path | None = None


def segmentation_from(rules: Path | None = None, *, recency_months: int = 12, rate_tiers: int = 4,
                      lapse_tiers: int = 2, lapsed_from: int = 6) -> RFMStates | RuleSet:
    """A rule set read from YAML (errors with file, line and field), or the default states."""
    if rules is not None:
        return load_ruleset(rules)
    try:
        return RFMStates(recency_months=recency_months, rate_tiers=rate_tiers, lapse_tiers=lapse_tiers,
                         lapsed_from=lapsed_from)
    except ValueError as exc:
        raise InputErrors.one("(command line)", str(exc)) from None


def _checked(kind, value: str, option: str, expected: str) -> str:
    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError:
        raise InputErrors.one("(command line)", f"{value!r} is not valid (expected {expected})", field=option) from None


def _date(value: str | None, option: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(str(value))
    except (ValueError, TypeError):
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise InputErrors.one("(command line)", f"{value!r} is not a date (expected YYYY-MM-DD)", field=option)
    return stamp.normalize()


def _reads_back(text: str, out: Path) -> None:
    """Check, before anything is written, that the market file reads back as any market file
    does (a check of the writer: InputErrors otherwise)."""
    import tempfile

    from simulator.specs import load_market

    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / out.name
        probe.write_text(text, encoding="utf-8")
        load_market(probe)


def _data_error(source: LogSource, exc: ValueError) -> InputErrors:
    """A calibration that cannot be done on this log: one line naming the log."""
    return InputErrors.one(source.name, str(exc).splitlines()[0])


def borrowed_seasonality(path: str | Path) -> tuple[tuple[float, ...], str]:
    """``--seasonality-from``: the 12 calendar-month multipliers of a market file (a sister market, or
    this market calibrated on a longer log), for a log too short to estimate its own (under 24
    months: a year of data cannot tell seasonality from the customers' decay). Returns them and
    the file's name for the calibration notes; a missing or invalid file is an input error naming
    it."""
    from simulator.specs import load_market

    p = Path(path)
    if not p.is_file():
        raise InputErrors.one(str(p), "no such market file (expected a market file such as markets/<market>/market.yaml)",
                              field="--seasonality-from")
    market = load_market(p)
    return tuple(float(v) for v in market.seasonality), str(path)


def calibrate_file(
    source: LogSource,
    out: str | Path,
    *,
    name: str | None = None,
    currency: str,
    gross_margin: float,
    calibration_end: str | None = None,
    segmentation: RFMStates | RuleSet | None = None,
    vat_rate: float = 0.0,
    prices_include_tax: bool = True,
    reporting_currency: str | None = None,
    fx_to_reporting: float = 1.0,
    discount_rate: float = 0.08,
    seasonality: Literal["auto", "flat"] | tuple[float, ...] = "auto",
    seasonality_source: str | None = None,
    potential_months: int = 3,
    report: str | Path | None = None,
    force: bool = False,
    step: Callable[[str], None] | None = None,
    customers: int | None = None,
    channels: dict[str, float] | None = None,
    min_store_customers: int = MIN_STORE_CUSTOMERS,
) -> CalibrationOutcome:
    """Calibrate a market from a log file; write the market file and its report beside it.

    ``name`` defaults to the market's folder (``markets/<name>/market.yaml``) or the file's
    stem. Refuses to replace an existing market file or report unless ``force``.
    ``customers``: the market's whole base when the log is a sample or one banner of several
    (shares as estimated, arrivals scaled). ``channels``: share of customers opted in to each
    contact channel, instead of the defaults
    (:data:`~simulator.calibration.market_file.DEFAULT_CHANNELS`). ``step`` is called with the name
    of each long step as it starts (progress). With a store column, ``stores.csv`` is written
    beside the market file (refused if it exists, unless ``force``), stores home to fewer than
    ``min_store_customers`` customers merged into one.
    """
    step = step or (lambda name: None)
    out = Path(out)
    if out.suffix.lower() not in (".yaml", ".yml"):
        raise InputErrors.one(str(out), "the market file must end in .yaml (expected markets/<market>/market.yaml)")
    if out.is_dir():
        raise InputErrors.one(str(out), "is a directory (expected the market file's path, markets/<market>/market.yaml)")
    report_path = Path(report) if report is not None else out.parent / REPORT_NAME
    for p in (out, report_path):
        if p.exists() and not force:
            raise InputErrors.one(str(p), "already exists (use --force to replace it, or choose another --out)")
    default_name = out.parent.name if out.stem == "market" and out.parent.name else out.stem
    name = _checked(Name, name or default_name, "--name", "a letter, then letters, digits, _ or -; give --name")
    currency = _checked(Currency, currency, "--currency", "an ISO 4217 code such as EUR")
    reporting_currency = _checked(Currency, reporting_currency or currency, "--reporting-currency",
                                  "an ISO 4217 code such as EUR")
    if customers is not None and (isinstance(customers, bool) or not isinstance(customers, int) or customers < 1):
        raise InputErrors.one("(command line)", f"{customers!r} is not a customer count (expected a whole number >= 1)",
                              field="--customers")
    if channels is not None:
        for ch, share in channels.items():
            _checked(Name, ch, "--channel", "a channel name: a letter, then letters, digits, _ or -")
            if not 0.0 <= share <= 1.0:
                raise InputErrors.one("(command line)", f"{ch}={share:g} is not a share (expected NAME=SHARE with 0 <= SHARE <= 1)",
                                      field="--channel")
    if not 0.0 < gross_margin < 1.0:
        raise InputErrors.one("(command line)", f"{gross_margin:g} is not a share (expected 0 < margin < 1)", field="--gross-margin")
    end = _date(calibration_end, "--calibration-end")
    step("reading the log")
    log = source.read()
    try:
        cm = calibrate(log, name=name, currency=currency, gross_margin=gross_margin, calibration_end=end,
                       segmentation=segmentation, vat_rate=vat_rate, prices_include_tax=prices_include_tax,
                       reporting_currency=reporting_currency, fx_to_reporting=fx_to_reporting,
                       discount_rate=discount_rate, seasonality=seasonality, seasonality_source=seasonality_source,
                       potential_horizon=potential_months,
                       source=source.file, customers=customers, channels=channels,
                       member_opt_in=None if channels is None else {}, step=step,
                       min_store_customers=min_store_customers)
    except ValueError as exc:
        raise _data_error(source, exc) from None
    _named(cm, source)
    # opt-in by channel from the log's optin_<channel> columns: the market's reachability and the
    # stores' reach (applied here rather than in calibrate(): simulator/calibration/stores.py)
    with_opt_in(cm, log)
    opt = cm.diagnostics.optional_columns
    network = opt.network if opt is not None else None
    stores_path = out.parent / STORES_NAME if network is not None else None
    if stores_path is not None and stores_path.exists() and not force:
        raise InputErrors.one(str(stores_path), "already exists (use --force to replace it, or choose another --out)")
    text = market_yaml(cm)
    _reads_back(text, out)
    step("writing the market file and the report")
    if stores_path is not None:
        write_text_atomic(stores_path, network.table.to_csv(index=False, float_format="%.6g"))
    write_text_atomic(report_path, report_html(cm, cleaning=log.report))
    write_text_atomic(out, text)
    return CalibrationOutcome(calibrated=cm, log=log, market_path=out, report_path=report_path,
                              notes=list(cm.diagnostics.notes), stores_path=stores_path)


def backtest_file(
    source: LogSource,
    out: str | Path,
    *,
    calibration_end: str,
    holdout_end: str | None = None,
    agents: int | None = None,
    replications: int = 20,
    seed: int = 20240601,
    segmentation: RFMStates | RuleSet | None = None,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    arguments: dict | None = None,
    seasonality: str | tuple[float, ...] = "auto",
    seasonality_source: str | None = None,
) -> BacktestResult:
    """Back-test on a log file and write the back-test directory (see the module docstring)."""
    out = check_destination(out, force)
    end = _date(calibration_end, "--calibration-end")
    h_end = _date(holdout_end, "--holdout-end")
    log = source.read()
    try:
        result = backtest(log, end, h_end, agents=agents, replications=replications, seed=seed,
                          segmentation=segmentation, source=source.file, progress=progress, seasonality=seasonality,
                          seasonality_source=seasonality_source)
    except ValueError as exc:
        raise _data_error(source, exc) from None
    _named(result.calibration, source)
    manifest = _manifest(source, log, result.calibration.source.get("sha256"), {
        "calibration_end": str(end.date()), "holdout_end": str(h_end.date()) if h_end is not None else None,
        **_run_arguments(agents, replications, seed, segmentation), **(arguments or {})})
    with staged_directory(out, force) as tmp:
        _write_backtest_dir(result, tmp, manifest, log.report)
    return result


def _run_arguments(agents: int | None, replications: int, seed: int, segmentation: RFMStates | RuleSet | None) -> dict:
    return {"agents": agents, "replications": replications, "seed": seed,
            "segmentation": segmentation.name if isinstance(segmentation, RuleSet) else asdict(segmentation or RFMStates())}


def _manifest(source: LogSource, log: TransactionLog, sha256: str | None, arguments: dict, **extra) -> dict:
    """What a back-test directory's ``manifest.json`` holds: the log (SHA-256, reading options,
    cleaning), the arguments, the version and the environment."""
    from simulator.runner import environment

    return {"tool": "loyalty-sim", "version": __version__, "command": "backtest", "arguments": arguments, **extra,
            "inputs": {"transactions": source.describe(sha256), "cleaning": log.report.to_dict()},
            "environment": environment()}


def _write_backtest_dir(result: BacktestResult, out: Path, manifest: dict, cleaning=None) -> None:
    """A back-test's files into ``out`` (a staged directory): backtest.csv/json/png, customers.csv,
    the calibration report (with how the log was read, given ``cleaning``) and the manifest."""
    write_backtest(result, out)
    result.customers.to_csv(out / "customers.csv", float_format="%.6g")
    (out / REPORT_NAME).write_text(report_html(result.calibration, backtest=result, cleaning=cleaning),
                                   encoding="utf-8")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def rolling_backtest_file(
    source: LogSource,
    out: str | Path,
    *,
    holdout_end: str | None = None,
    agents: int | None = None,
    replications: int = 20,
    seed: int = 20240601,
    segmentation: RFMStates | RuleSet | None = None,
    force: bool = False,
    progress: Callable[[int], ContextManager[Callable[[int], None]]] | None = None,
    done: Callable[[dict, Path], None] | None = None,
    arguments: dict | None = None,
    seasonality: str | tuple[float, ...] = "auto",
    seasonality_source: str | None = None,
) -> RollingResult:
    """The back-test at every quarter-end split of a log file
    (:func:`~simulator.calibration.rolling.rolling_backtest`); write the rolling directory.

    It writes ``rolling.csv``, ``rolling.json`` and ``rolling.png``. Each split's back-test
    directory goes to ``splits/<calibration end>/``, the same files ``backtest`` writes,
    including a manifest that names that split's arguments. The ``manifest.json`` at the top
    lists the splits. Everything is staged and moved into place at the end.

    ``progress(total)`` (optional) gives a context manager yielding ``advance(n)``. It is
    opened once the splits are known, with ``total`` = splits x replications. ``done(row,
    path)`` is called as each split is done, with its row of the table and where its
    ``backtest.json`` will be.
    """
    out = check_destination(out, force)
    h_arg = _date(holdout_end, "--holdout-end")
    log = source.read()
    try:
        splits, h_end = rolling_splits(log, h_arg)
    except ValueError as exc:
        raise _data_error(source, exc) from None
    file = source.file
    sha256 = _sha256(file) if file is not None and file.is_file() else None
    common = {**_run_arguments(agents, replications, seed, segmentation), **(arguments or {})}
    first = pd.Period(pd.Timestamp(log.transactions["date"].min()), "M")
    ticker = progress(len(splits) * replications) if progress is not None else contextlib.nullcontext(None)
    with ticker as tick, staged_directory(out, force) as tmp:

        def each(split: pd.Timestamp, result: BacktestResult) -> None:
            day = str(split.date())
            manifest = _manifest(source, log, sha256, {"calibration_end": day, "holdout_end": str(h_end.date()),
                                                       **common})
            _named(result.calibration, source)
            _write_backtest_dir(result, tmp / "splits" / day, manifest, log.report)
            if done is not None:
                done(split_row(result.summary, first), out / "splits" / day / "backtest.json")

        try:
            result = rolling_backtest(log, h_end, agents=agents, replications=replications, seed=seed,
                                      segmentation=segmentation, source=source.file, progress=tick, each=each,
                                      seasonality=seasonality, seasonality_source=seasonality_source)
        except ValueError as exc:
            raise _data_error(source, exc) from None
        write_rolling(result, tmp)
        manifest = _manifest(source, log, sha256, {"rolling": True, "holdout_end": str(h_arg.date()) if h_arg is not None
                                                   else None, **common},
                             splits={str(pd.Timestamp(d).date()): f"splits/{pd.Timestamp(d).date()}" for d in splits})
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return result
