"""``report.html`` of ``estimate-response``: one self-contained page (the plot inlined).

The event-study plot with its intervals, the lift by month since joining, the balance of
joiners and comparison customers before joining, what was measured from the balances, the
engine's self_selection mapped from the joiners' purchases before joining (and the simulated
curve behind it), the campaign lifts of contacted against control customers, what was
written into the market, and what could not be estimated and why.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

__all__ = ["report_html"]


def _f(x, digits: int = 3) -> str:
    if x is None:
        return ""
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) >= 1):
        return f"{int(x):,}"
    try:
        return f"{float(x):.{digits}f}"
    except (TypeError, ValueError):
        return html.escape(str(x))


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_f(r.get(c)) if not isinstance(r.get(c), str) else html.escape(r[c])}</td>"
                                    for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _campaigns(camp: dict | None, plot: Path | None) -> list[str]:
    """The campaign lifts: a table per campaign, the pooled lift, the plot."""
    parts = ["<h2>Campaign lifts: contacted against control customers</h2>"]
    if not camp:
        parts.append("<p>Not estimated (see below).</p>")
        return parts
    parts.append(f"<p>From {html.escape(camp['contacts'])}: {html.escape(camp['method'])}.</p>")
    if plot is not None and Path(plot).is_file():
        png = base64.b64encode(Path(plot).read_bytes()).decode("ascii")
        parts.append(f"<img alt='campaign lifts' src='data:image/png;base64,{png}' style='max-width:100%'>")
    rows = []
    for r in camp["campaigns"]:
        rows.append({"campaign": r["campaign"], "months": ", ".join(r["months"]),
                     "contacted": r["contacted_customers"], "control": r["control_customers"],
                     "rate contacted": r.get("rate_contacted"), "rate control": r.get("rate_control"),
                     "lift": r.get("estimate"), "lo": r.get("lo"), "hi": r.get("hi"),
                     "note": r.get("not_estimated", "own lift in the playbook: not pooled"
                                   if r.get("own_lift_in_playbook") else "")})
    p = camp["pooled"]
    if p:
        rows.append({"campaign": "pooled", "months": ", ".join(p["campaigns"]), "contacted": None, "control": None,
                     "lift": p["estimate"], "lo": p["lo"], "hi": p["hi"],
                     "note": f"{p['customers']:,} customers, {p['customer_months']:,} customer-months; written as "
                             "campaign_lift"})
    parts.append(_table(rows, ["campaign", "months", "contacted", "control", "rate contacted", "rate control", "lift",
                               "lo", "hi", "note"]))
    if not p:
        parts.append(f"<p>No pooled lift: {html.escape(camp['why_not_pooled'])}.</p>")
    return parts


def report_html(result: dict, plot: Path, campaign_plot: Path | None = None) -> str:
    """The page for ``result`` (the dict written to estimates.json), the event-study plot's PNG
    and the campaign lifts' (with ``--contacts``)."""
    png = base64.b64encode(Path(plot).read_bytes()).decode("ascii")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Measured program response</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}</style></head><body>",
        "<h1>Measured program response</h1>",
        f"<p>{html.escape(result['source'])}. Months {html.escape(result['months'][0])} to "
        f"{html.escape(result['months'][1])}.</p>",
        "<h2>Lift after joining, by month since joining</h2>",
        f"<img alt='event study' src='data:image/png;base64,{png}' style='max-width:100%'>",
    ]
    for name, e in result["estimates"].items():
        m, r = e["mean_lift_after_joining"], e["before_joining"]["ratio"]
        parts.append(f"<h3>{html.escape(name)}</h3><p>Mean lift over months {html.escape(m['months'])}: "
                     f"<b>{_f(m['estimate'])}</b> a customer-month ({e['level']:.0%} interval {_f(m['lo'])} to "
                     f"{_f(m['hi'])}); {e['cohorts']} joining cohorts. The naive member comparison says "
                     f"{_f(e['naive_member_uplift'])}. Before joining, joiners' {html.escape(name)} was "
                     f"{_f(r['estimate'], 2)} times the comparison customers' ({_f(r['lo'], 2)} to {_f(r['hi'], 2)}): "
                     "self-selection, the part of the naive uplift the program did not cause.</p>")
        parts.append(_table(e["by_month_since_joining"], ["event", "att", "lo", "hi", "joiners"]))
    parts.append("<h2>Before joining: joiners against the comparison customers</h2>")
    bal = result.get("balance_before_joining") or []
    parts.append(_table(bal, ["measure", "joiners", "controls_all", "controls_reweighted"]) if bal else "<p>none</p>")
    lap = result.get("lapses")
    parts.append("<h2>Lapses</h2>")
    if lap:
        c, r = lap["change_per_member_month"], lap["relative_change"]
        rel = (f" ({_f(100 * r['estimate'], 1)}% of the {_f(lap['counterfactual_per_member_month'], 4)} they would "
               f"have had; {_f(100 * r['lo'], 1)}% to {_f(100 * r['hi'], 1)}%)") if r else ""
        parts.append(f"<p>A lapse: {html.escape(lap['definition'])}. {html.escape(lap['method'])}. Change after joining, "
                     f"months {html.escape(lap['months'])}: <b>{_f(c['estimate'], 4)}</b> lapses a member-month "
                     f"({lap['level']:.0%} interval {_f(c['lo'], 4)} to {_f(c['hi'], 4)}){rel}.</p>")
    else:
        parts.append("<p>No cohort with 12 months of history and 6 months of log after joining.</p>")
    rew = result.get("reward_effects")
    parts.append("<h2>From the balances: goal gradient and rewarded behaviour</h2>")
    if rew:
        a, full = rew["rewarded_behaviour_at_threshold"], rew["rewarded_behaviour_all_member_months"]
        mapped = rew.get("goal_gradient_mapping")
        rows = ([{"field": "goal_gradient", "from": "all member months, mapped through the engine (written)",
                  **rew["goal_gradient"]},
                 {"field": "goal_gradient", "from": "all member months, as fitted on the log (not written)",
                  **rew["goal_gradient_fitted_on_log"]}] if mapped else
                [{"field": "goal_gradient", "from": "all member months (written: not mapped, see below)",
                  **rew["goal_gradient"]}])
        rows += [{"field": "rewarded_behaviour", "from": "at the threshold (written)", **rew["rewarded_behaviour"]},
                 {"field": "rewarded_behaviour", "from": "all member months (not written)",
                  **{k: full[k] for k in ("estimate", "lo", "hi")}}]
        parts.append(f"<p>Goal gradient: {html.escape(rew['method'])}. {rew['members']} members, "
                     f"{rew['member_months']} member-months, {rew['rewards']} rewards; balances rebuilt from the "
                     f"design's rules predicted {rew['balances_predicted_exactly']:.0%} of the observed ones exactly.</p>")
        if mapped:
            parts.append("<p>The fit on the log and on the engine's own logs at each goal_gradient (simulated with "
                         f"{mapped['simulated_agents']} agents, the same seed):</p>")
            parts.append(_table(mapped["curve"], ["effect", "fitted", "se"]))
        else:
            parts.append(f"<p>{html.escape(rew.get('goal_gradient_not_mapped', ''))}</p>")
        parts.append(f"<p>Rewarded behaviour: {html.escape(rew['rewarded_behaviour_method'])}; {a['member_months']} "
                     f"member-months of {a['members']} members, {a['crossed']} of them just rewarded. The same model over "
                     f"all member months is shown for comparison and not written: {html.escape(full['why_not_written'])}.</p>")
        parts.append(f"<p>Written into market.yaml as triangular(low, estimate, high): "
                     f"{html.escape(', '.join(result['written_to_response']))}.</p>")
        parts.append(_table(rows, ["field", "from", "estimate", "lo", "hi"]))
    else:
        parts.append("<p>Not estimated (see below).</p>")
    sel = result.get("self_selection")
    parts.append("<h2>Self-selection: the engine's <code>self_selection</code></h2>")
    if sel:
        r = sel["ratio"]
        parts.append(f"<p>{html.escape(sel['method'])}. Joiners bought <b>{_f(r['estimate'], 3)}</b> times as often as "
                     f"the customers at risk of joining in their month over the months before (standard error "
                     f"{_f(r['se'], 3)}; {_f(r['se_with_simulation'], 3)} with the simulation's), {sel['joiners']} "
                     f"joiners in {sel['cohorts']} months, simulated with {sel['simulated_agents']} agents. "
                     f"<b>self_selection {_f(sel['estimate'], 2)}</b> ({sel['level']:.0%} interval {_f(sel['lo'], 2)} "
                     f"to {_f(sel['hi'], 2)}), written into market.yaml as triangular(low, estimate, high). The "
                     "simulated ratio by self_selection, each with the enrolment propensity factor that matched the "
                     "log's joining rate:</p>")
        parts.append(_table(sel["curve"], ["beta", "factor", "join_rate", "ratio", "se"]))
    else:
        parts.append("<p>Not estimated (see below).</p>")
    te = result.get("transition_effect")
    parts.append("<h2>Fewer lapses: the engine's <code>transition_effect</code></h2>")
    if te:
        d = te["lapse_change"]
        held = ", ".join(f"{k} {_f(v, 3)}" for k, v in te["other_response_values_simulated"].items())
        parts.append(f"<p>{html.escape(te['method'])}. Lapses changed by <b>{_f(d['estimate'], 4)}</b> a member-month "
                     f"(standard error {_f(d['se'], 4)}; {_f(d['se_with_simulation'], 4)} with the simulation's), "
                     f"simulated with {te['simulated_agents']} agents, the enrolment propensity times "
                     f"{_f(te['enrolment_factor'], 3)}, and {html.escape(held)}. <b>transition_effect "
                     f"{_f(te['estimate'], 2)}</b> ({te['level']:.0%} interval {_f(te['lo'], 2)} to {_f(te['hi'], 2)}), "
                     "written into market.yaml as triangular(low, estimate, high). The simulated change in lapses by "
                     "transition_effect:</p>")
        parts.append(_table(te["curve"], ["effect", "change", "se"]))
    else:
        parts.append("<p>Not estimated (see below).</p>")
    parts += _campaigns(result.get("campaign_lift"), campaign_plot)
    parts.append("<h2>Not estimated or not written, and why</h2><ul>")
    for k, v in result["not_written_to_response"].items():
        parts.append(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>")
    parts.append("</ul></body></html>\n")
    return "\n".join(parts)
