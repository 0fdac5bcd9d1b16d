"""Reading and cleaning transaction logs: every real-data rule on small files."""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.calibration import CleaningReport, TransactionLog, read_cdnow, read_transactions
from simulator.calibration.transactions import MAX_LISTED_BAD_ROWS
from simulator.errors import InputErrors

CDNOW = Path(__file__).resolve().parents[2] / "data" / "cdnow" / "CDNOW_sample.txt"


def write(tmp_path: Path, text: str, name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def amounts(log: TransactionLog) -> dict[tuple[str, str], float]:
    t = log.transactions
    return {(c, d.strftime("%Y-%m-%d")): a for c, d, a in zip(t["customer_id"], t["date"], t["amount"])}


# ----------------------------------------------------------------------------- basics


def test_reads_csv_into_typed_sorted_frame(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "customer_id,date,amount,store,channel,ignored\n"
        "b,2024-01-03,5.5,S2,web,x\n"
        "a,2024-01-02,10,S1,store,y\n"
        "a,2024-01-01,3,S1,store,z\n",
    )
    log = read_transactions(path)
    t = log.transactions
    assert list(t.columns) == ["customer_id", "date", "amount", "store", "channel"]
    assert pd.api.types.is_string_dtype(t["customer_id"].dtype)
    assert t["date"].dtype == np.dtype("datetime64[ns]")
    assert t["amount"].dtype == np.float64
    assert list(t["customer_id"]) == ["a", "a", "b"]
    assert list(t["date"].dt.strftime("%Y-%m-%d")) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert list(t.index) == [0, 1, 2]
    r = log.report
    assert (r.rows_read, r.transactions, r.customers) == (3, 3, 2)
    assert (r.first_date, r.last_date) == (date(2024, 1, 1), date(2024, 1, 3))
    assert len(log) == 3


def test_customer_ids_keep_leading_zeros_and_are_stripped(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,date,amount\n 007 ,2024-01-01,1\n0042,2024-01-01,2\n")
    assert list(read_transactions(path).transactions["customer_id"]) == ["0042", "007"]


def test_ids_equal_once_stripped_are_one_customer(tmp_path: Path) -> None:
    path = write(tmp_path, 'customer_id,date,amount\nA,2024-01-01,1\n" A ",2024-01-02,2\n7,2024-01-03,3\n 7,2024-01-03,4\n')
    log = read_transactions(path)
    assert amounts(log) == {("7", "2024-01-03"): 7.0, ("A", "2024-01-01"): 1.0, ("A", "2024-01-02"): 2.0}
    assert log.report.customers == 2


def test_report_to_dict_is_json_ready(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,date,amount\na,2024-01-01,1\n")
    d = read_transactions(path).report.to_dict()
    assert d["first_date"] == "2024-01-01" and d["transactions"] == 1
    assert set(d) == set(CleaningReport.__dataclass_fields__)
    json.dumps(d)


# ------------------------------------------------------------------ real-data rules


def test_returns_are_netted_same_day_first_then_most_recent_earlier(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "customer_id,date,amount\n"
        "A,2024-01-01,10\n"
        "A,2024-01-05,20\n"
        "A,2024-01-05,-5\n"  # same day: 20 -> 15
        "A,2024-01-10,-18\n"  # no purchase that day: Jan 5 15 -> 0, then Jan 1 10 -> 7
        "B,2024-01-03,-4\n"  # nothing earlier: dropped, unmatched
        "B,2024-01-04,12\n"
        "C,2024-01-02,5\n"
        "C,2024-01-03,-50\n"  # more than was spent: never below zero
        "D,2024-02-01,30\n"
        "D,2024-02-02,-10\n"  # same-day purchase comes later in the file: still same day first
        "D,2024-02-02,25\n",
    )
    log = read_transactions(path)
    assert amounts(log) == {
        ("A", "2024-01-01"): 7.0,
        ("A", "2024-01-05"): 0.0,
        ("B", "2024-01-04"): 12.0,
        ("C", "2024-01-02"): 0.0,
        ("D", "2024-02-01"): 30.0,
        ("D", "2024-02-02"): 15.0,
    }
    r = log.report
    assert (r.returns_netted, r.returns_unmatched) == (4, 1)
    assert r.rows_read == 11 and r.transactions == 6
    assert r.zero_amount == 0  # netted to zero is not a zero-amount row
    assert (log.transactions["amount"] >= 0).all()


def test_return_after_spend_is_used_up_is_unmatched(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,date,amount\nA,2024-01-01,10\nA,2024-01-02,-10\nA,2024-01-03,-3\n")
    log = read_transactions(path)
    assert amounts(log) == {("A", "2024-01-01"): 0.0}
    assert (log.report.returns_netted, log.report.returns_unmatched) == (1, 1)


def test_only_returns_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,date,amount\nA,2024-01-01,-10\n")
    with pytest.raises(InputErrors, match="no purchase rows"):
        read_transactions(path)


def test_same_day_rows_are_merged_keeping_first_store(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "customer_id,date,amount,store,channel\n"
        "A,2024-01-01,10,S1,store\n"
        "A,2024-01-01,5,S2,web\n"
        "A,2024-01-01,2.5,S3,app\n"
        "A,2024-01-02,1,S2,web\n",
    )
    log = read_transactions(path)
    t = log.transactions
    assert list(t["amount"]) == [17.5, 1.0]
    assert list(t["store"]) == ["S1", "S2"] and list(t["channel"]) == ["store", "web"]
    assert log.report.rows_merged == 2 and log.report.transactions == 2

    unmerged = read_transactions(path, merge_same_day=False)
    assert list(unmerged.transactions["amount"]) == [10.0, 5.0, 2.5, 1.0]
    assert list(unmerged.transactions["store"]) == ["S1", "S2", "S3", "S2"]
    assert unmerged.report.rows_merged == 0


def test_identical_rows_are_kept_and_counted_unless_asked(tmp_path: Path) -> None:
    """Two invoices of one customer on one day for the same amount are real: kept by default."""
    path = write(
        tmp_path,
        "customer_id,date,amount,store\n"
        "A,2024-01-01,10,S1\n"
        "A,2024-01-01,10,S1\n"  # identical: a second purchase, kept
        "A,2024-01-01,10,S2\n"  # differs in store: a real second purchase
        "B,2024-01-01,4,S1\n"
        "B,2024-01-01,4,S1\n",
    )
    log = read_transactions(path)
    assert (log.report.identical_rows, log.report.duplicates_dropped) == (2, 0)
    assert amounts(log) == {("A", "2024-01-01"): 30.0, ("B", "2024-01-01"): 8.0}
    kept = read_transactions(path, merge_same_day=False)
    assert len(kept) == 5

    dropped = read_transactions(path, drop_duplicates=True)
    assert (dropped.report.identical_rows, dropped.report.duplicates_dropped) == (0, 2)
    assert amounts(dropped) == {("A", "2024-01-01"): 20.0, ("B", "2024-01-01"): 4.0}


def test_drop_duplicates_compares_every_column_of_the_file(tmp_path: Path) -> None:
    """A column used for nothing still tells two rows apart (an invoice number, a till)."""
    path = write(tmp_path, "customer_id,date,amount,till\nA,2024-01-01,10,1\nA,2024-01-01,10,2\nA,2024-01-01,10,2\n")
    log = read_transactions(path, drop_duplicates=True)
    assert log.report.duplicates_dropped == 1
    assert amounts(log) == {("A", "2024-01-01"): 20.0}
    assert log.report.ignored_columns == ("till",)


def test_zero_amounts_are_kept_as_zero_spend_transactions(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,date,amount\nA,2024-01-01,0\nA,2024-01-02,0.00\nB,2024-01-01,3\n")
    log = read_transactions(path)
    assert amounts(log) == {("A", "2024-01-01"): 0.0, ("A", "2024-01-02"): 0.0, ("B", "2024-01-01"): 3.0}
    assert log.report.zero_amount == 2 and log.report.transactions == 3


# ------------------------------------------------------------------------ bad rows

BAD = (
    "customer_id,date,amount\n"  # line 1
    "A,2024-01-01,10\n"  # 2
    ",2024-01-02,5\n"  # 3: no customer
    "\n"  # 4: blank line, ignored but counted in line numbers
    "B,2024-13-01,5\n"  # 5: bad date
    "C,2024-01-03,abc\n"  # 6: bad amount
    "D,,\n"  # 7: date and amount empty
    'E,2024-01-04,"1\n2"\n'  # 8-9: quoted field spanning two lines, bad amount
    "F,2024-01-05,NaN\n"  # 10: NaN is not an amount
    "NULL,2024-01-05,3\n"  # 11: SQL NULL customer
)


def test_bad_rows_fail_with_line_number_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    with pytest.raises(InputErrors) as info:
        read_transactions(path)
    errors = info.value.errors
    assert [(e.line, e.field) for e in errors] == [
        (3, "customer_id"),
        (5, "date"),
        (6, "amount"),
        (7, "date"),
        (8, "amount"),
        (10, "amount"),
        (11, "customer_id"),
        (None, ""),  # the hint
    ]
    assert all(e.path == str(path) for e in errors)
    assert errors[-1].message.startswith("7 bad rows: fix them, or skip bad rows with --on-bad-rows skip")
    assert "--date-format" in errors[-1].message and "--decimal" in errors[-1].message
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}:3: customer_id: expected a customer id, the field is empty"
    assert lines[1] == f"{path}:5: date: expected a date as YYYY-MM-DD, got '2024-13-01'"
    assert lines[2] == f"{path}:6: amount: expected a number such as 12.50, got 'abc'"
    assert lines[3] == (
        f"{path}:7: date: expected a date as YYYY-MM-DD, the field is empty; "
        "also amount: expected a number such as 12.50, the field is empty"
    )
    assert "got 'NULL'" in lines[6]


def test_bad_rows_skip_mode_drops_and_counts(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    log = read_transactions(path, on_bad_rows="skip")
    assert log.report.bad_rows_skipped == 7
    assert log.report.rows_read == 8  # blank line not counted
    assert amounts(log) == {("A", "2024-01-01"): 10.0}


def test_bad_rows_list_is_capped(tmp_path: Path) -> None:
    n_bad = MAX_LISTED_BAD_ROWS + 5
    path = write(tmp_path, "customer_id,date,amount\n" + "A,2024-01-01,x\n" * n_bad + "A,2024-01-02,1\n")
    with pytest.raises(InputErrors) as info:
        read_transactions(path)
    errors = info.value.errors
    assert len(errors) == MAX_LISTED_BAD_ROWS + 1
    assert [e.line for e in errors[:-1]] == list(range(2, 2 + MAX_LISTED_BAD_ROWS))
    assert errors[-1].message.startswith(f"... and 5 more bad rows ({n_bad} in all)")


def test_on_bad_rows_is_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,date,amount\nA,2024-01-01,1\n")
    with pytest.raises(ValueError, match="on_bad_rows"):
        read_transactions(path, on_bad_rows="ignore")  # type: ignore[arg-type]


def test_all_rows_bad_in_skip_mode_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,date,amount\nA,2024-01-01,x\nB,2024-01-01,\n")
    with pytest.raises(InputErrors, match="no usable transaction rows"):
        read_transactions(path, on_bad_rows="skip")


# ---------------------------------------------------------------- not a transaction log


def test_missing_columns_are_named_with_the_columns_found(tmp_path: Path) -> None:
    path = write(tmp_path, "client,day,amount\nA,2024-01-01,1\n")
    with pytest.raises(InputErrors) as info:
        read_transactions(path)
    (error,) = info.value.errors
    assert error.line == 1
    assert "missing required columns 'customer_id', 'date'" in error.message
    assert "found columns 'client', 'day', 'amount'" in error.message


def test_headerless_file_gets_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "1,2024-01-01,3\n")
    with pytest.raises(InputErrors, match="first line looks like data"):
        read_transactions(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "file is empty"),
        ("\n\n", "file is empty"),
        ("customer_id,date,amount\n", "no transaction rows after the header"),
        ("customer_id,date,amount\nA,2024-01-01,1\nB,2024-01-01,1,extra\n", "expected 3 fields, found 4"),
    ],
)
def test_unusable_files_give_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputErrors) as info:
        read_transactions(path)
    assert len(info.value.errors) == 1
    assert message in str(info.value)


def test_ragged_row_reports_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,date,amount\nA,2024-01-01,1\nB,2024-01-01,1,extra\n")
    with pytest.raises(InputErrors) as info:
        read_transactions(path)
    assert info.value.errors[0].line == 3


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputErrors, match="cannot read"):
        read_transactions(tmp_path / "missing.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x1f\x8b\x00\x81garbage\x00\xc3\x28")
    with pytest.raises(InputErrors, match="binary data, not text"):
        read_transactions(binary)
    with pytest.raises(InputErrors, match="unsupported file type"):
        read_transactions(write(tmp_path, "x", name="log.xlsx"))
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(InputErrors, match="not a readable Parquet file"):
        read_transactions(broken)


