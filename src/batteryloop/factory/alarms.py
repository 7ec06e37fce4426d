"""Alarms on plant telemetry: rules from a data file, evaluated in columns on a time grid.

Five kinds of rule (``factory/data/alarms.toml``; a plant passes its own file):

- ``threshold``: a value (or its mean over ``average``, e.g. an 8-hour TWA) above or below a limit,
  with a ``deadband`` to clear (hysteresis) and a ``delay`` it must hold for before it raises;
- ``rate``: the least-squares slope over ``window`` rising (or falling) faster than a limit per
  minute;
- ``stuck``: a live signal that stops moving: max - min within ``tolerance`` over ``window``;
- ``missing``: no sample for longer than ``window``, per tag or for the whole line (a dropped link);
- ``deviation``: measured minus what a soft sensor expects from the other measurements, over a
  ``band``; a condenser outlet warmer than the model expects points to fouling.

Every rule is evaluated at the points of a grid (``step`` apart) from statistics of the samples up
to each point (rolling windows by time, joined as-of onto the grid), so a day of data is a handful
of column operations, not a loop over samples. A raise needs the condition to hold for ``delay``;
the alarm then stays raised until its clear condition holds (limit minus deadband). The engine
carries which alarms are raised from one call to the next, so it runs on a stream as well as on
history.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import polars as pl

from batteryloop.errors import ValidationFailed
from batteryloop.factory.tags import TagSet
from batteryloop.factory.telemetry.payload import TS

KINDS = ("threshold", "rate", "stuck", "missing", "deviation")
SEVERITIES = ("low", "medium", "high", "critical")
NMP_CAS = "872-50-4"
LINE_SCOPE = "*"  # the tag of a line-wide alarm (missing data from every tag: a dropped link)
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

Expected = Callable[[pl.DataFrame], pl.DataFrame]
"""A soft sensor: a wide frame (``ts`` + one column per tag, smoothed measurements) in, a frame of
the same height with one column per tag it predicts (expected values) out."""

TRANSITION_SCHEMA = {
    "alarm": pl.String, "rule": pl.String, "tag": pl.String, "kind": pl.String,
    "at": TS, "value": pl.Float64, "limit": pl.Float64, "severity": pl.String,
    "message": pl.String,
}


def duration(text: str, where: str = "duration") -> timedelta:
    """'10s', '15m', '8h', '1d' -> timedelta (the polars duration spelling, whole units only)."""
    got = _DURATION.match(str(text))
    if not got:
        raise ValidationFailed(f"{text!r} is not a duration like '30s', '15m', '8h'",
                               location=where)
    return timedelta(**{_UNITS[got.group(2)]: int(got.group(1))})


def _polars(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() * 1_000_000)}us"


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    tags: tuple[str, ...]  # one alarm per tag; ("*",) with scope line: one alarm for the line
    severity: str
    message: str
    above: float | None = None  # threshold / deviation band (measured - expected) / rate per min
    below: float | None = None
    average: timedelta | None = None  # threshold, deviation: mean over this window first
    window: timedelta | None = None  # rate, stuck, missing
    tolerance: float = 0.0  # stuck: max - min at most this
    min_samples: int = 3  # stuck, rate: fewer samples in the window decide nothing
    deadband: float = 0.0
    delay: timedelta = timedelta(0)
    scope: str = "tag"  # missing: "tag" or "line"
    absolute: bool = False  # deviation with a 'band': |measured - expected| above it
    source: str | None = None
    convention: str | None = None

    def key(self, tag: str) -> str:
        return self.id if len(self.tags) == 1 else f"{self.id}:{tag}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "tags": list(self.tags),
                               "severity": self.severity, "message": self.message}
        for name in ("above", "below", "tolerance", "deadband", "scope", "source", "convention"):
            out[name] = getattr(self, name)
        for name in ("average", "window", "delay"):
            value = getattr(self, name)
            out[name] = None if value is None else value.total_seconds()
        return out


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    step: timedelta
    stale: timedelta  # a value older than this is not used by threshold/deviation rules
    soft_sensor_step: timedelta = timedelta(minutes=1)  # the model runs on this coarser grid
    path: str = ""

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.rules)

    def lookback(self) -> timedelta:
        """How much history before the first grid point the rules need."""
        spans = [self.stale]
        for r in self.rules:
            spans += [d for d in (r.average, r.window) if d is not None]
            spans.append(r.delay)
        return max(spans) + self.step


_RULE_KEYS = {
    "id", "kind", "tag", "tags", "severity", "message", "above", "below", "average", "window",
    "tolerance", "min_samples", "deadband", "delay", "scope", "source", "convention", "limit",
    "band", "above_lfl_fraction",
}


def _nmp_carbon_fraction() -> float:
    """Mass fraction of carbon in NMP, from its formula and atomic masses (``chemicals``)."""
    from chemicals import elements, identifiers

    formula = identifiers.search_chemical(NMP_CAS).formula
    return float(elements.mass_fractions(elements.simple_formula_parser(formula))["C"])


def _limit_from_ref(ref: Any, where: str) -> float:
    """A limit taken from factory/data/limits.toml (``"workplace.eu-ioelv.twa_8h_mg_m3"``), so a
    regulatory value is written once, with its source, and alarms and KPIs agree on it. A limit
    on organic carbon (NMHC as C) becomes mg of NMP through NMP's carbon mass fraction."""
    if not isinstance(ref, str) or ref.count(".") < 2:
        raise ValidationFailed("'limit' must name '<section>.<limit id>.<field>' of limits.toml",
                               location=where)
    section, rest = ref.split(".", 1)
    name, fieldname = rest.rsplit(".", 1)
    data = tomllib.loads((files("batteryloop.factory") / "data" / "limits.toml").read_text())
    try:
        entry = data[section]["limits"][name]
        value = float(entry[fieldname])
        basis = entry.get("basis", "nmp")
    except (KeyError, TypeError, ValueError):
        raise ValidationFailed(f"limits.toml has no {ref!r}", location=where) from None
    if basis == "carbon":
        return value / _nmp_carbon_fraction()
    if basis != "nmp":
        raise ValidationFailed(f"{ref!r} has an unknown basis {basis!r}", location=where)
    return value


