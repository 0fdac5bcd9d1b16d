"""Optional columns of a transaction log: category -> market categories, member -> enrolment
propensity, store -> the market's store network (tests/calibration/test_stores.py), channel ->
notes, and the report's "Optional columns" section."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.calibration.estimate import calibrate
from simulator.calibration.market_file import write_market
from simulator.calibration.optional_columns import MAX_CATEGORIES, OTHER_CATEGORY, category_names
from simulator.calibration.report import report_html
from simulator.calibration.transactions import parse_member_flags, read_transactions
from simulator.specs import load_market
from simulator.specs.market import Market, Response

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
END = pd.Timestamp("2024-06-30")
# category values of the synthetic log and the market names they must become
CATEGORY_NAMES = {"Food": "food", "FOOD ": "food", "Home & Garden": "home_garden", "2024 Promo": "c_2024_promo",
                  "Épicerie": "epicerie", "": "unknown", "toys": "toys"}
MEMBER_YES = ["yes", "Y", "1", "member", "TRUE"]
MEMBER_NO_OR_UNKNOWN = ["no", "0", "non-member", "N", "maybe", ""]


def synthetic_log(n: int = 300, seed: int = 11) -> pd.DataFrame:
    """~18 months of purchase rows (2023-01..2024-06, plus one row in the incomplete 2024-07),
    with store, channel, category and member; a third of the customer-days are baskets of
    2-3 rows with their own categories. Each customer joins in a random month (maybe never):
    its rows are member-flagged from then on, before with "no"-like or unreadable values."""
    rng = np.random.default_rng(seed)
    months = pd.period_range("2023-01", "2024-06", freq="M")
    cats = list(CATEGORY_NAMES)
    rows = []
    for c in range(n):
        start, join = int(rng.integers(0, 12)), int(rng.integers(0, 30))
        for t in range(start, len(months)):
            for _ in range(rng.poisson(0.7)):
                day = (months[t].start_time + pd.Timedelta(days=int(rng.integers(0, 28)))).date().isoformat()
                for _ in range(1 + int(rng.random() < 0.33) * int(rng.integers(1, 3))):
                    flag = rng.choice(MEMBER_YES) if t >= join else rng.choice(MEMBER_NO_OR_UNKNOWN)
                    # cents from the row number: no two rows of a customer-day are identical
                    amount = round(round(float(rng.lognormal(3.0, 0.5)), 1) + (len(rows) % 9 + 1) / 100, 2)
                    rows.append((f"C{c:04d}", day, amount, f"S{int(rng.integers(1, 8))}",
                                 str(rng.choice(["web", "store", "app"])), str(rng.choice(cats)), str(flag)))
    rows.append(("C0001", "2024-07-15", 50.0, "S1", "web", "Late", "yes"))  # after the calibration end
    return pd.DataFrame(rows, columns=["customer_id", "date", "amount", "store", "channel", "category", "member"])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """The synthetic log as written, its calibration, and the same log without optional columns."""
    folder = tmp_path_factory.mktemp("optional")
    df = synthetic_log()
    path = folder / "log.csv"
    df.to_csv(path, index=False)
    plain_path = folder / "plain.csv"
    df[["customer_id", "date", "amount"]].to_csv(plain_path, index=False)
    log = read_transactions(path)
    plain = read_transactions(plain_path)
    kw = dict(name="synthetic", currency="EUR", gross_margin=0.3, potential_horizon=0)
    return {"df": df, "path": path, "log": log, "plain": plain, "cm": calibrate(log, **kw, source=path),
            "plain_cm": calibrate(plain, **kw)}


def test_category_shares_are_pre_merge_spend_shares(synthetic) -> None:
    df = synthetic["df"]
    window = df[pd.to_datetime(df["date"]) <= END]
    # same-day baskets spread over several categories exist: merging would keep one of them
    per_day = window.groupby(["customer_id", "date"])["category"].nunique()
    assert (per_day > 1).sum() > 100
    spend = window.groupby(window["category"].map(CATEGORY_NAMES))["amount"].sum()
    expected = (spend / spend.sum()).to_dict()
    cats = synthetic["cm"].market.categories
    assert set(cats) == set(CATEGORY_NAMES.values())
    for name, share in expected.items():
        assert cats[name] == pytest.approx(share, abs=2e-6)
    assert sum(Decimal(repr(v)) for v in cats.values()) == 1  # exactly 1 as written
    assert all(NAME.match(n) and len(n) <= 64 for n in cats)
    # not the shares of the merged customer-days (which keep the first category of a day)
    merged = synthetic["log"].transactions
    merged = merged[merged["date"] <= END]
    first = merged.groupby(category_names(merged["category"]))["amount"].sum()
    assert max(abs(cats[k] - first.get(k, 0.0) / first.sum()) for k in cats) > 1e-3


def test_category_values_are_netted_by_returns_before_the_shares(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("customer_id,date,amount,category\n"
                    "A,2024-01-01,10,Food\n"
                    "A,2024-01-01,5,Toys\n"     # the later row of the day is netted first
                    "A,2024-01-02,-3,Toys\n"
                    "B,2024-01-05,4,\n", encoding="utf-8")
    log = read_transactions(path)
    table = log.spend_by["category"]
    got = dict(zip(table["value"].fillna("(missing)"), table["amount"]))
    assert got == {"Food": 10.0, "Toys": 2.0, "(missing)": 4.0}
    assert list(log.transactions["amount"]) == [12.0, 4.0]  # merged as before


def test_category_names_are_valid_market_names() -> None:
    raw = ["Food", " Home & Garden ", "2nd-hand", "Épicerie fine", "a" * 80 + "b", "!!!", None, np.nan, "__x__", 7]
    names = list(category_names(raw))
    assert names[:4] == ["food", "home_garden", "c_2nd_hand", "epicerie_fine"]
    assert names[4] == "a" * 64
    assert re.fullmatch(r"c_[0-9a-f]{8}", names[5])
    assert names[6:] == ["unknown", "unknown", "x", "c_7"]
    assert all(NAME.match(n) and len(n) <= 64 for n in names)


def test_more_than_20_categories_keep_the_largest_and_lump_the_rest(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = []
    for c in range(60):
        for m in range(1, 7):
            k = int(rng.integers(0, 25))
            rows.append((f"c{c}", f"2024-{m:02d}-{1 + c % 27:02d}", float(k + 1), f"Cat {k:02d}"))
    df = pd.DataFrame(rows, columns=["customer_id", "date", "amount", "category"])
    path = tmp_path / "log.csv"
    df.to_csv(path, index=False)
    cm = calibrate(read_transactions(path), name="many", currency="EUR", gross_margin=0.3, potential_horizon=0)
    assert cm.calibration_end == pd.Timestamp("2024-05-31")
    window = df[df["date"] <= "2024-05-31"]
    spend = window.groupby(category_names(window["category"]))["amount"].sum()
    ranked = sorted(spend.items(), key=lambda kv: (-kv[1], kv[0]))  # ties: by name
    cats = cm.market.categories
    assert len(cats) == MAX_CATEGORIES + 1
    assert set(cats) == {k for k, _ in ranked[:MAX_CATEGORIES]} | {OTHER_CATEGORY}
    rest = sum(v for _, v in ranked[MAX_CATEGORIES:])
    assert cats[OTHER_CATEGORY] == pytest.approx(rest / spend.sum(), abs=2e-6)
    assert sum(Decimal(repr(v)) for v in cats.values()) == 1
    assert any("summed into 'other'" in n for n in cm.diagnostics.notes)


def test_market_validates_and_round_trips(synthetic, tmp_path: Path) -> None:
    cm = synthetic["cm"]
    market = Market.model_validate(cm.market.model_dump())
    assert market == cm.market
    path = write_market(cm, tmp_path / "synthetic" / "market.yaml", source=synthetic["path"])
    back = load_market(path)
    assert back == cm.market
    assert back.categories == cm.market.categories and back.response.enrolment_propensity is not None
    text = path.read_text(encoding="utf-8")
    assert "estimated from the log's member flag" in text and "# categories:" in text


def test_member_flags_parse_to_booleans_or_unknown() -> None:
    raw = pd.Series(["1", "true", "YES", " y ", "T", "Member", "0", "False", "no", "N", "f", "non_member",
                     "Non-Member", "maybe", "", "2", None, "NA"], dtype=object)
    got = parse_member_flags(raw)
    assert str(got.dtype) == "boolean"
    assert list(got[:6]) == [True] * 6 and list(got[6:13]) == [False] * 7
    assert got[13:].isna().all()
    typed = parse_member_flags(pd.Series([True, False, None], dtype="boolean"))
    assert list(typed[:2]) == [True, False] and pd.isna(typed[2])
    assert list(parse_member_flags(pd.Series([1.0, 0.0, 0.5]))[:2]) == [True, False]


def test_a_member_day_is_a_day_with_any_member_row(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("customer_id,date,amount,member\n"
                    "A,2024-01-01,1,no\nA,2024-01-01,2,YES\n"      # member day
                    "A,2024-01-02,1,maybe\nA,2024-01-02,2,\n"      # unknown, not a bad row
                    "A,2024-01-03,1,no\nA,2024-01-03,2,maybe\n",   # not a member day
                    encoding="utf-8")
    t = read_transactions(path).transactions
    assert list(t["amount"]) == [3.0, 3.0, 3.0]
    flags = t["member"].tolist()
    assert flags[0] is True and flags[1] is pd.NA and flags[2] is False


def constructed_member_log(path: Path) -> None:
    """42 customers buying on the 10th of every month of 2023 (the 20th too in August):

    * M0..M9 member-flagged from January, B0..B1 from March (both before the burn-in ends);
    * J0..J4 join in August (their August 10th row says "no", their August 20th row "YES"),
      K0..K4 join in November;
    * N0..N19 never join; their flags are "maybe" (N0..N4), blank (N5..N9), "0" or "false".
    """
    rows = []
    groups = ([(f"M{i}", 1) for i in range(10)] + [(f"B{i}", 3) for i in range(2)] + [(f"J{i}", 8) for i in range(5)]
              + [(f"K{i}", 11) for i in range(5)] + [(f"N{i}", 99) for i in range(20)])
    for cust, join in groups:
        for m in range(1, 13):
            if cust.startswith("N"):
                i = int(cust[1:])
                flag = "maybe" if i < 5 else ("" if i < 10 else ("0" if i % 2 else "false"))
            else:
                flag = "yes" if m >= join else "no"
            if cust.startswith("J") and m == 8:
                rows.append(f"{cust},2023-08-10,10,no")
                rows.append(f"{cust},2023-08-20,10,YES")
                continue
            rows.append(f"{cust},2023-{m:02d}-10,10,{flag}")
    path.write_text("customer_id,date,amount,member\n" + "\n".join(rows) + "\n", encoding="utf-8")


def test_enrolment_propensity_is_the_pooled_hazard(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    constructed_member_log(path)
    log = read_transactions(path)
    kw = dict(name="members", currency="EUR", gross_margin=0.3, calibration_end="2023-12-31", potential_horizon=0)
    # months counted: July..December (after the 6-month burn-in). At risk: J 2 months (Jul, Aug),
    # K 5 (Jul..Nov), N 6 each; M and B are members before July. Joins: the 5 J and the 5 K.
    cm = calibrate(log, **kw)
    e = cm.diagnostics.optional_columns.enrolment
    assert (e.joiners, e.at_risk) == (10, 5 * 2 + 5 * 5 + 20 * 6)
    assert cm.market.response.enrolment_propensity == round(10 / 155, 6)
    assert e.member_customers == 22 and e.member_share == pytest.approx(22 / 42)
    assert e.unknown_share == pytest.approx(10 * 12 / (42 * 12 + 5))  # N0..N9's customer-days
    note = next(n for n in cm.diagnostics.notes if n.startswith("member:"))
    assert "0.06452" in note and "52.4%" in note
    # without a burn-in every month counts: M and B join in January / March
    cm0 = calibrate(log, **kw, acquisition_burn_in=0)
    e0 = cm0.diagnostics.optional_columns.enrolment
    assert (e0.joiners, e0.at_risk) == (22, 10 * 1 + 2 * 3 + 5 * 8 + 5 * 11 + 20 * 12)
    assert cm0.market.response.enrolment_propensity == round(22 / 351, 6)


def test_enrolment_propensity_matches_a_direct_count(synthetic) -> None:
    """The synthetic log's estimate against a per-customer count written out plainly."""
    df = synthetic["df"]
    df = df[pd.to_datetime(df["date"]) <= END]
    month = pd.to_datetime(df["date"]).dt.to_period("M")
    first_month = month.min()
    counted = [first_month + k for k in range(6, 18)]
    member = df["member"].str.strip().str.lower().isin(["yes", "y", "1", "member", "true"])
    joiners = at_risk = 0
    for cust, idx in df.groupby("customer_id").groups.items():
        flagged = month[idx][member[idx]]
        joined = flagged.min() if len(flagged) else None
        for m in sorted(set(month[idx])):
            if m in counted and (joined is None or joined >= m):
                at_risk += 1
                joiners += joined == m
    e = synthetic["cm"].diagnostics.optional_columns.enrolment
    assert (e.joiners, e.at_risk) == (joiners, at_risk)
    assert synthetic["cm"].market.response.enrolment_propensity == round(joiners / at_risk, 6)


