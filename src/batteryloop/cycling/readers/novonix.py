"""Novonix HPC CSV: [Summary] and [Protocol] sections, then [Data] with a header line.

Some exports quote each whole data line; the quotes are removed before parsing. Times are in
hours. 'Capacity (Ah)' and 'Energy (Wh)' are one counter per step for both directions, split by
'Step Type'. Step-type codes (as documented by BatLabLancaster/preparenovonix,
``novonix_variables.py``): 0 open circuit, 1 CC charge, 2 CC discharge (some files write 1),
7/8 CC/CV part of a CC-CV charge, 9/10 CC/CV part of a CC-CV discharge. For codes 1 and 2 the sign
of the current decides, because of that ambiguity. A ``<stem>_metadata.csv`` sidecar holds the
tester's per-cycle summary (kept in ``meta.extra['cycle_summary']``).
"""

from __future__ import annotations

import functools
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
    line_offset,
    looks_binary,
    read_table,
)
from batteryloop.cycling.readers.registry import Reader, register
from batteryloop.cycling.schema import CyclerMetadata, StepType

_CHARGE, _DISCHARGE = (7, 8), (9, 10)


def sniff(head: bytes, path: Path) -> float:
    if looks_binary(head):
        return 0.0
    text = head_text(head[:4096])
    if text.startswith("[Summary]") and "Novonix" in text:
        return 0.95
    return 0.0


def _summary(pre: str, meta: CyclerMetadata) -> None:
    def field(name: str) -> str | None:
        m = re.search(rf"^{re.escape(name)}:\s*(.*?)\s*$", pre, re.MULTILINE)
        return m.group(1) if m and m.group(1) else None

    meta.channel = field("Channel")
    meta.cell_id = field("Cell") or field("Serial Number")
    cap = field("Capacity (Ah)")
    meta.nominal_capacity_ah = float(cap) if cap else None
    started = field("Started")
    if started:
        meta.start_time_unix = datetime.strptime(started, "%Y-%m-%d %I:%M:%S %p").replace(
            tzinfo=UTC).timestamp()
    meta.extra["protocol"] = field("Protocol")


def _sidecar(path: Path, meta: CyclerMetadata) -> None:
    side = path.with_name(path.stem + "_metadata.csv")
    if side.exists():
        try:
            meta.extra["cycle_summary"] = pl.read_csv(side).to_dicts()
            meta.extra["sidecar"] = str(side)
        except Exception:  # noqa: BLE001 - the data file stays readable without it
            meta.extra["sidecar_error"] = str(side)


@functools.cache
def _canonical() -> tuple[pl.Expr, ...]:
    """The file's columns as canonical ones (built once: they depend on nothing but names)."""
    code, i = pl.col("Step Type"), pl.col("Current (A)")
    # Enum literals: the labels never exist as one string per row
    rest, chg, dchg, other = (pl.lit(x, dtype=StepType) for x in ("rest", "charge", "discharge",
                                                                   "other"))
    step_type = (
        pl.when(code == 0).then(rest)
        .when(code.is_in([1, 2]) & (i > 0)).then(chg)
        .when(code.is_in([1, 2]) & (i < 0)).then(dchg)
        .when(code == 1).then(chg).when(code == 2).then(dchg)
        .when(code.is_in(_CHARGE)).then(chg)
        .when(code.is_in(_DISCHARGE)).then(dchg)
        .otherwise(other)
    )
    unix = pl.col("Date and Time").str.strptime(pl.Datetime("ms"), "%Y-%m-%d %I:%M:%S %p",
                                                strict=False)
    return (
        (pl.col("Run Time (h)") * 3600.0).alias("test_time_second"),
        pl.col("Potential (V)").alias("voltage_volt"), i.alias("current_ampere"),
        pl.col("Cycle Number").alias("cycle_count"), pl.col("Step Number").alias("step_id"),
        step_type.alias("step_type"), pl.col("Capacity (Ah)").alias("_capacity_ah"),
        pl.col("Energy (Wh)").alias("_energy_wh"),
        pl.col("Temperature (°C)").alias("temperature_t1_celsius"),
        (unix.dt.epoch("ms") / 1000.0).alias("unix_time_second"),
    )


def parse(path: Path) -> tuple[pl.DataFrame, CyclerMetadata]:
    path = Path(path)
    raw = load(path)
    data = text_of(raw)
    start = find_line(data, b"[Data]", limit=5000)
    if start is None:
        raise CyclerFileError(path, "Novonix file without a [Data] section")
    meta = new_meta(path, raw, "Novonix", "novonix_csv")
    _summary(data[: line_offset(data, start)].decode("utf-8", "replace"), meta)
    offset = line_offset(data, start + 1)
    # Quotes go (whole quoted lines); removing them leaves every line where it was.
    body = data.replace(b'"', b"") if data.find(b'"', offset) >= 0 else data
    offset = line_offset(body, start + 1)
    body, cut = cut_partial_last_line(body, b",", offset)
    if cut:
        meta.truncated_at_row = start + 1 + body.count(b"\n", offset) + 1
    cols = {"Run Time (h)": pl.Float64, "Current (A)": pl.Float64, "Potential (V)": pl.Float64,
            "Capacity (Ah)": pl.Float64, "Energy (Wh)": pl.Float64, "Cycle Number": pl.Int64,
            "Step Type": pl.Int64, "Step Number": pl.Int64, "Temperature (°C)": pl.Float64}
    df = read_table(path, body, sep=",", first_line=start + 2, overrides=cols,
                    columns=list(cols) + ["Date and Time"], quote_char=None, skip_lines=start + 1)
    df = df.select(_canonical())
    meta.note("h -> s (Run Time (h) -> test_time_second)")
    _sidecar(path, meta)
    return df, meta


READER = register(Reader("novonix_csv", "Novonix", sniff, parse, (".csv",)))
