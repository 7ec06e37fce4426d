"""A line at a glance, from its stored telemetry: the KPIs of a production day, the latest window
of chosen tags against their alarm limits, and the condenser outlets against the soft sensor.

Why here and not in a face: the plant page (and anything else that shows a line) needs the same
three reads, and each is a handful of column operations over the Parquet store:

- ``day_kpis``: hourly means on the line's own clock (``data/overview.toml``), only the hours the
  data cover end to end, into ``kpi.compute`` (which the daily report also takes);
- ``trends``: the newest ``minutes`` of samples per tag (window means when there are too many
  points), with the limits of the threshold alarm rules on that tag and their sources;
- ``model_vs_measured``: each tag's mean over its deviation rule's window against what the clean
  unit would show for the measured inputs (``soft_sensor.model_expected``), as the alarm sees it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.factory import kpi
from batteryloop.factory.alarms import Expected, RuleSet, duration, load_rules, wide_means
from batteryloop.factory.facts import load
from batteryloop.factory.limits import Factors, Limits, load_factors, load_limits
from batteryloop.factory.params import load_line
from batteryloop.factory.tags import load_tags
from batteryloop.factory.telemetry.payload import TS
from batteryloop.factory.telemetry.store import TelemetryStore

LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"  # plant time as plotly.js reads a date axis
_EPS = timedelta(microseconds=1)  # the store's ranges are half-open: [start, end)


@dataclass(frozen=True)
class Settings:
    timezone: str
    shifts: kpi.ShiftPattern
    complete_within: timedelta
    trend_tags: tuple[str, ...]
    window_minutes: int
    max_window_minutes: int
    poll_seconds: float
    max_points: int
    soft_tags: tuple[str, ...]
    soft_window_minutes: int
    soft_average: timedelta

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"unknown time zone '{name}' (an IANA name like Asia/Shanghai)",
                               location="timezone") from None


@cache
def settings() -> Settings:
    """``data/overview.toml``, checked."""
    raw = load("overview")
    where = "factory/data/overview.toml"
    tags = load_tags()
    chosen = tuple(raw["trends"]["tags"]) + tuple(raw["soft_sensor"]["tags"])
    unknown = [t for t in chosen if t not in tags]
    if unknown:
        raise ValidationFailed(f"unknown tag(s) {unknown}", location=where)
    zone(raw["clock"]["timezone"])
    return Settings(
        timezone=raw["clock"]["timezone"],
        shifts=kpi.ShiftPattern.parse(raw["clock"]["shifts"]),
        complete_within=duration(raw["hours"]["complete_within"], f"{where}: hours"),
        trend_tags=tuple(raw["trends"]["tags"]),
        window_minutes=int(raw["trends"]["window_minutes"]),
        max_window_minutes=int(raw["trends"]["max_window_minutes"]),
        poll_seconds=float(raw["trends"]["poll_seconds"]),
        max_points=int(raw["trends"]["max_points"]),
        soft_tags=tuple(raw["soft_sensor"]["tags"]),
        soft_window_minutes=int(raw["soft_sensor"]["window_minutes"]),
        soft_average=duration(raw["soft_sensor"]["default_average"], f"{where}: soft_sensor"),
    )


def _local(column: str, tz: str) -> pl.Expr:
    """A UTC timestamp column as naive plant time."""
    return pl.col(column).dt.convert_time_zone(tz).dt.replace_time_zone(None)


def _text(moments: pl.Series) -> list[str]:
    return moments.dt.strftime(LOCAL_FORMAT).to_list()


def _finite(values: pl.Series) -> list[float | None]:
    return [v if v is not None and math.isfinite(v) else None for v in values.to_list()]


# --- the clock ------------------------------------------------------------------------------------

def newest(store: TelemetryStore, line: str) -> datetime | None:
    """The newest stored sample of ``line`` (UTC), or None when nothing is stored."""
    if line not in store.lines():
        return None
    latest = store.latest(line)
    return None if latest.is_empty() else latest["last_ts"].max()  # type: ignore[return-value]


def production_day(moment: datetime, s: Settings) -> date:
    """The production day ``moment`` falls in: plant time, counted from the first shift."""
    local = moment.astimezone(s.zone).replace(tzinfo=None)
    return (local - timedelta(minutes=s.shifts.day_start_minutes)).date()


def day_span(day: date, s: Settings) -> tuple[datetime, datetime]:
    """[start, end) of a production day in UTC."""
    first = time(s.shifts.day_start_minutes // 60, s.shifts.day_start_minutes % 60)
    start = datetime.combine(day, first, tzinfo=s.zone)
    end = datetime.combine(day + timedelta(days=1), first, tzinfo=s.zone)
    return start.astimezone(UTC), end.astimezone(UTC)


# --- KPIs -----------------------------------------------------------------------------------------

@dataclass
class DayKpis:
    line: str
    day: date
    result: kpi.KpiResult
    hours: int  # complete hours counted
    dropped: list[str] = field(default_factory=list)  # hours left out, plant time
    notes: list[str] = field(default_factory=list)


def hourly_means(store: TelemetryStore, line: str, start: datetime, end: datetime,
                 s: Settings) -> tuple[pl.DataFrame, list[str]]:
    """``time`` (hour start, plant time) + one column per tag with the hour's mean, for the hours
    in [start, end) that the data cover to within ``complete_within`` of both ends; and the hours
    left out."""
    series = store.query(line, None, start, end)
    if series.is_empty():
        return pl.DataFrame(schema={"time": pl.Datetime("us")}), []
    local = series.with_columns(t=_local("ts", s.timezone)).with_columns(
        hour=pl.col("t").dt.truncate("1h"))
    cover = local.group_by("hour").agg(first=pl.col("t").min(), last=pl.col("t").max())
    margin = pl.duration(microseconds=int(s.complete_within.total_seconds() * 1e6))
    cover = cover.with_columns(complete=((pl.col("first") - pl.col("hour")) <= margin)
                               & ((pl.col("hour") + pl.duration(hours=1) - pl.col("last"))
                                  <= margin)).sort("hour")
    kept = cover.filter(pl.col("complete"))["hour"]
    dropped = cover.filter(~pl.col("complete"))["hour"].dt.strftime("%Y-%m-%d %H:00").to_list()
    means = (local.filter(pl.col("hour").is_in(kept.implode()))
             .group_by("hour", "tag").agg(pl.col("value").mean()))
    if means.is_empty():
        return pl.DataFrame(schema={"time": pl.Datetime("us")}), dropped
    wide = means.pivot(on="tag", index="hour", values="value").rename({"hour": "time"})
    return wide.sort("time"), dropped


def day_kpis(store: TelemetryStore, line: str, day: date, *, s: Settings | None = None,
             limits: Limits | None = None, factors: Factors | None = None) -> DayKpis:
    """KPIs per hour, shift and day of one production day of ``line``."""
    s = s or settings()
    start, end = day_span(day, s)
    wide, dropped = hourly_means(store, line, start, end, s)
    if wide.height == 0:
        raise NotFound(f"no complete hour of telemetry for line '{line}' on production day "
                       f"{day.isoformat()}")
    notes = []
    missing = [t for t in kpi.KPI_TAGS if t not in wide.columns]
    if missing:
        notes.append("no samples of " + ", ".join(missing) + ": the KPIs that need them are empty")
        wide = wide.with_columns([pl.lit(None, dtype=pl.Float64).alias(t) for t in missing])
    if dropped:
        notes.append(f"{len(dropped)} hour(s) not covered end to end by the data (within "
                     f"{s.complete_within}) are left out: " + ", ".join(dropped))
    result = kpi.compute(wide, limits=limits or load_limits(), factors=factors or load_factors(),
                         shifts=s.shifts, rotor_heater_energy=load_line().rotor.heater_energy)
    return DayKpis(line, day, result, wide.height, dropped, notes + list(result.notes))


# --- live trends ----------------------------------------------------------------------------------

def _limits_by_tag(rules: RuleSet) -> dict[str, list[dict[str, Any]]]:
    """The threshold alarm rules' limits on each tag, with their averaging and source."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rules:
        if r.kind != "threshold":
            continue
        for tag in r.tags:
            for side, value in (("above", r.above), ("below", r.below)):
                if value is not None:
                    out.setdefault(tag, []).append({
                        "rule": r.id, "side": side, "value": value, "severity": r.severity,
                        "average_s": r.average.total_seconds() if r.average else None,
                        "message": r.message, "source": r.source or r.convention})
    return out


