"""What the recycling and plant page tests add to the seeded plant: real packs dismantled into
batches (one open and closing, one whose measured outputs miss copper, one closed), users of a
recycler and of a maker, and a simulated NMP line written into the telemetry store."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from batteryloop.accounts.service import Accounts
from batteryloop.recycling import dismantling, packs, service
from batteryloop.registry.schemas import BatteryIn
from batteryloop.registry.service import Registry
from batteryloop.store import Database

RECYCLER = "Circular Metals Recycling"  # recycler and dismantler in the demo seed
MAKER = "Ningde Cell Works"  # a manufacturer: public tier
STAGE_USERS = {  # name: (organisation, user roles)
    "rex": (RECYCLER, ("reader", "writer")),
    "nina": (MAKER, ("reader",)),
}
OPEN, FLAGGED, CLOSED = "CMR-2028-001", "CMR-2028-002", "CMR-2028-003"
PROCESSED = {OPEN: "2028-03-31", FLAGGED: "2028-04-15", CLOSED: "2028-02-28"}

LINE = "demo"
SIM_START = datetime(2025, 1, 6, 22, 0, tzinfo=UTC)  # 06:00 on 7 January, plant time (UTC+8)
SIM_HOURS = 2
FOULING_AFTER = timedelta(minutes=30)  # condenser 2 starts fouling: the model panel moves off
STUCK_AFTER = timedelta(minutes=60)  # condenser 1's outlet transmitter sticks: a 'stuck' alarm


def add_stage_users(db: Database, password: str | None = None) -> dict[str, str]:
    """The recycler's writer and a maker's reader; returns an API token per user."""
    tokens = {}
    with db.session() as s:
        accounts = Accounts(s)
        for name, (org, roles) in STAGE_USERS.items():
            accounts.add_user(name, org, roles=roles)
            if password:
                accounts.set_password(name, password)
            scopes = ["write"] if "writer" in roles else []
            tokens[name] = accounts.create_token(name, scopes=scopes)[1]
    return tokens


def _dismantled_pack(reg: Registry, s: Any, name: str, serial: str) -> str:
    """A real pack (mass, energy, chemistry as published), collected and dismantled as its
    published data say."""
    p = packs.pack(name)
    battery = reg.register(BatteryIn(kind="pack", chemistry=p["chemistry"], mass_kg=p["mass_kg"],
                                     rated_energy_wh=p["energy_kwh"] * 1000, manufacturer=MAKER),
                           actor=MAKER)
    reg.add_identifier(battery.uid, "serial", serial)
    for state in ("in_service", "retired", "collected"):
        reg.change_status(battery.uid, state)
    dismantling.record(s, battery.uid, dismantling.DismantlingIn(
        fractions=packs.expected_fractions(name), weighed_mass_kg=p["mass_kg"], actor=RECYCLER))
    return battery.uid


def recycling_batches(db: Database) -> dict[str, list[str]]:
    """Three batches of the recycler; returns the battery uids of each."""
    with db.session() as s:
        reg = Registry(s)
        made = {
            OPEN: [_dismantled_pack(reg, s, "nissan-leaf-ze0-24kwh", "LEAF-R1"),
                   _dismantled_pack(reg, s, "ellingsen-nmc-26kwh", "NMC-R1")],
            FLAGGED: [_dismantled_pack(reg, s, "ellingsen-nmc-26kwh", "NMC-R2")],
            CLOSED: [_dismantled_pack(reg, s, "nissan-leaf-ze0-24kwh", "LEAF-R2")],
        }
        routes = {OPEN: "hydrometallurgical", FLAGGED: "hydrometallurgical",
                  CLOSED: "pyrometallurgical"}
        for ref, uids in made.items():
            service.create(s, service.BatchIn(
                ref=ref, route=routes[ref], batteries=uids, actor=RECYCLER,
                processed_on=datetime.fromisoformat(PROCESSED[ref]).date()))
        # measured outputs that leave the copper out: its balance cannot close
        modelled = service.evaluate(s, FLAGGED)["outputs"]["streams"]
        service.set_outputs(s, FLAGGED, [service.OutputIn(**o) for o in modelled
                                         if o["constituent"] != "cu"])
        service.close(s, CLOSED, actor=RECYCLER)
    return made


def simulate_line(root: Path, *, hours: float = SIM_HOURS, start: datetime = SIM_START,
                  line: str = LINE) -> Path:
    """``hours`` of the simulated line (fouling and a stuck transmitter on the way) written into a
    telemetry store at ``root``, in-process: no broker."""
    from batteryloop.factory.simulator import Fault, Simulator
    from batteryloop.factory.telemetry.store import TelemetryStore

    sim = Simulator(line, start=start, seed=7, faults=[
        Fault("fouling", FOULING_AFTER), Fault("stuck", STUCK_AFTER)])
    store = TelemetryStore(root)
    for frame in sim.frames(timedelta(hours=hours)):
        store.write(samples=frame.with_columns(line=pl.lit(line)))
    return root


def more_of_the_line(root: Path, after: datetime, minutes: int, line: str = LINE) -> None:
    """The same line carrying on for ``minutes`` after ``after`` (new samples arriving)."""
    from batteryloop.factory.simulator import Fault, Simulator
    from batteryloop.factory.telemetry.store import TelemetryStore

    sim = Simulator(line, start=SIM_START, seed=8, faults=[
        Fault("fouling", FOULING_AFTER), Fault("stuck", STUCK_AFTER)])
    frame = sim.chunk(after, after + timedelta(minutes=minutes))
    TelemetryStore(root).write(samples=frame.with_columns(line=pl.lit(line)))


def copy_store(source: Path, data_dir: Path) -> Path:
    """A copy of a simulated store as the data directory's telemetry (one simulation per run)."""
    target = data_dir / "telemetry"
    shutil.copytree(source, target)
    return target


def evaluate_alarms(db: Database, root: Path, *, line: str = LINE,
                    start: datetime = SIM_START, hours: float = SIM_HOURS) -> list[str]:
    """The alarm rules over the whole simulated span, into the alarm log; the alarms raised."""
    from batteryloop.factory import monitor
    from batteryloop.factory.telemetry.store import TelemetryStore

    with db.session() as s:
        done = monitor.evaluate(s, TelemetryStore(root), line, start,
                                start + timedelta(hours=hours))
    return [t["alarm"] for t in done.transitions.to_dicts() if t["kind"] == "raised"]
