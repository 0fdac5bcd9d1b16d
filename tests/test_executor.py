"""Results do not depend on the number of workers."""

from pathlib import Path

import pandas as pd

from simulator.executor import Executor
from simulator.runner import simulate
from simulator.scenario import resolve

ROOT = Path(__file__).resolve().parents[1]


def test_same_results_on_one_and_two_workers():
    sc = resolve(ROOT / "markets/usa/points_tiers_launch.yaml")
    one = simulate(sc, agents=600, seed=5, replications=3, executor=Executor(1))
    with Executor(2) as ex:
        two = simulate(sc, agents=600, seed=5, replications=3, executor=ex)
    pd.testing.assert_frame_equal(one.monthly_all(), two.monthly_all())
    assert one.summary() == two.summary()


def test_study_identical_on_process_pool_and_local_dask_cluster(tmp_path):
    """The same study on the local process pool and on a Dask cluster started here."""
    import dataclasses

    from simulator.study import run_study, study_from_playbooks

    study, cells = study_from_playbooks([ROOT / "markets/usa/cagnotte_launch.yaml"], [], replications=3, seed=2, agents=500)
    study = study.model_copy(update={"tornado": False, "breakeven": False})
    cells = [dataclasses.replace(c, scenario=dataclasses.replace(
        c.scenario, playbook=c.scenario.playbook.model_copy(update={"horizon_months": 8}))) for c in cells]
    with Executor(2) as pool:
        a = run_study(study, cells, tmp_path / "pool", force=False, executor=pool)
    with Executor(2, scheduler="local") as dask:
        b = run_study(study, cells, tmp_path / "dask", force=False, executor=dask)
    assert a == b
    for f in ("summary.json", "monthly.csv"):
        sid = cells[0].id
        assert (tmp_path / "pool" / "scenarios" / sid / f).read_bytes() == (tmp_path / "dask" / "scenarios" / sid / f).read_bytes()


def test_checkpoints_resume_without_rerunning(tmp_path, monkeypatch):
    from simulator import executor as ex_mod

    sc = resolve(ROOT / "markets/usa/cagnotte_launch.yaml")
    sc = sc.__class__(**{**sc.__dict__, "playbook": sc.playbook.model_copy(update={"horizon_months": 6})})
    cp = tmp_path / "cp"
    first = simulate(sc, agents=400, seed=1, replications=3, executor=Executor(1, checkpoint=cp))
    assert len(list(cp.glob("*.pkl"))) == 3
    (sorted(cp.glob("*.pkl"))[0]).unlink()  # as if that task's worker had been lost
    calls = []
    real = ex_mod.run_task
    monkeypatch.setattr(ex_mod, "run_task", lambda t: calls.append(t.replication) or real(t))
    again = simulate(sc, agents=400, seed=1, replications=3, executor=Executor(1, checkpoint=cp))
    assert len(calls) == 1
    pd.testing.assert_frame_equal(first.monthly_all(), again.monthly_all())
