"""The study workbook for finance (Excel, written with openpyxl).

Sheets
------
``Assumptions``   the study, its scenarios and FX rates, every input file with its SHA-256,
                  each run's arguments and environment from its manifest, the uncertain
                  parameters, and every resolved parameter (scenario, file, file:line, field
                  path, value)
``Summary``       per scenario and metric: P10/P50/P90/mean in the local currency and in the
                  reporting currency
``Ranking``       scenarios ranked by NPV P50 in the reporting currency with the reasons:
                  margin sources (true lift vs self-selection) and cost groups
``Roll-up``       markets and group total in the reporting currency (totals summed replication
                  by replication, see :mod:`simulator.reporting.study`)
``Monthly P&L``   per scenario, run (design / baseline / difference) and month: revenue,
                  gross margin, each cost group, fees, program cost, incremental cash flow
``Liability``     per scenario, run and month: the points roll-forward (opening, issued,
                  redeemed, expired, closing) and the IFRS 15 liability roll-forward (opening,
                  deferred, recognised on redemption and breakage, closing)
``Sensitivity``   tornado bars, break-even values, uncertain parameters

Money cells use ``#,##0`` with the currency in the column header ("local currency" columns
sit next to a ``Currency`` column), shares ``0.0%``. Monthly figures are means over
replications (the roll-forward identities hold for means since they are linear).

The file is deterministic: the workbook's created/modified properties are a fixed date
(:data:`FIXED_TIME`, not the time of writing) and the zip entries carry a fixed timestamp,
so the same study gives the same bytes.
"""

from __future__ import annotations

import datetime as _dt
import io
import math
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Sequence

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from simulator.reporting import study as S
from simulator.reporting.study import Study

#: Workbook created/modified time: fixed, so that the same study gives the same bytes.
FIXED_TIME = _dt.datetime(2000, 1, 1, 0, 0, 0)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

MONEY = "#,##0"
PCT = "0.0%"
COUNT = "#,##0"
MONTHS = "0.0"
NUMBER = "#,##0.0###"
RATE = "0.######"

FORMATS = {"money": MONEY, "pct": PCT, "count": COUNT, "points": COUNT, "months": MONTHS, "number": NUMBER}

HEADER_FONT = Font(bold=True)
HEADER_FILL = PatternFill("solid", fgColor="DCE6F1")
TITLE_FONT = Font(bold=True, size=12)

RUNS = ("design", "baseline", "difference")


# ----------------------------------------------------------------------------- helpers
def _v(x: Any) -> Any:
    """A cell value: plain Python, NaN/inf as empty."""
    if x is None:
        return None
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (list, tuple, dict)):
        x = str(x)
    if isinstance(x, str):
        x = ILLEGAL_CHARACTERS_RE.sub("", x)[:32767]
    return x


