"""``loyalty-sim optimise``: the best design for a playbook under finance's constraints.

Method (docs/model.md, "Design optimisation"):

* Every candidate is the playbook's design (as it runs on the market: FX converted, local
  overrides applied) with the search file's variables set; it runs against the playbook's
  baseline on the same agents and seeds as every other candidate (common random numbers), so
  candidates differ by their design, not their luck.
* Optuna proposes candidates (TPE or CMA-ES for one objective, NSGA-II for two), ``batch`` at a
  time; a batch runs in parallel and is told to the sampler in trial order, so the same search
  file and seed give the same trials whatever the number of workers.
* Racing: every candidate on ``racing.agents`` x ``racing.replications``; the ``racing.confirm``
  best feasible ones and the starting design are re-run at ``agents`` x ``replications``; a
  confirmed candidate must meet each constraint with ``racing.z`` standard errors to spare.
  The winner is the confirmed candidate with the best objective at the full count. Standard
  errors (normal approximations): of a mean, sd / sqrt(R); of a sample quantile q,
  sd sqrt(q (1 - q)) / (phi(Phi^-1(q)) sqrt(R)); of P(NPV < 0), sqrt(p (1 - p) / R).
* CMA-ES has no constraint handling: a candidate breaking one is told its objective less
  max(|f|, 1) x (1 + the sum of its relative violations).
* Marginal value of a constraint (its shadow price): its bound is relaxed by a step of 10% (of
  the bound, or of the range the candidates covered when the bound is 0); the gain is the best
  race objective reachable under the relaxed set minus the best under the bounds as written,
  and the marginal value that gain per unit of bound. Two estimates, the method named in the
  report: with ``marginal_trials: 0`` (the default) it is read off the candidates already
  tried -- no new run, but it sees only what the search happened to try, so it is 0 when no
  candidate lies in the relaxed range; with ``marginal_trials: n`` each constraint gets a
  search of its own, n candidates on the race count and seed, its bound relaxed, started from
  the start and the ``batch`` best candidates the relaxed set admits (stage ``relax <label>``
  in trials.csv). A constraint *binds* when the gain is positive, and is *active* at the best
  design when that design's slack at the full count is within the step. Both estimates are a
  difference of two searched optima, so they carry each search's shortfall from its true
  optimum. The re-searches explore a box of +-5% of each variable's range around the best
  candidate that keeps every bound, and every candidate of every search is judged against
  both the bounds as written and the relaxed ones, so a re-search that merely searched better
  credits nothing to a constraint. On the closed-form market below with a floor on members
  that holds the fee at half of F*, lowering the floor 10% gains an exactly known NPV; with 30
  candidates and 20 per re-search the estimate was off by -8.2%, -0.3%, -12.5%, +1.5% and
  -4.7% on seeds 1-5 (tests/test_optimise.py allows 25%). Read it as an order of magnitude.
* A search can run inside a study (``search:`` in the study file, the fields of a search file):
  its files go to the study's ``optimisation/``, and the study report and workbook carry the
  same section as the command's report.html (:mod:`simulator.reporting.optimisation`): the best
  design against the start, the constraints the start fails, and the table above.
* Proof on a known optimum (tests/fixtures/closed_form): on a one-month market whose program
  changes nothing but who pays a monthly fee F (every lift 0), the enrolment equation gives
  E[NPV](F) proportional to F exp(-a F), a = 12 fee_sensitivity / annual spend, so the best fee
  is F* = 1 / a = purchase rate x mean basket / fee_sensitivity (7.50 EUR there). The search
  finds it within 4 standard deviations of the sampled curve's own argmax noise (cube-root
  asymptotics, Chernoff's distribution: 2^(2/3) Z F* / M^(1/3) with M the joiners simulated at
  F*) plus a grid step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from pydantic import ValidationError

from simulator import __version__
from simulator.errors import InputError, InputErrors
from simulator.executor import Executor, Task
from simulator.output import staged_directory
from simulator.results import RunResult
from simulator.runner import _clean, _json, environment
from simulator.scenario import Scenario, resolve, sha256
from simulator.specs import dump, read_yaml, validate_document
from simulator.uncertainty import replaced_at
from simulator.specs.base import did_you_mean
from simulator.specs.playbook import Playbook
from simulator.specs.program import Program
from simulator.specs.search import DERIVED_METRICS, PROBABILITY_METRICS, Constraint, Objective, Search, Statistic
from simulator.specs.yamlio import Document

AS_DESIGNED = "as_designed"
#: Relaxation of a bound used to estimate a constraint's marginal value (share of the bound).
RELAX = 0.10


class InvalidCandidate(ValueError):
    """Variables that make the design or playbook invalid (thresholds no longer ascending...)."""


@dataclass(frozen=True)
class Problem:
    search: Search
    doc: Document
    scenario: Scenario
    search_path: str
    playbook_path: str


# ------------------------------------------------------------------ paths into the specs
def _split(parts: tuple) -> tuple[str, tuple]:
    return ("playbook", parts[1:]) if parts and parts[0] == "playbook" else (
        ("design", parts[1:]) if parts and parts[0] == "design" else ("design", parts))


def _get(data: Any, parts: tuple) -> Any:
    for p in parts:
        data = data[p]
    return data


def _check_path(data: Any, parts: tuple, what: str) -> str | None:
    """Why ``parts`` is not a field of ``data`` (a model dump), or None."""
    cur, shown = data, what
    for p in parts:
        if isinstance(p, int):
            if not isinstance(cur, tuple):
                return f"{shown} is not a list (expected no [{p}])"
            if p >= len(cur):
                return f"{shown} has {len(cur)} item(s): no [{p}] (expected an index below {len(cur)})"
            cur, shown = cur[p], f"{shown}[{p}]"
        else:
            if cur is None:
                return f"the {what} has no {shown} (expected a field it has)"
            if not isinstance(cur, dict):
                return f"{shown} has no fields (expected a path ending at it)"
            if p not in cur:
                return (f"unknown field '{p}'{did_you_mean(p, cur)} in {shown} (expected one of: "
                        f"{', '.join(map(str, cur))})")
            cur, shown = cur[p], f"{shown}.{p}"
    return None


def _start_data(scenario: Scenario) -> dict[str, Any]:
    return {"design": scenario.program.model_dump(mode="python"), "playbook": scenario.playbook.model_dump(mode="python")}


def load_problem(search_path: str | Path, playbook: str | Path | None = None) -> Problem:
    """Read a search file and the playbook it optimises; check every variable's path against
    the design and playbook. All errors together, ``path:line: field: message``."""
    doc = read_yaml(search_path)
    search = validate_document(Search, doc)
    return problem_from(search, doc, playbook=playbook)


def problem_from(search: Search, doc: Document, *, where: tuple = (), playbook: str | Path | None = None) -> Problem:
    """The problem of a search validated from ``doc`` at ``where`` (``()`` for a search file,
    ``("search",)`` for a study's block): its playbook, relative to the file, and its
    variables' paths checked against the design and playbook."""
    if playbook is None:
        if search.playbook is None:
            raise InputErrors.one(doc.path, "no playbook to optimise (expected --playbook or a 'playbook:' line)",
                                  line=doc.lines.line_of(where) if where else 1, field=".".join(map(str, (*where, "playbook"))))
        pb_path = str(Path(doc.path).parent / search.playbook)
        if not Path(pb_path).is_file():
            raise InputErrors.one(doc.path, f"playbook file not found: {pb_path} (expected a path relative to the "
                                            f"{'study' if where else 'search'} file)",
                                  line=doc.lines.line_of((*where, "playbook")), field=".".join(map(str, (*where, "playbook"))))
    else:
        pb_path = str(playbook)
    scenario = resolve(pb_path)
    data = _start_data(scenario)
    errors: list[InputError] = []
    for i, v in enumerate(search.variables):
        loc = (*where, "variables", i, "path")
        root, parts = _split(v.parts)
        why = _check_path(data[root], parts, root)
        if why is None and v.choices is None:
            cur = _get(data[root], parts)
            if isinstance(cur, bool) or not isinstance(cur, (int, float)):
                why = (f"{v.path} is {'not set' if cur is None else 'not a number'} in the {root} "
                       "(expected a numeric field for low/high, or choices)")
        if why is None and v.choices is not None:
            for j, choice in enumerate(v.choices):
                try:
                    apply_values(scenario, search, {v.path: choice})
                except InvalidCandidate as exc:
                    cloc = (*where, "variables", i, "choices", j)
                    errors.append(InputError(doc.path, doc.lines.line_of(cloc), ".".join(map(str, cloc)),
                                             f"{exc} (expected a value the field takes)"))
        if why is not None:
            errors.append(InputError(doc.path, doc.lines.line_of(loc), ".".join(map(str, loc)), why))
    if errors:
        raise InputErrors(errors)
    return Problem(search, doc, scenario, doc.path, pb_path)


def apply_values(scenario: Scenario, search: Search, values: dict[str, Any]) -> Scenario:
    """The scenario with each variable at its value (``as_designed`` keeps the start's)."""
    data = _start_data(scenario)
    for v in search.variables:
        if v.path not in values or values[v.path] == AS_DESIGNED:
            continue
        root, parts = _split(v.parts)
        if _check_path(data[root], parts, root) is not None:
            continue  # its part was switched off by another variable (tiers: null)
        value = values[v.path]
        cur = _get(data[root], parts)
        if v.choices is None:
            value = int(round(value)) if isinstance(cur, int) and not isinstance(cur, bool) else float(value)
        data[root] = replaced_at(data[root], parts, value)
    try:
        program = Program.model_validate(data["design"])
        playbook = Playbook.model_validate(data["playbook"])
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        ctx = (err.get("ctx") or {}).get("error")
        msg = str(ctx) if ctx is not None else err["msg"]
        raise InvalidCandidate(f"the design is invalid with these values: {'.'.join(map(str, err['loc']))}: {msg}") from None
    return dataclasses.replace(scenario, program=program, playbook=playbook)


def start_values(problem: Problem) -> dict[str, Any]:
    data = _start_data(problem.scenario)
    out: dict[str, Any] = {}
    for v in problem.search.variables:
        root, parts = _split(v.parts)
        out[v.path] = AS_DESIGNED if v.choices is not None else _get(data[root], parts)
    return out


# ------------------------------------------------------------------ metrics and statistics
def candidate_metrics(result: RunResult) -> dict[str, np.ndarray]:
    """Per-replication values of every metric a search may name (NaN where undefined;
    a payback that never comes is +inf)."""
    reps = result.replication_metrics()
    out: dict[str, np.ndarray] = {}
    for key in reps[0]:
        if key == "parameters":
            continue
        vals = [r[key] for r in reps]
        out[key] = np.array([(math.inf if key == "payback_month" else math.nan) if x is None else float(x) for x in vals])
    cost, per_member = [], []
    for fr in result.frames:
        d = fr["design"]
        rev = float(d["revenue"].sum())
        cost.append(float(d["program_cost"].sum()) / rev if rev > 0 else math.nan)
        mm = float(d["members"].sum())
        per_member.append(float(d["reward_cost"].sum()) / mm * 12 if mm > 0 else math.nan)
    out["program_cost_pct_sales"] = np.array(cost)
    out["reward_cost_per_member"] = np.array(per_member)
    assert set(DERIVED_METRICS) <= set(out)
    return out


def statistic(values: dict[str, np.ndarray], s: Statistic, worst: str = "low") -> tuple[float, float]:
    """(value, approximate standard error) of ``s`` over replications. ``worst`` says which
    tail the expected shortfall averages."""
    if s.metric in PROBABILITY_METRICS:
        x = values["npv"]
        p = float((x < 0).mean())
        return p, math.sqrt(p * (1 - p) / len(x))
    x = values[s.metric]
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, 0.0
    n = x.size
    sd = float(np.std(x, ddof=1)) if n > 1 and np.isfinite(x).all() else 0.0
    se = sd / math.sqrt(n)
    st = s.statistic
    if st in ("p10", "p50", "p90"):
        q = int(st[1:]) / 100
        from scipy.stats import norm

        # asymptotic standard error of a sample quantile under normality
        return float(np.percentile(x, q * 100, method="nearest")), se * math.sqrt(q * (1 - q)) / float(norm.pdf(norm.ppf(q)))
    if st == "mean":
        return float(x.mean()), se
    if st == "min":
        return float(x.min()), se
    if st == "max":
        return float(x.max()), se
    if st == "mean_minus_sd":
        return float(x.mean()) - s.k * sd, se * math.sqrt(1 + s.k ** 2 / 2)
    m = max(1, math.ceil(s.alpha * n))
    tail = np.sort(x)[:m] if worst == "low" else np.sort(x)[-m:]
    return float(tail.mean()), sd / math.sqrt(m)


def violations(values: dict[str, np.ndarray], constraints: tuple[Constraint, ...], z: float = 0.0) -> list[float]:
    """For each constraint, how far it is from being met (<= 0: met), with ``z`` standard errors to spare."""
    out = []
    for c in constraints:
        v = 0.0 - math.inf
        if c.max is not None:
            val, se = statistic(values, c, worst="high")
            v = max(v, (val + z * se) - c.max if not math.isnan(val) else math.inf)
        if c.min is not None:
            val, se = statistic(values, c, worst="low")
            v = max(v, c.min - (val - z * se) if not math.isnan(val) else math.inf)
        out.append(v)
    return out


def objective_value(values: dict[str, np.ndarray], o: Objective) -> float:
    return statistic(values, o, worst="low" if o.direction == "maximize" else "high")[0]


# ------------------------------------------------------------------ the search
def _distributions(search: Search) -> dict[str, Any]:
    import optuna.distributions as D

    out: dict[str, Any] = {}
    for v in search.variables:
        if v.choices is not None:
            out[v.path] = D.CategoricalDistribution(tuple(range(len(v.choices))))
            continue
        integer = v.type == "int"
        if integer:
            step = int(v.step) if v.step else 1
            low = int(math.ceil(v.low))
            high = low + (int(math.floor(v.high)) - low) // step * step
            out[v.path] = D.IntDistribution(low, high, log=v.log, step=1 if v.log else step)
        else:
            high = v.high if v.step is None else v.low + math.floor((v.high - v.low) / v.step + 1e-9) * v.step
            out[v.path] = D.FloatDistribution(v.low, high, log=v.log, step=v.step)
    return out


def _values(search: Search, params: dict[str, Any]) -> dict[str, Any]:
    """Variables' values of a trial: choices by index; a stepped float on its grid without the
    float dust of low + n x step (7.55, not 7.550000000000001)."""
    out = {}
    for v in search.variables:
        x = params[v.path]
        if v.choices is not None:
            x = v.choices[x]
        elif v.step is not None and isinstance(x, float):
            x = round(x, 9)
        out[v.path] = x
    return out


def _sampler(search: Search):
    import optuna

    def constraints(trial):  # noqa: ANN001, ANN202
        return trial.user_attrs.get("violations", [1.0] * len(search.constraints))

    cf = constraints if search.constraints else None
    if search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=search.seed, multivariate=True, constraints_func=cf)
    if search.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=search.seed)
    return optuna.samplers.NSGAIISampler(seed=search.seed, constraints_func=cf, population_size=max(4, search.batch))


