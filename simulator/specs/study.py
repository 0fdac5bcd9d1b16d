"""A study (``studies/*.yaml``): several designs on several markets, compared together, and
optionally a design search (``search:``, the block of a search file) run with them.

Each scenario is a playbook (which names its market and baseline), optionally with another
design swapped in, so "designs x markets" is a list of (playbook, design) pairs. All
scenarios share the seed: replication r of every scenario uses the same random streams, and
designs on the same market see the same customers and the same parameter draws.
"""

from __future__ import annotations

from typing import Iterator

from pydantic import Field

from simulator.specs.base import Currency, Months, Name, Spec, unique_names
from simulator.specs.search import Search


class StudyScenario(Spec):
    """One cell of the comparison."""

    name: Name | None = Field(None, description="scenario id in outputs; default <playbook name> or <playbook>__<design>")
    playbook: str = Field(description="playbook file, relative to the study file")
    design: str | None = Field(None, description="design file replacing the playbook's design, relative to the study file")
    baseline: str | None = Field(None, description="'none' or a design file replacing the playbook's baseline")


class Study(Spec):
    """Designs x markets with honest uncertainty."""

    name: Name
    description: str = ""
    reporting_currency: Currency = Field("EUR", description="currency of the multi-market roll-up (every market must report in it)")
    seed: int = Field(1, ge=0)
    replications: int = Field(20, ge=1, le=10_000, description="replications per scenario (parameters given as distributions are drawn in each)")
    agents: int = Field(20_000, ge=100, description="simulated customers per market")
    horizon_months: Months | None = Field(None, description="override every playbook's horizon")
    scenarios: tuple[StudyScenario, ...] = Field(min_length=1)
    sensitivity_replications: int = Field(3, ge=1, le=100, description="replications per point of the tornado and break-even searches (same seeds at every point)")
    tornado: bool = Field(True, description="NPV at the low and high end of each uncertain parameter, others at their central value")
    breakeven: bool = Field(True, description="lowest behavioural response and highest reward cost at which NPV reaches zero")
    search: Search | None = Field(None, description="a design search run with the study (the fields of a search file, "
                                                    "`markets/<m>/*_search.yaml`; its playbook relative to the study file): "
                                                    "its files go to optimisation/, its result to the report and workbook")

    def issues(self) -> Iterator[tuple[tuple, str]]:
        named = [s for s in self.scenarios if s.name is not None]
        yield from unique_names(named, "scenarios", "scenario")