class _Sheet:
    """Writes rows to a worksheet, remembers column widths."""

    def __init__(self, ws: Worksheet):
        self.ws = ws
        self.row = 1
        self.widths: dict[int, int] = {}

    def _note(self, col: int, value: Any) -> None:
        n = len(f"{value:,.0f}") + 2 if isinstance(value, (int, float)) and not isinstance(value, bool) else len(str(value or ""))
        self.widths[col] = max(self.widths.get(col, 8), min(n + 1, 60))

    def title(self, text: str) -> None:
        c = self.ws.cell(self.row, 1, text)
        c.font = TITLE_FONT
        self.row += 1

    def header(self, names: Sequence[str]) -> int:
        for j, name in enumerate(names, start=1):
            c = self.ws.cell(self.row, j, name)
            c.font, c.fill = HEADER_FONT, HEADER_FILL
            c.alignment = Alignment(wrap_text=True, vertical="top")
            self.widths[j] = max(self.widths.get(j, 8), min(max(len(w) for w in name.split()) + 2 if name else 8, 30),
                                 min(len(name) // 2 + 2, 22))
        self.row += 1
        return self.row - 1

    def put(self, values: Sequence[Any], formats: Sequence[str | None] | None = None) -> None:
        for j, value in enumerate(values, start=1):
            value = _v(value)
            c = self.ws.cell(self.row, j, value)
            fmt = formats[j - 1] if formats is not None and j - 1 < len(formats) else None
            if fmt and isinstance(value, (int, float)) and not isinstance(value, bool):
                c.number_format = fmt
            self._note(j, value)
        self.row += 1

    def skip(self, n: int = 1) -> None:
        self.row += n

    def finish(self, freeze: str | None = None, autofilter: str | None = None) -> None:
        for j, w in sorted(self.widths.items()):
            self.ws.column_dimensions[get_column_letter(j)].width = w
        if freeze:
            self.ws.freeze_panes = freeze
        if autofilter:
            self.ws.auto_filter.ref = autofilter


def _table_ref(first_row: int, last_row: int, ncols: int) -> str:
    return f"A{first_row}:{get_column_letter(ncols)}{max(last_row, first_row)}"


# ----------------------------------------------------------------------------- sheets
def _assumptions(ws: Worksheet, study: Study) -> None:
    sh = _Sheet(ws)
    cur = study.reporting_currency
    sh.title(f"Assumptions: {study.name}")
    sh.header(["Study", "Value"])
    for k, v in (("name", study.name), ("description", study.description), ("reporting currency", cur),
                 ("seed", study.seed), ("replications", study.replications), ("scenarios", len(study.scenarios)),
                 ("loyalty-sim version (from the manifests)", study.version), ("ranking", study.ranking_source)):
        sh.put([k, v])
    sh.skip()

    sh.title("Scenarios and FX")
    sh.header(["Scenario", "Market", "Design", "Baseline", "Playbook", "Currency", f"FX to {cur} ({cur} per local unit)", "Run directory"])
    for s in study.scenarios:
        sh.put([s.id, s.market, s.design, s.baseline, s.playbook, s.currency, s.fx_to_reporting, s.dir.name],
               [None] * 6 + [RATE, None])
    sh.skip()

    sh.title("Input files (SHA-256 as recorded in each run's manifest)")
    sh.header(["Scenario", "Role", "Input file", "SHA-256"])
    for s in study.scenarios:
        roles = S.input_roles(s.manifest)
        for f, h in (s.manifest.get("inputs") or {}).items():
            sh.put([s.id, roles.get(f, ""), f, h])
    sh.skip()

    sh.title("Run manifests: arguments, versions, environment, result files")
    sh.header(["Scenario", "Item", "Value"])
    for s in study.scenarios:
        man = s.manifest
        for k, v in (man.get("arguments") or {}).items():
            sh.put([s.id, f"argument {k}", "" if v is None else v])
        sh.put([s.id, "tool", man.get("tool")])
        sh.put([s.id, "version", man.get("version")])
        sh.put([s.id, "command", man.get("command")])
        sh.put([s.id, "fx design currency to local", (man.get("resolved") or {}).get("fx_design_to_local")], [None, None, RATE])
        for k, v in (man.get("environment") or {}).items():
            sh.put([s.id, f"environment {k}", v])
        for k, v in (man.get("outputs") or {}).items():
            sh.put([s.id, f"SHA-256 of {k}", v])
    sh.skip()

    if study.uncertain_parameters:
        sh.title("Uncertain parameters")
        sh.header(["Parameter", "Distribution", "Source"])
        for u in study.uncertain_parameters:
            sh.put([u.name, u.distribution, u.source])
        sh.skip()

    sh.title("Resolved parameters (design and baseline in the market's currency after the playbook's overrides; "
             "source file:line where the value is written, '(default)' where it is not)")
    first = sh.header(["Scenario", "Role", "File", "Source", "Field", "Value", "Note"])
    for p in S.resolved_parameters(study):
        sh.put([p.scenario, p.role, p.file, p.source, p.field, "" if p.value is None else p.value, p.note])
    sh.widths[3] = min(sh.widths.get(3, 8), 40)
    sh.widths[7] = min(sh.widths.get(7, 8), 50)
    sh.finish(freeze="B2", autofilter=_table_ref(first, sh.row - 1, 7))


def _summary(ws: Worksheet, study: Study) -> None:
    sh = _Sheet(ws)
    cur = study.reporting_currency
    head = ["Scenario", "Market", "Design", "Baseline", "Metric", "Label", "Unit", "Currency",
            "P10 (local currency)", "P50 (local currency)", "P90 (local currency)", "Mean (local currency)",
            f"FX to {cur}", f"P10 ({cur})", f"P50 ({cur})", f"P90 ({cur})", f"Mean ({cur})"]
    sh.header(head)
    for s in study.ranked_scenarios:
        for m in s.metric_names:
            unit = S.metric_unit(m)
            fmt = FORMATS[unit]
            st = s.stat(m)
            row = [s.id, s.market, s.design, s.baseline, m, S.metric_label(m).strip(), unit,
                   s.currency if unit == "money" else "", st["p10"], st["p50"], st["p90"], st["mean"], s.fx_to_reporting]
            fmts = [None] * 8 + [fmt] * 4 + [RATE]
            if unit == "money":
                rt = s.stat(m, reporting=True)
                row += [rt["p10"], rt["p50"], rt["p90"], rt["mean"]]
                fmts += [MONEY] * 4
            sh.put(row, fmts)
        p = s.summary.get("probability_npv_negative")
        sh.put([s.id, s.market, s.design, s.baseline, "probability_npv_negative", "Probability NPV < 0", "pct", "",
                None, p, None, p], [None] * 8 + [PCT] * 4)
    sh.widths[6] = min(sh.widths.get(6, 8), 34)
    sh.finish(freeze="F2", autofilter=_table_ref(1, sh.row - 1, len(head)))


def _ranking(ws: Worksheet, study: Study) -> None:
    sh = _Sheet(ws)
    cur = study.reporting_currency
    head = ["Rank", "Scenario", "Market", "Design", "Baseline", f"NPV P10 ({cur})", f"NPV P50 ({cur})", f"NPV P90 ({cur})",
            "P(NPV<0)", "ROI P50", "Payback month P50 (empty: never)", f"Incremental revenue, mean ({cur})",
            f"Incremental gross margin, mean ({cur})", f"Members' naive uplift, mean ({cur})", f"True lift, mean ({cur})",
            f"Self-selection, mean ({cur})", "True lift share of naive uplift"]
    head += [f"{label}, mean ({cur})" for _, label in S.COST_GROUPS] + [f"fees received, mean ({cur})",
                                                                        f"Incremental program cost, mean ({cur})",
                                                                        f"Net incremental margin P50 ({cur})"]
    sh.header(head)
    for r in study.ranking:
        s = study.scenario(r.scenario)
        naive = s.mean("member_naive_uplift_revenue", reporting=True)
        tl = s.mean("member_true_lift_revenue", reporting=True)
        row = [r.rank, s.id, s.market, s.design, s.baseline, r.npv_p10, r.npv_p50, r.npv_p90, r.probability_npv_negative,
               s.stat("roi")["p50"], s.stat("payback_month")["p50"], s.mean("incremental_revenue", reporting=True),
               s.mean("incremental_gross_margin", reporting=True), naive, tl,
               s.mean("member_self_selection_revenue", reporting=True), tl / naive if naive else None]
        row += [s.mean(m, reporting=True) for m, _ in S.COST_GROUPS]
        row += [-s.mean(S.FEE_INCOME, reporting=True), s.mean("incremental_program_cost", reporting=True),
                s.stat("incremental_net_margin", reporting=True)["p50"]]
        fmts = [None] * 5 + [MONEY] * 3 + [PCT, PCT, MONTHS] + [MONEY] * 5 + [PCT] + [MONEY] * (len(S.COST_GROUPS) + 3)
        sh.put(row, fmts)
    sh.finish(freeze="C2")


def _rollup(ws: Worksheet, study: Study) -> None:
    sh = _Sheet(ws)
    cur = study.reporting_currency
    head = ["Roll-up", "Market", "Scenario(s)", "Local currency", f"FX to {cur}", "Metric", f"P10 ({cur})", f"P50 ({cur})",
            f"P90 ({cur})", f"Mean ({cur})", "P(NPV<0)", "Replications", "Notes"]
    sh.header(head)
    rollups = [S.rollup(study)] + S.rollups_by_design(study)
    for r in rollups:
        for line in (*r.markets, r.total):
            for m in r.metrics:
                st = line.stat(m)
                sh.put([r.title, line.label, ", ".join(line.scenarios), line.currency, line.fx_to_reporting, S.metric_label(m).strip(),
                        st["p10"], st["p50"], st["p90"], st["mean"],
                        line.probability_npv_negative if m == "npv" else None, r.replications, "; ".join(r.notes)],
                       [None] * 4 + [RATE, None] + [MONEY] * 4 + [PCT, None, None])
    sh.widths[1] = min(sh.widths.get(1, 8), 40)
    sh.widths[3] = min(sh.widths.get(3, 8), 40)
    sh.finish(freeze="C2", autofilter=_table_ref(1, sh.row - 1, len(head)))


PNL_LOCAL = (
    ("revenue", "Revenue"), ("gross_margin", "Gross margin"), ("reward_cost", "Reward cost"),
    ("benefit_cost", "Tier benefit cost"), ("campaign_cost", "Campaign cost"), ("enrolment_cost", "Enrolment drive cost"),
    ("fixed_cost", "Running + amortised set-up"), ("setup_amortisation", "of which set-up amortisation"),
    ("setup_cash", "Set-up paid (cash view)"), ("member_cost", "Per-member cost"), ("fee_income", "Membership fees received"),
    ("fee_revenue", "Membership fees earned"), ("provision_closing", "Bonus-points provision"),
    ("program_cost", "Program cost (P&L)"), ("program_cash_cost", "Program cash cost"),
    ("horizon_obligation", "Obligation left at the horizon"),
)
PNL_REPORTING = (("revenue", "Revenue"), ("gross_margin", "Gross margin"), ("program_cost", "Program cost (P&L)"),
                 ("program_cash_cost", "Program cash cost"))


def _monthly_pnl(ws: Worksheet, study: Study) -> None:
    sh = _Sheet(ws)
    cur = study.reporting_currency
    head = ["Scenario", "Market", "Run", "Month", "Period", "Currency", f"FX to {cur}"]
    head += [f"{label} (local currency)" for _, label in PNL_LOCAL]
    head += ["Gross margin - program cost (local currency)", "Incremental cash flow (local currency)",
             "Cumulative incremental cash flow (local currency)"]
    head += [f"{label} ({cur})" for _, label in PNL_REPORTING]
    head += [f"Gross margin - program cost ({cur})", f"Incremental cash flow ({cur})", f"Cumulative incremental cash flow ({cur})"]
    sh.header(head)
    nmoney = len(head) - 7
    for s in study.ranked_scenarios:
        fx = s.fx_to_reporting
        for run in RUNS:
            d = s.rows(run)
            for rec in d.to_dict("records"):
                local = [rec.get(c, 0.0) for c, _ in PNL_LOCAL]
                net = rec["gross_margin"] - rec["program_cost"]
                diff = run == "difference"
                cf = rec.get("cash_flow") if diff else None
                cum = rec.get("cumulative_cash_flow") if diff else None
                rep = [rec.get(c, 0.0) * fx for c, _ in PNL_REPORTING]
                row = [s.id, s.market, run, rec["month"], rec["period"], s.currency, fx, *local, net, cf, cum, *rep,
                       net * fx, None if cf is None else cf * fx, None if cum is None else cum * fx]
                sh.put(row, [None] * 6 + [RATE] + [MONEY] * nmoney)
    sh.finish(freeze="F2", autofilter=_table_ref(1, sh.row - 1, len(head)))


POINTS_COLS = (
    ("points_opening", "Points opening"), ("points_issued", "Points issued"),
    ("points_issued_purchase", "of which for purchases"), ("points_issued_bonus", "of which bonuses"),
    ("points_issued_migration", "of which migration"), ("points_redeemed", "Points redeemed"),
    ("points_redeemed_rewards", "of which for rewards"), ("points_redeemed_migration", "of which converted at migration"),
    ("points_expired", "Points expired"), ("points_closing", "Points closing"),
)
LIABILITY_COLS = (
    ("liability_opening", "Liability opening"), ("liability_deferred", "Deferred (revenue allocated to points issued)"),
    ("liability_converted_in", "Converted in (migration)"), ("liability_converted_out", "Converted out (migration)"),
    ("liability_recognised_redemption", "Recognised on redemption"), ("liability_recognised_breakage", "Recognised as breakage"),
    ("liability_recognised", "Recognised, total"), ("liability_closing", "Liability closing"),
)


def _liability(ws: Worksheet, study: Study) -> None:
    sh = _Sheet(ws)
    cur = study.reporting_currency
    head = ["Scenario", "Market", "Run", "Month", "Period", "Currency", f"FX to {cur}"]
    head += [label for _, label in POINTS_COLS] + ["Points check: opening + issued - redeemed - expired - closing"]
    head += [f"{label} (local currency)" for _, label in LIABILITY_COLS]
    head += ["Liability check: opening + deferred + converted in - converted out - recognised - closing (local currency)"]
    head += [f"{label} ({cur})" for _, label in LIABILITY_COLS]
    head += ["Expected breakage (IFRS 15)", "Value per point (local currency)"]
    sh.header(head)
    for s in study.ranked_scenarios:
        fx = s.fx_to_reporting
        for run in ("design", "baseline"):
            d = s.rows(run)
            for rec in d.to_dict("records"):
                pts = [rec[c] for c, _ in POINTS_COLS]
                pcheck = rec["points_opening"] + rec["points_issued"] - rec["points_redeemed"] - rec["points_expired"] - rec["points_closing"]
                liab = [rec[c] for c, _ in LIABILITY_COLS]
                lcheck = (rec["liability_opening"] + rec["liability_deferred"] + rec["liability_converted_in"]
                          - rec["liability_converted_out"] - rec["liability_recognised"] - rec["liability_closing"])
                row = [s.id, s.market, run, rec["month"], rec["period"], s.currency, fx, *pts, pcheck, *liab, lcheck,
                       *[v * fx for v in liab], rec.get("expected_breakage"), rec.get("value_per_point")]
                fmts = ([None] * 6 + [RATE] + [COUNT] * (len(POINTS_COLS) + 1) + [MONEY] * (2 * len(LIABILITY_COLS) + 1)
                        + [PCT, "#,##0.0000"])
                sh.put(row, fmts)
    sh.finish(freeze="F2", autofilter=_table_ref(1, sh.row - 1, len(head)))


def _sensitivity(ws: Worksheet, study: Study) -> None:
    sh = _Sheet(ws)
    cur = study.reporting_currency
    first = sh.header(["Scenario", "Parameter", "Distribution", "Low", "High", "Local currency", "NPV at low (local currency)",
                       "NPV at base (local currency)", "NPV at high (local currency)", f"NPV at low ({cur})",
                       f"NPV at base ({cur})", f"NPV at high ({cur})", f"Swing ({cur})"])
    rows = 0
    for r in study.ranking:
        s = study.scenario(r.scenario)
        raw = {b.parameter: b for b in study.tornado.get(s.id, [])}
        for b in study.tornado_in_reporting(s.id):
            o = raw[b.parameter]
            local = o.currency is None or o.currency == s.currency
            k = 1.0 / s.fx_to_reporting if s.fx_to_reporting else None
            lv = (o.npv_low, o.npv_base, o.npv_high) if local else tuple(None if k is None else v * k for v in (b.npv_low, b.npv_base, b.npv_high))
            sh.put([s.id, b.parameter, o.distribution, b.low, b.high, s.currency, *lv, b.npv_low, b.npv_base, b.npv_high,
                    abs(b.npv_high - b.npv_low)], [None, None, None, NUMBER, NUMBER, None] + [MONEY] * 7)
            rows += 1
    if not rows:
        sh.put(["(this study has no tornado analysis)"])
    sh.skip()
    sh.title("Break-even values")
    sh.header(["Scenario", "Parameter", "Break-even value", "Meaning"])
    n = 0
    for r in study.ranking:
        for b in study.breakeven.get(r.scenario, []):
            sh.put([r.scenario, b.parameter, b.value, b.meaning], [None, None, NUMBER, None])
            n += 1
    if not n:
        sh.put(["(none)"])
    sh.skip()
    sh.title("Uncertain parameters")
    sh.header(["Parameter", "Distribution", "Source"])
    for u in study.uncertain_parameters:
        sh.put([u.name, u.distribution, u.source])
    if not study.uncertain_parameters:
        sh.put(["(none)"])
    sh.skip()
    sh.title("Parameter draws per replication (the value each uncertain parameter took)")
    sh.header(["Scenario", "Replication", "Parameter", "Value"])
    n = 0
    for s in study.ranked_scenarios:
        for rec in s.parameter_draws().to_dict("records"):
            sh.put([s.id, rec["replication"], rec["parameter"], rec["value"]], [None, None, None, NUMBER])
            n += 1
    if not n:
        sh.put(["(no parameter is uncertain in these runs)"])
    sh.finish(freeze=f"C{first + 1}")


# ----------------------------------------------------------------------------- writing
def build_workbook(study: Study) -> Workbook:
    wb = Workbook()
    wb.remove(wb.active)
    for name, fill in (("Assumptions", _assumptions), ("Summary", _summary), ("Ranking", _ranking), ("Roll-up", _rollup),
                       ("Monthly P&L", _monthly_pnl), ("Liability", _liability), ("Sensitivity", _sensitivity)):
        fill(wb.create_sheet(name), study)
    p = wb.properties
    p.creator = "loyalty-sim"
    p.lastModifiedBy = "loyalty-sim"
    p.title = study.name
    p.description = study.description or None
    p.created = FIXED_TIME
    p.modified = FIXED_TIME
    return wb


_MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")


def workbook_bytes(wb: Workbook) -> bytes:
    """The workbook's bytes, made deterministic: openpyxl stamps the save time into
    docProps/core.xml and the zip entries; both are replaced by fixed values."""
    raw = io.BytesIO()
    wb.save(raw)
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw.getvalue())) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = _MODIFIED.sub(rb"\g<1>" + stamp + rb"\g<2>", data)
            zi = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o600 << 16
            zout.writestr(zi, data)
    return out.getvalue()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and one rename
    (the file gets the usual permissions of the user's umask)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def write_workbook(study_dir: str | Path, out_path: str | Path) -> Path:
    """Write the study's Excel workbook to ``out_path`` (atomically) and return the path."""
    study = S.load_study(study_dir)
    return write_bytes_atomic(out_path, workbook_bytes(build_workbook(study)))
