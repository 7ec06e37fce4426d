"""Time series of a plant as Parquet files: queryable by line, tag and time range.

Layout under the root (``$BATTERYLOOP_DATA_DIR/telemetry`` by default)::

    <line>/samples/day=YYYY-MM-DD/<part>.parquet     ts (UTC, us), tag, value
    <line>/quarantine/day=YYYY-MM-DD/<part>.parquet  see telemetry/quarantine.py

One part per flushed batch and day (days by sample time for samples, by arrival time for the
quarantine); ``compact`` merges a day's parts into one file sorted by tag and time. A batch is
written all or nothing: every part goes to a hidden temporary file first and is renamed into place only when
all of them are written, so a reader never sees half a batch and a failed write leaves nothing.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.factory.telemetry import quarantine
from batteryloop.factory.telemetry.payload import LINE_NAME, TS

SAMPLES = "samples"
QUARANTINE = "quarantine"
SERIES_SCHEMA = {"ts": TS, "tag": pl.String, "value": pl.Float64}


def default_root() -> Path:
    from batteryloop.settings import get_settings

    return get_settings().data_dir / "telemetry"


def _day_dir(kind_dir: Path, day: date) -> Path:
    return kind_dir / f"day={day.isoformat()}"


def _parse_day(name: str) -> date | None:
    if not name.startswith("day="):
        return None
    try:
        return date.fromisoformat(name[4:])
    except ValueError:
        return None


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValidationFailed(f"{moment.isoformat()} has no UTC offset", location="time range")
    return moment


class TelemetryStore:
    """Samples and quarantined records of every line, as day-partitioned Parquet parts."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    # --- writing -----------------------------------------------------------------------------

    def write(self, samples: pl.DataFrame | None = None,
              records: pl.DataFrame | None = None) -> tuple[int, int]:
        """Store accepted samples (line, tag, ts, value) and quarantined records in one batch.

        Returns (samples stored, records quarantined). All parts land, or none.
        """
        staged: list[tuple[Path, Path]] = []  # filled by _stage as it goes, for the cleanup
        try:
            n_samples = n_records = 0
            if samples is not None and samples.height:
                n_samples = samples.height
                frame = samples.select("line", *SERIES_SCHEMA).cast({"ts": TS})
                self._stage(frame, SAMPLES, "ts", ["tag", "ts"], staged)
            if records is not None and records.height:
                n_records = records.height
                frame = records.select(list(quarantine.SCHEMA)).cast(quarantine.SCHEMA)
                self._stage(frame, QUARANTINE, "received_at", ["received_at"], staged)
            for tmp, final in staged:
                os.replace(tmp, final)
            return n_samples, n_records
        except BaseException:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            raise

    def _stage(self, frame: pl.DataFrame, kind: str, day_col: str, sort: list[str],
               staged: list[tuple[Path, Path]]) -> None:
        keyed = frame.with_columns(_day=pl.col(day_col).dt.date())
        for (line, day), part in keyed.partition_by(["line", "_day"], as_dict=True).items():
            if not LINE_NAME.match(str(line)) and line != "_unknown":
                raise ValidationFailed(f"line name {line!r} is not allowed", location="line")
            folder = _day_dir(self.root / str(line) / kind, day)
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
            tmp = folder / f".tmp-{name}"
            body = part.drop("_day", *(["line"] if kind == SAMPLES else [])).sort(sort)
            staged.append((tmp, folder / name))
            body.write_parquet(tmp, compression="zstd", statistics=True)

    # --- reading -----------------------------------------------------------------------------

    def lines(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def _parts(self, line: str, kind: str, start: datetime | None = None,
               end: datetime | None = None) -> list[Path]:
        folder = self._line_dir(line) / kind
        if not folder.is_dir():
            return []
        first = start.astimezone(UTC).date() if start else None
        last = end.astimezone(UTC).date() if end else None
        out: list[Path] = []
        for day_dir in sorted(folder.iterdir()):
            day = _parse_day(day_dir.name)
            if day is None or (first and day < first) or (last and day > last):
                continue
            out += sorted(p for p in day_dir.glob("*.parquet") if not p.name.startswith("."))
        return out

    def _line_dir(self, line: str) -> Path:
        """The line's folder; a name outside the scheme never becomes a path."""
        if not (LINE_NAME.match(line) or line == "_unknown") or "\n" in line:
            raise ValidationFailed(f"line name {line!r} must be lower-case letters, digits, "
                                   "- or _", location="line")
        return self.root / line

    def _days(self, line: str, kind: str) -> list[date]:
        folder = self._line_dir(line) / kind
        if not folder.is_dir():
            return []
        return sorted(d for d in (_parse_day(p.name) for p in folder.iterdir()) if d is not None)

    def query(self, line: str, tags: Sequence[str] | None = None,
              start: datetime | None = None, end: datetime | None = None) -> pl.DataFrame:
        """Samples of ``line`` with ``start <= ts < end``, sorted by tag and time."""
        start, end = _utc(start), _utc(end)
        parts = self._parts(line, SAMPLES, start, end)
        if not parts:
            return pl.DataFrame(schema=SERIES_SCHEMA)
        scan = pl.scan_parquet(parts)
        if tags is not None:
            scan = scan.filter(pl.col("tag").is_in(list(tags)))
        if start is not None:
            scan = scan.filter(pl.col("ts") >= start)
        if end is not None:
            scan = scan.filter(pl.col("ts") < end)
        return scan.select(list(SERIES_SCHEMA)).sort(["tag", "ts"]).collect()

    def resample(self, line: str, tags: Sequence[str] | None = None,
                 start: datetime | None = None, end: datetime | None = None,
                 every: str = "1h") -> pl.DataFrame:
        """Mean, min, max and count per tag over windows of ``every`` (a polars duration)."""
        series = self.query(line, tags, start, end)
        if series.is_empty():
            return pl.DataFrame(schema={"ts": TS, "tag": pl.String, "mean": pl.Float64,
                                        "min": pl.Float64, "max": pl.Float64, "count": pl.UInt32})
        return series.group_by_dynamic("ts", every=every, group_by="tag").agg(
            mean=pl.col("value").mean(), min=pl.col("value").min(), max=pl.col("value").max(),
            count=pl.col("value").count().cast(pl.UInt32),
        ).select("ts", "tag", "mean", "min", "max", "count").sort(["tag", "ts"])

    def latest(self, line: str, tags: Iterable[str] | None = None) -> pl.DataFrame:
        """The newest stored timestamp per tag (line, tag, last_ts): walks days newest first."""
        wanted = set(tags) if tags is not None else None
        found: list[pl.DataFrame] = []
        seen: set[str] = set()
        for day in reversed(self._days(line, SAMPLES)):
            parts = [p for p in _day_dir(self.root / line / SAMPLES, day).glob("*.parquet")
                     if not p.name.startswith(".")]
            if not parts:
                continue
            newest = pl.scan_parquet(parts).group_by("tag").agg(last_ts=pl.col("ts").max())
            newest = newest.filter(~pl.col("tag").is_in(list(seen))).collect()
            found.append(newest)
            seen |= set(newest["tag"].to_list())
            if wanted is not None and wanted <= seen:
                break
        schema = {"line": pl.String, "tag": pl.String, "last_ts": TS}
        if not found:
            return pl.DataFrame(schema=schema)
        out = pl.concat(found).with_columns(line=pl.lit(line)).select(list(schema))
        return out.filter(pl.col("tag").is_in(list(wanted))) if wanted is not None else out

    def quarantined(self, line: str | None = None, start: datetime | None = None,
                    end: datetime | None = None) -> pl.DataFrame:
        """Quarantined records (of one line, or all), by arrival time."""
        start, end = _utc(start), _utc(end)
        lines = [line] if line else self.lines()
        parts = [p for name in lines for p in self._parts(name, QUARANTINE, start, end)]
        if not parts:
            return quarantine.empty()
        scan = pl.scan_parquet(parts)
        if start is not None:
            scan = scan.filter(pl.col("received_at") >= start)
        if end is not None:
            scan = scan.filter(pl.col("received_at") < end)
        return scan.sort("received_at").collect()

    def count(self, line: str) -> int:
        parts = self._parts(line, SAMPLES)
        if not parts:
            return 0
        return int(pl.scan_parquet(parts).select(pl.len()).collect().item())

    # --- housekeeping --------------------------------------------------------------------------

    def compact(self, line: str, day: date | None = None) -> int:
        """Merge each day's sample parts into one file sorted by tag and time; returns days done.

        Without ``day``, every day but today (UTC) is compacted, so a running ingester's current
        day is left alone.
        """
        if not self._line_dir(line).is_dir():
            raise NotFound(f"no telemetry for line {line!r}")
        today = datetime.now(UTC).date()
        days = [day] if day is not None else [d for d in self._days(line, SAMPLES) if d < today]
        done = 0
        for d in days:
            folder = _day_dir(self.root / line / SAMPLES, d)
            parts = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))
            if len(parts) < 2:
                continue
            merged = pl.scan_parquet(parts).sort(["tag", "ts"]).collect()
            name = f"{time.time_ns()}-compact.parquet"
            tmp = folder / f".tmp-{name}"
            merged.write_parquet(tmp, compression="zstd", statistics=True)
            os.replace(tmp, folder / name)
            for p in parts:
                p.unlink()
            done += 1
        return done
