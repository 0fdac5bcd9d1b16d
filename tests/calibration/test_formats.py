"""Numbers and dates as exported in Europe, India and the US: detection from the values, strict parsing."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from simulator.calibration.formats import (
    BAD_DAY, AmbiguousDates, NumberFormat, UnknownDates, date_format_words, detect_date_format,
    detect_number_format, has_time_directive, parse_dates, parse_numbers, strip_time,
)


def numbers(values, weights=None, **kw):
    arr = pa.array(values, pa.string())
    fmt, note = detect_number_format(arr, np.ones(len(values)) if weights is None else np.asarray(weights), **kw)
    return fmt, note, [None if np.isnan(v) else float(v) for v in parse_numbers(arr, fmt)]


def dates(values, weights=None, **kw):
    arr = strip_time(pa.array(values, pa.string()))
    fmt, note = detect_date_format(arr, np.ones(len(values)) if weights is None else np.asarray(weights), **kw)
    days = parse_dates(arr, fmt)
    return fmt, note, [None if d == BAD_DAY else str(np.datetime64(int(d), "D")) for d in days]


# ---------------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(("values", "kw", "decimal", "thousands", "expected"), [
    # France: decimal comma, space / no-break space / narrow no-break space thousands
    (["1 234,56", "12,50", "3", "2\u00a0500,00", "1\u202f000"], {"delimiter": ";"}, ",", " ",
     [1234.56, 12.5, 3.0, 2500.0, 1000.0]),
    # Germany: dot thousands, comma decimal
    (["1.234,56", "12,5", "1.000.000", "0,99"], {}, ",", ".", [1234.56, 12.5, 1e6, 0.99]),
    # India: lakh grouping
    (["1,00,000.50", "2,500", "12.5", "99,99,999.99"], {}, ".", ",", [100000.5, 2500.0, 12.5, 9999999.99]),
    # US / UK
    (["1,234.56", "12.50", "7"], {}, ".", ",", [1234.56, 12.5, 7.0]),
    # Switzerland
    (["1'234.50", "12.5"], {}, ".", "'", [1234.5, 12.5]),
    # signs, SAP's trailing minus, currency symbols and codes
    (["-4,50", "+4,50", "12,50-", "12,50 €", "EUR 3,20", "€1 000,00"], {}, ",", " ",
     [-4.5, 4.5, -12.5, 12.5, 3.2, 1000.0]),
    (["Rs. 1,00,000", "₹99.50", "-1,234.00"], {}, ".", ",", [100000.0, 99.5, -1234.0]),
])
def test_number_conventions_are_recognised(values, kw, decimal, thousands, expected) -> None:
    fmt, note, parsed = numbers(values, **kw)
    assert (fmt.decimal, fmt.thousands) == (decimal, thousands)
    assert note is None
    assert parsed == pytest.approx(expected)


def test_a_lone_comma_before_two_digits_is_a_decimal_comma() -> None:
    fmt, _, parsed = numbers(["12,50", "3,99", "100"], delimiter=";")
    assert fmt == NumberFormat(",", "") and parsed == [12.5, 3.99, 100.0]


def test_only_ambiguous_values_are_read_as_thousands_and_said() -> None:
    fmt, note, parsed = numbers(["1,234", "2,000", "15,500"])
    assert fmt == NumberFormat(".", ",") and parsed == [1234.0, 2000.0, 15500.0]
    assert "1,234" in note and "--decimal ','" in note
    fmt, note, parsed = numbers(["1.234", "2.000"])
    assert fmt == NumberFormat(",", ".") and parsed == [1234.0, 2000.0]
    assert "--decimal '.'" in note


def test_one_decisive_value_settles_the_ambiguous_ones() -> None:
    """1,234 next to 12,50 is a decimal comma: 1.234."""
    fmt, note, parsed = numbers(["1,234", "12,50"])
    assert fmt.decimal == "," and note is None
    assert parsed == pytest.approx([1.234, 12.5])


def test_mixed_conventions_pick_the_majority_of_rows_and_say_so() -> None:
    fmt, note, parsed = numbers(["12.50", "3,20"], weights=[1, 5])
    assert fmt.decimal == ","
    assert parsed == [None, 3.2]  # the minority is not silently misread
    assert "mix decimal ','" in note and "--decimal" in note


def test_integers_only_take_the_decimal_of_the_file_kind() -> None:
    assert numbers(["12", "7"])[0] == NumberFormat(".", "")
    assert numbers(["12", "7"], delimiter=";")[0] == NumberFormat(",", "")


def test_given_decimal_or_thousands_are_kept() -> None:
    fmt, _, parsed = numbers(["1,234", "2,000"], decimal=",")
    assert fmt == NumberFormat(",", "") and parsed == [1.234, 2.0]
    fmt, _, _ = numbers(["1 234,5"], thousands="")
    assert fmt.thousands == ""


@pytest.mark.parametrize("bad", ["", "abc", "NaN", "inf", "12,5,3", "1.23.4", "1 23", "--5", "1,2345,678", "12.50.-"])
def test_strict_parsing_rejects_what_is_not_a_number(bad) -> None:
    assert np.isnan(parse_numbers(pa.array([bad]), NumberFormat(",", " ")))[0]
    assert np.isnan(parse_numbers(pa.array([bad]), NumberFormat(".", ",")))[0]


def test_wrong_grouping_is_not_a_number() -> None:
    """With thousands '.', 12.50 is not 1250: a file mixing conventions gets bad rows."""
    assert np.isnan(parse_numbers(pa.array(["12.50"]), NumberFormat(",", ".")))[0]


def test_number_format_checks_itself() -> None:
    with pytest.raises(ValueError):
        NumberFormat(",", ",")
    with pytest.raises(ValueError):
        NumberFormat(";", "")
    assert NumberFormat(",", " ").words() == "decimal ',', thousands ' '"
    assert NumberFormat(".", "").words() == "decimal '.', thousands none"


# ------------------------------------------------------------------------------------ dates


@pytest.mark.parametrize(("values", "fmt", "expected"), [
    (["25/12/2023", "01/02/2024"], "%d/%m/%Y", ["2023-12-25", "2024-02-01"]),
    (["12/25/2023", "01/02/2024"], "%m/%d/%Y", ["2023-12-25", "2024-01-02"]),
    (["25.12.2023", "1.2.2024"], "%d.%m.%Y", ["2023-12-25", "2024-02-01"]),
    (["25-12-2023", "01-02-2024"], "%d-%m-%Y", ["2023-12-25", "2024-02-01"]),
    (["25/12/23", "01/02/24"], "%d/%m/%y", ["2023-12-25", "2024-02-01"]),
    (["2023-12-25", "2024-2-1"], "%Y-%m-%d", ["2023-12-25", "2024-02-01"]),
    (["2023/12/25"], "%Y/%m/%d", ["2023-12-25"]),
    (["20231225"], "%Y%m%d", ["2023-12-25"]),
])
def test_date_layouts_are_recognised(values, fmt, expected) -> None:
    got, note, parsed = dates(values)
    assert got == fmt and note is None
    assert parsed == expected


def test_times_after_the_date_are_cut_off_keeping_the_date_as_written() -> None:
    _, _, parsed = dates(["25/12/2023 23:59", "26/12/2023 10:30:00", "27/12/2023 2:05 PM",
                          "28/12/2023T00:30:00+05:00"])
    assert parsed == ["2023-12-25", "2023-12-26", "2023-12-27", "2023-12-28"]
    assert str(strip_time(pa.array(["2024-01-02T00:30:00.123Z"]))[0]) == "2024-01-02"
    assert str(strip_time(pa.array(["25 Dec 2023"]))[0]) == "25 Dec 2023"  # not a date followed by a time


def test_day_first_when_no_field_tells_only_in_european_files() -> None:
    with pytest.raises(AmbiguousDates) as info:
        dates(["01/02/2024", "03/04/2024"])
    assert "--date-format '%d/%m/%Y'" in str(info.value) and "--date-format '%m/%d/%Y'" in str(info.value)
    assert info.value.example == "01/02/2024"
    fmt, note, parsed = dates(["01/02/2024", "03/04/2024"], day_first_hint=True)
    assert fmt == "%d/%m/%Y" and parsed == ["2024-02-01", "2024-04-03"] and "day-first" in note
    fmt, note, _ = dates(["01.02.2024"])  # nobody writes dotted dates month-first
    assert fmt == "%d.%m.%Y" and "dotted" in note


def test_dates_contradicting_each_other_follow_the_majority() -> None:
    fmt, note, parsed = dates(["25/01/2024", "01/25/2024"], weights=[9, 1])
    assert fmt == "%d/%m/%Y" and parsed == ["2024-01-25", None]
    assert "day-first in 9 rows and month-first in 1" in note


def test_no_known_layout_names_the_option() -> None:
    with pytest.raises(UnknownDates, match="--date-format"):
        dates(["Dec 25, 2023", "Jan 1, 2024"])


def test_impossible_and_out_of_range_dates_are_bad() -> None:
    days = parse_dates(pa.array(["31/02/2024", "29/02/2024", "01/13/2024", "01/01/1600", ""]), "%d/%m/%Y")
    assert [d == BAD_DAY for d in days] == [True, False, True, True, True]


def test_any_strptime_format() -> None:
    days = parse_dates(pa.array(["25 Dec 2023", "bad"]), "%d %b %Y")
    assert str(np.datetime64(int(days[0]), "D")) == "2023-12-25" and days[1] == BAD_DAY
    mixed = parse_dates(pa.array(["2024-01-01 23:00+01:00", "2024-01-01 23:00-02:00"]), "%Y-%m-%d %H:%M%z")
    assert [str(np.datetime64(int(d), "D")) for d in mixed] == ["2024-01-01", "2024-01-01"]  # as written


def test_format_helpers() -> None:
    assert has_time_directive("%d/%m/%Y %H:%M") and not has_time_directive("%d/%m/%Y")
    assert date_format_words("%d/%m/%Y") == "DD/MM/YYYY" and date_format_words("%Y-%m-%d") == "YYYY-MM-DD"
