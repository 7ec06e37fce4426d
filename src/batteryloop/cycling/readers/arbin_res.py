"""Arbin ``.res`` result files: a Microsoft Access (Jet) database, read with Debian's mdbtools.

``Channel_Normal_Table`` holds the records (units: s, V, A, Ah, Wh; current charge-positive);
``Global_Table`` names the test, channel, schedule and start time. ``DateTime`` is an OLE
Automation date (days since 1899-12-30), converted to Unix seconds. mdbtools is an external
program (``apt-get install mdbtools``); without it the reader says so instead of guessing.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import polars as pl

from batteryloop.cycling.errors import CyclerFileError
from batteryloop.cycling.readers._common import load, new_meta
from batteryloop.cycling.readers._text import read_table
from batteryloop.cycling.readers.registry import Reader, register
from batteryloop.cycling.schema import CyclerMetadata

_JET = b"\x00\x01\x00\x00Standard Jet DB"
_ACE = b"\x00\x01\x00\x00Standard ACE DB"
OLE_EPOCH_DAYS = 25569.0  # 1970-01-01 as an OLE Automation date
_MAP = {"Test_Time": "test_time_second", "Voltage": "voltage_volt", "Current": "current_ampere",
        "Cycle_Index": "cycle_count", "Step_Index": "step_id",
        "Charge_Capacity": "charging_capacity_ah", "Discharge_Capacity": "discharging_capacity_ah",
        "Charge_Energy": "charging_energy_wh", "Discharge_Energy": "discharging_energy_wh"}


def sniff(head: bytes, path: Path) -> float:
    if head.startswith((_JET, _ACE)):
        # Any Access database: Arbin's is the one we know; the .res extension breaks ties.
        return 0.6
    return 0.0


def _export(path: Path, table: str) -> bytes:
    exe = shutil.which("mdb-export")
    if exe is None:
        raise CyclerFileError(path, "reading Arbin .res needs mdbtools (apt-get install mdbtools)")
    proc = subprocess.run([exe, "-D", "%Y-%m-%d %H:%M:%S", str(path), table],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip() or f"exit {proc.returncode}"
        raise CyclerFileError(path, f"mdb-export {table} failed: {msg}")
    return proc.stdout


def parse(path: Path) -> tuple[pl.DataFrame, CyclerMetadata]:
    path = Path(path)
    raw = load(path)
    meta = new_meta(path, raw, "Arbin", "arbin_res")
    glob = pl.read_csv(io.BytesIO(_export(path, "Global_Table")), infer_schema=False)
    body = _export(path, "Channel_Normal_Table")
    overrides = {c: pl.Float64 for c in [*_MAP, "DateTime", "Test_ID"]}
    df = read_table(path, body, sep=",", first_line=1, overrides=overrides, columns=list(overrides))
    if glob.height:
        g = glob.row(0, named=True)
        meta.channel = str(int(g["Channel_Index"])) if g.get("Channel_Index") else None
        meta.cell_id = g.get("Item_ID") or None
        meta.extra.update(test_name=g.get("Test_Name"), schedule=g.get("Schedule_File_Name"))
        if g.get("Start_DateTime"):
            meta.start_time_unix = (float(g["Start_DateTime"]) - OLE_EPOCH_DAYS) * 86400.0
        if g.get("Test_ID"):
            df = df.filter(pl.col("Test_ID") == float(g["Test_ID"]))
    meta.note("DateTime (OLE Automation days) -> unix seconds")
    df = df.select([pl.col(c).alias(t) for c, t in _MAP.items()]
                   + [((pl.col("DateTime") - OLE_EPOCH_DAYS) * 86400.0).alias("unix_time_second")])
    return df, meta


READER = register(Reader("arbin_res", "Arbin", sniff, parse, (".res",)))
