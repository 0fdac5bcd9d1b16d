"""The vectorised agent-based engine: population, per-run state, calendar, mechanisms.

On Linux/glibc the engine asks the allocator to keep large freed blocks in the heap
(``mallopt``): each month's step allocates many population-sized temporaries, and getting
them as fresh ``mmap`` pages costs a page fault per 4 KiB, about a fifth of the run time at a
million agents (measured with ``benchmarks/engine_speed.py``). Memory freed stays with the
process for reuse; peak memory is unchanged in kind (see README for the figures).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys


def _tune_allocator() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # arrays under 32 MiB come from the heap
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024)
    mallopt(M_TOP_PAD, 64 * 1024 * 1024)


_tune_allocator()
