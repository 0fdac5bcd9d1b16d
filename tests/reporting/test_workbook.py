"""The finance workbook: its sheets, number formats in each money column's currency, formulas
that finance can audit (evaluated here by a small evaluator and compared with the simulation's
figures, so a wrong formula fails), roll-forwards that close, the statements by fiscal year,
inputs with their SHA-256, and deterministic bytes.

Uses the study built in test_report.py, copied, with the US scenario's manifest saying its
books start in April and pay 25 % tax (the workbook reads both from the manifest)."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from simulator.finance import metrics, statements
from simulator.reporting import study as S
from simulator.reporting.workbook import PCT, money, write_workbook
from tests.reporting.test_report import PLAYBOOKS, shared_study

SHEETS = ("Assumptions", "Summary", "Ranking", "Roll-up", "P&L by year", "IFRS 15 by year", "Monthly P&L", "Liability",
          "Sensitivity", "Optimisation", "Network")
TAXED = "us_points_tiers"  # fiscal years from April, 25 % tax
ZERO = 1e-3  # a check formula's value: zero to float rounding on amounts up to ~1e9


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("workbook_study") / "study"
    shutil.copytree(shared_study(tmp_path_factory), out)
    path = out / "scenarios" / TAXED / "manifest.json"
    man = json.loads(path.read_text(encoding="utf-8"))
    man["resolved"]["playbook"]["accounting"].update(fiscal_year_start=4, tax_rate=0.25)
    path.write_text(json.dumps(man, indent=2), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def study(study_dir):
    return S.load_study(study_dir)


@pytest.fixture(scope="module")
def xlsx(study_dir, tmp_path_factory):
    return write_workbook(study_dir, tmp_path_factory.mktemp("workbook") / "workbook.xlsx")


@pytest.fixture(scope="module")
def wb(xlsx):
    return openpyxl.load_workbook(xlsx)


@pytest.fixture(scope="module")
def excel(wb):
    return Excel(wb)


def _table(ws, header_row: int = 1) -> tuple[dict[str, int], list[tuple]]:
    """The table from ``header_row`` to the first row with an empty first cell."""
    header = {c.value: i for i, c in enumerate(ws[header_row]) if c.value is not None}
    rows = list(itertools.takewhile(lambda r: r[0].value is not None, ws.iter_rows(min_row=header_row + 1)))
    return header, rows


# ----------------------------------------------------------------------------- formulas
REF = re.compile(r"(?:'([^']+)'!)?\$?([A-Z]{1,3})\$?(\d+)(?::\$?([A-Z]{1,3})\$?(\d+))?")


class Excel:
    """Evaluates the formula shapes the workbook writes: + - * / ^ of cells, ranges and
    numbers, SUM and SUMPRODUCT of a range expression, references to other sheets
    (``'Sheet'!A1``); an empty cell is 0, as in Excel."""

    def __init__(self, wb):
        self.wb = wb
        self.memo: dict[tuple[str, str], float] = {}

    def cell(self, sheet: str, ref: str) -> float:
        if (sheet, ref) not in self.memo:
            v = self.wb[sheet][ref].value
            self.memo[(sheet, ref)] = self.formula(sheet, v) if is_formula(v) else (0.0 if v is None else v)
        return self.memo[(sheet, ref)]

    def range(self, sheet: str, col: str, first: int, last: int) -> np.ndarray:
        return np.array([self.cell(sheet, f"{col}{r}") for r in range(first, last + 1)], dtype=float)

    def formula(self, sheet: str, text: str) -> float:
        def ref(m: re.Match) -> str:
            where = m.group(1) or sheet
            if m.group(4):
                assert m.group(2) == m.group(4), "ranges here are one column"
                return f"_range({where!r}, {m.group(2)!r}, {m.group(3)}, {m.group(5)})"
            return f"_cell({where!r}, {m.group(2) + m.group(3)!r})"

        assert set(re.findall(r"[A-Z]+(?=\()", text)) <= {"SUM", "SUMPRODUCT"}, text
        expr = REF.sub(ref, text[1:]).replace("^", "**").replace("SUMPRODUCT(", "_sum(").replace("SUM(", "_sum(")
        return float(eval(expr, {"_cell": self.cell, "_range": self.range, "_sum": np.sum}))  # noqa: S307 - our own formulas

    def value(self, ws, cell) -> float:
        return self.cell(ws.title, cell.coordinate) if is_formula(cell.value) else cell.value


def is_formula(v) -> bool:
    return isinstance(v, str) and v.startswith("=")


def terms(formula: str, header: dict[str, int]) -> list[str]:
    """A linear formula of the row's cells as signed headers: '=A2+B2-C2' -> ['+a', '+b', '-c']."""
    names = {openpyxl.utils.get_column_letter(i + 1): h for h, i in header.items()}
    return [f"{sign or '+'}{names[col]}" for sign, col in re.findall(r"([+-]?)\$?([A-Z]+)\$?\d+", formula[1:])]


