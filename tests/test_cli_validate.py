"""The command line: `validate` on the shipped files, `--help` of every command, and the
committed field reference kept in step with the models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from simulator.cli import app

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference.md"

runner = CliRunner(env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})


def command_names(help_text: str) -> list[str]:
    """Command names listed under "Commands" in a --help output (rich box or plain click)."""
    names: list[str] = []
    inside = False
    for line in help_text.splitlines():
        if re.match(r"^\s*(╭─ )?Commands\b", line):
            inside = True
            continue
        if not inside:
            continue
        if line.startswith("╰") or (not line.strip()) or re.match(r"^\s*╭─ ", line):
            break
        m = re.match(r"^(?:│ |  )([a-z][\w-]*)(?:\s|$)", line)  # a name starts the row; wrapped text is indented
        if m:
            names.append(m.group(1))
    return names


def test_validate_shipped_files_ok(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, ["validate", "programs", "markets"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK")
    assert result.stderr == ""


def test_validate_bad_file_exit_2(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, ["validate", "programs", "tests/specs/bad/design_duplicate_tier.yaml"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "tests/specs/bad/design_duplicate_tier.yaml:14: tiers.levels.2.name: duplicate tier name 'silver' "
        "(also item 1; expected unique names)"]
    assert "Traceback" not in result.output


def test_root_help():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout
    names = command_names(result.stdout)
    assert {"validate", "reference"} <= set(names), result.stdout
    # the parser sees every registered command (so the next test covers new commands)
    registered = set(typer.main.get_command(app).commands)
    assert set(names) == registered, (names, result.stdout)


def _listed_commands() -> list[str]:
    return command_names(runner.invoke(app, ["--help"]).stdout)


@pytest.mark.parametrize("command", _listed_commands())
def test_command_help(command: str):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout and command in result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_no_arguments_shows_help():
    result = runner.invoke(app, [])
    assert "Usage" in result.output
    assert result.exit_code in (0, 2)


def test_reference_is_current():
    result = runner.invoke(app, ["reference"])
    assert result.exit_code == 0, result.output
    committed = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
    assert result.stdout == committed, (
        "docs/reference.md is out of date with the typed models: run `make docs` "
        "(loyalty-sim reference --out docs/reference.md) and commit the result")


def test_reference_lists_every_field():
    from simulator.reporting.fields import _models
    from simulator.specs import Market, Playbook, Program

    text = REFERENCE.read_text(encoding="utf-8")
    for root in (Program, Market, Playbook):
        for model in _models(root):
            assert f"### {model.__name__}" in text
            for name in model.model_fields:
                assert f"| `{name}` |" in text, f"{model.__name__}.{name} missing from the reference"


def test_reference_out_writes_file(tmp_path):
    out = tmp_path / "ref.md"
    result = runner.invoke(app, ["reference", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == runner.invoke(app, ["reference"]).stdout
