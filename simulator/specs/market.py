"""A market (``markets/<market>/market.yaml``): its customer base, behaviour and economics.

Money is in the market's local ``currency``. Defaults of the behavioural response come from
published studies; each field's description names its source (see ``docs/model.md``).

A market may have a store network (``stores:``, :class:`StoreNetwork`): each customer's home
store is drawn from their segment's mix over the stores, and a store scales the enrolment
propensity and the opt-in shares of its customers (equations in
:mod:`simulator.engine.population` and :mod:`simulator.engine.mechanisms.enrolment`). A market
without one behaves exactly as before the network existed.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Iterator, Literal

from pydantic import Field

from simulator.specs.base import (
    Currency, Name, Probability, Share, Spec, Uncertain, check_sum, did_you_mean, unique_names,
)


#: Lifecycle stages a segment is in (playbook targets name them: ``target: {lifecycle: [at_risk]}``).
Lifecycle = Literal["new", "active", "at_risk", "lapsed"]
#: Value bands: thirds of the customer base by expected spend.
ValueBand = Literal["high", "medium", "low"]
LIFECYCLES: tuple[str, ...] = ("new", "active", "at_risk", "lapsed")
VALUE_BANDS: tuple[str, ...] = ("high", "medium", "low")


def value_thirds(spend: "list[float] | tuple[float, ...]", share: "list[float] | tuple[float, ...]") -> tuple[str, ...]:
    """Value band of each of a market's groups (segments, or a calibration's types): thirds of the
    customers ranked by expected spend. The groups are ordered by ``spend`` (expected spend per
    customer and month), highest first (ties: in the order given); a group's place is the share of
    customers ranked above it plus half its own share, and it is ``high`` when that is below 1/3,
    ``medium`` below 2/3, ``low`` otherwise. With no customers at all every group is ``medium``."""
    total = float(sum(share))
    out = ["medium"] * len(spend)
    if total <= 0:
        return tuple(out)
    above = 0.0
    for i in sorted(range(len(spend)), key=lambda j: (-float(spend[j]), j)):
        mid = (above + float(share[i]) / 2) / total
        out[i] = "high" if mid < 1 / 3 else "medium" if mid < 2 / 3 else "low"
        above += float(share[i])
    return tuple(out)


class Basket(Spec):
    """Spend per transaction: lognormal with this mean and coefficient of variation.
    Each customer's own mean basket is itself lognormal around the segment's mean."""

    mean: float = Field(gt=0, description="mean spend per transaction", json_schema_extra={"unit": "currency"})
    cv: float = Field(0.6, ge=0, le=5, description="coefficient of variation of one transaction's spend around the customer's mean")
    individual_cv: float = Field(0.3, ge=0, le=5, description="coefficient of variation of customers' mean baskets within the segment")


class Segment(Spec):
    """A customer segment with its monthly purchase behaviour."""

    name: Name
    description: str = ""
    share: Share = Field(description="share of the current customer base in this segment")
    purchase_rate: float = Field(ge=0, le=60, description="mean purchases per customer per month in this segment", json_schema_extra={"unit": "purchases per month"})
    rate_shape: float = Field(2.0, gt=0, le=1000, description="gamma shape of individual purchase rates around the segment mean (NBD heterogeneity: smaller = more heterogeneous)")
    basket: Basket
    lapsed: bool = Field(False, description="a disengaged segment: the program's transition effect reduces members' moves into it")
    lifecycle: Lifecycle | None = Field(
        None, description="lifecycle stage of the segment's customers, which playbook targets can name (`target: {lifecycle: "
                          "[at_risk]}`) on any market: 'new' (first months after the first purchase), 'active' (buying "
                          "as usual), 'at_risk' (silent longer than usual, not yet lapsed), 'lapsed' (disengaged). "
                          "Default: 'lapsed' for a lapsed segment, else 'active'. `loyalty-sim calibrate` writes it from "
                          "the months since the last purchase: 'new' for the first month, 'active' up to 2 silent months, "
                          "'at_risk' from 3, 'lapsed' from the lapsed recency on")
    value: ValueBand | None = Field(
        None, description="value band of the segment, which playbook targets can name (`target: {value: [high]}`) on any "
                          "market: thirds of the customer base ranked by expected spend (segments ordered by purchase_rate "
                          "x basket mean; a segment is 'high' when the customers ranked above it plus half its own are "
                          "under a third of the base, 'medium' under two thirds, else 'low'). Default: computed so; "
                          "`loyalty-sim calibrate` ranks its frequency tiers by their active spend instead, so that a "
                          "tier keeps its band at every recency")
    potential: dict[Literal["low", "medium", "high"], Share] | None = Field(
        None, description="share of this segment's customers in each potential band (written by `loyalty-sim calibrate` from the "
                          "fitted potential score); sums to 1. Without it, bands are thirds of each customer's expected 12-month spend")


class Calibration(Spec):
    """Where a calibrated market comes from (written by `loyalty-sim calibrate`)."""

    source: str = Field("", description="file name of the transaction log")
    log_start: dt.date = Field(description="first day of the calibration window (the log's first transaction)")
    log_end: dt.date = Field(description="last day of the calibration window (the end of its last complete month): "
                                         "`validate` warns when a playbook launches more than 12 months after it")
    log_customers: int = Field(gt=0, description="customers in the log known at the calibration end; `customers` differs "
                                                 "when `calibrate --customers` set the whole base",
                               json_schema_extra={"unit": "customers"})

    def issues(self) -> Iterator[tuple[tuple, str]]:
        if self.log_end < self.log_start:
            yield ("log_end",), f"log_end {self.log_end} is before log_start {self.log_start} (expected log_end on or after log_start)"


class Acquisition(Spec):
    """New customers joining the base."""

    per_month: Uncertain(Annotated[float, Field(ge=0)]) = Field(0.0, description="new customers per month", json_schema_extra={"unit": "customers per month"})
    segment: Name = Field(description="segment new customers start in")


class Economics(Spec):
    gross_margin: Uncertain(Probability) = Field(description="gross margin on net sales (share)")
    vat_rate: float = Field(0.0, ge=0, le=1, description="sales tax/VAT rate")
    prices_include_tax: bool = Field(True, description="whether basket amounts include tax (then net sales = amount / (1 + vat_rate))")
    discount_rate: Uncertain(Probability) = Field(0.08, description="annual discount rate for NPV (a range puts it in the P10/P90 and the tornado)", json_schema_extra={"unit": "per year"})


class Reachability(Spec):
    """Who a campaign can reach."""

    channels: dict[Name, Probability] = Field(default_factory=dict, description="share of customers opted in to each contact channel (email, sms, app, ...)")
    member_opt_in: dict[Name, Probability] = Field(default_factory=dict, description="share of new members not yet opted in who opt in to a channel when they join")

    def issues(self) -> Iterator[tuple[tuple, str]]:
        for ch in self.member_opt_in:
            if ch not in self.channels:
                yield ("member_opt_in", ch), f"unknown channel '{ch}'{did_you_mean(ch, self.channels)} (expected one of: {', '.join(self.channels) or 'none defined'})"


class Store(Spec):
    """One store of the network: its share of the customer base and how well it recruits."""

    name: Name = Field(description="store identifier (playbooks name stores by it)")
    label: str = Field("", description="display name (city, banner, ...)")
    share: Share = Field(description="share of the market's customers whose home store this is (where most of their "
                                     "spend is); each segment's mix over the stores is these shares unless "
                                     "`stores.segment_mix` gives it")
    enrolment: float = Field(1.0, ge=0, le=20, description="multiplier of the enrolment propensity of the store's "
                                                           "customers (staff who ask at the till recruit more)",
                             json_schema_extra={"unit": "x"})
    reach: dict[Name, Annotated[float, Field(ge=0, le=20)]] = Field(
        default_factory=dict, description="channel -> multiplier of the market's opt-in share (reachability.channels) "
                                          "and of members' opt-in on joining (member_opt_in) for the store's customers, "
                                          "capped at 1 (staff collect contact consent); omitted channels 1")


class StoreNetwork(Spec):
    """The market's stores: each customer has a home store, drawn from their segment's mix."""

    description: str = ""
    stores: tuple[Store, ...] = Field(min_length=1, max_length=65535)
    segment_mix: dict[Name, dict[Name, Share]] = Field(
        default_factory=dict, description="segment -> {store: share of the segment's customers}; sums to 1 per segment. "
                                          "Segments not given follow the stores' `share`")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stores)

    def mix(self, segments: tuple[str, ...]) -> list[list[float]]:
        """Each segment's shares over the stores (in store order)."""
        default = [s.share for s in self.stores]
        return [[self.segment_mix[seg].get(n, 0.0) for n in self.names] if seg in self.segment_mix else list(default)
                for seg in segments]

    def issues(self) -> Iterator[tuple[tuple, str]]:
        yield from unique_names(self.stores, "stores", "store")
        yield from check_sum((s.share for s in self.stores), ("stores",), "store shares")
        names = self.names
        for seg, row in self.segment_mix.items():
            for st in row:
                if st not in names:
                    yield ("segment_mix", seg, st), f"unknown store '{st}'{did_you_mean(st, names)} (expected one of the network's stores)"
            yield from check_sum(row.values(), ("segment_mix", seg), f"store shares of segment '{seg}'")