def _evaluate(scenarios: list[Scenario | None], agents: int, replications: int, seed: int, executor: Executor,
              tick: Callable[[int], None]) -> list[RunResult | None]:
    tasks = [Task(sc, agents, seed, r) for sc in scenarios if sc is not None for r in range(replications)]
    done = executor.map(tasks, done=lambda i: tick(1))
    out, k = [], 0
    for sc in scenarios:
        if sc is None:
            out.append(None)
            continue
        out.append(RunResult(sc, list(done[k:k + replications]), agents, seed))
        k += replications
    return out


def _show(v: Any) -> Any:
    if isinstance(v, (dict, tuple, list)) or v is None:
        return json.dumps(v, default=str, sort_keys=True)
    return v


def _row(search: Search, trial: Any, stage: str, agents: int, reps: int, values: dict[str, Any],
         result: RunResult | None, error: str = "", z: float = 0.0) -> dict[str, Any]:
    row: dict[str, Any] = {"trial": trial, "stage": stage, "agents": agents, "replications": reps}
    row.update({f"var:{k}": _show(v) for k, v in values.items()})
    stats = [search.objective] + ([search.trade_off] if search.trade_off else []) + [search.frontier] + list(search.constraints)
    base = [Statistic(metric="npv", statistic=s) for s in ("p10", "p50", "p90")] + [
        Statistic(metric="program_cost_pct_sales"), Statistic(metric="probability_npv_negative")]
    if result is None:
        row.update({s.label(): math.nan for s in base + stats})
        row.update({"feasible": False, "violation": math.nan, "error": error})
        return row
    m = candidate_metrics(result)
    for s in base + stats:
        worst = "low" if not isinstance(s, Constraint) or s.min is not None else "high"
        row[s.label()] = statistic(m, s, worst)[0]
    v = violations(m, search.constraints, z)
    row["objective"] = objective_value(m, search.objective)
    row["feasible"] = all(x <= 0 for x in v)
    row["violation"] = float(sum(max(0.0, x) for x in v))
    for c, x in zip(search.constraints, v):
        row[f"slack:{c.label()}"] = -x
    row["error"] = ""
    return row


