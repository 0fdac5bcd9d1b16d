"""Errors about user input, reported as one line each: ``path:line: field: message``.

Every command catches :class:`InputErrors`, prints each line to stderr and exits with
code 2, without a traceback and without writing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable


@dataclass(frozen=True, order=True)
class InputError:
    """One problem in one input file.

    Attributes
    ----------
    path : str
        The file, as the user named it (relative paths stay relative).
    line : int or None
        1-based line in the file, when known.
    field : str
        Dotted path of the field (``tiers.levels.1.threshold``); empty for the whole file.
    message : str
        What is wrong, with what was expected.
    """

    path: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class InputErrors(Exception):
    """One or more :class:`InputError`; raised at the edge, caught by the CLI."""

    def __init__(self, errors: Iterable[InputError]):
        self.errors: list[InputError] = list(errors)
        if not self.errors:
            raise ValueError("InputErrors needs at least one error")
        super().__init__("\n".join(str(e) for e in self.errors))

    @classmethod
    def one(cls, path: str | Path, message: str, *, line: int | None = None, field: str = "") -> "InputErrors":
        return cls([InputError(str(path), line, field, message)])
