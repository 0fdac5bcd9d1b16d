"""``docs/model.md``: the model's equations and sources, generated from the docstrings of the
modules that implement them, so the document and the code cannot disagree (a test checks
``docs/model.md`` is current; ``make docs`` rewrites it)."""

from __future__ import annotations

import importlib
import inspect

SECTIONS = (
    ("Agents and heterogeneity", "simulator.engine.population"),
    ("Random streams and common random numbers", "simulator.engine.streams"),
    ("Design and baseline in lockstep", "simulator.engine.simulation"),
    ("The calendar", "simulator.engine.calendar"),
    ("Purchases and baskets", "simulator.engine.mechanisms.purchases"),
    ("Enrolment and self-selection", "simulator.engine.mechanisms.enrolment"),
    ("Earning points", "simulator.engine.mechanisms.points"),
    ("Rewards, goal gradient and rewarded behaviour", "simulator.engine.mechanisms.rewards"),
    ("Tiers and status", "simulator.engine.mechanisms.tiers"),
    ("Expiry", "simulator.engine.mechanisms.expiry"),
    ("A program already running at the start", "simulator.engine.mechanisms.history"),
    ("Campaigns and enrolment drives", "simulator.engine.mechanisms.campaigns"),
    ("Paid membership", "simulator.engine.mechanisms.fees"),
    ("Segment transitions", "simulator.engine.mechanisms.transitions"),
    ("The store network and pilots by store", "simulator.engine.stores"),
    ("Pilots by store: the readout against matched controls, and power", "simulator.pilot"),
    ("Calibrating a store network", "simulator.calibration.stores"),
    ("Calibrating baskets: spend per transaction and its drift", "simulator.calibration.baskets"),
    ("The points ledger", "simulator.engine.state"),
    ("Points liability (IFRS 15)", "simulator.finance.ifrs15"),
    ("The obligation left at the horizon", "simulator.finance.obligation"),
    ("NPV, ROI, payback", "simulator.finance.metrics"),
    ("Statements by fiscal year", "simulator.finance.statements"),
    ("What a run reports", "simulator.results"),
    ("Design optimisation", "simulator.optimise"),
    ("Measuring the effect of a running program", "simulator.response.estimate"),
    ("Self-selection mapped onto the engine's parameter", "simulator.response.selection"),
    ("Fewer lapses mapped onto the engine's transition effect", "simulator.response.lapses"),
    ("Goal gradient and rewarded behaviour from members' balances", "simulator.response.balances"),
    ("The goal gradient mapped onto the engine's parameter", "simulator.response.goal_gradient"),
    ("Campaign lifts from contacts and a control group", "simulator.response.campaigns"),
    ("Writing the measured response into a market", "simulator.response.command"),
    ("A member log written by the engine", "simulator.response.generate"),
)

PREAMBLE = """# The model

How loyalty-sim turns a design, a market and a playbook into a projection: every mechanism's
equation, its default and its source. Generated from the code's docstrings by
`loyalty-sim reference --model` (`make docs`); do not edit by hand.

Units: rates are per customer per month, money is in the market's local currency, points are
whole points in outputs (hundredths of a point inside the engine). Default behavioural
parameters, each with its source, are listed in [reference.md](reference.md) under
`ResponseParams`. The behavioural effects and their published sizes are summarised in the
project's domain notes: goal gradient (Kivetz, Urminsky & Zheng 2006), endowed progress
(Nunes & Dreze 2006), points pressure and rewarded behaviour (Taylor & Neslin 2005), most of
the redemption spike being selection (Nastasoiu et al. 2021), who changes (Liu 2007;
Meyer-Waarden 2007), status and demotion (Wang, Lewis, Cryder & Sprigg 2016), tier structure
(Dreze & Nunes 2009), tiers plus points (Kopalle et al. 2012), breakage (Colloquy 2011), cost
of rewards (Woolf).
"""


def _markdown(doc: str) -> str:
    """Docstring (reST-ish) -> Markdown: fence reST tables and indented equation blocks."""
    out: list[str] = []
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("====") or (line.startswith("    ") and line.strip() and (i == 0 or not lines[i - 1].strip())):
            block = []
            table = line.strip().startswith("====")
            while i < len(lines) and (lines[i].strip() if table else (lines[i].startswith("    ") or not lines[i].strip())):
                block.append(lines[i][0 if table else 4:])
                i += 1
                if table and i < len(lines) and not lines[i].strip():
                    break
            while block and not block[-1].strip():
                block.pop()
            out += ["```", *block, "```", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out).strip()


def sections() -> list[tuple[str, str]]:
    """SECTIONS, and every mechanism module of simulator.engine.mechanisms they do not name
    (found with pkgutil, titled by its ``TITLE``), after the last mechanism they name: a new
    mechanism's docstring reaches docs/model.md without a line here."""
    import pkgutil

    import simulator.engine.mechanisms as mechanisms

    named = {module for _, module in SECTIONS}
    found = [f"{mechanisms.__name__}.{m.name}" for m in pkgutil.iter_modules(mechanisms.__path__)
             if not m.name.startswith("_")]
    extra = [(getattr(importlib.import_module(m), "TITLE", m.rsplit(".", 1)[1].replace("_", " ").capitalize()), m)
             for m in sorted(found) if m not in named]
    last = max(i for i, (_, module) in enumerate(SECTIONS) if module.startswith(mechanisms.__name__ + "."))
    return [*SECTIONS[: last + 1], *extra, *SECTIONS[last + 1:]]


def model_document() -> str:
    parts = [PREAMBLE]
    for title, module in sections():
        doc = inspect.getdoc(importlib.import_module(module)) or ""
        parts.append(f"## {title}\n\n*Implemented in `{module}`.*\n\n{_markdown(doc)}\n")
    return "\n".join(parts)
