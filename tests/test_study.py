"""`compare` and studies: loading with errors, the study directory, ranking, tornado, and the
break-evens (checked against fresh runs, not against their own formula)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from simulator.errors import InputErrors
from simulator.study import _mean_npv, _scaled, load_study, run_study, study_from_playbooks
from simulator import uncertainty

ROOT = Path(__file__).resolve().parents[1]


def _study(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "study.yaml"
    p.write_text(body)
    return p


def test_study_file_errors_name_file_and_line(tmp_path):
    path = _study(tmp_path, f"""name: s
reporting_currency: EUR
scenarios:
  - playbook: {ROOT}/markets/france/points_tiers_launch.yaml
  - playbook: {ROOT}/markets/france/nope.yaml
  - playbook: {ROOT}/markets/france/points_tiers_launch.yaml
    design: {ROOT}/programs/missing.yaml
""")
    with pytest.raises(InputErrors) as err:
        load_study(path)
    text = str(err.value)
    assert f"{path}:5: scenarios.1.playbook: playbook file not found" in text
    assert f"{path}:7: scenarios.2.design: design file not found" in text


def test_reporting_currency_must_match(tmp_path):
    path = _study(tmp_path, f"""name: s
reporting_currency: USD
scenarios:
  - playbook: {ROOT}/markets/france/points_tiers_launch.yaml
