"""``loyalty-sim compare``: designs x markets with uncertainty, sensitivity and break-even.

A study directory holds ``study.json`` and one run directory per scenario under
``scenarios/<id>/`` (the files of ``loyalty-sim run``), then ``report.html`` and
``workbook.xlsx``.

* Uncertainty: parameters written as distributions are drawn in every replication
  (:mod:`simulator.uncertainty`); replication r of every scenario uses the same seed, so
  designs on one market share customers, luck and parameter draws.
* Tornado: for each uncertain parameter, the mean NPV over ``sensitivity_replications``
  replications with that parameter at the 10th and at the 90th percentile of its
  distribution and every other one at its central value (mode or midpoint), on the same
  seeds; ``npv_base`` has all of them central.
* Break-even response: the factor s applied to every behavioural lift (goal gradient,
  rewarded behaviour, tier status, demotion, fewer lapses, campaign lifts) at which mean NPV
  is zero, found by bisection on the same seeds (``s = 1`` is the market as written; s below
  1 means the design still pays with a weaker response than assumed).
* Break-even reward cost: NPV is linear in the cost of rewards (the cost does not change
  behaviour), so the highest multiple of the design's reward cost at which NPV is still
  zero is ``1 + NPV / PV(design reward cost)``, exact from the base runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from simulator.errors import InputError, InputErrors
from simulator.executor import Executor
from simulator.finance import metrics
from simulator.output import staged_directory
from simulator.results import RunResult
from simulator.runner import _clean, _json, simulate, write_run
from simulator.scenario import Scenario, resolve, with_design
from simulator.specs import read_yaml, validate_document
from simulator.specs.study import Study, StudyScenario
from simulator import uncertainty

#: Response parameters scaled by the break-even search (behavioural lifts, not participation).
RESPONSE_LIFTS = ("goal_gradient", "rewarded_behaviour", "tier_status", "demotion_effect", "transition_effect",
                  "campaign_lift")

#: progress(months): called with simulated months of the main runs just completed
Progress = Callable[[int], None]


@dataclass(frozen=True)
class StudyCell:
    id: str
    scenario: Scenario
    playbook_path: str


def _resolve_cell(s: StudyScenario, base: Path, doc, i: int) -> tuple[StudyCell | None, list[InputError]]:
    baseline = None
    if s.baseline is not None:
        baseline = s.baseline if s.baseline == "none" else str(base / s.baseline)
    pb_path = base / s.playbook
    if not pb_path.is_file():
        return None, [InputError(doc.path, doc.lines.line_of(("scenarios", i, "playbook")), f"scenarios.{i}.playbook",
                                 f"playbook file not found: {pb_path} (expected a path relative to the study file)")]
    try:
        sc = resolve(pb_path, baseline=baseline)
        if s.design is not None:
            if not (base / s.design).is_file():
                return None, [InputError(doc.path, doc.lines.line_of(("scenarios", i, "design")), f"scenarios.{i}.design",
                                         f"design file not found: {base / s.design} (expected a path relative to the study file)")]
            sc = with_design(sc, base / s.design)
    except InputErrors as exc:
        return None, exc.errors
    default = sc.playbook.name if s.design is None else f"{sc.playbook.name}__{sc.program.name}"
    return StudyCell(s.name or default, sc, str(pb_path)), []


def load_study(path: str | Path) -> tuple[Study, list[StudyCell]]:
    """Read a study file and resolve every scenario; all errors of all files together."""
    study, cells, _ = load_study_with_search(path)
    return study, cells


def load_study_with_search(path: str | Path) -> tuple[Study, list[StudyCell], Any]:
    """:func:`load_study` and the problem of its ``search:`` block (None without one), every
    variable's path checked against its playbook before anything runs."""
    doc = read_yaml(path)
    study = validate_document(Study, doc)
    base = Path(path).parent
    cells, errors = [], []
    for i, s in enumerate(study.scenarios):
        cell, errs = _resolve_cell(s, base, doc, i)
        errors += errs
        if cell is not None:
            cells.append(cell)
    ids = [c.id for c in cells]
    for i, c in enumerate(cells):
        if ids.index(c.id) != i:
            errors.append(InputError(doc.path, doc.lines.line_of(("scenarios", i)), f"scenarios.{i}",
                                     f"two scenarios are both called '{c.id}' (expected unique names: give one a name)"))
    for i, c in enumerate(cells):
        if c.scenario.market.reporting_currency != study.reporting_currency:
            errors.append(InputError(doc.path, doc.lines.line_of(("scenarios", i)), f"scenarios.{i}",
                                     f"market {c.scenario.market.name} reports in {c.scenario.market.reporting_currency}, "
                                     f"the study in {study.reporting_currency} (expected the same reporting currency)"))
    problem = None
    if study.search is not None:
        from simulator.optimise import problem_from

        try:
            problem = problem_from(study.search, doc, where=("search",))
        except InputErrors as exc:
            errors += exc.errors
    if errors:
        raise InputErrors(errors)
    if study.horizon_months is not None:
        cells = [dataclasses.replace(c, scenario=c.scenario.with_horizon(study.horizon_months)) for c in cells]
    return study, cells, problem