def _lfl_limit(fraction: Any, facts: dict[str, Any], where: str) -> float:
    """A share of NMP's lower flammability limit as mg of NMP per Nm3 (ideal gas at the normal
    conditions of nmp_line.toml)."""
    from batteryloop.factory.streams import mw, normal_molar_volume

    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not (
            0 < fraction <= 1):
        raise ValidationFailed("'above_lfl_fraction' must be in (0, 1]", location=where)
    lfl = facts.get("nmp_lfl_vol_pct")
    if not isinstance(lfl, int | float):
        raise ValidationFailed("needs [facts] nmp_lfl_vol_pct", location=where)
    return float(fraction) * lfl / 100.0 * mw("nmp") / normal_molar_volume() * 1e6


def _rule(table: Any, index: int, where: str, tags: TagSet | None,
          facts: dict[str, Any]) -> Rule:
    loc = f"{where}: rules[{index}]"
    if not isinstance(table, dict):
        raise ValidationFailed("must be a table", location=loc)
    unknown = set(table) - _RULE_KEYS
    if unknown:
        raise ValidationFailed(f"unknown key(s) {sorted(unknown)}", location=loc)
    rid = table.get("id")
    if not isinstance(rid, str) or not _ID.match(rid):
        raise ValidationFailed("'id' must be lower-case letters, digits, '.', '-', '_'",
                               location=loc)
    loc = f"{where}: rule {rid!r}"
    kind = table.get("kind")
    if kind not in KINDS:
        raise ValidationFailed(f"'kind' must be one of {', '.join(KINDS)}", location=loc)
    names = table.get("tags", [table["tag"]] if "tag" in table else None)
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValidationFailed("needs 'tag' or a non-empty list 'tags'", location=loc)
    scope = table.get("scope", "tag")
    if scope not in ("tag", "line") or (scope == "line" and kind != "missing"):
        raise ValidationFailed("'scope' is 'tag', or 'line' for a missing-data rule",
                               location=loc)
    if names == [LINE_SCOPE] and tags is not None and scope == "tag":
        names = list(tags)
    if scope == "line":
        names = [LINE_SCOPE]
    if tags is not None:
        strangers = [n for n in names if n != LINE_SCOPE and n not in tags]
        if strangers:
            raise ValidationFailed(f"unknown tag(s) {strangers}", location=loc)
    severity = table.get("severity", "medium")
    if severity not in SEVERITIES:
        raise ValidationFailed(f"'severity' must be one of {', '.join(SEVERITIES)}",
                               location=loc)
    if not (table.get("source") or table.get("convention")):
        raise ValidationFailed("say where the limit comes from: 'source' or 'convention'",
                               location=loc)

    def number(name: str) -> float | None:
        value = table.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationFailed(f"'{name}' must be a number", location=loc)
        return float(value)

    def span(name: str) -> timedelta | None:
        return duration(table[name], f"{loc}.{name}") if name in table else None

    above, below, band = number("above"), number("below"), number("band")
    given = [k for k in ("above", "below", "band", "limit", "above_lfl_fraction") if k in table]
    if len(given) > 1:
        raise ValidationFailed(f"give one of {given}, not several", location=loc)
    if "limit" in table:
        above = _limit_from_ref(table["limit"], f"{loc}.limit")
    if "above_lfl_fraction" in table:
        above = _lfl_limit(table["above_lfl_fraction"], facts, f"{loc}.above_lfl_fraction")
    if band is not None:
        if kind != "deviation":
            raise ValidationFailed("'band' is for deviation rules", location=loc)
        above = band
    rule = Rule(
        id=rid, kind=kind, tags=tuple(names), severity=severity,
        message=str(table.get("message", rid)), above=above, below=below,
        average=span("average"), window=span("window"),
        tolerance=number("tolerance") or 0.0, min_samples=int(table.get("min_samples", 3)),
        deadband=number("deadband") or 0.0, delay=span("delay") or timedelta(0), scope=scope,
        source=table.get("source"), convention=table.get("convention"),
        absolute=band is not None,
    )
    if kind in ("threshold", "rate", "deviation") and above is None and below is None:
        raise ValidationFailed("needs 'above' or 'below' (or 'limit')", location=loc)
    if kind in ("rate", "stuck", "missing") and rule.window is None:
        raise ValidationFailed("needs a 'window'", location=loc)
    return rule