@dataclass
class Outcome:
    trials: pd.DataFrame
    frontier: pd.DataFrame
    best: dict[str, Any] | None
    start: dict[str, Any]
    binding: list[dict[str, Any]]
    best_scenario: Scenario | None


def _race(search: Search, sc0: Scenario, start: dict[str, Any], executor: Executor, tick: Callable[[int], None],
          stage: str = "race", enqueue: list[dict[str, Any]] | None = None) -> tuple[list[dict[str, Any]], dict[int, Scenario]]:
    """The sampler's ``search.trials`` candidates on the race count, batch by batch, told in
    trial order: (their trials rows, their scenarios by trial number). The starting design and
    then ``enqueue`` (values of variables) are the first candidates."""
    import optuna

    ra, rr = search.racing.agents, search.racing.replications
    dists = _distributions(search)
    directions = [search.objective.direction] + ([search.trade_off.direction] if search.trade_off else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(directions=directions, sampler=_sampler(search))
        for vals in [start] + list(enqueue or []):
            params = {}
            for v in search.variables:
                x = vals[v.path]
                if v.choices is not None:
                    params[v.path] = v.choices.index(x) if x in v.choices else (
                        v.choices.index(AS_DESIGNED) if AS_DESIGNED in v.choices else 0)
                else:
                    params[v.path] = x
            if all(dists[k]._contains(dists[k].to_internal_repr(x)) for k, x in params.items()):
                study.enqueue_trial(params)
        rows: list[dict[str, Any]] = []
        scenarios: dict[int, Scenario] = {}
        sign = 1.0 if search.objective.direction == "maximize" else -1.0
        n = 0
        while n < search.trials:
            batch = [study.ask(dists) for _ in range(min(search.batch, search.trials - n))]
            values, cands, errs = [], [], []
            for t in batch:
                vals = _values(search, t.params)
                values.append(vals)
                try:
                    cands.append(apply_values(sc0, search, vals))
                    errs.append("")
                except InvalidCandidate as exc:
                    cands.append(None)
                    errs.append(str(exc))
            results = _evaluate(cands, ra, rr, search.seed, executor, tick)
            for t, vals, sc, res, err in zip(batch, values, cands, results, errs):  # told in trial order
                row = _row(search, t.number, stage, ra, rr, vals, res, err)
                rows.append(row)
                if res is None:
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
                    continue
                scenarios[t.number] = sc
                m = candidate_metrics(res)
                viol = violations(m, search.constraints)
                t.set_user_attr("violations", viol)
                objs = [row["objective"]] + ([objective_value(m, search.trade_off)] if search.trade_off else [])
                if search.sampler == "cmaes" and row["violation"] > 0:  # no constraint support: a penalty
                    scale = max(abs(row["objective"]), 1.0)
                    rel = sum(max(0.0, x) / max(abs(c.max if c.max is not None else c.min), 1e-9)
                              for c, x in zip(search.constraints, viol))
                    objs[0] = row["objective"] - sign * scale * (1 + rel)
                objs = [x if math.isfinite(x) else -sign * 1e30 for x in objs]
                study.tell(t, objs if len(objs) > 1 else objs[0])
            n += len(batch)
    return rows, scenarios


def run_search(problem: Problem, executor: Executor, tick: Callable[[int], None] = lambda n: None) -> Outcome:
    """Race, confirm, pick the winner; with ``marginal_trials``, re-search each constraint
    relaxed (module docstring)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search, sc0 = problem.search, problem.scenario
    ra, rr = search.racing.agents, search.racing.replications
    start = start_values(problem)
    rows, scenarios = _race(search, sc0, start, executor, tick)
    race = pd.DataFrame(rows)
    # confirmation: the best feasible candidates of the race and the starting design, at the full count
    feas = race[race["feasible"] & race["error"].eq("")].copy()
    feas = feas.sort_values(["objective", "trial"], ascending=[search.objective.direction != "maximize", True],
                            kind="stable")
    feas = feas.drop_duplicates(subset=[c for c in race.columns if c.startswith("var:")])
    top = [int(t) for t in feas["trial"].head(search.racing.confirm)]
    cands = [sc0] + [scenarios[t] for t in top]
    results = _evaluate(cands, search.agents, search.replications, search.seed, executor, tick)
    confirm_rows = [_row(search, "start", "confirm", search.agents, search.replications, start, results[0],
                         z=search.racing.z)]
    for t, res in zip(top, results[1:]):
        vals = {k[4:]: v for k, v in race.loc[race["trial"] == t].iloc[0].items() if k.startswith("var:")}
        confirm_rows.append(_row(search, t, "confirm", search.agents, search.replications, vals, res, z=search.racing.z))
    start_race = _row(search, "start", "race", ra, rr, start, _evaluate([sc0], ra, rr, search.seed, executor, tick)[0])
    conf = pd.DataFrame(confirm_rows)
    table = pd.concat([pd.DataFrame([start_race]), race, conf], ignore_index=True)
    ok = conf[conf["feasible"]]
    best = best_sc = None
    if len(ok):
        i = ok["objective"].idxmax() if search.objective.direction == "maximize" else ok["objective"].idxmin()
        best = conf.loc[i].to_dict()
        best_sc = sc0 if best["trial"] == "start" else scenarios[int(best["trial"])]
    marginal = binding(race, search)
    if search.marginal_trials and search.constraints:
        extra = relaxed_searches(search, sc0, start, race, executor, tick)
        marginal = binding(race, search, extra)
        table = pd.concat([table] + [x for x in extra.values() if len(x)], ignore_index=True)
    return Outcome(table, frontier(race, search, start_race), best, conf.iloc[0].to_dict(), marginal, best_sc)


def relax(c: Constraint, delta: float) -> Constraint:
    """The constraint with its bound(s) moved by ``delta`` in the direction that allows more."""
    return c.model_copy(update={"max": None if c.max is None else c.max + delta,
                                "min": None if c.min is None else c.min - delta})


def _relax_step(c: Constraint, race: pd.DataFrame) -> float:
    bound = c.max if c.max is not None else c.min
    col = race.loc[race["error"].eq(""), c.label()]
    return RELAX * abs(bound) if bound else RELAX * float((col.max() - col.min()) or 1.0)


def relaxed_searches(search: Search, sc0: Scenario, start: dict[str, Any], race: pd.DataFrame, executor: Executor,
                     tick: Callable[[int], None]) -> dict[str, pd.DataFrame]:
    """Short searches for the marginal value of each constraint: ``marginal_trials`` candidates
    (same sampler, seed, agents and race count) with that bound relaxed by its step, started
    from the start and the ``batch`` best candidates of the main race that meet the relaxed
    set (stage ``relax <constraint>``, feasibility judged against the relaxed set); and one
    with the bounds as written, started likewise (stage ``relax none``, key ``""``), so that
    both ends of the difference are searched with the same effort. Both explore a box of
    +- NEAR of each variable's range around the best candidate that keeps every bound: the
    relaxed optimum is a small move from it, and a small box is searched finely."""
    out: dict[str, pd.DataFrame] = {}
    hi = search.objective.direction == "maximize"
    slack = [f"slack:{x.label()}" for x in search.constraints]
    ok = race[race["error"].eq("")]
    feasible = ok[(ok[slack] >= 0).all(axis=1)].sort_values(["objective", "trial"], ascending=[not hi, True], kind="stable")
    if len(feasible):  # search near the best candidate that keeps every bound
        centre = {k[4:]: _parse_shown(v) for k, v in feasible.iloc[0].items() if k.startswith("var:")}
        search = search.model_copy(update={"variables": tuple(_near(v, centre[v.path]) for v in search.variables)})
    for j in [None] + list(range(len(search.constraints))):
        c = None if j is None else search.constraints[j]
        delta = 0.0 if c is None else _relax_step(c, race)
        cons = tuple(relax(x, delta) if i == j else x for i, x in enumerate(search.constraints))
        relaxed = search.model_copy(update={"constraints": cons, "trials": search.marginal_trials})
        mask = (ok[[x for i, x in enumerate(slack) if i != j]] >= 0).all(axis=1)
        if j is not None:
            mask &= ok[slack[j]] >= -delta
        seeds = ok[mask].sort_values(["objective", "trial"], ascending=[not hi, True], kind="stable").head(search.batch)
        enqueue = [{k[4:]: _parse_shown(v) for k, v in r.items() if k.startswith("var:")} for _, r in seeds.iterrows()]
        rows, _ = _race(relaxed, sc0, start, executor, tick, stage=f"relax {'none' if c is None else c.label()}",
                        enqueue=enqueue)
        out["" if c is None else c.label()] = pd.DataFrame(rows)
    return out


#: Half-width of the box a marginal re-search explores around the best candidate, as a share of
#: each variable's range.
NEAR = 0.05


def _near(v: Any, x: Any) -> Any:
    """Variable ``v`` restricted to ``x`` +- NEAR of its range (on its step grid), or as is
    when it takes choices."""
    if v.choices is not None or not isinstance(x, (int, float)):
        return v
    w = NEAR * (v.high - v.low)
    if v.log:
        return v.model_copy(update={"low": max(v.low, x / (v.high / v.low) ** NEAR),
                                    "high": min(v.high, x * (v.high / v.low) ** NEAR)})
    step = v.step or 0.0
    low = max(v.low, x - w) if not step else v.low + math.floor(max(0.0, x - w - v.low) / step) * step
    high = min(v.high, x + w) if not step else min(v.high, low + math.ceil((min(v.high, x + w) - low) / step) * step)
    low, high = round(low, 9), round(high, 9)  # on the grid, without float dust Optuna would warn about
    if high <= low:
        return v
    return v.model_copy(update={"low": low, "high": high})


def _parse_shown(v: Any) -> Any:
    """A variable's value as :func:`_show` wrote it in a trials row (choices as JSON)."""
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def frontier(race: pd.DataFrame, search: Search, start_row: dict[str, Any]) -> pd.DataFrame:
    """Feasible race candidates no other beats on both the objective and the frontier metric
    (lower is better on the frontier axis -- a cost or a risk -- unless it is a trade-off to
    maximise, such as members)."""
    axis = search.trade_off if (search.trade_off is not None and "frontier" not in search.model_fields_set) else search.frontier
    col, obj = axis.label(), search.objective.label()
    hi = search.objective.direction == "maximize"
    axis_hi = isinstance(axis, Objective) and axis.direction == "maximize"
    f = race[race["feasible"] & race[col].notna()].copy()
    f = f.sort_values([col, "objective", "trial"], ascending=[not axis_hi, not hi, True], kind="stable")
    keep, best = [], -math.inf
    for i, r in f.iterrows():
        v = r["objective"] if hi else -r["objective"]
        if v > best:
            keep.append(i)
            best = v
    out = f.loc[keep, ["trial", col, obj, "objective"] + [c for c in f.columns if c.startswith("var:")]]
    out.insert(1, "axis", col)
    return out.reset_index(drop=True)


def _slack_as_written(rows: pd.DataFrame, c: Constraint) -> pd.Series:
    """Each row's slack on ``c`` as written (z = 0), from its value column: a row of a
    re-search carries slack against its own relaxed bound, so slack is recomputed here."""
    v = rows[c.label()].astype(float)
    out = pd.Series(math.inf, index=rows.index)
    if c.max is not None:
        out = np.minimum(out, c.max - v)
    if c.min is not None:
        out = np.minimum(out, v - c.min)
    return out.fillna(-math.inf)


def binding(race: pd.DataFrame, search: Search, relaxed: dict[str, pd.DataFrame] | None = None) -> list[dict[str, Any]]:
    """Which constraints bind and the marginal objective of relaxing each (module docstring):
    from the race's candidates, and with ``relaxed`` (:func:`relaxed_searches`) from the
    re-searches' too. Every candidate is judged against the bounds as written and the relaxed
    ones alike, whichever search tried it, so a re-search that merely searched better than
    another credits no gain to a constraint: only a candidate that breaks the bound as
    written and beats everything that keeps it does."""
    if not search.constraints:
        return []
    pool = pd.concat([race] + [x for x in (relaxed or {}).values() if len(x)], ignore_index=True)
    ok = pool[pool["error"].eq("")]
    if not len(ok):
        return []
    hi = search.objective.direction == "maximize"
    slack = pd.DataFrame({c.label(): _slack_as_written(ok, c) for c in search.constraints}, index=ok.index)

    def best(mask: pd.Series) -> float:
        v = ok.loc[mask, "objective"]
        return (v.max() if hi else -v.min()) if len(v) else -math.inf

    base = best((slack >= 0).all(axis=1))
    method = (f"re-search ({search.marginal_trials} candidates each, relaxed and as written)" if relaxed
              else "tried candidates")
    out = []
    for c in search.constraints:
        bound = c.max if c.max is not None else c.min
        delta = _relax_step(c, race)
        others = [x for x in slack.columns if x != c.label()]
        mask = (slack[others] >= 0).all(axis=1) & (slack[c.label()] >= -delta) if others else (slack[c.label()] >= -delta)
        gain = best(mask) - base
        gain = gain if math.isfinite(gain) else math.nan
        out.append({"constraint": c.label(), "bound": bound, "side": "max" if c.max is not None else "min",
                    "relaxed_by": delta, "objective_gain": gain,
                    "marginal_objective_per_unit": gain / delta if delta else math.nan,
                    "binding": bool(gain > 0), "method": method})
    return out


# ------------------------------------------------------------------ outputs
OUTPUT_FILES = ("trials.csv", "frontier.csv", "frontier.png", "optimisation.json", "report.html")


def _header(problem: Problem, best: dict[str, Any]) -> str:
    s = problem.search
    lines = [f"Found by loyalty-sim {__version__} optimise: search {problem.search_path} (name {s.name}) on playbook "
             f"{problem.playbook_path}",
             f"{s.sampler} sampler, seed {s.seed}, {s.trials} candidates raced on {s.racing.agents:,} agents x "
             f"{s.racing.replications} replication(s); the best {s.racing.confirm} confirmed on {s.agents:,} agents x "
             f"{s.replications} replications (constraints met with {s.racing.z:g} standard errors to spare)",
             f"objective {s.objective.label()} ({s.objective.direction}): {best['objective']:,.0f} "
             f"{problem.scenario.market.currency} (trial {best['trial']})",
             "The design as it runs on this market (money in the market's currency, the playbook's local overrides "
             "folded in): run it with best_playbook.yaml."]
    return "".join(f"# {x}\n" for x in lines)


def write_outputs(problem: Problem, outcome: Outcome, out: Path, *, force: bool) -> dict[str, Any]:
    s = problem.search
    summary = {"tool": "loyalty-sim", "version": __version__, "command": "optimise",
               "arguments": {"search": problem.search_path, "playbook": problem.playbook_path, "seed": s.seed},
               "inputs": {**problem.scenario.inputs, problem.search_path: sha256(problem.doc.raw)},
               "search": s.model_dump(mode="json"), "currency": problem.scenario.market.currency,
               "start": outcome.start, "best": outcome.best, "binding": outcome.binding,
               "environment": environment()}
    with staged_directory(out, force) as tmp:
        outcome.trials.to_csv(tmp / "trials.csv", index=False, float_format="%.10g")
        outcome.frontier.to_csv(tmp / "frontier.csv", index=False, float_format="%.10g")
        png = _frontier_png(problem, outcome)
        (tmp / "frontier.png").write_bytes(png)
        if outcome.best_scenario is not None:
            (tmp / "best_design.yaml").write_text(_header(problem, outcome.best) + dump(outcome.best_scenario.program),
                                                  encoding="utf-8")
            (tmp / "best_playbook.yaml").write_text(_best_playbook(problem, outcome.best_scenario, tmp), encoding="utf-8")
        (tmp / "report.html").write_text(report_html(summary, png), encoding="utf-8")
        (tmp / "optimisation.json").write_text(_json(_clean(summary)), encoding="utf-8")
        names = [f for f in OUTPUT_FILES if f != "optimisation.json"] + [f for f in ("best_design.yaml", "best_playbook.yaml")
                                                                         if (tmp / f).exists()]
        man = {k: summary[k] for k in ("tool", "version", "command", "arguments", "inputs", "environment")}
        man["outputs"] = {f: hashlib.sha256((tmp / f).read_bytes()).hexdigest() for f in names}
        (tmp / "manifest.json").write_text(_json(man), encoding="utf-8")
    return summary


def _best_playbook(problem: Problem, sc: Scenario, tmp: Path) -> str:
    """The playbook running best_design.yaml as is (its overrides are folded into the design)."""
    import os

    pb = sc.playbook.model_dump(mode="python")
    here = Path(problem.playbook_path).parent
    final = tmp.parent / tmp.name  # relative paths from the output directory (a sibling of tmp)
    pb["design"] = "best_design.yaml"
    pb["market"] = os.path.relpath((here / problem.scenario.playbook.market).resolve(), final.resolve())
    if sc.baseline is not None:
        pb["baseline"] = os.path.relpath((here / problem.scenario.playbook.baseline).resolve(), final.resolve())
    pb["overrides"] = {}
    pb["name"] = f"{sc.playbook.name}_best"[:64]
    from simulator.specs import dump_yaml

    return f"# the playbook {problem.playbook_path} running best_design.yaml (local overrides folded into the design)\n" + \
        dump_yaml(Playbook.model_validate(pb).model_dump(mode="python"))


def _frontier_png(problem: Problem, outcome: Outcome) -> bytes:
    from simulator.reporting.figures import _new, png_bytes, styled

    race = outcome.trials[outcome.trials["stage"] == "race"]
    f = outcome.frontier
    axis = f["axis"].iloc[0] if len(f) else problem.search.frontier.label()
    obj = problem.search.objective.label()
    with styled():
        fig = _new(6.5, 4.0)
        ax = fig.add_subplot(1, 1, 1)
        ok = race[race["feasible"]]
        bad = race[~race["feasible"]]
        ax.scatter(bad[axis], bad[obj], s=8, color="#cccccc", label="breaks a constraint")
        ax.scatter(ok[axis], ok[obj], s=10, color="#56B4E9", label="meets the constraints")
        if len(f):
            ax.plot(f[axis], f[obj], "-o", color="#0072B2", ms=4, label="efficient frontier")
        st = race[race["trial"] == "start"]
        ax.scatter(st[axis], st[obj], marker="*", s=140, color="#D55E00", label="shipped design", zorder=5)
        ax.set_xlabel(axis)
        ax.set_ylabel(f"{obj} ({problem.scenario.market.currency})")
        ax.set_title(f"{problem.search.name}: candidates of the race")
        ax.legend()
        return png_bytes(fig)


def report_html(summary: dict[str, Any], png: bytes) -> str:
    """report.html: the report section (:mod:`simulator.reporting.optimisation`, the same one the
    study report and workbook show) on a page of its own."""
    from simulator.reporting.optimisation import Optimisation, page_html

    return page_html(Optimisation(json.loads(_json(_clean(summary))), png))


def optimise(search_path: str | Path, out: str | Path, *, playbook: str | Path | None = None, force: bool = False,
             executor: Executor | None = None, tick: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
    """Load, search, write (the command's body)."""
    problem = load_problem(search_path, playbook)
    ex = executor or Executor(workers=1)
    outcome = run_search(problem, ex, tick)
    return write_outputs(problem, outcome, Path(out), force=force)


def total_replications(search: Search) -> int:
    """Replications a search runs (for a progress bar)."""
    marginal = (len(search.constraints) + 1) * search.marginal_trials if search.constraints else 0
    return ((search.trials + 1 + marginal) * search.racing.replications
            + (search.racing.confirm + 1) * search.replications)
