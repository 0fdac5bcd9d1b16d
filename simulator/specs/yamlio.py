"""A strict, line-aware YAML reader for the files users write.

PyYAML alone reads YAML 1.1 and is lenient in ways that hide mistakes: ``NO`` becomes
``False`` (Norway's country code), ``1.10`` becomes ``1.1``, ``012`` becomes octal ``10``, a
duplicate key silently keeps the last value, and anchors/aliases allow "billion laughs"
bombs. This module parses with PyYAML's event parser but builds the data itself:

* plain scalars follow the YAML 1.2 core schema (``true``/``false``, ``null``, decimal
  numbers) plus ``YYYY-MM-DD`` dates and ``_`` digit separators in numbers;
* the YAML 1.1 booleans (``yes``/``no``/``on``/``off``/``y``/``n``), leading-zero integers,
  ``.nan``/``.inf``, explicit tags, anchors and aliases (never expanded; a bomb of them is one
  line), nesting deeper than :data:`MAX_DEPTH`, duplicate keys, several documents, empty files,
  non-UTF-8 files and files over :data:`MAX_BYTES` are all rejected;
* sequences become tuples (the typed models are frozen) and every value's line is kept in a
  :class:`LineMap` so that later validation errors can name ``file:line: field``.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from simulator.errors import InputError, InputErrors

#: Largest accepted file. Designs, markets and playbooks are small hand-written files.
MAX_BYTES = 1024 * 1024
#: Anchors and aliases of a file listed one by one; more (an alias bomb) are reported as one line.
MAX_REUSE_LINES = 4
#: Deepest nesting of lists and mappings (deeper would exhaust the recursion of the reader).
MAX_DEPTH = 100

_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_YAML11_BOOL = {
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
    "on", "On", "ON", "off", "Off", "OFF",
}
_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9_]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F_]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9][0-9_]*|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL_FLOAT = re.compile(r"^[-+]?\.(inf|Inf|INF|nan|NaN|NAN)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}([Tt ]|\s+)\d{1,2}:\d{2}")

Path_ = tuple[str | int, ...]


@dataclass
class LineMap:
    """Where each value of a document stands: field path -> 1-based line, plus raw texts."""

    lines: dict[Path_, int] = field(default_factory=dict)
    texts: dict[Path_, str] = field(default_factory=dict)

    def line_of(self, loc: Path_) -> int | None:
        """Line of the deepest known prefix of ``loc`` (a pydantic error location)."""
        loc = tuple(loc)
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return None

    def text_of(self, loc: Path_) -> str | None:
        return self.texts.get(tuple(loc))


@dataclass(frozen=True)
class Document:
    """A parsed file: its plain data, where each value stands, and its raw bytes."""

    path: str
    data: Any
    lines: LineMap
    raw: bytes


def _err(path: str, line: int | None, fld: str, msg: str) -> InputError:
    return InputError(path, line, fld, msg)


def _dotted(p: Path_) -> str:
    return ".".join(str(x) for x in p)


class _Builder:
    def __init__(self, path: str):
        self.path = path
        self.lines = LineMap()
        self.errors: list[InputError] = []

    def build(self, node: yaml.Node, p: Path_) -> Any:
        line = node.start_mark.line + 1
        self.lines.lines[p] = line
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            key_lines: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.errors.append(_err(self.path, key_node.start_mark.line + 1, _dotted(p),
                                            "a key must be plain text, not a list or mapping (expected a field name)"))
                    continue
                if key_node.value == "<<" and key_node.style is None:
                    self.errors.append(_err(self.path, key_node.start_mark.line + 1, _dotted(p),
                                            "merge keys (<<) are not allowed (expected plain data: write the fields out)"))
                    continue
                key = key_node.value
                kline = key_node.start_mark.line + 1
                if key in key_lines:
                    self.errors.append(_err(self.path, kline, _dotted(p + (key,)),
                                            f"duplicate key '{key}' (first given on line {key_lines[key]}; "
                                            "expected each key once)"))
                    continue
                key_lines[key] = kline
                out[key] = self.build(value_node, p + (key,))
                # report errors about a key at the key's own line
                self.lines.lines[p + (key,)] = kline
            return out
        if isinstance(node, yaml.SequenceNode):
            return tuple(self.build(item, p + (i,)) for i, item in enumerate(node.value))
        return self.scalar(node, p, line)

    def scalar(self, node: yaml.ScalarNode, p: Path_, line: int) -> Any:
        text = node.value
        self.lines.texts[p] = text
        if node.style is not None:  # quoted or block scalar: always text
            return text
        if text in _NULL:
            return None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        if text in _YAML11_BOOL:
            self.errors.append(_err(
                self.path, line, _dotted(p),
                f"unquoted {text} is read as a boolean by YAML 1.1 and as text by YAML 1.2 "
                f"(expected true/false: write true/false for a yes/no value, or quote it (\"{text}\") for text)"))
            return text
        if _LEADING_ZERO.match(text):
            self.errors.append(_err(
                self.path, line, _dotted(p),
                f"unquoted {text} has a leading zero, which YAML 1.1 reads as an octal number "
                f"(expected a number without a leading zero: quote it (\"{text}\") for text or drop the zero for a number)"))
            return text
        if _INT.match(text):
            return int(text.replace("_", ""))
        if _HEX.match(text):
            return int(text.replace("_", ""), 16)
        if _SPECIAL_FLOAT.match(text):
            self.errors.append(_err(self.path, line, _dotted(p),
                                    f"{text} is not a finite number (expected a plain number)"))
            return text
        if _FLOAT.match(text) and any(c.isdigit() for c in text):
            return float(text.replace("_", ""))
        if _DATE.match(text):
            try:
                return _dt.date.fromisoformat(text)
            except ValueError as exc:
                self.errors.append(_err(self.path, line, _dotted(p),
                                        f"{text} is not a valid date: {exc} (expected a calendar date YYYY-MM-DD)"))
                return text
        if _DATETIME.match(text):
            self.errors.append(_err(self.path, line, _dotted(p),
                                    f"{text} is a timestamp; expected a date YYYY-MM-DD"))
            return text
        return text


def _check_events(text: str, path: str) -> list[InputError]:
    """Reject anchors, aliases, explicit tags, deep nesting and multiple documents (plain-data rules).

    Aliases are never expanded. Up to :data:`MAX_REUSE_LINES` anchors and aliases are listed one
    by one; more (an alias bomb) are one line, at the first of them, with the counts.
    """
    errors: list[InputError] = []
    reuse: list[tuple[int | None, str]] = []  # the first anchors and aliases: (line, "anchor &a")
    counts = {"&": 0, "*": 0}
    first_alias: int | None = None
    docs = depth = 0
    for ev in yaml.parse(text, Loader=yaml.SafeLoader):
        line = ev.start_mark.line + 1 if ev.start_mark else None
        if isinstance(ev, yaml.DocumentStartEvent):
            docs += 1
            if docs == 2:
                errors.append(_err(path, line, "", "more than one YAML document (expected one document per file)"))
        elif isinstance(ev, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(ev, yaml.NodeEvent):  # a scalar, the start of a list or mapping, or an alias
            depth += isinstance(ev, yaml.CollectionStartEvent)
            if depth > MAX_DEPTH:
                errors.append(_err(path, line, "", f"lists and mappings nested {depth} deep "
                                                   f"(expected at most {MAX_DEPTH} levels)"))
                break
            if ev.anchor is not None:
                sign = "*" if isinstance(ev, yaml.AliasEvent) else "&"
                counts[sign] += 1
                if sign == "*" and first_alias is None:
                    first_alias = line
                if len(reuse) <= MAX_REUSE_LINES:
                    reuse.append((line, f"{'alias' if sign == '*' else 'anchor'} {sign}{ev.anchor}"))
            tag = getattr(ev, "tag", None)
            if tag is not None and tag != "!":
                errors.append(_err(path, line, "", f"tag {tag} is not allowed (expected plain data: text, numbers, lists, mappings)"))
    if len(reuse) > MAX_REUSE_LINES:  # an alias bomb: one line for the file
        line, what = reuse[0]
        n_anchor, n_alias = counts["&"], counts["*"]
        many = f"{n_anchor:,} anchor{'s' * (n_anchor != 1)} and {n_alias:,} alias{'es' * (n_alias != 1)}"
        where = f", the first alias on line {first_alias}" if first_alias else ""
        errors.append(_err(path, line, "", f"{what} is not allowed, nor are the others ({many} in all{where}; "
                                           "expected plain data without anchors or aliases: write values out)"))
    else:
        errors += [_err(path, line, "", f"{what} is not allowed (expected plain data: write values out)")
                   for line, what in reuse]
    return sorted(errors, key=lambda e: e.line or 0)


def read_yaml(path: str | Path, *, display: str | None = None) -> Document:
    """Read one YAML file strictly.

    Parameters
    ----------
    path : path of the file.
    display : how to name the file in messages (defaults to ``str(path)``).

    Raises
    ------
    InputErrors
        With every problem found, each naming file, line and field.
    """
    shown = display or str(path)
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise InputErrors.one(shown, "file not found (expected an existing YAML file)") from None
    except IsADirectoryError:
        raise InputErrors.one(shown, "is a directory (expected a YAML file)") from None
    except OSError as exc:
        raise InputErrors.one(shown, f"cannot be read ({exc.strerror}; expected a readable YAML file)") from None
    return parse_yaml(raw, shown)


def parse_yaml(raw: bytes, shown: str) -> Document:
    """Parse YAML bytes (see :func:`read_yaml`)."""
    if len(raw) > MAX_BYTES:
        raise InputErrors.one(shown, f"file is {len(raw):,} bytes; expected at most {MAX_BYTES:,} "
                                     "(a design, market or playbook is a small text file)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputErrors.one(shown, f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at position {exc.start}; "
                                     "expected UTF-8: save the file as UTF-8)", line=line) from None
    if "\x00" in text:
        raise InputErrors.one(shown, "contains NUL characters (expected a text file)")
    try:
        errors = _check_events(text, shown)
        if errors:
            raise InputErrors(errors)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        raise InputErrors.one(shown, f"is not valid YAML: {what} (expected YAML text)", line=line) from None
    except yaml.YAMLError as exc:
        raise InputErrors.one(shown, f"is not valid YAML: {exc} (expected YAML text)") from None
    if node is None:
        raise InputErrors.one(shown, "file is empty (expected a mapping of fields)", line=1)
    builder = _Builder(shown)
    data = builder.build(node, ())
    if builder.errors:
        raise InputErrors(builder.errors)
    if not isinstance(data, dict):
        got = "a list" if isinstance(data, tuple) else f"the value {data!r}"
        raise InputErrors.one(shown, f"expected a mapping of fields at the top of the file, got {got}",
                              line=node.start_mark.line + 1)
    return Document(shown, data, builder.lines, raw)


def dump_yaml(data: Any) -> str:
    """Dump plain data (from ``model_dump``) so that :func:`read_yaml` reads it back equal."""

    def plain(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, s: str) -> yaml.Node:
        # Quote anything our reader would not read back as the same text.
        needs = (s in _NULL or s in _TRUE or s in _FALSE or s in _YAML11_BOOL or _INT.match(s)
                 or _LEADING_ZERO.match(s) or _HEX.match(s) or _FLOAT.match(s) or _DATE.match(s)
                 or _SPECIAL_FLOAT.match(s) or _DATETIME.match(s)
                 # line breaks YAML knows beyond \n (NEL, LS, PS), a BOM and control characters are
                 # kept only as escapes of a double-quoted scalar
                 or any(not ch.isprintable() or ch in "\x85\u2028\u2029\ufeff" for ch in s))
        return dumper.represent_scalar("tag:yaml.org,2002:str", s, style='"' if needs else None)

    _Dumper.add_representer(str, _str)
    _Dumper.ignore_aliases = lambda self, data: True  # type: ignore[method-assign]
    out = plain(data)
    return yaml.dump(out, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
