"""Parameters given as distributions, drawn once per replication.

Any behavioural or cost parameter of a market or playbook may be written as
``{triangular: [low, mode, high]}`` or ``{uniform: [low, high]}`` instead of a number (the
field reference marks which). Before a replication runs, :func:`realise` replaces each by a
draw, so the engine only ever sees numbers.

Draws are inverse-CDF transforms of a uniform keyed on (run seed, replication, parameter
name), where the name is ``<market>.<field path>`` for a market parameter and
``<playbook>.<field path>`` for a playbook parameter. So in replication r every design run on
the same market sees the same market parameters (common random numbers across designs), and
the same seed reproduces every draw whatever the number of workers.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

from simulator.engine.streams import seed_key
from simulator.scenario import Scenario
from simulator.specs.base import Spec, Triangular, Uniform
from simulator.specs.market import Market
from simulator.specs.playbook import Playbook

DISTRIBUTIONS = (Triangular, Uniform)


@dataclass(frozen=True)
class UncertainParameter:
    name: str                 # e.g. "france.response.goal_gradient"
    owner: str                # "market" or "playbook"
    path: tuple               # field path inside the owner
    distribution: Triangular | Uniform

    @property
    def low(self) -> float:
        return self.distribution.low

    @property
    def high(self) -> float:
        return self.distribution.high

    @property
    def central(self) -> float:
        return self.distribution.central


def _find(spec: Spec, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    out: list[tuple[tuple, Any]] = []

    def walk(obj: Any, p: tuple) -> None:
        if isinstance(obj, DISTRIBUTIONS):
            out.append((p, obj))
        elif isinstance(obj, Spec):
            for name in type(obj).model_fields:
                walk(getattr(obj, name), p + (name,))
        elif isinstance(obj, (tuple, list)):
            for i, v in enumerate(obj):
                walk(v, p + (i,))
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, p + (k,))

    walk(spec, prefix)
    return out


def _label(spec: Spec, path: tuple) -> str:
    """Readable path: list items by their name where they have one."""
    parts: list[str] = []
    obj: Any = spec
    for part in path:
        nxt = obj[part] if isinstance(obj, (tuple, list, dict)) else getattr(obj, part)
        if isinstance(part, int) and getattr(nxt, "name", None):
            parts.append(str(nxt.name))
        else:
            parts.append(str(part))
        obj = nxt
    return ".".join(parts)


def parameters(scenario: Scenario) -> list[UncertainParameter]:
    """Every uncertain parameter of a scenario's market and playbook."""
    out = []
    for owner, spec in (("market", scenario.market), ("playbook", scenario.playbook)):
        for path, dist in _find(spec):
            out.append(UncertainParameter(f"{spec.name}.{_label(spec, path)}", owner, path, dist))
    return out


def _uniform(key: int, name: str) -> float:
    digest = hashlib.sha256(f"{key}:{name}".encode()).digest()
    return ((int.from_bytes(digest[:8], "little") >> 11) + 0.5) / float(1 << 53)


def replaced_at(data: Any, path: tuple, value: Any) -> Any:
    """A copy of plain data (dicts and tuples) with the value at ``path`` replaced."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        return {**data, head: replaced_at(data[head], rest, value)}
    items = list(data)
    items[head] = replaced_at(items[head], rest, value)
    return tuple(items)


def with_values(scenario: Scenario, values: dict[str, float]) -> Scenario:
    """The scenario with the named uncertain parameters set to ``values`` (others unchanged)."""
    params = parameters(scenario)
    owners = {"market": scenario.market.model_dump(), "playbook": scenario.playbook.model_dump()}
    for p in params:
        if p.name in values:
            owners[p.owner] = replaced_at(owners[p.owner], p.path, float(values[p.name]))
    market = Market.model_validate(owners["market"]) if any(p.owner == "market" for p in params) else scenario.market
    playbook = Playbook.model_validate(owners["playbook"]) if any(p.owner == "playbook" for p in params) else scenario.playbook
    return dataclasses.replace(scenario, market=market, playbook=playbook)


def draws(scenario: Scenario, *, seed: int, replication: int) -> dict[str, float]:
    """This replication's value of every uncertain parameter."""
    key = seed_key(seed, replication)
    return {p.name: p.distribution.ppf(_uniform(key, p.name)) for p in parameters(scenario)}


def realise(scenario: Scenario, *, seed: int, replication: int,
            overrides: dict[str, float] | None = None) -> tuple[Scenario, dict[str, float]]:
    """(scenario with every distribution replaced by a number, the values used).

    ``overrides`` fixes named parameters (sensitivity analysis); the others are drawn."""
    params = parameters(scenario)
    if not params:
        return scenario, {}
    values = draws(scenario, seed=seed, replication=replication)
    values.update(overrides or {})
    return with_values(scenario, values), values


def central_values(scenario: Scenario) -> dict[str, float]:
    """Every uncertain parameter at its central value (mode or midpoint)."""
    return {p.name: p.central for p in parameters(scenario)}
