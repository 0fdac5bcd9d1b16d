"""The reference of every field users can write, generated from the typed models so that it
cannot drift from the code (a test compares it with ``docs/reference.md``)."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from simulator.specs.base import _unwrap, field_unit
from simulator.specs.market import RESPONSE_DEFAULTS, Market
from simulator.specs.playbook import Playbook
from simulator.specs.program import Program


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(tp))
    if origin in (typing.Union, __import__("types").UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        k, v = typing.get_args(tp)
        return f"mapping {_type_name(k)} -> {_type_name(v)}"
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return f"[{tp.__name__}](#{tp.__name__.lower()})"
    return getattr(tp, "__name__", str(tp))


def _default(info: Any, model: type[BaseModel], name: str) -> str:
    if info.is_required():
        return "**required**"
    if info.default_factory is not None:
        value = info.default_factory()
    else:
        value = info.default
    if value is PydanticUndefined:
        return ""
    if isinstance(value, BaseModel):
        return "(see type)"
    if value is None and model.__name__ in ("ResponseParams", "Response") and name in RESPONSE_DEFAULTS:
        return f"`{RESPONSE_DEFAULTS[name]:g}`"
    if value == () or value == {}:
        return "empty"
    return f"`{_yaml_value(value)}`"


def _yaml_value(value: Any) -> str:
    """A default as it is written in YAML (``null``, ``true``, ``[1.0, ...]``), not as Python prints it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    return str(value)


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []

    def visit(m: type[BaseModel]) -> None:
        if m in seen:
            return
        seen.append(m)
        for info in m.model_fields.values():
            stack = [info.annotation]
            while stack:
                tp = stack.pop()
                for t in _unwrap(tp):
                    if isinstance(t, type) and issubclass(t, BaseModel):
                        visit(t)
                    else:
                        stack.extend(typing.get_args(t))

    visit(root)
    return seen


def field_reference() -> str:
    """Markdown: one table per model (type, unit, default, meaning of each field)."""
    lines = [
        "# Field reference",
        "",
        "Generated from the typed models by `loyalty-sim reference` (do not edit by hand; "
        "`make docs` rewrites it and a test checks it is current).",
        "Money is in the file's currency: a design's `currency`, a market's local `currency`; "
        "a playbook's money is in its market's currency. Rates are per month unless stated.",
        "",
    ]
    for title, root in (("Program design (`programs/*.yaml`)", Program), ("Market (`markets/<market>/market.yaml`)", Market),
                        ("Playbook (`markets/<market>/<playbook>.yaml`)", Playbook)):
        lines += [f"## {title}", ""]
        for model in _models(root):
            if model.__name__ == "Spec":
                continue
            lines += [f"### {model.__name__}", ""]
            doc = (model.__doc__ or "").strip()
            if doc and not doc.startswith("!!"):
                lines += [" ".join(doc.split()), ""]
            lines += ["| field | type | unit | default | meaning |", "|---|---|---|---|---|"]
            for name, info in model.model_fields.items():
                desc = (info.description or "").replace("|", "\\|")
                lines.append(f"| `{name}` | {_type_name(info.annotation)} | {field_unit(info)} | "
                             f"{_default(info, model, name)} | {desc} |")
            lines.append("")
    return "\n".join(lines)