def test_too_little_member_information_keeps_the_default(tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    rows = [f"c{c},2024-{m:02d}-05,10,{'yes' if c == 0 and m >= 3 else 'no'}" for c in range(8) for m in range(1, 9)]
    path.write_text("customer_id,date,amount,member\n" + "\n".join(rows) + "\n", encoding="utf-8")
    cm = calibrate(read_transactions(path), name="few", currency="EUR", gross_margin=0.3, potential_horizon=0)
    assert cm.market.response == Response()
    note = next(n for n in cm.diagnostics.notes if n.startswith("member:"))
    assert "too little information" in note and "default 0.08 is kept" in note and "12.5%" in note


def test_a_log_without_optional_columns_gives_the_market_as_before(synthetic) -> None:
    plain_cm, cm = synthetic["plain_cm"], synthetic["cm"]
    assert synthetic["plain"].report.duplicates_dropped == 0 and synthetic["plain"].spend_by == {}
    plain = plain_cm.market
    assert plain.categories == {} and plain.response == Response()
    assert plain_cm.diagnostics.optional_columns is None
    # the same market but for what the optional columns give and the log's file name
    assert cm.market.calibration.source == synthetic["path"].name and plain.calibration.source == ""
    assert cm.market.model_copy(update={"categories": {}, "response": Response(), "stores": None,
                                        "calibration": plain.calibration}) == plain
    extra = cm.diagnostics.notes[len(plain_cm.diagnostics.notes):]
    assert cm.diagnostics.notes[: len(plain_cm.diagnostics.notes)] == plain_cm.diagnostics.notes
    assert [n.split(":")[0] for n in extra] == ["category", "member", "channel", "store", "store", "store"]
    assert "Optional columns" not in report_html(plain_cm)


def test_notes_mention_channels_and_stores(synthetic) -> None:
    df = synthetic["df"]
    window = df[pd.to_datetime(df["date"]) <= END]
    spend = window.groupby("channel")["amount"].sum().sort_values(ascending=False) / window["amount"].sum()
    notes = synthetic["cm"].diagnostics.notes
    channel = next(n for n in notes if n.startswith("channel:"))
    assert ", ".join(f"{c} {s:.1%}" for c, s in spend.items()) in channel
    store = next(n for n in notes if n.startswith("store:"))
    assert "7 stores" in store
    opt = synthetic["cm"].diagnostics.optional_columns
    assert opt.stores == 7 and opt.columns == ("store", "channel", "category", "member")
    assert list(opt.channels["channel"]) == list(spend.index)


def test_report_has_an_optional_columns_section(synthetic) -> None:
    page = report_html(synthetic["cm"])
    section = page[page.index("<h2>Optional columns</h2>"):]
    assert "c_2024_promo" in section and "Home &amp; Garden" in section
    assert "enrolment_propensity" in section and "Channels" in section and "Stores: 7" in section
    assert "http://" not in page and "https://" not in page


def test_a_dataframe_log_uses_its_rows_as_the_pre_merge_rows(synthetic) -> None:
    df = synthetic["df"].assign(date=lambda d: pd.to_datetime(d["date"]))
    cm = calibrate(df, name="frame", currency="EUR", gross_margin=0.3, potential_horizon=0)
    assert cm.market.categories == synthetic["cm"].market.categories
    assert cm.market.response == synthetic["cm"].market.response


def test_parquet_typed_optional_columns(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pd.DataFrame({
        "customer_id": ["a", "a", "b"],
        "date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-02-03"]),
        "amount": [1.0, 2.0, 4.0],
        "category": [5, 12, 5],
        "member": pd.array([False, True, None], dtype="boolean"),
    }).to_parquet(path)
    log = read_transactions(path)
    assert log.transactions["member"].tolist() == [True, pd.NA]
    table = log.spend_by["category"]
    spend = table.groupby(category_names(table["value"]))["amount"].sum().to_dict()
    assert spend == {"c_5": 5.0, "c_12": 2.0}
