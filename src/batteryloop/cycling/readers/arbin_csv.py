"""Arbin CSV exports (MITS Pro 'Channel' sheets saved as CSV, as in the MIT-Stanford-TRI data).

Header names carry the unit either not at all (``Current``: A, ``Charge_Capacity``: Ah) or in
parentheses (``Current(A)``). ``DateTime`` is Unix seconds in these exports. Arbin reports current
charge-positive. A ``<stem>_Metadata.csv`` sidecar, when present, gives the channel (IV_Ch_ID is
0-based: the CH33 file says 32), the schedule, the item id and the start time.
"""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from batteryloop.cycling.readers._common import load, new_meta, text_of
from batteryloop.cycling.readers._text import (
    cut_partial_last_line,
    first_line,
    looks_binary,
    read_table,
)
from batteryloop.cycling.readers._units import factor, split_unit
from batteryloop.cycling.readers.registry import Reader, register
from batteryloop.cycling.schema import CyclerMetadata

# Arbin name (unit-less) -> (canonical column, canonical unit)
_MAP = {
    "test_time": ("test_time_second", "s"),
    "datetime": ("unix_time_second", "s"),
    "date_time": ("unix_time_second", "s"),
    "step_index": ("step_id", None),
    "cycle_index": ("cycle_count", None),
    "current": ("current_ampere", "A"),
    "voltage": ("voltage_volt", "V"),
    "charge_capacity": ("charging_capacity_ah", "Ah"),
    "discharge_capacity": ("discharging_capacity_ah", "Ah"),
    "charge_energy": ("charging_energy_wh", "Wh"),
    "discharge_energy": ("discharging_energy_wh", "Wh"),
    "temperature": ("temperature_t1_celsius", "degC"),
}
_DEFAULT_UNITS = {"s": "s", "V": "V", "A": "A", "Ah": "Ah", "Wh": "Wh", "degC": "degC"}


def sniff(head: bytes, path: Path) -> float:
    if looks_binary(head):
        return 0.0
    names = {split_unit(c)[0].lower() for c in first_line(head).split(",")}
    need = {"data_point", "test_time", "current", "voltage"}
    if need <= names and {"charge_capacity", "discharge_capacity"} <= names:
        return 0.9
    return 0.0


def _sidecar(path: Path, meta: CyclerMetadata) -> None:
    side = path.with_name(path.stem + "_Metadata.csv")
    if not side.exists():
        return
    try:  # one header and one row: the csv module, not a polars parse (a fixed cost per file)
        with side.open(newline="", encoding="utf-8-sig") as fh:
            lines = csv.reader(fh)
            names, values = [n.lower() for n in next(lines)], next(lines)
        row = {n: v or None for n, v in zip(names, values)}  # an empty field is missing
    except Exception:  # noqa: BLE001 - a broken sidecar must not stop the data from loading
        meta.extra["sidecar_error"] = str(side)
        return
    meta.extra["sidecar"] = str(side)
    if row.get("iv_ch_id") not in (None, ""):
        meta.channel = str(int(float(row["iv_ch_id"])) + 1)
        meta.extra["iv_ch_id"] = int(float(row["iv_ch_id"]))
    meta.cell_id = row.get("item_id") or None
    meta.extra["schedule"] = row.get("schedule_file_name")
    if row.get("first_start_datetime"):
        meta.start_time_unix = float(row["first_start_datetime"])


def parse(path: Path) -> tuple[pl.DataFrame, CyclerMetadata]:
    path = Path(path)
    raw = load(path)
    body, cut = cut_partial_last_line(text_of(raw), b",")
    meta = new_meta(path, raw, "Arbin", "arbin_csv")
    if cut:
        meta.truncated_at_row = body.count(b"\n") + 1
    header = body[: body.find(b"\n")].decode("utf-8", "replace").strip().split(",")
    picks: dict[str, tuple[str, float]] = {}
    for col in header:
        base, unit = split_unit(col)
        hit = _MAP.get(base.lower())
        if hit and hit[0] not in {v[0] for v in picks.values()}:
            target, canon = hit
            picks[col] = (target, factor(unit, canon) if canon else 1.0)
            if picks[col][1] != 1.0:
                meta.note(f"{unit} -> {canon} ({col})")
    overrides = {c: pl.Float64 for c in picks}
    df = read_table(path, body, sep=",", first_line=1, overrides=overrides, columns=list(picks))
    df = df.select([(pl.col(c) * f).alias(t) if f != 1.0 else pl.col(c).alias(t)
                    for c, (t, f) in picks.items()])
    _sidecar(path, meta)
    return df, meta


READER = register(Reader("arbin_csv", "Arbin", sniff, parse, (".csv",)))
__all__ = ["READER"]
