"""The strict YAML reader: YAML 1.2 scalars, tuples, line numbers, rejections, and a dumper
whose output it reads back unchanged."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.errors import InputErrors
from simulator.specs.yamlio import MAX_BYTES, LineMap, dump_yaml, parse_yaml, read_yaml


def read(text: str) -> Any:
    return parse_yaml(text.encode("utf-8"), "t.yaml").data


def errors(text: str) -> list[str]:
    with pytest.raises(InputErrors) as info:
        parse_yaml(text.encode("utf-8"), "t.yaml")
    return [str(e) for e in info.value.errors]


# ------------------------------------------------------------------ scalars
@pytest.mark.parametrize("text, value", [
    ("true", True), ("false", False), ("True", True), ("FALSE", False),
    ("null", None), ("~", None), ("", None), ("Null", None),
    ("0", 0), ("-3", -3), ("+7", 7), ("1_000_000", 1_000_000), ("0x1F", 31), ("0xff_ff", 0xFFFF),
    ("1.5", 1.5), ("-0.25", -0.25), ("1e3", 1000.0), ("2.5E-2", 0.025), (".5", 0.5), ("1_000.5", 1000.5),
    ("2027-01-31", dt.date(2027, 1, 31)), ("2028-02-29", dt.date(2028, 2, 29)),
    ("hello", "hello"), ("EUR", "EUR"), ("a b c", "a b c"), ("2027-1-31", "2027-1-31"),
    ("'NO'", "NO"), ('"1.10"', "1.10"), ("'012'", "012"), ("'2027-01-01'", "2027-01-01"),
    ('"true"', "true"), ("'null'", "null"), ("'yes'", "yes"), ('".nan"', ".nan"),
])
def test_yaml_1_2_scalars(text: str, value: Any):
    got = read(f"v: {text}\n")["v"]
    assert got == value and type(got) is type(value)


def test_block_scalars_are_text():
    assert read("v: |\n  12\n")["v"] == "12\n"
    assert read("v: >-\n  no\n")["v"] == "no"


def test_sequences_are_tuples():
    data = read("a: [1, 2]\nb:\n  - x\n  - [w, {z: 1}]\nc: []\nd: {}\n")
    assert data == {"a": (1, 2), "b": ("x", ("w", {"z": 1})), "c": (), "d": {}}
    assert isinstance(data["b"][1], tuple)


def test_keys_are_always_text():
    # a YAML 1.1 reader would make these keys True, None and 1
    assert read("'on': 1\nnull: 2\n1: 3\n") == {"on": 1, "null": 2, "1": 3}


@pytest.mark.parametrize("text, words", [
    ("v: yes", "unquoted yes is read as a boolean"), ("v: NO", "unquoted NO"), ("v: on", "unquoted on"),
    ("v: Off", "unquoted Off"), ("v: y", "unquoted y"), ("v: N", "unquoted N"),
    ("v: 012", "leading zero"), ("v: -007", "leading zero"), ("v: 0_1", "leading zero"),
    ("v: .nan", "not a finite number"), ("v: .inf", "not a finite number"), ("v: -.Inf", "not a finite number"),
    ("v: 2027-02-30", "not a valid date"), ("v: 2027-13-01", "not a valid date"),
    ("v: 2027-01-01 10:00", "is a timestamp"), ("v: 2027-01-01T10:00:00Z", "is a timestamp"),
    ("v: !!str 5", "tag tag:yaml.org,2002:str is not allowed"), ("v: !custom x", "tag !custom is not allowed"),
    ("v: !!python/object/apply:os.system [ls]", "python/object/apply:os.system is not allowed"),
    ("a: &x 1\nb: *x", "anchor &x is not allowed"), ("a: 1\nb: {<<: {c: 1}}", "merge keys (<<) are not allowed"),
    ("a: 1\na: 2", "duplicate key 'a' (first given on line 1"), ("? [a]\n: 1", "a key must be plain text"),
    ("a: 1\n---\nb: 2", "more than one YAML document"), ("- 1\n- 2", "expected a mapping of fields at the top"),
    ("just text", "got the value 'just text'"), ("# nothing\n", "file is empty"), ("a: [1, 2", "is not valid YAML"),
    ("a:\n\tb: 1", "is not valid YAML"),
])
def test_rejections(text: str, words: str):
    found = errors(text + "\n")
    assert any(words in e for e in found), found
    assert all("expected" in e for e in found), found
    assert all(e.startswith("t.yaml") for e in found)


def test_every_problem_of_a_file_is_listed():
    found = errors("a: yes\nb: 012\nc: .nan\nd: 2027-02-30\n")
    assert [e.split(":")[1] for e in found] == ["1", "2", "3", "4"]


def test_alias_bomb_is_not_expanded():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghij"):
        prev = "abcdefghij"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    (found,) = errors("\n".join(lines) + "\n")  # one line for the file, not one per alias
    assert found.startswith("t.yaml:1: anchor &a is not allowed, nor are the others "
                            "(10 anchors and 81 aliases in all, the first alias on line 2; expected plain data")


def test_largest_alias_bomb_is_one_line():
    """A file of the largest size made of aliases, each on its own line: one line naming the first
    anchor and counting the aliases (the file is parsed once, never expanded; no timing here: speed
    is a benchmark's business, and this took 2 s to 21 s depending on the machine's load)."""
    text = "a: &a [lol]\nb:\n" + "  - *a\n" * ((MAX_BYTES - 20) // 7)
    (found,) = errors(text)
    assert found.startswith("t.yaml:1: anchor &a is not allowed") and "149,793 aliases" in found


def test_a_few_anchors_and_aliases_are_listed_one_by_one():
    found = errors("a: &x 1\nb: *x\nc: *x\n")
    assert [e.split(": ", 1)[0] for e in found] == ["t.yaml:1", "t.yaml:2", "t.yaml:3"]
    assert "alias *x is not allowed (expected plain data" in found[1]


@pytest.mark.parametrize("text", ["a: " + "[" * 5000 + "]" * 5000, "a:\n" + "".join(" " * i + "- \n" for i in range(1, 300))])
def test_deep_nesting_is_rejected_not_a_crash(text: str):
    (found,) = errors(text + "\n")
    assert "nested 101 deep (expected at most 100 levels)" in found


def test_invalid_utf8_names_the_line():
    with pytest.raises(InputErrors) as info:
        parse_yaml(b"a: 1\nb: \xff\n", "t.yaml")
    (e,) = info.value.errors
    assert e.line == 2 and "not UTF-8" in e.message


def test_read_yaml_missing_and_directory(tmp_path):
    with pytest.raises(InputErrors, match="file not found"):
        read_yaml(tmp_path / "nope.yaml")
    with pytest.raises(InputErrors, match="is a directory"):
        read_yaml(tmp_path)


# ------------------------------------------------------------------ line numbers
DOC = """\
# comment
name: x          # line 2
earn:
  points_per_unit: 1
  bonuses: {enrolment: 5}
