"""`loyalty-sim calibrate` and `loyalty-sim backtest` as a market team calls them: the files they
write, a calibrated market that runs a playbook targeting potential bands, refusal to overwrite,
and one line with exit code 2 for every kind of bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from typer.testing import CliRunner

from simulator.calibration.backtest import BACKTEST_COLUMNS
from simulator.cli import app
from simulator.specs import load_market
from tests.test_cli_run import ROOT, cli

#: one worker runs this module, so its module-scoped calibrations are computed once
pytestmark = pytest.mark.xdist_group("cli_calibrate")

CDNOW = ROOT / "data" / "cdnow" / "CDNOW_sample.txt"
CAL = ("--currency", "USD", "--gross-margin", "0.3", "--reporting-currency", "EUR", "--fx-to-reporting", "0.9")


class _Result:
    def __init__(self, r):
        self.returncode, self.stdout, self.stderr = r.exit_code, r.stdout, r.stderr


def fast_cli(*args: str) -> _Result:
    """The command in this process (for input errors, which fail before any work)."""
    return _Result(CliRunner().invoke(app, list(args)))


def _one_line_error(res, *words: str) -> None:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.fixture(scope="module")
def cdnow_csv(tmp_path_factory) -> Path:
    """The CDNOW sample as a retailer's CSV log (customer_id, date, amount), with a header."""
    raw = pd.read_csv(CDNOW, sep=r"\s+", header=None, dtype=str)
    df = pd.DataFrame({"customer_id": raw[1], "date": pd.to_datetime(raw[2], format="%Y%m%d").dt.strftime("%Y-%m-%d"),
                       "amount": raw[4]})
    path = tmp_path_factory.mktemp("logs") / "cdnow.csv"
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def small_csv(cdnow_csv, tmp_path_factory) -> Path:
    """A quick log: 400 of the CDNOW customers, other column names, day-first dates."""
    df = pd.read_csv(cdnow_csv, dtype=str)
    keep = sorted(df["customer_id"].unique(), key=int)[:400]
    df = df[df["customer_id"].isin(keep)]
    df = pd.DataFrame({"client": df["customer_id"], "jour": pd.to_datetime(df["date"]).dt.strftime("%d/%m/%Y"),
                       "montant": df["amount"]})
    path = tmp_path_factory.mktemp("logs") / "small.csv"
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("calibrated")
    out = root / "markets" / "cdnow" / "market.yaml"
    res = cli("calibrate", str(CDNOW), "--format", "cdnow", "--out", str(out), "--calibration-end", "1997-09-30", *CAL)
    assert res.returncode == 0, res.stderr
    assert "out-of-time AUC" in res.stdout and "market:" in res.stdout
    return out


def test_calibrate_writes_a_market_that_validates_and_a_report(calibrated):
    market = load_market(calibrated)
    assert market.name == "cdnow"  # from the folder
    assert market.customers == 2357 and market.currency == "USD"
    assert all(s.potential is not None for s in market.segments)
    head = calibrated.read_text().splitlines()[0]
    assert hashlib.sha256(CDNOW.read_bytes()).hexdigest() in head
    report = (calibrated.parent / "calibration_report.html").read_text()
    for words in ("AUC", "<img", "transition"):
        assert words in report
    assert not [p for p in calibrated.parent.iterdir() if p.name.startswith(".")], "temporary files left"