# ------------------------------------------------------------- formats and conventions


def test_other_column_names_date_format_and_delimiter(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Client;Purchase Day;Value;STORE\nA;31/12/2023;10.5;S1\nA;01/01/2024;2;S2\nB;15/01/2024;3;S1\n",
        name="export.txt",
    )
    log = read_transactions(
        path, customer_col="client", date_col="Purchase Day", amount_col="Value", date_format="%d/%m/%Y"
    )
    assert amounts(log) == {("A", "2023-12-31"): 10.5, ("A", "2024-01-01"): 2.0, ("B", "2024-01-15"): 3.0}
    assert list(log.transactions["store"]) == ["S1", "S2", "S1"]  # optional columns match case-insensitively


def test_date_format_errors_name_the_format(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,date,amount\nA,31/12/2023,1\nA,2024-01-01,1\nB,15/01/2024,2\n")
    with pytest.raises(InputErrors, match=r"3: date: expected a date in the format '%d/%m/%Y', got '2024-01-01'"):
        read_transactions(path, date_format="%d/%m/%Y")


def test_a_date_format_that_does_not_fit_is_one_line_naming_the_option(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,date,amount\nA,31/12/2023,1\nA,25/01/2024,1\nB,01/02/2024,2\n")
    for mode in ("fail", "skip"):
        with pytest.raises(InputErrors) as info:
            read_transactions(path, date_format="%m/%d/%Y", on_bad_rows=mode)
        (error,) = info.value.errors
        assert (error.line, error.field) == (2, "date")
        assert error.message.startswith("'31/12/2023' is not a date in --date-format '%m/%d/%Y' (2 of 3 rows are not)")
        assert "the dates look like '%d/%m/%Y'" in error.message


def test_iso_timestamps_keep_the_calendar_date(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "customer_id,date,amount\nA,2024-01-01T23:59:00,1\nA,2024-01-01 08:00,2\nA,2024-01-02T00:30:00+05:00,4\n",
    )
    assert amounts(read_transactions(path)) == {("A", "2024-01-01"): 3.0, ("A", "2024-01-02"): 4.0}


def test_tab_separated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "log.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("customer_id\tdate\tamount\nA\t2024-01-01\t1\nA\t2024-01-01\t2\n")
    log = read_transactions(path)
    assert amounts(log) == {("A", "2024-01-01"): 3.0}


def test_parquet_input_with_typed_columns(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pd.DataFrame(
        {
            "customer_id": [7, 7, 12],
            "date": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 18:00", "2024-01-02 00:00"]),
            "amount": [1.0, 2.0, 3.0],
            "member": [True, True, False],
        }
    ).to_parquet(path)
    log = read_transactions(path)
    assert amounts(log) == {("12", "2024-01-02"): 3.0, ("7", "2024-01-01"): 3.0}
    assert list(log.transactions["member"]) == [False, True]


def test_parquet_bad_rows_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "log.pq"
    pd.DataFrame(
        {"customer_id": ["a", "b", None], "date": ["2024-01-01", "2024-01-02", "2024-01-03"], "amount": [1.0, None, 2.0]}
    ).to_parquet(path)
    with pytest.raises(InputErrors) as info:
        read_transactions(path)
    errors = info.value.errors
    assert [(e.line, e.field) for e in errors] == [(2, "amount"), (3, "customer_id"), (None, "")]
    assert errors[0].message.startswith("row 2: expected a number")
    log = read_transactions(path, on_bad_rows="skip")
    assert log.report.bad_rows_skipped == 2 and log.report.transactions == 1


def test_parquet_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pd.DataFrame({"id": [1], "when": ["2024-01-01"], "amount": [1.0]}).to_parquet(path)
    with pytest.raises(InputErrors, match="missing required columns 'customer_id', 'date'; found columns 'id', 'when', 'amount'"):
        read_transactions(path)


# ------------------------------------------------------------------------------ CDNOW


def test_cdnow_sample() -> None:
    log = read_cdnow(CDNOW)
    r = log.report
    assert r.rows_read == 6919
    assert r.customers == 2357
    assert r.transactions == 6696  # (customer, day) transactions
    assert r.rows_merged == 6919 - 6696
    assert r.zero_amount == 8
    assert r.duplicates_dropped == 0  # identical rows are separate orders here (see read_cdnow)
    assert (r.first_date, r.last_date) == (date(1997, 1, 1), date(1998, 6, 30))
    t = log.transactions
    first = t.groupby("customer_id")["date"].min()
    assert first.max() <= pd.Timestamp("1997-03-25")  # the cohort: first purchases in Q1 1997
    assert t["amount"].sum() == pytest.approx(pd.read_csv(CDNOW, sep=r"\s+", header=None)[4].sum())
    assert t.loc[0, "customer_id"] == "0001" and t.loc[0, "amount"] == pytest.approx(29.33)


def test_cdnow_reader_reports_bad_lines(tmp_path: Path) -> None:
    path = write(tmp_path, " 00004 0001 19970101  2   29.33\n 00004 0001 19971301  2   29.73\n", name="cd.txt")
    with pytest.raises(InputErrors, match=r"cd.txt:2: date: expected a date in the format '%Y%m%d'"):
        read_cdnow(path)
    wrong = write(tmp_path, "a b c\n", name="wrong.txt")
    with pytest.raises(InputErrors, match="expected 5 whitespace-separated columns"):
        read_cdnow(wrong)


# ------------------------------------------------------------- logs as market teams export them


def test_french_export_cp1252_semicolons_decimal_comma_space_thousands_day_first(tmp_path: Path) -> None:
    text = ("N° client;Date d'achat;Montant TTC;Magasin;Catégorie\r\n"
            "0042;02/01/2024;1 234,56;Épinal;Épicerie fine\r\n"
            "0042;03/01/2024;12,50;Épinal;Crèmerie\r\n"
            "0107;15/01/2024;2\u00a0000,00;Nancy;Épicerie fine\r\n"   # no-break space thousands
            "0107;16/01/2024;-2,50;Nancy;Épicerie fine\r\n")          # a return
    path = tmp_path / "ventes.csv"
    path.write_bytes(text.encode("cp1252"))
    log = read_transactions(path, customer_col="N° client", date_col="Date d'achat", amount_col="Montant TTC")
    assert amounts(log) == {("0042", "2024-01-02"): 1234.56, ("0042", "2024-01-03"): 12.5,
                            ("0107", "2024-01-15"): 1997.5}
    r = log.report
    assert r.read_as == "delimiter ';', encoding cp1252, decimal ',', thousands ' ', dates %d/%m/%Y"
    assert r.ignored_columns == ("Magasin", "Catégorie")
    assert r.column_hints == (("Magasin", "--store-col"), ("Catégorie", "--category-col"))
    assert r.ignored_text() == ("ignored columns: Magasin, Catégorie -- to use them: --store-col Magasin, "
                                "--category-col 'Catégorie'")
    used = read_transactions(path, customer_col="N° client", date_col="Date d'achat", amount_col="Montant TTC",
                             store_col="magasin", category_col="Catégorie")
    assert list(used.transactions["store"]) == ["Épinal", "Épinal", "Nancy"]
    assert used.report.ignored_columns == () and used.report.column_hints == ()
    assert set(used.spend_by) == {"store", "category"}


def test_indian_export_lakh_grouping_and_dashed_day_first_dates(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,bill_date,bill_amount,bill_no\n"
                           'C1,25-12-2023,"1,00,000.50",B1\n'
                           'C1,25-12-2023,"2,499.00",B2\n'
                           "C2,01-01-2024,850.75,B3\n")
    log = read_transactions(path, date_col="bill_date", amount_col="bill_amount")
    assert amounts(log) == {("C1", "2023-12-25"): 102499.5, ("C2", "2024-01-01"): 850.75}
    assert log.report.read_as.endswith("decimal '.', thousands ',', dates %d-%m-%Y")
    assert log.report.column_hints == (("bill_no", "--transaction-col"),)
    by_bill = read_transactions(path, date_col="bill_date", amount_col="bill_amount", transaction_col="bill_no")
    assert list(by_bill.transactions["amount"]) == [100000.5, 2499.0, 850.75]  # two bills: two transactions


def test_german_export_dot_thousands_comma_decimal_dotted_dates(tmp_path: Path) -> None:
    path = write(tmp_path, "Kunde;Datum;Betrag;Filiale;Kanal\n"
                           "K-1;24.12.2023 17:45;1.299,99;Berlin;Online\n"
                           "K-1;02.01.2024 09:10;19,90;Berlin;Filiale\n"
                           "K-2;03.01.2024 12:00;4.000,00;München;Online\n")
    log = read_transactions(path, customer_col="Kunde", date_col="Datum", amount_col="Betrag")
    assert amounts(log) == {("K-1", "2023-12-24"): 1299.99, ("K-1", "2024-01-02"): 19.9, ("K-2", "2024-01-03"): 4000.0}
    assert log.report.read_as == "delimiter ';', encoding utf-8, decimal ',', thousands '.', dates %d.%m.%Y"
    assert log.report.column_hints == (("Filiale", "--store-col"), ("Kanal", "--channel-col"))


def test_utf8_bom_export(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfcustomer_id,date,amount\r\nA,2024-01-02,3.5\r\n")
    log = read_transactions(path)
    assert amounts(log) == {("A", "2024-01-02"): 3.5}
    assert "encoding utf-8 (BOM)" in log.report.read_as


def test_dates_that_cannot_tell_day_from_month_need_the_option(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,date,amount\nA,01/02/2024,1\nB,03/04/2024,2\n")
    with pytest.raises(InputErrors) as info:
        read_transactions(path)
    (error,) = info.value.errors
    assert (error.line, error.field) == (2, "date")
    assert "--date-format '%d/%m/%Y' or --date-format '%m/%d/%Y'" in error.message
    assert amounts(read_transactions(path, date_format="%m/%d/%Y")) == {("A", "2024-01-02"): 1.0,
                                                                       ("B", "2024-03-04"): 2.0}
    # in a European file the same dates are day-first, and the report says why
    euro = write(tmp_path, "customer_id;date;amount\nA;01/02/2024;1,5\n", name="euro.csv")
    log = read_transactions(euro)
    assert amounts(log) == {("A", "2024-02-01"): 1.5} and any("day-first" in n for n in log.report.notes)


def test_a_decimal_option_that_does_not_fit_is_one_line_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id;date;amount\nA;02/01/2024;1 234,56\nB;03/01/2024;12,50\n")
    with pytest.raises(InputErrors) as info:
        read_transactions(path, decimal=".", on_bad_rows="skip")
    (error,) = info.value.errors
    assert (error.line, error.field) == (2, "amount")
    assert error.message.startswith("'1 234,56' is not a number with --decimal (decimal '.', thousands ' '; "
                                    "2 of 2 rows are not)")
    assert error.message.endswith("the amounts look like decimal ',', thousands ' '")
    with pytest.raises(InputErrors, match="--decimal: ';' is not a decimal mark"):
        read_transactions(path, decimal=";")
    with pytest.raises(InputErrors, match="--thousands: the thousands separator cannot be the decimal mark"):
        read_transactions(path, decimal=",", thousands=",")
    assert amounts(read_transactions(path, thousands="space")) == {("A", "2024-01-02"): 1234.56,
                                                                   ("B", "2024-01-03"): 12.5}


def test_ambiguous_amounts_are_read_as_thousands_and_the_note_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, 'customer_id,date,amount\nA,2024-01-02,"1,250"\nB,2024-01-03,"2,000"\n')
    log = read_transactions(path)
    assert amounts(log) == {("A", "2024-01-02"): 1250.0, ("B", "2024-01-03"): 2000.0}
    assert any("--decimal ','" in n for n in log.report.notes)


# ----------------------------------------------------------------------- columns and transactions


def test_column_hints_in_several_languages() -> None:
    from simulator.calibration.transactions import column_hint

    expected = {"magasin": "--store-col", "tienda": "--store-col", "Filiale": "--store-col", "store_id": "--store-col",
                "catégorie": "--category-col", "categoria": "--category-col", "Kategorie": "--category-col",
                "canal": "--channel-col", "Kanal": "--channel-col", "N° facture": "--transaction-col",
                "invoice_no": "--transaction-col", "ticket": "--transaction-col", "Bon-Nr": "--transaction-col",
                "receiptNumber": "--transaction-col", "adhérent": "--member-col", "socio": "--member-col",
                "Mitglied": "--member-col", "is_member": "--member-col", "sadasya": "--member-col",
                "notes": None, "quantite": None}
    assert {name: column_hint(name) for name in expected} == expected


def test_missing_required_columns_suggest_the_option(tmp_path: Path) -> None:
    path = write(tmp_path, "client;fecha;importe\nA;2024-01-02;1\n")
    with pytest.raises(InputErrors) as info:
        read_transactions(path)
    assert "name them with --customer-col client, --date-col fecha, --amount-col importe" in str(info.value)


def test_a_named_optional_column_must_exist(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,date,amount,shop\nA,2024-01-02,1,S1\n")
    with pytest.raises(InputErrors, match=r":1: no column 'store' \(given with --store-col\); found columns"):
        read_transactions(path, store_col="store")
    with pytest.raises(InputErrors, match="--store-col: column 'amount' is already used"):
        read_transactions(path, store_col="amount")


def test_a_transaction_id_keeps_distinct_transactions_and_sums_its_lines(tmp_path: Path) -> None:
    path = write(tmp_path,
                 "customer_id,date,amount,invoice,category\n"
                 "A,2024-01-02,10,F1,food\n"
                 "A,2024-01-02,10,F1,food\n"    # an identical line of the same invoice: a second item
                 "A,2024-01-02,10,F2,toys\n"    # another invoice the same day: another transaction
                 "A,2024-01-02,-4,F2,toys\n"    # a line returned within its own invoice
                 "B,2024-01-03,7,,food\n"       # no invoice number: the customer-day rule
                 "B,2024-01-03,1,,food\n")
    log = read_transactions(path, transaction_col="invoice")
    t = log.transactions
    assert list(t["amount"]) == [20.0, 6.0, 8.0]
    assert list(t["transaction_id"].fillna("-")) == ["F1", "F2", "-"]
    r = log.report
    assert (r.merged_by, r.rows_merged, r.identical_rows, r.duplicates_dropped) == ("transaction id", 2, 1, 0)
    assert r.returns_netted == 1
    spend = log.spend_by["category"]
    assert dict(zip(spend["value"], spend["amount"])) == {"food": 28.0, "toys": 6.0}
    # the same log without its invoice column: one transaction per customer-day
    plain = read_transactions(path)
    assert list(plain.transactions["amount"]) == [26.0, 8.0] and plain.report.merged_by == "customer-day"
    assert plain.report.column_hints == (("invoice", "--transaction-col"),)


def test_a_column_named_transaction_id_is_used(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,date,amount,Transaction_ID\nA,2024-01-02,5,T1\nA,2024-01-02,5,T2\n")
    log = read_transactions(path)
    assert len(log) == 2 and log.report.columns[-1] == ("transaction_id", "Transaction_ID")


def test_identical_rows_at_different_times_are_not_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,date,amount\nA,2024-01-02 10:00,5\nA,2024-01-02 16:30,5\nA,2024-01-02 16:30,5\n")
    log = read_transactions(path, drop_duplicates=True)
    assert log.report.duplicates_dropped == 1 and amounts(log) == {("A", "2024-01-02"): 10.0}
