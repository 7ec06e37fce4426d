"""BioLogic EC-Lab / BT-Lab text exports (.mpt, or a delimited export such as .csv) with the
optional ``.mpl`` settings/log file beside them.

An .mpt starts 'EC-Lab ASCII FILE' and says how many header lines follow; a plain export starts
with the column line. Column names carry units after '/' (``I/mA``, ``Q charge/mA.h``). When
'time/s' holds absolute timestamps the .mpl (or .mpt header) line 'Time format : Absolute
MMDDYYYY' says the date order. Q charge / Q discharge restart every half cycle; the capacity
increments are rebuilt from them.
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
    first_line,
    head_text,
    line_at,
    line_offset,
    looks_binary,
    read_table,
)
from batteryloop.cycling.readers._units import factor, split_unit
from batteryloop.cycling.readers.registry import Reader, register
from batteryloop.cycling.schema import CyclerMetadata

_MAGIC = ("EC-Lab ASCII FILE", "BT-Lab ASCII FILE")
_VOLTAGE = ("Ecell/V", "Ewe/V", "<Ewe>/V")
_CURRENT = ("I/mA", "<I>/mA", "I/A")
_SIMPLE = {
    "Q charge": ("charging_capacity_ah", "Ah"), "Q discharge": ("discharging_capacity_ah", "Ah"),
    "Energy charge": ("charging_energy_wh", "Wh"), "Energy discharge": ("discharging_energy_wh", "Wh"),
    "cycle number": ("cycle_count", None), "Ns": ("step_id", None),
    "T": ("temperature_t1_celsius", "degC"), "Temperature": ("temperature_t1_celsius", "degC"),
}


def sniff(head: bytes, path: Path) -> float:
    if looks_binary(head):
        return 0.0
    text = head_text(head)
    if text.startswith(_MAGIC):
        return 0.95
    first = first_line(head)
    if "time/s" in first and any(v in first for v in _VOLTAGE) and any(c in first for c in _CURRENT):
        return 0.85
    return 0.0


def _settings(text: str, meta: CyclerMetadata) -> str | None:
    """Pull channel, start time, capacity and the time format out of .mpl/.mpt header text."""
    m = re.search(r"Run on channel\s*:\s*(\S+)", text)
    meta.channel = m.group(1) if m else meta.channel
    m = re.search(r"Battery capacity\s*:\s*([\d.]+)\s*A\.h", text)
    if m and float(m.group(1)) > 0:
        meta.nominal_capacity_ah = float(m.group(1))
    m = re.search(r"Time format\s*:\s*Absolute\s*(MMDDYYYY|DDMMYYYY)", text)
    order = m.group(1) if m else None
    m = re.search(r"Acquisition started on\s*:\s*(\d+/\d+/\d+ \d+:\d+:\d+(?:\.\d+)?)", text)
    if m:
        fmt = "%d/%m/%Y %H:%M:%S" if order == "DDMMYYYY" else "%m/%d/%Y %H:%M:%S"
        meta.start_time_unix = datetime.strptime(m.group(1).split(".")[0], fmt).replace(
            tzinfo=UTC).timestamp()
    return order


def parse(path: Path) -> tuple[pl.DataFrame, CyclerMetadata]:
    path = Path(path)
    raw = load(path)
    data = text_of(raw)
    meta = new_meta(path, raw, "BioLogic", "biologic_text")
    header_line, settings_text = 0, ""
    head = data[:4096].decode("latin-1")
    if head.startswith(_MAGIC):
        m = re.search(r"Nb header lines\s*:\s*(\d+)", head)
        if not m:
            raise CyclerFileError(path, "EC-Lab text file without 'Nb header lines'", row=2)
        header_line = int(m.group(1)) - 1
        settings_text = data[: line_offset(data, header_line)].decode("latin-1")
        meta.file_format = "biologic_mpt"
    mpl = path.with_suffix(".mpl")
    if mpl.exists():
        settings_text += mpl.read_bytes().decode("latin-1")
        meta.extra["settings_file"] = str(mpl)
    order = _settings(settings_text, meta)
    offset = line_offset(data, header_line)
    cols_line = line_at(data, offset)
    sep = max(("\t", ";", ","), key=cols_line.count)
    body, cut = cut_partial_last_line(data, sep.encode(), offset)
    if cut:
        meta.truncated_at_row = header_line + body.count(b"\n", offset) + 1
    cols = cols_line.split(sep)
    volt = next((c for c in _VOLTAGE if c in cols), None)
    curr = next((c for c in _CURRENT if c in cols), None)
    if volt is None or curr is None or "time/s" not in cols:
        raise CyclerFileError(path, "BioLogic export lacks time/s, a voltage or a current column",
                              row=header_line + 1)
    exprs = [pl.col(volt).alias("voltage_volt"),
             (pl.col(curr) * factor(split_unit(curr)[1], "A")).alias("current_ampere")]
    numeric = {volt: pl.Float64, curr: pl.Float64}
    for col in cols:
        base, unit = split_unit(col)
        hit = _SIMPLE.get(base)
        if hit and hit[0] not in {e.meta.output_name() for e in exprs}:
            f = factor(unit.replace("°", "deg") if unit and "°" in unit else unit, hit[1]) \
                if hit[1] and hit[1] != "degC" else 1.0
            numeric[col] = pl.Float64
            exprs.append((pl.col(col) * f).alias(hit[0]))
    if split_unit(curr)[1] != "A":
        meta.note(f"mA -> A ({curr}); mA.h -> Ah, mW.h -> Wh where present")
    df = read_table(path, body, sep=sep, first_line=header_line + 1, overrides=numeric,
                    columns=list(numeric) + ["time/s"], quote_char=None, skip_lines=header_line)
    t = df["time/s"]
    if t.cast(pl.Float64, strict=False).null_count() > t.null_count():
        fmt = "%d/%m/%Y %H:%M:%S%.f" if order == "DDMMYYYY" else "%m/%d/%Y %H:%M:%S%.f"
        stamp = pl.col("time/s").str.strptime(pl.Datetime("us"), fmt, strict=False)
        exprs.append((stamp.dt.epoch("us") / 1e6).alias("unix_time_second"))
        unix = pl.col("unix_time_second")  # parsed once, then used for the test time too
        df = df.select(exprs).with_columns((unix - unix.first()).alias("test_time_second"))
        meta.note(f"absolute time stamps ({order or 'MMDDYYYY assumed'}) -> test time from first row")
        return df, meta
    exprs.append(pl.col("time/s").cast(pl.Float64).alias("test_time_second"))
    return df.select(exprs), meta


READER = register(Reader("biologic_text", "BioLogic", sniff, parse, (".mpt", ".txt", ".csv")))
