"""The demo's work that touches no database: the NMP line's two days of telemetry (simulated,
imported, alarm rules run over them) and the pulse-SOH model's training. It runs in a worker
process while the registry steps run, so the demo takes about as long as its slower half; the main
process then writes the alarms it found to the alarm log.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any


def work(root: str, plant: dict[str, Any], now: str, shared: str | None,
         models: bool | None) -> dict[str, Any]:
    """Both halves (module-level, so a spawned process can import it)."""
    return {"plant": plant_line(Path(root), plant, datetime.fromisoformat(now)),
            "models": train_models(Path(root), Path(shared) if shared else None, models)}


def plant_line(root: Path, settings: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Simulate and import the line (nothing if it has data) and find its alarm transitions."""
    from batteryloop.factory.monitor import detect
    from batteryloop.factory.telemetry.store import TelemetryStore
    from batteryloop.synth import nmp_line

    began, cpu = time.perf_counter(), time.process_time()
    store = TelemetryStore(root / "telemetry")
    if settings["line"] in store.lines():
        return {"seconds": time.perf_counter() - began, "cpu_seconds": time.process_time() - cpu,
                "run": None, "transitions": None}
    run = nmp_line.simulate(store, root / "demo" / "plant", settings, now=now)
    samples, transitions = detect(store, run.line, run.start, run.end)
    return {"seconds": time.perf_counter() - began, "cpu_seconds": time.process_time() - cpu,
            "run": run.as_dict(), "samples": samples, "transitions": transitions}


def train_models(root: Path, shared: Path | None, models: bool | None) -> dict[str, Any]:
    """The pulse-SOH model from the shared PulseBat data, unless asked not to, absent, or there."""
    from batteryloop.health import model_store

    began = time.perf_counter()

    def done(summary: str) -> dict[str, Any]:
        return {"seconds": time.perf_counter() - began, "summary": summary}

    if models is False:
        return done("skipped (--no-models)")
    target = root / "models"
    if model_store.catalogue(target, kind="pulse-soh"):
        return done("a pulse-SOH model is there: nothing trained")
    if shared is None or not shared.is_dir():
        return done("skipped: no shared data folder (set BATTERYLOOP_SHARED); the intake page's "
                    "pulse test needs `batteryloop model train pulse-soh` on the PulseBat data")
    try:
        made = model_store.train("pulse-soh", data=shared, root=target, write_report=False)
    except Exception as exc:  # noqa: BLE001 - the demo works without the model; say why
        return done(f"skipped: training failed ({exc})")
    return done(f"pulse-SOH model {made['version']} trained in {made['train_seconds']:.1f} s")


def start(root: Path, plant: dict[str, Any], now: datetime, shared: Path | None,
          models: bool | None) -> tuple[ProcessPoolExecutor | None, Future[dict[str, Any]] | None]:
    """Start the work in a spawned worker process (None, None if no process can be started)."""
    try:
        pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
        future = pool.submit(work, str(root), plant, now.isoformat(),
                             str(shared) if shared else None, models)
    except (OSError, RuntimeError, ValueError):
        return None, None
    return pool, future