levels:
  - name: a
    threshold: 0
  - name: b

    threshold: 10
"""


def test_line_map():
    doc = parse_yaml(DOC.encode(), "t.yaml")
    lines: LineMap = doc.lines
    assert lines.lines[("name",)] == 2
    assert lines.lines[("earn",)] == 3
    assert lines.lines[("earn", "points_per_unit")] == 4
    assert lines.lines[("earn", "bonuses", "enrolment")] == 5
    assert lines.lines[("levels", 1)] == 9
    assert lines.lines[("levels", 1, "threshold")] == 11
    # the deepest known prefix of a location that is not in the file (a missing field)
    assert lines.line_of(("levels", 1, "benefits", 0)) == 9
    assert lines.line_of(("nowhere",)) == 2  # the document itself, which starts at its first key
    assert lines.text_of(("earn", "points_per_unit")) == "1"
    assert doc.raw == DOC.encode()


def test_line_of_a_key_is_the_key_line():
    doc = parse_yaml(b"a:\n  - 1\n  - 2\nb:\n\n  c: 1\n", "t.yaml")
    assert doc.lines.lines[("a",)] == 1
    assert doc.lines.lines[("a", 1)] == 3
    assert doc.lines.lines[("b",)] == 4
    assert doc.lines.lines[("b", "c")] == 6


# ------------------------------------------------------------------ dumping
AMBIGUOUS = ["NO", "no", "No", "yes", "Y", "n", "on", "OFF", "true", "False", "null", "Null", "~", "",
             "1.10", "1.0", "012", "0012", "0", "-1", "+1", "1_000", "0x10", "1e5", ".5", "5.",
             ".nan", ".inf", "-.inf", "2027-01-01", "2027-02-30", "2027-01-01 10:00", "2027-01-01T10:00",
             "<<", "*a", "&a", "!tag", "# not a comment", "a: b", "- item", "[1]", "{a: 1}", " lead", "trail ",
             "multi\nline", "tab\there", "quote'", 'dq"', "\\", "%percent", "@at", "`tick", "|", ">", "?", ":"]


@pytest.mark.parametrize("text", AMBIGUOUS, ids=repr)
def test_dump_quotes_ambiguous_text(text: str):
    dumped = dump_yaml({"v": text})
    assert read(dumped) == {"v": text}


@pytest.mark.parametrize("text", ["NO", "1.10", "012", "2027-01-01", "yes", "null", "1_000"])
def test_dump_quotes_exactly_what_needs_it(text: str):
    assert dump_yaml({"v": text}) == f'v: "{text}"\n'
    assert dump_yaml({"v": "plain_text"}) == "v: plain_text\n"


def test_dump_values_read_back_typed():
    data = {"d": dt.date(2027, 2, 28), "f": 1.0, "i": 1, "b": False, "n": None, "t": (1, "1", 1.5), "e": (), "m": {}}
    back = read(dump_yaml(data))
    assert back == data
    assert [type(back[k]) for k in data] == [type(v) for v in data.values()]


# --------------------------------------------------------- property: read(dump(x)) == x
def _same(a: Any, b: Any) -> bool:
    """Equal with the same types (True is not 1, 1.0 is not 1); lists compare as tuples."""
    if isinstance(a, list):
        a = tuple(a)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


keys = st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True),
                 st.sampled_from(["no", "on", "yes", "null", "true", "y"]))
texts = st.one_of(st.text(max_size=24), st.sampled_from(AMBIGUOUS),
                  st.dates().map(str), st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    texts, st.dates())
plain = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(keys, inner, max_size=4)), max_leaves=16)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, plain, max_size=5))
def test_read_dump_round_trip(data: dict):
    text = dump_yaml(data)
    back = parse_yaml(text.encode("utf-8"), "t.yaml").data
    assert _same(data, back), text