def load_rules(path: Path | None = None, tags: TagSet | None = None) -> RuleSet:
    """Rules from ``path`` or the shipped ``factory/data/alarms.toml``, checked against ``tags``."""
    if path is None:
        source: Any = files("batteryloop.factory") / "data" / "alarms.toml"
        where = "factory/data/alarms.toml"
    else:
        source, where = Path(path), str(path)
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValidationFailed(f"not valid TOML: {exc}", location=where) from None
    tables = raw.get("rules")
    if not isinstance(tables, list) or not tables:
        raise ValidationFailed("needs [[rules]] tables", location=where)
    facts = raw.get("facts", {})
    rules = tuple(_rule(t, i, where, tags, facts) for i, t in enumerate(tables))
    ids = [r.id for r in rules]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValidationFailed(f"duplicate rule id(s) {dupes}", location=where)
    grid = raw.get("grid", {})
    return RuleSet(rules, duration(grid.get("step", "10s"), f"{where}: grid.step"),
                   duration(grid.get("stale", "5m"), f"{where}: grid.stale"),
                   duration(grid.get("soft_sensor_step", "1m"), f"{where}: grid.soft_sensor_step"),
                   where)


# --- evaluation --------------------------------------------------------------------------------


def _grid(start: datetime, end: datetime, step: timedelta) -> pl.Series:
    """Grid points in (start, end], aligned to multiples of ``step`` since the epoch."""
    first = pl.Series([start], dtype=TS).dt.truncate(_polars(step))[0]
    if first <= start:
        first += step
    if first > end:
        return pl.Series("t", [], dtype=TS)
    return pl.datetime_range(first, end, step, eager=True, time_unit="us",
                             time_zone="UTC").alias("t")