def test_evaluator_evaluates_and_a_wrong_formula_differs():
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Monthly P&L"
    for r, (m, cf) in enumerate([(1, -100.0), (2, 60.0), (3, 70.0)], start=2):
        ws[f"A{r}"], ws[f"B{r}"], ws[f"C{r}"] = m, cf, f"=SUM(B$2:B{r})"
    ws["D1"] = 0.1
    other = wb.create_sheet("Other")
    other["A1"] = "=SUMPRODUCT('Monthly P&L'!B2:B4/(1+'Monthly P&L'!D1)^('Monthly P&L'!A2:A4/12))"
    other["A2"] = "='Monthly P&L'!C4-'Monthly P&L'!B2*2"
    x = Excel(wb)
    assert x.cell("Monthly P&L", "C4") == 30.0
    assert x.cell("Other", "A1") == pytest.approx(metrics.npv(np.array([-100.0, 60, 70]), 0.1), rel=1e-12)
    assert x.cell("Other", "A2") == 230.0
    assert x.formula("Other", "=SUMPRODUCT('Monthly P&L'!B2:B4/(1+'Monthly P&L'!D1)^'Monthly P&L'!A2:A4)") \
        != pytest.approx(x.cell("Other", "A1"))


# ----------------------------------------------------------------------------- sheets
def test_sheets_present(wb):
    assert tuple(wb.sheetnames) == SHEETS
    for name in SHEETS:
        ws = wb[name]
        assert ws.freeze_panes, name
        assert ws.column_dimensions["A"].customWidth and ws.column_dimensions["B"].width >= 8, name


def test_money_columns_name_and_format_their_currency(wb, study):
    """A money cell's format carries a currency: the row's own in a "(local currency)" column,
    the reporting currency's in an "(EUR)" column; no other column has a currency format."""
    cur = study.reporting_currency
    checked = set()
    for name in SHEETS:
        header, rows = _table(wb[name])
        local_of = header.get("Currency", header.get("Local currency"))
        for r in rows:
            unit = r[header["Unit"]].value if "Unit" in header else "money"
            for head, i in header.items():
                c = r[i]
                if not (is_formula(c.value) or isinstance(c.value, (int, float))):
                    continue
                fmt = c.number_format
                if "(local currency)" in head and unit == "money":
                    assert local_of is not None, (name, head)
                    assert fmt.endswith(f'"{r[local_of].value}"'), (name, head, fmt)
                    checked.add((name, r[local_of].value))
                elif head.endswith(f"({cur})"):
                    assert fmt == money(cur), (name, head, fmt)
                else:
                    assert '"' not in fmt, (name, head, fmt)
    assert {"Summary", "Monthly P&L", "Liability", "P&L by year", "IFRS 15 by year", "Sensitivity"} <= {n for n, _ in checked}
    assert {c for _, c in checked} == {"EUR", "USD"}


def test_summary_formats_money_and_percent(wb, study):
    ws = wb["Summary"]
    header, rows = _table(ws)
    assert "P50 (EUR)" in header and "P50 (local currency)" in header and "Currency" in header
    seen = set()
    for r in rows:
        unit = r[header["Unit"]].value
        p50 = r[header["P50 (local currency)"]]
        if r[header["Metric"]].value == "npv":
            currency = r[header["Currency"]].value
            assert unit == "money" and p50.number_format == money(currency)
            assert r[header["P50 (EUR)"]].number_format == money("EUR")
            assert currency in ("EUR", "USD")
            sc = study.scenario(r[header["Scenario"]].value)
            assert r[header["P50 (EUR)"]].value == pytest.approx(p50.value * sc.fx_to_reporting)
            seen.add("money")
        if r[header["Metric"]].value in ("roi", "breakage_rate", "probability_npv_negative") and p50.value is not None:
            assert unit == "pct" and p50.number_format == PCT
            seen.add("pct")
    assert seen == {"money", "pct"}
    assert {r[header["Scenario"]].value for r in rows} == set(PLAYBOOKS)


