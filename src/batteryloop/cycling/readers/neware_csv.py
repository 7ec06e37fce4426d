"""Neware BTS CSV export (one row per record, 'Cycle Index', 'Step Type', 'Chg. Cap.(Ah)' ...).

Units are in the header's parentheses (A or mA, Ah or mAh); 'Cumulative Time' is the test time
as H:MM:SS where hours run past 24. Neware signs current (discharge negative).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from batteryloop.cycling.errors import CyclerFileError
from batteryloop.cycling.readers._common import load, new_meta, text_of
from batteryloop.cycling.readers._text import (
    cut_partial_last_line,
    first_line,
    line_at,
    looks_binary,
    read_table,
)
from batteryloop.cycling.readers._units import (
    factor,
    hms_to_seconds,
    split_unit,
    step_type_from_text,
)
from batteryloop.cycling.readers.registry import Reader, register
from batteryloop.cycling.schema import CyclerMetadata

# base name (lower) -> (canonical, unit kind)
_NUMERIC = {
    "current": ("current_ampere", "A"),
    "voltage": ("voltage_volt", "V"),
    "chg. cap.": ("charging_capacity_ah", "Ah"),
    "dchg. cap.": ("discharging_capacity_ah", "Ah"),
    "chg. energy": ("charging_energy_wh", "Wh"),
    "dchg. energy": ("discharging_energy_wh", "Wh"),
    "cycle index": ("cycle_count", None),
    "step index": ("step_id", None),
}


def sniff(head: bytes, path: Path) -> float:
    if looks_binary(head):
        return 0.0
    first = first_line(head).lower()
    if "cycle index" in first and "step type" in first and "dchg. cap" in first:
        return 0.9
    return 0.0


def parse(path: Path) -> tuple[pl.DataFrame, CyclerMetadata]:
    path = Path(path)
    raw = load(path)
    body, cut = cut_partial_last_line(text_of(raw), b",")
    meta = new_meta(path, raw, "Neware", "neware_csv")
    if cut:
        meta.truncated_at_row = body.count(b"\n") + 1
    header = line_at(body, 0).split(",")
    exprs: list[pl.Expr] = []
    overrides: dict[str, pl.DataType] = {}
    for col in header:
        base, unit = split_unit(col)
        hit = _NUMERIC.get(base.strip().lower())
        if not hit:
            continue
        target, kind = hit
        f = factor(unit, kind) if kind else 1.0
        if f != 1.0:
            meta.note(f"{unit} -> {kind} ({col})")
        overrides[col] = pl.Float64
        exprs.append((pl.col(col) * f).alias(target))
    for need in ("Cumulative Time", "Step Type", "Date"):
        if need not in header:
            raise CyclerFileError(path, f"Neware CSV without a {need!r} column", row=1)
    df = read_table(path, body, sep=",", first_line=1, overrides=overrides,
                    columns=list(overrides) + ["Cumulative Time", "Step Type", "Date"])
    unix = pl.col("Date").str.strptime(pl.Datetime("ms"), "%Y-%m-%d %H:%M:%S", strict=False)
    df = df.select(exprs + [
        hms_to_seconds(df, "Cumulative Time").alias("test_time_second"),
        step_type_from_text(df, "Step Type").alias("step_type"),
        (unix.dt.epoch("ms") / 1000.0).alias("unix_time_second"),
    ])
    meta.note("test time from 'Cumulative Time' H:MM:SS -> seconds; Date taken as UTC")
    return df, meta


READER = register(Reader("neware_csv", "Neware", sniff, parse, (".csv",)))