def _on_grid(points: pl.DataFrame, stats: pl.DataFrame, tolerance: timedelta | None
             ) -> pl.DataFrame:
    """The latest per-sample statistics at or before each (t, tag) grid point."""
    return points.sort("t").join_asof(
        stats.sort("ts"), left_on="t", right_on="ts", by="tag", strategy="backward",
        tolerance=_polars(tolerance) if tolerance is not None else None, check_sortedness=False,
    )


@dataclass
class _Conditions:
    """Per rule instance and grid point: raise, clear, the value shown, the limit."""

    frame: pl.DataFrame  # t, tag, raise_, clear, value, limit


def _threshold(rule: Rule, series: pl.DataFrame, points: pl.DataFrame,
               stale: timedelta) -> _Conditions:
    x = pl.col("value")
    stat = x.rolling_mean_by("ts", window_size=_polars(rule.average)).over("tag") if (
        rule.average) else x
    stats = series.with_columns(x_=stat).select("ts", "tag", "x_")
    got = _on_grid(points, stats, rule.average or stale)
    return _compare(rule, got)


def _compare(rule: Rule, got: pl.DataFrame) -> _Conditions:
    x = pl.col("x_")
    if rule.above is not None:
        raise_, clear, limit = x > rule.above, x <= rule.above - rule.deadband, rule.above
    else:
        assert rule.below is not None
        raise_, clear, limit = x < rule.below, x >= rule.below + rule.deadband, rule.below
    return _Conditions(got.select(
        "t", "tag", raise_=raise_.fill_null(False), clear=clear.fill_null(False),
        value=x, limit=pl.lit(limit),
    ))


def _rate(rule: Rule, series: pl.DataFrame, points: pl.DataFrame) -> _Conditions:
    assert rule.window is not None
    win = _polars(rule.window)
    origin = series["ts"].min()
    t = (pl.col("ts") - pl.lit(origin)).dt.total_microseconds().cast(pl.Float64) / 6e7  # min
    v = pl.col("value")

    def roll(e: pl.Expr) -> pl.Expr:
        return e.rolling_sum_by("ts", window_size=win).over("tag")

    stats = series.with_columns(t_=t).with_columns(
        n=roll(pl.lit(1.0) + v * 0), st=roll(pl.col("t_")), sv=roll(v),
        stv=roll(pl.col("t_") * v), stt=roll(pl.col("t_") * pl.col("t_")),
    ).with_columns(
        x_=pl.when(pl.col("n") >= rule.min_samples).then(
            (pl.col("n") * pl.col("stv") - pl.col("st") * pl.col("sv"))
            / (pl.col("n") * pl.col("stt") - pl.col("st") ** 2)
        )
    ).select("ts", "tag", "x_")
    return _compare(rule, _on_grid(points, stats, rule.window))


def _stuck(rule: Rule, series: pl.DataFrame, points: pl.DataFrame,
           step: timedelta) -> _Conditions:
    assert rule.window is not None
    win = _polars(rule.window)
    v = pl.col("value")
    stats = series.with_columns(
        span=(v.rolling_max_by("ts", window_size=win) - v.rolling_min_by("ts", window_size=win)
              ).over("tag"),
        n=(v * 0 + 1).rolling_sum_by("ts", window_size=win).over("tag"),
        first=pl.col("ts").min().over("tag"),
    ).select("ts", "tag", "span", "n", "first")
    # fresh: the latest sample is recent; covered: the tag has been seen for a whole window
    got = _on_grid(points, stats, rule.window).with_columns(
        fresh=(pl.col("t") - pl.col("ts")) <= max(step, rule.window / 10),
        covered=(pl.col("t") - pl.col("first")) >= rule.window,
    )
    flat = (pl.col("span") <= rule.tolerance) & (pl.col("n") >= rule.min_samples)
    return _Conditions(got.select(
        "t", "tag",
        raise_=(flat & pl.col("fresh") & pl.col("covered")).fill_null(False),
        clear=(pl.col("span") > rule.tolerance).fill_null(False),
        value=pl.col("span"), limit=pl.lit(rule.tolerance),
    ))


