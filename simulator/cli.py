"""The ``loyalty-sim`` command line: one command per user task.

Every command reports bad input as one line per problem (``path:line: field: message``) on
stderr and exits with code 2, without a traceback and without writing anything.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from simulator import __version__
from simulator.errors import InputErrors

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
) -> None:
    """Print the reference of every field of designs, markets and playbooks (generated from the typed models)."""
    from simulator.reporting.fields import field_reference
    from simulator.output import write_text_atomic

    text = field_reference()
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_text_atomic(out, text)
        typer.echo(f"wrote {out}")


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
