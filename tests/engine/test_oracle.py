"""The vectorised engine against the per-agent oracle (``tests/engine/oracle.py``).

Both run the fixture of ``tests/engine/fixtures/oracle/`` with ``AGENTS`` customers
(``market.customers`` is the same number, so nothing is rescaled): the engine ``K_E`` times
(replications of one seed), the oracle ``K_O`` times (its own seeds and its own generator).
They cannot agree draw by draw; they must agree in distribution.

Comparison rule. For every month t and metric x, with the means m_E, m_O and the sample
variances s_E^2, s_O^2 of x_t across the runs of each,

    s^2 = ((K_E - 1) s_E^2 + (K_O - 1) s_O^2) / (K_E + K_O - 2)    (pooled run-to-run variance)
    SE  = s * sqrt(1 / K_E + 1 / K_O)
    pass  iff  |m_E - m_O| <= Z * SE + FLOOR,     Z = 5, FLOOR = 0.5 (units of the metric)

Pooling is exact under the hypothesis tested (one model, one run-to-run variance) and gives
K_E + K_O - 2 degrees of freedom, so a dozen oracle runs do not make the bound erratic. Z is 5
rather than 4.5 because some 400 (month, metric) pairs are tested at once and they share the
population's luck (a run with more heavy buyers is high on every metric in every month): with
K_E = 40, K_O = 12, resampling 200 engine and 60 oracle runs put the chance that an exact
implementation fails somewhere at ~1.5 % for Z = 4.5 and ~0.4 % for Z = 5, while the
perturbations below fail at |z| of 10 to 50. FLOOR only matters where both are exactly zero
(no redemption in the first, pending month; no expiry before month 7; ...).

Totals over the horizon (each run's sum over months) must pass the same z-bound and, where the
oracle's total is not zero, lie within REL_TOL = 5 % of it. A month's bound is 3-25 % of the
mean; a total's relative SE is below 2 % (asserted, so that the bound stays meaningful), so the
totals catch a bias of a few percent that no single month shows, and REL_TOL caps the noisier
totals (expired points, demotions) where 5 SE would exceed 5 %.

The comparison can fail: with the oracle's goal-gradient strength or redemption propensity
doubled, it does (``test_comparison_detects_perturbation``).

A program running at the start, a migration, fees. ``playbook_running.yaml`` starts with the
cash-back kitty of ``running.yaml`` two years old (each member's opening balance drawn from
its history, batch by batch with their earn months) and migrates it to the test design in
month 4 (balances converted at value, keeping their earn months); ``playbook_new_issue.yaml``
starts with a catalogue program and migrates it at once to a cash-back design, converted points
dated in the launch month; ``playbook_paid.yaml`` launches a paid design, and
``playbook_paid_migration.yaml`` migrates the kitty to it. Each compares the design run, the
first two the baseline run too, by the same rule (K_E_OTHER engine and K_O_OTHER oracle runs,
12 months); the oracle's history months draw each member's segment back along the
time-reversed member chain, as the engine's rule says (``HISTORY_SEGMENTS``; "start" keeps the
starting segment). A wrong opening history (every point dated in month -1, or every past snapshot
equal to today's total, the old rule) fails on month-1 points_expired; new_issue dating
against the engine's keep_dates fails in the launch month; a doubled fee sensitivity fails on
left_members.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.engine.simulation import Simulation

from simulator.executor import replication
from simulator.scenario import Scenario, resolve
from tests.engine.oracle import Oracle

FIXTURES = Path(__file__).parent / "fixtures" / "oracle"
AGENTS = 4000                 # = market.customers in fixtures/oracle/market.yaml
K_E = 40                      # engine replications (about 0.15 s each)
K_O = 12                      # oracle runs (about 2 s each)
K_E_CASHBACK, K_O_CASHBACK = 30, 8
K_PERTURBED = 3               # oracle runs with a perturbed parameter
K_E_OTHER, K_O_OTHER = 60, 10  # running program, migration and fee scenarios (12 months)
#: Segments of the oracle's history months (tests/engine/oracle.py PASTS): "start", the starting
#: segment held fixed, as the opening-history rule was specified for the oracle.
HISTORY_SEGMENTS = "reversed"
ENGINE_SEED = 20240601
ORACLE_SEEDS = tuple(range(101, 101 + K_O))
Z = 5.0
FLOOR = 0.5
REL_TOL = 0.05

METRICS = (
    "customers", "members", "new_members", "left_members", "active", "purchases", "revenue", "member_revenue",
    "points_issued", "points_issued_purchase", "points_issued_bonus", "points_issued_migration",
    "points_redeemed", "points_redeemed_migration", "points_expired",
    "points_outstanding", "redemptions", "reward_cost", "reward_face_value", "vouchers_issued", "vouchers_used",
    "upgrades", "demotions", "fee_income",
)


# ---------------------------------------------------------------------------- running
def _tiers(program) -> list[str]:
    return [t.name for t in program.tiers.levels] if program.tiers else ["member"]


def _metrics(scenario: Scenario) -> list[str]:
    tiers = _tiers(scenario.program) + (_tiers(scenario.baseline) if scenario.baseline is not None else [])
    return list(METRICS) + [f"members_tier_{t}" for t in dict.fromkeys(tiers)]


def _engine_run(args: tuple[Scenario, int, tuple[str, ...]]) -> np.ndarray:
    """[runs, months, metrics] of one replication (runs: "design", "baseline")."""
    scenario, rep, runs = args
    result = replication(scenario, agents=AGENTS, seed=ENGINE_SEED, replication=rep).run()
    return np.stack([getattr(result, run)[_metrics(scenario)].to_numpy(float) for run in runs])


def _oracle_run(args: tuple[Scenario, int, dict | None, str, str]) -> np.ndarray:
    scenario, seed, perturb, run, opening = args
    df = Oracle(scenario, agents=AGENTS, seed=seed, perturb=perturb, run=run, opening=opening,
                past=HISTORY_SEGMENTS).run()
    return df[_metrics(scenario)].to_numpy(float)


def _map(fn, args: list) -> list:
    """``map`` on two worker processes where fork is available (the oracle is pure Python)."""
    workers = min(2, os.cpu_count() or 1)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(a) for a in args]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(fn, args))


def engine_runs(scenario: Scenario, k: int = K_E,
                runs: tuple[str, ...] = ("design",)) -> np.ndarray | dict[str, np.ndarray]:
    """[k runs, months, metrics] of the design run; with several ``runs``, {run: that array}
    (one replication gives both runs)."""
    out = np.stack(_map(_engine_run, [(scenario, r, runs) for r in range(k)]))
    return out[:, 0] if runs == ("design",) else {run: out[:, j] for j, run in enumerate(runs)}


def oracle_runs(scenario: Scenario, seeds=ORACLE_SEEDS, perturb: dict | None = None, run: str = "design",
                opening: str = "batches") -> np.ndarray:
    """[runs, months, metrics] of the oracle's ``run``."""
    return np.stack(_map(_oracle_run, [(scenario, s, perturb, run, opening) for s in seeds]))


