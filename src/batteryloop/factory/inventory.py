"""What the recovery unit hands to the factory greenhouse-gas inventory, per period.

The carbon stage prices these with its own factors; this module only says how much: electricity
and purchased heat used, NMP fed, recovered and reused, virgin NMP bought to make up the
difference, and NMP emitted to air. Hours with a missing tag value are left out (``hours`` vs
``hours_complete`` says how many).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import polars as pl

from batteryloop.errors import ValidationFailed
from batteryloop.factory.kpi import KpiResult

Level = Literal["hour", "shift", "day"]


@dataclass(frozen=True)
class FactoryPeriod:
    """One period's inventory inputs from the NMP recovery unit."""

    start: datetime
    end: datetime
    level: str
    label: str
    electricity_kWh: float
    heat_kWh: float
    nmp_fed_kg: float
    nmp_recovered_kg: float  # reused as battery-grade NMP
    nmp_makeup_kg: float  # virgin NMP bought: fed - recovered (0 if more came back than went in)
    nmp_emitted_kg: float  # to air at the stack
    hours: int
    hours_complete: int

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        return d


def factory_periods(result: KpiResult, level: Level = "day") -> list[FactoryPeriod]:
    """Inventory inputs per hour, shift or production day."""
    if level == "hour":
        frame = result.hourly.filter(pl.col("complete")).with_columns(
            start=pl.col("time"), hours=pl.lit(1), hours_complete=pl.lit(1),
            label=pl.col("time").dt.strftime("%Y-%m-%dT%H:%M"))
        length = {None: timedelta(hours=1)}
    elif level == "shift":
        frame = result.shifts.with_columns(
            label=pl.col("day").cast(pl.Utf8) + pl.lit(" ") + pl.col("shift"))
        pattern = result.shift_pattern
        length = {n: timedelta(hours=pattern.hours(n)) for n, _ in pattern.starts}
    elif level == "day":
        frame = result.days.with_columns(label=pl.col("day").cast(pl.Utf8))
        length = {None: timedelta(hours=24)}
    else:
        raise ValidationFailed("must be hour, shift or day", location="level")
    day0 = timedelta(minutes=result.shift_pattern.day_start_minutes)
    out = []
    for row in frame.iter_rows(named=True):  # one row per period, not per sample
        if level == "shift":
            start = datetime.combine(row["day"], datetime.min.time()) + day0
            offs, names = result.shift_pattern._offsets()
            start += timedelta(minutes=int(offs[names.index(row["shift"])]))
            end = start + length[row["shift"]]
        elif level == "day":
            start = datetime.combine(row["day"], datetime.min.time()) + day0
            end = start + length[None]
        else:
            start = row["start"]
            end = start + length[None]
        out.append(FactoryPeriod(
            start=start, end=end, level=level, label=row["label"],
            electricity_kWh=_f(row["electricity_kWh"]), heat_kWh=_f(row["heat_kWh"]),
            nmp_fed_kg=_f(row["fed_kg"]), nmp_recovered_kg=_f(row["recovered_kg"]),
            nmp_makeup_kg=max(_f(row["makeup_kg"]), 0.0), nmp_emitted_kg=_f(row["emitted_kg"]),
            hours=int(row["hours"]), hours_complete=int(row["hours_complete"] or 0)))
    return out


def _f(v: Any) -> float:
    return 0.0 if v is None else float(v)
