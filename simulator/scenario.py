"""A scenario: a playbook resolved together with the design, baseline and market it names.

Resolution is where files meet: references from one file to another are checked here (a
campaign's target segments against the market, its tiers against the design, channels
against the market's reachability, overrides against the design's tiers and rewards), the
design's money is converted into the market's currency, and the playbook's local overrides
are applied. Every problem is reported with the file and line where it stands; all problems
of all files are reported together.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from simulator.errors import InputError, InputErrors
from simulator.specs import read_yaml, validate_document
from simulator.specs.base import Spec, SpecIssues, did_you_mean, field_unit
from simulator.specs.market import Market
from simulator.specs.playbook import Playbook, Target
from simulator.specs.program import Program
from simulator.specs.yamlio import Document


@dataclass(frozen=True)
class Scenario:
    """Everything one run needs, typed and resolved, in the market's currency.

    Attributes
    ----------
    program : the design after FX conversion and local overrides.
    baseline : the counterfactual design (converted likewise), or None for "no program".
    market, playbook : the validated files.
    fx_design_to_local : local currency units per design currency unit.
    inputs : file path (as given) -> SHA-256 of its bytes, for the manifest.
    """

    program: Program
    baseline: Program | None
    market: Market
    playbook: Playbook
    fx_design_to_local: float
    inputs: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    #: what a command line or a study changed on top of the playbook (``baseline``,
    #: ``design``, ``horizon_months``); the manifest records it so ``reproduce`` can redo it
    overrides: dict[str, Any] = field(default_factory=dict)
    #: what is valid but likely wrong (:func:`scenario_warnings`): ``validate`` and ``run`` print them
    warnings: tuple[InputError, ...] = ()

    def with_horizon(self, months: int) -> "Scenario":
        return dataclasses.replace(self, playbook=self.playbook.model_copy(update={"horizon_months": months}),
                                   overrides={**self.overrides, "horizon_months": months})


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class _Collector:
    def __init__(self) -> None:
        self.errors: list[InputError] = []

    def doc(self, path: Path, shown: str) -> Document | None:
        try:
            return read_yaml(path, display=shown)
        except InputErrors as exc:
            self.errors.extend(exc.errors)
            return None

    def model(self, model: type[Spec], doc: Document | None) -> Any:
        if doc is None:
            return None
        try:
            return validate_document(model, doc)
        except InputErrors as exc:
            self.errors.extend(exc.errors)
            return None

    def add(self, doc: Document, loc: tuple, message: str) -> None:
        self.errors.append(InputError(doc.path, doc.lines.line_of(loc), ".".join(map(str, loc)), message))


def _shown(base: Path, ref: str, playbook_shown: str) -> tuple[Path, str]:
    """Resolve a path written in a playbook; name it in messages relative to how the
    playbook was named."""
    target = (base / ref)
    shown = str(Path(playbook_shown).parent / ref)
    try:
        import os
        shown = os.path.normpath(shown)
    except ValueError:
        pass
    return target, shown


def fx_rate(design: Program, market: Market) -> float | None:
    """Local currency units per design currency unit, or None if the market gives no rate."""
    if design.currency == market.currency:
        return 1.0
    if design.currency == market.reporting_currency:
        return 1.0 / market.fx_to_reporting
    return None


def convert_currency(spec: Spec, rate: float) -> dict[str, Any]:
    """Plain data of ``spec`` with every money field multiplied by ``rate`` and every
    per-currency-unit rate divided by it (points stay points). Spend tier thresholds are
    money too."""

    def walk(obj: Any) -> Any:
        if isinstance(obj, Spec):
            out: dict[str, Any] = {}
            for name, info in type(obj).model_fields.items():
                value = getattr(obj, name)
                unit = field_unit(info)
                if value is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
                    if unit == "currency":
                        value = float(value) * rate
                    elif unit == "points per currency unit":
                        value = float(value) / rate
                out[name] = walk(value)
            if type(obj).__name__ == "Tiers" and getattr(obj, "metric", None) == "spend":
                out["levels"] = tuple({**lvl, "threshold": lvl["threshold"] * rate} for lvl in out["levels"])
            return out
        if isinstance(obj, tuple):
            return tuple(walk(v) for v in obj)
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        return obj

    return walk(spec)


def _apply_overrides(data: dict[str, Any], pb: Playbook) -> dict[str, Any]:
    ov = pb.overrides
    if ov.points_per_unit is not None:
        # a re-based point: the design's fixed point amounts (event bonuses, the monthly cap)
        # keep their worth in spend, k = local points per design point earned on the same spend
        k = ov.points_per_unit / data["earn"]["points_per_unit"]
        data["earn"]["points_per_unit"] = ov.points_per_unit
        bonuses = data["earn"]["bonuses"]
        for key in ("enrolment", "first_purchase", "birthday", "referral"):
            bonuses[key] = int(round(bonuses[key] * k))
        if data["earn"]["caps"].get("per_month") is not None:
            data["earn"]["caps"]["per_month"] = max(1, int(round(data["earn"]["caps"]["per_month"] * k)))
    if ov.minimum_order is not None:
        data["earn"]["minimum_order"] = ov.minimum_order
    if ov.enrolment_bonus is not None:
        data["earn"]["bonuses"]["enrolment"] = ov.enrolment_bonus
    if ov.tier_thresholds and data.get("tiers"):
        data["tiers"]["levels"] = tuple(
            {**lvl, "threshold": ov.tier_thresholds.get(lvl["name"], lvl["threshold"])} for lvl in data["tiers"]["levels"])
    if ov.rewards:
        cat = []
        for r in data["rewards"]["catalogue"]:
            o = ov.rewards.get(r["name"])
            if o is not None:
                r = {**r, **{k: v for k, v in o.model_dump().items() if v is not None}}
            cat.append(r)
        data["rewards"]["catalogue"] = tuple(cat)
    if ov.local_rewards:
        data["rewards"]["catalogue"] = tuple(data["rewards"]["catalogue"]) + tuple(r.model_dump() for r in ov.local_rewards)
    if ov.cashback is not None and data["rewards"].get("cashback"):
        data["rewards"]["cashback"] = {**data["rewards"]["cashback"],
                                      **{k: v for k, v in ov.cashback.model_dump().items() if v is not None}}
    if ov.fee is not None and data["enrolment"].get("fee"):
        data["enrolment"]["fee"] = {**data["enrolment"]["fee"], "amount": ov.fee}
    return data


#: ``validate`` warns when a playbook launches more than this many months after the end of the
#: log its market was calibrated from: behaviour that old is a guess about the launch years.
LAUNCH_AFTER_LOG_MONTHS = 12
#: ``validate`` and ``run`` warn when a playbook's fixed costs a year are more than this share of
#: the base's annual gross margin (:meth:`~simulator.specs.market.Market.annual_gross_margin`).
#: A program's whole cost is typically 1-2% of sales, i.e. under 10% of a 20-30% gross margin;
#: fixed costs alone above it need more than a 10% lift in margin to pay back, beyond the
#: effects published for loyalty programs (a few percent): the base is too small for them --
#: usually a market calibrated on a sample or one banner without ``calibrate --customers``.
FIXED_COST_SHARE = 0.10


def target_segments(target: Target, market: Market) -> tuple[str, ...] | None:
    """The market segments a target takes (those named in ``segments``, in a ``lifecycle``
    stage and in a ``value`` band it lists: every condition given restricts), or None when it
    restricts none (the engine's campaigns.segment_mask)."""
    if not (target.segments or target.lifecycle or target.value):
        return None
    return tuple(n for n, life, val in zip(market.segment_names, market.lifecycles, market.value_bands)
                 if (not target.segments or n in target.segments) and (not target.lifecycle or life in target.lifecycle)
                 and (not target.value or val in target.value))


def _central(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) else float(x.central)


def fixed_costs_per_year(program: Program, pb: Playbook) -> float:
    """A playbook's fixed costs a year in the market's currency (``program`` localised): the
    design's and the local set-up amortised over the design's amortisation months, the running
    costs a year, and the fixed costs of its campaigns and enrolment drives spread over the
    horizon (distributions at their central values)."""
    setup = program.costs.setup.amount + _central(pb.costs.setup)
    fixed = sum(_central(c.cost) for c in pb.campaigns) + sum(_central(d.cost) for d in pb.enrolment_drives)
    return (setup * 12.0 / program.costs.setup.amortisation_months + program.costs.running_per_year
            + _central(pb.costs.running_per_year) + fixed * 12.0 / pb.horizon_months)


def _months_between(a: Any, b: Any) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def scenario_warnings(pdoc: Document, pb: Playbook, program: Program, market: Market, mdoc: Document) -> list[InputError]:
    """What is valid but likely wrong: a target that takes no segment of this market, a launch
    more than :data:`LAUNCH_AFTER_LOG_MONTHS` after the end of the log the market was calibrated
    from, fixed costs above :data:`FIXED_COST_SHARE` of the base's annual gross margin."""
    out: list[InputError] = []

    def add(doc: Document, loc: tuple, message: str) -> None:
        out.append(InputError(doc.path, doc.lines.line_of(loc), ".".join(map(str, loc)), message))

    actions = [("enrolment_drives", i, d.target) for i, d in enumerate(pb.enrolment_drives)] + \
              [("campaigns", i, c.target) for i, c in enumerate(pb.campaigns)]
    for kind, i, t in actions:
        taken = target_segments(t, market)
        if taken is not None and not taken:
            groups = "; ".join(f"{what} {', '.join(wanted)} (the market's: {', '.join(sorted(set(have), key=have.index))})"
                               for what, wanted, have in (("lifecycle", t.lifecycle, list(market.lifecycles)),
                                                          ("value", t.value, list(market.value_bands)))
                               if wanted)
            add(pdoc, (kind, i, "target"), f"takes no segment of market {market.name}"
                + (f": {groups}" if groups else "") + " -- it reaches nobody (expected a group the market has)")
    cal = market.calibration
    if cal is not None:
        gap = _months_between(cal.log_end, pb.launch)
        if gap > LAUNCH_AFTER_LOG_MONTHS:
            add(pdoc, ("launch",), f"launch {pb.launch} is {gap} months after the end of the log market {market.name} "
                                   f"was calibrated from ({cal.log_end}): customers may no longer behave as they did "
                                   f"(expected a launch within {LAUNCH_AFTER_LOG_MONTHS} months of the log's end, or a "
                                   f"market calibrated on a recent log)")
    margin = market.annual_gross_margin()
    costs = fixed_costs_per_year(program, pb)
    if costs > FIXED_COST_SHARE * margin:
        share = f"{costs / margin:.0%}" if margin > 0 else "more than all"
        add(mdoc, ("customers",), f"the base is tiny for the costs it carries: playbook {pb.name}'s fixed costs, "
                                  f"{costs:,.0f} {market.currency} a year, are {share} of the annual gross margin of "
                                  f"the base's {market.customers:,} customers ({margin:,.0f} {market.currency}), more "
                                  f"than {FIXED_COST_SHARE:.0%} (expected the whole base: `loyalty-sim calibrate "
                                  f"--customers N` sets it when the log is a sample or one banner of several)")
    return out


def _check_target(c: _Collector, doc: Document, loc: tuple, target: Target, market: Market, program: Program | None) -> None:
    segs = market.segment_names
    for i, s in enumerate(target.segments):
        if s not in segs:
            c.add(doc, loc + ("segments", i), f"unknown segment '{s}'{did_you_mean(s, segs)} (expected one of the market's: {', '.join(segs)})")
    _check_stores(c, doc, loc + ("stores",), target.stores, market)
    tiers = program.tiers.names if program is not None and program.tiers else ()
    for i, t in enumerate(target.tiers):
        if t not in tiers:
            c.add(doc, loc + ("tiers", i), f"unknown tier '{t}'{did_you_mean(t, tiers)} (expected one of the design's: {', '.join(tiers) or 'the design has no tiers'})")


def _check_stores(c: _Collector, doc: Document, loc: tuple, stores: tuple[str, ...], market: Market,
                  within: tuple[str, ...] | None = None) -> None:
    """Stores a playbook names: in the market's network (and in ``within``, the pilot's, when given)."""
    if not stores:
        return
    if market.stores is None:
        c.add(doc, loc, f"market {market.name} has no store network (expected no stores, or a `stores:` section in the market)")
        return
    known = market.stores.names
    for i, st in enumerate(stores):
        if st not in known:
            c.add(doc, loc + (i,), f"unknown store '{st}'{did_you_mean(st, known)} (expected one of market {market.name}'s stores)")
        elif within is not None and st not in within:
            c.add(doc, loc + (i,), f"store '{st}' is outside the pilot (expected one of the pilot's stores: {', '.join(within) or 'none'})")


def _check_channel(c: _Collector, doc: Document, loc: tuple, channel: str | None, market: Market) -> None:
    if channel is not None and channel not in market.reachability.channels:
        known = list(market.reachability.channels)
        c.add(doc, loc, f"unknown channel '{channel}'{did_you_mean(channel, known)} (expected one of the market's: {', '.join(known) or 'none defined in reachability.channels'})")


def _check_design_vs_market(c: _Collector, ddoc: Document, program: Program, market: Market, mdoc: Document) -> None:
    segs = market.segment_names
    for i, s in enumerate(program.enrolment.eligibility.segments):
        if s not in segs:
            c.add(ddoc, ("enrolment", "eligibility", "segments", i),
                  f"unknown segment '{s}'{did_you_mean(s, segs)} (expected one of market {mdoc.path}'s: {', '.join(segs)})")
    cats = list(market.categories)
    for cat in program.earn.category_multipliers:
        if cat not in cats:
            c.add(ddoc, ("earn", "category_multipliers", cat),
                  f"unknown category '{cat}'{did_you_mean(cat, cats)} (expected one of market {mdoc.path}'s categories: {', '.join(cats) or 'none defined'})")


def _localise(c: _Collector, program: Program, market: Market, pb: Playbook | None, pdoc: Document | None,
              loc: tuple) -> tuple[Program | None, float]:
    rate = fx_rate(program, market)
    if rate is None:
        if pdoc is not None:
            c.add(pdoc, loc, f"design currency {program.currency} is neither the market's currency ({market.currency}) "
                             f"nor its reporting currency ({market.reporting_currency}): no FX rate to convert it "
                             f"(expected a design in {market.currency} or {market.reporting_currency})")
        return None, 1.0
    data = convert_currency(program, rate)
    data["currency"] = market.currency
    if pb is not None:
        data = _apply_overrides(data, pb)
    try:
        return Program.model_validate(data), rate
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            error_obj = (err.get("ctx") or {}).get("error")
            if isinstance(error_obj, SpecIssues):  # a cross-field check: its own words, full path
                for sub, msg in error_obj.issues:
                    where = ".".join(map(str, tuple(err["loc"]) + tuple(sub)))
                    c.add(pdoc, ("overrides",), f"after local overrides the design is invalid: {where}: {msg}")
            else:
                c.add(pdoc, ("overrides",), f"after local overrides the design is invalid: "
                                            f"{'.'.join(map(str, err['loc']))}: {err['msg']} (expected local values "
                                            f"that keep the design valid)")
        return None, rate


def _check_named_files(c: _Collector, pdoc: Document, base: Path, pshown: str, baseline: str | None) -> None:
    """Validate the design, market and baseline an invalid playbook names (when it names them
    as text and they exist), so that their errors are reported with the playbook's."""
    data = pdoc.data if isinstance(pdoc.data, dict) else {}
    named: list[tuple[str, type[Spec], Path, str]] = []
    for key, model in (("design", Program), ("market", Market), ("baseline", Program)):
        ref = data.get(key)
        if key == "baseline" and baseline is not None:
            if baseline != "none":
                named.append((key, model, Path(baseline), baseline))
            continue
        if isinstance(ref, str) and not (key == "baseline" and ref == "none"):
            named.append((key, model, *_shown(base, ref, pshown)))
    for _key, model, path, shown in named:
        if path.is_file():
            c.model(model, c.doc(path, shown))


def with_design(scenario: Scenario, design_path: str | Path) -> Scenario:
    """The scenario with another design in place of the playbook's, converted into the
    market's currency like the playbook's own; the playbook's local overrides apply where
    their tier and reward names exist in the new design."""
    from simulator.specs import load_program

    design = load_program(design_path)
    rate = fx_rate(design, scenario.market)
    if rate is None:
        raise InputErrors.one(str(design_path), f"design currency {design.currency} is neither market "
                                                f"{scenario.market.name}'s currency ({scenario.market.currency}) nor its "
                                                f"reporting currency ({scenario.market.reporting_currency}): no FX rate",
                              field="currency")
    data = _apply_overrides_known(convert_currency(design, rate), scenario.playbook, design)
    data["currency"] = scenario.market.currency
    try:
        local = Program.model_validate(data)
    except ValidationError as exc:
        raise InputErrors([InputError(str(design_path), None, ".".join(map(str, e["loc"])),
                                      f"after the playbook's local overrides: {e['msg']}") for e in exc.errors(include_url=False)]) from None
    shown = str(design_path)
    inputs = {k: v for k, v in scenario.inputs.items() if k != scenario.paths["design"]}
    inputs[shown] = sha256(Path(design_path).read_bytes())
    return dataclasses.replace(scenario, program=local, fx_design_to_local=rate, inputs=inputs,
                               paths={**scenario.paths, "design": shown},
                               overrides={**scenario.overrides, "design": shown})


def _apply_overrides_known(data: dict[str, Any], pb: Playbook, design: Program) -> dict[str, Any]:
    """:func:`_apply_overrides` restricted to the tiers and rewards the design has."""
    ov = pb.overrides
    tiers = set(design.tiers.names) if design.tiers else set()
    rewards = {r.name for r in design.rewards.catalogue}
    known = ov.model_copy(update={
        "tier_thresholds": {k: v for k, v in ov.tier_thresholds.items() if k in tiers},
        "rewards": {k: v for k, v in ov.rewards.items() if k in rewards},
        "local_rewards": tuple(r for r in ov.local_rewards if r.name not in rewards and (not r.tiers or set(r.tiers) <= tiers)),
        "cashback": ov.cashback if design.rewards.cashback is not None else None,
        "fee": ov.fee if design.enrolment.fee is not None else None,
    })
    return _apply_overrides(data, pb.model_copy(update={"overrides": known}))


def resolve(playbook_path: str | Path, *, baseline: str | None = None) -> Scenario:
    """Load a playbook with its design, market and baseline, check every cross-file reference
    and return the resolved :class:`Scenario`.

    Parameters
    ----------
    playbook_path : the playbook file.
    baseline : overrides the playbook's ``baseline``: ``"none"`` or a design path (relative to
        the current directory, as typed on a command line).
    """
    c = _Collector()
    pshown = str(playbook_path)
    pdoc = c.doc(Path(playbook_path), pshown)
    pb: Playbook | None = c.model(Playbook, pdoc)
    if pb is None or pdoc is None:
        if pdoc is not None:  # still check the files it names, so that every error is listed at once
            _check_named_files(c, pdoc, Path(playbook_path).parent, pshown, baseline)
        raise InputErrors(c.errors)
    base = Path(playbook_path).parent
    design_path, design_shown = _shown(base, pb.design, pshown)
    market_path, market_shown = _shown(base, pb.market, pshown)
    ddoc = c.doc(design_path, design_shown) if design_path.is_file() else None
    if not design_path.is_file():
        c.add(pdoc, ("design",), f"design file not found: {design_shown} (expected a design file, path relative to this playbook)")
    mdoc = c.doc(market_path, market_shown) if market_path.is_file() else None
    if not market_path.is_file():
        c.add(pdoc, ("market",), f"market file not found: {market_shown} (expected a market file, path relative to this playbook)")
    program: Program | None = c.model(Program, ddoc)
    market: Market | None = c.model(Market, mdoc)

    base_choice = baseline if baseline is not None else pb.baseline
    bprogram: Program | None = None
    bdoc = None
    if base_choice != "none":
        if baseline is not None:
            bpath, bshown = Path(baseline), baseline
        else:
            bpath, bshown = _shown(base, pb.baseline, pshown)
        if not bpath.is_file():
            if baseline is not None:
                c.errors.append(InputError(bshown, None, "", "baseline design file not found (expected 'none' or a design file)"))
            else:
                c.add(pdoc, ("baseline",), f"baseline design file not found: {bshown} (expected 'none' or a design file)")
        else:
            bdoc = c.doc(bpath, bshown)
            bprogram = c.model(Program, bdoc)

    if program is not None and market is not None and ddoc is not None and mdoc is not None:
        _check_design_vs_market(c, ddoc, program, market, mdoc)
    if bprogram is not None and market is not None and bdoc is not None and mdoc is not None:
        _check_design_vs_market(c, bdoc, bprogram, market, mdoc)

    if market is not None:
        for i, d in enumerate(pb.enrolment_drives):
            _check_target(c, pdoc, ("enrolment_drives", i, "target"), d.target, market, program)
            _check_channel(c, pdoc, ("enrolment_drives", i, "channel"), d.channel, market)
        for i, camp in enumerate(pb.campaigns):
            _check_target(c, pdoc, ("campaigns", i, "target"), camp.target, market, program)
            _check_channel(c, pdoc, ("campaigns", i, "channel"), camp.channel, market)
        pilot = pb.pilot.stores if pb.pilot is not None else None
        if pb.pilot is not None:
            if market.stores is None:
                c.add(pdoc, ("pilot",), f"market {market.name} has no store network (expected a `stores:` section in the market, or no pilot)")
            else:
                _check_stores(c, pdoc, ("pilot", "stores"), pilot, market)
        for i, ch in enumerate(pb.staff_challenges):
            _check_stores(c, pdoc, ("staff_challenges", i, "stores"), ch.stores, market, pilot)
        if base_choice != "none" and pb.pilot is not None and baseline is not None:
            c.add(pdoc, ("pilot",), f"a pilot by store needs baseline 'none', not {baseline}: a design replacing a running "
                                    f"program in some stores only is not modelled (expected --baseline none)")
    if program is not None:
        tiers = program.tiers.names if program.tiers else ()
        for t in pb.overrides.tier_thresholds:
            if t not in tiers:
                c.add(pdoc, ("overrides", "tier_thresholds", t), f"unknown tier '{t}'{did_you_mean(t, tiers)} (expected one of the design's: {', '.join(tiers) or 'none'})")
        rewards = [r.name for r in program.rewards.catalogue]
        for r in pb.overrides.rewards:
            if r not in rewards:
                c.add(pdoc, ("overrides", "rewards", r), f"unknown reward '{r}'{did_you_mean(r, rewards)} (expected one of the design's: {', '.join(rewards) or 'none'})")
        if pb.overrides.cashback is not None and program.rewards.cashback is None:
            c.add(pdoc, ("overrides", "cashback"), "the design has no cashback to override (expected no overrides.cashback)")
        if pb.overrides.fee is not None and program.enrolment.fee is None:
            c.add(pdoc, ("overrides", "fee"), "the design has no membership fee to override (expected no overrides.fee)")
        for i, r in enumerate(pb.overrides.local_rewards):
            if r.name in rewards:
                c.add(pdoc, ("overrides", "local_rewards", i, "name"), f"reward '{r.name}' is already in the design (expected a new name; use overrides.rewards to change it)")

    if c.errors or program is None or market is None:
        raise InputErrors(c.errors)

    local, rate = _localise(c, program, market, pb, pdoc, ("design",))
    blocal = None
    if bprogram is not None:
        blocal, _ = _localise(c, bprogram, market, None, pdoc, ("baseline",))
    if c.errors or local is None:
        raise InputErrors(c.errors)

    inputs = {pshown: sha256(pdoc.raw), design_shown: sha256(ddoc.raw), market_shown: sha256(mdoc.raw)}
    paths = {"playbook": pshown, "design": design_shown, "market": market_shown}
    if bdoc is not None:
        inputs[bdoc.path] = sha256(bdoc.raw)
        paths["baseline"] = bdoc.path
    return Scenario(program=local, baseline=blocal, market=market, playbook=pb, fx_design_to_local=rate,
                    inputs=inputs, paths=paths, overrides={} if baseline is None else {"baseline": baseline},
                    warnings=tuple(scenario_warnings(pdoc, pb, local, market, mdoc)))


def validate_paths(paths: Iterable[str | Path], warnings: list[InputError] | None = None) -> list[InputError]:
    """Validate files (designs, markets, playbooks with what they name) and directories of
    them; return every error found. ``warnings``, when given, receives the playbooks' warnings
    (:func:`scenario_warnings`), each once."""
    from simulator.specs import KINDS, kind_of

    errors: list[InputError] = []
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(list(p.rglob("*.yaml")) + list(p.rglob("*.yml")))
            if not found:
                errors.append(InputError(str(p), None, "", "directory holds no .yaml files (expected designs, markets or playbooks)"))
            files.extend(found)
        else:
            files.append(p)
    for f in files:
        try:
            doc = read_yaml(f)
            kind = kind_of(doc)
            if kind == "search":  # with the playbook it names: every variable's path checked
                from simulator.optimise import load_problem

                load_problem(f)
            elif kind == "playbook":
                found_warnings = resolve(f).warnings
                if warnings is not None:
                    warnings.extend(w for w in found_warnings if w not in warnings)
            else:
                validate_document(KINDS[kind], doc)
        except InputErrors as exc:
            errors.extend(exc.errors)
    # one error reported once even when two playbooks name the same broken market
    seen: set[InputError] = set()
    unique = []
    for e in errors:
        if e not in seen:
            seen.add(e)
            unique.append(e)
    return unique