# ---------------------------------------------------------------------------- comparing
@dataclasses.dataclass
class Comparison:
    metrics: list[str]
    z: pd.DataFrame              # month x metric: (m_E - m_O) / SE (0 where both are exactly equal)
    monthly_fail: pd.DataFrame   # month x metric: bool
    totals: pd.DataFrame         # metric: engine, oracle, rel, rel_se, z, fail

    def largest_z(self) -> pd.Series:
        return self.z.abs().max()

    def failures(self) -> list[str]:
        out = []
        for t, j in zip(*np.nonzero(self.monthly_fail.to_numpy())):
            x = self.metrics[j]
            out.append(f"month {t + 1} {x}: z = {self.z.iloc[t][x]:+.1f}")
        out += [f"total {x}: engine {r.engine:.6g} oracle {r.oracle:.6g} ({r.rel:+.1%}, z = {r.z:+.1f})"
                for x, r in self.totals[self.totals.fail].iterrows()]
        return out


def _diff(e: np.ndarray, o: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m_E - m_O, SE) along the first axis, with the pooled variance of the module docstring."""
    ke, ko = len(e), len(o)
    pooled = ((ke - 1) * e.var(axis=0, ddof=1) + (ko - 1) * o.var(axis=0, ddof=1)) / (ke + ko - 2)
    return e.mean(axis=0) - o.mean(axis=0), np.sqrt(pooled * (1 / ke + 1 / ko))


def compare(e: np.ndarray, o: np.ndarray, metrics: list[str]) -> Comparison:
    d, se = _diff(e, o)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(d == 0, 0.0, d / se)
    monthly_fail = np.abs(d) > Z * se + FLOOR
    te, to = e.sum(axis=1), o.sum(axis=1)
    dt, set_ = _diff(te, to)
    mo = to.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(mo != 0, dt / np.abs(mo), 0.0)
        rel_se = np.where(mo != 0, set_ / np.abs(mo), 0.0)
        zt = np.where(dt == 0, 0.0, dt / set_)
    total_fail = (np.abs(dt) > Z * set_ + FLOOR) | (np.abs(rel) > REL_TOL)
    totals = pd.DataFrame({"engine": te.mean(axis=0), "oracle": mo, "rel": rel, "rel_se": rel_se, "z": zt,
                           "fail": total_fail}, index=metrics)
    months = pd.RangeIndex(1, e.shape[1] + 1, name="month")
    return Comparison(metrics, pd.DataFrame(z, index=months, columns=metrics),
                      pd.DataFrame(monthly_fail, index=months, columns=metrics), totals)


def _report(title: str, cmp: Comparison) -> str:
    lines = [title, "largest |z| per metric (months):"]
    lines += [f"  {x:24s} {v:5.2f}" for x, v in cmp.largest_z().items()]
    lines.append("totals:")
    lines.append(cmp.totals.to_string(float_format=lambda v: f"{v:.4g}"))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def points_scenario() -> Scenario:
    return resolve(FIXTURES / "playbook.yaml")


@pytest.fixture(scope="module")
def points_engine(points_scenario) -> np.ndarray:
    return engine_runs(points_scenario)


@pytest.fixture(scope="module")
def points_oracle(points_scenario) -> np.ndarray:
    return oracle_runs(points_scenario)


@pytest.fixture(scope="module")
def points_comparison(points_scenario, points_engine, points_oracle) -> Comparison:
    return compare(points_engine, points_oracle, _metrics(points_scenario))


# ---------------------------------------------------------------------------- tests
def test_fixture_is_unscaled_and_exercises_every_mechanism(points_scenario, points_oracle):
    assert points_scenario.market.customers == AGENTS
    m = pd.DataFrame(points_oracle.mean(axis=0), columns=_metrics(points_scenario))
    for col in ("points_redeemed", "points_expired", "upgrades", "demotions", "members_tier_gold", "points_issued_bonus"):
        assert m[col].sum() > 0, f"the fixture never exercises {col}"
    assert (m["points_expired"].iloc[:6] == 0).all() and (m["points_expired"].iloc[6:] > 0).all()


def test_oracle_points_ledger_balances(points_scenario, points_oracle):
    """The oracle's own books: issued - redeemed - expired = change in outstanding, each month."""
    m = pd.DataFrame(points_oracle[0], columns=_metrics(points_scenario))
    change = m["points_outstanding"].diff().fillna(m["points_outstanding"].iloc[0])
    balance = m["points_issued"] - m["points_redeemed"] - m["points_expired"]
    np.testing.assert_allclose(change, balance, atol=1e-6)


