"""Every rejection class has a broken file and the words its message must contain.

Each ``bad/*.yaml`` starts with comment lines::

    # expect: <text the error must contain>     (one or more)
    # line: N                                   (the line the error must name)

The file is validated as ``loyalty-sim validate`` does (a playbook together with the design
and market it names, small valid ones in ``fixtures/``). The test passes when one error names
this file and line, contains every expected text, and says what was expected. Cases that
cannot be committed as fixtures (an empty file, non-UTF-8 bytes, a file over 1 MiB) are
generated in ``tmp_path``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.errors import InputError
from simulator.scenario import resolve, validate_paths
from simulator.specs import yamlio
from simulator.specs.yamlio import MAX_BYTES

HERE = Path(__file__).parent
BAD = HERE / "bad"
FIXTURES = HERE / "fixtures"
CASES = sorted(BAD.glob("*.yaml"))

#: Rejection classes the requirement names; each must keep its broken file.
REQUIRED_CASES = {
    "design_unknown_key", "market_unknown_key", "playbook_unknown_key", "design_wrong_type",
    "market_wrong_type", "design_missing_required", "playbook_missing_required",
    "market_probability_above_1", "market_probability_below_0", "market_shares_sum",
    "market_transition_row_sum", "market_transition_unknown_segment",
    "design_thresholds_not_ascending", "design_first_threshold_not_zero", "design_duplicate_tier",
    "design_duplicate_reward", "market_duplicate_segment", "playbook_duplicate_campaign",
    "design_duplicate_yaml_key", "design_reward_unknown_tier", "playbook_campaign_unknown_segment",
    "playbook_campaign_unknown_tier", "playbook_unknown_channel", "playbook_override_unknown_tier",
    "playbook_override_unknown_reward", "playbook_no_fx_rate", "design_negative_money",
    "design_negative_points", "playbook_invalid_date", "playbook_timestamp", "market_no_unquoted",
    "design_yes_boolean", "design_version_text", "design_leading_zero", "design_nan",
    "comment_only", "design_python_tag", "design_billion_laughs", "design_alias",
    "design_multiple_documents", "top_level_list", "playbook_missing_design",
    "design_unknown_expiry_policy", "market_seasonality_11", "design_cashback_price_above_threshold",
}


def expectations(path: Path) -> tuple[list[str], int]:
    text = path.read_text(encoding="utf-8")
    expect = re.findall(r"^# expect: (.+?)\s*$", text, re.M)
    lines = re.findall(r"^# line: (\d+)\s*$", text, re.M)
    assert expect, f"{path.name}: no '# expect:' line"
    assert len(lines) == 1, f"{path.name}: expected exactly one '# line:' line"
    return expect, int(lines[0])


def assert_reported(errors: list[InputError], path: Path | str, expect: list[str], line: int | None) -> InputError:
    """One error names ``path`` and ``line``, contains every expected text and says what was expected."""
    shown = "\n".join(map(str, errors)) or "(no error at all)"
    for e in errors:
        if e.path == str(path) and e.line == line and all(w in str(e) for w in expect):
            where = f"{path}:{line}: " if line is not None else f"{path}: "
            assert str(e).startswith(where), str(e)
            assert "expected" in e.message, f"message does not say what was expected: {e}"
            return e
    raise AssertionError(f"no error at {path}:{line} containing {expect!r}; got:\n{shown}")


def test_suite_covers_every_rejection_class():
    assert REQUIRED_CASES <= {p.stem for p in CASES}, sorted(REQUIRED_CASES - {p.stem for p in CASES})


def test_fixtures_are_valid():
    """The bad playbooks fail for their own reason, not because a fixture is broken."""
    assert validate_paths([FIXTURES]) == []
    assert resolve(FIXTURES / "playbook.yaml").program.currency == "USD"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_file_is_rejected(path: Path):
    expect, line = expectations(path)
    errors = validate_paths([path])
    assert_reported(errors, path, expect, line)
    assert all(e.path == str(path) for e in errors), "errors reported in another file: a fixture is broken"


def test_all_bad_files_at_once_report_every_file():
    """Validating many files reports every file's errors, not just the first file's."""
    errors = validate_paths(CASES)
    assert {e.path for e in errors} == {str(p) for p in CASES}


# ------------------------------------------------------------ generated cases
def test_empty_file(tmp_path: Path):
    path = tmp_path / "empty.yaml"
    path.write_bytes(b"")
    assert_reported(validate_paths([path]), path, ["file is empty"], 1)


def test_whitespace_only_file(tmp_path: Path):
    path = tmp_path / "blank.yaml"
    path.write_text("\n   \n\n", encoding="utf-8")
    assert_reported(validate_paths([path]), path, ["file is empty"], 1)


def test_non_utf8_file(tmp_path: Path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: cafe\ncurrency: EUR\ndescription: caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    assert_reported(validate_paths([path]), path, ["is not UTF-8 text", "byte 0xe9", "save the file as UTF-8"], 3)


def test_utf8_with_bom_is_accepted(tmp_path: Path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + (FIXTURES / "design.yaml").read_bytes())
    assert validate_paths([path]) == []


def test_nul_bytes(tmp_path: Path):
    path = tmp_path / "nul.yaml"
    path.write_bytes(b"name: a\x00b\n")
    assert_reported(validate_paths([path]), path, ["NUL"], None)


def test_file_over_one_mebibyte(tmp_path: Path):
    path = tmp_path / "huge.yaml"
    body = (FIXTURES / "design.yaml").read_text(encoding="utf-8")
    padding = "# padding\n" * (MAX_BYTES // 10 + 1)
    path.write_text(body + padding, encoding="utf-8")
    assert path.stat().st_size > MAX_BYTES
    e = assert_reported(validate_paths([path]), path, ["bytes", f"expected at most {MAX_BYTES:,}"], None)
    assert "1,048,576" in e.message


def test_size_limit_boundary(tmp_path: Path, monkeypatch):
    """A file of exactly the limit is read, one byte more is not (limit lowered to keep it fast)."""
    monkeypatch.setattr(yamlio, "MAX_BYTES", 4096)
    body = (FIXTURES / "design.yaml").read_bytes()
    at = tmp_path / "at.yaml"
    at.write_bytes(body + b"#" * (4096 - len(body) - 1) + b"\n")
    assert at.stat().st_size == 4096
    assert validate_paths([at]) == []
    over = tmp_path / "over.yaml"
    over.write_bytes(b" " + at.read_bytes())
    assert_reported(validate_paths([over]), over, ["file is 4,097 bytes", "expected at most 4,096"], None)


def test_missing_file(tmp_path: Path):
    path = tmp_path / "nowhere.yaml"
    assert_reported(validate_paths([path]), path, ["file not found"], None)


def test_several_errors_in_one_file_are_all_listed():
    errors = validate_paths([BAD / "market_probability_below_0.yaml"])
    assert {e.field for e in errors} >= {"transitions.a.a", "transitions.a.b"}


def test_invalid_playbook_still_reports_its_design(tmp_path: Path):
    """A typo in the playbook does not hide an error in the design it names."""
    (tmp_path / "design.yaml").write_text(
        (FIXTURES / "design.yaml").read_text(encoding="utf-8").replace("points_per_unit: 1", "points_per_unit: -1"),
        encoding="utf-8")
    pb = tmp_path / "pb.yaml"
    pb.write_text(f"name: pb\ndesign: design.yaml\nmarket: {FIXTURES / 'market.yaml'}\n"
                  "launch: 2027-01-01\nhorizon_monthz: 12\n", encoding="utf-8")
    errors = validate_paths([pb])
    assert_reported(errors, pb, ["unknown field 'horizon_monthz'", "did you mean 'horizon_months'"], 5)
    assert_reported(errors, tmp_path / "design.yaml", ["earn.points_per_unit", "got -1"], 5)


# ------------------------------------------------------------ through the CLI
def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "simulator", "validate", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


LINE = re.compile(r"^(?P<path>[^\s:][^:]*):(?P<line>\d+): \S.*$")


@pytest.mark.parametrize("names", [
    ("design_python_tag.yaml",),
    ("design_unknown_key.yaml", "market_shares_sum.yaml", "playbook_unknown_channel.yaml",
     "design_billion_laughs.yaml", "playbook_invalid_date.yaml"),
], ids=["python-tag", "several-files"])
def test_cli_rejects_with_exit_2_and_one_line_per_error(tmp_path: Path, names: tuple[str, ...]):
    files = [BAD / n for n in names]
    proc = run_cli(*map(str, files), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""
    lines = proc.stderr.splitlines()
    assert lines, "no error printed"
    for text in lines:
        assert LINE.match(text), f"not 'path:line: ...': {text!r}"
    for f in files:  # each file's expected error is among the lines
        expect, line = expectations(f)
        assert any(t.startswith(f"{f}:{line}: ") and all(w in t for w in expect) for t in lines), (f, lines)
    assert list(tmp_path.iterdir()) == [], "validate wrote something"


def test_cli_relative_paths_stay_relative():
    """Messages name files as the user typed them."""
    proc = run_cli(str(Path("tests/specs/bad/playbook_override_unknown_tier.yaml")), cwd=HERE.parent.parent)
    assert proc.returncode == 2
    assert proc.stderr.startswith("tests/specs/bad/playbook_override_unknown_tier.yaml:12: overrides.tier_thresholds.silvr: ")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", ["design_billion_laughs.yaml", "design_alias_bomb_lines.yaml"])
def test_cli_reports_an_alias_bomb_as_one_line(tmp_path: Path, name: str):
    """A "billion laughs" file: one line for the file (not one per alias), exit 2, never expanded."""
    path = BAD / name
    assert len(validate_paths([path])) == 1
    proc = run_cli(str(path), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    (line,) = proc.stderr.splitlines()
    expect, at = expectations(path)
    assert line.startswith(f"{path}:{at}: ") and all(w in line for w in expect), line
    assert "expected plain data without anchors or aliases" in line
