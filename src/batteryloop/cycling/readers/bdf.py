"""Battery Data Format CSV in either header style: machine names (``test_time_second``) or
preferred labels with units (``Test Time / h``), converted to the canonical units.

Before BDF 1.2, files used ``step_index`` for the program step (the Landt and batmo files here do);
BDF 1.2 made ``step_index`` a within-step row counter and ``step_id`` the program step. A column
named step_index is read as step_id unless it counts rows (most consecutive differences are 1).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from batteryloop.cycling.readers._common import load, new_meta, text_of
from batteryloop.cycling.readers._text import (
    cut_partial_last_line,
    first_line,
    looks_binary,
    read_table,
)
from batteryloop.cycling.readers._units import factor, split_unit, step_type_from_text
from batteryloop.cycling.readers.registry import Reader, register
from batteryloop.cycling.schema import COLUMNS, PREFERRED_LABELS, CyclerMetadata

# machine name -> canonical; older/alternative BDF spellings included
_MACHINE = {name: name for name in COLUMNS} | {
    "step_index": "_step_index", "charging_capacity_ah": "charging_capacity_ah",
    "surface_temperature_celsius": "temperature_t1_celsius",
}
# preferred-label base (lower) -> (canonical, unit kind)
_LABELS = {label.split(" / ")[0].lower(): (name, label.split(" / ")[1] if " / " in label else None)
           for label, name in PREFERRED_LABELS.items()} | {
    "step index": ("_step_index", "1"), "surface temperature t1": ("temperature_t1_celsius", "degC"),
    "protocol name": (None, None),
    # labels seen in files that predate the 'Charging/Discharging' wording
    "charge capacity": ("charging_capacity_ah", "Ah"), "discharge capacity": ("discharging_capacity_ah", "Ah"),
    "charge energy": ("charging_energy_wh", "Wh"), "discharge energy": ("discharging_energy_wh", "Wh"),
}
_KIND = {"s": "s", "V": "V", "A": "A", "Ah": "Ah", "Wh": "Wh", "degC": "degC"}


def _header(head: bytes) -> list[str]:
    return [c.strip() for c in first_line(head).split(",")]


def sniff(head: bytes, path: Path) -> float:
    if looks_binary(head):
        return 0.0
    cols = _header(head)
    if {"test_time_second", "voltage_volt", "current_ampere"} <= set(cols):
        return 0.95
    bases = {split_unit(c)[0].lower() for c in cols if " / " in c}
    if {"test time", "voltage", "current"} <= bases:
        return 0.9
    return 0.0


def _plan(cols: list[str], meta: CyclerMetadata) -> dict[str, tuple[str, float]]:
    plan: dict[str, tuple[str, float]] = {}
    for col in cols:
        if col in _MACHINE:
            plan[col] = (_MACHINE[col], 1.0)
            continue
        base, unit = split_unit(col)
        target, kind = _LABELS.get(base.lower(), (None, None))
        if target is None:
            continue
        f = factor(unit, _KIND[kind]) if kind in _KIND else 1.0
        if f != 1.0:
            meta.note(f"{unit} -> {_KIND[kind]} ({col})")
        plan[col] = (target, f)
    return plan


def parse(path: Path) -> tuple[pl.DataFrame, CyclerMetadata]:
    path = Path(path)
    raw = load(path)
    body, cut = cut_partial_last_line(text_of(raw), b",")
    meta = new_meta(path, raw, "unknown", "bdf_csv")
    if cut:
        meta.truncated_at_row = body.count(b"\n") + 1
    plan = _plan(_header(body[:65536]), meta)
    numeric = {c: pl.Float64 for c, (t, _) in plan.items() if t != "step_type"}
    df = read_table(path, body, sep=",", first_line=1, overrides=numeric, columns=list(plan))
    exprs = []
    for col, (target, f) in plan.items():
        if target == "step_type":
            exprs.append(step_type_from_text(df, col).alias(target))
        else:
            exprs.append((pl.col(col) * f).alias(target) if f != 1.0 else pl.col(col).alias(target))
    df = df.select(exprs)
    if "_step_index" in df.columns:
        counts_rows = df.select((pl.col("_step_index").diff() == 1).mean()).item() or 0.0
        if counts_rows < 0.5 and "step_id" not in df.columns:
            df = df.rename({"_step_index": "step_id"})
            meta.note("step_index holds program step numbers (pre-1.2 BDF usage): read as step_id")
        else:
            df = df.drop("_step_index")
    stem = path.name.split(".")[0]
    parts = stem.split("__")
    if len(parts) >= 2:
        meta.cell_id = parts[1]
        meta.tester = parts[-1] if len(parts) >= 4 else "unknown"
    return df, meta


READER = register(Reader("bdf_csv", "BDF", sniff, parse, (".bdf.csv", ".csv", ".bdf")))