def window_minutes(minutes: int | None, s: Settings) -> int:
    chosen = s.window_minutes if minutes is None else minutes
    if not 1 <= chosen <= s.max_window_minutes:
        raise ValidationFailed(f"the window must be 1 to {s.max_window_minutes} minutes",
                               location="minutes")
    return chosen


def trends(store: TelemetryStore, line: str, tags: list[str] | None = None,
           minutes: int | None = None, *, s: Settings | None = None,
           end: datetime | None = None) -> dict[str, Any]:
    """The newest ``minutes`` of each tag, ending at the newest stored sample (or ``end``)."""
    s = s or settings()
    known = load_tags()
    chosen = list(dict.fromkeys(tags or s.trend_tags))
    for n, tag in enumerate(chosen):
        if tag not in known:
            raise ValidationFailed(f"unknown tag '{tag}'", location=f"tag[{n}]")
    span = window_minutes(minutes, s)
    last = end or newest(store, line)
    out: dict[str, Any] = {"line": line, "timezone": s.timezone, "minutes": span,
                           "end": None, "start": None, "every_s": None, "tags": {}}
    if last is None:
        return out
    start = last - timedelta(minutes=span)
    every = max(1, math.ceil(span * 60 / s.max_points))
    series = store.query(line, chosen, start + _EPS, last + _EPS)
    counts = series.group_by("tag").len()
    if counts.height and int(counts["len"].max()) > s.max_points:  # type: ignore[arg-type]
        series = (series.group_by_dynamic("ts", every=f"{every}s", group_by="tag")
                  .agg(pl.col("value").mean()).sort("tag", "ts"))
        out["every_s"] = every
    series = series.with_columns(t=_local("ts", s.timezone))
    limits = _limits_by_tag(load_rules(tags=known))
    parts = {tag: part for (tag,), part in series.partition_by("tag", as_dict=True).items()}
    for tag in chosen:
        part = parts.get(tag, pl.DataFrame(schema={"ts": TS, "tag": pl.String,
                                                   "value": pl.Float64, "t": pl.Datetime("us")}))
        out["tags"][tag] = {
            "unit": known[tag].unit, "location": known[tag].location,
            "x": _text(part["t"]), "y": _finite(part["value"]),
            "last": part["value"][-1] if part.height else None,
            "limits": limits.get(tag, []),
        }
    out["end"] = last.astimezone(s.zone).strftime(LOCAL_FORMAT)
    out["start"] = start.astimezone(s.zone).strftime(LOCAL_FORMAT)
    out["end_utc"] = last.isoformat()
    return out