class ResponseParams(Spec):
    """How customers respond to a program. Every field is optional in a per-segment override."""

    enrolment_propensity: Uncertain(Probability) | None = Field(None, description="monthly probability that a purchasing non-member joins an opt-in program (default 0.08)")
    self_selection: Uncertain(Annotated[float, Field(ge=0, le=5)]) | None = Field(None, description="elasticity of joining to the customer's own purchase rate relative to the segment's (heavier buyers join first; Meyer-Waarden 2007) (default 1.0)")
    fee_sensitivity: Uncertain(Annotated[float, Field(ge=0, le=100)]) | None = Field(None, description="joining a paid program is multiplied by exp(-fee_sensitivity * annual fee / annual spend) (default 8)")
    goal_gradient: Uncertain(Annotated[float, Field(ge=0, le=2)]) | None = Field(None, description="goal-gradient strength: a member's rate is multiplied by 1 + g (progress - 1/2), progress toward the next reward in [0, 1] (Kivetz, Urminsky & Zheng 2006: inter-purchase time shrinks ~20% toward the reward, g = 0.25) (default 0.25)")
    rewarded_behaviour: Uncertain(Annotated[float, Field(ge=0, le=2)]) | None = Field(None, description="purchase-rate lift right after a redemption, decaying with rewarded_half_life (Taylor & Neslin 2005) (default 0.05)")
    rewarded_half_life: Uncertain(Annotated[float, Field(gt=0, le=60)]) | None = Field(None, description="months for the rewarded-behaviour lift to halve (default 3)")
    tier_status: Uncertain(Annotated[float, Field(ge=0, le=2)]) | None = Field(None, description="purchase-rate lift in the top tier, pro rata in tiers between (Wang et al. 2016; Kopalle et al. 2012) (default 0.05)")
    demotion_effect: Uncertain(Annotated[float, Field(ge=0, le=1)]) | None = Field(None, description="purchase-rate drop after a demotion, decaying with rewarded_half_life (Wang et al. 2016) (default 0.10)")
    transition_effect: Uncertain(Annotated[float, Field(ge=0, le=1)]) | None = Field(None, description="share by which members' monthly moves into lapsed segments are cut (default 0.10)")
    redemption_propensity: Uncertain(Probability) | None = Field(None, description="monthly probability that a member able to afford a reward redeems (default 0.35)")
    campaign_lift: Uncertain(Annotated[float, Field(ge=0, le=5)]) | None = Field(None, description="purchase-rate lift in a campaign month for reached customers, unless the campaign says otherwise (default 0.10)")
    referrals_per_member_year: Uncertain(Annotated[float, Field(ge=0, le=12)]) | None = Field(None, description="friends a member refers per year when the program pays a referral bonus (default 0.02)")


