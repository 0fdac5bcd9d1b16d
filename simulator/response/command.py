"""``loyalty-sim estimate-response``: the program's measured effect from a member log.

Writes into ``--out`` (atomically, refused if it exists unless ``--force``):

* ``estimates.json``: the event study of spend and of purchases by months since joining, with
  intervals, self-selection before joining, the naive member uplift, the balance of the groups
  before joining, the goal gradient and rewarded behaviour measured from the balances (when the
  log has them and ``--playbook`` gives the design's rules), the engine's ``self_selection``
  (with ``--playbook``), the campaign lifts (with ``--contacts``), and what was not estimated
  and why;
* ``event_study.csv`` and ``event_study.png`` (the effect by month since joining, with its
  interval), ``balance.csv``, with ``--contacts`` ``campaigns.csv`` and ``campaigns.png`` (each
  campaign's lift with its interval, and the pooled one), ``report.html`` (all of it on one page);
* ``market.yaml``: the input market with the measured ``response`` fields replaced by
  triangular distributions (low, mode, high = the interval's low end, the estimate, its high
  end, clipped to the field's bounds), each named in ``response.sources`` with the log, the
  method, the customers and the log's months; every other field as given. ``compare`` with a
  playbook pointing at it carries the estimation uncertainty into P10/P90, tornado and
  break-evens. The input market is never overwritten;
* ``manifest.json``: the input hashes, version, seed and options.

What is written, and why only that. The goal gradient is the engine's ``response`` field that
members' purchases by progress toward the next reward identify
(:mod:`simulator.response.balances`); rewarded behaviour is written from the comparison of
members who just reached the kitty's threshold with members who just missed it (the fit over
all member months, which finds it positive where there is none, is reported beside it). The event
study's lift after joining is the combined effect of goal gradient, rewarded behaviour, fewer
lapses (and tier status in a tiered design): the sum, which no single field means, so it is
reported, not written. The engine's ``self_selection`` (the elasticity of joining to the
customer's own rate) is not the ratio of joiners' to comparable customers' purchases before
joining, but that ratio identifies it given the market and the design's joining: with
``--playbook`` the engine is simulated at a grid of values and the log's ratio inverted
(:mod:`simulator.response.selection`), and the result written like the goal gradient. The
engine's ``transition_effect`` (the cut in moves into lapsed segments) is not the log's change in
lapses after joining either, which also holds the other mechanisms' effect on buying; it is
mapped the same way (:mod:`simulator.response.lapses`): the design simulated at a grid of
``transition_effect`` values with the other fields at the values measured here, and the log's
change inverted. A log whose change lies wholly above the curve at 0 (or below it at 1) is not
fitted, and ``estimates.json`` says so. The ``campaign_lift`` is measured directly, when
``--contacts`` gives who each campaign contacted and a control group held out of it
(:mod:`simulator.response.campaigns`): the pooled lift of the campaigns that take the market's
lift (with ``--playbook``, a campaign with its own ``lift`` is reported, not pooled) is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from simulator import __version__
from simulator.errors import InputErrors
from simulator.output import check_destination, staged_directory
from simulator.response.estimate import LAPSE_MONTHS, EventStudy, event_study, lapse_study, panel_from_log
from simulator.specs.market import RESPONSE_DEFAULTS

NOT_WRITTEN = {
    "lift_after_joining": "the event-study lift is the combined effect of goal_gradient, rewarded_behaviour, "
                          "tier_status and transition_effect (docs/model.md); no single response field means it: "
                          "it is reported as a check, not written",
    "tier_status": "not identified by a log of a design without tiers",
    "campaign_lift": "not estimated: give --contacts FILE, a table of the customers each campaign contacted and of a "
                     "control group held out of it (columns customer_id, campaign, month, group = contacted/control)",
    "by_segment": "not estimated: a log holds no segment of the market's; by joiners' purchase frequency before "
                  "joining, the lift against all comparison customers was off by -0.43 to +0.35 purchases a month "
                  "on engine logs (regression to the mean), and against comparison customers of the same frequency "
                  "6-12 months before joining by 0.02 to 0.05 (0.5 to 0.75 of its spread over seeds): not shipped",
}
#: Measured from the balances and written into the market's response block.
WRITTEN_FROM_BALANCES = ("goal_gradient", "rewarded_behaviour")
THRESHOLD_METHOD = ("members whose balance before the month-end conversion had just reached the kitty's threshold "
                    "(a reward) against members who had just missed it (within {w:.0%} of it, both having bought that "
                    "month, no reward in the {clean} months before), their next month's purchases by Poisson "
                    "quasi-likelihood with the goal gradient, the calendar month and recent purchases; "
                    "cluster-robust (member) sandwich intervals; the market's rewarded_half_life")
LAPSES_NEED_PLAYBOOK = ("not estimated: members' lapses against matched customers (reported under lapses) are mapped "
                        "onto the engine's transition_effect, which cuts moves into lapsed segments that a log does not "
                        "show, by simulating the design on the market: give --playbook (a playbook whose design is the "
                        "log's program)")
SELECTION_NEEDS_PLAYBOOK = ("not estimated: the joiners' purchases before joining against comparable customers' "
                            "(reported under estimates) are mapped onto the engine's self_selection by simulating the "
                            "design's joining on the market: give --playbook (a playbook whose design is the log's program)")
NO_BALANCES = {
    "goal_gradient": "not estimated: {why}",
    "rewarded_behaviour": "not estimated: {why}",
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _study_dict(es: EventStudy) -> dict:
    post = es.post()
    return {
        "outcome": es.outcome, "level": es.level, "cohorts": es.cohorts,
        "mean_lift_after_joining": {"estimate": post[0], "lo": post[1], "hi": post[2],
                                    "months": f"0..{int(es.events.max())}"},
        "naive_member_uplift": es.naive,
        "before_joining": {"joiners": es.pre_joiners, "controls": es.pre_controls,
                           "ratio": {"estimate": es.pre_ratio[0], "lo": es.pre_ratio[1], "hi": es.pre_ratio[2]}},
        "by_month_since_joining": [{k: (float(v) if k != "event" else int(v)) for k, v in row.items()}
                                   for row in es.table().to_dict("records")],
    }


def _plot(studies: list[EventStudy], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(studies), figsize=(5.5 * len(studies), 3.6))
    for ax, es in zip(np.atleast_1d(axes), studies):
        ax.axhline(0, color="0.6", lw=0.8)
        ax.axvline(-0.5, color="0.6", lw=0.8, ls=":")
        ax.fill_between(es.events, es.lo, es.hi, color="tab:blue", alpha=0.2, label=f"{es.level:.0%} interval")
        ax.plot(es.events, es.att, "o-", color="tab:blue", ms=3, label="lift (joiners vs not yet joined)")
        ax.set_xlabel("months since joining")
        ax.set_ylabel(f"{es.outcome} per customer-month")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _balance_rows(source, balance_col: str) -> tuple[pd.DataFrame | None, str]:
    """The log's rows with customer, date, amount and balance, one per transaction as written
    (points are earned per transaction), or None and why not."""
    path = Path(str(source.path))
    name = path.name.lower()
    cols = [source.customer_col, source.date_col, source.amount_col, balance_col]
    try:
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            have = set(pq.read_schema(path).names)
            if balance_col not in have:
                return None, f"the log has no column '{balance_col}' (the member's points balance)"
            df = pd.read_parquet(path, columns=cols)
        elif name.endswith((".csv", ".txt", ".csv.gz", ".txt.gz")):
            sep = source.delimiter or ","
            head = pd.read_csv(path, sep=sep, nrows=0, encoding=source.encoding or "utf-8")
            if balance_col not in head.columns:
                return None, f"the log has no column '{balance_col}' (the member's points balance)"
            df = pd.read_csv(path, sep=sep, usecols=cols, encoding=source.encoding or "utf-8",
                             dtype={source.customer_col: str})
        else:
            return None, "balances are read from CSV or Parquet logs only"
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return None, f"the balance column could not be read ({exc})"
    df = df.rename(columns={source.customer_col: "customer_id", source.date_col: "date",
                            source.amount_col: "amount", balance_col: "balance"})
    df["date"] = pd.to_datetime(df["date"], format=source.date_format, errors="coerce")
    df["amount"] = pd.to_numeric(df["amount"], errors="coerce")
    df = df.dropna(subset=["date", "amount"])
    if df["balance"].notna().sum() == 0:
        return None, f"the column '{balance_col}' is empty"
    return df, ""


def _central(x, default: float) -> float:
    if x is None:
        return default
    return float(x if isinstance(x, (int, float)) else x.central)


def _reward_estimates(panel, rows: pd.DataFrame, playbook: Path, market_spec, seed: int) -> tuple[dict | None, str]:
    """Goal gradient and rewarded behaviour from the balances (simulator.response.balances), the
    goal gradient's fit mapped onto the engine's (simulator.response.goal_gradient)."""
    from simulator.engine.compiled import CompiledProgram
    from simulator.response.balances import member_months, rewarded_at_threshold, reward_effects
    from simulator.response.goal_gradient import fit_goal_gradient
    from simulator.scenario import resolve

    scenario = resolve(playbook)
    program = CompiledProgram.from_spec(scenario.program, market_spec)
    if program.cashback_threshold <= 0 or len(program.prices) or program.n_tiers > 1:
        return None, (f"the design of {playbook.name} is not a cash-back kitty without tiers or catalogue: a catalogue "
                      "redemption is a member's choice the log does not show")
    e = market_spec.economics
    net = 1.0 / (1.0 + e.vat_rate) if e.prices_include_tax else 1.0
    half_life = _central(market_spec.response.rewarded_half_life, RESPONSE_DEFAULTS["rewarded_half_life"])
    mm = member_months(panel, rows, program, net)
    if mm.customer.size == 0:
        return None, "no member month after a joining month"
    fit = reward_effects(panel, mm, half_life=half_life)
    thr = rewarded_at_threshold(panel, mm, half_life=half_life)
    method = ("Poisson quasi-likelihood of members' monthly purchases on progress toward the next reward and "
              "months since the last reward, controlling for calendar month and the member's recent purchases; "
              "cluster-robust (member) sandwich intervals")
    goal = dict(zip(("estimate", "lo", "hi"), fit.goal_gradient))
    try:
        mapped = fit_goal_gradient(panel, fit.goal_gradient, dataclasses.replace(scenario, market=market_spec), program,
                                   net=net, half_life=half_life, seed=seed, level=fit.level,
                                   values={"rewarded_behaviour": float(thr.rewarded_behaviour[0])})
        mapping, why_unmapped = mapped.as_dict(), ""
        goal = {k: mapping[k] for k in ("estimate", "lo", "hi")}
        method += (", mapped onto goal_gradient by simulating the design on the market at a grid of goal_gradient "
                   "values and fitting each simulated log the same way, the other response fields at the values "
                   "measured here or the market's, the enrolment propensity matched to the log's joining rate "
                   "(indirect inference; the fit alone is biased by the segments' moves)")
    except ValueError as exc:
        mapping, why_unmapped = None, str(exc)
    return {
        "method": method,
        "level": fit.level, "members": fit.members, "member_months": fit.member_months, "rewards": fit.rewards,
        "half_life_months": fit.half_life, "balances_predicted_exactly": fit.reconstruction,
        "design": str(playbook),
        "goal_gradient": goal,
        "goal_gradient_fitted_on_log": dict(zip(("estimate", "lo", "hi"), fit.goal_gradient)),
        "goal_gradient_mapping": mapping,
        **({"goal_gradient_not_mapped": f"written as fitted on the log: {why_unmapped}"} if mapping is None else {}),
        "rewarded_behaviour": dict(zip(("estimate", "lo", "hi"), thr.rewarded_behaviour)),
        "rewarded_behaviour_method": THRESHOLD_METHOD.format(w=thr.window, clean=thr.clean),
        "rewarded_behaviour_at_threshold": {"member_months": thr.member_months, "crossed": thr.crossed,
                                            "members": thr.members, "window": thr.window, "clean_months": thr.clean,
                                            "goal_gradient_there": dict(zip(("estimate", "lo", "hi"), thr.goal_gradient))},
        "rewarded_behaviour_all_member_months": {
            **dict(zip(("estimate", "lo", "hi"), fit.rewarded_behaviour)),
            "why_not_written": "with no rewarded behaviour in engine logs it is found +0.02 to +0.19 (seeds 1..10: the "
                               "months after a reward follow a run of purchases; a member still buying a lot is "
                               "credited to the reward): the threshold comparison is written instead"},
    }, ""


def _self_selection(panel, playbook: Path, market_spec, seed: int) -> tuple[dict | None, str]:
    """The engine's self_selection from the log (simulator.response.selection), or None and why."""
    from simulator.response.selection import PRE, fit_self_selection
    from simulator.scenario import resolve

    scenario = dataclasses.replace(resolve(playbook), market=market_spec)
    try:
        fit = fit_self_selection(panel, scenario, seed=seed)
    except ValueError as exc:
        return None, str(exc)
    return {"method": f"joiners' purchases over the {PRE} months before joining relative to the customers at risk of "
                      "joining that month (ratio R), mapped onto self_selection by simulating the design's joining on "
                      "the market at a grid of self_selection values, the enrolment propensity matched to the log's "
                      "joining rate (indirect inference); jackknife interval of R, log and simulation",
            "design": str(playbook), **fit.as_dict()}, ""


