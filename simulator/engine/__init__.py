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
import hashlib
import os
import sys
from pathlib import Path


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


def _drop_stale_compiled_code() -> None:
    """Numba caches a compiled function on disk keyed on its own file only (``cache=True``),
    yet the passes of kernels.py inline the mechanisms' compiled functions and agent.py's
    primitives (and freeze the module constants they read): edit one of those and the cached
    passes would keep the old machine code. So the engine's sources are hashed, and when the
    hash differs from the one stamped in ``__pycache__`` the engine's cached machine code
    (``*.nbi``, ``*.nbc`` next to the sources) is deleted: it is compiled again on first use.
    A cache elsewhere (``NUMBA_CACHE_DIR``) is not seen: delete it by hand after such an edit."""
    root = Path(__file__).resolve().parent
    try:
        sources = sorted(root.rglob("*.py"))
        digest = hashlib.sha256()
        for p in sources:
            digest.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
        stamp = root / "__pycache__" / "compiled_sources.sha256"
        if stamp.is_file() and stamp.read_text() == digest.hexdigest():
            return
        for cache in root.rglob("__pycache__"):
            for f in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
                f.unlink(missing_ok=True)
        stamp.parent.mkdir(exist_ok=True)
        tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")  # a reader never sees half a stamp
        tmp.write_text(digest.hexdigest())
        os.replace(tmp, stamp)
    except OSError:  # a read-only install: Numba caches elsewhere or not at all
        return


_drop_stale_compiled_code()