def test_monthly_pnl_formulas(wb, study, excel):
    ws = wb["Monthly P&L"]
    header, rows = _table(ws)
    for col in ("Revenue (local currency)", "Program cost (P&L) (local currency)", "Incremental cash flow (EUR)"):
        assert col in header
    runs = {(r[header["Scenario"]].value, r[header["Run"]].value) for r in rows}
    assert runs == {(sid, run) for sid in PLAYBOOKS for run in ("design", "baseline", "difference")}
    first = {}
    for r in rows:
        sid, run, month = r[header["Scenario"]].value, r[header["Run"]].value, r[header["Month"]].value
        rec = study.scenario(sid).rows(run).set_index("month").loc[month]
        fx = r[header["FX to EUR"]].value
        assert r[header["Revenue (local currency)"]].value == pytest.approx(rec["revenue"])
        op = r[header["Operating result: gross margin - program cost (local currency)"]]
        assert excel.value(ws, op) == pytest.approx(rec["gross_margin"] - rec["program_cost"], rel=1e-12, abs=1e-6)
        check = r[header["Program cost check: cost groups + provision movement - fees earned - program cost (local currency)"]]
        assert abs(excel.value(ws, check)) < ZERO
        cf = r[header["Incremental cash flow (local currency)"]]
        cum = r[header["Cumulative incremental cash flow (local currency)"]]
        if run != "difference":
            assert cf.value is None and cum.value is None
            continue
        first.setdefault(sid, r[0].row)
        assert terms(cf.value, header) == ["+Gross margin (local currency)", "-Program cash cost (local currency)",
                                          "-Obligation left at the horizon (local currency)"]
        assert excel.value(ws, cf) == pytest.approx(rec["cash_flow"], rel=1e-9, abs=1e-6)
        assert r[header["Incremental cash flow (EUR)"]].value == pytest.approx(rec["cash_flow"] * fx, rel=1e-9, abs=1e-6)
        assert cum.value.startswith(f"=SUM({cf.column_letter}${first[sid]}:")  # a running sum from the first month
        assert excel.value(ws, cum) == pytest.approx(rec["cumulative_cash_flow"], rel=1e-9, abs=1e-3)
        assert r[header["Cumulative incremental cash flow (EUR)"]].value == pytest.approx(rec["cumulative_cash_flow"] * fx,
                                                                                         rel=1e-9, abs=1e-3)
    first_check = rows[0][header["Program cost check: cost groups + provision movement - fees earned - program cost (local currency)"]]
    assert sorted(terms(first_check.value, header)) == sorted(
        [f"+{h} (local currency)" for h in ("Reward cost", "Tier benefit cost", "Campaign cost", "Enrolment drive cost",
                                           "Running + amortised set-up", "Per-member cost", "Bonus-points provision movement")]
        + ["-Membership fees earned (local currency)", "-Program cost (P&L) (local currency)"])


def test_npv_formula_matches_the_simulation(wb, study, excel):
    ws = wb["Monthly P&L"]
    top = next(c.row for c in ws["A"] if c.value == "Scenario" and c.row > 1)
    header, rows = _table(ws, top)
    assert {r[0].value for r in rows} == set(PLAYBOOKS)
    for r in rows:
        s = study.scenario(r[0].value)
        d = s.rows("difference")
        rate = r[header["Annual discount rate (P50 of the replications)"]].value
        assert rate == s.stat("discount_rate")["p50"] and 0 < rate < 1
        formula = r[header["NPV by formula (local currency)"]]
        assert formula.value.startswith("=SUMPRODUCT(") and formula.number_format == money(s.currency)
        expected = metrics.npv(d["cash_flow"].to_numpy(dtype=float), rate)
        assert excel.value(ws, formula) == pytest.approx(expected, rel=1e-9)
        assert r[header["NPV of the mean monthly cash flow, simulation (local currency)"]].value == pytest.approx(expected, rel=1e-12)
        assert abs(excel.value(ws, r[header["Formula - simulation (local currency)"]])) < ZERO
        # one rate for every replication: the NPV of the mean flow is the mean NPV
        assert r[header["Mean NPV over replications (local currency)"]].value == pytest.approx(expected, rel=1e-9)
        # a formula discounting by whole years instead of months would not match
        wrong = formula.value.replace("/12))", "))")
        assert excel.formula("Monthly P&L", wrong) != pytest.approx(expected, rel=1e-6)