def study_from_playbooks(playbooks: list[Path], designs: list[Path], *, replications: int, seed: int, agents: int,
                         reporting_currency: str | None = None) -> tuple[Study, list[StudyCell]]:
    """A study from the command line: every playbook, or every (playbook, design) pair."""
    cells: list[StudyCell] = []
    errors: list[InputError] = []
    for pb in playbooks:
        try:
            sc = resolve(pb)
        except InputErrors as exc:
            errors += exc.errors
            continue
        if not designs:
            cells.append(StudyCell(sc.playbook.name, sc, str(pb)))
        for d in designs:
            try:
                swapped = with_design(sc, d)
            except InputErrors as exc:
                errors += exc.errors
                continue
            cells.append(StudyCell(f"{sc.playbook.name}__{swapped.program.name}", swapped, str(pb)))
    if errors:
        raise InputErrors(errors)
    currencies = sorted({c.scenario.market.reporting_currency for c in cells})
    if len(currencies) > 1:
        raise InputErrors.one("(command line)", f"markets report in different currencies ({', '.join(currencies)}); expected one")
    study = Study(name="comparison", reporting_currency=reporting_currency or currencies[0], seed=seed,
                  replications=replications, agents=agents,
                  scenarios=tuple(StudyScenario(playbook=c.playbook_path) for c in cells))
    return study, cells


def _scaled(scenario: Scenario, scale: float) -> Scenario:
    """Every behavioural lift multiplied by ``scale`` (market-wide, per-segment, campaigns)."""
    resp = scenario.market.response
    upd: dict[str, Any] = {}
    from simulator.specs.market import RESPONSE_DEFAULTS

    for k in RESPONSE_LIFTS:
        v = getattr(resp, k)
        upd[k] = (RESPONSE_DEFAULTS[k] if v is None else float(v)) * scale
    segs = {n: p.model_copy(update={k: float(getattr(p, k)) * scale for k in RESPONSE_LIFTS if getattr(p, k) is not None})
            for n, p in resp.segments.items()}
    # effects are bounded (a share cut, a drop): keep them within their bounds
    upd["demotion_effect"] = min(upd["demotion_effect"], 1.0)
    upd["transition_effect"] = min(upd["transition_effect"], 1.0)
    segs = {n: p.model_copy(update={k: min(float(getattr(p, k)), 1.0) for k in ("demotion_effect", "transition_effect")
                                    if getattr(p, k) is not None}) for n, p in segs.items()}
    market = scenario.market.model_copy(update={"response": resp.model_copy(update={**upd, "segments": segs})})
    camps = tuple(c.model_copy(update={"lift": None if c.lift is None else float(c.lift) * scale}) for c in scenario.playbook.campaigns)
    playbook = scenario.playbook.model_copy(update={"campaigns": camps})
    return dataclasses.replace(scenario, market=market, playbook=playbook)


def _mean_npv(scenario: Scenario, study: Study, *, values: dict[str, float] | None, progress: Progress | None,
              executor: Executor | None = None) -> tuple[float, RunResult]:
    """Mean NPV over the sensitivity replications with some parameters fixed."""
    res = simulate(scenario, agents=study.agents, seed=study.seed, replications=study.sensitivity_replications,
                   parameters=values, executor=executor)
    return float(np.mean([m["npv"] for m in res.replication_metrics()])), res


