"""Errors a user can fix: they name the file, the line and the field where known."""

from __future__ import annotations


class InputError(Exception):
    """Bad input (spec, dataset, prompt file, flag). The CLI exits 2 with ``str(error)``."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        field = f"field '{self.field}': " if self.field else ""
        return f"{where}{field}{self.message}"


class NotFound(InputError):
    """A named thing (prompt version, experiment, cell) does not exist."""


class StoreError(Exception):
    """The store cannot be used as configured (bad URL, unreachable, schema behind). Exit 1."""
