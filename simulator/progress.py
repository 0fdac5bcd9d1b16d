"""Feedback while a long command runs.

On a terminal, a progress bar (rich) with the elapsed time and an estimate of what is left.
Anywhere else (CI, ``| tee``, a log file), plain lines on standard error, at most one every
``every`` seconds and at the end:

    study demo: 120/360 months (33%), 0:41 elapsed, about 1:22 left

The estimate is the elapsed time times the share of the work left over the share done (the
work is counted in simulated months or replications, which take about the same time each).
The engine's kernels are compiled once per machine and cached on disk; the first command
after an install says so, since that takes a minute before any progress shows.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, TextIO


def clock(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class PlainLines:
    """Progress as plain lines (module docstring)."""

    def __init__(self, total: int, label: str, unit: str, stream: TextIO, every: float = 10.0,
                 now: Callable[[], float] = time.monotonic):
        self.total, self.label, self.unit, self.stream, self.every, self.now = total, label, unit, stream, every, now
        self.done = 0
        self.start = now()
        self.last = self.start

    def line(self) -> str:
        elapsed = self.now() - self.start
        share = self.done / self.total if self.total else 1.0
        text = f"{self.label}: {self.done}/{self.total} {self.unit} ({share:.0%}), {clock(elapsed)} elapsed"
        if 0 < share < 1:
            text += f", about {clock(elapsed * (1 - share) / share)} left"
        return text

    def advance(self, n: int) -> None:
        self.done += n
        t = self.now()
        if t - self.last >= self.every or self.done >= self.total:
            self.last = t
            print(self.line(), file=self.stream, flush=True)


def compiled_once() -> bool:
    """Whether the engine's month step is in Numba's on-disk cache already (its index file is
    named for the function's first line and the Python version)."""
    from simulator.engine import kernels

    code = kernels.step_blocks.py_func.__code__
    name = f"kernels.step_blocks-{code.co_firstlineno}.py{sys.version_info[0]}{sys.version_info[1]}.nbi"
    return (Path(kernels.__file__).resolve().parent / "__pycache__" / name).is_file()


@contextlib.contextmanager
def progress(total: int, label: str, unit: str = "months", stream: TextIO | None = None) -> Iterator[Callable[[int], None]]:
    """``advance(n)`` for ``total`` units of work: a bar on a terminal, plain lines elsewhere."""
    stream = sys.stderr if stream is None else stream
    if not compiled_once():
        print("compiling the engine, once (about a minute; later runs start at once)", file=stream, flush=True)
    if not stream.isatty():
        yield PlainLines(total, label, unit, stream).advance
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), transient=True, console=Console(file=stream)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


class PlainSteps:
    """Steps of a long command as plain lines: ``label: name (m:ss elapsed)`` for a step still
    running ``after`` seconds after it started (so a command that fails at once on bad input
    prints only its error), and ``label: done in m:ss`` at the end if any step was shown."""

    def __init__(self, label: str, stream: TextIO, now: Callable[[], float] = time.monotonic, after: float = 2.0,
                 timer: Callable[[float, Callable[[], None]], object] | None = None):
        self.label, self.stream, self.now, self.after = label, stream, now, after
        self.start = now()
        self.shown = False
        self.pending = None
        self.timer = timer or self._thread_timer

    @staticmethod
    def _thread_timer(delay: float, fn: Callable[[], None]):
        import threading

        t = threading.Timer(delay, fn)
        t.daemon = True
        t.start()
        return t

    def _show(self, name: str, started: float) -> None:
        self.shown = True
        print(f"{self.label}: {name} ({clock(started - self.start)} elapsed)", file=self.stream, flush=True)

    def cancel(self) -> None:
        if self.pending is not None and hasattr(self.pending, "cancel"):
            self.pending.cancel()
        self.pending = None

    def step(self, name: str) -> None:
        self.cancel()
        started = self.now()
        if self.shown:
            self._show(name, started)
        else:
            self.pending = self.timer(self.after, lambda: self._show(name, started))

    def done(self) -> None:
        self.cancel()
        if self.shown:
            print(f"{self.label}: done in {clock(self.now() - self.start)}", file=self.stream, flush=True)


@contextlib.contextmanager
def steps(label: str, stream: TextIO | None = None) -> Iterator[Callable[[str], None]]:
    """``step(name)`` announces each step of a long command whose steps are not alike (reading a
    log, fitting, scoring, the report): a status line with a spinner on a terminal, plain lines
    elsewhere (from the first step that lasts two seconds on); the total time at the end."""
    stream = sys.stderr if stream is None else stream
    plain = PlainSteps(label, stream)
    if not stream.isatty():
        try:
            yield plain.step
        finally:
            plain.cancel()
        plain.done()
        return
    from rich.console import Console

    console = Console(file=stream)
    with console.status(label) as status:
        def step(name: str) -> None:
            status.update(f"{label}: {name} ({clock(plain.now() - plain.start)} elapsed)")

        yield step
    console.print(f"{label}: done in {clock(plain.now() - plain.start)}")