def test_monthly_means_match(points_comparison):
    cmp = points_comparison
    print("\n" + _report("points + tiers + catalogue", cmp))
    assert not cmp.monthly_fail.to_numpy().any(), "engine and oracle differ:\n" + "\n".join(cmp.failures())


def test_horizon_totals_match(points_comparison):
    cmp = points_comparison
    t = cmp.totals
    # the relative tolerance is only meaningful if it is several SEs wide for every total
    assert (t.rel_se < REL_TOL / 2.5).all(), t[t.rel_se >= REL_TOL / 2.5]
    assert not t.fail.any(), "horizon totals differ:\n" + "\n".join(f for f in cmp.failures() if f.startswith("total"))


@pytest.mark.parametrize("parameter, detected_by", [
    ("goal_gradient", "purchases"),
    ("redemption_propensity", "points_redeemed"),
])
def test_comparison_detects_perturbation(points_scenario, points_engine, parameter, detected_by):
    """The test has teeth: double one response parameter in the oracle only, and the engine
    no longer matches it (on the metric the parameter drives most directly)."""
    perturbed = oracle_runs(points_scenario, seeds=tuple(range(901, 901 + K_PERTURBED)), perturb={parameter: 2.0})
    cmp = compare(points_engine, perturbed, _metrics(points_scenario))
    print("\n" + _report(f"oracle with {parameter} x 2", cmp))
    failing = set(cmp.monthly_fail.columns[cmp.monthly_fail.any()]) | set(cmp.totals.index[cmp.totals.fail])
    assert detected_by in failing, f"{parameter} x 2 went unnoticed on {detected_by} (failing: {sorted(failing)})"