def _transition_effect(panel, playbook: Path, market_spec, seed: int, values: dict[str, float]) -> tuple[dict | None, str]:
    """The engine's transition_effect from the log's lapses (simulator.response.lapses), or None and why."""
    from simulator.response.lapses import fit_transition_effect
    from simulator.scenario import resolve

    scenario = dataclasses.replace(resolve(playbook), market=market_spec)
    try:
        fit = fit_transition_effect(panel, scenario, values=values, seed=seed)
    except ValueError as exc:
        return None, str(exc)
    return {"method": f"joiners' lapses (a month with a purchase, then {LAPSE_MONTHS} without) per member-month after "
                      "joining against comparison customers with the same purchases over the 12 months before, mapped "
                      "onto transition_effect by simulating the design on the market at a grid of transition_effect "
                      "values, the other response fields at the values measured here or the market's, the enrolment "
                      "propensity matched to the log's joining rate (indirect inference); jackknife interval, log and "
                      "simulation",
            "design": str(playbook), **fit.as_dict()}, ""


#: Bounds of the response fields written (simulator.specs.market.ResponseParams).
BOUNDS = {"goal_gradient": (0.0, 2.0), "rewarded_behaviour": (0.0, 2.0), "self_selection": (0.0, 5.0),
          "transition_effect": (0.0, 1.0), "campaign_lift": (0.0, 5.0)}


