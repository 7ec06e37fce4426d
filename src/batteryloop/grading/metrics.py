"""What a grading rule can look at: each metric with its unit and which way is better.

A rule never sees a bare number: it sees a measure with an interval, and takes the bound that is
worse for the battery (the lower bound of SOH, the upper bound of resistance increase), so an
uncertain measurement can only make a decision stricter, never looser.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from batteryloop.errors import ValidationFailed

Better = Literal["higher", "lower"]

# The lifecycle states a grade can send a battery to (registry/data/lifecycle.toml): "waste" is the
# recycling route (waste -> dismantled -> recycled).
ROUTES = ("reused", "repurposed", "remanufactured", "waste")

# Health parameters of health/data/soh_parameters.toml that a policy may name as its SOH.
HEALTH_PARAMETERS = (
    "capacity_soh", "soce", "resistance_increase", "power_capability", "round_trip_efficiency",
    "self_discharge", "capacity_fade",
)

# What the inspection records as seen or not seen; a policy's `finding` conditions name these.
VISUAL_FINDINGS = (
    "swelling", "leakage", "damage", "corrosion", "thermal_marks", "loose_connections",
)


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: Better
    label: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("soh", "%", "higher", "state of health (the policy's soh_parameters, first recorded)"),
        Metric("capacity_soh", "%", "higher", "remaining capacity / rated capacity"),
        Metric("soce", "%", "higher", "state of certified energy"),
        Metric("capacity_fade", "%", "lower", "capacity fade since rated"),
        Metric("resistance_increase", "%", "lower", "DC resistance increase over the initial value"),
        Metric("self_discharge", "%/month", "lower", "self-discharge rate"),
        Metric("round_trip_efficiency", "%", "higher", "energy round-trip efficiency"),
        Metric("power_capability", "W", "higher", "power capability at the minimum voltage"),
        Metric("cell_soh_spread", "percentage points", "lower",
               "difference in SOH between the best and the worst cell"),
        Metric("calendar_age", "years", "lower", "years since manufacture"),
        Metric("months_to_expiry", "months", "higher",
               "months left to the maker's expiry date (negative: expired)"),
        Metric("insulation_resistance", "ohm/V", "higher",
               "insulation resistance per volt of working voltage"),
        Metric("min_cell_voltage", "V", "higher", "lowest cell open-circuit voltage"),
        Metric("bms_faults", "codes", "lower",
               "BMS fault codes read out, less those the policy ignores"),
    )
}


@dataclass(frozen=True)
class Measure:
    """A value with its interval and provenance; exact facts (age, counts) have lower = upper."""

    value: float
    lower: float
    upper: float
    unit: str
    method: str | None = None
    source: str | None = None
    parameter: str | None = None  # the health parameter behind it, e.g. "soce" for "soh"

    def __post_init__(self) -> None:
        for name in ("value", "lower", "upper"):
            number = getattr(self, name)
            if not isinstance(number, (int, float)) or not math.isfinite(number):
                raise ValidationFailed(f"{name} must be a finite number, got {number!r}",
                                       location=self.parameter or "measure")
        if not self.lower <= self.value <= self.upper:
            raise ValidationFailed(
                f"interval [{self.lower}, {self.upper}] does not contain the value {self.value}",
                location=self.parameter or "measure")

    @classmethod
    def exact(cls, value: float, unit: str, *, method: str | None = None,
              source: str | None = None) -> Measure:
        return cls(float(value), float(value), float(value), unit, method, source)

    @classmethod
    def from_health(cls, value: Any) -> Measure:
        """From a health.soh.HealthValue or its dict (as in a `health-assessed` event)."""
        d = value.as_dict() if hasattr(value, "as_dict") else dict(value)
        try:
            return cls(float(d["value"]), float(d["lower"]), float(d["upper"]), d.get("unit", ""),
                       d.get("method"), d.get("source"), d["parameter"])
        except KeyError as exc:
            raise ValidationFailed(f"a health value needs '{exc.args[0]}'", location="health") from None
        except (TypeError, ValueError) as exc:
            raise ValidationFailed(f"a health value is not a number: {exc}", location="health") from None

    def bound(self, better: Better) -> tuple[float, str]:
        """The bound that is worse for the battery, and its name."""
        if self.lower == self.upper:
            return self.value, "exact"
        return (self.lower, "lower") if better == "higher" else (self.upper, "upper")

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}