def test_cashback_variant_matches():
    """A cash-back kitty instead of a catalogue (no tiers): vouchers in whole blocks,
    stochastic rounding of the vouchers used."""
    scenario = resolve(FIXTURES / "playbook_cashback.yaml")
    e = engine_runs(scenario, k=K_E_CASHBACK)
    o = oracle_runs(scenario, seeds=tuple(range(301, 301 + K_O_CASHBACK)))
    cmp = compare(e, o, _metrics(scenario))
    print("\n" + _report("cash-back", cmp))
    assert cmp.totals.loc["vouchers_used", "oracle"] > 0
    assert not cmp.failures(), "engine and oracle differ:\n" + "\n".join(cmp.failures())


def test_enrolment_bonus_qualifies(points_scenario):
    """With ``include_bonuses: true`` the oracle counts every bonus, the welcome bonus included,
    toward tiers, as the spec says."""
    p = points_scenario.program
    q = p.earn.qualifying.model_copy(update={"include_bonuses": True})
    program = p.model_copy(update={"earn": p.earn.model_copy(update={"qualifying": q})})
    scenario = dataclasses.replace(points_scenario, program=program)
    e = engine_runs(scenario, k=10)
    o = oracle_runs(scenario, seeds=(501, 502, 503))
    cmp = compare(e, o, _metrics(scenario))
    print("\n" + _report("include_bonuses: true", cmp))
    assert not cmp.failures(), "engine and oracle differ:\n" + "\n".join(cmp.failures()[:20])


# ---------------------------------------------------------------------------- a program running at the start,
# migrations, fees
OTHER_SEEDS = tuple(range(601, 601 + K_O_OTHER))
PERTURBED_SEEDS = tuple(range(951, 951 + K_PERTURBED))


def _scenario(name: str) -> Scenario:
    return resolve(FIXTURES / name)


def _with_migration(scenario: Scenario, converted_points: str) -> Scenario:
    pb = scenario.playbook
    migration = pb.migration.model_copy(update={"converted_points": converted_points})
    return dataclasses.replace(scenario, playbook=pb.model_copy(update={"migration": migration}))


def _assert_match(title: str, cmp: Comparison, keys: tuple[str, ...]) -> None:
    """Months and totals pass (module docstring); the totals of ``keys``, the metrics the
    scenario is about, have a relative SE small enough for REL_TOL to mean something."""
    print("\n" + _report(title, cmp))
    rel_se = cmp.totals.loc[list(keys), "rel_se"]
    noisy = rel_se[rel_se >= REL_TOL / 2.5]
    assert noisy.empty, f"{title}: totals too noisy for REL_TOL:\n{noisy}"
    assert not cmp.failures(), f"{title}: engine and oracle differ:\n" + "\n".join(cmp.failures()[:30])


