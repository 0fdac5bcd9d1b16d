r"""Writing a calibrated market as a market file.

:func:`market_yaml` gives the file's text: a header comment saying where it comes from (the
log and its SHA-256, the window, the model's parameters, what is estimated and what is an
assumption to check, such as the default reachability :data:`DEFAULT_CHANNELS`), then the market
(:func:`simulator.specs.dump`, which loads back to an equal object); :func:`write_market` writes
it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from simulator import __version__
from simulator.specs import dump

if TYPE_CHECKING:
    from simulator.calibration.estimate import CalibratedMarket


#: Reachability of a calibrated market (a log does not hold it): share of customers opted in to
#: each contact channel the shipped playbooks use, and share of new members opting in. Round,
#: mid-range assumptions between the shipped markets' (email 0.10-0.45, sms 0.10-0.60, app
#: 0.12-0.30): the market file's header says so; replace them with the CRM's figures.
DEFAULT_CHANNELS: dict[str, float] = {"email": 0.30, "sms": 0.20, "app": 0.20}
DEFAULT_MEMBER_OPT_IN: dict[str, float] = {"email": 0.35, "app": 0.25}


def market_yaml(cm: CalibratedMarket, *, source_name: str | None = None, source_sha256: str | None = None) -> str:
    """The market file's text: a header comment saying where it comes from, then the market
    (:func:`simulator.specs.dump`, which loads back to an equal object)."""
    src_name = source_name or cm.source.get("name") or "(a transaction log given in memory)"
    src_hash = source_sha256 or cm.source.get("sha256")
    panel = cm.panel
    lines = [
        f"# Calibrated by loyalty-sim calibrate from {src_name}" + (f" (SHA-256 {src_hash})" if src_hash else ""),
        f"# calibration window {panel.months[0]}..{panel.months[-1]}, ending {cm.calibration_end.date()}; "
        f"{panel.n_customers} customers; loyalty-sim {__version__}.",
    ]
    if cm.model is not None:
        m = cm.model
        R = cm.segmentation.recency_months
        lines += [
            "# Segments: frequency tier x months since the last purchase ('_rNN'; the last bucket '_rNNplus' holds",
            f"# everyone silent {R} months or more), from a lapse-and-return model fitted by maximum likelihood:",
            f"#   active purchase rate ~ Gamma(r={m.r:.4g}, alpha={m.alpha:.4g}) per month, lapse after a purchase month",
            f"#   ~ Beta(a={m.a:.4g}, b={m.b:.4g}), monthly return of lapsed customers rho={m.rho:.4g}.",
            "# Each state's purchase_rate is the expected purchases next month; its transition to '_r00' is the",
            "# probability of buying next month. 'new' holds customers in their first month. See",
            "# simulator/calibration/states.py.",
        ]
    else:
        lines.append(f"# Segments: rule set '{cm.segmentation.name}'; transitions counted month to month.")
    drift = cm.diagnostics.basket_drift
    if drift is not None and drift.used:
        lines.append(f"# baskets: spend per transaction drifts {drift.slope:+.4f}/month on the log scale within customers "
                     f"(z {drift.z:+.1f}); every basket moved x{drift.multiplier:.4f} to the calibration end's level, not")
        lines.append("#   carried forward (see simulator/calibration/baskets.py).")
    opt = cm.diagnostics.optional_columns
    estimated = opt is not None and opt.enrolment is not None and opt.enrolment.estimate is not None
    if opt is not None and opt.categories is not None:
        lines.append("# categories: share of spend by the log's category column over the calibration window.")
    if opt is not None and opt.network is not None:
        net = opt.network
        lines.append(f"# stores: each customer's home store (most spend) from the log's store column; shares of customers"
                     + (", enrolment multipliers from the member flag" if "enrolment" in net.table.columns else "")
                     + f"; stores home to fewer than {net.min_customers} customers merged into one; figures by store in "
                     "stores.csv.")
    m = cm.market
    if m.calibration is not None and m.customers != m.calibration.log_customers:
        lines.append(f"# customers: {m.customers:,}, the whole base as given (calibrate --customers); the log holds "
                     f"{m.calibration.log_customers:,} at the calibration end: shares as estimated, arrivals scaled.")
    reach = m.reachability
    if dict(reach.channels) == DEFAULT_CHANNELS and dict(reach.member_opt_in) == DEFAULT_MEMBER_OPT_IN:
        lines.append("# reachability: DEFAULTS of loyalty-sim calibrate (a log holds no opt-in): "
                     + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_CHANNELS.items()) + " of customers opted in; replace")
        lines.append("#   them with the CRM's shares (playbooks reach customers through these channels).")
    lines += [
        "# economics (gross margin, VAT) and response are assumptions, not in a transaction log: check them.",
    ]
    if estimated:
        lines[-1] = lines[-1][:-1]
        lines.append("# (except response.enrolment_propensity, estimated from the log's member flag).")
    return "\n".join(lines) + "\n" + dump(cm.market)


def write_market(cm: CalibratedMarket, path: str | Path, *, source: str | Path | None = None) -> Path:
    """Write the market file (creating its folder). ``source``: the log's file, to name it and
    its SHA-256 in the header (default: the ``source`` given to :func:`calibrate`)."""
    path = Path(path)
    name = sha = None
    if source is not None:
        raw = Path(source).read_bytes()
        name, sha = Path(source).name, hashlib.sha256(raw).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(market_yaml(cm, source_name=name, source_sha256=sha), encoding="utf-8")
    tmp.replace(path)
    return path