def tornado(cell: StudyCell, study: Study, progress: Progress | None = None,
            executor: Executor | None = None) -> list[dict[str, Any]]:
    params = uncertainty.parameters(cell.scenario)
    if not params:
        return []
    central = uncertainty.central_values(cell.scenario)
    base, _ = _mean_npv(cell.scenario, study, values=central, progress=progress, executor=executor)
    rows = []
    for p in params:
        lo, hi = p.distribution.ppf(0.1), p.distribution.ppf(0.9)
        npv_lo, _ = _mean_npv(cell.scenario, study, values={**central, p.name: lo}, progress=progress, executor=executor)
        npv_hi, _ = _mean_npv(cell.scenario, study, values={**central, p.name: hi}, progress=progress, executor=executor)
        rows.append({"parameter": p.name, "distribution": p.distribution.describe(), "low": lo, "high": hi,
                     "npv_low": npv_lo, "npv_high": npv_hi, "npv_base": base})
    rows.sort(key=lambda r: -abs(r["npv_high"] - r["npv_low"]))
    return rows


def breakeven(cell: StudyCell, study: Study, base: RunResult, progress: Progress | None = None,
              executor: Executor | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    # every uncertain parameter at its central value, then every lift scaled
    sc = uncertainty.with_values(cell.scenario, uncertainty.central_values(cell.scenario))
    rate = sc.market.economics.discount_rate

    def npv_at(scale: float) -> float:
        return _mean_npv(_scaled(sc, scale), study, values=None, progress=progress, executor=executor)[0]

    lo, hi = 0.0, 1.0
    f_lo, f_hi = npv_at(0.0), npv_at(1.0)
    value: float | None
    if f_lo >= 0:
        value, meaning = 0.0, "NPV is positive even with no behavioural response (the program pays through its costs and fees alone)"
    else:
        while f_hi < 0 and hi < 8:
            lo, f_lo = hi, f_hi
            hi *= 2
            f_hi = npv_at(hi)
        if f_hi < 0:
            value, meaning = None, "NPV stays negative even at 8 times the assumed behavioural response"
        else:
            for _ in range(6):
                mid = (lo + hi) / 2
                f_mid = npv_at(mid)
                lo, hi, f_lo, f_hi = (mid, hi, f_mid, f_hi) if f_mid < 0 else (lo, mid, f_lo, f_mid)
            value = lo + (hi - lo) * (-f_lo) / (f_hi - f_lo) if f_hi != f_lo else (lo + hi) / 2
            meaning = ("multiple of the assumed behavioural response (every lift) at which NPV reaches zero: below 1 the "
                       "design still pays with a weaker response than assumed")
    out.append({"parameter": "behavioural response (all lifts)", "value": value, "meaning": meaning})
    # reward cost: linear in NPV (cost changes no behaviour); the design's rewards in its own
    # months and the cost of its points still owed at the horizon both scale with it
    npvs, pvs = [], []
    live = base.phases()[0] == 1
    for fr in base.frames:
        d = fr["design"]
        pvs.append(reward_cost_pv(d, live, rate))
        npvs.append(metrics.npv(fr["difference"]["cash_flow"].to_numpy(), rate))
    pv, npv = float(np.mean(pvs)), float(np.mean(npvs))
    if pv > 0:
        mult = 1 + npv / pv
        pct = base.summary()["metrics"]["reward_cost_pct_sales"].get("mean")
        if mult <= 0:
            out.append({"parameter": "reward cost", "value": None,
                        "meaning": "none: NPV is negative even if the design's rewards cost nothing"})
        else:
            out.append({"parameter": "reward cost", "value": mult,
                        "meaning": "highest multiple of the design's reward cost at which NPV is still zero"
                                   + (f" (reward cost {100 * pct * mult:.2f}% of sales instead of {100 * pct:.2f}%)" if pct else "")})
    return out


def reward_cost_pv(design: pd.DataFrame, live: np.ndarray, rate: float) -> float:
    """Present value of the design's reward cost: rewards redeemed in the design's months and
    the cost of its points still owed at the horizon (finance.obligation)."""
    flows = np.where(live, design["reward_cost"].to_numpy(), 0.0) + design["obligation_points"].to_numpy() * live
    return metrics.npv(flows, rate)


def run_study(study: Study, cells: list[StudyCell], out: Path, *, force: bool, progress: Progress | None = None,
              source: str | None = None, executor: Executor | None = None,
              done: Callable[[str, dict[str, Any]], None] | None = None, search: Any = None,
              search_tick: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run every scenario, the sensitivity analyses, the design search if given (a
    :class:`simulator.optimise.Problem`: its files in ``optimisation/``, the section of the
    report and workbook from them), and write the study directory.
    ``done(scenario id, summary)`` is called as soon as a scenario's own runs are written (before
    its sensitivity analyses), so a first result can be shown while the rest runs."""
    doc: dict[str, Any] = {"name": study.name, "description": study.description, "source": source,
                           "reporting_currency": study.reporting_currency, "seed": study.seed,
                           "replications": study.replications, "agents": study.agents,
                           "sensitivity_replications": study.sensitivity_replications,
                           "scenarios": [], "uncertain_parameters": [], "tornado": {}, "breakeven": {}, "ranking": []}
    with staged_directory(out, force) as tmp:
        seen_params: set[str] = set()
        for cell in cells:
            sc = cell.scenario
            result = simulate(sc, agents=study.agents, seed=study.seed, replications=study.replications,
                              progress=progress, executor=executor)
            summary = write_run(result, tmp / "scenarios" / cell.id, force=False)
            if done is not None:
                done(cell.id, summary)
            fx = sc.market.fx_to_reporting
            doc["scenarios"].append({"id": cell.id, "dir": f"scenarios/{cell.id}", "playbook": cell.playbook_path,
                                     "design": sc.program.name, "baseline": sc.baseline.name if sc.baseline else "none",
                                     "market": sc.market.name, "currency": sc.market.currency, "fx_to_reporting": fx})
            for p in uncertainty.parameters(sc):
                if p.name not in seen_params:
                    seen_params.add(p.name)
                    doc["uncertain_parameters"].append({"name": p.name, "distribution": p.distribution.describe(),
                                                        "source": _source(sc.paths[p.owner], p.path)})
            if study.tornado:
                doc["tornado"][cell.id] = [{**row, "currency": sc.market.currency}
                                           for row in tornado(cell, study, progress, executor)]
            if study.breakeven:
                doc["breakeven"][cell.id] = breakeven(cell, study, result, progress, executor)
            npv = summary["metrics"]["npv"]
            doc["ranking"].append({"scenario": cell.id, "market": sc.market.name, "design": sc.program.name,
                                   "baseline": sc.baseline.name if sc.baseline else "none",
                                   "npv_p10": npv["p10"] * fx, "npv_p50": npv["p50"] * fx, "npv_p90": npv["p90"] * fx,
                                   "probability_npv_negative": summary["probability_npv_negative"]})
        doc["ranking"].sort(key=lambda r: -r["npv_p50"])
        if search is not None:
            doc["optimisation"] = _optimise(search, tmp / OPTIMISATION_DIR, executor, search_tick)
        doc = _clean(doc)
        (tmp / "study.json").write_text(_json(doc), encoding="utf-8")
        _write_reports(tmp)
    return doc


#: Sub-directory of a study holding its design search (the files of ``loyalty-sim optimise``).
OPTIMISATION_DIR = "optimisation"


def _optimise(problem: Any, out: Path, executor: Executor | None, tick: Callable[[int], None] | None) -> dict[str, Any]:
    """Run the study's search on the study's executor and write its files to ``out``; what
    study.json records of it (the report reads the rest from ``out``)."""
    from simulator.optimise import run_search, write_outputs

    with contextlib.ExitStack() as stack:
        ex = executor if executor is not None else stack.enter_context(Executor(1))
        outcome = run_search(problem, ex, tick or (lambda n: None))
    summary = write_outputs(problem, outcome, out, force=False)
    best = summary["best"]
    return {"dir": OPTIMISATION_DIR, "name": problem.search.name, "playbook": problem.playbook_path,
            "market": problem.scenario.market.name, "currency": summary["currency"],
            "objective": problem.search.objective.label(), "start": summary["start"]["objective"],
            "best": None if best is None else best["objective"], "best_trial": None if best is None else best["trial"],
            "best_design": "optimisation/best_design.yaml" if best is not None else None}


def _source(path: str, field: tuple) -> str:
    """``file:line`` of a field (the line of a distribution in its YAML file)."""
    try:
        line = read_yaml(path).lines.line_of(field)
    except InputErrors:
        line = None
    return f"{path}:{line}" if line else path


def _write_reports(study_dir: Path) -> None:
    """report.html and workbook.xlsx (reporting modules)."""
    try:
        from simulator.reporting.html import write_report
        from simulator.reporting.workbook import write_workbook
    except ImportError:  # reporting not installed in this build
        return
    write_report(study_dir, study_dir / "report.html")
    write_workbook(study_dir, study_dir / "workbook.xlsx")


def study_json(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / "study.json").read_text(encoding="utf-8"))
