"""The ``loyalty-sim`` command line: one command per user task.

Every command reports bad input as one line per problem (``path:line: field: message``) on
stderr and exits with code 2, without a traceback and without writing anything.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import typer

from simulator import __version__
from simulator.errors import InputErrors
from simulator.executor import Executor

app = typer.Typer(
    name="loyalty-sim",
    help="Simulate a retail loyalty program before launching it: engagement, reward cost, "
         "points liability and incremental ROI against a counterfactual.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(errors: InputErrors) -> None:
    for e in errors.errors:
        typer.echo(str(e), err=True)
    raise typer.Exit(code=2)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"loyalty-sim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """loyalty-sim: design a loyalty program and know what it will do before launching it."""


@app.command()
def validate(
    paths: List[Path] = typer.Argument(..., help="Design, market or playbook files, or directories of them (a playbook is checked with the design and market it names)."),
) -> None:
    """Check designs, markets and playbooks; print OK or every error found."""
    from simulator.scenario import validate_paths

    errors = validate_paths(paths)
    if errors:
        _fail(InputErrors(errors))
    typer.echo(f"OK: {', '.join(str(p) for p in paths)}")


@app.command()
def reference(
    out: Optional[Path] = typer.Option(None, "--out", help="Write the Markdown reference to this file instead of printing it."),
    model: bool = typer.Option(False, "--model", help="The model's equations and sources (docs/model.md) instead of the field reference."),
) -> None:
    """Print the reference of every field of designs, markets and playbooks (generated from the typed models), or with --model the model's equations."""
    from simulator.output import write_text_atomic
    from simulator.reporting.fields import field_reference
    from simulator.reporting.model_doc import model_document

    text = model_document() if model else field_reference()
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_text_atomic(out, text)
        typer.echo(f"wrote {out}")