def _missing(rule: Rule, series: pl.DataFrame, points: pl.DataFrame,
             since: datetime) -> _Conditions:
    assert rule.window is not None
    seen = series.select("ts", "tag")
    if rule.scope == "line":
        seen = seen.with_columns(tag=pl.lit(LINE_SCOPE))
    stats = seen.unique().with_columns(last=pl.col("ts"))
    got = _on_grid(points, stats, None)
    gap_s = (pl.col("t") - pl.coalesce(pl.col("last"), pl.lit(since, dtype=TS))
             ).dt.total_microseconds() / 1e6
    window_s = rule.window.total_seconds()
    return _Conditions(got.select(
        "t", "tag", raise_=gap_s > window_s, clear=gap_s <= window_s,
        value=gap_s, limit=pl.lit(window_s),
    ))


def wide_means(series: pl.DataFrame, grid: pl.Series, average: timedelta | None,
               stale: timedelta) -> pl.DataFrame:
    """``t`` + one column per tag: each tag's mean over ``average`` (or latest value) at each
    grid point. What a soft sensor reads."""
    tags = series["tag"].unique().sort()
    points = pl.DataFrame({"t": grid}).join(pl.DataFrame({"tag": tags}), how="cross")
    x = pl.col("value")
    stat = x.rolling_mean_by("ts", window_size=_polars(average)).over("tag") if average else x
    got = _on_grid(points, series.with_columns(x_=stat).select("ts", "tag", "x_"),
                   average or stale)
    if got.is_empty():
        return pl.DataFrame({"t": grid})
    return got.pivot(on="tag", index="t", values="x_", aggregate_function="first").sort("t")


def _deviation(rule: Rule, residuals: pl.DataFrame, points: pl.DataFrame,
               tolerance: timedelta) -> _Conditions:
    """``residuals`` (ts, tag, x_): measured - expected on the soft sensor's grid."""
    got = _on_grid(points, residuals, tolerance)
    if rule.absolute:
        got = got.with_columns(pl.col("x_").abs())
    return _compare(rule, got)


def _residuals(rules: RuleSet, expected: Expected, series: pl.DataFrame, start: datetime,
               end: datetime) -> dict[timedelta | None, pl.DataFrame]:
    """Measured minus expected (ts, tag, x_) per averaging window of the deviation rules, on the
    soft sensor's coarser grid (the model costs more than a comparison)."""
    grid = _grid(start - rules.soft_sensor_step, end, rules.soft_sensor_step)
    out: dict[timedelta | None, pl.DataFrame] = {}
    for average in {r.average for r in rules if r.kind == "deviation"}:
        measured = wide_means(series, grid, average, rules.stale)
        predicted = expected(measured)
        if predicted.height != measured.height:
            raise ValidationFailed("the soft sensor must return one row per grid point",
                                   location="alarms.expected")
        common = [c for c in predicted.columns if c in measured.columns and c != "t"]
        out[average] = pl.concat([
            pl.DataFrame({"ts": measured["t"], "tag": tag,
                          "x_": measured[tag].cast(pl.Float64) - predicted[tag].cast(pl.Float64)})
            for tag in common
        ]) if common else pl.DataFrame(schema={"ts": TS, "tag": pl.String, "x_": pl.Float64})
    return out