""")
    with pytest.raises(InputErrors, match="reports in EUR, the study in USD"):
        load_study(path)


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    study, cells = study_from_playbooks([ROOT / "markets/france/points_tiers_launch.yaml"],
                                        [ROOT / "programs/points_tiers.yaml", ROOT / "programs/premium_club.yaml"],
                                        replications=2, seed=4, agents=600)
    study = study.model_copy(update={"sensitivity_replications": 1})
    cells = [dataclasses.replace(c, scenario=c.scenario.with_horizon(12)) for c in cells]
    out = tmp_path_factory.mktemp("study") / "out"
    doc = run_study(study, cells, out, force=False)
    return study, cells, out, doc


def test_study_directory_and_ranking(small_study):
    study, cells, out, doc = small_study
    on_disk = json.loads((out / "study.json").read_text())
    assert on_disk == doc
    assert [s["id"] for s in doc["scenarios"]] == [c.id for c in cells]
    for s in doc["scenarios"]:
        assert (out / s["dir"] / "summary.json").is_file()
    npvs = [r["npv_p50"] for r in doc["ranking"]]
    assert npvs == sorted(npvs, reverse=True)
    names = {p["name"] for p in doc["uncertain_parameters"]}
    assert "france.response.goal_gradient" in names
    for rows in doc["tornado"].values():
        assert {r["parameter"] for r in rows} == names
        spans = [abs(r["npv_high"] - r["npv_low"]) for r in rows]
        assert spans == sorted(spans, reverse=True)


def test_response_breakeven_gives_zero_npv(small_study):
    study, cells, out, doc = small_study
    cell = cells[0]
    row = doc["breakeven"][cell.id][0]
    assert row["parameter"].startswith("behavioural response")
    if row["value"] in (None, 0.0):
        pytest.skip("no interior break-even in this configuration")
    sc = uncertainty.with_values(cell.scenario, uncertainty.central_values(cell.scenario))
    at = _mean_npv(_scaled(sc, row["value"]), study, values=None, progress=None)[0]
    span = abs(_mean_npv(_scaled(sc, 1.0), study, values=None, progress=None)[0]
               - _mean_npv(_scaled(sc, 0.0), study, values=None, progress=None)[0])
    assert abs(at) < 0.05 * span


def test_reward_cost_enters_npv_linearly(small_study):
    """The reward-cost break-even assumes NPV(c x cost) = NPV - (c - 1) PV(reward cost), the
    cost of the points still owed at the horizon included: check it by running the design with
    every reward cost doubled (doubling lowers NPV by exactly the discounted extra cost)."""
    from simulator.engine.simulation import Simulation
    from simulator.executor import replication
    from simulator.finance import metrics
    from simulator.results import RunResult

    study, cells, out, doc = small_study
    cell = next(c for c in cells if c.scenario.program.name == "points_tiers")
    sc = uncertainty.with_values(cell.scenario, uncertainty.central_values(cell.scenario))
    prog = sc.program
    doubled = prog.model_copy(update={"rewards": prog.rewards.model_copy(update={"catalogue": tuple(
        r.model_copy(update={"cost": r.cost * 2}) for r in prog.rewards.catalogue)})})
    base = RunResult(sc, [replication(sc, agents=600, seed=4).run()], 600, 4)
    twice = RunResult(dataclasses.replace(sc, program=doubled), [replication(dataclasses.replace(sc, program=doubled), agents=600, seed=4).run()], 600, 4)
    rate = sc.market.economics.discount_rate
    npv1 = base.replication_metrics()[0]["npv"]
    npv2 = twice.replication_metrics()[0]["npv"]
    from simulator.study import reward_cost_pv

    d1, d2 = base.frames[0]["design"], twice.frames[0]["design"]
    live = base.phases()[0] == 1
    # the extra cost: the rewards redeemed, and the points still owed at the horizon
    extra = (metrics.npv(d2["reward_cost"].to_numpy() - d1["reward_cost"].to_numpy(), rate)
             + (d2["obligation_points"].iloc[-1] - d1["obligation_points"].iloc[-1])
             / (1 + rate) ** (len(d1) / 12))
    assert d1["obligation_points"].iloc[-1] > 0
    assert npv1 - npv2 == pytest.approx(extra, rel=1e-9)
    assert npv1 - npv2 == pytest.approx(reward_cost_pv(d1, live, rate), rel=1e-9)


def test_reproduce_a_study_scenario_with_a_swapped_design(small_study, tmp_path):
    """The manifest records the design swap and the horizon override, so reproduce redoes them."""
    from simulator.runner import reproduce

    study, cells, out, doc = small_study
    swapped = next(s for s in doc["scenarios"] if s["design"] == "premium_club")
    man = json.loads((out / swapped["dir"] / "manifest.json").read_text())
    assert man["arguments"]["design"].endswith("premium_club.yaml") and man["arguments"]["horizon_months"] == 12
    same, differ = reproduce(out / swapped["dir"], tmp_path / "again", force=False)
    assert not differ, differ


def test_never_paying_replications_count_in_payback_percentiles():
    from simulator.engine.simulation import ReplicationResult
    from simulator.executor import replication
    from simulator.results import RunResult

    class Fake(RunResult):
        def __post_init__(self):
            self.frames = []

        def replication_metrics(self):
            return [{"npv": 1.0, "payback_month": m, "parameters": {}} for m in (3, None, None)]

    from simulator.scenario import resolve as _resolve

    fake = Fake(_resolve(ROOT / "markets/usa/cagnotte_launch.yaml"), [ReplicationResult(None, None, None, None, 1.0, [])], 100, 1)
    fake.frames = [{"design": __import__("pandas").DataFrame({"period": ["2027-05"]})}]
    fake.transition_matrices = lambda: {}
    m = fake.summary()["metrics"]["payback_month"]
    assert m["never"] == 2 and m["p10"] == 3 and m["p50"] is None and m["p90"] is None


def test_a_discount_rate_range_reaches_the_percentiles_and_the_tornado(tmp_path):
    """economics.discount_rate as a range: each replication discounts its cash flow at its own
    draw (so the NPV's P10/P90 carry it), and the tornado moves it like any uncertain parameter."""
    import yaml

    from simulator.finance import metrics
    from simulator.results import RunResult
    from simulator.engine.simulation import Simulation
    from simulator.executor import replication

    market = yaml.safe_load((ROOT / "markets/usa/market.yaml").read_text())
    market["economics"]["discount_rate"] = {"uniform": [0.04, 0.16]}
    (tmp_path / "market.yaml").write_text(yaml.safe_dump(market))
    pb = yaml.safe_load((ROOT / "markets/usa/cagnotte_launch.yaml").read_text())
    pb.update(market="market.yaml", design=str(ROOT / "programs/cagnotte.yaml"), horizon_months=12)
    (tmp_path / "pb.yaml").write_text(yaml.safe_dump(pb, sort_keys=False))
    study, cells = study_from_playbooks([tmp_path / "pb.yaml"], [], replications=3, seed=2, agents=500)
    sc = cells[0].scenario
    reps = [replication(sc, agents=500, seed=2, replication=r).run() for r in range(3)]
    rr = RunResult(sc, reps, 500, 2)
    rates = [rr.discount_rate(r) for r in range(3)]
    assert len(set(rates)) == 3 and all(0.04 <= x <= 0.16 for x in rates)
    for r, m in enumerate(rr.replication_metrics()):
        assert m["discount_rate"] == rates[r]
        assert m["npv"] == pytest.approx(metrics.npv(rr.frames[r]["difference"]["cash_flow"].to_numpy(), rates[r]))
    study = study.model_copy(update={"sensitivity_replications": 1})
    doc = run_study(study, cells, tmp_path / "out", force=False)
    bars = {b["parameter"]: b for b in doc["tornado"][cells[0].id]}
    bar = bars["usa.economics.discount_rate"]
    assert bar["npv_low"] != bar["npv_high"]


def test_each_scenario_is_reported_as_soon_as_its_runs_are_done(tmp_path):
    """run_study hands each scenario's summary over before the next scenario (and before the
    sensitivity analyses), so the terminal shows a first result while the rest runs."""
    study, cells = study_from_playbooks([ROOT / "markets/usa/cagnotte_launch.yaml"],
                                        [ROOT / "programs/cagnotte.yaml", ROOT / "programs/points_tiers.yaml"],
                                        replications=1, seed=1, agents=300)
    cells = [dataclasses.replace(c, scenario=c.scenario.with_horizon(6)) for c in cells]
    seen: list[tuple[str, bool]] = []
    out = tmp_path / "s"
    run_study(study, cells, out, force=False,
              done=lambda sid, summary: seen.append((sid, (out / "study.json").exists() or "npv" not in summary["metrics"])))
    assert [sid for sid, _ in seen] == [c.id for c in cells]
    assert not any(flag for _, flag in seen)  # each came with its summary, before the study was written


# ------------------------------------------------------------------ a design search in a study
CLOSED_FORM = ROOT / "tests" / "fixtures" / "closed_form"
SEARCH_STUDY = f"""name: fee_study
seed: 1
replications: 2
agents: 2000
tornado: false
breakeven: false
scenarios:
  - playbook: {CLOSED_FORM}/playbook.yaml
search:
  name: fee_search
  playbook: {CLOSED_FORM}/playbook.yaml
  variables:
    - {{path: "enrolment.fee.amount", low: 1.0, high: 20.0, step: 0.5}}
  objective: {{metric: npv, statistic: mean}}
  constraints:
    - {{metric: members_end, statistic: p50, min: 20000}}
  trials: 8
  batch: 4
  agents: 3000
  replications: 2
  racing: {{agents: 2000, replications: 2, confirm: 2}}
"""


def test_a_study_runs_its_search_block_into_report_and_workbook(tmp_path):
    """The search's files land in optimisation/, study.json names its result, and the report's
    section and the workbook's sheet show the best design against the start and the
    constraints; the optimise command's own report.html holds the same section."""
    import openpyxl

    from simulator.reporting.optimisation import load
    from simulator.study import load_study_with_search

    study, cells, problem = load_study_with_search(_study(tmp_path, SEARCH_STUDY))
    assert problem is not None and problem.search.name == "fee_search"
    doc = run_study(study, cells, tmp_path / "out", force=False, search=problem)
    out = tmp_path / "out"
    for f in ("best_design.yaml", "trials.csv", "frontier.csv", "frontier.png", "optimisation.json", "report.html",
              "manifest.json"):
        assert (out / "optimisation" / f).is_file(), f
    opt = load(out / "optimisation")
    assert doc["optimisation"]["best"] == pytest.approx(opt.best["objective"])
    assert doc["optimisation"]["start"] == pytest.approx(opt.start["objective"])
    report = (out / "report.html").read_text()
    section = report[report.index('<section id="optimisation">'):]
    section = section[:section.index("</section>")]
    assert "Best design against the starting one" in section and "members_end_p50 (min)" in section
    assert f"{opt.best['var:enrolment.fee.amount']:,.4g}" in section
    own = (out / "optimisation" / "report.html").read_text()
    table = section[section.index("<h3>Constraints</h3>"):section.index("<h3>Efficient frontier</h3>")]
    assert table.replace("h3>", "h2>") in own  # the same section, one heading level up on its own page
    ws = openpyxl.load_workbook(out / "workbook.xlsx")["Optimisation"]
    cells_text = [c.value for row in ws.iter_rows() for c in row if c.value is not None]
    assert "members_end_p50" in cells_text and "Best design (local currency)" in cells_text


def test_a_bad_search_block_names_the_study_line_and_writes_nothing(tmp_path):
    import subprocess
    import sys

    path = _study(tmp_path, SEARCH_STUDY.replace("enrolment.fee.amount", "enrolment.fees.amount"))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "simulator", "compare", str(path), "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"{path}:13: search.variables.0.path: unknown field 'fees'"), r.stderr
    assert not out.exists() and not list(tmp_path.glob(".out*"))
