"""The study workbook for finance (Excel, written with openpyxl).

Sheets
------
``Assumptions``      the study, its scenarios and FX rates, every input file with its SHA-256,
                     each run's arguments and environment from its manifest, the uncertain
                     parameters, and every resolved parameter (scenario, file, file:line, field
                     path, value)
``Summary``          per scenario and metric: P10/P50/P90/mean in the local currency and in the
                     reporting currency
``Ranking``          scenarios ranked by NPV P50 in the reporting currency with the reasons:
                     margin sources (true lift vs self-selection) and cost groups
``Roll-up``          markets and group total in the reporting currency (totals summed replication
                     by replication, see :mod:`simulator.reporting.study`)
``P&L by year``      per scenario, run (design / baseline / difference) and fiscal year
                     (:mod:`simulator.finance.statements`, with the playbook's fiscal year start
                     and tax rate from the run's manifest): revenue, gross margin, each cost
                     group, provision movement, fees earned, program cost, operating result, the
                     obligation left at the horizon, result before tax, tax, result after tax
``IFRS 15 by year``  per scenario, run (design / baseline) and fiscal year: the contract
                     liability and bonus-points provision roll-forwards and IFRS 15 revenue
``Monthly P&L``      per scenario, run and month: revenue, gross margin, each cost group, fees,
                     provision movement, program cost, incremental cash flow; below the table,
                     each scenario's NPV by an Excel formula next to the simulation's
``Liability``        per scenario, run and month: the points roll-forward (opening, issued,
                     redeemed, expired, closing), the IFRS 15 liability roll-forward (opening,
                     deferred, converted in and out, recognised on redemption and breakage,
                     closing), the bonus-points provision roll-forward (opening, charged, used,
                     re-measured, closing), expected breakage, value and cost per point
``Sensitivity``      tornado bars, break-even values, uncertain parameters
``Optimisation``     the study's design search (:mod:`simulator.reporting.optimisation`, the
                     same figures as the report's section): the best design against the
                     starting one, each constraint with its bound, whether the start meets it,
                     whether it is active at the best design, and the objective gained by
                     relaxing it (marginal value per unit of bound)
``Network``          per scenario whose market has a store network, its stores ranked by
                     recruitment (:func:`simulator.reporting.study.network_table`): customers,
                     new members, recruitment rate and index against the network's, members
                     and member revenue share at the end, incremental revenue in total and per
                     customer; below, for a pilot by store, its readout against matched control
                     stores beside the true effect (:mod:`simulator.pilot`)

Formulas, so that finance can audit in Excel: derived figures (operating result, result before
and after tax, tax, IFRS 15 revenue, the incremental cash flow = gross margin - program cash
cost - obligation left at the horizon, its cumulative sum) are formulas of the row's cells;
every reconciliation is a ``... check`` formula that evaluates to zero (the roll-forwards,
program cost = cost groups + provision movement - fees earned, each year against its months
on the monthly sheets); the NPV formula is ``SUMPRODUCT(cash flow / (1 + r)^(month / 12))``
(:func:`simulator.finance.metrics.npv`). Figures in the reporting currency are values (local
value x FX rate).

Money columns name their currency in the header: "(local currency)" columns hold the
scenario's market currency, named in the row's ``Currency`` column, and the reporting
currency's columns say which; local and reporting amounts never share a column. Money cells
carry their currency in the number format (``#,##0 "USD"``), shares ``0.0%``. Monthly figures
are means over replications (the roll-forward identities hold for means since they are
linear).

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
from typing import Any, Callable, Iterator, Sequence

import pandas as pd
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from simulator.finance import metrics, statements
from simulator.reporting import study as S
from simulator.reporting.study import Study

#: Workbook created/modified time: fixed, so that the same study gives the same bytes.
FIXED_TIME = _dt.datetime(2000, 1, 1, 0, 0, 0)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

PCT = "0.0%"
COUNT = "#,##0"
MONTHS = "0"  # payback: whole months
NUMBER = "#,##0.0###"
RATE = "0.######"
DISCOUNT_RATE = "0.00%"

FORMATS = {"pct": PCT, "count": COUNT, "points": COUNT, "months": MONTHS, "number": NUMBER}


def money(currency: str, decimals: int = 0) -> str:
    """Number format of an amount in ``currency``: ``#,##0 "EUR"`` (``decimals`` after the point)."""
    return f'#,##0{"." + "0" * decimals if decimals else ""} "{currency}"'


