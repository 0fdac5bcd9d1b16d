"""Where a log comes from: CSV sniffing and line numbers, encodings, Parquet, DuckDB, SQLite, URLs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.calibration.sources import SAMPLE_BYTES, open_source
from simulator.calibration.transactions import read_transactions
from simulator.errors import InputErrors


def write_bytes(tmp_path: Path, data: bytes, name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def amounts(log) -> dict[tuple[str, str], float]:
    t = log.transactions
    return {(c, d.strftime("%Y-%m-%d")): a for c, d, a in zip(t["customer_id"], t["date"], t["amount"])}


def one_error(info) -> str:
    assert len(info.value.errors) == 1, str(info.value)
    return str(info.value.errors[0])


# ------------------------------------------------------------------------------ CSV sniffing


@pytest.mark.parametrize(("delimiter", "word"), [(",", "','"), (";", "';'"), ("\t", "tab"), ("|", "'|'")])
def test_the_delimiter_is_the_one_that_splits_every_line_alike(tmp_path, delimiter, word) -> None:
    # commas inside values (decimal commas, a store name) do not fool it
    lines = ["customer_id;date;amount;store", "A;2024-01-02;12,50;Paris, Rivoli", "B;2024-01-03;3,20;Lyon"]
    text = "\n".join(line.replace(";", delimiter) if delimiter != "," else
                     line.replace("12,50", "12.50").replace("3,20", "3.20").replace("Paris, Rivoli", '"Paris, Rivoli"')
                     .replace(";", ",") for line in lines) + "\n"
    source = open_source(write_bytes(tmp_path, text.encode()))
    assert source.delimiter == delimiter
    assert source.names == ["customer_id", "date", "amount", "store"]
    assert source.describe()[0] == f"delimiter {word}"


def test_utf8_with_bom(tmp_path) -> None:
    path = write_bytes(tmp_path, b"\xef\xbb\xbfcustomer_id,date,amount\nA,2024-01-02,1\n")
    log = read_transactions(path)
    assert log.report.read_as.startswith("delimiter ',', encoding utf-8 (BOM)")
    assert log.report.columns[0] == ("customer_id", "customer_id")  # the BOM is not part of the name


def test_utf16_as_excel_writes_unicode_text(tmp_path) -> None:
    text = "client\tdate\tmontant\ttienda\nJosé\t25/12/2023\t12,50\tMadrid\nZoë\t26/12/2023\t3,00\tSevilla\n"
    path = write_bytes(tmp_path, text.encode("utf-16"), name="export.txt")
    log = read_transactions(path, customer_col="client", amount_col="montant")
    assert amounts(log) == {("José", "2023-12-25"): 12.5, ("Zoë", "2023-12-26"): 3.0}
    assert "encoding utf-16" in log.report.read_as and "delimiter tab" in log.report.read_as
    bad = write_bytes(tmp_path, (text + "Ana\t27/12/2023\tdoce\tMadrid\n").encode("utf-16"), name="bad.txt")
    with pytest.raises(InputErrors, match=r"bad.txt:4: montant: expected a number such as 12,50, got 'doce'"):
        read_transactions(bad, customer_col="client", amount_col="montant")


def test_cp1252_is_detected_and_stated(tmp_path) -> None:
    text = "client;date;montant;catégorie\nAndré;02/01/2024;1 234,56;Épicerie\n"
    log = read_transactions(write_bytes(tmp_path, text.encode("cp1252")), customer_col="client", amount_col="montant")
    assert list(log.transactions["customer_id"]) == ["André"]
    assert log.report.read_as.startswith("delimiter ';', encoding cp1252")
    assert log.report.ignored_columns == ("catégorie",)


def test_a_file_that_stops_being_utf8_after_the_sample_is_read_as_cp1252(tmp_path) -> None:
    head = "customer_id,date,amount,store\n" + "A,2024-01-02,1,Paris\n" * (SAMPLE_BYTES // 20 + 100)
    data = head.encode() + "B,2024-01-03,2,Besançon\n".encode("cp1252")
    log = read_transactions(write_bytes(tmp_path, data))
    assert log.transactions["store"].iloc[-1] == "Besançon"
    assert "encoding cp1252" in log.report.read_as
    assert any("not UTF-8 beyond its first 64 KB" in n for n in log.report.notes)


def test_a_byte_cp1252_leaves_undefined_is_read_as_latin1(tmp_path) -> None:
    head = "customer_id,date,amount,store\n" + "A,2024-01-02,1,Paris\n" * (SAMPLE_BYTES // 20 + 100)
    data = head.encode() + b"B,2024-01-03,2,Besan\xe7on\x81\n"
    log = read_transactions(write_bytes(tmp_path, data))
    assert log.transactions["store"].iloc[-1] == "Besançon\x81"
    assert "encoding latin-1" in log.report.read_as and "read as latin-1" in log.report.notes[0]


def test_utf8_that_breaks_later_names_the_encoding_option_and_the_line(tmp_path) -> None:
    head = "customer_id,date,amount,store\nA,2024-01-02,1,Zürich\n" + "A,2024-01-02,1,Paris\n" * (SAMPLE_BYTES // 20)
    data = head.encode() + "B,2024-01-03,2,Besançon\n".encode("cp1252")
    with pytest.raises(InputErrors) as info:
        read_transactions(write_bytes(tmp_path, data))
    error = one_error(info)
    assert f":{head.count(chr(10)) + 1}: not utf-8 text (byte 0xe7)" in error and "--encoding" in error


def test_a_wrong_encoding_option_is_one_line(tmp_path) -> None:
    path = write_bytes(tmp_path, "customer_id;date;amount\nAndré;02/01/2024;1,5\n".encode("cp1252"))
    with pytest.raises(InputErrors) as info:
        read_transactions(path, encoding="utf-8")
    assert ":2: not utf-8 text (byte 0xe9)" in one_error(info) and "--encoding" in one_error(info)
    with pytest.raises(InputErrors, match="--encoding: 'klingon' is not an encoding"):
        read_transactions(path, encoding="klingon")
    assert read_transactions(path, encoding="latin-1").transactions["customer_id"][0] == "André"


def test_a_wrong_delimiter_is_said(tmp_path) -> None:
    path = write_bytes(tmp_path, b"customer_id;date;amount\nA;2024-01-02;1\n")
    with pytest.raises(InputErrors, match="missing required columns") as info:
        read_transactions(path, delimiter=",")
    assert "--delimiter" in one_error(info)
    with pytest.raises(InputErrors, match="--delimiter: 'ab' is not a delimiter"):
        read_transactions(path, delimiter="ab")
    assert len(read_transactions(path, delimiter="semicolon")) == 1


# ------------------------------------------------------------------------------ line numbers


def test_line_numbers_count_quoted_line_breaks_blank_lines_and_stray_quotes(tmp_path) -> None:
    data = (
        b"customer_id,date,amount,note\r\n"     # 1
        b"A,2024-01-02,1,\"two\r\nlines\"\r\n"  # 2-3
        b"\r\n"                                 # 4 blank
        b"B,2024-01-02,2,a 12\" screen\r\n"     # 5 a quote inside a value is a character
        b"   \r\n"                              # 6 spaces only: blank
        b"C,2024-01-02,x,\"q \"\"x\"\"\"\r\n"  # 7 bad amount
        b",,,\r\n"                              # 8 every field empty: blank
        b"D,2024-01-02,y,\rE,2024-01-03,z,\n"   # 9 bad, lone CR ends it; 10 bad
    )
    path = write_bytes(tmp_path, data)
    with pytest.raises(InputErrors) as info:
        read_transactions(path)
    assert [(e.line, e.field) for e in info.value.errors] == [(7, "amount"), (9, "amount"), (10, "amount"),
                                                               (None, "")]
    log = read_transactions(path, on_bad_rows="skip")
    assert log.report.rows_read == 5 and log.report.bad_rows_skipped == 3
    assert log.report.skipped_lines == (7, 9, 10)
    assert log.report.skipped_text() == "skipped lines: 7, 9, 10"


def test_rows_with_another_number_of_fields_are_bad_rows_with_their_line(tmp_path) -> None:
    path = write_bytes(tmp_path, b"customer_id,date,amount\nA,2024-01-02,1\nB,2024-01-02,1,extra\nC,2024-01-02\n"
                                 b"D,2024-01-03,4\n")
    with pytest.raises(InputErrors) as info:
        read_transactions(path)
    errors = info.value.errors
    assert [(e.line, e.message.split(" (")[0]) for e in errors[:2]] == [
        (3, "expected 3 fields, found 4"), (4, "expected 3 fields, found 2")]
    log = read_transactions(path, on_bad_rows="skip")
    assert log.report.skipped_lines == (3, 4) and log.report.bad_rows_skipped == 2 and log.report.rows_read == 4
    assert amounts(log) == {("A", "2024-01-02"): 1.0, ("D", "2024-01-03"): 4.0}


def test_a_file_of_ragged_rows_only_has_no_usable_rows(tmp_path) -> None:
    path = write_bytes(tmp_path, b"customer_id,date,amount\nA,2024-01-02\nB\n")
    with pytest.raises(InputErrors, match=r"no usable transaction rows \(2 bad rows skipped\)"):
        read_transactions(path, on_bad_rows="skip")


def test_skipped_lines_are_listed_up_to_twenty_then_counted(tmp_path) -> None:
    rows = "".join("A,2024-01-02,x\n" if i % 2 else "A,2024-01-02,1\n" for i in range(60))
    log = read_transactions(write_bytes(tmp_path, b"customer_id,date,amount\n" + rows.encode()), on_bad_rows="skip")
    assert log.report.bad_rows_skipped == 30
    assert log.report.skipped_lines == tuple(range(3, 42, 2))
    assert log.report.skipped_text().endswith("39, 41 and 10 more")


def test_gzip_line_numbers(tmp_path) -> None:
    import gzip

    path = tmp_path / "log.csv.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"customer_id;date;amount\nA;02/01/2024;1,5\nB;03/01/2024;oops\n")
    with pytest.raises(InputErrors, match=r"log.csv.gz:3: amount: expected a number such as 12,50, got 'oops'"):
        read_transactions(path)


# ------------------------------------------------------------------------------------ Parquet


def test_parquet_timestamps_with_a_time_zone_keep_their_local_date(tmp_path) -> None:
    path = tmp_path / "log.parquet"
    pd.DataFrame({
        "customer_id": ["a", "a"],
        "date": pd.to_datetime(["2024-01-01 23:30", "2024-01-02 00:30"]).tz_localize("Asia/Kolkata"),
        "amount": [1.0, 2.0],
    }).to_parquet(path)
    assert amounts(read_transactions(path)) == {("a", "2024-01-01"): 1.0, ("a", "2024-01-02"): 2.0}


def test_parquet_text_amounts_are_read_like_csv_ones(tmp_path) -> None:
    path = tmp_path / "log.parquet"
    pd.DataFrame({"customer_id": ["a", "b"], "date": ["25.12.2023", "26.12.2023"], "amount": ["1.234,50", "3,20"]}
                 ).to_parquet(path)
    log = read_transactions(path)
    assert amounts(log) == {("a", "2023-12-25"): 1234.5, ("b", "2023-12-26"): 3.2}
    assert log.report.read_as == "Parquet, decimal ',', thousands '.', dates %d.%m.%Y"


def test_csv_options_are_refused_for_other_sources(tmp_path) -> None:
    path = tmp_path / "log.parquet"
    pd.DataFrame({"customer_id": ["a"], "date": ["2024-01-01"], "amount": [1.0]}).to_parquet(path)
    with pytest.raises(InputErrors, match="--delimiter is for CSV files"):
        read_transactions(path, delimiter=";")
    with pytest.raises(InputErrors, match="--table and --query are for a database"):
        read_transactions(path, table="sales")


# ---------------------------------------------------------------------------------- databases


def sales_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "cust": [101, 101, 102, 103, 101],
        "day": pd.to_datetime(["2024-01-05", "2024-01-05", "2024-01-06", "2024-02-01", "2024-02-03"]).date,
        "total": [10.0, 5.5, 7.25, 3.0, -2.0],
        "receipt": ["R1", "R2", "R3", "R4", "R5"],
    })


@pytest.fixture
def duckdb_file(tmp_path) -> Path:
    import duckdb

    path = tmp_path / "sales.duckdb"
    con = duckdb.connect(str(path))
    frame = sales_frame()
    con.execute("CREATE TABLE receipts (cust INTEGER, day DATE, total DECIMAL(10, 2), receipt VARCHAR, till INTEGER)")
    con.executemany("INSERT INTO receipts VALUES (?, ?, ?, ?, 1)", frame.values.tolist())
    con.execute("CREATE SCHEMA archive")
    con.execute("CREATE TABLE archive.old (customer_id VARCHAR, date VARCHAR, amount VARCHAR)")
    con.execute("INSERT INTO archive.old VALUES ('x', '25/12/2023', '1 234,50'), ('y', '26/12/2023', '3,20')")
    con.close()
    return path


DB_COLUMNS = dict(customer_col="cust", date_col="day", amount_col="total")


def test_duckdb_table_with_typed_columns(duckdb_file) -> None:
    log = read_transactions(duckdb_file, table="receipts", transaction_col="receipt", **DB_COLUMNS)
    t = log.transactions
    assert list(t["transaction_id"]) == ["R1", "R2", "R3", "R4"]  # two receipts on one day: two transactions
    assert list(t["amount"]) == [10.0, 3.5, 7.25, 3.0]  # the return nets the most recent purchase first
    assert log.report.read_as == "DuckDB table 'receipts'" and log.report.ignored_columns == ("till",)
    assert log.report.merged_by == "transaction id"


def test_duckdb_query_schema_table_and_text_columns(duckdb_file) -> None:
    log = read_transactions(duckdb_file, query="SELECT cust, day, total FROM receipts WHERE total > 0", **DB_COLUMNS)
    assert len(log) == 3 and log.report.rows_read == 4
    log = read_transactions(duckdb_file, table="archive.old")
    assert amounts(log) == {("x", "2023-12-25"): 1234.5, ("y", "2023-12-26"): 3.2}
    assert log.report.read_as == "DuckDB table 'archive.old', decimal ',', thousands ' ', dates %d/%m/%Y"
    uri = read_transactions(f"duckdb:///{duckdb_file}", table="receipts", **DB_COLUMNS)
    assert len(uri) == 3  # one customer-day each without --transaction-col


def test_duckdb_bad_table_query_or_missing_option_is_one_line(duckdb_file) -> None:
    with pytest.raises(InputErrors) as info:
        read_transactions(duckdb_file, table="sales", **DB_COLUMNS)
    assert "no table 'sales' in the database (tables: " in one_error(info) and "receipts" in one_error(info)
    with pytest.raises(InputErrors) as info:
        read_transactions(duckdb_file, query="SELEC nonsense", **DB_COLUMNS)
    assert "--query: the query failed: Parser Error" in one_error(info)
    with pytest.raises(InputErrors, match="give the table with --table NAME"):
        read_transactions(duckdb_file, **DB_COLUMNS)
    with pytest.raises(InputErrors, match="give --table or --query, not both"):
        read_transactions(duckdb_file, table="receipts", query="SELECT 1", **DB_COLUMNS)
    with pytest.raises(InputErrors, match=r"row 3: expected a customer id"):
        read_transactions(duckdb_file, query="SELECT CASE WHEN cust = 102 THEN NULL ELSE cust END AS cust, day, total "
                                             "FROM receipts ORDER BY receipt", **DB_COLUMNS)


def sqlite_file(path: Path) -> Path:
    frame = sales_frame()
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE receipts (cust INTEGER, day TEXT, total REAL, receipt TEXT)")
    con.executemany("INSERT INTO receipts VALUES (?, ?, ?, ?)",
                    [(int(c), d.isoformat(), float(t), r) for c, d, t, r in frame.values.tolist()])
    con.commit()
    con.close()
    return path


@pytest.mark.parametrize("name", ["sales.db", "sales.sqlite"])
def test_sqlite_files_by_content_or_extension(tmp_path, name) -> None:
    path = sqlite_file(tmp_path / name)
    log = read_transactions(path, table="receipts", **DB_COLUMNS)
    assert len(log) == 3 and log.report.read_as.startswith("SQLite table 'receipts'")
    assert list(log.transactions["customer_id"]) == ["101", "102", "103"]
    assert list(log.transactions["amount"]) == [13.5, 7.25, 3.0]  # 101's two receipts on one day, less the return


def test_sqlite_url_streams_a_query(tmp_path) -> None:
    path = sqlite_file(tmp_path / "sales.db")
    log = read_transactions(f"sqlite:///{path}", query="SELECT cust, day, total FROM receipts", **DB_COLUMNS)
    assert log.report.rows_read == 5 and len(log) == 3
    assert log.report.read_as == "SQLite query, dates %Y-%m-%d"


def test_database_urls_that_cannot_be_opened_are_one_line(tmp_path) -> None:
    path = sqlite_file(tmp_path / "sales.db")
    with pytest.raises(InputErrors) as info:
        read_transactions(f"sqlite:///{path}", table="nope", **DB_COLUMNS)
    assert "no table 'nope' in the database (tables: receipts)" in one_error(info)
    with pytest.raises(InputErrors, match="no such database file"):
        read_transactions(f"sqlite:///{tmp_path / 'missing.db'}", table="receipts")
    with pytest.raises(InputErrors) as info:
        read_transactions("nosuchdialect://host/db", table="t")
    assert "not a database URL SQLAlchemy can open" in one_error(info)
    with pytest.raises(InputErrors) as info:
        read_transactions(f"sqlite:///{path}", query="SELECT * FROM nope", **DB_COLUMNS)
    assert "--query: the query failed" in one_error(info)


def test_a_password_in_a_url_is_never_shown(tmp_path) -> None:
    with pytest.raises(InputErrors) as info:
        read_transactions("postgresql://ana:s3cret@localhost:1/sales", table="t")
    assert "s3cret" not in str(info.value) and "ana:***@localhost" in str(info.value)


def test_a_db_file_that_is_no_database(tmp_path) -> None:
    with pytest.raises(InputErrors, match="not a DuckDB or SQLite database"):
        read_transactions(write_bytes(tmp_path, b"hello world, not a database", name="x.db"), table="t")
    assert np.isfinite(1.0)
