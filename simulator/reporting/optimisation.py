"""The report section of a design search: the best design against the starting one, which
constraints bind, and the marginal value of relaxing each.

One source for every place that shows a search: the HTML report of ``loyalty-sim optimise``
(``report.html``), the study report's ``optimisation`` section and the workbook's
``Optimisation`` sheet read the same ``optimisation.json`` through :func:`load` and
:func:`comparison` / :func:`constraint_rows`, so the three never disagree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Rows of the comparison besides the variables: (column of a trials row, label, unit).
METRIC_ROWS = (
    ("objective", "objective", "money"),
    ("npv_p10", "NPV P10", "money"),
    ("npv_p50", "NPV P50", "money"),
    ("npv_p90", "NPV P90", "money"),
    ("program_cost_pct_sales_p50", "program cost / sales, P50", "pct"),
    ("probability_npv_negative", "P(NPV < 0)", "pct"),
)


@dataclass(frozen=True)
class Optimisation:
    """What a search wrote (``optimisation.json``) and its frontier plot."""

    summary: dict[str, Any]
    frontier_png: bytes | None
    dir: Path | None = None

    @property
    def currency(self) -> str:
        return str(self.summary.get("currency") or "")

    @property
    def search(self) -> dict[str, Any]:
        return self.summary.get("search") or {}

    @property
    def name(self) -> str:
        return str(self.search.get("name") or "search")

    @property
    def objective_label(self) -> str:
        return _label(self.search.get("objective") or {"metric": "npv", "statistic": "p50"})

    @property
    def start(self) -> dict[str, Any]:
        return self.summary.get("start") or {}

    @property
    def best(self) -> dict[str, Any] | None:
        return self.summary.get("best")

    @property
    def binding(self) -> list[dict[str, Any]]:
        return list(self.summary.get("binding") or [])


def load(opt_dir: str | Path) -> Optimisation:
    d = Path(opt_dir)
    summary = json.loads((d / "optimisation.json").read_text(encoding="utf-8"))
    png = (d / "frontier.png").read_bytes() if (d / "frontier.png").is_file() else None
    return Optimisation(summary, png, d)


def _label(stat: dict[str, Any]) -> str:
    """A statistic's column name (:meth:`simulator.specs.search.Statistic.label` of its dump)."""
    from simulator.specs.search import Statistic

    return Statistic.model_validate({k: v for k, v in stat.items() if k in ("metric", "statistic", "k", "alpha")}).label()


def num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def unit(metric: str) -> str:
    """money, pct or number: how a metric's values are shown."""
    from simulator.reporting.study import metric_unit

    if metric in ("probability_npv_negative", "program_cost_pct_sales"):
        return "pct"
    if metric == "reward_cost_per_member":
        return "money"
    return metric_unit(metric)


def constraints(opt: Optimisation) -> list[dict[str, Any]]:
    """The search's constraints with their labels and units."""
    return [{**c, "label": _label(c), "unit": unit(c["metric"])} for c in (opt.search.get("constraints") or [])]


def start_fails(opt: Optimisation) -> list[str]:
    """Constraints the starting design does not meet at the full count (with the search's z
    standard errors to spare, as every confirmed candidate is judged)."""
    return [c["label"] for c in constraints(opt) if (num(opt.start.get(f"slack:{c['label']}")) or 0.0) < 0]


def comparison(opt: Optimisation) -> list[tuple[str, str, Any, Any]]:
    """(label, unit, start, best) rows: every variable, then the objective, NPV percentiles,
    cost share, P(NPV < 0), then each constrained statistic."""
    best = opt.best or {}
    rows: list[tuple[str, str, Any, Any]] = []
    for k in opt.start:
        if k.startswith("var:"):
            rows.append((k[4:], "value", opt.start.get(k), best.get(k)))
    seen = set()
    for col, label, u in METRIC_ROWS:
        name = f"{label}: {opt.objective_label}" if col == "objective" else label
        u = unit(str((opt.search.get("objective") or {}).get("metric", "npv"))) if col == "objective" else u
        rows.append((name, u, opt.start.get(col), best.get(col)))
        seen.add(col)
    for c in constraints(opt):
        if c["label"] not in seen:
            rows.append((c["label"], c["unit"], opt.start.get(c["label"]), best.get(c["label"])))
            seen.add(c["label"])
    return rows


def constraint_rows(opt: Optimisation) -> list[dict[str, Any]]:
    """Per constraint: its bound, the start's and the best's value and slack, whether it is
    active at the best design (slack within the relaxation step), the objective gained by
    relaxing it and that gain per unit of bound, and how the gain was estimated."""
    best = opt.best or {}
    by_label = {b["constraint"]: b for b in opt.binding}
    out = []
    for c in constraints(opt):
        b = by_label.get(c["label"], {})
        slack = num(best.get(f"slack:{c['label']}"))
        step = num(b.get("relaxed_by"))
        out.append({
            "constraint": c["label"], "unit": c["unit"], "side": "max" if c.get("max") is not None else "min",
            "bound": c["max"] if c.get("max") is not None else c.get("min"),
            "start": num(opt.start.get(c["label"])), "start_slack": num(opt.start.get(f"slack:{c['label']}")),
            "best": num(best.get(c["label"])), "best_slack": slack,
            "active": None if slack is None or step is None else bool(slack <= step),
            "relaxed_by": step, "objective_gain": num(b.get("objective_gain")),
            "marginal_objective_per_unit": num(b.get("marginal_objective_per_unit")),
            "binding": bool(b.get("binding")), "method": str(b.get("method") or "tried candidates"),
        })
    return out


