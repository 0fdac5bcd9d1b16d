"""Writing results safely: atomically, never over an existing run unless asked.

A run's files are written into a temporary directory beside the destination and moved into
place with one rename at the end, so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from simulator.errors import InputErrors


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a text file atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes owner-only files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


#: Files that mark a directory as a previous loyalty-sim output (a run or a back-test writes
#: ``manifest.json``, a study ``study.json``): only such a directory may be replaced.
MARKERS = ("manifest.json", "study.json")


def check_destination(out: str | Path, force: bool) -> Path:
    """Refuse an existing output directory unless ``force`` (checked before any work), and even
    with ``force`` unless it is empty or holds a previous loyalty-sim output: replacing a
    directory deletes what is in it, and a folder the user keeps other files in is not ours."""
    out = Path(out)
    if out.exists() and not force:
        raise InputErrors.one(str(out), "output directory already exists (use --force to replace it, or choose another --out)")
    if out.exists() and not out.is_dir():
        raise InputErrors.one(str(out), "exists and is not a directory (expected a directory for the run's results)")
    if out.exists() and any(out.iterdir()) and not any((out / m).is_file() for m in MARKERS):
        raise InputErrors.one(str(out), "--force replaces only a previous loyalty-sim output, and this directory holds "
                                        f"other files (no {' or '.join(MARKERS)}): nothing was deleted; choose another "
                                        "--out or empty it yourself")
    return out


@contextlib.contextmanager
def staged_directory(out: str | Path, force: bool) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``out`` in one step.

    On any exception the temporary directory is removed and ``out`` is left as it was.
    """
    out = check_destination(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes an owner-only directory
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
