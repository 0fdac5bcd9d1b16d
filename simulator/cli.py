"""The ``loyalty-sim`` command line: one command per user task.

Every command reports bad input as one line per problem (``path:line: field: message``) on
stderr and exits with code 2, without a traceback and without writing anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import re
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Iterator, List, Optional

import typer

from simulator import __version__
from simulator.errors import InputErrors
from simulator.executor import Executor

app = typer.Typer(
    name="loyalty-sim",
    help="Simulate a retail loyalty program before launching it: engagement, reward cost, "
         "points liability and incremental ROI against a counterfactual.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain click help: wraps at the terminal width, never cuts an option name
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(errors: InputErrors) -> None:
    for e in errors.errors:
        typer.echo(str(e), err=True)
    raise typer.Exit(code=2)


def _warn(warnings) -> None:
    """Valid but likely wrong: one line each on stderr, ``warning: path:line: field: message``."""
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"loyalty-sim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """loyalty-sim: design a loyalty program and know what it will do before launching it."""


@app.command(short_help="Check designs, markets and playbooks.")
def validate(
    paths: List[Path] = typer.Argument(..., help="Design, market or playbook files, or directories of them (a playbook is checked with the design and market it names)."),
) -> None:
    """Check designs, markets and playbooks; print OK or every error found.

    Examples:

    \b
    loyalty-sim validate markets/france/points_tiers_launch.yaml
    loyalty-sim validate programs markets
    """
    from simulator.scenario import validate_paths

    warnings: list = []
    errors = validate_paths(paths, warnings)
    if errors:
        _fail(InputErrors(errors))
    _warn(warnings)
    typer.echo(f"OK: {', '.join(str(p) for p in paths)}")


@app.command(short_help="The reference of every field, or the model's equations.")
def reference(
    out: Optional[Path] = typer.Option(None, "--out", help="Write the Markdown reference to this file instead of printing it."),
    model: bool = typer.Option(False, "--model", help="The model's equations and sources (docs/model.md) instead of the field reference."),
) -> None:
    """Print the reference of every field of designs, markets and playbooks (generated from the typed models), or with --model the model's equations.

    Examples:

    \b
    loyalty-sim reference --out docs/reference.md
    loyalty-sim reference --model
    """
    from simulator.output import write_text_atomic
    from simulator.reporting.fields import field_reference
    from simulator.reporting.model_doc import model_document

    text = model_document() if model else field_reference()
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_text_atomic(out, text)
        typer.echo(f"wrote {out}")


def _progress(total: int, label: str, unit: str = "months"):
    """Progress of a long command: a bar on a terminal, plain lines elsewhere (simulator.progress)."""
    from simulator.progress import progress

    return progress(total, label, unit)


@contextlib.contextmanager
def _executor(workers: int | None, scheduler: str | None, out: Path) -> Iterator[Executor]:
    """Local pool or Dask, with checkpoints in ``<out>.checkpoint`` (removed after success)."""
    import shutil

    checkpoint = out.parent / f"{out.name}.checkpoint"
    with Executor(workers, scheduler=scheduler, checkpoint=checkpoint) as ex:
        yield ex
    shutil.rmtree(checkpoint, ignore_errors=True)


# options shared by the commands that simulate
Workers = Annotated[Optional[int], typer.Option("--workers", min=1, help="Local processes (default: all cores); results do not depend on it.")]
Scheduler = Annotated[Optional[str], typer.Option("--scheduler", help=(
    "Run on Dask: 'tcp://host:port' for an existing cluster, 'local' for a local one. "
    "Finished replications are kept in OUT.checkpoint so an interrupted run resumes."))]
Force = Annotated[bool, typer.Option("--force", help="Replace an existing output directory.")]


@app.command(short_help="Simulate a playbook's design against its baseline.")
def run(
    playbook: Path = typer.Option(..., "--playbook", help="Market playbook to run (it names the design and the market)."),
    out: Path = typer.Option(..., "--out", help="Directory for the results (refused if it exists, unless --force)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Counterfactual: 'none' or a design file. Default: the playbook's baseline."),
    agents: int = typer.Option(20_000, "--agents", min=100, help="Simulated customers in the base (results are scaled to the market's customers)."),
    replications: int = typer.Option(1, "--replications", min=1, help="Independent replications; figures get P10/P50/P90."),
    seed: int = typer.Option(1, "--seed", min=0, help="Run seed: the same seed and inputs give identical outputs."),
    force: Force = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Simulate a playbook's design against its baseline; write the monthly table, summary and manifest.

    Examples:

    \b
    loyalty-sim run --playbook markets/france/points_tiers_launch.yaml \\
        --out runs/fr
    loyalty-sim run --playbook markets/usa/cagnotte_launch.yaml --baseline none \\
        --agents 100000 --replications 20 --out runs/us --force
    """
    from simulator.output import check_destination
    from simulator.runner import simulate, summary_text, write_run
    from simulator.scenario import resolve

    try:
        check_destination(out, force)
        scenario = resolve(playbook, baseline=baseline)
        _warn(scenario.warnings)
        with _progress(replications * scenario.playbook.horizon_months, f"{scenario.playbook.name}") as tick, \
                _executor(workers, scheduler, out) as ex:
            result = simulate(scenario, agents=agents, seed=seed, replications=replications, progress=tick, executor=ex)
        summary = write_run(result, out, force=force)
    except InputErrors as exc:
        _fail(exc)
    typer.echo(summary_text(summary), nl=False)
    _pilot_readout(out, scenario.market.currency)
    typer.echo(f"results: {out}")


def _pilot_readout(out: Path, currency: str) -> None:
    """A pilot run's readout against matched control stores (its pilot.csv), when it has one."""
    if (out / "pilot.csv").is_file():
        import pandas as pd

        from simulator.pilot import readout_lines, readout_summary

        typer.echo("")
        for line in readout_lines(readout_summary(pd.read_csv(out / "pilot.csv")), currency):
            typer.echo(line)


