"""A market playbook (``markets/<market>/<playbook>.yaml``): the local plan for a design.

A playbook names the design and the market it runs (paths relative to the playbook file),
the launch date and horizon, enrolment drives, a campaign calendar, local overrides of the
design in local currency, local costs, and which behavioural mechanisms are on.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Iterator, Literal

from pydantic import Field

from simulator.specs.base import Money, Months, Multiplier, Name, Points, Probability, Spec, Uncertain, unique_names
from simulator.specs.market import Lifecycle, ValueBand
from simulator.specs.program import Reward

PotentialBand = Literal["high", "medium", "low"]


class Recency(Spec):
    """Months since a customer's last purchase, an inclusive range (0: bought this month)."""

    min: int = Field(0, ge=0, le=120, description="at least this many months since the last purchase", json_schema_extra={"unit": "months"})
    max: int | None = Field(None, ge=0, le=120, description="at most this many months since the last purchase; none = no upper bound", json_schema_extra={"unit": "months"})

    def issues(self) -> Iterator[tuple[tuple, str]]:
        if self.max is not None and self.max < self.min:
            yield ("max",), f"max {self.max} is below min {self.min} (expected max >= min)"


class Target(Spec):
    """Who an action is aimed at. Empty lists mean no restriction; conditions combine with AND.

    ``segments`` names a market's own segments (hand-written markets). The portable groups --
    ``lifecycle``, ``value``, ``potential``, ``recency`` -- exist on every market, hand-written or
    calibrated, so a playbook that uses only them runs on any market with its ``market:`` line
    changed. A value x engagement group is ``value`` and ``lifecycle`` together."""

    segments: tuple[Name, ...] = Field((), description="market segments (by name: names differ from market to market; the portable groups below do not)")
    lifecycle: tuple[Lifecycle, ...] = Field((), description="lifecycle stages of the market's segments (new, active, at_risk, lapsed; each segment's `lifecycle`): the segments in them")
    value: tuple[ValueBand, ...] = Field((), description="value bands of the market's segments (high, medium, low: thirds of the base by expected spend; each segment's `value`): the segments in them")
    tiers: tuple[Name, ...] = Field((), description="tiers of the design (members only)")
    potential: tuple[PotentialBand, ...] = Field((), description="potential bands (thirds of the customers' potential score)")
    members: Literal["any", "members", "non_members"] = Field("any", description="membership condition")
    inactive_months: int = Field(0, ge=0, le=120, description="only customers with at least this many months since their last purchase (reactivation); the same as recency.min",
                                 json_schema_extra={"unit": "months"})
    recency: Recency | None = Field(None, description="only customers whose months since their last purchase are in this range, e.g. {min: 3, max: 5}")
    stores: tuple[Name, ...] = Field((), description="home stores of the market's store network (`stores:` of the market): only their customers")


class EnrolmentDrive(Spec):
    """A push to enrol customers (in-store staff incentive, e-mail invitation, ...)."""

    name: Name
    start: dt.date
    months: Months = 1
    uplift: Uncertain(Annotated[float, Field(ge=0, le=50)]) = Field(description="enrolment probability of reached customers is multiplied by (1 + uplift)")
    channel: Name | None = Field(None, description="contact channel (must be one of the market's); none = at the till, reaching purchasing customers")
    target: Target = Field(default_factory=Target)
    cost: Uncertain(Money) = Field(0.0, description="fixed cost of the drive")
    cost_per_contact: Uncertain(Money) = Field(0.0, description="cost per customer contacted each month of the drive")
    cost_per_enrolment: Uncertain(Money) = Field(0.0, description="cost per customer enrolled during the drive (staff incentive, welcome pack)")


