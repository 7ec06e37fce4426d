"""The one error a cycler file that cannot be read raises."""

from __future__ import annotations

from pathlib import Path

from batteryloop.errors import ValidationFailed


class CyclerFileError(ValidationFailed):
    """A tester file that cannot be read; the message names the file and, when known, the row.

    Rows are 1-based line numbers in the file for text formats and 1-based record numbers for
    binary ones, so a person can open the file and look.
    """

    def __init__(self, path: str | Path, message: str, *, row: int | None = None) -> None:
        location = str(path) if row is None else f"{path}, row {row}"
        super().__init__(message, location=location, details={"path": str(path), "row": row})
        self.path = str(path)
        self.row = row
