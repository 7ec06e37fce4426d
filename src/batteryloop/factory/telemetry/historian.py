"""Historian CSV exports into the telemetry store.

Two layouts, recognised by their header:

- long: columns ``ts``, ``tag``, ``value``, ``unit`` (any order; ``timestamp`` or ``time`` also
  name the time column), one sample per row;
- wide: a time column first, then one column per tag written ``<tag> [<unit>]`` (as
  ``cond2.outlet.temp [degC]``), one row per time; an empty cell is no sample.

Times are RFC 3339 with an offset or epoch milliseconds; an export in local time without an offset
is read with ``timezone`` (an IANA name such as ``Asia/Shanghai``) and refused without it.

A file that cannot be read as one of these layouts is refused with an error naming the row or
column, and nothing is written. Row-level problems (an unreadable time or value, an unknown tag, a
unit mismatch, a value out of range, a time going backwards within a tag, a sample already stored)
are quarantined with the file name and row number; the rest is stored in one all-or-nothing batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from batteryloop.errors import ValidationFailed
from batteryloop.factory.tags import TagSet
from batteryloop.factory.telemetry import quarantine
from batteryloop.factory.telemetry.intake import Counts, Intake
from batteryloop.factory.telemetry.payload import LINE_NAME, parse_fields
from batteryloop.factory.telemetry.quarantine import Reason
from batteryloop.factory.telemetry.store import TelemetryStore

TIME_COLUMNS = ("ts", "timestamp", "time")
_WIDE_HEADER = re.compile(r"^\s*(?P<tag>[^\[\]]+?)\s*\[(?P<unit>[^\[\]]+)\]\s*$")


@dataclass(frozen=True)
class CsvImport:
    path: str
    layout: str  # long | wide
    rows: int
    counts: Counts

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "layout": self.layout, "rows": self.rows,
                **self.counts.as_dict()}


def _read(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8", truncate_ragged_lines=False)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure: name the file and the cause
        raise ValidationFailed(f"not a readable CSV file: {str(exc).strip().splitlines()[0]}",
                               location=str(path)) from None
    if frame.width == 0 or frame.height == 0:
        raise ValidationFailed("no data rows", location=str(path))
    return frame


def _time_column(frame: pl.DataFrame, path: Path) -> str:
    lower = {c.strip().lower(): c for c in frame.columns}
    for name in TIME_COLUMNS:
        if name in lower:
            return lower[name]
    raise ValidationFailed(
        f"no time column (one of {', '.join(TIME_COLUMNS)}); header is {frame.columns[:6]}",
        location=f"{path}: row 1")


def _localise(text: pl.Expr, timezone: str | None) -> pl.Expr:
    """Add the offset of ``timezone`` to times written without one (epoch ms pass unchanged)."""
    if timezone is None:
        return text
    naive = text.str.contains(r"^\d{4}-\d{2}-\d{2}[T t]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
    local = (
        text.str.replace(r"^(\S{10})[ tT]", "${1}T")
        .str.to_datetime(format="%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us")
        .dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
        .dt.to_string("%Y-%m-%dT%H:%M:%S%.f+00:00")
    )
    return pl.when(naive).then(local).otherwise(text)


def _long(frame: pl.DataFrame, path: Path, time_col: str) -> pl.DataFrame:
    lower = {c.strip().lower(): c for c in frame.columns}
    missing = [c for c in ("tag", "value", "unit") if c not in lower]
    if missing:
        raise ValidationFailed(f"long layout needs columns ts, tag, value, unit; missing {missing}",
                               location=f"{path}: row 1")
    return frame.with_row_index("row", offset=2).select(
        "row", ts_text=pl.col(time_col).str.strip_chars(),
        tag=pl.col(lower["tag"]).str.strip_chars(),
        value_text=pl.col(lower["value"]).str.strip_chars(),
        unit=pl.col(lower["unit"]).str.strip_chars(),
    )


def _wide(frame: pl.DataFrame, path: Path, time_col: str) -> pl.DataFrame:
    columns = [c for c in frame.columns if c != time_col]
    heads = {}
    for i, name in enumerate(frame.columns, start=1):
        if name == time_col:
            continue
        got = _WIDE_HEADER.match(name)
        if not got:
            raise ValidationFailed(
                f"column {i} {name!r}: write a tag column as '<tag> [<unit>]', "
                "e.g. 'cond2.outlet.temp [degC]'", location=f"{path}: row 1")
        heads[name] = (got.group("tag"), got.group("unit").strip())
    long = frame.with_row_index("row", offset=2).unpivot(
        index=["row", time_col], on=columns, variable_name="column", value_name="value_text"
    ).with_columns(pl.col("value_text").str.strip_chars())
    long = long.filter(pl.col("value_text").is_not_null() & (pl.col("value_text") != ""))
    mapping = pl.DataFrame({
        "column": list(heads), "tag": [t for t, _ in heads.values()],
        "unit": [u for _, u in heads.values()],
    })
    return long.join(mapping, on="column", how="left").sort("row", "column").select(
        "row", ts_text=pl.col(time_col).str.strip_chars(), tag="tag", value_text="value_text",
        unit="unit")


def import_csv(path: Path, store: TelemetryStore, tags: TagSet, line: str, *,
               timezone: str | None = None, intake: Intake | None = None) -> CsvImport:
    """Read one historian export into the store (see the module notes for the layouts)."""
    path = Path(path)
    if not LINE_NAME.match(line):
        raise ValidationFailed(f"line name {line!r} must be lower-case letters, digits, - or _",
                               location="line")
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationFailed(f"unknown time zone {timezone!r}", location="timezone") from None
    frame = _read(path)
    time_col = _time_column(frame, path)
    lower = {c.strip().lower() for c in frame.columns}
    layout = "long" if {"tag", "value"} <= lower else "wide"
    rows = _long(frame, path, time_col) if layout == "long" else _wide(frame, path, time_col)
    naive = rows.select(
        (pl.col("ts_text").str.contains(r"^\d{4}-\d{2}-\d{2}[T t]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$"))
        .fill_null(False).all()).item()
    if naive and timezone is None:
        first = int(rows["row"][0])
        raise ValidationFailed(
            "times have no UTC offset: pass the historian's time zone (timezone=...)",
            location=f"{path}: row {first}, column {time_col!r}")
    rows = rows.with_columns(ts_text=_localise(pl.col("ts_text"), timezone))

    name = path.name
    # msg: one id per sample (a wide row holds many)
    parsed = rows.with_row_index("msg").with_columns(
        pl.col("msg").cast(pl.Int64), line=pl.lit(line),
        source=pl.format("csv:{}:row {}", pl.lit(name), pl.col("row")),
    )
    good, bad = parse_fields(parsed.drop("source", "row"))
    sources = parsed.select("msg", "source")
    received = datetime.now(UTC)
    malformed = bad.join(sources, on="msg", how="left").select(
        received_at=pl.lit(received, dtype=quarantine.SCHEMA["received_at"]), source="source",
        line="line", reason=pl.lit(Reason.MALFORMED.value), detail="detail", tag="tag",
        ts_text="ts_text", value_text="value_text", unit="unit", raw=pl.lit(None, pl.Binary),
    )
    good = good.join(sources, on="msg", how="left")
    intake = intake or Intake(store, tags)
    counts = intake.samples(good, malformed, received_at=received, use_state=False,
                            skip_stored=True)
    return CsvImport(str(path), layout, frame.height, counts)