def _assert_ledger(scenario: Scenario, runs: np.ndarray) -> None:
    """The oracle's own books, migration included: issued - redeemed - expired = change in
    outstanding, each month after the first (the first opens on the history's balance)."""
    m = pd.DataFrame(runs[0], columns=_metrics(scenario))
    change = m["points_outstanding"].diff().iloc[1:]
    balance = (m["points_issued"] - m["points_redeemed"] - m["points_expired"]).iloc[1:]
    np.testing.assert_allclose(change, balance, atol=1e-6)
    np.testing.assert_allclose(m["points_issued"], m["points_issued_purchase"] + m["points_issued_bonus"]
                               + m["points_issued_migration"], atol=1e-6)


POINTS_KEYS = ("members", "points_issued", "points_redeemed", "points_expired", "points_outstanding")


@pytest.fixture(scope="module")
def running_scenario() -> Scenario:
    return _scenario("playbook_running.yaml")


@pytest.fixture(scope="module")
def running_engine(running_scenario) -> dict[str, np.ndarray]:
    return engine_runs(running_scenario, k=K_E_OTHER, runs=("design", "baseline"))


@pytest.fixture(scope="module")
def running_oracle(running_scenario) -> dict[str, np.ndarray]:
    return {run: oracle_runs(running_scenario, seeds=OTHER_SEEDS, run=run) for run in ("design", "baseline")}


def test_running_fixture_exercises_history_and_migration(running_scenario, running_oracle):
    """The fixture does what the comparisons rely on: the opening balance is spread over the
    past (month 1 expires part of it, not all), the migration converts it in month 4 and the
    design's shorter expiry takes the old converted batches at once."""
    metrics = _metrics(running_scenario)
    base = pd.DataFrame(running_oracle["baseline"].mean(axis=0), columns=metrics, index=range(1, 13))
    design = pd.DataFrame(running_oracle["design"].mean(axis=0), columns=metrics, index=range(1, 13))
    assert base.loc[1, "members"] > 1000
    assert 0 < base.loc[1, "points_expired"] < 0.05 * base.loc[1, "points_outstanding"]
    assert design.loc[4, "points_redeemed_migration"] > 0.9 * design.loc[3, "points_outstanding"]
    assert design.loc[4, "points_issued_migration"] > 0
    assert design.loc[4, "points_expired"] > 4 * base.loc[4, "points_expired"]
    assert (design[["points_issued_migration", "points_redeemed_migration"]].drop(index=4) == 0).all().all()
    for run in ("design", "baseline"):
        _assert_ledger(running_scenario, running_oracle[run])


@pytest.mark.parametrize("run", ["baseline", "design"])
def test_running_program_matches(running_scenario, running_engine, running_oracle, run):
    """Both runs start from the kitty's history; the baseline run keeps it for the horizon,
    the design run migrates in month 4 (keep_dates)."""
    cmp = compare(running_engine[run], running_oracle[run], _metrics(running_scenario))
    keys = POINTS_KEYS + (("points_issued_migration", "points_redeemed_migration") if run == "design" else ())
    _assert_match(f"running kitty, {run} run", cmp, keys)


@pytest.mark.parametrize("opening", ["last_month", "snapshot_today"])
def test_wrong_opening_history_is_detected(running_scenario, running_engine, opening):
    """Every opening point dated in month -1 (nothing expires in month 1), or every past
    snapshot equal to today's total (everything expires in month 1): month 1's expired points
    tell either from the engine."""
    wrong = oracle_runs(running_scenario, seeds=PERTURBED_SEEDS, run="baseline", opening=opening)
    cmp = compare(running_engine["baseline"], wrong, _metrics(running_scenario))
    print("\n" + _report(f"opening dated by {opening}", cmp))
    assert cmp.monthly_fail.loc[1, "points_expired"], \
        f"an opening history dated by {opening} went unnoticed (month 1 z = {cmp.z.loc[1, 'points_expired']:+.1f})"


