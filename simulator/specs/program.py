"""A program design (``programs/*.yaml``): everything a loyalty engine needs to run it.

Money is in the design's ``currency``; when a playbook runs the design on a market with
another currency, :mod:`simulator.scenario` converts every money field at the market's FX
rate (points stay points) and then applies the playbook's local overrides.
"""

from __future__ import annotations

from typing import Annotated, Iterator, Literal, Union

from pydantic import Field

from simulator.specs.base import (
    Currency, Money, Months, Multiplier, Name, Points, Probability, Spec, unique_names, unknown_refs,
)


class Bonuses(Spec):
    """Event bonuses, in spendable points (they also count as qualifying points if
    ``earn.qualifying.include_bonuses``)."""

    enrolment: Points = Field(0, description="welcome points credited on joining")
    first_purchase: Points = Field(0, description="points on the member's first purchase after joining")
    birthday: Points = Field(0, description="points once a year in the member's birthday month")
    referral: Points = Field(0, description="points to a member for each friend referred who becomes a customer")


class Caps(Spec):
    """Limits on points earned from purchases (bonuses are not capped)."""

    per_month: Points | None = Field(None, description="most purchase points a member earns in one month; none = no cap")


class Qualifying(Spec):
    """Qualifying points count toward tiers only; they are never spent or expired."""

    points_per_unit: Multiplier = Field(1.0, description="qualifying points per currency unit of net spend",
                                        json_schema_extra={"unit": "points per currency unit"})
    include_bonuses: bool = Field(False, description="whether event and campaign bonus points also qualify")


class Earn(Spec):
    """How members earn spendable points."""

    points_per_unit: float = Field(gt=0, description="spendable points per currency unit of net spend (after tax if the market's prices include tax)",
                                   json_schema_extra={"unit": "points per currency unit"})
    rounding: Literal["floor", "round", "ceil", "none"] = Field("floor", description="rounding of each transaction's points")
    minimum_order: Money = Field(0.0, description="a transaction below this amount earns no points")
    category_multipliers: dict[Name, Multiplier] = Field(default_factory=dict, description="earn multiplier by product category (categories are the market's); 0 excludes a category")
    bonuses: Bonuses = Field(default_factory=Bonuses)
    caps: Caps = Field(default_factory=Caps)
    qualifying: Qualifying = Field(default_factory=Qualifying)
    pending_days: int = Field(0, ge=0, le=365, description="days before earned points can be spent (they count as outstanding meanwhile)",
                              json_schema_extra={"unit": "days"})


class RollingWindow(Spec):
    """Tier metric summed over the last ``months`` months, reviewed every month."""

    kind: Literal["rolling"]
    months: Months = Field(12, description="length of the rolling window")


class CalendarYearWindow(Spec):
    """Tier metric summed over the calendar year; downgrades at the January review."""

    kind: Literal["calendar_year"]


class AnniversaryWindow(Spec):
    """Tier metric summed over the 12 months since the member's last enrolment anniversary;
    downgrades reviewed on each anniversary."""

    kind: Literal["anniversary"]


TierWindow = Annotated[Union[RollingWindow, CalendarYearWindow, AnniversaryWindow], Field(discriminator="kind")]


class Downgrade(Spec):
    """What happens at a review when a member no longer meets the tier's threshold."""

    policy: Literal["never", "one_tier", "to_supported"] = Field(
        "one_tier", description="never: status kept for life; one_tier: down one level per review; to_supported: down to the tier the window supports")
    grace_months: int = Field(0, ge=0, le=36, description="months a member stays below threshold before a downgrade applies", json_schema_extra={"unit": "months"})


class Benefit(Spec):
    """A tier benefit and what it costs the company."""

    name: Name
    description: str = ""
    cost_per_member_month: Money = Field(0.0, description="cost per member in the tier per month (e.g. service, insurance)")
    cost_per_use: Money = Field(0.0, description="cost each time a member uses the benefit (e.g. a free delivery)")
    uses_per_purchase: float = Field(0.0, ge=0, description="uses per purchase (e.g. 0.3 of purchases are delivered)", json_schema_extra={"unit": "uses per purchase"})


class Tier(Spec):
    """One level of status."""

    name: Name
    threshold: float = Field(ge=0, description="qualification metric over the window needed to reach this tier (the first tier's is 0)",
                             json_schema_extra={"unit": "metric unit (points, currency or purchases)"})
    earn_multiplier: Multiplier = Field(1.0, description="multiplier on purchase points in this tier")
    benefits: tuple[Benefit, ...] = ()

    def issues(self) -> Iterator[tuple[tuple, str]]:
        yield from unique_names(self.benefits, "benefits", "benefit")


class Tiers(Spec):
    """Status levels. Upgrades apply as soon as the window's metric passes a threshold;
    downgrades at the window's review."""

    metric: Literal["qualifying_points", "spend", "purchases"] = Field("qualifying_points", description="what qualifies a member")
    window: TierWindow = Field(default_factory=lambda: RollingWindow(kind="rolling", months=12))
    downgrade: Downgrade = Field(default_factory=Downgrade)
    levels: tuple[Tier, ...] = Field(min_length=1, description="tiers from entry to top, with ascending thresholds")

    def issues(self) -> Iterator[tuple[tuple, str]]:
        yield from unique_names(self.levels, "levels", "tier")
        if self.levels and self.levels[0].threshold != 0:
            yield ("levels", 0, "threshold"), f"the first tier is the entry tier: threshold must be 0, got {self.levels[0].threshold:g} (expected 0)"
        for i in range(1, len(self.levels)):
            if self.levels[i].threshold <= self.levels[i - 1].threshold:
                yield ("levels", i, "threshold"), (
                    f"thresholds must ascend: {self.levels[i].threshold:g} is not above "
                    f"{self.levels[i - 1].name}'s {self.levels[i - 1].threshold:g} (expected ascending thresholds from entry to top tier)")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.levels)