class Campaign(Spec):
    """A marketing campaign in the calendar. It reaches only customers opted in to its
    channel (or, with no channel -- in-store signage, the till -- every targeted customer)."""

    name: Name
    kind: Literal["points_multiplier", "bonus_points", "reactivation"]
    start: dt.date
    months: Months = 1
    channel: Name | None = None
    target: Target = Field(default_factory=Target)
    multiplier: Multiplier = Field(1.0, description="points_multiplier: purchase points are multiplied by this during the campaign")
    bonus_points: Points = Field(0, description="bonus_points: points for a reached member's first qualifying purchase of the campaign")
    min_spend: Money = Field(0.0, description="bonus_points: spend on one purchase needed for the bonus")
    lift: Uncertain(Annotated[float, Field(ge=0, le=5)]) | None = Field(None, description="purchase-rate lift of reached customers during the campaign; default the market's campaign_lift")
    cost: Uncertain(Money) = Field(0.0, description="fixed cost (creative, media)")
    cost_per_contact: Uncertain(Money) = Field(0.0, description="cost per customer reached per month")

    def issues(self) -> Iterator[tuple[tuple, str]]:
        if self.kind == "points_multiplier" and self.multiplier == 1.0:
            yield ("multiplier",), "a points_multiplier campaign needs a multiplier (expected a multiplier other than 1)"
        if self.kind == "bonus_points" and self.bonus_points == 0:
            yield ("bonus_points",), "a bonus_points campaign needs bonus points (expected bonus_points > 0)"


class StaffChallenge(Spec):
    """A store-staff enrolment challenge: the staff of the chosen stores are paid for each
    customer they enrol during the challenge. It is an at-the-till enrolment drive aimed at
    the stores' customers: the enrolment probability of their purchasing non-members is
    multiplied by (1 + uplift)."""

    name: Name
    stores: tuple[Name, ...] = Field(min_length=1, description="stores of the market's network taking part")
    start: dt.date
    months: Months = 1
    uplift: Uncertain(Annotated[float, Field(ge=0, le=50)]) = Field(description="enrolment probability at the till in the stores is multiplied by (1 + uplift)")
    cost_per_enrolment: Uncertain(Money) = Field(0.0, description="paid to the staff for each customer enrolled in the stores during the challenge")
    cost: Uncertain(Money) = Field(0.0, description="fixed cost of the challenge (prizes, materials, training)")


class Pilot(Spec):
    """The design launched in some stores only: customers whose home store is in ``stores``
    get the design (enrolment, campaigns, drives); the others keep the baseline."""

    stores: tuple[Name, ...] = Field(description="stores of the market's network where the design is launched (none: no store)")
    fixed_cost_share: Probability | None = Field(
        None, description="share of the design's set-up and running costs and of the campaigns' and drives' fixed costs the "
                          "pilot bears; default the pilot stores' share of the network's customers")


class RewardOverride(Spec):
    points_price: int | None = Field(None, gt=0, json_schema_extra={"unit": "points"})
    face_value: Money | None = None
    cost: Money | None = None


class CashbackOverride(Spec):
    threshold_points: int | None = Field(None, gt=0, json_schema_extra={"unit": "points"})
    voucher_value: Money | None = None


class Overrides(Spec):
    """Local changes to the design, in local currency (applied after FX conversion)."""

    points_per_unit: float | None = Field(None, gt=0, description="spendable points per local currency unit: a re-based local point; the design's event bonuses and monthly cap are rescaled with it (k = this / the design's rate after FX) so they keep their worth in spend, unless enrolment_bonus sets the welcome points", json_schema_extra={"unit": "points per currency unit"})
    minimum_order: Money | None = None
    tier_thresholds: dict[Name, float] = Field(default_factory=dict, description="tier name -> local threshold")
    rewards: dict[Name, RewardOverride] = Field(default_factory=dict, description="reward name -> local price, value or cost")
    local_rewards: tuple[Reward, ...] = Field((), description="rewards added to the catalogue in this market")
    cashback: CashbackOverride | None = None
    fee: Money | None = Field(None, description="local membership fee per fee period")
    enrolment_bonus: Points | None = None


class LocalCosts(Spec):
    """Local costs, added to the design's."""

    setup: Uncertain(Money) = Field(0.0, description="one-off local set-up, amortised like the design's")
    running_per_year: Uncertain(Money) = 0.0
    per_member_per_year: Uncertain(Money) = 0.0


class Mechanisms(Spec):
    """Switches for each behavioural mechanism (all on by default). With every one off, the
    program changes no purchase and incremental revenue is exactly zero."""

    self_selection: bool = True
    goal_gradient: bool = True
    rewarded_behaviour: bool = True
    tier_status: bool = True
    campaigns: bool = True
    transitions: bool = True
    referrals: bool = True