def measured_market(market_spec, estimates: dict[str, dict], source: str | dict[str, str]):
    """The market with each estimated field a triangular (interval low, estimate, interval high),
    clipped to the field's bounds, per-segment overrides of it dropped (the estimate is over all
    members), and its source in ``response.sources`` (``source``: one for all, or by field)."""
    from simulator.specs.base import Triangular
    from simulator.specs.market import Market

    r = market_spec.response
    update, sources = {}, dict(r.sources)
    for name, est in estimates.items():
        lo_b, hi_b = BOUNDS[name]
        lo = min(max(est["lo"], lo_b), hi_b)
        hi = min(max(est["hi"], lo_b), hi_b)
        mode = min(max(est["estimate"], lo), hi)
        if hi - lo < 1e-6:  # an interval entirely outside the bounds: the bound, and a sliver
            lo, hi = (lo, lo + 1e-3) if lo == lo_b else (hi - 1e-3, hi)
            mode = min(max(mode, lo), hi)
        update[name] = Triangular(triangular=(round(lo, 4), round(mode, 4), round(hi, 4)))
        sources[name] = (source if isinstance(source, str) else source[name]) + f"; {est.get('level', 0.9):.0%} interval ({est['lo']:.3f}..{est['hi']:.3f}) as low and high"
    segments = {k: v.model_copy(update={name: None for name in estimates}) for k, v in r.segments.items()}
    response = r.model_copy(update={**update, "segments": segments, "sources": sources})
    return Market.model_validate(market_spec.model_copy(update={"response": response}).model_dump())