class Reward(Spec):
    """A catalogue reward a member may choose to redeem points for."""

    name: Name
    kind: Literal["voucher", "product", "experience", "partner"] = "voucher"
    points_price: int = Field(gt=0, description="points it takes", json_schema_extra={"unit": "points"})
    face_value: Money = Field(description="value to the member (its standalone selling price, used by IFRS 15)")
    cost: Money = Field(description="cost to the company when redeemed (a voucher: its face value; a product: its cost of goods)")
    tiers: tuple[Name, ...] = Field((), description="tiers that may redeem it; empty = every member")


class Cashback(Spec):
    """The "cagnotte": when a member's balance reaches ``threshold_points``, whole blocks of
    it are converted automatically into vouchers (the points are redeemed)."""

    threshold_points: int = Field(gt=0, description="balance at which a voucher is issued; the voucher takes this many points", json_schema_extra={"unit": "points"})
    voucher_value: Money = Field(description="face value of one voucher")
    voucher_use_rate: Probability = Field(0.9, description="share of issued vouchers that are used (Woolf: ~90% of certificates are redeemed)")
    voucher_cost_ratio: float = Field(1.0, ge=0, le=1, description="cost to the company per unit of face value used")


class Rewards(Spec):
    catalogue: tuple[Reward, ...] = ()
    cashback: Cashback | None = None
    endowed_progress: float = Field(0.0, ge=0, le=10, description=(
        "bonus stamps on a new member's card, as a share of the first reward's price: shown as progress "
        "toward it, not redeemable, the goal raised by as much (Nunes & Dreze 2006: 2 stamps given on a "
        "10-stamp card, 0.25, were completed by 34% against 19% for an 8-stamp card); 0 = off "
        "(mechanisms/endowed_progress.py)"))

    def issues(self) -> Iterator[tuple[tuple, str]]:
        yield from unique_names(self.catalogue, "catalogue", "reward")
        if not self.catalogue and self.cashback is None:
            yield (), "a program needs a reward catalogue or a cashback (expected at least one)"
        if self.cashback is not None:
            for i, r in enumerate(self.catalogue):
                if r.points_price >= self.cashback.threshold_points:
                    yield ("catalogue", i, "points_price"), (
                        f"{r.points_price} points can never be saved: the cashback converts the balance at "
                        f"{self.cashback.threshold_points} (expected a price below the cashback threshold)")


class NeverExpire(Spec):
    policy: Literal["never"]


class ExpireAfterMonths(Spec):
    """Each issuance batch expires ``months`` after the month it was earned, oldest first."""

    policy: Literal["after_months"]
    months: Months


class ExpireOnInactivity(Spec):
    """The whole balance expires after ``months`` months without a purchase."""

    policy: Literal["inactivity"]
    months: Months


class ExpireOnFixedDate(Spec):
    """Once a year at the end of ``month``, points earned at least ``min_age_months`` months
    earlier expire (e.g. month 12, min_age 12: points of year Y expire on 31 December of Y+1)."""

    policy: Literal["fixed_date"]
    month: int = Field(12, ge=1, le=12)
    min_age_months: int = Field(12, ge=0, le=120, json_schema_extra={"unit": "months"})


Expiry = Annotated[Union[NeverExpire, ExpireAfterMonths, ExpireOnInactivity, ExpireOnFixedDate], Field(discriminator="policy")]


class Fee(Spec):
    """Paid membership."""

    amount: Money = Field(gt=0, description="fee per period")
    period: Literal["month", "year"] = "year"
    trial_months: int = Field(0, ge=0, le=24, description="free months before the first fee", json_schema_extra={"unit": "months"})


class Eligibility(Spec):
    segments: tuple[Name, ...] = Field((), description="market segments that may join; empty = everyone")
    invite_only: bool = Field(False, description="customers join only when an enrolment drive invites them")


class Enrolment(Spec):
    mode: Literal["automatic", "opt_in"] = Field("opt_in", description="automatic: every identified customer is a member from their first purchase after launch; opt_in: customers choose to join")
    fee: Fee | None = None
    eligibility: Eligibility = Field(default_factory=Eligibility)


class Setup(Spec):
    amount: Money = 0.0
    amortisation_months: Months = 36


class ProgramCosts(Spec):
    """Fixed and per-member costs of running the program."""

    setup: Setup = Field(default_factory=Setup)
    running_per_year: Money = Field(0.0, description="technology, operations and agency, per year")
    per_member_per_year: Money = Field(0.0, description="cost per member per year (cards, statements, CRM seats)")


class Program(Spec):
    """A loyalty program design."""

    name: Name
    description: str = ""
    currency: Currency
    earn: Earn
    tiers: Tiers | None = None
    rewards: Rewards
    expiry: Expiry = Field(default_factory=lambda: NeverExpire(policy="never"))
    enrolment: Enrolment = Field(default_factory=Enrolment)
    costs: ProgramCosts = Field(default_factory=ProgramCosts)

    def issues(self) -> Iterator[tuple[tuple, str]]:
        tier_names = self.tiers.names if self.tiers else ()
        for i, reward in enumerate(self.rewards.catalogue):
            if reward.tiers and not tier_names:
                yield ("rewards", "catalogue", i, "tiers"), "names tiers but the program has none (expected no tiers list)"
            else:
                yield from unknown_refs(reward.tiers, tier_names, ("rewards", "catalogue", i, "tiers"), "tier")