def test_calibrated_market_runs_a_playbook_by_potential_band(calibrated):
    """Exclusive perks for high potential, regular rewards for medium, promotions for low."""
    pb = calibrated.parent / "by_potential.yaml"
    pb.write_text(
        f"name: cdnow_by_potential\ndesign: {ROOT / 'programs' / 'cagnotte.yaml'}\nmarket: market.yaml\nbaseline: none\n"
        "launch: 1997-11-01\nstart: 1997-10-01\nhorizon_months: 12\n"
        "enrolment_drives:\n  - {name: invite_high, start: 1997-11-01, months: 2, uplift: 1.0, target: {potential: [high]}}\n"
        "campaigns:\n"
        "  - {name: double_points_medium, kind: points_multiplier, start: 1997-12-01, months: 1, multiplier: 2,\n"
        "     target: {potential: [medium], members: members}}\n"
        "  - {name: promotion_low, kind: reactivation, start: 1998-01-01, months: 2, lift: 0.2, target: {potential: [low]}}\n",
        encoding="utf-8")
    assert cli("validate", str(pb)).returncode == 0
    res = cli("run", "--playbook", str(pb), "--agents", "2000", "--out", str(calibrated.parent / "run"))
    assert res.returncode == 0, res.stderr
    monthly = pd.read_csv(calibrated.parent / "run" / "monthly.csv")
    design = monthly[monthly.scenario == "design"]
    assert design["campaign_contacts"].sum() > 0 and design["members"].max() > 0


def test_calibrate_refuses_to_overwrite_without_force(calibrated):
    before = calibrated.read_bytes()
    res = cli("calibrate", str(CDNOW), "--format", "cdnow", "--out", str(calibrated), *CAL)
    _one_line_error(res, str(calibrated), "already exists", "--force")
    assert calibrated.read_bytes() == before


def test_bad_rows_fail_with_their_line_or_are_skipped_and_counted(small_csv, tmp_path):
    lines = small_csv.read_text().splitlines()
    lines.insert(5, "123,31/02/1997,10.0")  # no such date
    bad = tmp_path / "bad_rows.csv"
    bad.write_text("\n".join(lines) + "\n")
    cols = ("--customer-col", "client", "--date-col", "jour", "--amount-col", "montant", "--date-format", "%d/%m/%Y")
    out = tmp_path / "m" / "market.yaml"
    res = fast_cli("calibrate", str(bad), "--out", str(out), *cols, *CAL)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{bad}:6" in res.stderr and "jour" in res.stderr
    assert not out.exists() and not out.parent.exists()
    # other column names and date formats, bad rows skipped and counted, the default states' settings
    res = cli("calibrate", str(bad), "--out", str(out), *cols, "--on-bad-rows", "skip", "--recency-months", "6",
              "--rate-tiers", "2", "--lapse-tiers", "1", "--potential-months", "0", *CAL)
    assert res.returncode == 0, res.stderr
    assert "skipped 1 bad rows" in res.stdout and "skipped lines: 6\n" in res.stdout
    assert "read as: delimiter ',', encoding utf-8, decimal '.', thousands none, dates %d/%m/%Y" in res.stdout
    market = load_market(out)
    assert len(market.segments) == 1 + 2 * 7  # 'new' + 2 tiers x recency 0..6
    assert market.customers == 400 and market.segments[1].potential is None


@pytest.mark.parametrize("args, words", [
    (("--calibration-end", "the end"), ["--calibration-end", "not a date"]),
    (("--calibration-end", "1996-05-31"), ["cdnow.csv", "no complete calendar month"]),
    (("--name", "9lives"), ["--name", "expected a letter"]),
    (("--currency", "usd"), ["--currency", "ISO 4217"]),
    (("--gross-margin", "30"), ["--gross-margin", "share"]),
    (("--seasonality", "monthly"), ["--seasonality", "auto or flat"]),
    (("--seasonality-from", "markets/nowhere/market.yaml"), ["nowhere", "no such market file"]),
    (("--seasonality-from", "markets/usa/market.yaml", "--seasonality", "flat"), ["--seasonality-from", "both given"]),
    (("--on-bad-rows", "ignore"), ["--on-bad-rows", "fail or skip"]),
    (("--amount-col", "value"), ["cdnow.csv", "value"]),
    (("--channel", "email"), ["--channel", "expected NAME=SHARE"]),
    (("--channel", "email=1.5"), ["--channel", "not a share"]),
    (("--channel", "9x=0.3"), ["--channel", "channel name"]),
])
def test_calibrate_bad_input_is_one_line(cdnow_csv, tmp_path, args, words):
    out = tmp_path / "markets" / "x" / "market.yaml"
    base = {"--currency": "USD", "--gross-margin": "0.3"}
    opts = dict(base)
    for k, v in zip(args[::2], args[1::2]):
        opts[k] = v
    flat = [x for kv in opts.items() for x in kv]
    res = fast_cli("calibrate", str(cdnow_csv), "--out", str(out), *flat)
    _one_line_error(res, *words)
    assert not out.parent.exists()


