"""``loyalty-sim estimate-response``: the program's measured effect from a member log.

Writes into ``--out`` (atomically, refused if it exists unless ``--force``):

* ``estimates.json``: the event study of spend and of purchases by months since joining, with
  intervals, self-selection before joining, the naive member uplift, the balance of the groups
  before joining, and what was not estimated and why;
* ``event_study.csv`` and ``event_study.png`` (the effect by month since joining, with its
  interval), ``balance.csv``;
* ``manifest.json``: the input hashes, version, seed and options.

What it does not write, and why: no field of the market's ``response`` block. The engine's
lift after joining is the sum of goal gradient, rewarded behaviour, tier status and fewer
lapses (``docs/model.md``), each a parameter of its own; the event study measures their sum,
which is not any one of them, and the self-selection ratio measured before joining is not the
engine's ``self_selection`` elasticity. Writing either into the block would change what the
engine does under a name that means something else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from simulator import __version__
from simulator.errors import InputErrors
from simulator.output import check_destination, staged_directory
from simulator.response.estimate import EventStudy, event_study, panel_from_log

NOT_WRITTEN = {
    "response": "the event-study lift is the sum of the engine's goal_gradient, rewarded_behaviour, tier_status "
                "and transition_effect (docs/model.md); no single response field means it, so none is written",
    "self_selection": "the ratio of joiners' spend to comparable customers' before joining is measured; the engine's "
                      "self_selection is an elasticity of joining to the latent rate, which this landing does not map",
    "lapse_reduction": "not estimated yet (issue #13)",
    "goal_gradient": "not estimated yet: the balance column is read by no estimator so far (issue #13)",
    "campaign_lift": "not estimated yet: needs campaign contacts and a control group in the log (issue #13)",
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _study_dict(es: EventStudy) -> dict:
    post = es.post()
    return {
        "outcome": es.outcome, "level": es.level, "cohorts": es.cohorts,
        "mean_lift_after_joining": {"estimate": post[0], "lo": post[1], "hi": post[2],
                                    "months": f"0..{int(es.events.max())}"},
        "naive_member_uplift": es.naive,
        "before_joining": {"joiners": es.pre_joiners, "controls": es.pre_controls,
                           "ratio": {"estimate": es.pre_ratio[0], "lo": es.pre_ratio[1], "hi": es.pre_ratio[2]}},
        "by_month_since_joining": [{k: (float(v) if k != "event" else int(v)) for k, v in row.items()}
                                   for row in es.table().to_dict("records")],
    }


def _plot(studies: list[EventStudy], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(studies), figsize=(5.5 * len(studies), 3.6))
    for ax, es in zip(np.atleast_1d(axes), studies):
        ax.axhline(0, color="0.6", lw=0.8)
        ax.axvline(-0.5, color="0.6", lw=0.8, ls=":")
        ax.fill_between(es.events, es.lo, es.hi, color="tab:blue", alpha=0.2, label=f"{es.level:.0%} interval")
        ax.plot(es.events, es.att, "o-", color="tab:blue", ms=3, label="lift (joiners vs not yet joined)")
        ax.set_xlabel("months since joining")
        ax.set_ylabel(f"{es.outcome} per customer-month")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def estimate_file(source, market: Path, out: Path, *, force: bool, seed: int) -> dict:
    """Read the log and the market, estimate, write ``out``; return the estimates."""
    from simulator.calibration.transactions import read_transactions
    from simulator.specs import load
    from simulator.specs.market import Market

    check_destination(out, force)  # refused before any work, not after it
    load(Market, market)  # a market that does not validate stops here, with its errors
    if source.format != "table":
        raise InputErrors.one("(command line)", f"{source.format!r} logs carry no member flag (expected --format table)",
                              field="--format")
    log = read_transactions(source.path, **{k: v for k, v in dataclasses.asdict(source).items()
                                            if k not in ("path", "format")})
    tx = log.transactions
    if "member" not in tx.columns:
        raise InputErrors.one(str(source.path), "no member column (expected a column 'member' with 1/0, yes/no or "
                                                "true/false per transaction, or --member-col NAME)")
    panel = panel_from_log(tx)
    if panel.n_joiners == 0:
        raise InputErrors.one(str(source.path), "no customer has a member-flagged purchase (expected the member "
                                                "flag to be 1/true/yes on members' transactions)", field="member")
    studies = [event_study(panel, outcome=o, seed=seed) for o in ("spend", "purchases")]
    if studies[0].cohorts == 0:
        raise InputErrors.one(str(source.path), "no joiner has 6 months of purchases before joining (expected "
                              "members who were customers at least 6 months before their first member purchase)")
    result = {
        "source": f"estimated from {Path(str(source.path)).name}, staggered difference-in-differences (joiners vs "
                  f"customers not yet joined, multiplicative trends, customer bootstrap), "
                  f"n = {len(panel.customers)} customers ({panel.n_joiners} joiners), {dt.date.today().isoformat()}",
        "customers": int(len(panel.customers)), "joiners": panel.n_joiners,
        "months": [str(panel.months[0]), str(panel.months[-1])],
        "estimates": {es.outcome: _study_dict(es) for es in studies},
        "balance_before_joining": studies[0].balance.to_dict("records"),
        "not_written_to_response": NOT_WRITTEN,
    }
    manifest = {"command": "estimate-response", "version": __version__, "seed": seed,
                "inputs": {str(source.path): _sha256(Path(str(source.path))) if Path(str(source.path)).is_file() else None,
                           str(market): _sha256(market)},
                "files": ["estimates.json", "event_study.csv", "event_study.png", "balance.csv"]}
    with staged_directory(out, force) as tmp:
        (tmp / "estimates.json").write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
        pd.concat([es.table().assign(outcome=es.outcome) for es in studies]).to_csv(tmp / "event_study.csv", index=False)
        studies[0].balance.to_csv(tmp / "balance.csv", index=False)
        _plot(studies, tmp / "event_study.png")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return result
