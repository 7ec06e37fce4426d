"""Domain errors shared by every stage; the faces map them to exit codes and RFC 9457 bodies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class BatteryloopError(Exception):
    """Base of every error the platform raises on purpose (bad input, conflicts, not found)."""

    status = 400
    title = "Bad request"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ValidationFailed(BatteryloopError):
    """Input that breaks a rule; ``location`` names the file, row or field."""

    status = 422
    title = "Invalid input"

    def __init__(self, message: str, *, location: str | None = None, **kw: Any) -> None:
        super().__init__(f"{location}: {message}" if location else message, **kw)
        self.location = location


class NotFound(BatteryloopError):
    status = 404
    title = "Not found"


class Conflict(BatteryloopError):
    status = 409
    title = "Conflict"


class IllegalTransition(Conflict):
    title = "Illegal lifecycle transition"


class ReadOnly(Conflict):
    title = "Record is read-only"


@dataclass
class RowProblem:
    """One problem in one row of an imported file."""

    row: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", field '{self.field}'" if self.field else "")
        return f"{where}: {self.message}"


@dataclass
class ImportRejected(BatteryloopError):
    """A file with invalid rows; nothing from it was written."""

    path: str
    problems: list[RowProblem] = field(default_factory=list)

    def __post_init__(self) -> None:
        first = self.problems[0] if self.problems else None
        msg = f"{self.path}: {len(self.problems)} invalid row(s); nothing was written"
        if first:
            msg += f" (first: {first})"
        BatteryloopError.__init__(self, msg)

    status = 422
    title = "Import rejected"
