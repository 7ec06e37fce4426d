"""KPIs of the recovery unit per hour, shift and production day, from hourly tag means.

Input: a polars frame with a ``time`` column (start of each hour) and one column per tag, named
as in ``tags.toml``, holding the hour's mean in the tag's unit. Per hour:

- NMP fed (``nmp.feed``), recovered (product flow x purity), made up (fed - recovered: virgin
  NMP to buy), emitted (stack concentration x stack flow);
- recovery rate = recovered / fed; capture rate = 1 - emitted / fed;
- product purity and water;
- stack concentration against the stack limit (hourly mean), workplace concentration against the
  short-term limit (an hourly mean above it means some 15 minutes were above it too) and, per
  shift, the 8-hour time-weighted average against the TWA limit;
- electricity (fans, chiller) and heat (distillation steam, rotor heater) per kg recovered;
- cost saved and CO2e avoided: recovered NMP at the virgin price and footprint, less the energy
  the unit used at its price and emission factor.

Shifts and days add up masses, energies, costs and emissions and then take ratios of the sums
(never means of hourly ratios); purity and water are weighted by product flow, stack
concentration by stack flow. A missing hourly value leaves that hour's KPIs empty and the hour out
of the sums; each period says how many hours it has and how many were complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Any

import numpy as np
import polars as pl

from batteryloop.errors import ValidationFailed
from batteryloop.factory.facts import tags as tag_table
from batteryloop.factory.limits import Factors, Limits, load_factors, load_limits

KPI_TAGS = ("nmp.feed", "product.flow", "product.purity", "product.water", "stack.nmp",
            "stack.flow", "workplace.nmp", "power.fans", "power.chiller", "steam.distillation",
            "heat.rotor")
FLOW_TAGS = ("nmp.feed", "product.flow", "stack.flow", "power.fans", "power.chiller",
             "steam.distillation", "heat.rotor")


@dataclass(frozen=True)
class ShiftPattern:
    """Shift names and start times; the production day starts with the first shift.

    The default, three 8-hour shifts from 06:00, is a convention: pass the plant's own.
    """

    starts: tuple[tuple[str, time], ...] = (("A", time(6)), ("B", time(14)), ("C", time(22)))

    def __post_init__(self) -> None:
        if not self.starts:
            raise ValidationFailed("at least one shift is needed", location="shifts")
        mins = [t.hour * 60 + t.minute for _, t in self.starts]
        if len(set(mins)) != len(mins):
            raise ValidationFailed("two shifts start at the same time", location="shifts")
        names = [n for n, _ in self.starts]
        if len(set(names)) != len(names):
            raise ValidationFailed("two shifts have the same name", location="shifts")

    @classmethod
    def parse(cls, text: str) -> ShiftPattern:
        """``"A=06:00,B=14:00,C=22:00"`` or ``"06:00,18:00"`` (named A, B, ...)."""
        starts = []
        for i, part in enumerate(p.strip() for p in text.split(",") if p.strip()):
            name, _, clock = part.rpartition("=")
            try:
                hh, mm = clock.split(":")
                t = time(int(hh), int(mm))
            except ValueError as exc:
                raise ValidationFailed(f"not a time HH:MM: {clock!r}", location="shifts") from exc
            starts.append((name or chr(ord("A") + i), t))
        return cls(tuple(starts))

    def _offsets(self) -> tuple[np.ndarray, list[str]]:
        """Minutes after the day start at which each shift starts, sorted, with names."""
        day0 = self.day_start_minutes
        pairs = sorted(((t.hour * 60 + t.minute - day0) % 1440, n) for n, t in self.starts)
        return np.array([p[0] for p in pairs]), [p[1] for p in pairs]

    @property
    def day_start_minutes(self) -> int:
        t = self.starts[0][1]
        return t.hour * 60 + t.minute

    def hours(self, name: str) -> float:
        offs, names = self._offsets()
        i = names.index(name)
        end = offs[i + 1] if i + 1 < len(offs) else 1440
        return float(end - offs[i]) / 60.0


@dataclass
class KpiResult:
    hourly: pl.DataFrame
    shifts: pl.DataFrame
    days: pl.DataFrame
    exceedances: list[dict[str, Any]]
    limits: Limits
    factors: Factors
    shift_pattern: ShiftPattern
    notes: list[str] = field(default_factory=list)


def _validate(frame: pl.DataFrame) -> pl.DataFrame:
    if "time" not in frame.columns:
        raise ValidationFailed("missing column", location="time")
    missing = [t for t in KPI_TAGS if t not in frame.columns]
    if missing:
        others = f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise ValidationFailed("missing tag column" + others, location=missing[0])
    if not isinstance(frame.schema["time"], pl.Datetime):
        raise ValidationFailed(f"must be a datetime column, got {frame.schema['time']}",
                               location="time")
    if frame["time"].null_count():
        row = int(frame.with_row_index().filter(pl.col("time").is_null())["index"][0])
        raise ValidationFailed("empty time", location=f"time[{row}]")
    dup = ~frame["time"].is_first_distinct()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise ValidationFailed("hour appears twice", location=f"time[{row}]")
    known = tag_table()
    casted = {}
    for tag in KPI_TAGS:
        try:
            col = frame[tag].cast(pl.Float64)
        except pl.exceptions.InvalidOperationError as exc:
            raise ValidationFailed("not numeric", location=tag) from exc
        values = col.to_numpy()
        lo, hi = known[tag]["range"]
        bad = np.isfinite(values) & ((values < lo) | (values > hi))
        bad |= np.isinf(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            what = "negative" if values[row] < 0 <= lo else "outside the instrument range"
            raise ValidationFailed(f"{values[row]} {known[tag]['unit']} is {what} [{lo}, {hi}]",
                                   location=f"{tag}[{row}]")
        casted[tag] = col.fill_nan(None)
    return frame.select("time").with_columns(**casted).sort("time")


def _hourly(frame: pl.DataFrame, limits: Limits, factors: Factors, shifts: ShiftPattern,
            rotor_heater_energy: str) -> pl.DataFrame:
    col = pl.col
    rotor_elec = 1.0 if rotor_heater_energy == "electricity" else 0.0
    electricity = col("power.fans") + col("power.chiller") + rotor_elec * col("heat.rotor")
    heat = col("steam.distillation") + (1 - rotor_elec) * col("heat.rotor")
    recovered = col("product.flow") * col("product.purity") / 100.0
    emitted = col("stack.nmp") * col("stack.flow") * 1e-6
    t = frame["time"]
    minutes = (t.dt.hour().cast(pl.Int32) * 60 + t.dt.minute().cast(pl.Int32)).to_numpy()
    day0 = shifts.day_start_minutes
    offs, names = shifts._offsets()
    rel = (minutes - day0) % 1440
    idx = np.searchsorted(offs, rel, side="right") - 1
    shift_names = np.array(names)[idx]
    out = frame.with_columns(
        day=(col("time") - pl.duration(minutes=day0)).dt.date(),
        shift=pl.Series(shift_names, dtype=pl.Utf8),
        fed_kg=col("nmp.feed"),
        recovered_kg=recovered,
        emitted_kg=emitted,
        stack_m3=col("stack.flow"),
        electricity_kWh=electricity,
        heat_kWh=heat,
        purity_x_flow=col("product.purity") * col("product.flow"),
        water_x_flow=col("product.water") * col("product.flow"),
    ).with_columns(
        makeup_kg=col("fed_kg") - col("recovered_kg"),
        complete=pl.all_horizontal([col(tg).is_not_null() for tg in KPI_TAGS]),
    )
    out = out.with_columns(**_derived(factors))
    return out.with_columns(
        stack_limit_mg_Nm3=pl.lit(limits.stack_mg_Nm3),
        stack_exceeded=col("stack.nmp") > limits.stack_mg_Nm3,
        workplace_short_term_exceeded=(col("workplace.nmp") > limits.workplace_short_term_mg_m3)
        if limits.workplace_short_term_mg_m3 is not None else pl.lit(None, dtype=pl.Boolean),
    )


def _derived(factors: Factors) -> dict[str, pl.Expr]:
    """Ratios and money/CO2e from the additive columns; used for hours and for sums alike."""
    col = pl.col

    def ratio(a: pl.Expr, b: pl.Expr) -> pl.Expr:
        return pl.when(b > 0).then(a / b).otherwise(None)

    energy_cost = (col("electricity_kWh") * factors.electricity_price_per_kWh
                   + col("heat_kWh") * factors.heat_price_per_kWh)
    energy_co2 = (col("electricity_kWh") * factors.electricity_co2e_kg_per_kWh
                  + col("heat_kWh") * factors.heat_co2e_kg_per_kWh)
    return {
        "recovery_rate": ratio(col("recovered_kg"), col("fed_kg")),
        "capture_rate": 1 - ratio(col("emitted_kg"), col("fed_kg")),
        "purity_wt_pct": ratio(col("purity_x_flow"), col("product.flow")),
        "water_ppm": ratio(col("water_x_flow"), col("product.flow")),
        "stack_mean_mg_Nm3": ratio(col("emitted_kg") * 1e6, col("stack_m3")),
        "energy_kWh_per_kg": ratio(col("electricity_kWh") + col("heat_kWh"), col("recovered_kg")),
        "electricity_kWh_per_kg": ratio(col("electricity_kWh"), col("recovered_kg")),
        "heat_kWh_per_kg": ratio(col("heat_kWh"), col("recovered_kg")),
        "gross_saving": col("recovered_kg") * factors.nmp_price_per_kg,
        "energy_cost": energy_cost,
        "cost_saved": col("recovered_kg") * factors.nmp_price_per_kg - energy_cost,
        "co2e_virgin_avoided_kg": col("recovered_kg") * factors.nmp_co2e_kg_per_kg,
        "co2e_energy_kg": energy_co2,
        "co2e_avoided_kg": col("recovered_kg") * factors.nmp_co2e_kg_per_kg - energy_co2,
    }


_SUMMED = ("fed_kg", "recovered_kg", "emitted_kg", "makeup_kg", "stack_m3", "electricity_kWh",
           "heat_kWh", "purity_x_flow", "water_x_flow", "product.flow")


def _aggregate(hourly: pl.DataFrame, keys: list[str], factors: Factors, limits: Limits,
               shifts: ShiftPattern) -> pl.DataFrame:
    col = pl.col
    good = hourly.filter(col("complete"))
    sums = good.group_by(keys).agg([col(c).sum() for c in _SUMMED])
    # Limit checks use every hour that has the reading, complete or not.
    counts = hourly.group_by(keys).agg(
        pl.len().alias("hours"), col("complete").sum().alias("hours_complete"),
        col("workplace.nmp").mean().alias("workplace_twa_mg_m3"),
        col("time").min().alias("start"),
        col("stack.nmp").max().alias("stack_max_mg_Nm3"),
        col("stack_exceeded").sum().alias("stack_exceeded_hours"),
        col("workplace_short_term_exceeded").sum().alias("workplace_short_term_exceeded_hours"))
    out = counts.join(sums, on=keys, how="left").with_columns(**_derived(factors))
    if "shift" in keys and limits.workplace_twa_mg_m3 is not None:
        # A shift's mean is the worker's time-weighted average only over an 8-hour shift; for
        # other lengths it is scaled to 8 h (exposure over the shift, none outside it).
        length = pl.col("shift").replace_strict({n: shifts.hours(n) for n, _ in shifts.starts},
                                                return_dtype=pl.Float64)
        out = out.with_columns(
            workplace_twa_mg_m3=col("workplace_twa_mg_m3") * length / 8.0,
        ).with_columns(
            workplace_twa_exceeded=col("workplace_twa_mg_m3") > limits.workplace_twa_mg_m3)
    return out.sort("start")


def compute(frame: pl.DataFrame, *, limits: Limits | None = None, factors: Factors | None = None,
            shifts: ShiftPattern | None = None, rotor_heater_energy: str = "heat") -> KpiResult:
    """KPIs per hour, shift and day for a frame of hourly tag means."""
    if rotor_heater_energy not in ("heat", "electricity"):
        raise ValidationFailed("must be 'heat' or 'electricity'", location="rotor_heater_energy")
    limits = limits or load_limits()
    factors = factors or load_factors()
    shifts = shifts or ShiftPattern()
    clean = _validate(frame)
    hourly = _hourly(clean, limits, factors, shifts, rotor_heater_energy)
    shift_kpis = _aggregate(hourly, ["day", "shift"], factors, limits, shifts)
    days = _aggregate(hourly, ["day"], factors, limits, shifts)
    exceed = []
    for row in hourly.filter(pl.col("stack_exceeded")).select("time", "stack.nmp").iter_rows():
        exceed.append({"kind": "stack", "period": row[0].isoformat(), "value_mg_Nm3": row[1],
                       "limit_mg_Nm3": limits.stack_mg_Nm3, "limit": limits.stack_name,
                       "averaging": "1h"})
    for row in hourly.filter(pl.col("workplace_short_term_exceeded")).select(
            "time", "workplace.nmp").iter_rows():
        exceed.append({"kind": "workplace-short-term", "period": row[0].isoformat(),
                       "value_mg_m3": row[1], "limit_mg_m3": limits.workplace_short_term_mg_m3,
                       "limit": limits.workplace_name, "averaging": "15min (hourly mean above it)"})
    if "workplace_twa_exceeded" in shift_kpis.columns:
        for row in shift_kpis.filter(pl.col("workplace_twa_exceeded")).select(
                "day", "shift", "workplace_twa_mg_m3").iter_rows():
            exceed.append({"kind": "workplace-twa",
                           "period": f"{row[0].isoformat()} shift {row[1]}",
                           "value_mg_m3": row[2], "limit_mg_m3": limits.workplace_twa_mg_m3,
                           "limit": limits.workplace_name, "averaging": "8h"})
    notes = []
    incomplete = int(hourly.height - hourly["complete"].sum())
    if incomplete:
        notes.append(f"{incomplete} hour(s) with a missing tag value are left out of the sums")
    return KpiResult(hourly, shift_kpis, days, exceed, limits, factors, shifts, notes)


def hour_starts(start: Any, hours: int) -> pl.Series:
    """``hours`` consecutive hour starts from ``start`` (helper for callers building frames)."""
    end = start + timedelta(hours=hours - 1)
    return pl.datetime_range(start, end, "1h", eager=True).alias("time")
