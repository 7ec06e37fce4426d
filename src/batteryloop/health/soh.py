"""State of health as the EU Battery Regulation defines it: a set of parameters, each with its
date, method and uncertainty (``data/soh_parameters.toml`` says which apply to which battery).

Uncertainty follows the GUM: standard uncertainties of independent sources combine in quadrature,
and the reported interval is value +- k * u (k from the data file, 2 by default).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from typing import Any

import numpy as np
import polars as pl

from batteryloop.errors import ValidationFailed


@cache
def parameters() -> dict[str, Any]:
    return tomllib.loads((files("batteryloop.health") / "data" / "soh_parameters.toml").read_text())


@dataclass(frozen=True)
class HealthValue:
    """One health parameter with its interval and provenance."""

    parameter: str
    value: float
    lower: float
    upper: float
    unit: str
    method: str
    measured_at: str
    source: str | None = None  # test file SHA-256 or model version

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _positive(name: str, value: float | None) -> float:
    if value is None or not math.isfinite(value) or value <= 0:
        raise ValidationFailed(f"{name} must be a positive number, got {value!r}", location=name)
    return float(value)


def _value(parameter: str, value: float, u: float, method: str, when: datetime | None,
           source: str | None) -> HealthValue:
    k = parameters()["uncertainty"]["coverage_factor"]
    return HealthValue(
        parameter=parameter, value=value, lower=value - k * u, upper=value + k * u,
        unit=parameters()["parameters"][parameter]["unit"], method=method,
        measured_at=(when or datetime.now(UTC)).isoformat(timespec="seconds"), source=source,
    )


def capacity_soh(measured_ah: float, rated_ah: float, *, spread_ah: float = 0.0,
                 when: datetime | None = None, source: str | None = None,
                 method: str = "full discharge capacity test") -> HealthValue:
    """Remaining capacity relative to rated, in %; u from tester accuracy and cycle spread."""
    measured, rated = _positive("measured_ah", measured_ah), _positive("rated_ah", rated_ah)
    if measured > 1.5 * rated:
        raise ValidationFailed(
            f"measured capacity {measured} Ah is over 1.5x the rating {rated} Ah: wrong units "
            "(mAh?) or wrong rating", location="measured_ah")
    rel = parameters()["uncertainty"]["capacity_relative"]
    u = 100 * math.hypot(rel * measured, spread_ah) / rated
    return _value("capacity_soh", 100 * measured / rated, u, method, when, source)


def soce(usable_wh: float, certified_wh: float, *, spread_wh: float = 0.0,
         when: datetime | None = None, source: str | None = None,
         method: str = "measured usable energy, full discharge") -> HealthValue:
    """State of certified energy (UN GTR No. 22), in %."""
    usable, certified = _positive("usable_wh", usable_wh), _positive("certified_wh", certified_wh)
    rel = parameters()["uncertainty"]["energy_relative"]
    u = 100 * math.hypot(rel * usable, spread_wh) / certified
    return _value("soce", 100 * usable / certified, u, method, when, source)


def resistance_increase(r_ohm: float, r_initial_ohm: float, *, when: datetime | None = None,
                        source: str | None = None, method: str = "DCIR from current steps") -> HealthValue:
    r, r0 = _positive("r_ohm", r_ohm), _positive("r_initial_ohm", r_initial_ohm)
    rel = parameters()["uncertainty"]["resistance_relative"]
    u = 100 * (r / r0) * rel * math.sqrt(2)
    return _value("resistance_increase", 100 * (r / r0 - 1), u, method, when, source)


def dc_resistance(r_ohm: float, *, when: datetime | None = None, source: str | None = None,
                  method: str = "DCIR from current pulses") -> HealthValue:
    """Internal (DC) resistance in ohm, Annex VII Part A's "ohmic resistance"."""
    r = _positive("r_ohm", r_ohm)
    rel = parameters()["uncertainty"]["resistance_relative"]
    return _value("dc_resistance", r, r * rel, method, when, source)


def power_capability(ocv_v: float, v_min: float, r_ohm: float, *, when: datetime | None = None,
                     source: str | None = None) -> HealthValue:
    """Power at the minimum voltage: P = V_min (OCV - V_min) / R (ohmic model)."""
    ocv, vmin, r = _positive("ocv_v", ocv_v), _positive("v_min", v_min), _positive("r_ohm", r_ohm)
    if vmin >= ocv:
        raise ValidationFailed(f"v_min {vmin} V must be below the OCV {ocv} V", location="v_min")
    p = vmin * (ocv - vmin) / r
    rel = parameters()["uncertainty"]["resistance_relative"]
    return _value("power_capability", p, p * rel, "ohmic model at V_min", when, source)


def round_trip_efficiency(discharge_wh: float, charge_wh: float, *, when: datetime | None = None,
                          source: str | None = None) -> HealthValue:
    d, c = _positive("discharge_wh", discharge_wh), _positive("charge_wh", charge_wh)
    eta = d / c
    if eta > 1.02:
        raise ValidationFailed(f"round-trip efficiency {eta:.3f} exceeds 1: energies swapped?",
                               location="discharge_wh")
    rel = parameters()["uncertainty"]["energy_relative"]
    return _value("round_trip_efficiency", 100 * eta, 100 * eta * rel * math.sqrt(2),
                  "discharge/charge energy of one cycle", when, source)


def self_discharge(capacity_before_ah: float, capacity_after_ah: float, rest_days: float, *,
                   when: datetime | None = None, source: str | None = None) -> HealthValue:
    """Capacity lost over an open-circuit rest, per 30 days."""
    before = _positive("capacity_before_ah", capacity_before_ah)
    after = _positive("capacity_after_ah", capacity_after_ah)
    days = _positive("rest_days", rest_days)
    rate = 100 * (before - after) / before * 30 / days
    rel = parameters()["uncertainty"]["capacity_relative"]
    u = 100 * math.sqrt(2) * rel * 30 / days
    return _value("self_discharge", rate, u, "capacity before and after a rest", when, source)


