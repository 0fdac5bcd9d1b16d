"""The finance workbook: its sheets, number formats, roll-forwards that close, inputs with
their SHA-256, and deterministic bytes. Uses the study built in test_report.py."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest

from simulator.reporting import study as S
from simulator.reporting.workbook import MONEY, PCT, write_workbook
from tests.reporting.test_report import PLAYBOOKS, shared_study

SHEETS = ("Assumptions", "Summary", "Ranking", "Roll-up", "Monthly P&L", "Liability", "Sensitivity")


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    return shared_study(tmp_path_factory)


@pytest.fixture(scope="module")
def xlsx(study_dir, tmp_path_factory):
    return write_workbook(study_dir, tmp_path_factory.mktemp("workbook") / "workbook.xlsx")


@pytest.fixture(scope="module")
def wb(xlsx):
    return openpyxl.load_workbook(xlsx)


def _table(ws, header_row: int = 1) -> tuple[dict[str, int], list[tuple]]:
    header = {c.value: i for i, c in enumerate(ws[header_row]) if c.value is not None}
    rows = [r for r in ws.iter_rows(min_row=header_row + 1) if r[0].value is not None]
    return header, rows


def test_sheets_present(wb):
    assert tuple(wb.sheetnames) == SHEETS
    for name in SHEETS:
        ws = wb[name]
        assert ws.freeze_panes, name
        assert ws.column_dimensions["A"].customWidth and ws.column_dimensions["B"].width >= 8, name


def test_summary_formats_money_and_percent(wb, study_dir):
    ws = wb["Summary"]
    header, rows = _table(ws)
    assert "P50 (EUR)" in header and "P50 (local currency)" in header and "Currency" in header
    seen = set()
    for r in rows:
        unit = r[header["Unit"]].value
        p50 = r[header["P50 (local currency)"]]
        if r[header["Metric"]].value == "npv":
            assert unit == "money" and p50.number_format == MONEY
            assert r[header["P50 (EUR)"]].number_format == MONEY
            assert r[header["Currency"]].value in ("EUR", "USD")
            sc = S.load_study(study_dir).scenario(r[header["Scenario"]].value)
            assert r[header["P50 (EUR)"]].value == pytest.approx(p50.value * sc.fx_to_reporting)
            seen.add("money")
        if r[header["Metric"]].value in ("roi", "breakage_rate", "probability_npv_negative") and p50.value is not None:
            assert unit == "pct" and p50.number_format == PCT
            seen.add("pct")
    assert seen == {"money", "pct"}
    assert {r[header["Scenario"]].value for r in rows} == set(PLAYBOOKS)


def test_monthly_pnl_formats_and_cash_flow(wb, study_dir):
    ws = wb["Monthly P&L"]
    header, rows = _table(ws)
    for col in ("Revenue (local currency)", "Program cost (P&L) (local currency)", "Incremental cash flow (EUR)"):
        assert col in header
    study = S.load_study(study_dir)
    runs = {(r[header["Scenario"]].value, r[header["Run"]].value) for r in rows}
    assert runs == {(sid, run) for sid in PLAYBOOKS for run in ("design", "baseline", "difference")}
    for r in rows:
        assert r[header["Revenue (local currency)"]].number_format == MONEY
        if r[header["Run"]].value == "difference":
            cf = r[header["Incremental cash flow (local currency)"]]
            assert cf.number_format == MONEY
            gm = r[header["Gross margin (local currency)"]].value
            cash_cost = r[header["Program cash cost (local currency)"]].value
            owed = r[header["Obligation left at the horizon (local currency)"]].value
            assert cf.value == pytest.approx(gm - cash_cost - owed, rel=1e-9, abs=1e-6)
    # the last difference month's cumulative cash flow is the monthly mean's
    for sid in PLAYBOOKS:
        sc = study.scenario(sid)
        last = [r for r in rows if r[header["Scenario"]].value == sid and r[header["Run"]].value == "difference"][-1]
        expected = float(sc.rows("difference")["cumulative_cash_flow"].iloc[-1])
        assert last[header["Cumulative incremental cash flow (local currency)"]].value == pytest.approx(expected)
        assert last[header["Cumulative incremental cash flow (EUR)"]].value == pytest.approx(expected * sc.fx_to_reporting)


def test_liability_rows_close(wb):
    ws = wb["Liability"]
    header, rows = _table(ws)
    assert len(rows) == len(PLAYBOOKS) * 2 * 36
    prev: dict[tuple, tuple] = {}
    for r in rows:
        v = {k: r[i].value for k, i in header.items()}
        assert v["Points opening"] + v["Points issued"] - v["Points redeemed"] - v["Points expired"] \
            == pytest.approx(v["Points closing"], abs=1e-6)
        assert v["Points issued"] == pytest.approx(v["of which for purchases"] + v["of which bonuses"] + v["of which migration"], abs=1e-6)
        lo, de = v["Liability opening (local currency)"], v["Deferred (revenue allocated to points issued) (local currency)"]
        rec, cl = v["Recognised, total (local currency)"], v["Liability closing (local currency)"]
        assert lo + de - rec == pytest.approx(cl, rel=1e-9, abs=1e-6)
        assert rec == pytest.approx(v["Recognised on redemption (local currency)"] + v["Recognised as breakage (local currency)"],
                                    rel=1e-9, abs=1e-6)
        key = (v["Scenario"], v["Run"])
        if key in prev:  # one month's closing is the next month's opening
            assert v["Points opening"] == pytest.approx(prev[key][0], abs=1e-6)
            assert lo == pytest.approx(prev[key][1], rel=1e-9, abs=1e-6)
        prev[key] = (v["Points closing"], cl)
        assert r[header["Liability closing (local currency)"]].number_format == MONEY
        assert r[header["Liability closing (EUR)"]].number_format == MONEY


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


def test_ranking_and_rollup(wb, study_dir):
    study = S.load_study(study_dir)
    header, rows = _table(wb["Ranking"])
    assert [r[header["Scenario"]].value for r in rows] == [x.scenario for x in study.ranking]
    assert rows[0][header["NPV P50 (EUR)"]].number_format == MONEY
    assert rows[0][header["P(NPV<0)"]].number_format == PCT
    header, rows = _table(wb["Roll-up"])
    total = [r for r in rows if r[header["Market"]].value == "Total" and r[header["Metric"]].value == "NPV of incremental cash flow"]
    assert total and total[0][header["P50 (EUR)"]].value == pytest.approx(S.rollup(study).total.stat("npv")["p50"])


def test_sensitivity_rows(wb, study_dir):
    study = S.load_study(study_dir)
    header, rows = _table(wb["Sensitivity"])
    tornado = [r for r in rows if r[header["Scenario"]].value in PLAYBOOKS and r[header["Parameter"]].value]
    assert len([r for r in tornado if r[header["NPV at low (EUR)"]].value is not None]) == sum(len(v) for v in study.tornado.values())
    r = tornado[0]
    assert r[header["NPV at base (EUR)"]].number_format == MONEY
    texts = {c.value for row in wb["Sensitivity"].iter_rows() for c in row if isinstance(c.value, str)}
    assert "Break-even values" in texts and "lowest goal-gradient strength at which NPV reaches zero" in texts


def test_workbook_is_byte_identical(study_dir, xlsx, tmp_path):
    again = write_workbook(study_dir, tmp_path / "again.xlsx")
    assert again.read_bytes() == xlsx.read_bytes()
    props = openpyxl.load_workbook(again).properties
    assert props.created == props.modified and props.created.year == 2000
