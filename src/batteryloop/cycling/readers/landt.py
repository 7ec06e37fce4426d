"""Landt CSV export as published by SINTEF with the BDF test files: a short 'key:,value' preamble
(cell model, cell id, nominal capacity) then one header line with units in the names
(``test_time_s``, ``current_A``, ``discharge_capacity_Ah`` ...). Capacities restart each step.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from batteryloop.cycling.errors import CyclerFileError
from batteryloop.cycling.readers._common import load, new_meta, text_of
from batteryloop.cycling.readers._text import (
    cut_partial_last_line,
    find_line,
    line_offset,
    looks_binary,
    read_table,
)
from batteryloop.cycling.readers._units import step_type_from_text
from batteryloop.cycling.readers.registry import Reader, register
from batteryloop.cycling.schema import CyclerMetadata

_HEADER = b"channel_index,cycle_index,step_index,"
_MAP = {
    "test_time_s": "test_time_second", "voltage_V": "voltage_volt", "current_A": "current_ampere",
    "cycle_index": "cycle_count", "step_index": "step_id",
    "charge_capacity_Ah": "charging_capacity_ah", "discharge_capacity_Ah": "discharging_capacity_ah",
    "charge_energy_Wh": "charging_energy_wh", "discharge_energy_Wh": "discharging_energy_wh",
}


def sniff(head: bytes, path: Path) -> float:
    if looks_binary(head):
        return 0.0
    return 0.9 if _HEADER in head[:8192] and b"test_time_s" in head[:8192] else 0.0


def parse(path: Path) -> tuple[pl.DataFrame, CyclerMetadata]:
    path = Path(path)
    raw = load(path)
    data = text_of(raw)
    start = find_line(data, _HEADER, limit=100)
    if start is None:
        raise CyclerFileError(path, "no Landt header line ('channel_index,cycle_index,...') found")
    meta = new_meta(path, raw, "Landt", "landt_csv")
    offset = line_offset(data, start)
    pre = data[:offset].decode("utf-8", "replace")
    m = re.search(r"cell id:\s*,([^,\r\n]+)", pre)
    meta.cell_id = m.group(1).strip() if m else None
    body, cut = cut_partial_last_line(data, b",", offset)
    if cut:
        meta.truncated_at_row = start + body.count(b"\n", offset) + 1
    overrides = {c: pl.Float64 for c in _MAP}
    df = read_table(path, body, sep=",", first_line=start + 1, overrides=overrides,
                    columns=list(overrides) + ["step_name", "date_time_iso_string", "channel_index"],
                    skip_lines=start)
    unix = pl.col("date_time_iso_string").str.strptime(pl.Datetime("ms"), "%m/%d/%Y %H:%M:%S",
                                                       strict=False)
    meta.channel = str(df["channel_index"][0]) if df.height else None
    df = df.select([pl.col(c).alias(t) for c, t in _MAP.items()] + [
        step_type_from_text(df, "step_name").alias("step_type"),
        (unix.dt.epoch("ms") / 1000.0).alias("unix_time_second"),
    ])
    meta.note("date_time (tester local clock) taken as UTC for unix time")
    return df, meta


READER = register(Reader("landt_csv", "Landt", sniff, parse, (".csv",)))

