"""Help that helps: every command's --help fits 80 columns without cutting a word, shows
examples, and no flag reads as a typed value."""

import pytest
from typer.testing import CliRunner

from simulator.cli import app

COMMANDS = ("validate", "reference", "run", "reproduce", "compare", "demo", "calibrate", "backtest", "optimise", "pilot")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_fits_80_columns_with_examples(command):
    res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert "Examples:" in res.output and f"loyalty-sim {command}" in res.output
    assert "…" not in res.output and "<bool>" not in res.output


def test_command_list_is_not_cut():
    res = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "80"}, terminal_width=80)
    listing = res.output.split("Commands:")[1]
    assert res.exit_code == 0 and "..." not in listing and "…" not in listing
    assert all(c in res.output for c in COMMANDS)