def test_liability_rows_close(wb, excel):
    ws = wb["Liability"]
    header, rows = _table(ws)
    assert len(rows) == len(PLAYBOOKS) * 2 * 36
    checks = {
        "Points check: opening + issued - redeemed - expired - closing":
            ["+Points opening", "+Points issued", "-Points redeemed", "-Points expired", "-Points closing"],
        "Liability check: opening + deferred + converted in - converted out - recognised on redemption - recognised as "
        "breakage - closing (local currency)":
            [f"{sign}{h} (local currency)" for sign, h in (
                ("+", "Liability opening"), ("+", "Deferred (revenue allocated to points issued)"),
                ("+", "Converted in (migration)"), ("-", "Converted out (migration)"), ("-", "Recognised on redemption"),
                ("-", "Recognised as breakage"), ("-", "Liability closing"))],
        "Provision check: opening + charged - used + re-measured - closing (local currency)":
            [f"{sign}{h} (local currency)" for sign, h in (
                ("+", "Bonus-points provision opening"), ("+", "Provision charged (bonus points granted)"),
                ("-", "Provision used (bonus points redeemed)"), ("+", "Provision re-measured"),
                ("-", "Bonus-points provision closing"))],
    }
    prev: dict[tuple, tuple] = {}
    moved = 0.0
    per_point = []
    for r in rows:
        v = {k: r[i].value for k, i in header.items()}
        for head, expected in checks.items():
            assert terms(v[head], header) == expected, head
            assert abs(excel.value(ws, r[header[head]])) < ZERO, head
        assert v["Points issued"] == pytest.approx(v["of which for purchases"] + v["of which bonuses"] + v["of which migration"], abs=1e-6)
        lo, cl = v["Liability opening (local currency)"], v["Liability closing (local currency)"]
        rec = v["Recognised, total (local currency)"]
        assert rec == pytest.approx(v["Recognised on redemption (local currency)"] + v["Recognised as breakage (local currency)"],
                                    rel=1e-9, abs=1e-6)
        moved += v["Converted in (migration) (local currency)"]
        key = (v["Scenario"], v["Run"])
        if key in prev:  # one month's closing is the next month's opening
            assert v["Points opening"] == pytest.approx(prev[key][0], abs=1e-6)
            assert lo == pytest.approx(prev[key][1], rel=1e-9, abs=1e-6)
            assert v["Bonus-points provision opening (local currency)"] == pytest.approx(prev[key][2], rel=1e-9, abs=1e-6)
        prev[key] = (v["Points closing"], cl, v["Bonus-points provision closing (local currency)"])
        assert v["Liability closing (EUR)"] == pytest.approx(cl * v["FX to EUR"])
        per_point.append((v["Value per point (local currency)"], v["Cost per point redeemed, net of VAT (local currency)"]))
        assert r[header["Value per point (local currency)"]].number_format == money(v["Currency"], 4)
    assert min(min(p) for p in per_point) >= 0 and max(p[0] for p in per_point) > 0
    assert moved > 0  # the French cagnotte's migration: the liability moves, and the checks count it


def _years(wb, name: str):
    header, rows = _table(wb[name])
    out: dict[tuple[str, str], list] = {}
    for r in rows:
        out.setdefault((r[header["Scenario"]].value, r[header["Run"]].value), []).append(r)
    return header, out


