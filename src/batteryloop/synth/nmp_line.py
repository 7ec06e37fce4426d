"""The demo plant's NMP recovery line: two simulated days of telemetry up to the last full hour,
with one fault, imported the way a plant imports its historian's export, and the alarm rules run
over it so the plant page has an alarm to show and acknowledge.

The simulator (``factory.simulator``) writes the line's samples as a long historian CSV under
``<data_dir>/demo/plant/``; ``factory.telemetry.historian.import_csv`` screens and stores them
(the same path as ``batteryloop plant import-csv``); ``factory.monitor.evaluate`` logs the alarms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from batteryloop.factory.telemetry.store import TelemetryStore


@dataclass(frozen=True)
class LineRun:
    line: str
    start: datetime
    end: datetime
    csv: Path
    stored: int
    quarantined: int

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "csv": str(self.csv), "stored": self.stored, "quarantined": self.quarantined}


def window(hours: float, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``hours`` ending at the last full hour (UTC)."""
    end = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=hours), end


def simulate(store: TelemetryStore, folder: Path, settings: dict[str, Any], *,
             now: datetime | None = None) -> LineRun:
    """Simulate the line into a historian CSV and import it (nothing if the line has data)."""
    from batteryloop.factory.simulator import Fault, Simulator
    from batteryloop.factory.tags import load_tags
    from batteryloop.factory.telemetry.historian import import_csv

    line = settings["line"]
    start, end = window(settings["hours"], now)
    fault = settings["fault"]
    sim = Simulator(line, start=start, seed=settings["seed"],
                    faults=[Fault(fault["kind"],
                                  timedelta(hours=fault["start_fraction"] * settings["hours"]))])
    frame = sim.frame(end - start)
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / f"{line}-{start:%Y%m%dT%H}-{end:%Y%m%dT%H}.csv"
    frame.select(ts=pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%S%.3fZ"), tag="tag",
                 value="value", unit="unit").write_csv(csv)
    done = import_csv(csv, store, load_tags(), line)
    counts = done.counts
    return LineRun(line, start, end, csv, counts.stored, counts.quarantined_total)