#: Defaults of :class:`ResponseParams`, with their sources in the field descriptions.
RESPONSE_DEFAULTS: dict[str, float] = {
    "enrolment_propensity": 0.08,
    "self_selection": 1.0,
    "fee_sensitivity": 8.0,
    "goal_gradient": 0.25,
    "rewarded_behaviour": 0.05,
    "rewarded_half_life": 3.0,
    "tier_status": 0.05,
    "demotion_effect": 0.10,
    "transition_effect": 0.10,
    "redemption_propensity": 0.35,
    "campaign_lift": 0.10,
    "referrals_per_member_year": 0.02,
}


class Response(ResponseParams):
    """Market-wide response, with per-segment overrides (light and moderate buyers change
    more than heavy ones: Liu 2007)."""

    segments: dict[Name, ResponseParams] = Field(default_factory=dict, description="per-segment overrides of the fields above")
    sources: dict[str, str] = Field(default_factory=dict, description="where a field's value comes from, by field name (`loyalty-sim estimate-response` writes the log, method, customers and log dates of what it measured)")

    def issues(self) -> Iterator[tuple[tuple, str]]:
        for key in self.sources:
            if key not in RESPONSE_DEFAULTS:
                yield ("sources", key), f"unknown response field '{key}'{did_you_mean(key, RESPONSE_DEFAULTS)} (expected one of: {', '.join(RESPONSE_DEFAULTS)})"

    def for_segment(self, segment: str) -> dict[str, float]:
        """Resolved parameters for one segment: segment override, else market value, else default."""
        seg = self.segments.get(segment)
        out: dict[str, float] = {}
        for key, default in RESPONSE_DEFAULTS.items():
            value = getattr(seg, key) if seg is not None else None
            if value is None:
                value = getattr(self, key)
            if value is not None and not isinstance(value, (int, float)):
                raise TypeError(f"response.{key} of segment '{segment}' is a distribution: realise the scenario first "
                                "(simulator.uncertainty.realise)")
            out[key] = float(default if value is None else value)
        return out


