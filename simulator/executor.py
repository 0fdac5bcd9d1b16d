"""Where replications run: in this process, or on a pool of local processes.

Each task carries everything it needs, its seed and replication number included, and its
random streams depend only on those (``SeedSequence(seed).spawn``), so results are identical
whatever the number of workers and whatever order tasks finish in. Tasks are returned in
the order they were given.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
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


def run_task(task: Task) -> Any:
    """Run one replication (top-level so that worker processes can import it)."""
    from simulator.engine.simulation import Simulation

    return Simulation(task.scenario, agents=task.agents, seed=task.seed, replication=task.replication,
                      parameters=task.parameters).run()


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Executor:
    """Runs tasks on ``workers`` local processes (1: in this process). Use as a context manager."""

    def __init__(self, workers: int | None = None):
        self.workers = default_workers() if workers is None else max(1, int(workers))
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "Executor":
        if self.workers > 1:
            # spawn: no inherited threads or locks from the parent (pyarrow, numba)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, tasks: Sequence[Task], done: Callable[[int], None] | None = None,
            fn: Callable[[Task], Any] = run_task) -> list[Any]:
        """Results of ``fn(task)`` in task order; ``done(i)`` is called as each finishes."""
        if self._pool is None or len(tasks) <= 1:
            out = []
            for i, t in enumerate(tasks):
                out.append(fn(t))
                if done:
                    done(i)
            return out
        futures = {self._pool.submit(fn, t): i for i, t in enumerate(tasks)}
        results: list[Any] = [None] * len(tasks)
        for fut in as_completed(futures):
            i = futures[fut]
            results[i] = fut.result()
            if done:
                done(i)
        return results


def serial() -> Executor:
    return Executor(workers=1)


def tasks_for(scenario: Scenario, *, agents: int, seed: int, replications: Iterable[int],
              parameters: dict[str, float] | None = None) -> list[Task]:
    return [Task(scenario, agents, seed, r, parameters) for r in replications]
