r"""Estimating a market file from a transaction log.

:func:`calibrate` turns a cleaned log into a validated :class:`~simulator.specs.market.Market`
(segments with their purchase rates, heterogeneity and baskets, the monthly transition matrix,
seasonality, arrivals) plus the diagnostics the calibration report shows;
:func:`~simulator.calibration.market_file.write_market` writes it as a market file that
validates and runs as is. This module orchestrates; each model lives in its own module:

* :mod:`~simulator.calibration.states` -- the default segmentation, frequency tier x recency
  (:class:`~simulator.calibration.segmentation.RFMStates`): the states of a lapse-and-return model
  fitted by maximum likelihood (:mod:`~simulator.calibration.lapse_return`), whose chain ages a
  cohort correctly;
* :mod:`~simulator.calibration.rules` -- a named rule set
  (:class:`~simulator.calibration.segmentation.RuleSet`): transitions counted month to month;
* :mod:`~simulator.calibration.segment_fit` -- what both segmentations hand back (segments,
  rates, baskets, chain, in-sample fit), the ``new`` segment, rounding;
* :mod:`~simulator.calibration.baskets` -- spend per transaction (lognormal within and between
  customers, each customer's basket multiplier);
* :mod:`~simulator.calibration.seasonality` -- calendar-month multipliers;
* :mod:`~simulator.calibration.acquisition` -- arrivals of new customers;
* :mod:`~simulator.calibration.optional_columns` -- category, member, channel and store columns;
* :mod:`~simulator.calibration.groups` -- lifecycle and value groups, sparse segments merged;
* :mod:`~simulator.calibration.market_file` -- the market file's text and header.

**Both segmentations**: a ``new`` segment holds customers in their first month (purchase rate =
transactions in the first month, the first included; it moves to the segments of the customers
at the end of their first month); arrivals per month are counted after a burn-in at the start
of the log; each segment's basket is its mean spend per transaction; the seasonality is month
lengths, times calendar-month multipliers when the window has at least 24 months.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import pandas as pd
from scipy import sparse

from simulator.calibration.acquisition import _acquisition
from simulator.calibration.baskets import BasketDrift, BasketFit, _fit_baskets, basket_multipliers
from simulator.calibration.baskets import basket_drift as estimate_basket_drift
from simulator.calibration.groups import MIN_SEGMENT_CUSTOMERS, PROJECTION_MONTHS, merge_sparse, rule_groups, state_groups
from simulator.calibration.lapse_return import LapseReturnModel, Types, fit_lapse_return
from simulator.calibration.market_file import DEFAULT_CHANNELS, DEFAULT_MEMBER_OPT_IN, market_yaml, write_market
from simulator.calibration.optional_columns import (
    EnrolmentFit, OptionalColumnsFit, category_names, optional_columns,
)
from simulator.calibration.potential import BANDS, PotentialScore, fit_potential
from simulator.calibration.rules import _calibrate_rules
from simulator.calibration.seasonality import _month_lengths
from simulator.calibration.segment_fit import HOMOGENEOUS_SHAPE, _round, _rounded_row, _rounded_shares, row_argmax
from simulator.calibration.segmentation import (
    MonthlyPanel, RFMStates, RuleSet, calibration_month_end, monthly_panel, rfm_arrays,
)
from simulator.calibration.states import _calibrate_states, state_chain
from simulator.calibration.stores import MIN_STORE_CUSTOMERS, store_network
from simulator.calibration.transactions import TransactionLog
from simulator.specs.market import Market

__all__ = [
    "CalibratedMarket",
    "LapseReturnModel",
    "EnrolmentFit",
    "OptionalColumnsFit",
    "calibrate",
    "category_names",
    "customer_states",
    "fit_lapse_return",
    "market_yaml",
    "optional_columns",
    "state_chain",
    "write_market",
]


@dataclass
class CalibrationDiagnostics:
    """What the calibration report shows.

    Attributes
    ----------
    segment_sizes : pandas.DataFrame
        Per segment: ``customers`` (expected number at the calibration end), ``share``,
        ``purchase_rate``, ``basket_mean``, ``lapsed``.
    transitions : pandas.DataFrame
        The monthly transition matrix (rows: from, columns: to).
    monthly : pandas.DataFrame
        Per calibration month: ``observed`` transactions (first purchases included),
        ``observed_repeat`` and ``fitted_repeat`` (one-step-ahead expectation of the model, or
        the chain's for a rule set), ``new_customers``.
    return_by_recency : pandas.DataFrame
        Per recency (months since the last purchase): observed share of customers buying in the
        next month over the calibration window, and the fitted share.
    frequency : pandas.DataFrame
        Distribution of the customers' repeat transactions over the window: observed and fitted
        (expected under the model, simulated from each customer's first purchase).
    basket : BasketFit
    basket_sample : numpy.ndarray
        Transaction amounts of the window (for the fitted-vs-observed basket plot).
    notes : list of str
    optional_columns : OptionalColumnsFit or None
        What the optional columns (category, member, channel, store) gave; None when the log
        has none of them.
    states : pandas.DataFrame or None
        Default segmentation: per state of the model (type ``tier`` at ``recency``), its expected
        ``customers`` at the calibration end, its probability of buying next month
        (``buy_next_month``), the market ``segment`` it is in (sparse states merged) and the most
        customers that segment holds, at the end or in the months projected after it
        (``segment_most_customers``, of the smaller of the log's customers and the base).
    basket_drift : BasketDrift or None
        The trend of spend per transaction over the window and whether the baskets were moved to
        the calibration end's level (:func:`~simulator.calibration.baskets.basket_drift`).
    """

    segment_sizes: pd.DataFrame
    transitions: pd.DataFrame
    monthly: pd.DataFrame
    return_by_recency: pd.DataFrame
    frequency: pd.DataFrame
    basket: BasketFit
    basket_sample: np.ndarray
    potential: PotentialScore | None
    potential_mix: pd.DataFrame | None
    model: LapseReturnModel | None
    notes: list[str] = field(default_factory=list)
    optional_columns: OptionalColumnsFit | None = None
    states: pd.DataFrame | None = None
    basket_drift: BasketDrift | None = None


@dataclass
class CalibratedMarket:
    """A calibrated market and what went into it.

    Attributes
    ----------
    market : Market
        The validated market.
    diagnostics : CalibrationDiagnostics
    panel : MonthlyPanel
        The calibration window.
    calibration_end : pandas.Timestamp
        Last day of the window.
    segmentation : RFMStates or RuleSet
    customers : pandas.DataFrame
        Per customer known at the calibration end (index ``customer_id``): ``recency_months``,
        ``segment`` (most likely), ``basket_mult``, and the posterior type probabilities
        (columns ``p_<type>``) for the default segmentation.
    types : Types or None
        The model's types (default segmentation).
    state_segment : numpy.ndarray or None
        Default segmentation: the market segment of each of the model's states (index
        ``1 + g (R + 1) + k`` for type g at recency k, 0 for ``new``), which differs from the
        state when sparse states were merged.
    """

    market: Market
    diagnostics: CalibrationDiagnostics
    panel: MonthlyPanel
    calibration_end: pd.Timestamp
    segmentation: RFMStates | RuleSet
    customers: pd.DataFrame
    types: Types | None
    source: dict[str, str] = field(default_factory=dict)
    state_segment: np.ndarray | None = None

    @property
    def model(self) -> LapseReturnModel | None:
        return self.diagnostics.model


def calibrate(
    log: TransactionLog | pd.DataFrame,
    *,
    name: str,
    currency: str,
    gross_margin: float,
    calibration_end: str | pd.Timestamp | None = None,
    segmentation: RFMStates | RuleSet | None = None,
    vat_rate: float = 0.0,
    prices_include_tax: bool = True,
    reporting_currency: str | None = None,
    fx_to_reporting: float = 1.0,
    discount_rate: float = 0.08,
    seasonality: Literal["auto", "flat"] | tuple[float, ...] | np.ndarray = "auto",
    seasonality_min_months: int = 24,
    seasonality_source: str | None = None,
    acquisition_burn_in: int = 6,
    potential_horizon: int = 3,
    description: str | None = None,
    source: str | Path | None = None,
    step: Callable[[str], None] | None = None,
    customers: int | None = None,
    channels: dict[str, float] | None = None,
    member_opt_in: dict[str, float] | None = None,
    min_segment_customers: float = MIN_SEGMENT_CUSTOMERS,
    min_store_customers: int = MIN_STORE_CUSTOMERS,
    basket_drift: bool = True,
) -> CalibratedMarket:
    """Estimate a market from a transaction log (see the module docstring).

    Parameters
    ----------
    log : TransactionLog or DataFrame
        The cleaned log (:func:`~simulator.calibration.transactions.read_transactions`).
    name : str
        Market name (a letter, then letters, digits, ``_`` or ``-``).
    currency : str
        ISO 4217 code of the log's amounts.
    gross_margin : float
        Gross margin on net sales (not in a transaction log: the finance team's figure).
    calibration_end : date-like, optional
        Last day used; it is moved back to the end of the last complete calendar month on or
        before it. Default: the last complete month of the log.
    segmentation : RFMStates or RuleSet, optional
        Default ``RFMStates()``.
    vat_rate, prices_include_tax, discount_rate : economics of the market file.
    reporting_currency, fx_to_reporting : default the log's currency at 1.
    seasonality : "auto", "flat" or 12 multipliers
        "auto": month lengths, times calendar-month effects estimated when the window has
        ``seasonality_min_months`` months or more; "flat": month lengths only; 12 values: the
        whole multipliers of January..December (month lengths included), normalised to mean 1.
    seasonality_source : str, optional
        Where 12 given multipliers come from (a market file), named in the notes.
    acquisition_burn_in : int
        Months at the start of the log whose first purchases are not counted as arrivals.
    potential_horizon : int
        Months ahead of the potential score (0: no potential score).
    source : path, optional
        The log's file, named (with its SHA-256) in the market file's header.
    step : callable, optional
        Called with the name of each long step as it starts (progress).
    customers : int, optional
        The market's customer base when the log is a sample or one banner of several: the
        market's ``customers`` is this instead of the log's customers known at the calibration
        end; segment shares are unchanged and arrivals are scaled by ``customers`` / the log's
        customers (the log's are kept in ``calibration.log_customers``).
    channels, member_opt_in : dict, optional
        The market's ``reachability`` (share opted in to each contact channel; share of new
        members opting in); a log does not hold them. Default :data:`DEFAULT_CHANNELS` and
        :data:`DEFAULT_MEMBER_OPT_IN`, stated as assumptions in the market file's header.
    min_segment_customers : float
        Default states: segments holding fewer customers at the calibration end are merged
        (:func:`~simulator.calibration.groups.merge_sparse`; 0: none is).
    min_store_customers : int
        With a store column: stores home to fewer customers are merged into one store
        ``other`` (:func:`~simulator.calibration.stores.store_network`).
    basket_drift : bool
        Move every segment's basket to the calibration end's level when spend per transaction
        drifts clearly and steadily over the window
        (:func:`~simulator.calibration.baskets.basket_drift`); False: baskets as measured (the
        drift is still estimated and noted).
    """
    step = step or (lambda name: None)
    segmentation = RFMStates() if segmentation is None else segmentation
    end = calibration_month_end(log, calibration_end)
    frame = log.transactions if isinstance(log, TransactionLog) else log
    first_day = pd.Timestamp(pd.to_datetime(frame["date"]).min()).normalize()
    if first_day > end:
        raise ValueError(f"no complete calendar month to calibrate on: the calibration window ends on {end.date()} "
                         f"(the end of the last complete month) but the log starts on {first_day.date()}")
    step("monthly panel")
    panel = monthly_panel(log, end, visits=True)
    notes: list[str] = []
    if calibration_end is not None and pd.Timestamp(calibration_end).normalize() != end:
        notes.append(f"calibration end moved from {pd.Timestamp(calibration_end).date()} to {end.date()}, "
                     "the end of the last complete month")
    T = panel.n_months
    step("baskets and optional columns")
    optional = optional_columns(log, end, panel, burn_in=acquisition_burn_in)
    tx = panel.visits
    basket, per_customer = _fit_baskets(tx)
    bmult = basket_multipliers(per_customer, basket, panel.n_customers)
    acquisition, note = _acquisition(panel, acquisition_burn_in)
    notes.append(note)
    month_len = _month_lengths()
    first_counts = panel.counts[np.arange(panel.n_customers), panel.first_month]
    new_rate = float(first_counts.mean())

    potential = None
    if potential_horizon:
        try:
            step("potential score")
            potential = fit_potential(panel, horizon_months=potential_horizon)
        except ValueError as exc:
            notes.append(f"no potential score: {exc}")

    season_fixed = None
    auto = isinstance(seasonality, str) and seasonality == "auto"
    if not isinstance(seasonality, str):
        season_fixed = np.asarray(seasonality, dtype=np.float64)
        if season_fixed.shape != (12,) or not np.all(np.isfinite(season_fixed)) or np.any(season_fixed < 0) \
                or season_fixed.sum() <= 0:
            raise ValueError(f"seasonality needs 12 values >= 0 (January..December), got {seasonality!r}")
        season_fixed = season_fixed / season_fixed.mean()
    elif seasonality not in ("auto", "flat"):
        raise ValueError(f"seasonality must be 'auto', 'flat' or 12 values, not {seasonality!r}")

    if isinstance(segmentation, RFMStates):
        fit = _calibrate_states(panel, segmentation, season_fixed, auto, seasonality_min_months, tx, step)
    elif isinstance(segmentation, RuleSet):
        step("segments by the rule set")
        fit = _calibrate_rules(panel, segmentation, season_fixed, auto, seasonality_min_months, tx)
    else:
        raise TypeError(f"segmentation must be RFMStates or RuleSet, not {type(segmentation).__name__}")
    if season_fixed is not None:
        fit.notes.append("seasonality as given" if seasonality_source is None else
                         f"seasonality borrowed from {seasonality_source} (its 12 calendar-month multipliers, month "
                         "lengths included), not estimated from this log")
    fit.notes.insert(0, f"first month of customers: {new_rate:.3f} transactions on average (the first included)")
    drift = estimate_basket_drift(tx, panel.months[0], T)
    if drift.used and basket_drift:
        fit = dataclasses.replace(fit, baskets=fit.baskets * drift.multiplier)
    elif drift.used:
        drift = dataclasses.replace(drift, used=False, multiplier=1.0,
                                    note=drift.note.split(": used")[0] + ": not used (basket_drift off), baskets as measured")
    fit.notes.append(drift.note)
    if customers is not None and customers <= 0:
        raise ValueError(f"customers must be a positive whole number, got {customers}")
    base = int(customers) if customers is not None else int(panel.n_customers)
    if base != panel.n_customers:
        notes.append(f"customer base {base:,} as given (the log holds {panel.n_customers:,} customers at the calibration "
                     f"end): segment shares as estimated, arrivals scaled by {base / panel.n_customers:.4g}")
        acquisition = acquisition * base / panel.n_customers

    # portable groups (lifecycle stage, value band) of each segment, then sparse segments merged
    states = None
    segment_of = None
    if isinstance(segmentation, RFMStates):
        R = segmentation.recency_months
        life, val = state_groups(fit.types.rate, fit.baskets[1::R + 1], fit.types.weight, fit.shares, R, fit.lapsed)
        mg = merge_sparse(names=fit.names, descriptions=fit.descriptions, shares=fit.shares, rates=fit.rates,
                          shapes=fit.shapes, baskets=fit.baskets, lapsed=fit.lapsed, transitions=fit.transitions,
                          lifecycle=life, value=val, type_names=fit.types.names, lapse_tiers=segmentation.lapse_tiers,
                          recency_months=R, customers=min(base, panel.n_customers), type_rate=fit.types.rate,
                          arrivals=acquisition * min(base, panel.n_customers) / base,
                          min_customers=min_segment_customers)
        G = len(fit.types.names)
        states = pd.DataFrame({"state": list(fit.names[1:]), "tier": np.repeat(list(fit.types.names), R + 1),
                               "recency": np.tile(np.arange(R + 1), G),
                               "customers": fit.shares[1:] * panel.n_customers,
                               "buy_next_month": [fit.transitions[s, 1 + ((s - 1) // (R + 1)) * (R + 1)] for s in range(1, len(fit.names))],
                               "segment": [mg.names[j] for j in mg.segment_of[1:]],
                               "segment_most_customers": mg.most_customers[mg.segment_of[1:]]})
        n_merged = sum(len(m) for m in mg.merged if len(m) > 1)
        if n_merged:
            notes.append(f"{n_merged} of the model's {len(fit.names) - 1} states held fewer than {min_segment_customers:g} "
                         f"customer each, at the calibration end and in the {PROJECTION_MONTHS} months the chain projects "
                         f"after it (of {min(base, panel.n_customers):,} customers and the arrivals): merged "
                         f"into {sum(1 for m in mg.merged if len(m) > 1)} segments: a tier holding less merged with an adjacent "
                         "tier recency by recency, then each state with an adjacent recency; transitions lumped with the "
                         "chain's stationary weights (see simulator/calibration/groups.py)")
        segment_of = mg.segment_of
        fit = dataclasses.replace(fit, names=mg.names, descriptions=mg.descriptions, shares=mg.shares, rates=mg.rates,
                                  shapes=mg.shapes, baskets=mg.baskets, lapsed=mg.lapsed, transitions=mg.transitions,
                                  weights=sparse.csr_matrix(fit.weights @ sparse.csr_matrix(mg.indicator)))
        life, val = mg.lifecycle, mg.value
    else:
        own = row_argmax(fit.weights)
        life, val = rule_groups(fit.names, fit.names[0], fit.rates, fit.baskets, fit.shares, fit.lapsed, own,
                                rfm_arrays(panel, T - 1)["recency_months"])
        few = [n for n, sh in zip(fit.names[1:], fit.shares[1:]) if sh * panel.n_customers < min_segment_customers]
        if few:
            notes.append(f"segments holding fewer than {min_segment_customers:g} customer at the calibration end: "
                         f"{', '.join(few)} (a rule set's segments are kept as named)")

    names = fit.names
    S = len(names)
    shares = _rounded_shares(fit.shares)
    # potential band mix of each segment (customers weighted by their segment membership); a
    # segment no known customer is in takes the overall mix. It goes into the market file so
    # that the engine draws each agent's band from its segment's mix.
    pot_mix = band = None
    if potential is not None:
        band = potential.bands.reindex(pd.Index(panel.customers)).to_numpy()
        code = pd.Categorical(band, categories=list(BANDS)).codes
        mix = np.stack([np.asarray(fit.weights[code == b].sum(axis=0)).ravel() for b in range(3)], axis=1)
        overall = np.bincount(code[code >= 0], minlength=3).astype(np.float64)
        overall = overall / overall.sum() if overall.sum() > 0 else np.full(3, 1 / 3)
        tot = mix.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            pot_mix = pd.DataFrame(np.where(tot > 0, mix / tot, overall[None, :]), index=list(names), columns=list(BANDS))
    segments = []
    for s in range(S):
        segments.append({
            "name": names[s],
            "description": fit.descriptions[s],
            "share": float(shares[s]),
            "purchase_rate": _round(fit.rates[s]),
            "rate_shape": _round(min(max(fit.shapes[s], 0.05), HOMOGENEOUS_SHAPE), 4),
            "basket": {"mean": _round(max(fit.baskets[s], 0.01), 4), "cv": _round(basket.cv, 4),
                       "individual_cv": _round(basket.individual_cv, 4)},
            "lapsed": bool(fit.lapsed[s]),
            "lifecycle": life[s],
            "value": val[s],
            **({"potential": _rounded_row(pot_mix.iloc[s].to_dict())} if pot_mix is not None else {}),
        })
    transitions = {names[s]: _rounded_row({names[j]: fit.transitions[s, j] for j in np.flatnonzero(fit.transitions[s] > 0)})
                   for s in range(S)}
    feats = rfm_arrays(panel, T - 1)
    if optional is not None and optional.stores is not None:
        step("store network")
        e = optional.enrolment
        column = dict(log.report.columns).get("store", "store") if isinstance(log, TransactionLog) else "store"
        network = store_network(
            frame, customers=panel.customers, end=end, counts=panel.counts, spend=panel.spend,
            first_month=panel.first_month, recency=feats["recency_months"], weights=fit.weights, segments=tuple(names),
            enrolment=e.per_customer if e is not None else None, propensity=e.estimate if e is not None else None,
            min_customers=min_store_customers, column=column, source=Path(source).name if source is not None else "")
        if network is not None:
            optional = dataclasses.replace(optional, network=network, notes=optional.notes + network.notes)
    season_total = fit.seasonality if fit.seasonality is not None else month_len
    season_list = [round(float(v), 6) for v in season_total / season_total.mean()]
    top = int(np.argmax(season_list))
    season_list[top] = round(season_list[top] + 12.0 - sum(season_list), 6)
    window = f"{panel.months[0]}..{panel.months[-1]}"
    market = Market.model_validate({
        "name": name,
        "description": description or (f"Calibrated from a transaction log: window {window}, {panel.n_customers} customers, "
                                       f"{'frequency tier x recency states' if isinstance(segmentation, RFMStates) else 'rule set ' + segmentation.name}."),
        "currency": currency,
        "reporting_currency": reporting_currency or currency,
        "fx_to_reporting": float(fx_to_reporting),
        "customers": base,
        "acquisition": {"per_month": _round(acquisition, 3), "segment": names[0]},
        "segments": tuple(segments),
        "transitions": transitions,
        "seasonality": tuple(season_list),
        "economics": {"gross_margin": float(gross_margin), "vat_rate": float(vat_rate),
                      "prices_include_tax": bool(prices_include_tax), "discount_rate": float(discount_rate)},
        "reachability": {"channels": dict(DEFAULT_CHANNELS if channels is None else channels),
                         "member_opt_in": dict(DEFAULT_MEMBER_OPT_IN if member_opt_in is None else member_opt_in)},
        "calibration": {"source": Path(source).name if source is not None else "", "log_start": first_day.date(),
                        "log_end": end.date(), "log_customers": int(panel.n_customers)},
        **(optional.market_fields() if optional is not None else {}),
    })

    # per customer (known at the calibration end)
    cust = pd.DataFrame({"recency_months": feats["recency_months"], "frequency": feats["frequency"],
                         "segment": np.array(names, dtype=object)[row_argmax(fit.weights)], "basket_mult": bmult},
                        index=pd.Index(panel.customers, name="customer_id"))
    if fit.posterior is not None and fit.types is not None:
        for g, tn in enumerate(fit.types.names):
            cust[f"p_{tn}"] = fit.posterior[:, g]
    if potential is not None:
        cust["potential"] = potential.scores.reindex(cust.index).to_numpy()
        cust["band"] = band
    monthly = pd.DataFrame({
        "period": [str(p) for p in panel.months],
        "observed": panel.counts.sum(axis=0),
        "observed_repeat": panel.counts.sum(axis=0) - np.bincount(panel.first_month, minlength=T),
        "fitted_repeat": fit.fitted_repeat,
        "new_customers": np.bincount(panel.first_month, minlength=T),
        "revenue": panel.spend.sum(axis=0),
    })
    sizes = pd.DataFrame({"segment": list(names), "customers": shares * panel.n_customers, "share": shares,
                          "purchase_rate": fit.rates, "basket_mean": fit.baskets, "lapsed": fit.lapsed,
                          "lifecycle": life, "value": val})
    diag = CalibrationDiagnostics(
        segment_sizes=sizes, transitions=pd.DataFrame(fit.transitions, index=list(names), columns=list(names)),
        monthly=monthly, return_by_recency=fit.by_recency, frequency=fit.frequency, basket=basket,
        basket_sample=tx["amount"].to_numpy(), potential=potential, potential_mix=pot_mix, model=fit.model,
        notes=notes + fit.notes + (optional.notes if optional is not None else []), optional_columns=optional,
        states=states, basket_drift=drift)
    src: dict[str, str] = {}
    if source is not None:
        raw = Path(source).read_bytes()
        src = {"name": Path(source).name, "sha256": hashlib.sha256(raw).hexdigest()}
    return CalibratedMarket(market=market, diagnostics=diag, panel=panel, calibration_end=end, segmentation=segmentation,
                            customers=cust, types=fit.types, source=src, state_segment=segment_of)


def customer_states(cm: CalibratedMarket, rng: np.random.Generator) -> tuple[np.ndarray, pd.Index]:
    """A draw of each known customer's segment at the calibration end (indices into
    ``cm.market.segments``): the model's type drawn from the customer's posterior, at its own
    recency; for a rule set, the customer's segment. Returns (segment indices, customer ids)."""
    names = cm.market.segment_names
    cust = cm.customers
    if cm.types is not None:
        R = cm.segmentation.recency_months
        post = cust[[f"p_{tn}" for tn in cm.types.names]].to_numpy()
        cum = np.cumsum(post, axis=1)
        cum[:, -1] = 1.0
        g = (rng.random(len(cust))[:, None] > cum).sum(axis=1)
        k = np.minimum(cust["recency_months"].to_numpy(), R)
        seg = 1 + g * (R + 1) + k
        if cm.state_segment is not None:
            seg = cm.state_segment[seg]
    else:
        index = {nm: i for i, nm in enumerate(names)}
        seg = np.array([index[s] for s in cust["segment"]], dtype=np.int64)
    return seg.astype(np.int64), cust.index
