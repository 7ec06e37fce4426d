"""Maccor text exports: the raw-data export (``.0NN``, time in seconds) and the newer text export
(``.txt``, time as ``2d 02:52:51.57``, Aux columns each followed by its unit).

Both are tab-separated with a preamble line or three ("Today's Date ...") before the ``Rec#``
header. ``Amp-hr``/``Watt-hr`` are one unsigned counter for both directions that restarts at
step changes, so they are split by ``State`` (C charge, D discharge, R rest, O other). Some
exports sign the current (discharge negative), others do not: normalisation checks the data.
``DPt Time`` is the tester's local clock; it is taken as UTC because the file does not say.
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
    line_at,
    line_offset,
    looks_binary,
    read_table,
)
from batteryloop.cycling.readers._units import hms_to_seconds, step_type_from_text
from batteryloop.cycling.readers.registry import Reader, register
from batteryloop.cycling.schema import CyclerMetadata

_HEADER = b"Rec#\tCyc#\tStep\t"


def _kind(head: bytes) -> str | None:
    if looks_binary(head) or _HEADER not in head[:8192]:
        return None
    hdr = head[head.find(_HEADER):].split(b"\n", 1)[0]
    if b"Test (Sec)" in hdr:
        return "raw"
    if b"TestTime" in hdr:
        return "text"
    return None


def sniff_raw(head: bytes, path: Path) -> float:
    return 0.9 if _kind(head) == "raw" else 0.0


def sniff_text(head: bytes, path: Path) -> float:
    return 0.9 if _kind(head) == "text" else 0.0


def _preamble(pre: str, meta: CyclerMetadata) -> None:
    m = re.search(r"Filename:\s*\t?\s*([^\t\r\n]+?)\s*(?:Procedure:|\t|$)", pre)
    if m:
        meta.extra["tester_filename"] = m.group(1).strip()
    m = re.search(r"Comment/Barcode:\s*\t?\s*([^\t\r\n]+)", pre)
    if m and m.group(1).strip():
        meta.cell_id = m.group(1).strip()
    m = re.search(r"Tester Channel:\s*\t?\s*(\S+)", pre)
    if m:
        meta.channel = m.group(1)
    m = re.search(r"_CH(\d+)\.", meta.extra.get("tester_filename", ""))
    if meta.channel is None and m:
        meta.channel = m.group(1)
    m = re.search(r"Procedure:\s*\t?\s*([^\t\r\n]+)", pre)
    if m:
        meta.extra["procedure"] = m.group(1).strip()


def _read(path: Path, fmt: str) -> tuple[pl.DataFrame, CyclerMetadata]:
    path = Path(path)
    raw = load(path)
    data = text_of(raw)
    start = find_line(data, _HEADER, limit=50)
    if start is None:
        raise CyclerFileError(path, "no Maccor 'Rec#' header line found")
    meta = new_meta(path, raw, "Maccor", fmt)
    offset = line_offset(data, start)
    _preamble(data[:offset].decode("utf-8", "replace"), meta)
    body, cut = cut_partial_last_line(data, b"\t", offset)
    if cut:
        meta.truncated_at_row = start + body.count(b"\n", offset) + 1
    header = line_at(body, offset).split("\t")
    time_col = "Test (Sec)" if fmt == "maccor_raw" else "TestTime"
    floats = {"Amp-hr": pl.Float64, "Watt-hr": pl.Float64, "Amps": pl.Float64, "Volts": pl.Float64,
              "Cyc#": pl.Int64, "Step": pl.Int64}
    if fmt == "maccor_raw":
        floats[time_col] = pl.Float64
    cols = ["Cyc#", "Step", time_col, "Amp-hr", "Watt-hr", "Amps", "Volts", "State", "DPt Time"]
    aux = [(i, h) for i, h in enumerate(header) if h.startswith("Aux #")]
    unit_after = {h: header[i + 1].strip() for i, h in aux if i + 1 < len(header)}
    temp_aux = [h for h in unit_after if unit_after[h] == "Units"]
    cols += temp_aux[:1]
    df = read_table(path, body, sep="\t", first_line=start + 1, overrides=floats, columns=cols,
                    quote_char=None, skip_lines=start)
    if fmt == "maccor_text":
        df = df.with_columns(hms_to_seconds(df, time_col).alias("_secs"))
        bad = df["_secs"].is_null() & df[time_col].is_not_null()
        if bad.any():
            i = int(bad.arg_true()[0])
            raise CyclerFileError(path, f"time {df[time_col][i]!r} is not 'Nd HH:MM:SS'",
                                  row=start + 2 + i)
        df = df.with_columns(pl.col("_secs").alias(time_col))
        meta.note("test time 'Nd HH:MM:SS' -> seconds")
    unix = (pl.col("DPt Time").str.strptime(pl.Datetime("ms"), "%m/%d/%Y %H:%M:%S", strict=False)
            .dt.epoch("ms") / 1000.0)
    out = [
        pl.col(time_col).alias("test_time_second"), pl.col("Volts").alias("voltage_volt"),
        pl.col("Amps").alias("current_ampere"), pl.col("Cyc#").alias("cycle_count"),
        pl.col("Step").alias("step_id"), step_type_from_text(df, "State").alias("step_type"),
        pl.col("Amp-hr").alias("_capacity_ah"), pl.col("Watt-hr").alias("_energy_wh"),
        unix.alias("unix_time_second"),
    ]
    if temp_aux:
        # An Aux channel with no sensor reads about -2500 C: below absolute zero means 'no value'.
        t = pl.col(temp_aux[0]).cast(pl.Float64, strict=False)
        out.append(pl.when(t > -273.15).then(t).alias("temperature_t1_celsius"))
    df = df.select(out)
    meta.note("DPt Time (tester local clock) taken as UTC for unix time")
    return df, meta


def parse_raw(path: Path) -> tuple[pl.DataFrame, CyclerMetadata]:
    return _read(path, "maccor_raw")


def parse_text(path: Path) -> tuple[pl.DataFrame, CyclerMetadata]:
    return _read(path, "maccor_text")


RAW = register(Reader("maccor_raw", "Maccor", sniff_raw, parse_raw, tuple(f".{i:03d}" for i in range(1000))))
TEXT = register(Reader("maccor_text", "Maccor", sniff_text, parse_text, (".txt",)))