def test_calibrate_rejects_files_that_are_not_logs(tmp_path):
    out = tmp_path / "m" / "market.yaml"
    _one_line_error(fast_cli("calibrate", str(ROOT / "markets" / "usa" / "market.yaml"), "--out", str(out), *CAL),
                    "market.yaml", "unsupported file type")
    csv = tmp_path / "not_a_log.csv"
    csv.write_text("name,share\nchampions,0.05\n")
    _one_line_error(fast_cli("calibrate", str(csv), "--out", str(out), *CAL), "not_a_log.csv", "customer_id")
    _one_line_error(fast_cli("calibrate", str(tmp_path / "missing.csv"), "--out", str(out), *CAL), "missing.csv", "no such file")
    _one_line_error(fast_cli("calibrate", str(CDNOW), "--format", "cdnow", "--out", str(tmp_path / "m"), *CAL), "must end in .yaml")


def test_calibrate_rule_set_errors_name_file_and_line(cdnow_csv, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("name: rs\nsegments:\n  - name: a\n    when: {recency_months: {max: 2}}\n  - name: b\n"
                     "    when: {frequence: {min: 1}}\n")
    res = fast_cli("calibrate", str(cdnow_csv), "--out", str(tmp_path / "m" / "market.yaml"), "--segments", str(rules), *CAL)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{rules}:6" in res.stderr and "frequence" in res.stderr


def test_calibrate_with_a_rule_set(cdnow_csv, tmp_path):
    out = tmp_path / "markets" / "ve" / "market.yaml"
    res = cli("calibrate", str(cdnow_csv), "--out", str(out), "--segments", str(ROOT / "rulesets" / "value_engagement.yaml"),
              "--calibration-end", "1997-12-31", *CAL)
    assert res.returncode == 0, res.stderr
    from simulator.calibration.segmentation import load_ruleset

    names = [s.name for s in load_market(out).segments]
    assert names == ["new", *load_ruleset(ROOT / "rulesets" / "value_engagement.yaml").names]


@pytest.fixture(scope="module")
def backtest_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bt") / "cdnow"
    res = cli("backtest", str(CDNOW), "--format", "cdnow", "--calibration-end", "1997-09-30", "--holdout-end",
              "1998-06-30", "--replications", "3", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "holdout transactions" in res.stdout and "holdout revenue" in res.stdout
    return out


def test_backtest_writes_the_documented_files(backtest_dir):
    for f in ("backtest.csv", "backtest.json", "backtest.png", "customers.csv", "calibration_report.html", "manifest.json"):
        assert (backtest_dir / f).is_file(), f
    df = pd.read_csv(backtest_dir / "backtest.csv")
    assert tuple(df.columns) == BACKTEST_COLUMNS
    assert list(df["period"]) == [str(p) for p in pd.period_range("1997-10", "1998-06", freq="M")]
    assert df["actual_transactions"].sum() == 1882  # the customers known at 1997-09-30, in the holdout
    summary = json.loads((backtest_dir / "backtest.json").read_text())
    for block in ("transactions", "revenue"):
        for key in ("actual", "forecast", "reference", "forecast_error_pct", "reference_error_pct",
                    "forecast_mape_pct", "reference_mape_pct"):
            assert summary[block][key] is not None
    assert summary["transactions"]["reference_error_pct"] == pytest.approx(-12.1, abs=0.1)
    manifest = json.loads((backtest_dir / "manifest.json").read_text())
    assert manifest["inputs"]["transactions"]["sha256"] == hashlib.sha256(CDNOW.read_bytes()).hexdigest()
    assert manifest["inputs"]["transactions"]["drop_duplicates"] is False  # the reading options are recorded
    assert manifest["arguments"]["seed"] == 20240601 and manifest["command"] == "backtest"


def test_backtest_is_reproducible(backtest_dir, tmp_path):
    out = tmp_path / "again"
    res = cli("backtest", str(CDNOW), "--format", "cdnow", "--calibration-end", "1997-09-30", "--holdout-end",
              "1998-06-30", "--replications", "3", "--out", str(out))
    assert res.returncode == 0, res.stderr
    for f in ("backtest.csv", "backtest.json", "customers.csv"):
        assert (out / f).read_bytes() == (backtest_dir / f).read_bytes(), f


def test_backtest_refuses_an_existing_directory(backtest_dir):
    res = fast_cli("backtest", str(CDNOW), "--format", "cdnow", "--calibration-end", "1997-09-30", "--out", str(backtest_dir))
    _one_line_error(res, str(backtest_dir), "already exists")


def test_backtest_holdout_before_calibration_end_is_one_line(tmp_path):
    out = tmp_path / "bt"
    res = fast_cli("backtest", str(CDNOW), "--format", "cdnow", "--calibration-end", "1997-09-30", "--holdout-end",
                   "1997-08-31", "--out", str(out))
    _one_line_error(res, "CDNOW_sample.txt", "holdout must end after")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir()], "partial output left"


@pytest.mark.parametrize("command", ["calibrate", "backtest"])
def test_help(command):
    res = fast_cli(command, "--help")
    assert res.returncode == 0 and "--on-bad-rows" in res.stdout
    for flag in ("--decimal", "--thousands", "--encoding", "--delimiter", "--table", "--query", "--store-col",
                 "--category-col", "--member-col", "--channel-col", "--transaction-col", "--drop-duplicates"):
        assert flag in res.stdout, flag


# ------------------------------------------------------------------ logs as market teams have them


@pytest.fixture(scope="module")
def french_csv(small_csv, tmp_path_factory) -> Path:
    """The quick log as a French till system exports it: cp1252, ';', decimal comma, day-first
    dates, a store column named in French and an unused column."""
    df = pd.read_csv(small_csv, dtype=str)
    # in a currency of larger numbers (x 100), so that thousands separators appear
    amount = (df["montant"].astype(float) * 100).map(lambda v: f"{v:,.2f}".replace(",", " ").replace(".", ","))
    rows = [f"{c};{d};{a};Épinal;{i}" for i, (c, d, a) in enumerate(zip(df["client"], df["jour"], amount))]
    path = tmp_path_factory.mktemp("logs") / "ventes.csv"
    path.write_bytes(("client;jour;montant;magasin;n° ticket\r\n" + "\r\n".join(rows) + "\r\n").encode("cp1252"))
    return path


FR_COLS = ("--customer-col", "client", "--date-col", "jour", "--amount-col", "montant")


def test_calibrate_reads_a_french_export_and_says_how(french_csv, tmp_path):
    out = tmp_path / "fr" / "market.yaml"
    res = cli("calibrate", str(french_csv), "--out", str(out), *FR_COLS, "--potential-months", "0", *CAL)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "read as: delimiter ';', encoding cp1252, decimal ',', thousands ' ', dates %d/%m/%Y"
    assert "ignored columns: magasin, n° ticket -- to use them: --store-col magasin, --transaction-col 'n° ticket'" \
        in lines
    assert load_market(out).customers == 400
    report = (out.parent / "calibration_report.html").read_text()
    assert "Reading the log" in report and "Ignored columns: magasin" in report


@pytest.mark.parametrize("args, words", [
    (("--decimal", "."), ["ventes.csv:2", "montant", "--decimal", "look like decimal ','"]),
    (("--date-format", "%m/%d/%Y"), ["ventes.csv:", "jour", "--date-format '%m/%d/%Y'", "look like '%d/%m/%Y'"]),
    (("--encoding", "utf-8"), ["ventes.csv:1", "not utf-8 text", "--encoding"]),
    (("--delimiter", ","), ["ventes.csv:1", "missing required columns", "--delimiter"]),
    (("--thousands", "x"), ["--thousands", "not a thousands separator"]),
    (("--store-col", "shop"), ["ventes.csv:1", "no column 'shop' (given with --store-col)"]),
    (("--table", "sales"), ["--table", "for a database"]),
])
def test_reading_options_that_do_not_fit_are_one_line(french_csv, tmp_path, args, words):
    out = tmp_path / "m" / "market.yaml"
    _one_line_error(fast_cli("calibrate", str(french_csv), "--out", str(out), *FR_COLS, *args, *CAL), *words)
    assert not out.parent.exists()


def test_dates_that_cannot_tell_day_from_month_name_the_option(tmp_path):
    log = tmp_path / "us.csv"
    log.write_text("customer_id,date,amount\nA,01/02/2024,1\nB,03/04/2024,2\n")
    _one_line_error(fast_cli("calibrate", str(log), "--out", str(tmp_path / "m" / "market.yaml"), *CAL),
                    "us.csv:2", "date", "--date-format '%d/%m/%Y' or --date-format '%m/%d/%Y'")


@pytest.fixture(scope="module")
def duckdb_log(small_csv, tmp_path_factory) -> Path:
    import duckdb

    path = tmp_path_factory.mktemp("logs") / "sales.duckdb"
    con = duckdb.connect(str(path))
    con.execute(f"CREATE TABLE receipts AS SELECT client::VARCHAR AS client, strptime(jour, '%d/%m/%Y')::DATE AS jour, "
                f"montant::DECIMAL(12, 2) AS montant FROM read_csv('{small_csv}', all_varchar = true)")
    con.close()
    return path


def test_calibrate_from_a_duckdb_table(duckdb_log, tmp_path):
    out = tmp_path / "db" / "market.yaml"
    res = cli("calibrate", str(duckdb_log), "--table", "receipts", "--out", str(out), *FR_COLS, "--potential-months",
              "0", *CAL)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("read as: DuckDB table 'receipts'\n")
    assert load_market(out).customers == 400
    assert hashlib.sha256(duckdb_log.read_bytes()).hexdigest() in out.read_text().splitlines()[0]


@pytest.mark.parametrize("args, words", [
    (("--table", "sales"), ["sales.duckdb", "--table", "no table 'sales'", "receipts"]),
    (("--query", "SELECT nonsense FROM receipts"), ["sales.duckdb", "--query", "the query failed"]),
    ((), ["sales.duckdb", "--table NAME"]),
    (("--delimiter", ";", "--table", "receipts"), ["--delimiter", "for CSV files"]),
])
def test_database_errors_are_one_line(duckdb_log, tmp_path, args, words):
    out = tmp_path / "m" / "market.yaml"
    _one_line_error(fast_cli("calibrate", str(duckdb_log), "--out", str(out), *FR_COLS, *args, *CAL), *words)
    assert not out.parent.exists()


def test_a_database_url_reaches_the_reader_intact(duckdb_log, tmp_path):
    """A URL is not a path: sqlite:///x.db would lose a slash as one."""
    out = tmp_path / "m" / "market.yaml"
    _one_line_error(fast_cli("calibrate", f"sqlite:///{tmp_path}/missing.db", "--table", "t", "--out", str(out), *CAL),
                    f"sqlite:///{tmp_path}/missing.db", "no such database file")
    _one_line_error(fast_cli("backtest", f"duckdb:///{duckdb_log}", "--table", "nope", "--calibration-end",
                             "1997-09-30", "--out", str(tmp_path / "bt"), *FR_COLS),
                    f"duckdb:///{duckdb_log}", "no table 'nope'")


def test_customers_sets_the_base_and_channels_the_reachability(small_csv, tmp_path):
    """--customers N: the base is N, shares as estimated, arrivals scaled by N / the log's
    customers, the log's count kept; --channel replaces the default opt-ins; the report states
    the base (and warns when it is the log's own customers)."""
    cols = ("--customer-col", "client", "--date-col", "jour", "--amount-col", "montant", "--date-format", "%d/%m/%Y",
            "--potential-months", "0", *CAL)
    own, whole = tmp_path / "own" / "market.yaml", tmp_path / "whole" / "market.yaml"
    assert cli("calibrate", str(small_csv), "--out", str(own), *cols).returncode == 0
    res = cli("calibrate", str(small_csv), "--out", str(whole), *cols, "--customers", "40000",
              "--channel", "email=0.45", "--channel", "sms=0.1")
    assert res.returncode == 0, res.stderr
    assert "40,000 customers" in res.stdout and "customer base 40,000 as given" in res.stdout
    a, b = load_market(own), load_market(whole)
    assert a.customers == 400 and b.customers == 40_000
    assert a.calibration.log_customers == b.calibration.log_customers == 400
    assert [s.share for s in a.segments] == [s.share for s in b.segments]
    assert b.acquisition.per_month == pytest.approx(a.acquisition.per_month * 100, rel=1e-3)
    assert dict(a.reachability.channels) == {"email": 0.3, "sms": 0.2, "app": 0.2}
    assert dict(b.reachability.channels) == {"email": 0.45, "sms": 0.1} and dict(b.reachability.member_opt_in) == {}
    assert "reachability: DEFAULTS" in own.read_text() and "reachability: DEFAULTS" not in whole.read_text()
    assert "customers: 40,000, the whole base as given" in whole.read_text()
    assert str(a.calibration.log_end) == "1998-06-30" and str(a.calibration.log_start) == "1997-01-01"
    report_own = (own.parent / "calibration_report.html").read_text()
    report_whole = (whole.parent / "calibration_report.html").read_text()
    assert "Warning: the base is tiny" in report_own and "Warning: the base is tiny" not in report_whole
    margin = b.annual_gross_margin()
    assert f"{margin:,.0f} USD" in report_whole and f"{0.1 * margin:,.0f} USD" in report_whole


def test_seasonality_from_borrows_a_market_files_months(small_csv, tmp_path):
    """A log under 24 months gets flat seasonality unless --seasonality-from lends another market's
    12 multipliers: the calibrated market carries them (normalised to mean 1) and its notes name
    the file; a back-test records the file and its SHA-256 in the manifest."""
    lender = ROOT / "markets" / "india" / "market.yaml"
    cols = ("--customer-col", "client", "--date-col", "jour", "--amount-col", "montant", "--date-format", "%d/%m/%Y",
            "--potential-months", "0", *CAL)
    out = tmp_path / "borrowed" / "market.yaml"
    res = cli("calibrate", str(small_csv), "--out", str(out), *cols, "--seasonality-from", str(lender))
    assert res.returncode == 0, res.stderr
    want = list(load_market(lender).seasonality)
    mean = sum(want) / 12
    assert list(load_market(out).seasonality) == pytest.approx([v / mean for v in want], abs=1e-6)
    assert f"seasonality borrowed from {lender}" in res.stdout
    bt = tmp_path / "bt"
    res = cli("backtest", str(small_csv), "--calibration-end", "1997-09-30", "--replications", "2", "--out", str(bt),
              "--customer-col", "client", "--date-col", "jour", "--amount-col", "montant", "--date-format", "%d/%m/%Y",
              "--seasonality-from", str(lender))
    assert res.returncode == 0, res.stderr
    manifest = json.loads((bt / "manifest.json").read_text())
    assert manifest["arguments"]["seasonality_from_sha256"] == hashlib.sha256(lender.read_bytes()).hexdigest()
    notes = json.loads((bt / "backtest.json").read_text())["notes"]
    assert any(n.startswith(f"seasonality borrowed from {lender}") for n in notes), notes


@pytest.fixture(scope="module")
def store_log(tmp_path_factory) -> Path:
    """A synthetic log with a store column named 'boutique' and no member column: 2,000 customers
    over 2022-2023, four stores (one home to 4 customers), 2% of purchases elsewhere."""
    from simulator.calibration.synthetic import synthetic_log

    df = synthetic_log(2000, 24, start="2022-01", seed=18, arrival_months=12,
                       stores={"Paris Rivoli": 0.5, "Lyon": 0.3, "0013": 0.198, "Tiny": 0.002}, away_share=0.02)
    df = df.rename(columns={"store": "boutique"}).assign(date=lambda d: d["date"].dt.strftime("%Y-%m-%d"))
    path = tmp_path_factory.mktemp("logs") / "boutiques.csv"
    df.to_csv(path, index=False)
    return path


def test_calibrate_store_col_writes_the_network_and_the_market_runs_with_it(store_log, tmp_path):
    out = tmp_path / "markets" / "shops" / "market.yaml"
    res = cli("calibrate", str(store_log), "--store-col", "boutique", "--out", str(out), "--potential-months", "0", *CAL)
    assert res.returncode == 0, res.stderr
    assert f"stores: {out.parent / 'stores.csv'}" in res.stdout
    assert "fewer than 30 customers each, the minimum of a store" in res.stdout and "ignored columns" not in res.stdout
    market = load_market(out)
    net = market.stores
    assert net.names == ("Paris_Rivoli", "Lyon", "s_0013", "other")
    assert [s.label for s in net.stores][:3] == ["Paris Rivoli", "Lyon", "0013"] and "1 stores" in net.stores[3].label
    assert sum(s.share for s in net.stores) == pytest.approx(1.0, abs=1e-9)
    assert all(s.enrolment == 1.0 for s in net.stores)           # no member column: not estimated
    assert net.segment_mix and all(abs(sum(r.values()) - 1) < 1e-9 for r in net.segment_mix.values())
    assert "store column 'boutique' of boutiques.csv" in net.description
    table = pd.read_csv(out.parent / "stores.csv")
    assert list(table["store"]) == list(net.names) and "members" not in table.columns
    assert table["customers"].sum() == market.calibration.log_customers
    report = (out.parent / "calibration_report.html").read_text()
    assert "Paris Rivoli" in report and "stores.csv" in report and "no market field uses" not in report
    pb = out.parent / "launch.yaml"
    pb.write_text(f"name: shops_launch\ndesign: {ROOT / 'programs' / 'cagnotte.yaml'}\nmarket: market.yaml\n"
                  "baseline: none\nlaunch: 2024-02-01\nstart: 2024-01-01\nhorizon_months: 6\n", encoding="utf-8")
    run = out.parent / "run"
    res = cli("run", "--playbook", str(pb), "--agents", "2000", "--out", str(run))
    assert res.returncode == 0, res.stderr
    by_store = pd.read_parquet(run / "stores.parquet")
    assert set(by_store["store"]) == set(net.names)
    # a second calibration beside it refuses to replace stores.csv unless --force
    (out.parent / "market.yaml").unlink()
    (out.parent / "calibration_report.html").unlink()
    res = fast_cli("calibrate", str(store_log), "--store-col", "boutique", "--out", str(out), "--potential-months", "0", *CAL)
    _one_line_error(res, "stores.csv", "already exists", "--force")
    assert not out.exists()


def test_a_store_column_named_but_absent_is_one_line(store_log, tmp_path):
    out = tmp_path / "m" / "market.yaml"
    _one_line_error(fast_cli("calibrate", str(store_log), "--store-col", "magasin", "--out", str(out), *CAL),
                    "boutiques.csv:1", "no column 'magasin' (given with --store-col)")
    assert not out.parent.exists()
