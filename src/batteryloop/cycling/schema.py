"""The canonical cycling table: Battery Data Format (BDF) machine names, SI units, fixed dtypes.

Column names follow the Battery Data Alliance's Battery Data Format ontology 1.2.0
(https://w3id.org/battery-data-alliance/ontology/battery-data-format, Apache-2.0). Two BDF facts
shape the table:

* ``charging_capacity_ah`` and friends accumulate from the start of the test and never reset;
  ``cycle_charging_capacity_ah`` and friends reset to zero when ``cycle_count`` increments. Testers
  export one or the other (or reset per step), so we always carry both, derived from increments.
* ``step_id`` is the program step (Arbin Step_Index, Maccor Step, Neware Step); ``step_count``
  increments each time a new step starts and never repeats.

Current is positive while charging (BDF convention). ``step_type`` is our addition: a coarse
charge/discharge/rest/other label that every reader can fill.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

STEP_TYPES: tuple[str, ...] = ("charge", "discharge", "rest", "other")
StepType = pl.Enum(list(STEP_TYPES))

#: Column name -> polars dtype, in output order. Every canonical frame has all of them.
COLUMNS: dict[str, pl.DataType] = {
    "test_time_second": pl.Float64(),
    "unix_time_second": pl.Float64(),
    "voltage_volt": pl.Float64(),
    "current_ampere": pl.Float64(),
    "cycle_count": pl.Int64(),
    "step_id": pl.Int64(),
    "step_count": pl.Int64(),
    "step_type": StepType,
    "charging_capacity_ah": pl.Float64(),
    "discharging_capacity_ah": pl.Float64(),
    "charging_energy_wh": pl.Float64(),
    "discharging_energy_wh": pl.Float64(),
    "cycle_charging_capacity_ah": pl.Float64(),
    "cycle_discharging_capacity_ah": pl.Float64(),
    "cycle_charging_energy_wh": pl.Float64(),
    "cycle_discharging_energy_wh": pl.Float64(),
    "ambient_temperature_celsius": pl.Float64(),
    "temperature_t1_celsius": pl.Float64(),
}

#: BDF "required" quantities: a table without them is not usable.
REQUIRED: tuple[str, ...] = ("test_time_second", "voltage_volt", "current_ampere")

#: BDF preferred labels ("Quantity / unit") of the columns we map, for BDF files in label style.
PREFERRED_LABELS: dict[str, str] = {
    "Test Time / s": "test_time_second",
    "Unix Time / s": "unix_time_second",
    "Voltage / V": "voltage_volt",
    "Current / A": "current_ampere",
    "Cycle Count / 1": "cycle_count",
    "Step Count / 1": "step_count",
    "Step ID": "step_id",
    "Step Type": "step_type",
    "Charging Capacity / Ah": "charging_capacity_ah",
    "Discharging Capacity / Ah": "discharging_capacity_ah",
    "Charging Energy / Wh": "charging_energy_wh",
    "Discharging Energy / Wh": "discharging_energy_wh",
    "Ambient Temperature / degC": "ambient_temperature_celsius",
    "Temperature T1 / degC": "temperature_t1_celsius",
}

SCHEMA = pl.Schema(COLUMNS)


def empty_frame() -> pl.DataFrame:
    """A zero-row canonical frame (for callers that need the schema without data)."""
    return pl.DataFrame(schema=SCHEMA)


@dataclass
class CyclerMetadata:
    """Where a canonical table came from and what was done to it on the way in.

    ``normalisations`` lists, in order, every change made to the tester's numbers (sign flips,
    unit scalings, time unwrapping) so that a reader of the table can undo or audit them.
    ``findings`` is filled by :func:`batteryloop.cycling.validate.validate`.
    """

    source_path: str
    sha256: str
    tester: str
    file_format: str
    channel: str | None = None
    cell_id: str | None = None
    start_time_unix: float | None = None
    nominal_capacity_ah: float | None = None
    normalisations: list[str] = field(default_factory=list)
    findings: list[Any] = field(default_factory=list)
    truncated_at_row: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def note(self, text: str) -> None:
        """Record one normalisation step."""
        self.normalisations.append(text)

    @property
    def name(self) -> str:
        return Path(self.source_path).name