def unit_format(unit: str, currency: str) -> str:
    """Number format of a summary metric's unit (:func:`simulator.reporting.study.metric_unit`)."""
    return money(currency) if unit == "money" else FORMATS.get(unit, NUMBER)

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


class Formula(str):
    """A cell formula (``=...``). Any other text is written as text, even when it starts with "="."""


class _Sheet:
    """Writes rows to a worksheet, remembers column widths."""

    def __init__(self, ws: Worksheet):
        self.ws = ws
        self.row = 1
        self.widths: dict[int, int] = {}

    def _note(self, col: int, value: Any) -> None:
        if isinstance(value, Formula):
            n = 18
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            n = len(f"{value:,.0f}") + 6  # room for a currency code
        else:
            n = len(str(value or ""))
        self.widths[col] = max(self.widths.get(col, 8), min(n + 1, 60))

    def title(self, text: str) -> None:
        c = self.ws.cell(self.row, 1, text)
        c.font = TITLE_FONT
        self.row += 1

    def header(self, names: Sequence[str], widen: bool = True) -> int:
        for j, name in enumerate(names, start=1):
            c = self.ws.cell(self.row, j, name)
            c.font, c.fill = HEADER_FONT, HEADER_FILL
            c.alignment = Alignment(wrap_text=True, vertical="top")
            if widen:
                self.widths[j] = max(self.widths.get(j, 8), min(max(len(w) for w in name.split()) + 2 if name else 8, 30),
                                     min(len(name) // 2 + 2, 22))
        self.row += 1
        return self.row - 1

    def put(self, values: Sequence[Any], formats: Sequence[str | None] | None = None) -> None:
        for j, value in enumerate(values, start=1):
            formula = isinstance(value, Formula)
            value = value if formula else _v(value)
            c = self.ws.cell(self.row, j, value)
            if isinstance(value, str) and not formula:
                c.data_type = "s"  # text, even when it starts with "="
            fmt = formats[j - 1] if formats is not None and j - 1 < len(formats) else None
            if fmt and (formula or isinstance(value, (int, float)) and not isinstance(value, bool)):
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
            fmt = unit_format(unit, s.currency)
            st = s.stat(m)
            row = [s.id, s.market, s.design, s.baseline, m, S.metric_label(m).strip(), unit,
                   s.currency if unit == "money" else "", st["p10"], st["p50"], st["p90"], st["mean"], s.fx_to_reporting]
            fmts = [None] * 8 + [fmt] * 4 + [RATE]
            if unit == "money":
                rt = s.stat(m, reporting=True)
                row += [rt["p10"], rt["p50"], rt["p90"], rt["mean"]]
                fmts += [money(cur)] * 4
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
    for g in S.baseline_groups(study):  # ranked within each market and baseline, never across
        for r, s in zip(g.ranking, g.runs):
            naive = s.mean("member_naive_uplift_revenue", reporting=True)
            tl = s.mean("member_true_lift_revenue", reporting=True)
            row = [r.rank, s.id, s.market, s.design, s.baseline, r.npv_p10, r.npv_p50, r.npv_p90, r.probability_npv_negative,
                   s.stat("roi")["p50"], s.stat("payback_month")["p50"], s.mean("incremental_revenue", reporting=True),
                   s.mean("incremental_gross_margin", reporting=True), naive, tl,
                   s.mean("member_self_selection_revenue", reporting=True), tl / naive if naive else None]
            row += [s.mean(m, reporting=True) for m, _ in S.COST_GROUPS]
            row += [-s.mean(S.FEE_INCOME, reporting=True), s.mean("incremental_program_cost", reporting=True),
                    s.stat("incremental_net_margin", reporting=True)["p50"]]
            fmts = [None] * 5 + [money(cur)] * 3 + [PCT, PCT, MONTHS] + [money(cur)] * 5 + [PCT] + [money(cur)] * (len(S.COST_GROUPS) + 3)
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
                sh.put([r.title, line.label, line.keep or ", ".join(line.scenarios), line.currency, line.fx_to_reporting, S.metric_label(m).strip(),
                        st["p10"], st["p50"], st["p90"], st["mean"],
                        line.probability_npv_negative if m == "npv" else None, r.replications, "; ".join(r.notes)],
                       [None] * 4 + [RATE, None] + [unit_format(S.metric_unit(m), cur)] * 4 + [PCT, None, None])
    sh.widths[1] = min(sh.widths.get(1, 8), 40)
    sh.widths[3] = min(sh.widths.get(3, 8), 40)
    sh.finish(freeze="C2", autofilter=_table_ref(1, sh.row - 1, len(head)))


# ----------------------------------------------------------------------------- tables with formulas
PNL_SHEET = "Monthly P&L"
LIABILITY_SHEET = "Liability"

#: Headers of the monthly and yearly columns (money columns add their currency).
LABELS = {
    "revenue": "Revenue", "gross_margin": "Gross margin", "reward_cost": "Reward cost", "benefit_cost": "Tier benefit cost",
    "campaign_cost": "Campaign cost", "enrolment_cost": "Enrolment drive cost", "fixed_cost": "Running + amortised set-up",
    "setup_amortisation": "of which set-up amortisation", "setup_cash": "Set-up paid (cash view)",
    "member_cost": "Per-member cost", "fee_income": "Membership fees received", "fee_revenue": "Membership fees earned",
    "provision_movement": "Bonus-points provision movement", "program_cost": "Program cost (P&L)",
    "program_cash_cost": "Program cash cost", "horizon_obligation": "Obligation left at the horizon",
    "horizon_charge": "Horizon charge: points earned with sales still to redeem",
    "operating_result": "Operating result: gross margin - program cost",
    "cash_flow": "Incremental cash flow", "cumulative_cash_flow": "Cumulative incremental cash flow",
    "result_before_tax": "Result before tax: operating result - horizon charge",
    "tax": "Tax: tax rate x result before tax (negative: a saving)", "result_after_tax": "Result after tax",
    "points_opening": "Points opening", "points_issued": "Points issued", "points_issued_purchase": "of which for purchases",
    "points_issued_bonus": "of which bonuses", "points_issued_migration": "of which migration",
    "points_redeemed": "Points redeemed", "points_redeemed_rewards": "of which for rewards",
    "points_redeemed_migration": "of which converted at migration", "points_expired": "Points expired",
    "points_closing": "Points closing",
    "liability_opening": "Liability opening", "liability_deferred": "Deferred (revenue allocated to points issued)",
    "liability_converted_in": "Converted in (migration)", "liability_converted_out": "Converted out (migration)",
    "liability_recognised_redemption": "Recognised on redemption", "liability_recognised_breakage": "Recognised as breakage",
    "liability_recognised": "Recognised, total", "liability_closing": "Liability closing",
    "provision_opening": "Bonus-points provision opening", "provision_charged": "Provision charged (bonus points granted)",
    "provision_used": "Provision used (bonus points redeemed)", "provision_remeasured": "Provision re-measured",
    "provision_closing": "Bonus-points provision closing",
    "net_sales": "Net sales", "ifrs15_revenue": "Revenue (IFRS 15): net sales - deferred + recognised + fees earned",
}

#: Formula columns: the row's cells combined, term by term (operator, then column key).
FORMULAS: dict[str, tuple[str, ...]] = {
    "operating_result": ("+gross_margin", "-program_cost"),
    "result_before_tax": ("+operating_result", "-horizon_charge"),
    "tax": ("+tax_rate", "*result_before_tax"),
    "result_after_tax": ("+result_before_tax", "-tax"),
    "cash_flow": ("+gross_margin", "-program_cash_cost", "-horizon_obligation"),
    "ifrs15_revenue": ("+net_sales", "-liability_deferred", "+liability_recognised", "+fee_revenue"),
    "points_check": ("+points_opening", "+points_issued", "-points_redeemed", "-points_expired", "-points_closing"),
    "liability_check": ("+liability_opening", "+liability_deferred", "+liability_converted_in", "-liability_converted_out",
                        "-liability_recognised_redemption", "-liability_recognised_breakage", "-liability_closing"),
    "provision_check": ("+provision_opening", "+provision_charged", "-provision_used", "+provision_remeasured",
                        "-provision_closing"),
    "program_cost_check": tuple(f"+{g}" for g in statements.COST_GROUPS) + ("+provision_movement", "-fee_revenue",
                                                                           "-program_cost"),
}

#: Reconciliation columns (zero when the figures agree): key -> (header, kind).
CHECKS = {
    "points_check": ("Points check: opening + issued - redeemed - expired - closing", "count"),
    "liability_check": ("Liability check: opening + deferred + converted in - converted out - recognised on redemption "
                        "- recognised as breakage - closing (local currency)", "local"),
    "provision_check": ("Provision check: opening + charged - used + re-measured - closing (local currency)", "local"),
    "program_cost_check": ("Program cost check: cost groups + provision movement - fees earned - program cost "
                           "(local currency)", "local"),
    "program_cost_months": (f"Program cost check: program cost - the sum of its months on {PNL_SHEET} (local currency)",
                            "local"),
    "closing_months": (f"Closing check: liability + provision closing - the same at the year's last month on "
                       f"{LIABILITY_SHEET} (local currency)", "local"),
}

MONTH_IDS = (("month", "Month", "text"), ("period", "Period", "text"))
YEAR_IDS = (("fiscal_year", "Fiscal year", "text"), ("first_period", "First month", "text"),
            ("last_period", "Last month", "text"), ("months", "Months", "count"), ("partial", "Partial year", "text"))
PNL_LOCAL = ("revenue", "gross_margin", "reward_cost", "benefit_cost", "campaign_cost", "enrolment_cost", "fixed_cost",
             "setup_amortisation", "setup_cash", "member_cost", "fee_income", "fee_revenue", "provision_movement",
             "program_cost", "program_cash_cost", "horizon_obligation")
POINTS = ("points_opening", "points_issued", "points_issued_purchase", "points_issued_bonus", "points_issued_migration",
          "points_redeemed", "points_redeemed_rewards", "points_redeemed_migration", "points_expired", "points_closing")
ROLL_FORWARDS = (*statements.LIABILITY_COLUMNS, "liability_check", *statements.PROVISION_COLUMNS, "provision_check")


class _Table:
    """The columns of a table sheet (key, header, kind): its header, each row's cells and
    number formats, and the column letters formulas refer to.

    A column whose key is in :data:`FORMULAS` is written as that formula of the row's cells
    (unless the row's value for it is None: left empty); a reporting column (key ``k@``) is the
    row's value of ``k`` times the FX rate; kinds ``local``, ``unit`` (per point) and
    ``reporting`` are money in the row's local and in the reporting currency."""

    def __init__(self, cols: Sequence[tuple[str, str, str]]):
        self.cols = list(cols)
        self.col = {k: get_column_letter(i) for i, (k, _, _) in enumerate(self.cols, start=1)}

    def formula(self, row: int, terms: Sequence[str]) -> Formula:
        return Formula("=" + "".join(f"{t[0]}{self.col[t[1:]]}{row}" for t in terms).lstrip("+"))

    def header(self, sh: _Sheet) -> int:
        return sh.header([head for _, head, _ in self.cols])

    def put(self, sh: _Sheet, values: dict[str, Any], fx: float, local: str, reporting: str,
            formulas: dict[str, Formula] | None = None) -> None:
        fmts = {"local": money(local), "unit": money(local, 4), "reporting": money(reporting), "rate": RATE,
                "count": COUNT, "pct": PCT}
        cells = []
        for key, _, kind in self.cols:
            if formulas and key in formulas:
                cells.append(formulas[key])
            elif kind == "reporting":
                v = values.get(key[:-1])
                cells.append(None if v is None else v * fx)
            elif key in FORMULAS and values.get(key, 0.0) is not None:
                cells.append(self.formula(sh.row, FORMULAS[key]))
            else:
                cells.append(values.get(key))
        sh.put(cells, [fmts.get(kind) for _, _, kind in self.cols])


def _ids(cur: str, *extra: tuple[str, str, str]) -> list[tuple[str, str, str]]:
    return [("scenario", "Scenario", "text"), ("market", "Market", "text"), ("run", "Run", "text"), *extra,
            ("currency", "Currency", "text"), ("fx", f"FX to {cur}", "rate")]


def _money(*keys: str, cur: str | None = None) -> list[tuple[str, str, str]]:
    """Money columns in the local currency (or, with ``cur``, the reporting currency); check
    columns with their own header."""
    if cur is not None:
        return [(f"{k}@", f"{LABELS[k]} ({cur})", "reporting") for k in keys]
    return [(k, *CHECKS[k]) if k in CHECKS else (k, f"{LABELS[k]} (local currency)", "local") for k in keys]


def _pnl_table(cur: str) -> _Table:
    return _Table(_ids(cur, *MONTH_IDS) + _money(*PNL_LOCAL, "program_cost_check", "operating_result", "cash_flow",
                                                  "cumulative_cash_flow")
                  + _money("revenue", "gross_margin", "program_cost", "program_cash_cost", "operating_result", "cash_flow",
                           "cumulative_cash_flow", cur=cur))


def _liability_table(cur: str) -> _Table:
    return _Table(_ids(cur, *MONTH_IDS) + [(k, LABELS[k], "count") for k in POINTS] + _money("points_check", *ROLL_FORWARDS)
                  + _money(*statements.LIABILITY_COLUMNS, *statements.PROVISION_COLUMNS, cur=cur)
                  + [("expected_breakage", "Expected breakage (IFRS 15)", "pct"),
                     ("value_per_point", "Value per point (local currency)", "unit"),
                     ("cost_per_point", "Cost per point redeemed, net of VAT (local currency)", "unit")])


def _pnl_year_table(cur: str) -> _Table:
    return _Table(_ids(cur, *YEAR_IDS, ("tax_rate", "Tax rate", "pct"))
                  + _money(*statements.PNL_COLUMNS, *statements.TAX_COLUMNS, "program_cost_check", "program_cost_months")
                  + _money("revenue", "gross_margin", "program_cost", "operating_result", "result_before_tax", "tax",
                           "result_after_tax", cur=cur))


def _ifrs15_year_table(cur: str) -> _Table:
    return _Table(_ids(cur, *YEAR_IDS) + _money(*ROLL_FORWARDS, *statements.REVENUE_COLUMNS, "closing_months")
                  + _money("liability_closing", "provision_closing", "ifrs15_revenue", cur=cur))


def _runs(study: Study, runs: Sequence[str]) -> Iterator[tuple[S.ScenarioRun, str, pd.DataFrame, int]]:
    """(scenario, run, its monthly rows, the sheet row of its first month) in the order the
    monthly sheets list them (one header row, then each scenario's runs)."""
    row = 2
    for s in study.ranked_scenarios:
        for run in runs:
            d = s.rows(run)
            yield s, run, d, row
            row += len(d)


def _base(s: S.ScenarioRun, run: str) -> dict[str, Any]:
    return {"scenario": s.id, "market": s.market, "run": run, "currency": s.currency, "fx": s.fx_to_reporting}


def _accounting(s: S.ScenarioRun) -> tuple[int, float | None]:
    """The playbook's fiscal year start and tax rate (from the run's manifest; 1 and none when
    it does not say)."""
    acc = ((s.manifest.get("resolved") or {}).get("playbook") or {}).get("accounting") or {}
    return int(acc.get("fiscal_year_start") or 1), acc.get("tax_rate")


def _monthly_pnl(ws: Worksheet, study: Study) -> None:
    sh = _Sheet(ws)
    cur = study.reporting_currency
    t = _pnl_table(cur)
    t.header(sh)
    flows = []
    cf = t.col["cash_flow"]
    for s, run, d, first in _runs(study, RUNS):
        for rec in d.to_dict("records"):
            rec["provision_movement"] = rec["provision_closing"] - rec["provision_opening"]
            rec["operating_result"] = rec["gross_margin"] - rec["program_cost"]
            cum = {}
            if run == "difference":  # the cash flow: incremental only
                cum = {"cumulative_cash_flow": Formula(f"=SUM({cf}${first}:{cf}{sh.row})")}
            else:
                rec["cash_flow"] = rec["cumulative_cash_flow"] = None
            t.put(sh, rec | _base(s, run), s.fx_to_reporting, s.currency, cur, cum)
        if run == "difference":
            flows.append((s, d, first))
    last = sh.row - 1
    sh.skip()
    _npv_check(sh, t, flows)
    sh.finish(freeze="F2", autofilter=_table_ref(1, last, len(t.cols)))


def _npv_check(sh: _Sheet, t: _Table, flows: Sequence[tuple[S.ScenarioRun, pd.DataFrame, int]]) -> None:
    """Per scenario, the NPV of the monthly incremental cash flows above by an Excel formula
    (:func:`simulator.finance.metrics.npv`: month t discounted by (1 + r)^(t / 12)) next to
    the simulation's."""
    sh.title("NPV of the incremental cash flow above: Excel formula against the simulation "
             "(monthly flows discounted at (1 + annual rate)^(month / 12))")
    sh.header(["Scenario", "Market", "Currency", "Annual discount rate (P50 of the replications)",
               "NPV by formula (local currency)", "NPV of the mean monthly cash flow, simulation (local currency)",
               "Formula - simulation (local currency)", "Mean NPV over replications (local currency)", "Note"], widen=False)
    cf, month = t.col["cash_flow"], t.col["month"]
    for s, d, a in flows:
        r, b = sh.row, a + len(d) - 1
        rate = s.stat("discount_rate")["p50"]
        if rate is None:
            note = "no discount rate in this run's summary"
        elif len({*s.values("discount_rate")}) > 1:
            note = ("the discount rate is uncertain: the mean NPV discounts each replication at its own rate, the "
                    "formula the mean flow at the P50 rate")
        else:
            note = ""
        npv = Formula(f"=SUMPRODUCT({cf}{a}:{cf}{b}/(1+D{r})^({month}{a}:{month}{b}/12))")
        simulated = None if rate is None else metrics.npv(d["cash_flow"].to_numpy(dtype=float), rate)
        sh.put([s.id, s.market, s.currency, rate, npv, simulated, Formula(f"=E{r}-F{r}"), s.stat("npv")["mean"], note],
               [None] * 3 + [DISCOUNT_RATE] + [money(s.currency)] * 4)


def _liability(ws: Worksheet, study: Study) -> None:
    sh = _Sheet(ws)
    cur = study.reporting_currency
    t = _liability_table(cur)
    t.header(sh)
    for s, run, d, _ in _runs(study, ("design", "baseline")):
        for rec in d.to_dict("records"):
            t.put(sh, rec | _base(s, run), s.fx_to_reporting, s.currency, cur)
    sh.finish(freeze="F2", autofilter=_table_ref(1, sh.row - 1, len(t.cols)))


def _by_year(ws: Worksheet, study: Study, t: _Table, runs: Sequence[str],
             statement: Callable[[pd.DataFrame, int, float | None], pd.DataFrame],
             check: Callable[[int, int, int], dict[str, Formula]]) -> None:
    """A statement by fiscal year of each scenario's runs; ``check(row, first, last)`` the
    formula checking the year against its months' rows (first to last) on the monthly sheet."""
    sh = _Sheet(ws)
    cur = study.reporting_currency
    t.header(sh)
    for s, run, d, first in _runs(study, runs):
        start, tax = _accounting(s)
        at = {p: first + i for i, p in enumerate(d["period"])}
        for rec in statement(d, start, tax).to_dict("records"):
            rec["partial"] = "yes" if rec["partial"] else "no"
            values = {"tax_rate": tax, "tax": None, "result_after_tax": None} | rec | _base(s, run)
            t.put(sh, values, s.fx_to_reporting, s.currency, cur, check(sh.row, at[rec["first_period"]], at[rec["last_period"]]))
    sh.finish(freeze="E2", autofilter=_table_ref(1, sh.row - 1, len(t.cols)))


def _pnl_by_year(ws: Worksheet, study: Study) -> None:
    t = _pnl_year_table(study.reporting_currency)
    pc, m = t.col["program_cost"], _pnl_table(study.reporting_currency).col["program_cost"]
    _by_year(ws, study, t, RUNS, lambda d, start, tax: statements.pnl_by_year(d, start, tax),
             lambda r, a, b: {"program_cost_months": Formula(f"={pc}{r}-SUM('{PNL_SHEET}'!{m}{a}:{m}{b})")})


def _ifrs15_by_year(ws: Worksheet, study: Study) -> None:
    t = _ifrs15_year_table(study.reporting_currency)
    m = _liability_table(study.reporting_currency).col
    lc, pc, lm, pm = t.col["liability_closing"], t.col["provision_closing"], m["liability_closing"], m["provision_closing"]
    _by_year(ws, study, t, ("design", "baseline"), lambda d, start, tax: statements.ifrs15_by_year(d, start),
             lambda r, a, b: {"closing_months": Formula(f"={lc}{r}+{pc}{r}-'{LIABILITY_SHEET}'!{lm}{b}"
                                                         f"-'{LIABILITY_SHEET}'!{pm}{b}")})


def _sensitivity(ws: Worksheet, study: Study) -> None:
    sh = _Sheet(ws)
    cur = study.reporting_currency
    base = "NPV at base: every parameter central, mean of the sensitivity replications, not the headline P50"
    first = sh.header(["Scenario", "Parameter", "Distribution", "Low", "High", "Local currency", "NPV at low (local currency)",
                       f"{base} (local currency)", "NPV at high (local currency)", f"NPV at low ({cur})",
                       f"{base} ({cur})", f"NPV at high ({cur})", f"Swing ({cur})"])
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
                    abs(b.npv_high - b.npv_low)], [None, None, None, NUMBER, NUMBER, None] + [money(s.currency)] * 3 + [money(cur)] * 4)
            rows += 1
    if not rows:
        sh.put(["(this study has no tornado analysis)"])
    sh.skip()
    sh.title("Break-even values")
    sh.header(["Scenario", "Parameter", "Break-even value", "Meaning"])
    n = 0
    for r in study.ranking:
        for b in study.breakeven.get(r.scenario, []):
            meaningless = b.value is None or b.value < 0  # e.g. a negative multiple of reward cost
            sh.put([r.scenario, b.parameter, "none" if meaningless else b.value, b.meaning],
                   [None, None, None if meaningless else "0.00", None])
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