def _campaign_plot(camp: dict, path: Path) -> None:
    """Each campaign's lift and the pooled one, with their intervals (a forest plot)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(r["campaign"], r["estimate"], r["lo"], r["hi"]) for r in camp["campaigns"] if "estimate" in r]
    if camp["pooled"]:
        p = camp["pooled"]
        rows.append(("pooled", p["estimate"], p["lo"], p["hi"]))
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * max(len(rows), 1)))
    ax.axvline(0, color="0.6", lw=0.8)
    for k, (name, est, lo, hi) in enumerate(rows):
        y = len(rows) - 1 - k
        ax.plot([lo, hi], [y, y], color="tab:blue" if name != "pooled" else "black", lw=2)
        ax.plot([est], [y], "o", color="tab:blue" if name != "pooled" else "black")
    ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)])
    ax.set_xlabel(f"lift of the purchase rate, contacted vs control ({camp['level']:.0%} interval)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def estimate_file(source, market: Path, out: Path, *, force: bool, seed: int, playbook: Path | None = None,
                  balance_col: str = "balance", contacts: Path | None = None,
                  contacts_cols: dict[str, str] | None = None) -> dict:
    """Read the log and the market, estimate, write ``out``; return the estimates.

    ``contacts``: a campaign contacts table with a control group (:mod:`simulator.response.campaigns`),
    its columns named by ``contacts_cols`` (keys customer, campaign, month, group; the customer
    column defaults to the log's)."""
    from simulator.calibration.transactions import read_transactions
    from simulator.specs import dump, load
    from simulator.specs.market import Market

    check_destination(out, force)  # refused before any work, not after it
    market_spec = load(Market, market)  # a market that does not validate stops here, with its errors
    playbook_inputs: dict[str, str] = {}
    if playbook is not None:
        from simulator.scenario import resolve
        scenario = resolve(playbook)  # a playbook that does not resolve stops here, before the log is read
        if scenario.market.name != market_spec.name:
            raise InputErrors.one(str(playbook), f"its market is '{scenario.market.name}', not '{market_spec.name}' "
                                                 "(expected a playbook of the market given by --market)", field="market")
        playbook_inputs = dict(scenario.inputs)
    contact_rows, own_lift = None, frozenset()
    if contacts is not None:
        from simulator.response.campaigns import CONTACT_COLUMNS, read_contacts

        cols = {**CONTACT_COLUMNS, "customer": source.customer_col, **(contacts_cols or {})}
        contact_rows = read_contacts(contacts, customer_col=cols["customer"], campaign_col=cols["campaign"],
                                     month_col=cols["month"], group_col=cols["group"])
        if playbook is not None:
            own_lift = frozenset(c.name for c in scenario.playbook.campaigns if c.lift is not None)
    if source.format != "table":
        raise InputErrors.one("(command line)", f"{source.format!r} logs carry no member flag (expected --format table)",
                              field="--format")
    log = read_transactions(source.path, **{k: v for k, v in dataclasses.asdict(source).items()
                                            if k not in ("path", "format")})
    tx = log.transactions
    if "member" not in tx.columns:
        raise InputErrors.one(str(source.path), "no member column (expected a column 'member' with 1/0, yes/no or "
                                                "true/false per transaction, or --member-col NAME)")
    panel = panel_from_log(tx)
    if panel.n_joiners == 0:
        raise InputErrors.one(str(source.path), "no customer has a member-flagged purchase (expected the member "
                                                "flag to be 1/true/yes on members' transactions)", field="member")
    studies = [event_study(panel, outcome=o, seed=seed) for o in ("spend", "purchases")]
    if studies[0].cohorts == 0:
        raise InputErrors.one(str(source.path), "no joiner has 6 months of purchases before joining (expected "
                              "members who were customers at least 6 months before their first member purchase)")
    lapses = lapse_study(panel, seed=seed)
    lapse_result = None
    if lapses.cohorts:
        est, lo, hi = lapses.post()
        cf = lapses.counterfactual()
        lapse_result = {
            "definition": f"a month with a purchase followed by {LAPSE_MONTHS} months without one",
            "method": "joiners against comparison customers with the same purchases over the 12 months before joining "
                      "(exact matching), month by month after joining; delete-a-group jackknife",
            "level": lapses.level, "cohorts": lapses.cohorts, "months": f"0..{int(lapses.events.max())}",
            "change_per_member_month": {"estimate": est, "lo": lo, "hi": hi},
            "counterfactual_per_member_month": cf,
            "relative_change": {"estimate": est / cf, "lo": lo / cf, "hi": hi / cf} if cf > 0 else None,
            "by_month_since_joining": [{k: (float(v) if k != "event" else int(v)) for k, v in row.items()}
                                       for row in lapses.table().to_dict("records")],
        }
    log_name = Path(str(source.path)).name
    months = f"{panel.months[0]}..{panel.months[-1]}"
    not_written = dict(NOT_WRITTEN)
    rewards = None
    if playbook is None:
        why = "give --playbook (a playbook whose design is the log's program) for the rules that rebuild balances"
    else:
        rows, why = _balance_rows(source, balance_col)
        if rows is not None:
            rewards, why = _reward_estimates(panel, rows, playbook, market_spec, seed)
    if rewards is None:
        not_written.update({k: v.format(why=why) for k, v in NO_BALANCES.items()})
    written, sources = {}, {}
    if rewards is not None:
        src = (f"estimated from {log_name} ({months}) by loyalty-sim estimate-response: {rewards['method']}; "
               f"n = {rewards['members']} members, {rewards['member_months']} member-months")
        for k in WRITTEN_FROM_BALANCES:
            written[k], sources[k] = {**rewards[k], "level": rewards["level"]}, src
        a = rewards["rewarded_behaviour_at_threshold"]
        sources["rewarded_behaviour"] = (
            f"estimated from {log_name} ({months}) by loyalty-sim estimate-response: {rewards['rewarded_behaviour_method']}; "
            f"n = {a['members']} members, {a['member_months']} member-months, {a['crossed']} of them just rewarded")
    def record_mapped(name: str, fit: dict | None, why: str, n: str) -> None:
        """A field mapped through the engine: written with its source, or not and why."""
        if fit is None:
            not_written[name] = f"not estimated: {why}"
            return
        written[name] = {k: fit[k] for k in ("estimate", "lo", "hi", "level")}
        sources[name] = f"estimated from {log_name} ({months}) by loyalty-sim estimate-response: {fit['method']}; n = {n}"

    selection = lapse_fit = None
    if playbook is None:
        not_written["self_selection"] = SELECTION_NEEDS_PLAYBOOK
        not_written["transition_effect"] = LAPSES_NEED_PLAYBOOK
    else:
        selection, why = _self_selection(panel, playbook, market_spec, seed)
        record_mapped("self_selection", selection, why, selection and
                      f"{selection['joiners']} joiners, {selection['at_risk_customer_months']} customer-months at risk")
        lapse_fit, why = _transition_effect(panel, playbook, market_spec, seed,
                                            {k: v["estimate"] for k, v in written.items()})
        record_mapped("transition_effect", lapse_fit, why, lapse_fit and
                      f"{len(panel.customers)} customers ({panel.n_joiners} joiners), {lapse_fit['cohorts']} cohorts")
    campaign = None
    if contact_rows is not None:
        from simulator.response.campaigns import campaign_lifts

        if not pd.Index(panel.customers).isin(contact_rows["customer_id"].unique()).any():
            raise InputErrors.one(str(contacts), "no customer of the contacts table is in the log (expected the log's "
                                                 f"customer ids, e.g. {panel.customers[0]})", field=cols["customer"])
        campaign = campaign_lifts(panel, contact_rows, own_lift=own_lift)
        campaign["contacts"] = str(contacts)
        pooled = campaign["pooled"]
        if pooled is None:
            not_written["campaign_lift"] = f"not estimated: {campaign['why_not_pooled']}"
        else:
            not_written.pop("campaign_lift", None)
            written["campaign_lift"] = {k: pooled[k] for k in ("estimate", "lo", "hi", "level")}
            sources["campaign_lift"] = (
                f"estimated from {log_name} ({months}) and {Path(contacts).name} by loyalty-sim estimate-response: "
                f"{campaign['method']}; campaigns {', '.join(pooled['campaigns'])}; n = {pooled['customers']} customers, "
                f"{pooled['customer_months']} customer-months")
    if written:
        new_market = measured_market(market_spec, written, sources)
    result = {
        "source": f"estimated from {log_name} ({months}), staggered difference-in-differences (joiners vs "
                  f"customers not yet joined, multiplicative trends, customer jackknife), "
                  f"n = {len(panel.customers)} customers ({panel.n_joiners} joiners)",
        "customers": int(len(panel.customers)), "joiners": panel.n_joiners,
        "months": [str(panel.months[0]), str(panel.months[-1])],
        "estimates": {es.outcome: _study_dict(es) for es in studies},
        "balance_before_joining": studies[0].balance.to_dict("records"),
        "lapses": lapse_result,
        "reward_effects": rewards,
        "self_selection": selection,
        "transition_effect": lapse_fit,
        "campaign_lift": campaign,
        "written_to_response": sorted(written),
        "not_written_to_response": not_written,
    }
    files = ["estimates.json", "event_study.csv", "event_study.png", "balance.csv", "report.html"]
    if campaign is not None:
        files += ["campaigns.csv", "campaigns.png"]
    if written:
        files.append("market.yaml")
    manifest = {"command": "estimate-response", "version": __version__, "seed": seed,
                "inputs": {str(source.path): _sha256(Path(str(source.path))) if Path(str(source.path)).is_file() else None,
                           str(market): _sha256(market), **playbook_inputs,
                           **({str(contacts): _sha256(Path(contacts))} if contacts is not None else {})},
                "files": files}
    with staged_directory(out, force) as tmp:
        (tmp / "estimates.json").write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
        pd.concat([es.table().assign(outcome=es.outcome) for es in studies]).to_csv(tmp / "event_study.csv", index=False)
        studies[0].balance.to_csv(tmp / "balance.csv", index=False)
        _plot(studies, tmp / "event_study.png")
        if campaign is not None:
            pd.DataFrame([{k: (", ".join(v) if isinstance(v, list) else v) for k, v in r.items()}
                          for r in campaign["campaigns"]]).to_csv(tmp / "campaigns.csv", index=False)
            _campaign_plot(campaign, tmp / "campaigns.png")
        if written:
            header = (f"# Written by loyalty-sim estimate-response from {log_name} (SHA-256 "
                      f"{manifest['inputs'][str(source.path)]}) and {market.name}: response."
                      + ", response.".join(sorted(written)) + " measured (see response.sources);\n"
                      "# everything else as in the input market.\n")
            (tmp / "market.yaml").write_text(header + dump(new_market))
        from simulator.response.report import report_html
        (tmp / "report.html").write_text(report_html(result, tmp / "event_study.png",
                                                     tmp / "campaigns.png" if campaign is not None else None))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return result
