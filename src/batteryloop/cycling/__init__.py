"""cycling stage: read every common battery-tester format into one canonical (BDF) table.

``read(path)`` detects the format from the file's content, parses it, normalises units, current
sign, time resets and cycle numbers (each step recorded in the metadata), and validates the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from batteryloop.cycling.detect import detect
from batteryloop.cycling.errors import CyclerFileError
from batteryloop.cycling.schema import COLUMNS, SCHEMA, CyclerMetadata, StepType
from batteryloop.cycling.validate import Finding, ValidationReport, validate

if TYPE_CHECKING:
    import pandas as pd


def read(path: str | Path, *, reader: str | None = None, strict: bool = False
         ) -> tuple[pl.DataFrame, CyclerMetadata]:
    """Read a tester file into the canonical table; findings land in ``meta.findings``.

    ``reader`` forces a format by name (see ``batteryloop.cycling.readers.READERS``). With
    ``strict=True`` an error-severity finding raises :class:`CyclerFileError`.
    """
    from batteryloop.cycling.readers import READERS

    p = Path(path)
    chosen = READERS[reader] if reader else detect(p)
    df, meta = chosen.read(p)
    report = validate(df, meta)
    meta.findings = list(report.findings)
    if strict and report.errors:
        first = report.errors[0]
        raise CyclerFileError(p, first.message, row=first.row)
    return df, meta


def read_pandas(path: str | Path, **kw: object) -> tuple[pd.DataFrame, CyclerMetadata]:
    """``read`` for pandas users (needs pandas; step_type becomes a categorical)."""
    df, meta = read(path, **kw)  # type: ignore[arg-type]
    return df.to_pandas(), meta


__all__ = [
    "COLUMNS",
    "SCHEMA",
    "CyclerFileError",
    "CyclerMetadata",
    "Finding",
    "StepType",
    "ValidationReport",
    "detect",
    "read",
    "read_pandas",
    "validate",
]
