"""Validation report for a canonical cycling table: findings with severity, row and column.

Rows are 0-based indices into the canonical table. Nothing here changes the data; the readers
and :mod:`batteryloop.cycling.normalize` do that and say so in the metadata.

The voltage window is a convention for single cells, not a law: -0.5 V allows a cell driven
slightly negative on over-discharge or a sign-swapped lead, 10 V is above any single
electrochemical cell. Modules and packs need a wider window (pass ``voltage_range``).
"""

from __future__ import annotations

import functools
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


def _first_and_count(mask: pl.Expr, name: str) -> list[pl.Expr]:
    """First row where ``mask`` holds (null if none) and how many rows it holds in."""
    return [mask.arg_true().first().alias(f"{name}_row"), mask.sum().alias(f"{name}_n")]


def _found(stats: dict, name: str) -> tuple[int, int]:
    n = int(stats[f"{name}_n"] or 0)
    return (int(stats[f"{name}_row"]) if n else -1), n


@functools.lru_cache(maxsize=8)
def _checks(lo: float, hi: float) -> tuple[pl.Expr, ...]:
    """Every check's figures, computed in one query over the table (built once per window)."""
    t, v, i = pl.col("test_time_second"), pl.col("voltage_volt"), pl.col("current_ampere")
    d = t.diff()
    limit = pl.max_horizontal(i.abs().max().fill_null(0.0) * 1e-3, pl.lit(1e-9))
    grow = (pl.col("cycle_charging_capacity_ah").diff() > 0).fill_null(False) & (i.abs() > limit)
    out = [*_first_and_count((d < 0).fill_null(False), "back"),
           *_first_and_count((d == 0).fill_null(False), "dup"),
           ((t.max().fill_null(0.0)) - (t.min().fill_null(0.0))).alias("span"),
           *_first_and_count(((v < lo) | (v > hi)).fill_null(False), "volt"),
           grow.sum().alias("grow_n"), *_first_and_count(grow & (i < 0), "wrong")]
    out += [(pl.col(c).is_null() | pl.col(c).is_nan()).any().alias(f"nan_{c}") for c in REQUIRED]
    return tuple(out)


def _time_checks(stats: dict) -> list[Finding]:
    out: list[Finding] = []
    row, n = _found(stats, "back")
    if n:
        out.append(Finding("error", "time_not_monotonic",
                           f"test time goes backwards {n} time(s)", row, "test_time_second", n))
    row, n = _found(stats, "dup")
    if n:
        out.append(Finding("warning", "time_duplicated",
                           f"{n} row(s) repeat the previous test time", row, "test_time_second", n))
    span = stats["span"]
    if span > MAX_TEST_SECONDS:
        out.append(Finding("warning", "time_span_implausible", f"test spans {span / 3.15576e7:.0f} "
                           "years: the time column is probably not in seconds", None,
                           "test_time_second"))
    return out


def _null_runs(df: pl.DataFrame, stats: dict) -> list[Finding]:
    out: list[Finding] = []
    for col in REQUIRED:
        if not stats[f"nan_{col}"]:
            continue
        s = df[col]
        bad = s.is_null() | s.is_nan()
        runs = df.select(bad.alias("b"), bad.rle_id().alias("r")).filter(pl.col("b"))
        longest = runs.group_by("r").len()["len"].max()
        idx = bad.arg_true()
        row, n = int(idx[0]), len(idx)
        out.append(Finding("warning", "nan_run", f"{n} missing/NaN value(s), longest run "
                           f"{longest} row(s)", row, col, n))
    return out


def _sign_check(stats: dict) -> list[Finding]:
    n_grow = int(stats["grow_n"] or 0)
    if n_grow == 0:
        return []
    row, n = _found(stats, "wrong")
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
    lo, hi = voltage_range
    stats = df.select(_checks(lo, hi)).row(0, named=True)
    findings += _time_checks(stats)
    row, n = _found(stats, "volt")
    if n:
        findings.append(Finding("error", "voltage_out_of_range", f"{n} voltage(s) outside "
                                f"{lo}..{hi} V (single-cell convention)", row, "voltage_volt", n))
    findings += _null_runs(df, stats)
    findings += _sign_check(stats)
    return ValidationReport(findings)