class Accounting(Spec):
    """Assumptions finance sets: the IFRS 15 points liability, the fiscal year, tax."""

    expected_breakage: Probability | None = Field(None, description="share of the design's points expected never to be redeemed, used to price a point (SSP = value x (1 - breakage)), to recognise breakage in proportion to redemptions and to cost the points owed at the horizon; default: the breakage the simulation projects for the design (points expired or in cash-back vouchers never used / points redeemed or expired, over the design's months). US programs see a third or more (Colloquy 2011)")
    value_per_point: float | None = Field(None, gt=0, description="value of one of the design's points to the member (standalone selling price before breakage); default: what the design's redemptions realise, the face value of the rewards taken (vouchers used) per point redeemed for them (the nominal value when nothing is redeemed)",
                                          json_schema_extra={"unit": "currency per point"})
    fiscal_year_start: int = Field(1, ge=1, le=12, description="calendar month the fiscal year starts in (the P&L by year); 1 = calendar years")
    tax_rate: Probability | None = Field(None, description="corporate income tax rate: when given, the summary adds the NPV after tax (tax on the incremental P&L result of each month, a loss saving tax against the group's other profits)")


class Migration(Spec):
    """How the balances of the program running today move to the design at launch."""

    converted_points: Literal["keep_dates", "new_issue"] = Field(
        "keep_dates", description="dating of the points a member's balance converts into: 'keep_dates' -- each "
        "converted point keeps the earn month of the point it replaces, so the design's expiry counts from the "
        "original purchase; 'new_issue' -- the conversion is a new issue, every converted point dated in the launch "
        "month")


class Playbook(Spec):
    """The local plan: which design, on which market, when, and with what activation."""

    name: Name
    description: str = ""
    design: str = Field(description="path of the program design, relative to this file")
    market: str = Field(description="path of the market file, relative to this file")
    baseline: str = Field("none", description="counterfactual: 'none' (no program) or the path of a design (e.g. the current cagnotte), relative to this file")
    launch: dt.date = Field(description="program launch date (its month is the first month of the program)")
    start: dt.date | None = Field(None, description="first month simulated; default the launch month")
    horizon_months: Months = Field(36, description="months simulated from start")
    enrolment_drives: tuple[EnrolmentDrive, ...] = ()
    campaigns: tuple[Campaign, ...] = ()
    staff_challenges: tuple[StaffChallenge, ...] = Field((), description="store-staff enrolment challenges (the market needs a store network)")
    pilot: Pilot | None = Field(None, description="launch the design in chosen stores only (the market needs a store network; the baseline must be 'none')")
    overrides: Overrides = Field(default_factory=Overrides)
    costs: LocalCosts = Field(default_factory=LocalCosts)
    mechanisms: Mechanisms = Field(default_factory=Mechanisms)
    baseline_age_months: Months = Field(24, description="how long the baseline program has been running at the start: its members at the start are those who would have joined in that time, each with its join month and the balance its history under the program's rules leaves, every batch dated by the month it was earned in (engine/mechanisms/history.py)")
    migration: Migration = Field(default_factory=Migration)
    accounting: Accounting = Field(default_factory=Accounting)

    def issues(self) -> Iterator[tuple[tuple, str]]:
        yield from unique_names(self.enrolment_drives, "enrolment_drives", "enrolment drive")
        yield from unique_names(self.campaigns, "campaigns", "campaign")
        yield from unique_names(self.staff_challenges, "staff_challenges", "staff challenge")
        drives = {d.name for d in self.enrolment_drives}
        for i, ch in enumerate(self.staff_challenges):
            if ch.name in drives:
                yield ("staff_challenges", i, "name"), f"staff challenge '{ch.name}' has the name of an enrolment drive (expected a name of its own)"
        if self.pilot is not None and self.baseline != "none":
            yield ("pilot",), ("a pilot by store needs baseline 'none': a design replacing a running program in some stores "
                               "only is not modelled (expected baseline: none, or no pilot)")
        if self.start is not None and (self.start.year, self.start.month) > (self.launch.year, self.launch.month):
            yield ("start",), f"start {self.start} is after launch {self.launch} (expected start on or before launch)"
