"""The study report: one self-contained HTML file.

Everything is inline (CSS in a ``<style>`` element, figures as base64 PNG ``data:`` URIs), so
the file opens offline and can be mailed as is; there is no script and no external
reference. The same study directory gives the same bytes: figures are rendered at a fixed
dpi without metadata (:func:`simulator.reporting.figures.png_bytes`), iteration follows the
study's order or sorted keys, there is no timestamp and no random id, and the footer names the
loyalty-sim version recorded in the runs' manifests rather than the time of writing.

The report opens with the verdict: one line per market and baseline, then the group plan
(:func:`simulator.reporting.study.verdict_lines`, the same lines the terminal prints). The ranking
gives each scenario's reason in two short sentences (:func:`reason`) and money in k/M with
:func:`simulator.reporting.study.short_money`; the paragraphs of figures behind it are in a
``<details>`` element, full figures in Scenario details. Every table sits in a
``div.table-wrap`` that scrolls sideways when the table is wider than the page, so the page
itself never does at 1280 px (tests/reporting/test_browser.py checks it in Chromium).

Sections (each an element with the given id): ``verdict``, ``ranking``, ``rollup``, ``cash-flow``,
``npv``, ``members-by-tier``, ``points-liability``, ``cost-breakdown``, ``margin-sources``,
``migration``, ``sensitivity``, ``optimisation`` (the study's design search, if it has one:
:mod:`simulator.reporting.optimisation`, the section ``loyalty-sim optimise`` writes in its own
report), ``scenarios``, ``assumptions``.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from simulator.reporting import figures as F
from simulator.reporting import study as S
from simulator.reporting.study import Rollup, ScenarioRun, Study

SECTIONS = (
    ("verdict", "Verdict"),
    ("ranking", "Designs ranked by market and baseline"),
    ("rollup", "Multi-market roll-up"),
    ("cash-flow", "Cumulative incremental cash flow"),
    ("npv", "NPV distributions"),
    ("members-by-tier", "Members by tier"),
    ("points-liability", "Points outstanding and liability"),
    ("cost-breakdown", "Where the cost goes"),
    ("margin-sources", "Where the margin comes from"),
    ("migration", "Segment migration of members"),
    ("sensitivity", "Sensitivity"),
    ("optimisation", "Design optimisation"),
    ("network", "Network"),
    ("scenarios", "Scenario details"),
    ("assumptions", "Assumptions and inputs"),
)

CSS = """
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;font-size:14px;color:#222;margin:0 auto;max-width:1100px;padding:0 24px 40px;line-height:1.45}
h1{font-size:26px;margin:28px 0 6px}h2{font-size:20px;border-bottom:2px solid #0072B2;padding-bottom:4px;margin-top:38px}
h3{font-size:16px;margin-top:26px}p.meta,.note{color:#555;font-size:13px}
nav ol{columns:2;font-size:13px}a{color:#0072B2}
.table-wrap{max-width:100%;overflow-x:auto;margin:10px 0 16px}
table{border-collapse:collapse;font-size:12.5px}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;vertical-align:top}
th{background:#f3f6f9;text-align:left;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}td.num{white-space:nowrap}
tr.total td{font-weight:700;border-top:2px solid #888}
td.neg{color:#b00000}
figure{margin:14px 0 22px}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:13px;color:#444;margin-top:6px;max-width:900px}
.reasons li{margin-bottom:8px}code,.hash{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:11.5px;overflow-wrap:anywhere}
details{margin:8px 0}summary{cursor:pointer;color:#0072B2}
footer{margin-top:40px;border-top:1px solid #ccc;padding-top:10px;color:#666;font-size:12px}
"""

CAPTIONS = {
    "cash-flow": "Read each line as the typical (P50) running total of extra gross margin minus extra program cash "
                 "cost since launch, less the obligation left at the horizon in the last month, in {cur}; the shaded "
                 "band holds the middle 80% of replications (P10 to P90), and the month from which a line stays above "
                 "zero is the payback month.",
    "npv": "Each dot is one replication's NPV in {cur}, the box spans P10 to P90 and the thick bar is the median: the "
           "further right of the red zero line and the narrower the box, the safer the design.",
    "members-by-tier": "Each panel stacks one design's members at month end by tier (mean over replications): the "
                       "height is total membership and the upper bands show how many members reach the higher tiers.",
    "points-liability": "Top: points members hold at month end; bottom: the IFRS 15 contract liability for them in "
                        "{cur}; solid lines are the design run and dashed lines the baseline program in the baseline "
                        "run, so the gap is the extra liability the design puts on the balance sheet.",
    "cost-breakdown": "Each bar splits the extra program cost over the horizon (design minus baseline, mean over "
                      "replications, {cur}) into its groups, the obligation left at the horizon (points still owed, "
                      "fees received for months after it) as its own; parts left of zero are savings against the "
                      "baseline or fees received, and the black diamond is the net cost.",
    "margin-sources": "Each bar is members' apparent extra spend compared with non-members; only the green part (what "
                      "the same customers spend more than in the baseline run, the true lift) is made by the program "
                      "and counted in the incremental margin, the grey part is self-selection of customers who spent "
                      "more anyway.",
    "migration": "Each row says where the design's members in a segment stand the next month; left with the design, "
                 "middle the same customers under the baseline, right the difference in percentage points (blue: more "
                 "customers make that move with the design, red: fewer).",
    "tornado": "Each parameter has two bars: the NPV in {cur} when it moves to its low (orange, upper bar) or high "
               "(blue, lower bar) value, the number at the bar's end, with the other uncertain parameters at their "
               "central value; the widest bars, at the top, are the assumptions to check first. The solid line is "
               "the base: {base}, {base_value}. It is not the headline NPV P50 ({headline}, dashed line), which is "
               "over the study's replications with every parameter drawn. The dotted red line is NPV = 0.",
}

DEFINITIONS = (
    ("incremental X", "X in the design run minus X in the baseline run, on the same customers with the same luck (common random numbers)."),
    ("incremental cash flow", "incremental gross margin minus incremental program cash cost (set-up when paid, rewards when redeemed, fees when received, net of VAT), less the incremental obligation left at the horizon in the last month."),
    ("obligation left at the horizon", "the expected cost of redeeming the points still outstanding at the horizon (net of expected breakage) plus membership fees received for months after it; charged in the last month, it enters NPV, ROI, payback and P(NPV < 0)."),
    ("NPV", "of the monthly incremental cash flow, obligation left at the horizon included, at the market's annual discount rate (stated in the ranking; drawn in each replication when the market gives a range), flows at month end; also shown at the rate -2 and +2 points and, when the playbook sets a tax rate, after tax."),
    ("ROI", "undiscounted sum of the incremental cash flow / (incremental program cash cost + incremental obligation left at the horizon): NPV's flows, so it counts the whole set-up even when the horizon is shorter than its amortisation, and the points still owed; none when the design costs no more than the baseline."),
    ("payback month", "first month from which the cumulative incremental cash flow stays non-negative, in whole months; \"never\" when it does not within the horizon, and a replication that never pays back counts as later than any month."),
    ("points liability (IFRS 15)", "points earned with a sale are a separate performance obligation: part of the sale is deferred at the standalone selling price of a point, the value its redemptions realise (face value of the rewards taken per point redeemed) times the probability it is redeemed, and recognised as points are redeemed."),
    ("bonus-points provision (IAS 37)", "points given without a sale (welcome, birthday, referral, campaign bonuses) are no revenue: the expected cost of redeeming them is a marketing expense when granted, held as a provision and re-measured every month."),
    ("tornado base", "NPV with every uncertain parameter at its central value, mean of the sensitivity replications with the study's seeds; not the headline NPV P50."),
    ("true lift", "members' revenue in the design run minus the same customers' revenue in the baseline run."),
    ("self-selection", "naive member uplift (members' spend minus what they would spend at the non-members' average) minus true lift."),
    ("P10 / P50 / P90", "percentiles over replications by one rule everywhere (report, workbook, summary.json, terminal): the replication nearest the percentile's rank, so each is a figure some replication produced and a payback percentile is a whole month; 80% of replications fall between P10 and P90."),
    ("roll-up total", "summed replication by replication across markets in the reporting currency, then percentiles of the totals."),
)


# ----------------------------------------------------------------------------- formatting
def e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def money(v: float | None) -> str:
    if v is None:
        return "n/a"
    return "0" if abs(v) < 0.5 else f"{v:,.0f}"


def pct(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{100 * v:.{digits}f}%"


def fmt(v: Any, unit: str) -> str:
    if v is None:
        return "never" if unit == "months" else "n/a"
    if unit == "pct":
        return pct(v)
    if unit == "months":
        # whole months (the percentile rule gives them; a fraction from an older run is rounded up)
        return f"month {math.ceil(v - 1e-9)}"
    if unit in ("money", "count", "points"):
        return money(v)
    return f"{v:,.4g}"


def _td(text: str, num: bool = False, value: float | None = None) -> str:
    cls = []
    if num:
        cls.append("num")
    if value is not None and value < 0:
        cls.append("neg")
    c = f' class="{" ".join(cls)}"' if cls else ""
    return f"<td{c}>{text}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], num_from: int = 1, row_classes: Sequence[str] | None = None) -> str:
    """An HTML table in a ``div.table-wrap`` (a table wider than the page scrolls inside it, the
    page never does); ``rows`` hold already-escaped cell HTML (``<td>`` added here unless a cell
    starts with ``<td``)."""
    head = "".join(f'<th{" class=num" if i >= num_from else ""}>{e(h)}</th>' for i, h in enumerate(headers))
    body = []
    for k, r in enumerate(rows):
        cls = f' class="{row_classes[k]}"' if row_classes and row_classes[k] else ""
        cells = "".join(c if c.startswith("<td") else _td(c, i >= num_from) for i, c in enumerate(r))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def mcell(v: float | None) -> str:
    return _td(money(v), True, v)


def scell(v: float | None) -> str:
    """A money cell in the short form (954k, 1.7M)."""
    return _td(S.short_money(v), True, v)


def figure(fig: Any, alt: str, caption: str) -> str:
    data = base64.b64encode(F.png_bytes(fig)).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{e(alt)}">'
            f"<figcaption>{e(caption)}</figcaption></figure>")


# ----------------------------------------------------------------------------- finance
def discount_rate(s: ScenarioRun) -> str:
    """The annual discount rate of a scenario's NPV: the P50 over replications, with its P10
    and P90 when the market gives a range (drawn in each replication)."""
    q = s.stat("discount_rate")
    if q["p50"] is None:
        return "n/a (the run does not record it)"
    if q["p10"] == q["p90"]:
        return pct(q["p50"])
    return f"{pct(q['p50'])} (P50; drawn from a range, P10 {pct(q['p10'])} to P90 {pct(q['p90'])})"


def p50_reporting(s: ScenarioRun, metric: str) -> float | None:
    """P50 of a money metric of a scenario in the reporting currency (converted here, so also
    for metrics :data:`simulator.reporting.study.METRIC_UNITS` does not list)."""
    v = s.stat(metric)["p50"]
    return None if v is None else v * s.fx_to_reporting


def breakeven_cells(b: S.BreakEven) -> tuple[str, str]:
    """(value, reason) of a break-even as the report shows it: the multiple with 2 decimals,
    or "none" and why when it has no meaning (no value, or a negative multiple)."""
    if b.value is not None and b.value >= 0:
        return f"{b.value:.2f}", b.meaning
    reason = b.meaning if b.value is None else "NPV is negative even with this parameter at zero"
    return "none", reason.removeprefix("none:").strip()


def _finance(study: Study) -> str:
    cur = study.reporting_currency
    rates = {s.market: discount_rate(s) for s in reversed(study.ranked_scenarios)}  # each market's best-ranked
    out = ["<h3>Discount rate, tax and the obligation at the horizon</h3>",
           "<p>Discount rate (annual; P50 of the rate the replications used): "
           + "; ".join(f"{e(m)} {e(rates[m])}" for m in study.markets if m in rates) + ".</p>"]
    taxed = any(s.stat("npv_after_tax")["p50"] is not None for s in study.ranked_scenarios)
    rows = []
    for s in study.ranked_scenarios:
        metrics = ["npv_rate_minus_2pt", "npv", "npv_rate_plus_2pt"] + (["npv_after_tax"] if taxed else [])
        rows.append([e(s.id), f"<td>{e(discount_rate(s))}</td>"]
                    + [scell(p50_reporting(s, m)) for m in metrics + ["incremental_horizon_obligation"]])
    head = ["Scenario", "Discount rate", f"NPV P50 at rate -2 pt ({cur})", f"NPV P50 ({cur})",
            f"NPV P50 at rate +2 pt ({cur})"] + ([f"NPV after tax P50 ({cur})"] if taxed else [])
    out.append(table(head + [f"Obligation left at the horizon P50 ({cur})"], rows, num_from=2))
    out.append("<p class=note>NPV at the discount rate 2 points lower (not below 0%) and higher, and after tax where "
               "the playbook sets a tax rate (n/a: none set). The obligation left at the horizon (points still owed, "
               "fees received for months after the horizon) is charged in the last month, in NPV, ROI and payback.</p>")
    return "\n".join(out)


# ----------------------------------------------------------------------------- reasons
def cost_shares(s: ScenarioRun) -> list[tuple[str, float]]:
    """(group, mean amount in the reporting currency) of the incremental cost, largest
    magnitude first; fees received as a negative amount."""
    items = [(label, s.mean(metric, reporting=True)) for metric, label in S.COST_GROUPS]
    items.append(("fees received", -s.mean(S.FEE_INCOME, reporting=True)))
    return sorted(items, key=lambda t: (-abs(t[1]), t[0]))


def reason(study: Study, s: ScenarioRun) -> str:
    """Why a scenario ranks where it does, in two short sentences a strategist can paste
    (escaped HTML): extra margin against extra cost and its largest item, then how much of
    members' extra spend the program makes."""
    cur = study.reporting_currency
    gm = s.mean("incremental_gross_margin", reporting=True)
    cost = s.mean("incremental_program_cost", reporting=True)
    tl, naive = s.mean("member_true_lift_revenue", reporting=True), s.mean("member_naive_uplift_revenue", reporting=True)
    margin = f"Extra gross margin of {S.short_money(gm, cur)}"
    if cost > 0:
        label, v = max(cost_shares(s), key=lambda kv: kv[1])
        first = (f"{margin} {'covers' if gm >= cost else 'does not cover'} the extra program cost of "
                 f"{S.short_money(cost, cur)} (largest item: {label}, {S.short_money(v, cur)}).")
    else:
        first = f"{margin}, and the design costs {S.short_money(-cost, cur)} less to run than the baseline."
    second = (f"{tl / naive:.0%} of members' extra spend is true lift made by the program, the rest self-selection."
              if naive > 0 else "Members spend no more than non-members.")
    return e(f"{first} {second}")


def reasons(study: Study, s: ScenarioRun) -> str:
    """Why a scenario ranks where it does, every figure behind it (escaped HTML)."""
    cur = study.reporting_currency

    def m(v: float | None) -> str:
        return S.short_money(v, cur)

    npv = s.stat("npv", reporting=True)
    gm = s.mean("incremental_gross_margin", reporting=True)
    rev = s.mean("incremental_revenue", reporting=True)
    tl = s.mean("member_true_lift_revenue", reporting=True)
    naive = s.mean("member_naive_uplift_revenue", reporting=True)
    ss = s.mean("member_self_selection_revenue", reporting=True)
    cost = s.mean("incremental_program_cost", reporting=True)
    roi = s.stat("roi")["p50"]
    pay = s.stat("payback_month")["p50"]
    pneg = s.summary.get("probability_npv_negative")
    parts = [f"NPV P50 {m(npv['p50'])} (P10 {S.short_money(npv['p10'])} to P90 {S.short_money(npv['p90'])}), "
             f"probability of a negative NPV {S.chance(pneg)}; ROI P50 {pct(roi)}; payback "
             f"{'never within the horizon' if pay is None else fmt(pay, 'months')} (P50)."]
    share = f"{tl / naive:.0%}" if naive else "n/a"
    parts.append(f"Margin (means over replications): incremental gross margin {m(gm)} on incremental revenue {m(rev)}. "
                 f"Members look {m(naive)} better than non-members, but only {m(tl)} ({share}) is true lift made by "
                 f"the program; {m(ss)} is self-selection and is not counted.")
    listed = [f"{label} {S.short_money(v)}" + (f" ({v / cost:.0%})" if cost and abs(cost) > 1e-9 else "")
              for label, v in cost_shares(s) if abs(v) >= 0.005 * max(abs(cost), 1.0)]
    parts.append(f"Cost: incremental program cost {m(cost)} (mean), of which "
                 + ("; ".join(listed) if listed else "nothing material")
                 + ". Negative amounts are savings against the baseline or fees received.")
    return " ".join(e(p) for p in parts)


# ----------------------------------------------------------------------------- sections
def _verdict(study: Study) -> str:
    items = [e(line) for line in S.verdict_lines(study)]
    plan = len(S.baseline_groups(study))  # the group plan's line, after one line per group
    items[plan] = f"<b>{items[plan]}</b>"
    return ('<section id="verdict"><h2>Verdict</h2><ul>' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"
            f"<p class=note>One line per market and baseline: NPV (P50, in {e(study.reporting_currency)}) is incremental "
            "to that baseline, so designs measured against different baselines are never ranked together. A market "
            "whose best design has NPV P50 below zero keeps what runs today. The group plan's NPV and probability of "
            "a loss are summed replication by replication over the markets' choices (a market that keeps adds 0).</p>"
            "</section>")


def _ranking(study: Study) -> str:
    cur = study.reporting_currency
    out = ['<section id="ranking"><h2>Designs ranked by market and baseline</h2>',
           f"<p>In each market, the scenarios measured against the same baseline, ranked by NPV P50 of the incremental "
           f"cash flow in {e(cur)} (k thousands, M millions, B billions; Scenario details and the Excel workbook give "
           f"full figures), each with why in two sentences. Incremental means design minus baseline on the same "
           f"customers.</p>"]
    for g in S.baseline_groups(study):
        rows = []
        for r, s in zip(g.ranking, g.runs):
            rows.append([str(r.rank), f"<td><b>{e(s.id)}</b><br><span class=note>{e(s.title)}</span></td>",
                         scell(r.npv_p10), scell(r.npv_p50), scell(r.npv_p90), S.chance(r.probability_npv_negative),
                         pct(s.stat("roi")["p50"]), fmt(s.stat("payback_month")["p50"], "months"),
                         scell(s.stat("incremental_net_margin", reporting=True)["p50"])])
        out.append(f"<h3>{e(S.market_words(g.market))}, against {e(S.baseline_words(g.baseline))}</h3>")
        out.append(table(["Rank", "Scenario", f"NPV P10 ({cur})", f"NPV P50 ({cur})", f"NPV P90 ({cur})", "P(NPV<0)",
                          "ROI P50", "Payback P50", f"Net incr. margin P50 ({cur})"], rows, num_from=2))
        out.append("<ul class=reasons>" + "".join(f"<li><b>{e(s.id)}</b>: {reason(study, s)}</li>" for s in g.runs) + "</ul>")
    out.append(_finance(study))
    out.append("<h3>Where the margin comes from</h3>")
    rows = []
    for s in study.ranked_scenarios:
        tl, ss = s.mean("member_true_lift_revenue", reporting=True), s.mean("member_self_selection_revenue", reporting=True)
        naive = s.mean("member_naive_uplift_revenue", reporting=True)
        rows.append([e(s.id), scell(s.mean("incremental_revenue", reporting=True)),
                     scell(s.mean("incremental_gross_margin", reporting=True)), scell(naive), scell(tl), scell(ss),
                     pct(tl / naive if naive else None, 0)])
    out.append(table(["Scenario", f"Incr. revenue ({cur})", f"Incr. gross margin ({cur})", f"Members' naive uplift ({cur})",
                      f"True lift ({cur})", f"Self-selection ({cur})", "True lift share"], rows))
    out.append("<p class=note>Means over replications. Only true lift reaches the incremental margin; "
               "self-selection is what members would have spent anyway.</p>")
    out.append("<h3>Where the cost goes</h3>")
    rows = []
    for s in study.ranked_scenarios:
        amounts = [s.mean(m, reporting=True) for m, _ in S.COST_GROUPS]
        amounts += [-s.mean(S.FEE_INCOME, reporting=True), s.mean("incremental_program_cost", reporting=True)]
        rows.append([e(s.id)] + [scell(v) for v in amounts])
    out.append(table(["Scenario"] + [f"{label} ({cur})" for _, label in S.COST_GROUPS] + [f"fees received ({cur})", f"Total ({cur})"], rows))
    out.append("<p class=note>Incremental cost over the horizon as NPV counts it (set-up when paid, the obligation left "
               "at the horizon as its own line), mean over replications; rewards can be negative when the design gives "
               "back less than the baseline program.</p>")
    out.append("<details><summary>Reasons in figures, scenario by scenario</summary><ol class=reasons>"
               + "".join(f"<li><b>{e(s.id)}</b>: {reasons(study, s)}</li>" for s in study.ranked_scenarios)
               + "</ol></details>")
    for n in study.notes:
        out.append(f"<p class=note>{e(n)}</p>")
    out.append("</section>")
    return "\n".join(out)


def _rollup_table(r: Rollup) -> str:
    cur = r.reporting_currency
    rows, classes = [], []
    for line in (*r.markets, r.total):
        npv = line.stat("npv")
        cells = [e(line.label), e(line.keep or ", ".join(line.scenarios)) if line.label != "Total" else "",
                 e(line.currency), "" if line.fx_to_reporting is None else f"{line.fx_to_reporting:g}",
                 scell(npv["p10"]), scell(npv["p50"]), scell(npv["p90"]), S.chance(line.probability_npv_negative)]
        for m in ("incremental_gross_margin", "incremental_program_cost", "incremental_net_margin", "liability_end"):
            cells.append(scell(line.stat(m)["p50"]))
        rows.append(cells)
        classes.append("total" if line.label == "Total" else "")
    head = ["Market", "Scenario", "Local currency", f"FX to {cur}", f"NPV P10 ({cur})", f"NPV P50 ({cur})",
            f"NPV P90 ({cur})", "P(NPV<0)", f"Incr. gross margin P50 ({cur})", f"Incr. program cost P50 ({cur})",
            f"Net incr. margin P50 ({cur})", f"Liability at end P50 ({cur})"]
    notes = "".join(f"<p class=note>{e(n)}</p>" for n in r.notes)
    return f"<h3>{e(r.title)}</h3>" + table(head, rows, num_from=3, row_classes=classes) + notes


def _rollup(study: Study) -> str:
    cur = study.reporting_currency
    out = ['<section id="rollup"><h2>Multi-market roll-up</h2>',
           f"<p>Each market's figures converted to {e(cur)} at its FX rate (reporting units per local unit). "
           f"The total is summed replication by replication across markets, then P10/P50/P90 are taken over the "
           f"totals (so the total's P50 is not the sum of the markets' P50s). The group plan takes each market's "
           f"verdict: its best design when it pays, else nothing (the market keeps what runs today and adds 0 in "
           f"every replication).</p>"]
    main = S.rollup(study)
    out.append(_rollup_table(main))
    shown = {tuple(line.scenarios for line in main.markets)}
    for r in S.rollups_by_design(study):
        key = tuple(line.scenarios for line in r.markets)
        if key in shown:
            out.append(f"<p class=note>{e(r.title)}: the same scenarios as above.</p>")
            continue
        shown.add(key)
        out.append(_rollup_table(r))
    out.append("</section>")
    return "\n".join(out)


def _figure_section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{e(title)}</h2>\n{body}\n</section>'


def _figures(study: Study) -> list[str]:
    cur = study.reporting_currency
    order = [s.id for s in study.ranked_scenarios]
    cap = {k: v.format(cur=cur) for k, v in CAPTIONS.items() if k != "tornado"}
    out = [
        _figure_section("cash-flow", "Cumulative incremental cash flow",
                        figure(F.cumulative_cash_flow(S.cash_flow_bands(study), cur, order), "cumulative incremental cash flow", cap["cash-flow"])),
        _figure_section("npv", "NPV distributions",
                        figure(F.npv_distribution(S.npv_samples(study), cur, order), "NPV distribution", cap["npv"])),
        _figure_section("members-by-tier", "Members by tier",
                        figure(F.members_by_tier(S.tier_members(study), order), "members by tier", cap["members-by-tier"])),
        _figure_section("points-liability", "Points outstanding and liability",
                        figure(F.points_and_liability(S.points_liability(study), cur, order), "points outstanding and liability", cap["points-liability"])),
        _figure_section("cost-breakdown", "Where the cost goes",
                        figure(F.cost_breakdown(S.cost_breakdown(study), cur, order), "cost breakdown", cap["cost-breakdown"])),
        _figure_section("margin-sources", "Where the margin comes from",
                        figure(F.margin_sources(S.margin_sources(study), cur, order), "true lift versus self-selection", cap["margin-sources"])),
    ]
    mig = []
    for s in study.ranked_scenarios:
        m = S.migration(s)
        if m is None:
            mig.append(f"<p class=note>{e(s.id)}: the run has no transition matrices.</p>")
            continue
        mig.append(f"<h3>{e(s.id)}</h3>" + figure(F.migration_heatmaps(*m, f"{s.id}: {s.title}"), f"segment migration {s.id}", cap["migration"]))
    out.append(_figure_section("migration", "Segment migration of members", "\n".join(mig)))
    return out


def _sensitivity(study: Study) -> str:
    cur = study.reporting_currency
    out = ['<section id="sensitivity"><h2>Sensitivity</h2>']
    n = study.sensitivity_replications()
    base = ("NPV with every uncertain parameter at its central value, mean of "
            + (f"{n} replication{'s' if n != 1 else ''}" if n else "the sensitivity replications")
            + " with the study's seeds" + ("" if study.seed is None else f" (seed {study.seed})"))
    any_tornado = False
    for s in study.ranked_scenarios:
        bars = S.tornado_frame(study, s.id)
        if bars.empty:
            continue
        any_tornado = True
        headline = s.stat("npv", reporting=True)["p50"]
        caption = CAPTIONS["tornado"].format(cur=cur, base=base, base_value=S.short_money(float(bars["npv_base"].iloc[0]), cur),
                                             headline=S.short_money(headline, cur))
        out.append(f"<h3>{e(s.id)}</h3>" + figure(F.tornado(bars, cur, s.id, headline), f"tornado {s.id}", caption))
        dist = {b.parameter: b.distribution for b in study.tornado.get(s.id, [])}
        rows = [[e(b.parameter), f"<td>{e(dist.get(b.parameter, ''))}</td>", F.param_value(b.low), F.param_value(b.high), scell(b.npv_low),
                 scell(b.npv_base), scell(b.npv_high), scell(abs(b.npv_high - b.npv_low))] for b in bars.itertuples(index=False)]
        out.append(table(["Parameter", "Distribution", "Low", "High", f"NPV at low ({cur})",
                          f"Base: all central ({cur})", f"NPV at high ({cur})", f"Swing ({cur})"], rows, num_from=2))
    if not any_tornado:
        out.append("<p>This study has no tornado analysis.</p>")
    be = [(s.id, b) for s in study.ranked_scenarios for b in study.breakeven.get(s.id, [])]
    if be:
        out.append("<h3>Break-even values</h3>")
        rows = []
        for sid, b in be:
            value, reason = breakeven_cells(b)
            rows.append([e(sid), e(b.parameter), value, f"<td>{e(reason)}</td>"])
        out.append(table(["Scenario", "Parameter", "Break-even value", "Meaning"], rows, num_from=2))
    if study.uncertain_parameters:
        out.append("<h3>Uncertain parameters</h3>")
        out.append(table(["Parameter", "Distribution", "Source"],
                         [[e(u.name), f"<td>{e(u.distribution)}</td>", f"<td><code>{e(u.source)}</code></td>"]
                          for u in study.uncertain_parameters], num_from=9))
    out.append("</section>")
    return "\n".join(out)


def _optimisation(study: Study) -> str:
    if study.optimisation is None:
        return ('<section id="optimisation"><h2>Design optimisation</h2><p>This study has no design search (a '
                "<code>search:</code> block in the study file runs one).</p></section>")
    from simulator.reporting.optimisation import section_html

    return section_html(study.optimisation)


def _pilot(ro: dict, currency: str) -> str:
    """A pilot read against matched control stores beside the true effect (simulator.pilot)."""
    est, bias = ro["estimate"], ro["bias"]
    lo, hi = ro["analyst_interval"]
    honest = (bias["lo"] is not None and bias["lo"] <= 0 <= bias["hi"])
    out = [f"<h4>Pilot readout</h4><p>The design runs in {len(ro['pairs'])} stores; each is read against a control "
           f"store matched on the {'months before launch' if ro['pre_months'] else 'baseline run'} (customers, revenue "
           f"per customer, enrolment multiplier; nearest neighbours without replacement), by a {e(ro['method'])}, over "
           f"the {ro['months']} months after launch. Estimated effect on revenue per customer-month: "
           f"<b>{est['mean']:+,.3f} {e(currency)}</b> (P10 {est['p10']:+,.3f}, P90 {est['p90']:+,.3f} over "
           f"{ro['replications']} replication(s); replication 0's 95% interval {lo:+,.3f} to {hi:+,.3f}, "
           + ("from a paired t-test over the matched pairs"
              + (f"; Welch's two-group interval {ro['welch_interval'][0]:+,.3f} to {ro['welch_interval'][1]:+,.3f}"
                 if ro.get("welch_interval") else "")
              if ro.get("test") == "paired" else
              "from Welch's t-test: the pilot holds over 40% of the stores, so its controls are not alike pairs")
           + "). "
           + f"True effect (design minus baseline on the pilot stores' customers): <b>{ro['true_effect']:+,.3f} "
           f"{e(currency)}</b>; bias {bias['mean']:+,.3f}"
           + (f" (95% {bias['lo']:+,.3f} to {bias['hi']:+,.3f})" if bias["lo"] is not None else "")
           + f"; the readout's interval holds the true effect in {pct(ro['coverage'])} of replications. "
           + ("The readout is honest here: its bias is zero within its interval." if honest else
              ("The readout's bias is not zero within its interval: a pilot read this way would mislead."
               if bias["lo"] is not None else "One replication: run more to judge the readout's bias."))
           + "</p>"]
    out.append(table(["Pilot store", "Matched control store"], [[e(p), e(c)] for p, c in ro["pairs"]]))
    return "\n".join(out)


def _network(study: Study) -> str:
    """Stores ranked by recruitment against the network's, leaders and laggards, and the
    program's incremental revenue by store (S.network_table), for each scenario whose market
    has a store network; for a pilot by store, its readout against matched control stores
    beside the true effect (S.pilot_readout)."""
    out = ['<section id="network"><h2>Network</h2>']
    tables = [(s, S.network_table(s)) for s in study.ranked_scenarios]
    tables = [(s, t) for s, t in tables if t is not None]
    if not tables:
        out.append("<p>No scenario's market has a store network (a <code>stores:</code> section in its market file).</p>")
    for s, t in tables:
        rate = t.attrs["network_rate"]
        k = min(S.NETWORK_ENDS, len(t) // 2)
        names = [f"{st}" + (f" ({lb})" if lb else "") for st, lb in zip(t["store"], t["label"])]
        out.append(f"<h3>{e(s.id)}</h3>")
        out.append(f"<p>Design run over the horizon: the network recruits {pct(rate)} of its customers "
                   f"(new members / mean customers). Leaders: {e(', '.join(names[:k]))}. "
                   f"Laggards: {e(', '.join(names[len(t) - k:][::-1]))}.</p>")
        rows = []
        for i, r in t.iterrows():
            rows.append([str(i + 1), e(names[i]), fmt(r["customers"], "count"), fmt(r["new_members"], "count"),
                         pct(r["recruitment_rate"]), f"{r['recruitment_index']:.2f}", fmt(r["members"], "count"),
                         pct(r["member_revenue_share"]), mcell(r["incremental_revenue"]),
                         f"{r['incremental_revenue_per_customer']:,.2f}"])
        out.append(table(["Rank", "Store", "Customers", "New members", "Recruitment rate", "Index (network = 1)",
                          "Members at the end", "Member revenue share", f"Incr. revenue ({s.currency})",
                          f"Incr. revenue per customer ({s.currency})"], rows, num_from=2))
        ro = S.pilot_readout(s)
        if ro is not None:
            out.append(_pilot(ro, s.currency))
    out.append("<p class=note>From each run's stores.parquet (means over replications): customers whose home store "
               "it is; the member revenue share in the last month; incremental = design minus baseline on the same "
               "customers.</p></section>")
    return "\n".join(out)


def _scenarios(study: Study) -> str:
    cur = study.reporting_currency
    out = ['<section id="scenarios"><h2>Scenario details</h2>']
    for s in study.ranked_scenarios:
        sm = s.summary
        out.append(f'<h3 id="scenario-{e(s.id)}">{e(s.id)}</h3>')
        facts = [("Playbook", s.playbook), ("Design", s.design), ("Baseline", s.baseline), ("Market", s.market),
                 ("Currency", f"{s.currency} (1 {s.currency} = {s.fx_to_reporting:g} {cur})"),
                 ("Discount rate", discount_rate(s)),
                 ("Horizon", f"{sm.get('horizon_months', 'n/a')} months from {sm.get('start', 'n/a')}"),
                 ("Simulation", f"{sm.get('agents', 'n/a'):,} agents x {s.n_replications} replications, seed {sm.get('seed', 'n/a')}"
                  if isinstance(sm.get("agents"), int) else f"{s.n_replications} replications"),
                 ("Scaling", sm.get("scaling", "")), ("Expected breakage (IFRS 15)", sm.get("expected_breakage", "")),
                 ("Run directory", s.dir.name)]
        out.append(table(["", ""], [[f"<td>{e(k)}</td>", f"<td>{e(v)}</td>"] for k, v in facts], num_from=9))
        rows = []
        for m in s.metric_names:
            unit = S.metric_unit(m)
            st = s.stat(m)
            cells = [e(S.metric_label(m))] + [_td(fmt(st[q], unit), True, st[q] if unit == "money" else None) for q in ("p10", "p50", "p90")]
            cells.append(mcell(s.stat(m, reporting=True)["p50"]) if unit == "money" else "")
            rows.append(cells)
        rows.append([e(S.metric_label("probability_npv_negative")), "", pct(sm.get("probability_npv_negative")), "", ""])
        out.append(table(["Metric", f"P10 ({s.currency})", f"P50 ({s.currency})", f"P90 ({s.currency})", f"P50 ({cur})"], rows))
        draws = s.parameter_draws()
        if not draws.empty:
            prow = []
            for name in dict.fromkeys(draws["parameter"]):
                q = S.quantiles(list(draws.loc[draws["parameter"] == name, "value"]))
                prow.append([e(name)] + [f"{q[k]:.4g}" for k in ("p10", "p50", "p90")])
            out.append("<p class=note>Uncertain parameters as drawn in this run's replications:</p>")
            out.append(table(["Parameter", "P10 of draws", "P50 of draws", "P90 of draws"], prow))
    out.append("<p class=note>Percentages and months have no currency. Payback: a replication that never pays back "
               "counts as later than any month; \"never\" means the percentile falls on such replications.</p>")
    out.append("</section>")
    return "\n".join(out)


def _assumptions(study: Study) -> str:
    out = ['<section id="assumptions"><h2>Assumptions and inputs</h2>',
           "<p>Every input file of every run with its SHA-256 as recorded in the run's manifest; "
           "<code>loyalty-sim reproduce</code> re-runs a run from them and checks every result file. "
           "The resolved value of every parameter, with the file and line it comes from, is in the Excel "
           "workbook's Assumptions sheet.</p>"]
    out.append("<h3>Definitions</h3>")
    out.append(table(["Term", "Meaning"], [[f"<td><b>{e(k)}</b></td>", f"<td>{e(v)}</td>"] for k, v in DEFINITIONS], num_from=9))
    for s in study.ranked_scenarios:
        man = s.manifest
        roles = S.input_roles(man)
        out.append(f"<h3>{e(s.id)}</h3>")
        out.append(table(["Role", "Input file", "SHA-256"],
                         [[e(roles.get(f, "")), f"<td><code>{e(f)}</code></td>", f"<td class=hash>{e(h)}</td>"]
                          for f, h in (man.get("inputs") or {}).items()], num_from=9))
        args = man.get("arguments") or {}
        env = man.get("environment") or {}
        kv = [(f"argument {k}", v) for k, v in args.items()] + [("loyalty-sim version", man.get("version"))]
        kv += [(f"environment {k}", v) for k, v in env.items()]
        kv.append(("FX design currency to local", (man.get("resolved") or {}).get("fx_design_to_local")))
        out.append(table(["Manifest", "Value"], [[e(k), f"<td>{e(f'{v:.6g}' if isinstance(v, float) else v)}</td>"]
                                                 for k, v in kv], num_from=9))
        outputs = man.get("outputs") or {}
        if outputs:
            out.append("<details><summary>Result files of the run (SHA-256)</summary>"
                       + table(["File", "SHA-256"], [[f"<td><code>{e(f)}</code></td>", f"<td class=hash>{e(h)}</td>"]
                                                     for f, h in outputs.items()], num_from=9) + "</details>")
    out.append("</section>")
    return "\n".join(out)


def render(study: Study) -> str:
    """The report's HTML text."""
    cur = study.reporting_currency
    reps = sorted({s.n_replications for s in study.scenarios})
    seeds = sorted({str(s.summary.get("seed")) for s in study.scenarios})
    head = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{e(study.name)}: loyalty program study</title>\n<style>{CSS}</style>\n</head>\n<body>")
    intro = [f"<header><h1>{e(study.name)}</h1>"]
    if study.description:
        intro.append(f"<p>{e(study.description)}</p>")
    intro.append(f"<p class=meta>{len(study.scenarios)} scenario(s) in {len(study.markets)} market(s) "
                 f"({e(', '.join(study.markets))}); money in {e(cur)} unless a table says otherwise; "
                 f"{e(', '.join(map(str, reps)))} replication(s) per scenario, seed {e(', '.join(seeds))}.</p></header>")
    nav = "<nav><ol>" + "".join(f'<li><a href="#{sid}">{e(t)}</a></li>' for sid, t in SECTIONS) + "</ol></nav>"
    body = [_ranking(study), _rollup(study), *_figures(study), _sensitivity(study), _optimisation(study), _network(study),
            _scenarios(study), _assumptions(study)]
    foot = (f"<footer>Made by loyalty-sim {e(study.version)} from study <code>{e(study.name)}</code> "
            f"(seed {e(', '.join(seeds))}). The same study directory gives this file byte for byte.</footer>")
    return "\n".join([head, *intro, _verdict(study), nav, *body, foot, "</body>\n</html>\n"])


def write_report(study_dir: str | Path, out_path: str | Path) -> Path:
    """Write the study's HTML report to ``out_path`` (atomically) and return the path."""
    study = S.load_study(study_dir)
    from simulator.reporting.workbook import write_bytes_atomic

    return write_bytes_atomic(out_path, render(study).encode("utf-8"))