@contextlib.contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over simulated months (silent when stderr is not a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(label, total=total)
        yield lambda months: bar.advance(task, months)


@contextlib.contextmanager
def _executor(workers: int | None, scheduler: str | None, out: Path) -> Iterator[Executor]:
    """Local pool or Dask, with checkpoints in ``<out>.checkpoint`` (removed after success)."""
    import shutil

    checkpoint = out.parent / f"{out.name}.checkpoint"
    with Executor(workers, scheduler=scheduler, checkpoint=checkpoint) as ex:
        yield ex
    shutil.rmtree(checkpoint, ignore_errors=True)


WORKERS_HELP = "Local processes (default: all cores); results do not depend on it."
SCHEDULER_HELP = ("Run on Dask: 'tcp://host:port' for an existing cluster, 'local' for a local one. "
                  "Finished replications are kept in OUT.checkpoint so an interrupted run resumes.")


@app.command()
def run(
    playbook: Path = typer.Option(..., "--playbook", help="Market playbook to run (it names the design and the market)."),
    out: Path = typer.Option(..., "--out", help="Directory for the results (refused if it exists, unless --force)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Counterfactual: 'none' or a design file. Default: the playbook's baseline."),
    agents: int = typer.Option(20_000, "--agents", min=100, help="Simulated customers in the base (results are scaled to the market's customers)."),
    replications: int = typer.Option(1, "--replications", min=1, help="Independent replications; figures get P10/P50/P90."),
    seed: int = typer.Option(1, "--seed", min=0, help="Run seed: the same seed and inputs give identical outputs."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output directory."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help=WORKERS_HELP),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help=SCHEDULER_HELP),
) -> None:
    """Simulate a playbook's design against its baseline; write the monthly table, summary and manifest."""
    from simulator.output import check_destination
    from simulator.runner import simulate, summary_text, write_run
    from simulator.scenario import resolve

    try:
        check_destination(out, force)
        scenario = resolve(playbook, baseline=baseline)
        with _progress(replications * scenario.playbook.horizon_months, f"{scenario.playbook.name}") as tick, \
                _executor(workers, scheduler, out) as ex:
            result = simulate(scenario, agents=agents, seed=seed, replications=replications, progress=tick, executor=ex)
        summary = write_run(result, out, force=force)
    except InputErrors as exc:
        _fail(exc)
    typer.echo(summary_text(summary), nl=False)
    typer.echo(f"results: {out}")


@app.command()
def reproduce(
    run_dir: Path = typer.Argument(..., help="Directory of an earlier run (with its manifest.json)."),
    out: Path = typer.Option(..., "--out", help="Directory for the re-run."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output directory."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help=WORKERS_HELP),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help=SCHEDULER_HELP),
) -> None:
    """Re-run a run from its manifest and check every result file is bit-for-bit identical."""
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


@app.command()
def compare(
    study_file: Optional[Path] = typer.Argument(None, help="Study file (studies/*.yaml): scenarios, replications, seed. Or give --playbook (and --design)."),
    out: Path = typer.Option(..., "--out", help="Directory for the study (refused if it exists, unless --force)."),
    playbook: List[Path] = typer.Option([], "--playbook", help="A playbook to compare (repeatable)."),
    design: List[Path] = typer.Option([], "--design", help="Run each --playbook with each of these designs instead of its own (repeatable)."),
    replications: int = typer.Option(20, "--replications", min=1, help="Replications per scenario (with --playbook)."),
    seed: int = typer.Option(1, "--seed", min=0, help="Seed shared by every scenario (with --playbook)."),
    agents: int = typer.Option(20_000, "--agents", min=100, help="Simulated customers per market (with --playbook)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output directory."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help=WORKERS_HELP),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help=SCHEDULER_HELP),
) -> None:
    """Compare designs across markets: P10/P50/P90, tornado, break-even, HTML report and Excel workbook."""
    from simulator.output import check_destination
    from simulator.study import load_study, study_from_playbooks

    try:
        check_destination(out, force)
        if study_file is not None and (playbook or design):
            raise InputErrors.one(str(study_file), "give a study file or --playbook/--design, not both")
        if study_file is not None:
            study, cells = load_study(study_file)
        elif playbook:
            study, cells = study_from_playbooks(list(playbook), list(design), replications=replications, seed=seed, agents=agents)
        else:
            raise InputErrors.one("(command line)", "nothing to compare (expected a study file or --playbook)")
        _run_and_print(study, cells, out, force=force, workers=workers, scheduler=scheduler,
                       source=str(study_file) if study_file else None, summaries=False)
    except InputErrors as exc:
        _fail(exc)


def _run_and_print(study, cells, out: Path, *, force: bool, workers: int | None, scheduler: str | None,
                   source: str | None, summaries: bool) -> None:
    """Run a study with a progress bar; print each scenario's summary (optionally), the
    ranking and where the report is."""
    from simulator.study import run_study

    units = sum(c.scenario.playbook.horizon_months for c in cells) * study.replications
    with _progress(units, f"study {study.name}") as tick, _executor(workers, scheduler, out) as ex:
        doc = run_study(study, cells, out, force=force, progress=tick, executor=ex, source=source)
    if summaries:
        for s in doc["scenarios"]:
            typer.echo((out / s["dir"] / "summary.txt").read_text(encoding="utf-8"))
    typer.echo(_ranking_text(doc))
    for name in ("report.html", "workbook.xlsx"):
        if (out / name).exists():
            typer.echo(f"{name}: {out / name}")
    typer.echo(f"results: {out}")


def _ranking_text(doc: dict) -> str:
    cur = doc["reporting_currency"]
    lines = [f"{doc['name']}: {len(doc['scenarios'])} scenarios, {doc['replications']} replications, seed {doc['seed']}",
             f"{'rank':<5}{'scenario':<38}{'NPV P10':>14}{'NPV P50':>14}{'NPV P90':>14}{'P(NPV<0)':>10}   ({cur})"]
    for i, r in enumerate(doc["ranking"], 1):
        lines.append(f"{i:<5}{r['scenario']:<38}{r['npv_p10']:>14,.0f}{r['npv_p50']:>14,.0f}{r['npv_p90']:>14,.0f}"
                     f"{r['probability_npv_negative']:>10.0%}")
    return "\n".join(lines) + "\n"


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Directory for the demo's results."),
    study_file: Path = typer.Option(Path("studies/demo.yaml"), "--study", help="The study the demo runs."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output directory."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help=WORKERS_HELP),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help=SCHEDULER_HELP),
) -> None:
    """Run the shipped designs on the shipped markets (studies/demo.yaml): each playbook's summary, the ranking, the report."""
    from simulator.output import check_destination
    from simulator.study import load_study

    try:
        check_destination(out, force)
        study, cells = load_study(study_file)
        _run_and_print(study, cells, out, force=force, workers=workers, scheduler=scheduler, source=str(study_file),
                       summaries=True)
    except InputErrors as exc:
        _fail(exc)


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