def verdict(opt: Optimisation) -> str:
    cur, lab = opt.currency, opt.objective_label
    st = opt.start
    fails = start_fails(opt)
    start_text = (f"The starting design gives {lab} {_money(st.get('objective'), cur)} and "
                  + ("meets every constraint." if not fails else
                     f"does NOT meet {len(fails)} constraint(s): {', '.join(fails)} (at the full count, with "
                     f"{_z(opt):g} standard errors to spare)."))
    if opt.best is None:
        return start_text + " No candidate met every constraint at the full count: there is no best design."
    b = opt.best
    gain = (num(b.get("objective")) or 0.0) - (num(st.get("objective")) or 0.0)
    s = opt.search
    return (f"{start_text} The best design found (trial {b.get('trial')}, confirmed on {s.get('agents', 0):,} agents x "
            f"{s.get('replications')} replications, the same seeds as the start) gives {lab} "
            f"{_money(b.get('objective'), cur)}, {_money(gain, cur, sign=True)} against the start.")


def _z(opt: Optimisation) -> float:
    return float((opt.search.get("racing") or {}).get("z", 0.0))


def _money(v: Any, cur: str, sign: bool = False) -> str:
    x = num(v)
    if x is None:
        return "n/a"
    return f"{x:+,.0f} {cur}" if sign else f"{x:,.0f} {cur}"


def cell_text(v: Any, unit: str) -> str:
    x = num(v)
    if x is None:
        return "n/a" if v is None else str(v)
    if unit == "pct":
        return f"{100 * x:.2f}%"
    if unit == "money":
        return f"{x:,.0f}"
    return f"{x:,.4g}"


METHOD_NOTE = (
    "Marginal value of a constraint: its bound relaxed by the step shown (10% of the bound, or of the range the "
    "candidates covered when the bound is 0), the best objective reachable minus the best under the bounds as "
    "written, per unit of bound. 'tried candidates' reads it off the race's candidates (no new run; it sees only "
    "what was tried, so it is 0 when no candidate lies in the relaxed range); 're-search' ran a short search of its own with "
    "that bound relaxed, on the same agents and seeds (docs/model.md, \"Design optimisation\"). A constraint is "
    "active when the best design's slack is within that step."
)


def section_html(opt: Optimisation, *, level: int = 2, section_id: str = "optimisation") -> str:
    """The section (HTML fragment, the study report's helpers and CSS classes)."""
    import base64

    from simulator.reporting.html import e, table

    h, h3 = f"h{level}", f"h{level + 1}"
    cur = opt.currency
    out = [f'<section id="{section_id}"><{h}>Design optimisation: {e(opt.name)}</{h}>', f"<p>{e(verdict(opt))}</p>"]
    rows = [[e(label), f'<td class=num>{e(cell_text(s, u))}</td>', f'<td class=num>{e(cell_text(b, u))}</td>']
            for label, u, s, b in comparison(opt)]
    out.append(f"<{h3}>Best design against the starting one</{h3}>")
    out.append(table(["", "Starting design", "Best design"], rows, num_from=9))
    out.append(f"<{h3}>Constraints</{h3}>")
    crow = []
    for r in constraint_rows(opt):
        u = r["unit"]
        crow.append([e(f"{r['constraint']} ({r['side']})"), f"<td class=num>{e(cell_text(r['bound'], u))}</td>",
                     f"<td class=num>{e(cell_text(r['start'], u))}</td>",
                     f"<td>{'meets' if (r['start_slack'] or 0) >= 0 else 'FAILS'}</td>",
                     f"<td class=num>{e(cell_text(r['best'], u))}</td>",
                     f"<td>{'yes' if r['active'] else 'no' if r['active'] is not None else 'n/a'}</td>",
                     f"<td class=num>{e(cell_text(r['relaxed_by'], u))}</td>",
                     f"<td class=num>{e(cell_text(r['objective_gain'], 'money'))}</td>",
                     f"<td class=num>{e(cell_text(r['marginal_objective_per_unit'], 'number'))}</td>",
                     f"<td>{'yes' if r['binding'] else 'no'}</td>", f"<td>{e(r['method'])}</td>"])
    if crow:
        out.append(table(["Constraint", "Bound", "Starting design", "Start meets it", "Best design", "Active at the best", "Relaxed by",
                          f"Objective gained ({cur})", f"Per unit of bound ({cur})", "Binds", "Method"], crow, num_from=9))
        out.append(f"<p class=note>{e(METHOD_NOTE)}</p>")
    else:
        out.append("<p>The search has no constraint.</p>")
    if opt.frontier_png:
        src = base64.b64encode(opt.frontier_png).decode()
        out.append(f"<{h3}>Efficient frontier</{h3}><figure><img alt='efficient frontier' src='data:image/png;base64,{src}'>"
                   "<figcaption>Every candidate of the race (grey: breaks a constraint), the feasible ones no other "
                   "beats on both axes joined as the frontier, the starting design as a star.</figcaption></figure>")
    out.append("</section>")
    return "\n".join(out)


def page_html(opt: Optimisation) -> str:
    """A standalone page holding the section (``report.html`` of ``loyalty-sim optimise``)."""
    from simulator.reporting.html import CSS, e

    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{e(opt.name)}: design optimisation</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + section_html(opt, level=1) + "\n</body>\n</html>\n")