def _optimisation(ws: Worksheet, study: Study) -> None:
    from simulator.reporting import optimisation as O

    sh = _Sheet(ws)
    opt = study.optimisation
    if opt is None:
        sh.put(["(this study has no design search: a search: block in the study file runs one)"])
        sh.finish(freeze="A2")
        return
    cur = opt.currency
    fmt = {"money": money(cur), "pct": "0.00%", "number": NUMBER, "value": NUMBER}
    sh.title(f"Design optimisation: {opt.name}")
    sh.put([O.verdict(opt)])
    sh.skip()
    first = sh.header(["Quantity", "Unit", "Currency", "Starting design (local currency)", "Best design (local currency)"])
    for label, unit, start, best in O.comparison(opt):
        f = fmt.get(unit)
        sh.put([label, unit, cur, O.num(start) if O.num(start) is not None else start,
                O.num(best) if O.num(best) is not None else best], [None, None, None, f, f])
    sh.skip()
    sh.title("Constraints")
    sh.header(["Constraint", "Side", "Bound", "Starting design", "Start meets it", "Best design", "Active at the best",
               "Relaxed by", f"Objective gained ({cur})", f"Objective per unit of bound ({cur})", "Binds", "Method"])
    rows = O.constraint_rows(opt)
    for r in rows:
        f = fmt.get(r["unit"])
        sh.put([r["constraint"], r["side"], r["bound"], r["start"], "yes" if (r["start_slack"] or 0) >= 0 else "no",
                r["best"], "n/a" if r["active"] is None else ("yes" if r["active"] else "no"), r["relaxed_by"],
                r["objective_gain"], r["marginal_objective_per_unit"], "yes" if r["binding"] else "no", r["method"]],
               [None, None, f, f, None, f, None, f, money(cur), NUMBER, None, None])
    if not rows:
        sh.put(["(the search has no constraint)"])
    sh.skip()
    sh.put([O.METHOD_NOTE])
    sh.finish(freeze=f"B{first + 1}")


