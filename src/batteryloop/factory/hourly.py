"""Reads a file of hourly tag means (CSV or Parquet) into the frame the KPIs take.

The file has a ``time`` column (start of each hour, ISO 8601) and one column per tag named as in
``tags.toml``; the telemetry store's hourly export has this shape. A broken file is refused with
its name and the problem.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from batteryloop.errors import ValidationFailed


def read_hourly(path: str | Path) -> pl.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise ValidationFailed("no such file", location=str(p))
    try:
        if p.suffix.lower() == ".parquet":
            frame = pl.read_parquet(p)
        else:
            frame = pl.read_csv(p, try_parse_dates=True, infer_schema_length=10_000)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise ValidationFailed(f"cannot read: {exc}", location=str(p)) from exc
    if "time" not in frame.columns:
        raise ValidationFailed("no 'time' column", location=f"{p}: time")
    if frame.schema["time"] == pl.Utf8:
        try:
            frame = frame.with_columns(pl.col("time").str.to_datetime(time_unit="us"))
        except pl.exceptions.PolarsError as exc:
            raise ValidationFailed(f"not ISO 8601 times: {exc}", location=f"{p}: time") from exc
    if isinstance(frame.schema["time"], pl.Datetime) and frame.schema["time"].time_zone:
        frame = frame.with_columns(pl.col("time").dt.replace_time_zone(None))
    return frame
