"""Base of every typed spec: frozen, strict, unknown keys rejected, errors with lines.

Each spec class is a pydantic v2 model. Type checks are pydantic's (strict: no silent
coercion of ``"5"`` to 5 or of 1.1 to ``"1.1"``). Checks that involve several fields
(shares summing to 1, ascending thresholds, references between lists) are written in a
model's :meth:`Spec.issues` and reported with the exact sub-field they concern.

:func:`validate_document` turns a :class:`~simulator.specs.yamlio.Document` into a model, or
raises :class:`~simulator.errors.InputErrors` with every problem as
``path:line: field.path: what is wrong (expected ...)``.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Annotated, Any, Iterable, Iterator, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from simulator.errors import InputError, InputErrors
from simulator.specs.yamlio import Document, LineMap

#: Tolerance for probabilities that must sum to 1 (segment shares, transition rows, ...).
#: Rows are renormalised exactly after this check.
SUM_TOLERANCE = 1e-4

# ---------------------------------------------------------------------------- field types
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", min_length=1, max_length=64,
                            description="identifier: a letter, then letters, digits, _ or -")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code such as EUR",
                                json_schema_extra={"unit": "ISO 4217"})]
Probability = Annotated[float, Field(ge=0.0, le=1.0, json_schema_extra={"unit": "probability"})]
Share = Annotated[float, Field(ge=0.0, le=1.0, json_schema_extra={"unit": "share"})]
Money = Annotated[float, Field(ge=0.0, json_schema_extra={"unit": "currency"})]
Points = Annotated[int, Field(ge=0, json_schema_extra={"unit": "points"})]
Months = Annotated[int, Field(ge=1, le=600, json_schema_extra={"unit": "months"})]
Multiplier = Annotated[float, Field(ge=0.0, json_schema_extra={"unit": "x"})]


class SpecIssues(ValueError):
    """Raised by :meth:`Spec.issues` checks; carries (relative field path, message) pairs."""

    def __init__(self, issues: list[tuple[tuple[str | int, ...], str]]):
        self.issues = issues
        super().__init__("; ".join(f"{'.'.join(map(str, p)) or '(self)'}: {m}" for p, m in issues))


class Spec(BaseModel):
    """Frozen, strict, closed model. Subclasses add cross-field checks in :meth:`issues`."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", validate_default=True)

    def issues(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Yield (field path relative to this model, message) for each cross-field problem."""
        return iter(())

    def checks(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """:meth:`issues` plus the bounds of any parameter given as a distribution."""
        yield from self.issues()
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, Distribution.__args__):  # type: ignore[attr-defined]
                yield from _distribution_bounds(value, info, (name,))

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> "Spec":
        if isinstance(info.context, dict) and info.context.get(_DEFER_CHECKS):
            return self  # validate_document runs every model's checks once the whole tree is built
        found = list(self.checks())
        if found:
            raise SpecIssues(found)
        return self


#: Validation context key: skip :meth:`Spec.issues` during validation (they are collected
#: afterwards over the whole tree, so that a problem in one sub-model does not hide another's).
_DEFER_CHECKS = "defer_cross_checks"


def all_issues(spec: "Spec", prefix: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Cross-field issues of ``spec`` and of every model inside it, with full field paths."""

    def walk(obj: Any, p: tuple) -> Iterator[tuple[tuple, str]]:
        if isinstance(obj, Spec):
            for name in type(obj).model_fields:
                yield from walk(getattr(obj, name), p + (name,))
            for sub, msg in obj.checks():
                yield p + tuple(sub), msg
        elif isinstance(obj, (tuple, list)):
            for i, v in enumerate(obj):
                yield from walk(v, p + (i,))
        elif isinstance(obj, dict):
            for k, v in obj.items():
                yield from walk(v, p + (k,))

    return walk(spec, prefix)


class Triangular(Spec):
    """A parameter drawn for each replication from a triangular distribution."""

    triangular: tuple[float, float, float] = Field(description="low, mode, high")

    def issues(self) -> Iterator[tuple[tuple, str]]:
        lo, mode, hi = self.triangular
        if not lo <= mode <= hi or lo == hi:
            yield ("triangular",), f"got low {lo:g}, mode {mode:g}, high {hi:g} (expected low <= mode <= high and low < high)"

    @property
    def low(self) -> float:
        return self.triangular[0]

    @property
    def high(self) -> float:
        return self.triangular[2]

    @property
    def central(self) -> float:
        return self.triangular[1]

    def ppf(self, u: float) -> float:
        """Inverse CDF: monotone in ``u``, so a shared uniform keeps draws coupled."""
        lo, c, hi = self.triangular
        f = (c - lo) / (hi - lo)
        if u < f:
            return lo + ((hi - lo) * (c - lo) * u) ** 0.5
        return hi - ((hi - lo) * (hi - c) * (1 - u)) ** 0.5

    def describe(self) -> str:
        return f"triangular({self.triangular[0]:g}, {self.triangular[1]:g}, {self.triangular[2]:g})"


class Uniform(Spec):
    """A parameter drawn for each replication uniformly between two values."""

    uniform: tuple[float, float] = Field(description="low, high")

    def issues(self) -> Iterator[tuple[tuple, str]]:
        lo, hi = self.uniform
        if not lo < hi:
            yield ("uniform",), f"got low {lo:g}, high {hi:g} (expected low < high)"

    @property
    def low(self) -> float:
        return self.uniform[0]

    @property
    def high(self) -> float:
        return self.uniform[1]

    @property
    def central(self) -> float:
        return (self.uniform[0] + self.uniform[1]) / 2

    def ppf(self, u: float) -> float:
        return self.uniform[0] + u * (self.uniform[1] - self.uniform[0])

    def describe(self) -> str:
        return f"uniform({self.uniform[0]:g}, {self.uniform[1]:g})"


#: A parameter given as a distribution instead of a number (drawn per replication).
Distribution = Union[Triangular, Uniform]


def _bound_of(info: Any) -> list[Any]:
    metas = list(info.metadata)
    for arg in typing.get_args(info.annotation):
        if typing.get_origin(arg) is Annotated:
            for m in arg.__metadata__:
                metas.extend(getattr(m, "metadata", []) or [m])
    return metas


def _distribution_bounds(d: Any, info: Any, where: tuple) -> Iterator[tuple[tuple, str]]:
    """A distribution's low and high must satisfy the number's own bounds."""
    for meta in _bound_of(info):
        for attr, op, ok in (("ge", ">=", lambda v, b: v >= b), ("gt", ">", lambda v, b: v > b),
                             ("le", "<=", lambda v, b: v <= b), ("lt", "<", lambda v, b: v < b)):
            bound = getattr(meta, attr, None)
            if bound is None:
                continue
            for end in (d.low, d.high):
                if not ok(end, bound):
                    yield where, f"{d.describe()} reaches {end:g} (expected every value {op} {bound})"
                    return


def Uncertain(tp: Any) -> Any:
    """``tp`` or a distribution of it (see :class:`Triangular`, :class:`Uniform`)."""
    return Union[tp, Triangular, Uniform]


def unique_names(items: Iterable[Any], field: str, what: str) -> Iterator[tuple[tuple, str]]:
    """Issues for duplicate ``.name`` in a list field."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.name in seen:
            yield (field, i, "name"), f"duplicate {what} name '{item.name}' (also item {seen[item.name]}; expected unique names)"
        else:
            seen[item.name] = i


def check_sum(values: Iterable[float], where: tuple, what: str) -> Iterator[tuple[tuple, str]]:
    total = float(sum(values))
    if abs(total - 1.0) > SUM_TOLERANCE:
        yield where, f"{what} sum to {total:.6g} (expected 1 within {SUM_TOLERANCE:g})"


def unknown_refs(names: Iterable[str], known: Iterable[str], where: tuple, what: str) -> Iterator[tuple[tuple, str]]:
    known = list(known)
    for i, n in enumerate(names):
        if n not in known:
            yield where + (i,), f"unknown {what} '{n}'{did_you_mean(n, known)} (expected one of: {', '.join(known) or 'none defined'})"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ------------------------------------------------------------------ error translation
M = TypeVar("M", bound=BaseModel)


def _unwrap(tp: Any) -> list[Any]:
    """Candidate model/container types behind Annotated / Optional / Union."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        out: list[Any] = []
        for a in typing.get_args(tp):
            out.extend(_unwrap(a))
        return out
    return [tp]


def _tag_values(model: type[BaseModel]) -> set[str]:
    """Literal values of a model's fields (a discriminated union member's tag)."""
    out: set[str] = set()
    for info in model.model_fields.values():
        if typing.get_origin(info.annotation) is typing.Literal and len(typing.get_args(info.annotation)) == 1:
            out.update(map(str, typing.get_args(info.annotation)))
    return out


def _types_at(model: type[BaseModel], loc: tuple) -> list[Any]:
    """Candidate types at ``loc`` (a raw pydantic location, union tags included)."""
    current: list[Any] = [model]
    for part in loc:
        nxt: list[Any] = []
        members = [t for tp in current for t in _unwrap(tp)]
        tagged = [t for t in members if isinstance(t, type) and issubclass(t, BaseModel) and str(part) in _tag_values(t)
                  and part not in t.model_fields]
        if tagged:  # the location names a union member by its tag: keep only that member
            current = tagged
            continue
        for t in members:
            origin = typing.get_origin(t)
            if isinstance(t, type) and issubclass(t, BaseModel):
                if isinstance(part, str) and part in t.model_fields:
                    nxt.append(t.model_fields[part].annotation)
            elif origin in (tuple, list) and isinstance(part, int):
                nxt.append(typing.get_args(t)[0])
            elif origin is dict:
                nxt.append(typing.get_args(t)[1])
        current = nxt or current
    return current


def _allowed_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names allowed at ``loc`` (a raw pydantic location, union tags included)."""
    names: list[str] = []
    for tp in _types_at(model, loc):
        for t in _unwrap(tp):
            if isinstance(t, type) and issubclass(t, BaseModel):
                names.extend(n for n in t.model_fields if n not in names)
    return names


def _union_tags(model: type[BaseModel], loc: tuple) -> list[str]:
    """Tags of the union members allowed at ``loc``."""
    tags: list[str] = []
    for tp in _types_at(model, loc):
        for t in _unwrap(tp):
            if isinstance(t, type) and issubclass(t, BaseModel):
                tags.extend(sorted(_tag_values(t)))
    return tags


def _expected_words(model: type[BaseModel], loc: tuple) -> str:
    """What a value at ``loc`` should be, in words (for a missing field)."""
    words: list[str] = []
    for tp in _types_at(model, loc):
        for t in _unwrap(tp):
            origin = typing.get_origin(t)
            if origin is typing.Literal:
                w = "one of: " + ", ".join(map(str, typing.get_args(t)))
            elif origin is tuple:
                w = "a list"
            elif origin is dict:
                w = "a mapping"
            elif isinstance(t, type) and issubclass(t, BaseModel):
                w = "a mapping of fields"
            else:
                w = {float: "a number", int: "a whole number", str: "text", bool: "true or false",
                     type(None): "", }.get(t, "a date YYYY-MM-DD" if getattr(t, "__name__", "") == "date" else "a value")
            if w and w not in words:
                words.append(w)
    return " or ".join(words) or "a value"


_TYPE_WORDS = {
    "float_type": "a number", "int_type": "a whole number", "string_type": "text",
    "bool_type": "true or false", "date_type": "a date YYYY-MM-DD", "tuple_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping of fields", "model_attributes_type": "a mapping of fields",
    "int_from_float": "a whole number",
}


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, tuple):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"the text '{value}'"
    return f"{value!r}"


def _message(err: dict, lines: LineMap, model: type[BaseModel], clean: tuple) -> str:
    typ = err["type"]
    loc = tuple(err["loc"])
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if typ == "extra_forbidden":
        key = loc[-1]
        allowed = _allowed_fields(model, loc[:-1])
        hint = did_you_mean(str(key), allowed)
        return f"unknown field '{key}'{hint} (expected one of: {', '.join(allowed)})" if allowed else f"unknown field '{key}'"
    if typ == "missing":
        return f"missing required field '{loc[-1]}' (expected {_expected_words(model, loc)})"
    if typ in _TYPE_WORDS:
        text = lines.text_of(clean)
        got = _show(value)
        if typ == "string_type" and text is not None and not isinstance(value, str):
            return (f"expected text, got {got} (unquoted {text}); quote it (\"{text}\") if you mean text")
        return f"expected {_TYPE_WORDS[typ]}, got {got}"
    if typ in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[typ]
        bound = next(iter(ctx.values())) if ctx else "?"
        return f"got {value!r} (expected a number {op} {bound})"
    if typ == "literal_error":
        return f"got {_show(value)} (expected one of: {ctx.get('expected', '')})"
    if typ == "union_tag_invalid":
        return f"unknown {ctx.get('discriminator', 'kind').strip(chr(39))} '{ctx.get('tag')}' (expected one of: {ctx.get('expected_tags')})"
    if typ == "union_tag_not_found":
        disc = str(ctx.get('discriminator', '')).strip(chr(39))
        return (f"missing field '{disc}' that says which kind this is "
                f"(expected {disc}: one of {', '.join(_union_tags(model, loc))})")
    if typ == "string_pattern_mismatch":
        return f"got {_show(value)} (expected {_pattern_words(ctx.get('pattern', ''))})"
    if typ in ("too_short", "too_long"):
        n = len(value) if isinstance(value, (tuple, list, dict)) else ctx.get("actual_length")
        bound = f"at least {ctx.get('min_length')}" if typ == "too_short" else f"at most {ctx.get('max_length')}"
        return f"got {n} items (expected {bound})"
    if typ in ("string_too_short", "string_too_long"):
        n = len(value) if isinstance(value, str) else "?"
        bound = f"at least {ctx.get('min_length')}" if typ == "string_too_short" else f"at most {ctx.get('max_length')}"
        return f"got text of {n} characters (expected {bound})"
    if typ == "finite_number":
        return "expected a finite number"
    return f"{err['msg']} (got {_show(value)}; expected a valid value, see `loyalty-sim reference`)"


def _pattern_words(pattern: str) -> str:
    if pattern == r"^[A-Z]{3}$":
        return "an ISO 4217 currency code of three capital letters, such as EUR"
    if pattern.startswith("^[A-Za-z]"):
        return "a name: a letter, then letters, digits, _ or -"
    return f"text matching {pattern}"


_DISTRIBUTION_TAGS = ("Triangular", "Uniform")
_DISTRIBUTION_HINT = "or a distribution {triangular: [low, mode, high]} or {uniform: [low, high]}"


def _collapse_uncertain(errors: list[dict]) -> list[dict]:
    """A field that takes a number or a distribution fails once per union member; keep the
    member the input was meant for: the named distribution's errors for a mapping, else the
    number's (flagged so its message mentions the distribution forms)."""

    def dist_tag(part: Any) -> str | None:
        if isinstance(part, str):
            for tag in _DISTRIBUTION_TAGS:
                if part == tag or part.endswith(f", {tag}]"):
                    return tag
        return None

    fields: dict[tuple, dict[str, Any]] = {}
    for err in errors:
        loc = tuple(err["loc"])
        for i, part in enumerate(loc):
            if dist_tag(part):
                fields.setdefault(loc[:i], {})
    out: list[dict] = []
    groups: dict[tuple, list[tuple[str | None, dict]]] = {f: [] for f in fields}
    for err in errors:
        loc = tuple(err["loc"])
        owner = next((f for f in fields if loc[:len(f)] == f and len(loc) > len(f)), None)
        if owner is None:
            out.append(err)
        else:
            groups[owner].append((dist_tag(loc[len(owner)]), err))
    for field_loc, items in groups.items():
        value = items[0][1].get("input")
        scalar = [e for tag, e in items if tag is None]
        if isinstance(value, dict) or (scalar and isinstance(scalar[0].get("input"), dict)):
            value = value if isinstance(value, dict) else scalar[0]["input"]
            meant = [tag for tag in _DISTRIBUTION_TAGS if tag.lower() in value]
            chosen = [e for tag, e in items if tag is not None and tag in meant]
            if chosen:
                out.extend({**e, "loc": field_loc + tuple(e["loc"][len(field_loc) + 1:])} for e in chosen)
            else:
                out.append({"type": "uncertain_form", "loc": field_loc, "input": value,
                            "msg": f"got a mapping with {', '.join(map(str, value)) or 'no keys'} "
                                   f"(expected a number {_DISTRIBUTION_HINT})"})
        else:
            out.extend({**e, "loc": field_loc, "uncertain": True} for e in scalar)
    return out


def translate(exc: ValidationError, doc: Document, model: type[BaseModel], prefix: tuple = ()) -> list[InputError]:
    """Pydantic errors -> one :class:`InputError` each, with the line of the field."""
    out: list[InputError] = []
    for err in _collapse_uncertain(exc.errors(include_url=False)):
        loc = prefix + tuple(err["loc"])
        error_obj = (err.get("ctx") or {}).get("error")
        if isinstance(error_obj, SpecIssues):
            base = _strip_tags(loc, doc.lines)
            for sub, msg in error_obj.issues:
                full = base + tuple(sub)
                out.append(InputError(doc.path, doc.lines.line_of(full), ".".join(map(str, full)), msg))
            continue
        if err["type"] == "too_short" and isinstance(err.get("input"), (tuple, list, dict)) \
                and len(err["input"]) >= (err.get("ctx") or {}).get("min_length", 0):
            continue  # pydantic counts only the valid items: the invalid ones are reported already
        clean = _strip_tags(loc, doc.lines)
        msg = _message(err, doc.lines, model, clean)
        if err["type"] == "uncertain_form":
            msg = err["msg"]
        elif err.get("uncertain"):
            if msg.startswith("expected a number"):
                msg = msg.replace("expected a number", f"expected a number {_DISTRIBUTION_HINT}", 1)
            else:
                msg = f"{msg}; {_DISTRIBUTION_HINT[3:]} is also accepted"
        if err["type"] == "union_tag_invalid":  # name the line of the wrong tag, not of the mapping
            disc = str((err.get("ctx") or {}).get("discriminator", "")).strip("'")
            if clean + (disc,) in doc.lines.lines:
                clean = clean + (disc,)
        out.append(InputError(doc.path, doc.lines.line_of(clean), ".".join(map(str, clean)), msg))
    return sorted(set(out), key=lambda e: (e.line or 0, e.field, e.message))


def _strip_tags(loc: tuple, lines: LineMap) -> tuple:
    """Drop discriminator tags and pydantic's internal markers from a location."""
    out: list[Any] = []
    for part in loc:
        candidate = tuple(out) + (part,)
        if candidate in lines.lines or isinstance(part, int) or not lines.lines:
            out.append(part)
        elif isinstance(part, str) and (part.startswith("function-") or part.startswith("[")):
            continue
        elif any(k[: len(candidate)] == candidate for k in lines.lines):
            out.append(part)
        else:
            # a tag (e.g. a union member's kind) not present in the document: skip it, unless
            # it is the missing field itself (the last element)
            if part is loc[-1]:
                out.append(part)
    return tuple(out)


def validate_document(model: type[M], doc: Document) -> M:
    """Validate a parsed document into ``model`` or raise InputErrors with every problem."""
    try:
        spec = model.model_validate(doc.data, context={_DEFER_CHECKS: True})
    except ValidationError as exc:
        raise InputErrors(translate(exc, doc, model)) from None
    if isinstance(spec, Spec):
        found = list(dict.fromkeys(all_issues(spec)))
        if found:
            errors = {InputError(doc.path, doc.lines.line_of(p), ".".join(map(str, p)), m) for p, m in found}
            raise InputErrors(sorted(errors, key=lambda e: (e.line or 0, e.field, e.message)))
    return spec


def field_unit(info: Any) -> str:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    metadata = list(info.metadata)
    # an optional annotated type (``Points | None``) keeps its metadata inside the union
    if typing.get_origin(info.annotation) in (Union, types.UnionType):
        for arg in typing.get_args(info.annotation):
            if typing.get_origin(arg) is Annotated:
                metadata.extend(arg.__metadata__)
    for meta in metadata:
        js = getattr(meta, "json_schema_extra", None)
        if isinstance(js, dict) and "unit" in js:
            return str(js["unit"])
    return str(extra.get("unit", ""))