def test_migration_dating_is_detected(running_scenario, running_engine):
    """Converted points all dated in the launch month (new_issue) where the playbook keeps
    their earn months: the launch month's expired points tell."""
    wrong = oracle_runs(_with_migration(running_scenario, "new_issue"), seeds=PERTURBED_SEEDS)
    cmp = compare(running_engine["design"], wrong, _metrics(running_scenario))
    print("\n" + _report("migration dated as new_issue", cmp))
    launch = running_scenario.playbook.launch.month - running_scenario.playbook.start.month + 1
    assert cmp.monthly_fail.loc[launch, "points_expired"], "new_issue dating went unnoticed in the launch month"


def test_new_issue_migration_matches():
    """A catalogue program (never expiring) running at the start, migrated at once to a
    cash-back design, converted points dated in the launch month; both runs."""
    scenario = _scenario("playbook_new_issue.yaml")
    assert scenario.playbook.migration.converted_points == "new_issue"
    e = engine_runs(scenario, k=K_E_OTHER, runs=("design", "baseline"))
    metrics = _metrics(scenario)
    for run in ("baseline", "design"):
        o = oracle_runs(scenario, seeds=OTHER_SEEDS, run=run)
        _assert_ledger(scenario, o)
        m = pd.DataFrame(o.mean(axis=0), columns=metrics)
        assert m["redemptions"].iloc[0] > 0 and m["points_outstanding"].iloc[0] > 0
        keys = POINTS_KEYS if run == "design" else ("members", "points_issued", "points_redeemed", "points_outstanding")
        _assert_match(f"catalogue program migrated at once (new_issue), {run} run", compare(e[run], o, metrics), keys)


@pytest.fixture(scope="module")
def paid_scenario() -> Scenario:
    return _scenario("playbook_paid.yaml")


@pytest.fixture(scope="module")
def paid_engine(paid_scenario) -> np.ndarray:
    return engine_runs(paid_scenario, k=K_E_OTHER)


def test_paid_design_matches(paid_scenario, paid_engine):
    """A monthly fee after two free months: who joins (the fee factor), fee income, who
    leaves at renewal."""
    o = oracle_runs(paid_scenario, seeds=OTHER_SEEDS)
    cmp = compare(paid_engine, o, _metrics(paid_scenario))
    assert cmp.totals.loc["fee_income", "oracle"] > 0 and cmp.totals.loc["left_members", "oracle"] > 0
    _assert_match("paid design", cmp, ("members", "new_members", "left_members", "fee_income", "points_issued"))


def test_fee_sensitivity_is_detected(paid_scenario, paid_engine):
    wrong = oracle_runs(paid_scenario, seeds=PERTURBED_SEEDS, perturb={"fee_sensitivity": 2.0})
    cmp = compare(paid_engine, wrong, _metrics(paid_scenario))
    print("\n" + _report("oracle with fee_sensitivity x 2", cmp))
    failing = set(cmp.monthly_fail.columns[cmp.monthly_fail.any()]) | set(cmp.totals.index[cmp.totals.fail])
    assert {"left_members", "fee_income"} <= failing, f"fee_sensitivity x 2 went unnoticed (failing: {sorted(failing)})"


def test_migration_to_paid_design_matches():
    """The kitty migrated to a paid design: nobody is a member at the launch, balances are
    converted and kept (with their earn months) until spent after joining again, or expired."""
    scenario = _scenario("playbook_paid_migration.yaml")
    e = engine_runs(scenario, k=K_E_OTHER)
    o = oracle_runs(scenario, seeds=OTHER_SEEDS)
    _assert_ledger(scenario, o)
    cmp = compare(e, o, _metrics(scenario))
    launch = scenario.playbook.launch.month - scenario.playbook.start.month
    m = pd.DataFrame(o.mean(axis=0), columns=_metrics(scenario))
    assert m["members"].iloc[launch] < 0.2 * m["members"].iloc[launch - 1]
    _assert_match("kitty migrated to a paid design", cmp,
                  POINTS_KEYS + ("points_issued_migration", "left_members", "fee_income"))