@app.command(short_help="The best design under finance's constraints (Optuna search).")
def optimise(
    search: Path = typer.Option(..., "--search", help="Search file: variables (paths into the design or playbook, bounds), objective, constraints, sampler, racing."),
    out: Path = typer.Option(..., "--out", help="Directory for the results (refused if it exists, unless --force)."),
    playbook: Optional[Path] = typer.Option(None, "--playbook", help="Playbook to optimise (default: the search file's 'playbook:')."),
    force: Force = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Search the design (and playbook) values that maximise the objective under the constraints;
    write best_design.yaml, best_playbook.yaml, trials.csv, frontier.csv, frontier.png, report.html
    and a manifest. Same search file and seed: identical trials.csv on any number of workers;
    an interrupted search resumes from OUT.checkpoint.

    Examples:

    \b
    loyalty-sim optimise --search markets/france/points_tiers_search.yaml \\
        --out runs/opt-fr
    loyalty-sim optimise --playbook markets/usa/points_tiers_launch.yaml \\
        --search markets/usa/points_tiers_search.yaml --out runs/opt-us \\
        --workers 2
    """
    from simulator.optimise import load_problem, run_search, total_replications, write_outputs
    from simulator.output import check_destination

    try:
        check_destination(out, force)
        problem = load_problem(search, playbook)
        _warn(problem.scenario.warnings)
        with _progress(total_replications(problem.search), f"search {problem.search.name}", "replications") as tick, \
                _executor(workers, scheduler, out) as ex:
            outcome = run_search(problem, ex, tick)
        write_outputs(problem, outcome, out, force=force)
    except InputErrors as exc:
        _fail(exc)
    cur = problem.scenario.market.currency
    st, best = outcome.start, outcome.best
    label = problem.search.objective.label()
    typer.echo(f"starting design: {label} {st['objective']:,.0f} {cur}, constraints {'met' if st['feasible'] else 'NOT met'}")
    if not st["feasible"]:
        from simulator.reporting.optimisation import Optimisation, start_fails

        fails = start_fails(Optimisation({"start": st, "search": problem.search.model_dump(mode="json")}, None))
        typer.echo(f"  the starting design fails: {', '.join(fails)}")
    if best is None:
        typer.echo("no candidate met every constraint at the full count: no best_design.yaml")
    else:
        typer.echo(f"best design (trial {best['trial']}): {label} {best['objective']:,.0f} {cur}")
        for k, v in best.items():
            if k.startswith("var:"):
                typer.echo(f"  {k[4:]} = {v}")
    for b in outcome.binding:
        if b["binding"]:
            typer.echo(f"binding: {b['constraint']} ({b['side']} {b['bound']:g}): relaxing it by {b['relaxed_by']:g} "
                       f"gains {b['objective_gain']:,.0f} {cur}, {b['marginal_objective_per_unit']:,.4g} {cur} per unit "
                       f"({b['method']})")
    typer.echo(f"results: {out}")


def _int_list(text: str, option: str) -> list[int]:
    """``4,8,16`` as [4, 8, 16]; anything else is one line of bad input."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise InputErrors.one("(command line)", f"{text!r} is not a list of whole numbers (expected e.g. 4,8,16)", field=option)
    return values


@app.command(short_help="Size a pilot by store: how many stores, how long (simulated power).")
def pilot(
    playbook: Path = typer.Option(..., "--playbook", help="Playbook whose design to pilot (baseline 'none'; its market needs a store network). Its own pilot: section, if any, is replaced by each candidate's stores."),
    out: Path = typer.Option(..., "--out", help="Directory for power.csv, power.png, readouts.csv, summary.txt and manifest.json (refused if it exists, unless --force)."),
    stores: str = typer.Option("4,8,16", "--stores", help="Numbers of pilot stores to try, comma-separated (each at least 2 and at most half the network: every pilot store gets its own matched control store)."),
    months: str = typer.Option("3,6,12", "--months", help="Pilot durations to try, in months after launch, comma-separated."),
    pre_months: int = typer.Option(6, "--pre-months", min=1, help="Months observed before launch: the stores are matched on them and the readout is a difference in differences against them."),
    replications: int = typer.Option(200, "--replications", min=2, help="Simulated pilots per number of stores (each covers every duration); the power's standard error is at most 0.5/sqrt(replications)."),
    alpha: float = typer.Option(0.05, "--alpha", min=0.0001, max=0.5, help="Level of the two-sided test of the pilot stores' change against their controls': the paired t-test over the matched pairs (Welch's two-group test when the pilot holds over 40% of the stores; both in readouts.csv)."),
    power: float = typer.Option(0.8, "--power", min=0.01, max=0.999, help="Target power: the recommendation is the candidate with the fewest store-months reaching it."),
    agents: int = typer.Option(20_000, "--agents", min=100, help="Simulated customers in the market (each store gets its share of them): the stores' noise is the noise of this many customers, so fewer agents than the market's customers understate power."),
    seed: int = typer.Option(1, "--seed", min=0, help="Seed: the same seed and inputs give identical outputs on any number of workers."),
    choose: str = typer.Option("random", "--choose", help="How the pilot stores are chosen in each simulated pilot: 'random' (drawn at random), 'best' (the best recruiters: the stores' enrolment multiplier, as a calibrated market estimates it), 'matched' (stores paired by size and recruitment, one of each pair piloted at random). Works on any market with a store network: no store named in the playbook."),
    force: Force = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Before a pilot: which stores, how many and for how long to detect the design's effect on revenue per customer. For each number of stores k and duration d, simulate many pilots of the design in k stores drawn at random, each read against matched control stores (nearest neighbours on the months before launch) with a paired t-test over the matched pairs at level --alpha (Welch's two-group test when the pilot holds over 40% of the stores; Welch's power shown beside it); power is the share of pilots that detect the effect. Writes power.csv (power, its standard error, the mean estimated and the true effect), power.png and a manifest; prints the smallest pilot (stores x months) reaching --power. Equations: docs/model.md, "Pilots by store: the readout against matched controls, and power".

    Examples:

    \b
    loyalty-sim pilot --playbook markets/france/premium_club_pilot.yaml \\
        --out runs/pilot-fr
    loyalty-sim pilot --playbook markets/france/premium_club_pilot.yaml \\
        --stores 4,8,16 --months 3,6,12 --replications 400 --agents 50000 \\
        --out runs/pilot-fr --force
    loyalty-sim pilot --playbook markets/calibrated/premium_club.yaml \\
        --choose best --stores 4,8 --out runs/pilot-best
    """
    from simulator import pilot as P
    from simulator.output import check_destination
    from simulator.scenario import resolve

    try:
        check_destination(out, force)
        ks, ds = _int_list(stores, "--stores"), _int_list(months, "--months")
        if choose not in P.CHOICES:
            raise InputErrors.one("(command line)", f"{choose!r} is not a choice (expected one of: {', '.join(P.CHOICES)})",
                                  field="--choose")
        scenario = resolve(playbook)
        P.check_scenario(scenario, str(playbook))
        problems = P.candidates_check(len(scenario.market.stores.stores), ks, ds)
        if problems:
            raise InputErrors.one("(command line)", problems[0].split(": ", 1)[1], field=problems[0].split(": ", 1)[0])
        _warn(scenario.warnings)
        arguments = {"playbook": str(playbook), "stores": sorted(set(ks)), "months": sorted(set(ds)),
                     "pre_months": pre_months, "replications": replications, "alpha": alpha, "power": power,
                     "agents": agents, "seed": seed, "choose": choose}
        with _progress(len(set(ks)) * replications, f"pilot {scenario.playbook.name}", "pilots") as tick, \
                _executor(workers, scheduler, out) as ex:
            study = P.power_study(scenario, stores=ks, months=ds, replications=replications, seed=seed, agents=agents,
                                  pre_months=pre_months, alpha=alpha, target=power, executor=ex, progress=tick,
                                  choose=choose)
        lines = P.write_power(study, scenario, out, force=force, arguments=arguments)
    except InputErrors as exc:
        _fail(exc)
    for line in lines:
        typer.echo(line)
    typer.echo(f"results: {out}")


@app.command(short_help="Re-run a run from its manifest; check it is identical.")
def reproduce(
    run_dir: Path = typer.Argument(..., help="Directory of an earlier run (with its manifest.json)."),
    out: Path = typer.Option(..., "--out", help="Directory for the re-run."),
    force: Force = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Re-run a run from its manifest and check every result file is bit-for-bit identical.

    Examples:

    \b
    loyalty-sim reproduce runs/fr --out runs/fr-again
    """
    from simulator.output import check_destination
    from simulator.runner import reproduce as _reproduce

    try:
        check_destination(out, force)
        with _executor(workers, scheduler, out) as ex:
            same, differ = _reproduce(run_dir, out, force=force, executor=ex)
    except InputErrors as exc:
        _fail(exc)
    for f in same:
        typer.echo(f"identical  {f}")
    for f in differ:
        typer.echo(f"DIFFERENT  {f}")
    if differ:
        raise typer.Exit(code=1)
    typer.echo(f"reproduced bit for bit: {out}")


@app.command(short_help="Compare designs across markets: report and workbook.")
def compare(
    study_file: Optional[Path] = typer.Argument(None, help="Study file (studies/*.yaml): scenarios, replications, seed. Or give --playbook (and --design)."),
    out: Path = typer.Option(..., "--out", help="Directory for the study (refused if it exists, unless --force)."),
    playbook: List[Path] = typer.Option([], "--playbook", help="A playbook to compare (repeatable)."),
    design: List[Path] = typer.Option([], "--design", help="Run each --playbook with each of these designs instead of its own (repeatable)."),
    replications: int = typer.Option(20, "--replications", min=1, help="Replications per scenario (with --playbook)."),
    seed: int = typer.Option(1, "--seed", min=0, help="Seed shared by every scenario (with --playbook)."),
    agents: int = typer.Option(20_000, "--agents", min=100, help="Simulated customers per market (with --playbook)."),
    force: Force = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Compare designs across markets: P10/P50/P90, tornado, break-even, HTML report and Excel workbook.

    Examples:

    \b
    loyalty-sim compare studies/demo.yaml --out runs/study
    loyalty-sim compare --playbook markets/france/points_tiers_launch.yaml \\
        --design programs/premium_club.yaml --out runs/fr-designs
    """
    from simulator.output import check_destination
    from simulator.study import load_study_with_search, study_from_playbooks

    problem = None
    try:
        check_destination(out, force)
        if study_file is not None and (playbook or design):
            raise InputErrors.one(str(study_file), "give a study file or --playbook/--design, not both")
        if study_file is not None:
            study, cells, problem = load_study_with_search(study_file)
        elif playbook:
            study, cells = study_from_playbooks(list(playbook), list(design), replications=replications, seed=seed, agents=agents)
        else:
            raise InputErrors.one("(command line)", "nothing to compare (expected a study file or --playbook)")
        _run_and_print(study, cells, out, force=force, workers=workers, scheduler=scheduler,
                       source=str(study_file) if study_file else None, search=problem)
    except InputErrors as exc:
        _fail(exc)


def _run_and_print(study, cells, out: Path, *, force: bool, workers: int | None, scheduler: str | None,
                   source: str | None, search=None) -> None:
    """Run a study with a progress bar; print each scenario's result in one line as it is done,
    then the verdict, the ranking of each market and baseline, and where the report is."""
    from simulator.reporting.study import short_money
    from simulator.study import run_study

    def show(scenario: str, summary: dict) -> None:
        """Each scenario as soon as its runs are done, in one line (its table is in summary.txt)."""
        npv, cur = summary["metrics"]["npv"], summary["currency"]
        typer.echo(f"{scenario}: {summary['design']} against {summary['baseline']} on {summary['market']}: NPV P50 "
                   f"{short_money(npv.get('p50'), cur)} (P10 {short_money(npv.get('p10'), cur)}, P90 "
                   f"{short_money(npv.get('p90'), cur)}), probability of a loss "
                   f"{summary['probability_npv_negative']:.0%}; details: {out / 'scenarios' / scenario / 'summary.txt'}")

    units = sum(c.scenario.playbook.horizon_months for c in cells) * study.replications
    months = 0
    if search is not None:  # the search's replications, in simulated months
        from simulator.optimise import total_replications

        months = search.scenario.playbook.horizon_months
        units += total_replications(search.search) * months
    with _progress(units, f"study {study.name}") as tick, _executor(workers, scheduler, out) as ex:
        run_study(study, cells, out, force=force, progress=tick, executor=ex, source=source, done=show, search=search,
                  search_tick=lambda n: tick(n * months))
    typer.echo(_verdict_text(out))
    if search is not None:
        from simulator.reporting.optimisation import load, verdict

        typer.echo(f"design search {search.search.name}: {verdict(load(out / 'optimisation'))}")
    for name in ("report.html", "workbook.xlsx"):
        if (out / name).exists():
            typer.echo(f"{name}: {out / name}")
    typer.echo(f"results: {out}")


def _verdict_text(study_dir: Path) -> str:
    """The verdict (the report's lines), then one ranking per market and baseline: NPVs against
    different baselines are never ranked together."""
    from simulator.reporting import study as S

    st = S.load_study(study_dir)
    lines = [f"{st.name}: {len(st.scenarios)} scenarios, {st.replications} replications, seed {st.seed}", "",
             *S.verdict_lines(st)]
    for g in S.baseline_groups(st):
        lines += ["", f"{S.market_words(g.market)}, against {S.baseline_words(g.baseline)} ({st.reporting_currency})",
                  f"{'rank':<5}{'scenario':<38}{'NPV P10':>10}{'NPV P50':>10}{'NPV P90':>10}{'P(NPV<0)':>10}"]
        lines += [f"{r.rank:<5}{r.scenario:<38}" + "".join(f"{S.short_money(v):>10}" for v in (r.npv_p10, r.npv_p50, r.npv_p90))
                  + f"{S.chance(r.probability_npv_negative):>10}" for r in g.ranking]
    return "\n".join(lines) + "\n"


@app.command(short_help="Run every shipped playbook: a verdict per market, the report.")
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Directory for the demo's results."),
    study_file: Path = typer.Option(Path("studies/demo.yaml"), "--study", help="The study the demo runs."),
    force: Force = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Run the shipped designs on the shipped markets (studies/demo.yaml): each scenario's result as it is done, a verdict per market and baseline, the rankings, the report.

    Examples:

    \b
    loyalty-sim demo
    loyalty-sim demo --out runs/demo --force
    """
    from simulator.output import check_destination
    from simulator.study import load_study

    try:
        check_destination(out, force)
        study, cells = load_study(study_file)
        _run_and_print(study, cells, out, force=force, workers=workers, scheduler=scheduler, source=str(study_file))
    except InputErrors as exc:
        _fail(exc)


# ----------------------------------------------------------------------------- calibration
# options shared by calibrate and backtest: how to read the log, how to segment it
LogFormat = Annotated[str, typer.Option("--format", help="'table': a log with named columns (CSV, Parquet, a database); 'cdnow': the CDNOW sample's layout (5 whitespace-separated columns, no header).")]
CustomerCol = Annotated[str, typer.Option("--customer-col", help="Column of the customer id.")]
DateCol = Annotated[str, typer.Option("--date-col", help="Column of the transaction date.")]
AmountCol = Annotated[str, typer.Option("--amount-col", help="Column of the amount (negative: a return, netted against the customer's spend).")]
DateFormat = Annotated[Optional[str], typer.Option("--date-format", help="strptime format of the dates, e.g. '%d/%m/%Y' (default: recognised from the dates; a time after the date is ignored).")]
OnBadRows = Annotated[str, typer.Option("--on-bad-rows", help="'fail' (default): stop at rows that cannot be used, naming their lines; 'skip': drop, count and list them.")]
SameDay = Annotated[bool, typer.Option("--merge-same-day/--keep-same-day", help="Without a transaction id: merge several rows of one customer on one day into one transaction (default).")]
RuleSetOpt = Annotated[Optional[Path], typer.Option("--segments", help="Segment with a YAML rule set (e.g. rulesets/value_engagement.yaml) instead of the default frequency-tier x recency states.")]
RecencyMonths = Annotated[int, typer.Option("--recency-months", min=1, max=60, help="Default states: recency buckets 0..N months (the last holds everyone silent that long).")]
RateTiers = Annotated[int, typer.Option("--rate-tiers", min=1, max=8, help="Default states: frequency tiers (nodes of the fitted purchase-rate distribution).")]
LapseTiers = Annotated[int, typer.Option("--lapse-tiers", min=1, max=4, help="Default states: classes of the propensity to lapse within each tier.")]
SeasonalityFrom = Annotated[Optional[Path], typer.Option("--seasonality-from", help="Market file whose 12 calendar-month multipliers to use instead of estimating them (a log under 24 months cannot tell seasonality from decay): a sister market, or this market calibrated on a longer log.")]

# How to read the log, beyond the options above: added to calibrate and backtest by
# @_reading_options and handed to _log_source as one _Reading, so that each command's body
# stays as it is.
_READING_OPTIONS: dict[str, tuple[object, object]] = {
    "store_col": (Annotated[Optional[str], typer.Option("--store-col", help="Column of the store (default: a column named 'store').")], None),
    "channel_col": (Annotated[Optional[str], typer.Option("--channel-col", help="Column of the channel (default: 'channel').")], None),
    "category_col": (Annotated[Optional[str], typer.Option("--category-col", help="Column of the product category (default: 'category').")], None),
    "member_col": (Annotated[Optional[str], typer.Option("--member-col", help="Column of the member flag, yes/no (default: 'member').")], None),
    "transaction_col": (Annotated[Optional[str], typer.Option("--transaction-col", help="Column of the transaction (invoice, receipt) id: its rows are one basket, and two ids two transactions even on one day (default: 'transaction_id').")], None),
    "drop_duplicates": (Annotated[bool, typer.Option("--drop-duplicates", help="Drop rows identical to an earlier one in every column (default: keep them; two purchases of one amount on one day are real).")], False),
    "delimiter": (Annotated[Optional[str], typer.Option("--delimiter", help="CSV delimiter: ',' ';' '|' or tab (default: recognised).")], None),
    "encoding": (Annotated[Optional[str], typer.Option("--encoding", help="CSV text encoding, e.g. utf-8, cp1252, latin-1, utf-16 (default: UTF-8 if the file is, else cp1252).")], None),
    "decimal": (Annotated[Optional[str], typer.Option("--decimal", help="Decimal mark of the amounts, . or , (default: recognised from the amounts).")], None),
    "thousands": (Annotated[Optional[str], typer.Option("--thousands", help="Thousands separator of the amounts: , . space ' or none (default: recognised).")], None),
    "table": (Annotated[Optional[str], typer.Option("--table", help="For a database (.duckdb, .db, .sqlite or a URL such as sqlite:///log.db, postgresql://...): the table of the log.")], None),
    "query": (Annotated[Optional[str], typer.Option("--query", help="For a database: an SQL query giving the log's rows, instead of --table.")], None),
}


@dataclass(frozen=True)
class _Reading:
    """The reading options of @_reading_options, for _log_source."""

    store_col: Optional[str] = None
    channel_col: Optional[str] = None
    category_col: Optional[str] = None
    member_col: Optional[str] = None
    transaction_col: Optional[str] = None
    drop_duplicates: bool = False
    delimiter: Optional[str] = None
    encoding: Optional[str] = None
    decimal: Optional[str] = None
    thousands: Optional[str] = None
    table: Optional[str] = None
    query: Optional[str] = None


_READING: ContextVar[_Reading] = ContextVar("_READING", default=_Reading())


def _reading_options(command):
    """Give a command the options of _READING_OPTIONS and read its log argument as text (a
    database URL such as sqlite:///log.db would not survive as a Path); their values reach
    _log_source as one _Reading."""
    signature = inspect.signature(command, eval_str=True)
    params = [p.replace(annotation=str) if p.name == "transactions" else p for p in signature.parameters.values()]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
               for name, (kind, default) in _READING_OPTIONS.items()]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        token = _READING.set(_Reading(**{name: kwargs.pop(name) for name in _READING_OPTIONS}))
        try:
            return command(*args, **kwargs)
        finally:
            _READING.reset(token)

    wrapper.__signature__ = signature.replace(parameters=params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    wrapper.__annotations__["return"] = signature.return_annotation
    return wrapper


def _log_source(path: str | Path, fmt: str, customer_col: str, date_col: str, amount_col: str, date_format: str | None,
                on_bad_rows: str, merge_same_day: bool):
    from simulator.calibration.pipeline import LogSource

    if fmt not in ("table", "cdnow"):
        raise InputErrors.one("(command line)", f"{fmt!r} is not a log format (expected table or cdnow)", field="--format")
    if on_bad_rows not in ("fail", "skip"):
        raise InputErrors.one("(command line)", f"{on_bad_rows!r} is not a choice (expected fail or skip)", field="--on-bad-rows")
    reading = _READING.get()
    text = str(path)
    location = text if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", text) else Path(text)
    return LogSource(path=location, format=fmt, customer_col=customer_col, date_col=date_col, amount_col=amount_col,
                     date_format=date_format, on_bad_rows=on_bad_rows, merge_same_day=merge_same_day,
                     **dataclasses.asdict(reading))


def _channels(given: list[str]) -> dict[str, float] | None:
    """``--channel NAME=SHARE`` options as a dict (None: none given)."""
    if not given:
        return None
    out: dict[str, float] = {}
    for item in given:
        name, eq, share = item.partition("=")
        try:
            value = float(share) if eq else float("nan")
        except ValueError:
            value = float("nan")
        if not name or value != value:
            raise InputErrors.one("(command line)", f"{item!r} is not a channel share (expected NAME=SHARE, e.g. email=0.4)",
                                  field="--channel")
        out[name] = value
    return out


def _optin_cols(given: list[str]) -> tuple[tuple[str, str], ...]:
    """``--optin-col CHANNEL=COLUMN`` options as (channel, column) pairs."""
    out = []
    for item in given:
        channel, eq, column = item.partition("=")
        if not eq or not channel.strip() or not column.strip():
            raise InputErrors.one("(command line)", f"{item!r} is not CHANNEL=COLUMN (e.g. email=optin_mail)",
                                  field="--optin-col")
        out.append((channel.strip(), column.strip()))
    return tuple(out)


def _cleaning_text(report) -> str:
    """What reading did, as calibrate prints it: how the file was read (to check and
    override), the counts, the lines skipped, the columns ignored, the choices made."""
    r = report
    merged = {"transaction id": "rows of one transaction id", "customer-day": "rows of one customer-day",
              "row": "nothing"}.get(r.merged_by, r.merged_by)
    lines = [f"read as: {r.read_as}"] if r.read_as else []
    duplicates = (f"dropped {r.duplicates_dropped:,} duplicates" if r.duplicates_dropped or not r.identical_rows else
                  f"kept {r.identical_rows:,} identical rows (--drop-duplicates to drop them)")
    lines.append(f"read {r.rows_read:,} rows: {r.transactions:,} transactions of {r.customers:,} customers, "
                 f"{r.first_date} .. {r.last_date}; skipped {r.bad_rows_skipped:,} bad rows, {duplicates}, "
                 f"netted {r.returns_netted:,} returns ({r.returns_unmatched:,} unmatched dropped), "
                 f"merged {r.rows_merged:,} {merged}")
    for extra in (r.skipped_text(), r.ignored_text()):
        if extra:
            lines.append(extra)
    lines += [f"  note: {n}" for n in r.notes]
    return "\n".join(lines)


@app.command(short_help="Write a market file from a transaction log.")
@_reading_options
def calibrate(
    transactions: str = typer.Argument(..., help="Transaction log: CSV (.csv, .txt, optionally .gz; any delimiter, encoding, decimal comma, day-first dates), Parquet, a DuckDB / SQLite file or a database URL; at least customer id, date and amount."),
    out: Path = typer.Option(..., "--out", help="Market file to write, markets/<market>/market.yaml; the calibration report goes beside it."),
    currency: str = typer.Option(..., "--currency", help="ISO 4217 code of the log's amounts."),
    gross_margin: float = typer.Option(..., "--gross-margin", help="Gross margin on net sales, a share (finance's figure: it is not in a log)."),
    name: Optional[str] = typer.Option(None, "--name", help="Market name (default: the market file's folder)."),
    calibration_end: Optional[str] = typer.Option(None, "--calibration-end", help="Last day used, YYYY-MM-DD (moved back to a month end; default: the log's last complete month)."),
    vat_rate: float = typer.Option(0.0, "--vat-rate", min=0.0, max=1.0, help="Sales tax/VAT rate of the amounts."),
    prices_include_tax: bool = typer.Option(True, "--prices-include-tax/--prices-exclude-tax", help="Whether the amounts include VAT."),
    reporting_currency: Optional[str] = typer.Option(None, "--reporting-currency", help="Currency of multi-market roll-ups (default: --currency)."),
    fx_to_reporting: float = typer.Option(1.0, "--fx-to-reporting", min=0.0, help="Reporting-currency units per local unit."),
    discount_rate: float = typer.Option(0.08, "--discount-rate", min=0.0, max=1.0, help="Annual discount rate for NPV."),
    seasonality: str = typer.Option("auto", "--seasonality", help="'auto': month lengths plus calendar-month effects when the log has 24+ months; 'flat': month lengths only."),
    seasonality_from: SeasonalityFrom = None,
    potential_months: int = typer.Option(3, "--potential-months", min=0, max=24, help="Months ahead of the potential score (0: none)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Calibration report (default: calibration_report.html beside the market file)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing market file and report."),
    fmt: LogFormat = "table",
    customer_col: CustomerCol = "customer_id",
    date_col: DateCol = "date",
    amount_col: AmountCol = "amount",
    date_format: DateFormat = None,
    on_bad_rows: OnBadRows = "fail",
    merge_same_day: SameDay = True,
    segments: RuleSetOpt = None,
    recency_months: RecencyMonths = 12,
    rate_tiers: RateTiers = 4,
    lapse_tiers: LapseTiers = 2,
    customers: Optional[int] = typer.Option(None, "--customers", min=1, help="The market's whole customer base when the log is a sample or one banner of several (default: the log's customers); shares as estimated, arrivals scaled by N / the log's customers."),
    channel: List[str] = typer.Option([], "--channel", help="NAME=SHARE: share of customers opted in to a contact channel (repeatable; replaces the defaults email 0.3, sms 0.2, app 0.2 and their member opt-in)."),
    optin_col: List[str] = typer.Option([], "--optin-col", help="CHANNEL=COLUMN: the log's column of the customer's opt-in to a contact channel, yes/no per transaction (repeatable; columns named optin_<channel> are used without it). Each customer's last recorded value gives the market's share of opted-in customers on the channel (replacing --channel's) and, with a store column, each store's reach; stores.csv and the report show them by store."),
) -> None:
    """Calibrate a market from a transaction log: segments, transitions, baskets, seasonality, arrivals, potential score.

    It prints how it read the log ("read as: delimiter ';', encoding cp1252,
    decimal ',', thousands ' ', dates %d/%m/%Y"), what cleaning did, and the
    columns it ignored; each choice can be overridden by its option.

    Examples:

    \b
    loyalty-sim calibrate transactions.csv --out markets/spain/market.yaml \\
        --currency EUR --gross-margin 0.28 --vat-rate 0.21
    loyalty-sim calibrate export_magasins.csv --customer-col client \\
        --date-col date_achat --amount-col montant --store-col magasin \\
        --out markets/france/market.yaml --currency EUR --gross-margin 0.3
    loyalty-sim calibrate crm_export.csv --store-col magasin \\
        --optin-col email=consent_mail --optin-col sms=consent_sms \\
        --out markets/france/market.yaml --currency EUR --gross-margin 0.3
    loyalty-sim calibrate sales.duckdb --table receipts \\
        --transaction-col receipt_no --out markets/germany/market.yaml \\
        --currency EUR --gross-margin 0.3
    loyalty-sim calibrate data/cdnow/CDNOW_sample.txt --format cdnow \\
        --out markets/cdnow/market.yaml --currency USD --gross-margin 0.3 \\
        --customers 250000
    """
    from simulator.calibration.pipeline import calibrate_file, segmentation_from
    from simulator.progress import steps

    try:
        source = _log_source(transactions, fmt, customer_col, date_col, amount_col, date_format, on_bad_rows, merge_same_day)
        source = dataclasses.replace(source, optin_cols=_optin_cols(optin_col))
        if seasonality not in ("auto", "flat"):
            raise InputErrors.one("(command line)", f"{seasonality!r} is not a choice (expected auto or flat)", field="--seasonality")
        season, season_source = _seasonality(seasonality, seasonality_from)
        seg = segmentation_from(segments, recency_months=recency_months, rate_tiers=rate_tiers, lapse_tiers=lapse_tiers,
                                lapsed_from=min(6, recency_months))
        with steps("calibrate") as step:
            done = calibrate_file(source, out, name=name, currency=currency, gross_margin=gross_margin,
                                  calibration_end=calibration_end, segmentation=seg, vat_rate=vat_rate,
                                  prices_include_tax=prices_include_tax, reporting_currency=reporting_currency,
                                  fx_to_reporting=fx_to_reporting, discount_rate=discount_rate, seasonality=season,
                                  seasonality_source=season_source, potential_months=potential_months, report=report, force=force,
                                  customers=customers, channels=_channels(channel), step=step)
    except InputErrors as exc:
        _fail(exc)
    cm = done.calibrated
    typer.echo(_cleaning_text(done.log.report))
    m = cm.market
    typer.echo(f"calibrated to {cm.calibration_end.date()}: {len(m.segments)} segments, {m.customers:,} customers, "
               f"{m.acquisition.per_month:g} arrivals per month")
    pot = cm.diagnostics.potential
    if pot is not None:
        typer.echo(f"potential score: active {pot.model.horizon_months} months ahead, out-of-time AUC {pot.auc:.3f}")
    for note in done.notes:
        typer.echo(f"  note: {note}")
    typer.echo(f"market: {done.market_path}")
    typer.echo(f"report: {done.report_path}")
    if done.stores_path is not None:
        typer.echo(f"stores: {done.stores_path}")


@app.command("estimate-response", short_help="Measure a running program's effect from its member log.")
@_reading_options
def estimate_response(
    transactions: Path = typer.Argument(..., help="Transaction log with a member flag per transaction (CSV, Parquet, a database): customer id, date, amount, member."),
    market: Path = typer.Option(..., "--market", help="The market the log comes from (markets/<m>/market.yaml)."),
    out: Path = typer.Option(..., "--out", help="Directory for estimates.json, event_study.csv/.png, balance.csv, report.html, market.yaml (the market with the measured response), manifest.json (refused if it exists, unless --force)."),
    playbook: Optional[Path] = typer.Option(None, "--playbook", help="A playbook whose design is the log's program: its earning rules rebuild members' balances for the goal gradient and rewarded behaviour, and its joining is simulated to map self-selection onto the engine's self_selection."),
    balance_col: str = typer.Option("balance", "--balance-col", help="Column of the member's points balance at the start of the month (blank for non-members)."),
    contacts: Optional[Path] = typer.Option(None, "--contacts", help="Campaign contacts table (CSV or Parquet), one row per customer, campaign and month reached: customer id, campaign, month (YYYY-MM or a date), group (contacted, or control: held out of the campaign). Measures each campaign's lift and writes the pooled one as campaign_lift."),
    contacts_customer_col: Optional[str] = typer.Option(None, "--contacts-customer-col", help="Customer column of the contacts table (default: the log's, --customer-col)."),
    contacts_campaign_col: str = typer.Option("campaign", "--contacts-campaign-col", help="Campaign column of the contacts table."),
    contacts_month_col: str = typer.Option("month", "--contacts-month-col", help="Month column of the contacts table (YYYY-MM or a date; a column 'date' is taken when there is no 'month')."),
    contacts_group_col: str = typer.Option("group", "--contacts-group-col", help="Group column of the contacts table: contacted or control."),
    seed: int = typer.Option(20240601, "--seed", min=0, help="Seed of the resampling groups: the same seed and log give identical outputs."),
    force: Force = False,
    customer_col: CustomerCol = "customer_id",
    date_col: DateCol = "date",
    amount_col: AmountCol = "amount",
    date_format: DateFormat = None,
    on_bad_rows: OnBadRows = "fail",
    merge_same_day: SameDay = True,
) -> None:
    """Estimate, from a log where members are flagged, how joiners differed before joining (self-selection) and the lift after joining by month since joining (staggered difference-in-differences against customers not yet joined), with jackknife intervals, and the naive member comparison beside them; with --playbook, the engine's self_selection (simulating the design's joining on the market) and, with balances, the goal gradient and rewarded behaviour, written into a copy of the market.

    Example:

    \b
    loyalty-sim estimate-response data/member_log/usa_cagnotte_members.csv.gz \\
        --market markets/usa/market.yaml \\
        --playbook markets/usa/cagnotte_launch.yaml --out runs/response
    """
    from simulator.response.command import estimate_file

    try:
        source = _log_source(transactions, "table", customer_col, date_col, amount_col, date_format, on_bad_rows,
                             merge_same_day)
        cols = {"campaign": contacts_campaign_col, "month": contacts_month_col, "group": contacts_group_col,
                **({"customer": contacts_customer_col} if contacts_customer_col else {})}
        result = estimate_file(source, market, out, force=force, seed=seed, playbook=playbook, balance_col=balance_col,
                               contacts=contacts, contacts_cols=cols)
    except InputErrors as exc:
        _fail(exc)
    typer.echo(f"{result['customers']:,} customers, {result['joiners']:,} joiners, months {result['months'][0]}.."
               f"{result['months'][1]}")
    for name, e in result["estimates"].items():
        m = e["mean_lift_after_joining"]
        r = e["before_joining"]["ratio"]
        typer.echo(f"{name}: lift after joining {m['estimate']:+.3f} a month ({e['level']:.0%}: {m['lo']:+.3f}..{m['hi']:+.3f}); "
                   f"naive member uplift {e['naive_member_uplift']:+.3f}; joiners before joining x{r['estimate']:.2f} "
                   f"({r['lo']:.2f}..{r['hi']:.2f}) comparable customers")
    lap = result.get("lapses")
    if lap:
        c, r = lap["change_per_member_month"], lap["relative_change"]
        typer.echo(f"lapses: {c['estimate']:+.4f} a member-month ({lap['level']:.0%}: {c['lo']:+.4f}..{c['hi']:+.4f})"
                   + (f", {r['estimate']:+.0%} of the counterfactual {lap['counterfactual_per_member_month']:.4f}" if r else ""))
    rew = result.get("reward_effects")
    if rew:
        at = rew["rewarded_behaviour_at_threshold"]
        for k, n in (("goal_gradient", rew["members"]), ("rewarded_behaviour", at["members"])):
            v = rew[k]
            typer.echo(f"{k}: {v['estimate']:+.3f} ({rew['level']:.0%}: {v['lo']:+.3f}..{v['hi']:+.3f}), "
                       f"{n:,} members" + (f" ({at['crossed']:,} member-months just rewarded)" if k != "goal_gradient" else ""))
    sel = result.get("self_selection")
    if sel:
        typer.echo(f"self_selection: {sel['estimate']:.2f} ({sel['level']:.0%}: {sel['lo']:.2f}..{sel['hi']:.2f}), "
                   f"from joiners' purchases before joining x{sel['ratio']['estimate']:.3f} those at risk of joining, "
                   f"{sel['joiners']:,} joiners")
    camp = result.get("campaign_lift")
    if camp:
        for r in camp["campaigns"]:
            typer.echo(f"campaign {r['campaign']}: " + (
                f"lift {r['estimate']:+.3f} ({camp['level']:.0%}: {r['lo']:+.3f}..{r['hi']:+.3f}), "
                f"{r['contacted_customers']:,} contacted, {r['control_customers']:,} control"
                if "estimate" in r else f"not estimated: {r['not_estimated']}"))
        p = camp["pooled"]
        if p:
            typer.echo(f"campaign_lift (pooled): {p['estimate']:+.3f} ({p['level']:.0%}: {p['lo']:+.3f}..{p['hi']:+.3f}), "
                       f"{p['customers']:,} customers")
    if result["written_to_response"]:
        typer.echo(f"written to {out / 'market.yaml'}: response.{', response.'.join(result['written_to_response'])}")
    typer.echo("not written: " + ", ".join(result["not_written_to_response"]) + " (why: estimates.json, report.html)")
    typer.echo(f"results: {out}")


@app.command(short_help="Check a calibration against what customers then did.")
@_reading_options
def backtest(
    transactions: Path = typer.Argument(..., help="Transaction log: CSV (.csv, .txt, optionally .gz) or Parquet, at least customer id, date and amount."),
    calibration_end: Optional[str] = typer.Option(None, "--calibration-end", help="Last day of the calibration window, YYYY-MM-DD (moved back to a month end). Give it or --rolling."),
    out: Path = typer.Option(..., "--out", help="Directory for backtest.csv, backtest.json, the plot and the report; with --rolling, rolling.csv, rolling.json, rolling.png and splits/ (refused if it exists, unless --force)."),
    holdout_end: Optional[str] = typer.Option(None, "--holdout-end", help="Last day of the holdout, YYYY-MM-DD (default: the log's last complete month)."),
    rolling: bool = typer.Option(False, "--rolling", help="Back-test at every quarter end with 3+ months before it and 6+ complete holdout months after it; print a table against BG/NBD."),
    replications: int = typer.Option(20, "--replications", min=1, help="Simulation runs averaged (independent seeds)."),
    agents: Optional[int] = typer.Option(None, "--agents", min=1, help="Agents per run (default: one per customer known at the calibration end)."),
    seed: int = typer.Option(20240601, "--seed", min=0, help="Seed: the same seed and log give identical outputs."),
    force: Force = False,
    fmt: LogFormat = "table",
    customer_col: CustomerCol = "customer_id",
    date_col: DateCol = "date",
    amount_col: AmountCol = "amount",
    date_format: DateFormat = None,
    on_bad_rows: OnBadRows = "fail",
    merge_same_day: SameDay = True,
    segments: RuleSetOpt = None,
    recency_months: RecencyMonths = 12,
    rate_tiers: RateTiers = 4,
    lapse_tiers: LapseTiers = 2,
    seasonality_from: SeasonalityFrom = None,
) -> None:
    """Calibrate up to a date, simulate the known customers through the holdout, compare with what they did and with BG/NBD + Gamma-Gamma. With --rolling, do it at every quarter-end split and print a table: monthly MAPE of the simulation against BG/NBD, and whether the simulation does better.

    Examples:

    \b
    loyalty-sim backtest data/cdnow/CDNOW_sample.txt --format cdnow \\
        --calibration-end 1997-09-30 --holdout-end 1998-06-30 --out runs/backtest
    loyalty-sim backtest data/online_retail/online_retail_invoices.csv.gz \\
        --rolling --out runs/rolling_online_retail
    """
    from simulator.calibration.pipeline import backtest_file, segmentation_from

    try:
        source = _log_source(transactions, fmt, customer_col, date_col, amount_col, date_format, on_bad_rows, merge_same_day)
        if rolling == (calibration_end is not None):
            raise InputErrors.one("(command line)", "give either --calibration-end DATE or --rolling (one of them)",
                                  field="--calibration-end")
        seg = segmentation_from(segments, recency_months=recency_months, rate_tiers=rate_tiers, lapse_tiers=lapse_tiers,
                                lapsed_from=min(6, recency_months))
        season, season_source = _seasonality("auto", seasonality_from)
        arguments = {"format": fmt, **_seasonality_arguments(seasonality_from)}
        if rolling:
            _rolling_backtest(source, out, holdout_end=holdout_end, agents=agents, replications=replications,
                              seed=seed, segmentation=seg, force=force, arguments=arguments, seasonality=season,
                              seasonality_source=season_source)
            return
        with _progress(replications, "back-test", "replications") as tick:
            result = backtest_file(source, out, calibration_end=calibration_end, holdout_end=holdout_end, agents=agents,
                                   replications=replications, seed=seed, segmentation=seg, force=force, progress=tick,
                                   arguments=arguments, seasonality=season, seasonality_source=season_source)
    except InputErrors as exc:
        _fail(exc)
    s = result.summary
    typer.echo(f"calibration to {s['calibration_end']}, holdout {s['holdout']['first_month']}..{s['holdout']['last_month']}, "
               f"{s['customers']:,} customers, {s['replications']} replications, seed {s['seed']}")
    typer.echo(f"{'':<28}{'actual':>12}{'simulation':>12}{'error':>8}{'MAPE':>7}{'reference':>12}{'error':>8}{'MAPE':>7}")
    for key, label in (("transactions", "holdout transactions"), ("revenue", "holdout revenue")):
        b = s[key]
        typer.echo(f"{label:<28}{b['actual']:>12,.0f}{b['forecast']:>12,.0f}{b['forecast_error_pct']:>+7.1f}%"
                   f"{b['forecast_mape_pct']:>6.1f}%{b['reference']:>12,.0f}{b['reference_error_pct']:>+7.1f}%"
                   f"{b['reference_mape_pct']:>6.1f}%")
    t = s["transactions"]
    typer.echo(f"per-customer correlation of holdout transactions: simulation {t['forecast_customer_correlation']:.3f}, "
               f"reference {t['reference_customer_correlation']:.3f}  (reference: BG/NBD; revenue x Gamma-Gamma)")
    typer.echo(f"results: {out}")


def _seasonality(choice: str, borrowed: Optional[Path]):
    """``--seasonality`` and ``--seasonality-from`` as calibrate takes them: ("auto" or "flat", None)
    or (12 multipliers, the market file's name)."""
    if borrowed is None:
        return choice, None
    if choice != "auto":
        raise InputErrors.one("(command line)", f"--seasonality {choice} and --seasonality-from both given (expected one)",
                              field="--seasonality-from")
    from simulator.calibration.pipeline import borrowed_seasonality

    return borrowed_seasonality(borrowed)


def _seasonality_arguments(borrowed: Optional[Path]) -> dict:
    """The borrowed seasonality's file and SHA-256, for a manifest's arguments."""
    if borrowed is None or not Path(borrowed).is_file():
        return {}
    import hashlib

    return {"seasonality_from": str(borrowed), "seasonality_from_sha256": hashlib.sha256(Path(borrowed).read_bytes()).hexdigest()}


def _rolling_backtest(source, out: Path, *, holdout_end, agents, replications, seed, segmentation, force, arguments,
                      seasonality, seasonality_source) -> None:
    """``backtest --rolling``: a line per split as it is done, then the table and the verdicts."""
    from simulator.calibration.pipeline import rolling_backtest_file
    from simulator.calibration.rolling import rolling_lines, split_line

    def show(row: dict, details: Path) -> None:
        typer.echo(f"{split_line(row)}; details: {details}")

    result = rolling_backtest_file(source, out, holdout_end=holdout_end, agents=agents, replications=replications,
                                   seed=seed, segmentation=segmentation, force=force,
                                   progress=lambda total: _progress(total, "rolling back-test", "replications"),
                                   done=show, arguments=arguments, seasonality=seasonality,
                                   seasonality_source=seasonality_source)
    typer.echo("")
    for line in rolling_lines(result):
        typer.echo(line)
    typer.echo(f"results: {out}")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except InputErrors as exc:  # a command that did not catch its own input errors
        for e in exc.errors:
            print(str(e), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
