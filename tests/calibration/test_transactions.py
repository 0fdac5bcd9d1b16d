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


def test_exact_duplicates_are_dropped_and_counted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "customer_id,date,amount,store\n"
        "A,2024-01-01,10,S1\n"
        "A,2024-01-01,10,S1\n"  # exact duplicate: dropped
        "A,2024-01-01,10,S2\n"  # differs in store: a real second purchase
        "B,2024-01-01,4,S1\n"
        "B,2024-01-01,4,S1\n",
    )
    log = read_transactions(path)
    assert log.report.duplicates_dropped == 2
    assert amounts(log) == {("A", "2024-01-01"): 20.0, ("B", "2024-01-01"): 4.0}


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
    ]
    assert all(e.path == str(path) for e in errors)
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
    path = write(tmp_path, "customer_id,date,amount\nA,soon,1\n")
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
    binary.write_bytes(b"\xff\xfe\x00\x81garbage\x00\xc3\x28")
    with pytest.raises(InputErrors, match="not UTF-8"):
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
    path = write(tmp_path, "customer_id,date,amount\nA,2024-01-01,1\n")
    with pytest.raises(InputErrors, match=r"2: date: expected a date in the format '%d/%m/%Y', got '2024-01-01'"):
        read_transactions(path, date_format="%d/%m/%Y")


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
    assert [(e.line, e.field) for e in errors] == [(2, "amount"), (3, "customer_id")]
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
