"""The calendar: SimPy schedules every event of a run in a deterministic order.

Time is measured in months from the first simulated month. Within a month the phases run in
a fixed order, by their offset:

======================  ======  ==============================================================
phase                   offset  what happens
======================  ======  ==============================================================
period.open             0.00    arrivals (new and referred customers) join the base
program.launch          0.02    the design replaces the baseline program in the design run
drive.start             0.04    an enrolment drive starts
campaign.start          0.05    a campaign starts
period.step             0.50    purchases, enrolment, points earned, redemptions
tiers.review            0.60    tier windows, upgrades, downgrades at reviews
points.expiry           0.70    expiry runs (monthly, or the fixed month each year)
fees.billing            0.80    membership fees and renewals
segments.transition     0.85    segment transitions for next month
costs.posting           0.90    fixed, per-member, benefit, campaign and drive costs
campaign.end            0.93    a campaign ends (after its last month)
drive.end               0.94    an enrolment drive ends
period.close            0.99    ledger check, snapshot of points, the month's record
======================  ======  ==============================================================

Simultaneous events are ordered by (time, insertion order), as SimPy does, so the event log
of a run is exact and tests compare it verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import simpy

PHASES: dict[str, float] = {
    "period.open": 0.00, "program.launch": 0.02, "drive.start": 0.04, "campaign.start": 0.05,
    "period.step": 0.50, "tiers.review": 0.60, "points.expiry": 0.70, "fees.billing": 0.80,
    "segments.transition": 0.85, "costs.posting": 0.90, "campaign.end": 0.93, "drive.end": 0.94,
    "period.close": 0.99,
}


@dataclass
class Calendar:
    """A SimPy environment with month-phase scheduling and an event log."""

    horizon: int
    env: simpy.Environment = field(default_factory=simpy.Environment)
    log: list[tuple[int, str, str]] = field(default_factory=list)

    def _fire(self, month: int, phase: str, label: str, action: Callable[[int], None]):
        yield self.env.timeout(month + PHASES[phase] - self.env.now)
        self.log.append((month, phase, label))
        action(month)

    def at(self, month: int, phase: str, action: Callable[[int], None], label: str = "") -> None:
        """Run ``action(month)`` once, at ``phase`` of ``month`` (ignored outside the horizon)."""
        if phase not in PHASES:
            raise KeyError(f"unknown calendar phase '{phase}'")
        if 0 <= month < self.horizon:
            self.env.process(self._fire(month, phase, label, action))

    def monthly(self, phase: str, action: Callable[[int], None], label: str = "", when: Callable[[int], bool] | None = None) -> None:
        """Run ``action(month)`` at ``phase`` of every month (or of the months ``when`` accepts)."""
        if phase not in PHASES:
            raise KeyError(f"unknown calendar phase '{phase}'")

        def process():
            for month in range(self.horizon):
                if when is not None and not when(month):
                    continue
                yield self.env.timeout(month + PHASES[phase] - self.env.now)
                self.log.append((month, phase, label))
                action(month)

        self.env.process(process())

    def run(self) -> None:
        self.env.run(until=self.horizon)