def _network(ws: Worksheet, study: Study) -> None:
    sh = _Sheet(ws)
    sh.header(["Scenario", "Market", "Currency", "Rank", "Store", "Label", "Customers", "New members", "Recruitment rate",
               "Index (network = 1)", "Members at the end", "Member revenue share",
               "Incremental revenue (local currency)", "Incremental revenue per customer (local currency)"])
    for s in study.ranked_scenarios:
        t = S.network_table(s)
        if t is None:
            continue
        for i, r in t.iterrows():
            sh.put([s.id, s.market, s.currency, i + 1, r["store"], r["label"], r["customers"], r["new_members"],
                    r["recruitment_rate"], r["recruitment_index"], r["members"], r["member_revenue_share"],
                    r["incremental_revenue"], r["incremental_revenue_per_customer"]],
                   [None] * 6 + [COUNT, COUNT, PCT, "0.00", COUNT, PCT, money(s.currency), money(s.currency, 2)])
    pilots = [(s, S.pilot_readout(s)) for s in study.ranked_scenarios]
    for s, ro in [(s, ro) for s, ro in pilots if ro is not None]:
        sh.skip()
        sh.put([s.id, s.market, s.currency, "Pilot readout", ro["method"]])
        est, bias = ro["estimate"], ro["bias"]
        for label, value in (("Estimated effect on revenue per customer-month (mean)", est["mean"]),
                             ("Estimated effect P10", est["p10"]), ("Estimated effect P90", est["p90"]),
                             ("True effect (design - baseline on the pilot stores)", ro["true_effect"]),
                             ("Bias (mean)", bias["mean"]), ("Bias 95% low", bias["lo"]), ("Bias 95% high", bias["hi"])):
            sh.put([s.id, s.market, s.currency, label, value], [None] * 4 + [money(s.currency, 2)])
        sh.put([s.id, s.market, s.currency, "Interval holds the true effect (share of replications)", ro["coverage"]],
               [None] * 4 + [PCT])
        for p, c in ro["pairs"]:
            sh.put([s.id, s.market, s.currency, "Pilot store ~ matched control store", f"{p} ~ {c}"])
    sh.finish(freeze="F2")


# ----------------------------------------------------------------------------- writing
#: The sheets, in order (each fills itself; the yearly sheets' checks refer to the monthly
#: sheets' rows, laid out by :func:`_runs`).
SHEETS = (("Assumptions", _assumptions), ("Summary", _summary), ("Ranking", _ranking), ("Roll-up", _rollup),
          ("P&L by year", _pnl_by_year), ("IFRS 15 by year", _ifrs15_by_year), (PNL_SHEET, _monthly_pnl),
          (LIABILITY_SHEET, _liability), ("Sensitivity", _sensitivity),
          ("Optimisation", _optimisation), ("Network", _network))


def build_workbook(study: Study) -> Workbook:
    wb = Workbook()
    wb.remove(wb.active)
    for name, fill in SHEETS:
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
