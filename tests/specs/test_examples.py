"""Every shipped design, market and playbook validates, and load -> dump -> load is stable."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.scenario import resolve, validate_paths
from simulator.specs import KINDS, Market, Playbook, Program, dump, kind_of, load, read_yaml

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "programs").glob("*.yaml")) + sorted((ROOT / "markets").glob("*/*.yaml"))


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def _of_kind(kind: str) -> list[Path]:
    return [p for p in SHIPPED if kind_of(read_yaml(p)) == kind]


DESIGNS, MARKETS, PLAYBOOKS = _of_kind("design"), _of_kind("market"), _of_kind("playbook")
SEARCHES = _of_kind("search")


def test_examples_are_found():
    assert len(SHIPPED) == len(DESIGNS) + len(MARKETS) + len(PLAYBOOKS) + len(SEARCHES)
    assert DESIGNS and MARKETS and PLAYBOOKS
    assert {p.parent.name for p in MARKETS} == {p.name for p in (ROOT / "markets").iterdir() if p.is_dir()}


@pytest.mark.parametrize("path", SHIPPED, ids=_rel)
def test_shipped_file_validates(path: Path):
    errors = validate_paths([path])
    assert errors == [], "\n".join(map(str, errors))


def test_shipped_directories_validate_together():
    assert validate_paths([ROOT / "programs", ROOT / "markets"]) == []


@pytest.mark.parametrize("path", PLAYBOOKS, ids=_rel)
def test_shipped_playbook_resolves(path: Path):
    sc = resolve(path)
    pb = load(Playbook, path)
    assert sc.playbook == pb
    assert sc.program.currency == sc.market.currency
    assert sc.market == load(Market, path.parent / pb.market)
    assert (sc.baseline is None) == (pb.baseline == "none")
    assert set(sc.paths) == {"playbook", "design", "market"} | ({"baseline"} if sc.baseline else set())


def _round_trip(model, path: Path, tmp_path: Path):
    first = load(model, path)
    text = dump(first)
    copy = tmp_path / path.name
    copy.write_text(text, encoding="utf-8")
    second = load(model, copy)
    assert second == first
    assert dump(second) == text  # and the dump itself is a fixed point
    return first


@pytest.mark.parametrize("path", DESIGNS, ids=_rel)
def test_design_round_trip(path: Path, tmp_path: Path):
    _round_trip(Program, path, tmp_path)


@pytest.mark.parametrize("path", MARKETS, ids=_rel)
def test_market_round_trip(path: Path, tmp_path: Path):
    _round_trip(Market, path, tmp_path)


@pytest.mark.parametrize("path", PLAYBOOKS, ids=_rel)
def test_playbook_round_trip(path: Path, tmp_path: Path):
    pb = _round_trip(Playbook, path, tmp_path)
    # the dumped playbook, design, market and baseline, laid out as in the repository,
    # resolve to the same scenario
    where = tmp_path / "repo" / path.parent.relative_to(ROOT)
    where.mkdir(parents=True)
    for ref, model in ((pb.design, Program), (pb.market, Market), (pb.baseline, Program)):
        if ref != "none":
            target = (where / ref).resolve()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(dump(load(model, path.parent / ref)), encoding="utf-8")
    (where / path.name).write_text(dump(pb), encoding="utf-8")
    a, b = resolve(path), resolve(where / path.name)
    assert (a.program, a.baseline, a.market, a.fx_design_to_local) == (b.program, b.baseline, b.market, b.fx_design_to_local)


@pytest.mark.parametrize("path", SHIPPED, ids=_rel)
def test_every_kind_is_loadable_by_its_model(path: Path):
    kind = kind_of(read_yaml(path))
    assert isinstance(load(KINDS[kind], path), KINDS[kind])


def test_every_market_ships_a_search_that_loads_with_its_playbook():
    from simulator.optimise import load_problem

    assert {p.parent.name for p in SEARCHES} == {p.parent.name for p in MARKETS}
    for p in SEARCHES:
        problem = load_problem(p)
        assert problem.scenario.market.name and problem.search.variables
