"""Typed models of the files users write, and their strict, line-aware loaders.

Every file is read once (:func:`read_yaml`), validated into frozen objects, and nothing
downstream sees raw YAML. Errors are :class:`~simulator.errors.InputErrors`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from simulator.errors import InputErrors
from simulator.specs.base import Spec, validate_document
from simulator.specs.market import Market
from simulator.specs.playbook import Playbook
from simulator.specs.program import Program
from simulator.specs.search import Search
from simulator.specs.yamlio import Document, dump_yaml, read_yaml

S = TypeVar("S", bound=Spec)

#: File kinds, with the top-level key that identifies each.
KINDS: dict[str, type[Spec]] = {"design": Program, "market": Market, "playbook": Playbook, "search": Search}


def load(model: type[S], path: str | Path, *, display: str | None = None) -> S:
    """Read and validate one file as ``model``."""
    return validate_document(model, read_yaml(path, display=display))


def load_program(path: str | Path) -> Program:
    return load(Program, path)


def load_market(path: str | Path) -> Market:
    return load(Market, path)


def load_playbook(path: str | Path) -> Playbook:
    return load(Playbook, path)


def kind_of(doc: Document) -> str:
    """Tell a design, a market and a playbook apart by their top-level keys."""
    keys = set(doc.data) if isinstance(doc.data, dict) else set()
    if "variables" in keys:  # only a search file has them
        return "search"
    if {"design", "market"} & keys:  # neither a design nor a market has these keys
        return "playbook"
    if "segments" in keys or "transitions" in keys:
        return "market"
    if "earn" in keys or "rewards" in keys:
        return "design"
    raise InputErrors.one(doc.path, "cannot tell what this file is (expected a design with 'earn', "
                                    "a market with 'segments', a playbook with 'design', 'market' and 'launch', or a search with 'variables')", line=1)


def dump(spec: Spec) -> str:
    """YAML text of a spec that loads back to an equal object."""
    return dump_yaml(spec.model_dump(mode="python", exclude_defaults=False))


__all__ = ["KINDS", "Market", "Playbook", "Program", "Spec", "dump", "kind_of", "load", "load_market",
           "load_playbook", "load_program", "read_yaml", "validate_document"]
