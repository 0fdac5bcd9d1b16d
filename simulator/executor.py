"""Where replications run: in this process, on a pool of local processes (the default),
or on a Dask cluster.

Each task carries everything it needs, its seed and replication number included, and its
random streams depend only on those (``SeedSequence(seed).spawn``), so results are identical
whatever the executor, the number of workers and the order tasks finish in. Tasks are
returned in the order they were given.

Dask: ``scheduler="tcp://host:port"`` uses an existing cluster, ``scheduler="local"`` starts
a local one (one single-threaded worker process per core). Every task is submitted under an
explicit key made of its content hash (seed and replication included), so Dask never merges
two different replications and re-runs the same one only if it was lost.

Checkpoints: with ``checkpoint=DIR`` each result is written to ``DIR/<task key>.pkl`` as soon
as it arrives; a task whose file exists is loaded instead of run. A lost worker costs its
task, not the sweep, and a re-run after an interruption resumes from what is on disk.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pickle
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from simulator.scenario import Scenario


@dataclass(frozen=True)
class Task:
    """One replication of one scenario (design + baseline)."""

    scenario: Scenario
    agents: int
    seed: int
    replication: int
    parameters: dict[str, float] | None = None


def task_key(task: Task) -> str:
    """Content hash of a task: the same inputs, seed and replication give the same key."""
    from simulator import __version__

    sc = task.scenario
    payload = json.dumps({
        "version": __version__, "agents": task.agents, "seed": task.seed, "replication": task.replication,
        "parameters": task.parameters, "program": sc.program.model_dump(mode="json"),
        "baseline": sc.baseline.model_dump(mode="json") if sc.baseline else None,
        "market": sc.market.model_dump(mode="json"), "playbook": sc.playbook.model_dump(mode="json"),
    }, sort_keys=True)
    return f"loyalty-sim-{sc.playbook.name}-r{task.replication}-{hashlib.sha256(payload.encode()).hexdigest()[:20]}"


def replication(scenario: Scenario, *, agents: int, seed: int, replication: int = 0,
                parameters: dict[str, float] | None = None, **kwargs: Any):
    """The engine's Simulation of one replication, its parameters given as distributions drawn
    first (simulator.uncertainty.realise; ``parameters`` fixes some of them, as sensitivity
    analysis does): the engine only ever sees numbers. ``kwargs`` go to Simulation."""
    from simulator.engine.simulation import Simulation
    from simulator.uncertainty import realise

    realised, drawn = realise(scenario, seed=seed, replication=replication, overrides=parameters)
    return Simulation(realised, agents=agents, seed=seed, replication=replication, drawn=drawn, **kwargs)


def run_task(task: Task) -> Any:
    """Run one replication (top-level so that worker processes can import it)."""
    return replication(task.scenario, agents=task.agents, seed=task.seed, replication=task.replication,
                       parameters=task.parameters).run()


def _one_thread_per_worker() -> None:
    """Pool workers step with one thread each: the replications already fill the cores."""
    os.environ["LOYALTY_SIM_THREADS"] = "1"


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Executor:
    """Runs tasks locally (``workers`` processes; 1 = in this process) or on Dask
    (``scheduler``). Use as a context manager."""

    def __init__(self, workers: int | None = None, *, scheduler: str | None = None,
                 checkpoint: str | Path | None = None):
        self.workers = default_workers() if workers is None else max(1, int(workers))
        self.scheduler = scheduler
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self._pool: ProcessPoolExecutor | None = None
        self._client: Any = None
        self._cluster: Any = None

    def __enter__(self) -> "Executor":
        if self.scheduler is not None:
            from dask.distributed import Client, LocalCluster

            if self.scheduler == "local":
                self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                             dashboard_address=None, env={"LOYALTY_SIM_THREADS": "1"})
                self._client = Client(self._cluster)
            else:
                self._client = Client(self.scheduler)
        elif self.workers > 1:
            # spawn: no inherited threads or locks from the parent (pyarrow, numba)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_one_thread_per_worker)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    @property
    def parallel(self) -> bool:
        return self._pool is not None or self._client is not None

    # -------------------------------------------------------------- checkpoints
    def _load(self, key: str) -> Any:
        if self.checkpoint is None:
            return None
        path = self.checkpoint / f"{key}.pkl"
        if not path.is_file():
            return None
        try:
            with path.open("rb") as fh:
                return pickle.load(fh)
        except (OSError, pickle.UnpicklingError, EOFError):
            return None  # a torn file from an interrupted write: run the task again

    def _save(self, key: str, result: Any) -> None:
        if self.checkpoint is None:
            return
        self.checkpoint.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.checkpoint, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.checkpoint / f"{key}.pkl")

    def map(self, tasks: Sequence[Task], done: Callable[[int], None] | None = None,
            fn: Callable[[Task], Any] | None = None) -> list[Any]:
        """Results of ``fn(task)`` (default :func:`run_task`) in task order; ``done(i)`` is
        called as each finishes."""
        fn = fn if fn is not None else run_task
        results: list[Any] = [None] * len(tasks)
        keys = [task_key(t) for t in tasks] if (self.checkpoint is not None or self._client is not None) else [None] * len(tasks)
        todo = []
        for i, key in enumerate(keys):
            cached = self._load(key) if key else None
            if cached is not None:
                results[i] = cached
                if done:
                    done(i)
            else:
                todo.append(i)

        def finish(i: int, result: Any) -> None:
            results[i] = result
            if keys[i]:
                self._save(keys[i], result)
            if done:
                done(i)

        if self._client is not None:
            from dask.distributed import as_completed as dask_completed

            futures = {self._client.submit(fn, tasks[i], key=keys[i], pure=False): i for i in todo}
            for fut in dask_completed(list(futures)):
                finish(futures[fut], fut.result())
        elif self._pool is not None and len(todo) > 1:
            futures = {self._pool.submit(fn, tasks[i]): i for i in todo}
            for fut in as_completed(futures):
                finish(futures[fut], fut.result())
        else:
            for i in todo:
                finish(i, fn(tasks[i]))
        return results


def serial() -> Executor:
    return Executor(workers=1)


def tasks_for(scenario: Scenario, *, agents: int, seed: int, replications: Iterable[int],
              parameters: dict[str, float] | None = None) -> list[Task]:
    return [Task(scenario, agents, seed, r, parameters) for r in replications]