def from_cycles(summary: pl.DataFrame, *, rated_ah: float, certified_wh: float | None = None,
                initial_r_ohm: float | None = None, last: int = 3, when: datetime | None = None,
                source: str | None = None) -> list[HealthValue]:
    """Health parameters from a test's per-cycle summary (batteryloop.cycling.summary.cycles).

    Uses the last ``last`` cycles with a real discharge; their spread enters the uncertainty.
    """
    if "discharge_capacity_ah" not in summary.columns:
        raise ValidationFailed("per-cycle summary lacks 'discharge_capacity_ah'", location="summary")
    full = summary.filter(pl.col("discharge_capacity_ah") > 0.05 * rated_ah).tail(last)
    if full.height == 0:
        raise ValidationFailed("no cycle with a discharge of at least 5 % of the rating",
                               location="summary")
    cap = full["discharge_capacity_ah"].to_numpy()
    out = [capacity_soh(float(cap.mean()), rated_ah,
                        spread_ah=float(cap.std(ddof=1)) if cap.size > 1 else 0.0,
                        when=when, source=source,
                        method=f"mean discharge capacity of the last {cap.size} full cycle(s)")]
    if "discharge_energy_wh" not in full.columns:
        return out
    energy = full["discharge_energy_wh"].to_numpy()
    if certified_wh and np.all(np.isfinite(energy)):
        out.append(soce(float(energy.mean()), certified_wh,
                        spread_wh=float(energy.std(ddof=1)) if energy.size > 1 else 0.0,
                        when=when, source=source))
    charge = full["charge_energy_wh"].to_numpy() if "charge_energy_wh" in full.columns else energy * np.nan
    both = np.isfinite(charge) & np.isfinite(energy) & (charge > 0)
    if both.any():
        out.append(round_trip_efficiency(float(energy[both][-1]), float(charge[both][-1]),
                                         when=when, source=source))
    if initial_r_ohm and "dcir_ohm" in summary.columns:
        r = summary["dcir_ohm"].drop_nans().drop_nulls()
        if r.len():
            out.append(resistance_increase(float(r.tail(last).mean()), initial_r_ohm, when=when,
                                           source=source))
    return out


def blocks(step_table: pl.DataFrame) -> pl.DataFrame:
    """Charges and discharges as the cell saw them: adjacent steps of one direction merged.

    Testers split one charge into CC and CV steps and number cycles differently (a Maccor cycle 0
    may hold several charge/discharge pairs), so capacity is measured per block, not per cycle.
    Rests between steps of the same direction do not break a block.
    """
    moving = step_table.filter(pl.col("step_type").cast(pl.String).is_in(["charge", "discharge"]))
    return (
        moving.with_columns(direction=pl.col("step_type").cast(pl.String))
        .with_columns(block=(pl.col("direction") != pl.col("direction").shift(1)).fill_null(True).cum_sum())
        .group_by("block", maintain_order=True)
        .agg(
            pl.col("direction").first(),
            pl.col("capacity_ah").sum(),
            pl.col("energy_wh").sum(),
            pl.col("duration_second").sum(),
        )
    )


def from_steps(step_table: pl.DataFrame, *, rated_ah: float, certified_wh: float | None = None,
               last: int = 3, when: datetime | None = None, source: str | None = None
               ) -> list[HealthValue]:
    """Health parameters from a test's per-step table (batteryloop.cycling.summary.steps).

    Capacity is the mean of the last ``last`` full discharges (blocks of at least half the
    largest one) at the rate of the last one (within 15 %), since capacity depends on rate;
    round-trip efficiency pairs the last full discharge with the charge before it.
    """
    if not {"step_type", "capacity_ah", "energy_wh"} <= set(step_table.columns):
        raise ValidationFailed("per-step table lacks step_type, capacity_ah or energy_wh",
                               location="steps")
    table = blocks(step_table)
    discharges = table.filter(pl.col("direction") == "discharge")
    if discharges.height == 0 or discharges["capacity_ah"].max() < 0.05 * rated_ah:
        raise ValidationFailed("no discharge of at least 5 % of the rating in the test",
                               location="steps")
    full = discharges.filter(pl.col("capacity_ah") >= 0.5 * discharges["capacity_ah"].max())
    # capacity depends on rate: average only the last discharges at the rate of the last one
    full = full.with_columns(current=pl.col("capacity_ah") * 3600 / pl.col("duration_second"))
    rate = float(full["current"][-1])
    full = full.filter((pl.col("current") - rate).abs() <= 0.15 * rate).tail(last)
    cap = full["capacity_ah"].to_numpy()
    spread = float(cap.std(ddof=1)) if cap.size > 1 else 0.0
    out = [capacity_soh(float(cap.mean()), rated_ah, spread_ah=spread, when=when, source=source,
                        method=f"mean of the last {cap.size} full discharge(s) at {rate:.3g} A")]
    energy = full["energy_wh"].to_numpy()
    if certified_wh:
        out.append(soce(float(energy.mean()), certified_wh,
                        spread_wh=float(energy.std(ddof=1)) if energy.size > 1 else 0.0,
                        when=when, source=source))
    last_block = int(full["block"][-1])
    before = table.filter((pl.col("block") == last_block - 1) & (pl.col("direction") == "charge"))
    if before.height and before["energy_wh"][0] > 0:
        out.append(round_trip_efficiency(float(energy[-1]), float(before["energy_wh"][0]),
                                         when=when, source=source))
    return out