# --- model against measured -----------------------------------------------------------------------

def _deviation_rules(rules: RuleSet) -> dict[str, Any]:
    return {tag: r for r in rules if r.kind == "deviation" for tag in r.tags}


def model_vs_measured(store: TelemetryStore, line: str, *, s: Settings | None = None,
                      end: datetime | None = None, minutes: int | None = None,
                      expected: Expected | None = None) -> dict[str, Any]:
    """Measured against expected for the soft sensor's tags over the newest window, on the soft
    sensor's grid: each tag's mean over its deviation rule's window (the panel's default
    otherwise), the clean unit's expectation for the measured inputs, and the residual."""
    s = s or settings()
    last = end or newest(store, line)
    span = minutes or s.soft_window_minutes
    if last is None:
        return {"line": line, "end": None, "tags": {}}
    if expected is None:
        return dict(_cached_panel(str(store.root), line, last, span, s))
    return _panel(store, line, last, span, s, expected)


@lru_cache(maxsize=16)
def _cached_panel(root: str, line: str, last: datetime, span: int, s: Settings
                  ) -> dict[str, Any]:
    """The panel for one newest sample: a page that polls while no new data arrive asks for the
    same panel again, and the unit model is the costly part."""
    from batteryloop.factory.soft_sensor import model_expected

    return _panel(TelemetryStore(root), line, last, span, s, model_expected())


def _panel(store: TelemetryStore, line: str, last: datetime, span: int, s: Settings,
           expected: Expected) -> dict[str, Any]:
    known = load_tags()
    rules = load_rules(tags=known)
    deviation = _deviation_rules(rules)
    averages = {tag: (deviation[tag].average if tag in deviation and deviation[tag].average
                      else s.soft_average) for tag in s.soft_tags}
    start = last - timedelta(minutes=span)
    step = rules.soft_sensor_step
    series = store.query(line, None, start - max(averages.values()) - rules.stale, last + _EPS)
    first = pl.Series([start], dtype=TS).dt.truncate(f"{int(step.total_seconds())}s")[0] + step
    grid = pl.datetime_range(first, last, step, eager=True, time_unit="us",
                             time_zone="UTC").alias("t")
    out: dict[str, Any] = {"line": line, "timezone": s.timezone, "minutes": span,
                           "end": last.astimezone(s.zone).strftime(LOCAL_FORMAT), "tags": {}}
    for average in dict.fromkeys(averages.values()):
        wide = wide_means(series, grid, average, rules.stale) if series.height else \
            pl.DataFrame({"t": grid})
        predicted = expected(wide) if series.height else pl.DataFrame()
        x = _text(wide["t"].dt.convert_time_zone(s.timezone).dt.replace_time_zone(None))
        for tag in (t for t, a in averages.items() if a == average):
            measured = wide[tag].cast(pl.Float64) if tag in wide.columns else \
                pl.Series([None] * wide.height, dtype=pl.Float64)
            model = predicted[tag].cast(pl.Float64) if tag in predicted.columns else \
                pl.Series([None] * wide.height, dtype=pl.Float64)
            rule = deviation.get(tag)
            out["tags"][tag] = {
                "unit": known[tag].unit, "average_s": average.total_seconds(), "x": x,
                "measured": _finite(measured), "expected": _finite(model),
                "residual": _finite(measured - model),
                "rule": None if rule is None else {
                    "id": rule.id, "above": rule.above, "below": rule.below,
                    "absolute": rule.absolute, "message": rule.message,
                    "source": rule.source or rule.convention},
            }
    return out
