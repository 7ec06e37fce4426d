"""Validation report for a canonical cycling table: findings with severity, row and column.

Rows are 0-based indices into the canonical table. Nothing here changes the data; the readers
and :mod:`batteryloop.cycling.normalize` do that and say so in the metadata.

The voltage window is a convention for single cells, not a law: -0.5 V allows a cell driven
slightly negative on over-discharge or a sign-swapped lead, 10 V is above any single
electrochemical cell. Modules and packs need a wider window (pass ``voltage_range``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from batteryloop.cycling.schema import REQUIRED, CyclerMetadata

Severity = Literal["error", "warning", "info"]
DEFAULT_VOLTAGE_RANGE = (-0.5, 10.0)
#: Share of charging rows with clearly negative current above which the sign is contradictory.
SIGN_CONTRADICTION_SHARE = 0.05
#: Ten years: no cycling test runs longer, so a longer span means a wrong time unit.
MAX_TEST_SECONDS = 10 * 3.15576e7


@dataclass(frozen=True)
class Finding:
    """One problem: what, how bad, where (first row) and how many rows share it."""

    severity: Severity
    code: str
    message: str
    row: int | None = None
    column: str | None = None
    count: int = 1

    def __str__(self) -> str:
        parts = [f"row {self.row}"] if self.row is not None else []
        parts += [f"column {self.column}"] if self.column else []
        where = f" ({', '.join(parts)})" if parts else ""
        return f"{self.severity}: {self.code}: {self.message}{where}"


@dataclass
class ValidationReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}


def _first(mask: pl.Series) -> tuple[int, int]:
    idx = mask.arg_true()
    return (int(idx[0]) if len(idx) else -1), len(idx)


def _time_checks(df: pl.DataFrame) -> list[Finding]:
    out: list[Finding] = []
    d = df["test_time_second"].diff()
    row, n = _first((d < 0).fill_null(False))
    if n:
        out.append(Finding("error", "time_not_monotonic",
                           f"test time goes backwards {n} time(s)", row, "test_time_second", n))
    row, n = _first((d == 0).fill_null(False))
    if n:
        out.append(Finding("warning", "time_duplicated",
                           f"{n} row(s) repeat the previous test time", row, "test_time_second", n))
    span = (df["test_time_second"].max() or 0.0) - (df["test_time_second"].min() or 0.0)
    if span > MAX_TEST_SECONDS:
        out.append(Finding("warning", "time_span_implausible", f"test spans {span / 3.15576e7:.0f} "
                           "years: the time column is probably not in seconds", None,
                           "test_time_second"))
    return out


def _null_runs(df: pl.DataFrame) -> list[Finding]:
    out: list[Finding] = []
    for col in REQUIRED:
        s = df[col]
        bad = s.is_null() | s.is_nan()
        if not bad.any():
            continue
        runs = df.select(bad.alias("b"), bad.rle_id().alias("r")).filter(pl.col("b"))
        longest = runs.group_by("r").len()["len"].max()
        row, n = _first(bad)
        out.append(Finding("warning", "nan_run", f"{n} missing/NaN value(s), longest run "
                           f"{longest} row(s)", row, col, n))
    return out


def _sign_check(df: pl.DataFrame) -> list[Finding]:
    i = df["current_ampere"]
    limit = max(float(i.abs().max() or 0.0) * 1e-3, 1e-9)
    grow = df.select((pl.col("cycle_charging_capacity_ah").diff() > 0).fill_null(False)
                     .alias("g"))["g"] & (i.abs() > limit)
    n_grow = int(grow.sum())
    if n_grow == 0:
        return []
    wrong = grow & (i < 0)
    row, n = _first(wrong)
    if n > SIGN_CONTRADICTION_SHARE * n_grow:
        return [Finding("error", "current_sign_contradiction",
                        f"current is negative in {n} of {n_grow} rows where charge capacity "
                        "grows (convention: charge positive)", row, "current_ampere", n)]
    return []


def validate(df: pl.DataFrame, meta: CyclerMetadata | None = None, *,
             voltage_range: tuple[float, float] = DEFAULT_VOLTAGE_RANGE) -> ValidationReport:
    """Check a canonical table; see the module docstring for the voltage-window convention."""
    findings: list[Finding] = []
    missing = [c for c in REQUIRED if c not in df.columns or df[c].null_count() == df.height]
    for col in missing:
        findings.append(Finding("error", "missing_column", "required column has no values",
                                None, col))
    if meta is not None and meta.truncated_at_row is not None:
        findings.append(Finding("warning", "truncated_file", "last line of the file was cut "
                                f"mid-write (file line {meta.truncated_at_row}); it was dropped",
                                df.height - 1 if df.height else None, None))
    if missing:
        return ValidationReport(findings)
    findings += _time_checks(df)
    lo, hi = voltage_range
    v = df["voltage_volt"]
    row, n = _first(((v < lo) | (v > hi)).fill_null(False))
    if n:
        findings.append(Finding("error", "voltage_out_of_range", f"{n} voltage(s) outside "
                                f"{lo}..{hi} V (single-cell convention)", row, "voltage_volt", n))
    findings += _null_runs(df)
    findings += _sign_check(df)
    return ValidationReport(findings)
