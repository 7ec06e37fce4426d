"""Neware binary files: ``.ndax`` (a zip of XML and binary records) and legacy ``.nda``.

Parsed by the PyPI package NewareNDA (BSD-3-Clause, d-cogswell/NewareNDA), which returns
pandas; we take its columns (mA, mAh, mWh, step time) to canonical units. The test time is built
from the record time stamps because NewareNDA's 'Time' restarts at each step.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import polars as pl

from batteryloop.cycling.errors import CyclerFileError
from batteryloop.cycling.readers._common import load, new_meta
from batteryloop.cycling.readers._units import step_type_from_text
from batteryloop.cycling.readers.registry import Reader, register
from batteryloop.cycling.schema import CyclerMetadata


def sniff(head: bytes, path: Path) -> float:
    if head.startswith(b"NEWARE"):
        return 0.9
    if head.startswith(b"PK\x03\x04") and b"data.ndc" in head[:256]:
        return 0.9
    return 0.0


def parse(path: Path) -> tuple[pl.DataFrame, CyclerMetadata]:
    path = Path(path)
    raw = load(path)
    fmt = "neware_ndax" if raw.startswith(b"PK") else "neware_nda"
    meta = new_meta(path, raw, "Neware", fmt)
    try:
        import NewareNDA
    except ImportError as exc:  # pragma: no cover - installed with the project
        raise CyclerFileError(path, "reading Neware .nda/.ndax needs the NewareNDA package") from exc
    try:
        pdf = NewareNDA.read(str(path))
    except (zipfile.BadZipFile, EOFError, KeyError, ValueError, OSError) as exc:
        raise CyclerFileError(path, f"NewareNDA could not parse the file: {exc}") from exc
    df = pl.from_pandas(pdf)
    stamp = pl.col("Timestamp").dt.epoch("us") / 1e6
    df = df.select(
        stamp.alias("unix_time_second"), (stamp - stamp.first()).alias("test_time_second"),
        pl.col("Voltage").cast(pl.Float64).alias("voltage_volt"),
        (pl.col("Current(mA)").cast(pl.Float64) / 1000).alias("current_ampere"),
        pl.col("Cycle").cast(pl.Int64).alias("cycle_count"),
        pl.col("Step_Index").cast(pl.Int64).alias("step_id"),
        step_type_from_text(df, "Status").alias("step_type"),
        (pl.col("Charge_Capacity(mAh)").cast(pl.Float64) / 1000).alias("charging_capacity_ah"),
        (pl.col("Discharge_Capacity(mAh)").cast(pl.Float64) / 1000).alias("discharging_capacity_ah"),
        (pl.col("Charge_Energy(mWh)").cast(pl.Float64) / 1000).alias("charging_energy_wh"),
        (pl.col("Discharge_Energy(mWh)").cast(pl.Float64) / 1000).alias("discharging_energy_wh"),
    )
    meta.note("mA -> A, mAh -> Ah, mWh -> Wh; test time from record time stamps")
    return df, meta


READER = register(Reader("neware_nda", "Neware", sniff, parse, (".ndax", ".nda")))
