"""PEC tester CSV export: ``Key:,value`` preamble, '#RESULTS CHECK' block, then the data table.

Units are in the header (mV, mA, mAh). The two '(mWh)' columns are named 'Charge Capacity (mWh)'
and 'Discharge Capacity (mWh)' but hold energy: their unit says so, so they map to energies.
PEC signs current (discharge negative).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from batteryloop.cycling.errors import CyclerFileError
from batteryloop.cycling.readers._common import load, new_meta, text_of
from batteryloop.cycling.readers._text import (
    cut_partial_last_line,
    find_line,
    head_text,
    line_at,
    line_offset,
    looks_binary,
    read_table,
)
from batteryloop.cycling.readers._units import factor, split_unit
from batteryloop.cycling.readers.registry import Reader, register
from batteryloop.cycling.schema import CyclerMetadata

_HEADER = b"Test,Cell,Rack,"


def sniff(head: bytes, path: Path) -> float:
    if looks_binary(head):
        return 0.0
    text = head_text(head)
    if "TestRegime Name:" in text or ("Load On Time (Seconds)" in text and "Test,Cell," in text):
        return 0.9
    return 0.0


def _pick(header: list[str]) -> dict[str, tuple[str, str | None]]:
    picks: dict[str, tuple[str, str | None]] = {}
    for col in header:
        base, unit = split_unit(col)
        b = base.lower()
        target: tuple[str, str | None] | None = None
        if b == "total time":
            target = ("test_time_second", "s")
        elif b == "voltage":
            target = ("voltage_volt", "V")
        elif b == "current":
            target = ("current_ampere", "A")
        elif b in ("charge capacity", "discharge capacity") and unit:
            direction = "charging" if b.startswith("charge") else "discharging"
            kind = "Wh" if "wh" in unit.lower() else "Ah"
            target = (f"{direction}_{'energy_wh' if kind == 'Wh' else 'capacity_ah'}", kind)
        elif b == "step":
            target = ("step_id", None)
        elif b == "cycle":
            target = ("cycle_count", None)
        elif b == "ambient temperature":
            target = ("ambient_temperature_celsius", "degC")
        elif b == "cell surface temperature":
            target = ("temperature_t1_celsius", "degC")
        if target:
            picks[col] = target
    return picks


def parse(path: Path) -> tuple[pl.DataFrame, CyclerMetadata]:
    path = Path(path)
    raw = load(path)
    data = text_of(raw)
    start = find_line(data, _HEADER, limit=200)
    if start is None:
        raise CyclerFileError(path, "no PEC data header ('Test,Cell,Rack,...') found")
    meta = new_meta(path, raw, "PEC", "pec_csv")
    offset = line_offset(data, start)
    pre = data[:offset].decode("utf-8", "replace")
    m = re.search(r"Start Time:,(\d+/\d+/\d+ \d+:\d+:\d+)", pre)
    if m:
        meta.start_time_unix = datetime.strptime(m.group(1), "%m/%d/%Y %H:%M:%S").replace(
            tzinfo=UTC).timestamp()
    m = re.search(r"TestRegime Name:,([^\r\n]*)", pre)
    meta.extra["regime"] = m.group(1).strip() if m else None
    body, cut = cut_partial_last_line(data, b",", offset)
    if cut:
        meta.truncated_at_row = start + body.count(b"\n", offset) + 1
    header = line_at(body, offset).split(",")
    picks = _pick(header)
    overrides = {c: pl.Float64 for c in picks}
    df = read_table(path, body, sep=",", first_line=start + 1, overrides=overrides,
                    columns=list(picks) + ["Real Time", "Position", "Cell ID"], skip_lines=start)
    exprs = []
    for col, (target, kind) in picks.items():
        f = factor(split_unit(col)[1], kind) if kind else 1.0
        if f != 1.0:
            meta.note(f"{split_unit(col)[1]} -> {kind} ({col})")
        exprs.append((pl.col(col) * f).alias(target))
    unix = pl.col("Real Time").str.strptime(pl.Datetime("ms"), "%m/%d/%Y %H:%M:%S", strict=False)
    exprs.append((unix.dt.epoch("ms") / 1000.0).alias("unix_time_second"))
    meta.channel = str(df["Position"][0]) if df.height else None
    cell = df["Cell ID"].drop_nulls()
    meta.cell_id = str(cell[0]) if len(cell) else None
    meta.note("'Charge/Discharge Capacity (mWh)' columns read as energies (their unit is mWh)")
    return df.select(exprs), meta


READER = register(Reader("pec_csv", "PEC", sniff, parse, (".csv",)))