@dataclass
class AlarmEngine:
    """Evaluates a rule set on samples of one line; remembers which alarms are raised."""

    rules: RuleSet
    expected: Expected | None = None
    active: dict[str, bool] = field(default_factory=dict)
    evaluated_to: datetime | None = None

    def _conditions(self, rule: Rule, series: pl.DataFrame, grid: pl.Series,
                    since: datetime, residuals: Mapping[timedelta | None, pl.DataFrame]
                    ) -> _Conditions:
        tags = pl.DataFrame({"tag": list(rule.tags)})
        points = pl.DataFrame({"t": grid}).join(tags, how="cross")
        mine = series.filter(pl.col("tag").is_in(list(rule.tags))) if (
            rule.scope == "tag") else series
        if rule.kind == "threshold":
            return _threshold(rule, mine, points, self.rules.stale)
        if rule.kind == "rate":
            return _rate(rule, mine, points)
        if rule.kind == "stuck":
            return _stuck(rule, mine, points, self.rules.step)
        if rule.kind == "missing":
            return _missing(rule, mine, points, since)
        return _deviation(rule, residuals[rule.average], points,
                          2 * self.rules.soft_sensor_step)

    def evaluate(self, series: pl.DataFrame, start: datetime, end: datetime,
                 since: datetime | None = None) -> pl.DataFrame:
        """Raise/clear transitions at grid points in (start, end] (TRANSITION_SCHEMA).

        ``series`` (ts, tag, value) must hold the samples from ``start - rules.lookback()`` on;
        ``since`` is when data could first have arrived (for missing-data rules; default: the
        start of the lookback).
        """
        step = self.rules.step
        series = series.select("ts", "tag", "value").cast({"ts": TS}).sort("tag", "ts")
        first_delay = max((r.delay for r in self.rules), default=timedelta(0))
        grid = _grid(start - first_delay, end, step)
        since = since or (start - self.rules.lookback())
        residuals = {} if self.expected is None else _residuals(
            self.rules, self.expected, series, start - first_delay, end)
        out: list[pl.DataFrame] = []
        for rule in self.rules:
            if rule.kind == "deviation" and self.expected is None:
                continue
            cond = self._conditions(rule, series, grid, since, residuals).frame
            out.append(self._transitions(rule, cond, start, step))
        self.evaluated_to = end
        if not out:
            return pl.DataFrame(schema=TRANSITION_SCHEMA)
        return pl.concat(out).sort("at", "alarm")

    def _transitions(self, rule: Rule, cond: pl.DataFrame, start: datetime,
                     step: timedelta) -> pl.DataFrame:
        held = int(rule.delay / step) + 1  # grid points the raise condition must hold for
        keyed = cond.sort("tag", "t").with_columns(
            alarm=pl.lit(rule.id) if len(rule.tags) == 1 else pl.format("{}:{}", pl.lit(rule.id),
                                                                         pl.col("tag")),
        ).with_columns(
            raise_=pl.col("raise_").cast(pl.Int8).rolling_min(held, min_samples=held)
            .over("tag").fill_null(0).cast(pl.Boolean),
        ).filter(pl.col("t") > start)
        initial = pl.col("alarm").replace_strict(
            {k: v for k, v in self.active.items()}, default=False, return_dtype=pl.Boolean)
        state = (
            pl.when(pl.col("raise_")).then(True).when(pl.col("clear")).then(False)
            .otherwise(None).forward_fill().over("tag")
        )
        keyed = keyed.with_columns(initial=initial).with_columns(
            state=pl.coalesce(state, pl.col("initial"))
        ).with_columns(
            before=pl.col("state").shift(1).over("tag").fill_null(pl.col("initial")),
        )
        changes = keyed.filter(pl.col("state") != pl.col("before"))
        last = keyed.group_by("alarm").agg(pl.col("state").last())
        for alarm, state_now in last.iter_rows():
            self.active[alarm] = bool(state_now)
        return changes.select(
            "alarm", rule=pl.lit(rule.id), tag="tag",
            kind=pl.when(pl.col("state")).then(pl.lit("raised")).otherwise(pl.lit("cleared")),
            at="t", value="value", limit="limit", severity=pl.lit(rule.severity),
            message=pl.lit(rule.message),
        ).cast(TRANSITION_SCHEMA)

    def raised(self) -> list[str]:
        return sorted(k for k, v in self.active.items() if v)