def test_pnl_by_year(wb, study, excel):
    ws = wb["P&L by year"]
    header, years = _years(wb, "P&L by year")
    assert set(years) == {(sid, run) for sid in PLAYBOOKS for run in ("design", "baseline", "difference")}
    money_cols = {c: f"{label} (local currency)" for c, label in (
        ("revenue", "Revenue"), ("gross_margin", "Gross margin"), ("reward_cost", "Reward cost"),
        ("provision_movement", "Bonus-points provision movement"), ("fee_revenue", "Membership fees earned"),
        ("program_cost", "Program cost (P&L)"), ("horizon_charge", "Horizon charge: points earned with sales still to redeem"),
        ("operating_result", "Operating result: gross margin - program cost"),
        ("result_before_tax", "Result before tax: operating result - horizon charge"),
        ("tax", "Tax: tax rate x result before tax (negative: a saving)"), ("result_after_tax", "Result after tax"))}
    for (sid, run), rows in years.items():
        d = study.scenario(sid).rows(run)
        taxed = sid == TAXED
        expected = statements.pnl_by_year(d, 4 if taxed else 1, 0.25 if taxed else None)
        assert [r[header["Fiscal year"]].value for r in rows] == expected["fiscal_year"].tolist()
        assert [r[header["Months"]].value for r in rows] == expected["months"].tolist()
        assert [r[header["Partial year"]].value for r in rows] == ["yes" if p else "no" for p in expected["partial"]]
        for r, (_, e) in zip(rows, expected.iterrows()):
            assert r[header["Tax rate"]].value == (0.25 if taxed else None)
            for col, head in money_cols.items():
                cell = r[header[head]]
                if col in e:
                    assert excel.value(ws, cell) == pytest.approx(e[col], rel=1e-9, abs=1e-6), (sid, run, col)
                else:
                    assert cell.value is None, (sid, run, col)
            for head in ("Program cost check: cost groups + provision movement - fees earned - program cost (local currency)",
                         "Program cost check: program cost - the sum of its months on Monthly P&L (local currency)"):
                assert abs(excel.value(ws, r[header[head]])) < ZERO, (sid, run, head)
        # the years add up to the months
        total = sum(excel.value(ws, r[header[money_cols["program_cost"]]]) for r in rows)
        assert total == pytest.approx(d["program_cost"].sum(), rel=1e-9, abs=1e-6)
    labels = {r[header["Fiscal year"]].value for r in years[(TAXED, "design")]}
    assert labels == {"FY2027/28", "FY2028/29", "FY2029/30", "FY2030/31"}  # May 2027 to April 2030
    assert {r[header["Fiscal year"]].value for r in years[("fr_points_tiers", "design")]} == {"FY2027", "FY2028", "FY2029", "FY2030"}


def test_ifrs15_by_year(wb, study, excel):
    ws = wb["IFRS 15 by year"]
    header, years = _years(wb, "IFRS 15 by year")
    assert set(years) == {(sid, run) for sid in PLAYBOOKS for run in ("design", "baseline")}
    revenue = "Revenue (IFRS 15): net sales - deferred + recognised + fees earned (local currency)"
    for (sid, run), rows in years.items():
        expected = statements.ifrs15_by_year(study.scenario(sid).rows(run), 4 if sid == TAXED else 1)
        assert len(rows) == len(expected)
        for r, (_, e) in zip(rows, expected.iterrows()):
            assert r[header["Liability opening (local currency)"]].value == pytest.approx(e["liability_opening"])
            assert r[header["Bonus-points provision closing (local currency)"]].value == pytest.approx(e["provision_closing"])
            assert terms(r[header[revenue]].value, header) == [
                "+Net sales (local currency)", "-Deferred (revenue allocated to points issued) (local currency)",
                "+Recognised, total (local currency)", "+Membership fees earned (local currency)"]
            assert excel.value(ws, r[header[revenue]]) == pytest.approx(e["ifrs15_revenue"], rel=1e-12)
            assert r[header["Revenue (IFRS 15): net sales - deferred + recognised + fees earned (EUR)"]].value == \
                pytest.approx(e["ifrs15_revenue"] * r[header["FX to EUR"]].value)
            for head in [h for h in header if "check" in h]:
                assert abs(excel.value(ws, r[header[head]])) < ZERO, (sid, run, head)
        # each year's closing is the next year's opening
        for a, b in zip(rows, rows[1:]):
            assert b[header["Liability opening (local currency)"]].value == pytest.approx(
                a[header["Liability closing (local currency)"]].value)