class Market(Spec):
    """A market: customer base, segments, transitions, economics and response."""

    name: Name
    description: str = ""
    currency: Currency
    reporting_currency: Currency = Field(description="currency of multi-market roll-ups")
    fx_to_reporting: float = Field(gt=0, description="reporting-currency units per local unit", json_schema_extra={"unit": "reporting per local"})
    customers: int = Field(gt=0, description="customers in the base at the start", json_schema_extra={"unit": "customers"})
    acquisition: Acquisition
    segments: tuple[Segment, ...] = Field(min_length=1)
    transitions: dict[Name, dict[Name, Probability]] = Field(description="monthly segment transition matrix ('matrice de passage'): from -> {to: probability}; each row sums to 1, omitted cells are 0")
    seasonality: tuple[float, ...] = Field((1.0,) * 12, description="purchase-rate multiplier for January..December (12 values averaging 1)")
    categories: dict[Name, Share] = Field(default_factory=dict, description="share of spend by product category (for category earn multipliers); sums to 1")
    economics: Economics
    reachability: Reachability = Field(default_factory=Reachability)
    response: Response = Field(default_factory=Response)
    identified_share: Probability = Field(1.0, description="share of customers the retailer can identify (enrol) at all")
    calibration: Calibration | None = Field(None, description="the transaction log a calibrated market comes from (written by `loyalty-sim calibrate`)")
    stores: StoreNetwork | None = Field(None, description="the store network: each customer's home store, drawn from their "
                                                          "segment's mix, scales their enrolment propensity and opt-in shares "
                                                          "(none: no stores, as before)")

    @property
    def segment_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.segments)

    def annual_gross_margin(self) -> float:
        """Gross margin a year of the base at the start: customers x expected purchases a year x
        basket x net factor x gross margin, over the segments' shares (seasonality averages 1;
        no churn, no arrivals; a margin given as a distribution at its central value)."""
        spend = sum(s.share * s.purchase_rate * s.basket.mean for s in self.segments) / max(sum(s.share for s in self.segments), 1e-12)
        e = self.economics
        net = 1.0 / (1.0 + e.vat_rate) if e.prices_include_tax else 1.0
        gm = e.gross_margin if isinstance(e.gross_margin, (int, float)) else e.gross_margin.central
        return float(self.customers * spend * 12.0 * net * gm)

    @property
    def lifecycles(self) -> tuple[str, ...]:
        """Each segment's lifecycle stage: as declared, else 'lapsed' for a lapsed segment and 'active' otherwise."""
        return tuple(s.lifecycle or ("lapsed" if s.lapsed else "active") for s in self.segments)

    @property
    def value_bands(self) -> tuple[str, ...]:
        """Each segment's value band: as declared, else thirds of the base by expected spend (:func:`value_thirds`)."""
        computed = value_thirds([s.purchase_rate * s.basket.mean for s in self.segments], [s.share for s in self.segments])
        return tuple(s.value or v for s, v in zip(self.segments, computed))

    def issues(self) -> Iterator[tuple[tuple, str]]:
        segs = self.segments
        yield from unique_names(segs, "segments", "segment")
        yield from check_sum((s.share for s in segs), ("segments",), "segment shares")
        names = [s.name for s in segs]
        for src, row in self.transitions.items():
            if src not in names:
                yield ("transitions", src), f"unknown segment '{src}'{did_you_mean(src, names)} (expected one of: {', '.join(names)})"
                continue
            for dst in row:
                if dst not in names:
                    yield ("transitions", src, dst), f"unknown segment '{dst}'{did_you_mean(dst, names)} (expected one of: {', '.join(names)})"
            yield from check_sum(row.values(), ("transitions", src), f"transition probabilities from '{src}'")
        with_mix = [s for s in segs if s.potential is not None]
        if with_mix and len(with_mix) < len(segs):
            i, missing = next((i, s.name) for i, s in enumerate(segs) if s.potential is None)
            yield ("segments", i), (f"segment '{missing}' has no potential mix while {len(with_mix)} other(s) do "
                                  "(expected a potential mix on every segment or on none)")
        for i, s in enumerate(with_mix if len(with_mix) == len(segs) else ()):
            yield from check_sum(s.potential.values(), ("segments", i, "potential"), f"potential shares of '{s.name}'")
        for n in names:
            if n not in self.transitions:
                yield ("transitions",), f"no row for segment '{n}' (expected a row for every segment)"
        if self.acquisition.segment not in names:
            yield ("acquisition", "segment"), f"unknown segment '{self.acquisition.segment}'{did_you_mean(self.acquisition.segment, names)} (expected one of: {', '.join(names)})"
        for seg in self.response.segments:
            if seg not in names:
                yield ("response", "segments", seg), f"unknown segment '{seg}'{did_you_mean(seg, names)} (expected one of: {', '.join(names)})"
        if len(self.seasonality) != 12:
            yield ("seasonality",), f"expected 12 monthly values (January..December), got {len(self.seasonality)}"
        elif any(v < 0 for v in self.seasonality):
            yield ("seasonality",), f"multipliers must be >= 0, got {min(self.seasonality):g} (expected 12 values >= 0 averaging 1)"
        elif abs(sum(self.seasonality) / 12 - 1) > 0.01:
            yield ("seasonality",), f"multipliers average {sum(self.seasonality) / 12:.4g} (expected 1 within 0.01)"
        if self.categories:
            yield from check_sum(self.categories.values(), ("categories",), "category shares")
        if self.stores is not None:
            for seg in self.stores.segment_mix:
                if seg not in names:
                    yield ("stores", "segment_mix", seg), f"unknown segment '{seg}'{did_you_mean(seg, names)} (expected one of: {', '.join(names)})"
            for i, st in enumerate(self.stores.stores):
                for ch in st.reach:
                    if ch not in self.reachability.channels:
                        yield ("stores", "stores", i, "reach", ch), (f"unknown channel '{ch}'{did_you_mean(ch, self.reachability.channels)} "
                                                                     f"(expected one of: {', '.join(self.reachability.channels) or 'none defined'})")
        if self.currency == self.reporting_currency and self.fx_to_reporting != 1.0:
            yield ("fx_to_reporting",), f"local and reporting currency are both {self.currency}: expected 1, got {self.fx_to_reporting:g}"