def test_assumptions_list_every_input_with_its_sha256(wb, study_dir):
    ws = wb["Assumptions"]
    cells = {c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str)}
    for sid in PLAYBOOKS:
        manifest = json.loads((Path(study_dir) / "scenarios" / sid / "manifest.json").read_text(encoding="utf-8"))
        for f, digest in manifest["inputs"].items():
            assert f in cells and digest in cells
    # resolved parameters with their source line (the inputs are found: absolute paths)
    sources = [c.value for c in ws["D"] if isinstance(c.value, str) and c.value.endswith(tuple("0123456789"))]
    assert any("market.yaml:" in s for s in sources) and any("points_tiers.yaml:" in s for s in sources)
    assert "FX to EUR (EUR per local unit)" in cells


def test_text_starting_with_equals_is_not_a_formula(tmp_path):
    from simulator.reporting.workbook import Formula, _Sheet

    wb = openpyxl.Workbook()
    sh = _Sheet(wb.active)
    sh.put(["=HYPERLINK(\"x\")", Formula("=1+1")])
    wb.save(tmp_path / "t.xlsx")
    ws = openpyxl.load_workbook(tmp_path / "t.xlsx").active
    assert ws["A1"].data_type == "s" and ws["B1"].data_type == "f"


def test_ranking_and_rollup(wb, study):
    header, rows = _table(wb["Ranking"])
    assert [r[header["Scenario"]].value for r in rows] == [s.id for s in study.ranked_scenarios]
    assert rows[0][header["NPV P50 (EUR)"]].number_format == money("EUR")
    assert rows[0][header["P(NPV<0)"]].number_format == PCT
    header, rows = _table(wb["Roll-up"])
    total = [r for r in rows if r[header["Market"]].value == "Total" and r[header["Metric"]].value == "NPV of incremental cash flow"]
    assert total and total[0][header["P50 (EUR)"]].value == pytest.approx(S.rollup(study).total.stat("npv")["p50"])


def test_sensitivity_rows(wb, study):
    header, rows = _table(wb["Sensitivity"])
    tornado = [r for r in rows if r[header["Scenario"]].value in PLAYBOOKS and r[header["Parameter"]].value]
    assert len([r for r in tornado if r[header["NPV at low (EUR)"]].value is not None]) == sum(len(v) for v in study.tornado.values())
    r = tornado[0]
    base = "NPV at base: every parameter central, mean of the sensitivity replications, not the headline P50 (EUR)"
    assert r[header[base]].number_format == money("EUR")  # the tornado's base says what it is
    texts = {c.value for row in wb["Sensitivity"].iter_rows() for c in row if isinstance(c.value, str)}
    assert "Break-even values" in texts and "lowest goal-gradient strength at which NPV reaches zero" in texts
    # a break-even without meaning (None or a negative multiple) reads "none", never a number
    values = [row[2].value for row in wb["Sensitivity"].iter_rows() if row[1].value == "reward cost"]
    assert values and all(v == "none" or (isinstance(v, float) and v >= 0) for v in values)


def test_workbook_is_byte_identical(study_dir, xlsx, tmp_path):
    again = write_workbook(study_dir, tmp_path / "again.xlsx")
    assert again.read_bytes() == xlsx.read_bytes()
    props = openpyxl.load_workbook(again).properties
    assert props.created == props.modified and props.created.year == 2000


def test_network_sheet_lists_the_stores_of_every_scenario(wb, study):
    header, rows = _table(wb["Network"])
    assert [h for h, _ in sorted(header.items(), key=lambda kv: kv[1])][:5] == ["Scenario", "Market", "Currency", "Rank",
                                                                               "Store"]
    for s in study.scenarios:
        t = S.network_table(s)
        mine = [r for r in rows if r[header["Scenario"]].value == s.id]
        assert [r[header["Store"]].value for r in mine] == list(t["store"])
        assert [r[header["Recruitment rate"]].value for r in mine] == pytest.approx(list(t["recruitment_rate"]))
        assert [r[header["Incremental revenue (local currency)"]].value for r in mine] == pytest.approx(
            list(t["incremental_revenue"]))
