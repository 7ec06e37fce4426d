"""The demo plant's tester: a check-up of each incoming battery, generated from its own history by
the degradation model (or PyBaMM), stored as any tester file is (``cycling.storage``: a Parquet
file, a ``cycler_tests`` row and a ``tested`` event).

A battery's use comes from its ledger: the days between going into service and retiring, with
equivalent full cycles and a mean temperature drawn for it. Each battery draws from its own random
stream keyed on its code (or serial), so the same plant gives the same curves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.cycling import storage
from batteryloop.store import Database
from batteryloop.store.models import Battery, Event, Identifier
from batteryloop.synth import degradation as dm

Generator = Callable[[dm.Condition, np.random.Generator, float | None], pl.DataFrame]
SEED = 20261124


def rng_for(key: str, salt: str = "") -> np.random.Generator:
    """A random stream of its own for one battery (stable across runs)."""
    digest = hashlib.sha256(f"{SEED}:{salt}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def generator(pybamm: bool = False) -> Generator:
    """The demo's own model, or PyBaMM's (physically detailed, about a second per battery)."""
    if not pybamm:
        return lambda cond, rng, start: dm.checkup(cond, rng, start_unix=start)
    from batteryloop.synth import pybamm_curves

    pybamm_curves.require()
    return lambda cond, rng, start: pybamm_curves.checkup(cond, rng, start_unix=start)


@dataclass(frozen=True)
class Subject:
    """A battery to test, with what the model needs to know of it."""

    id: int
    uid: str
    key: str  # its code or serial: what keys its random stream and names its file
    chemistry: str
    rated_ah: float
    nominal_voltage_v: float | None
    days_in_service: float


def service_days(session: Session, batteries: Sequence[Battery], *, today: date | None = None
                 ) -> dict[int, float]:
    """Days each battery spent in service, from its ledger (first 'in_service' to 'retired';
    still in service: to today; never in service: since it was made)."""
    today = today or datetime.now(UTC).date()
    ids = [b.id for b in batteries]
    began: dict[int, datetime] = {}
    ended: dict[int, datetime] = {}
    for start in range(0, len(ids), 5000):
        rows = session.execute(
            select(Event.battery_id, Event.occurred_at, Event.payload)
            .where(Event.battery_id.in_(ids[start : start + 5000]), Event.type == "status-changed")
            .order_by(Event.battery_id, Event.seq))
        for bid, when, payload in rows:
            to = orjson.loads(payload).get("to")
            if to == "in_service":
                began.setdefault(bid, when)
            elif to == "retired":
                ended.setdefault(bid, when)
    out = {}
    for b in batteries:
        start = began.get(b.id)
        end = ended.get(b.id)
        if start is None:
            made = b.manufactured_on or today
            out[b.id] = float(max((today - made).days, 0))
        else:
            out[b.id] = float(max(((end.date() if end else today) - start.date()).days, 0))
    return out


def subjects(session: Session, batteries: Sequence[Battery],
             days: dict[int, float] | None = None) -> list[Subject]:
    days = days if days is not None else service_days(session, batteries)
    serials = dict(session.execute(
        select(Identifier.battery_id, Identifier.value).where(
            Identifier.battery_id.in_([b.id for b in batteries]),
            Identifier.scheme == "serial")).all())
    return [Subject(id=b.id, uid=b.uid, key=b.code or serials.get(b.id) or b.uid,
                    chemistry=b.chemistry or "", rated_ah=float(b.rated_capacity_ah or 0.0),
                    nominal_voltage_v=b.nominal_voltage_v, days_in_service=days[b.id])
            for b in batteries]


def condition_of(subject: Subject) -> dm.Condition:
    """The battery's state as the model ages it over its service."""
    chem = dm.chemistry(subject.chemistry)
    rng = rng_for(subject.key, "usage")
    usage = dm.draw_usage(chem, subject.days_in_service, rng)
    return dm.condition(chem, subject.rated_ah, usage, rng,
                        series=dm.series_count(chem, subject.nominal_voltage_v))


def generate(subject: Subject, cond: dm.Condition, make: Generator, *,
             start_unix: float | None) -> tuple[pl.DataFrame, Any]:
    """The check-up's canonical table and its metadata (as if read from the tester's BDF CSV)."""
    df = make(cond, rng_for(subject.key, "test"), start_unix)
    name = f"{subject.key}-checkup.bdf.csv"
    return df, dm.metadata(df, name, cell_id=subject.key, rated_ah=subject.rated_ah,
                           start_unix=start_unix)


def run(db: Database, batch: Sequence[Subject], *, actor: str, make: Generator,
        start: datetime, root: Path | None = None) -> list[tuple[Subject, dm.Condition, Any]]:
    """Test each battery and store its test (a ``tested`` event each); returns what was stored."""
    out = []
    for n, subject in enumerate(batch):
        cond = condition_of(subject)
        begin = start.timestamp() + 600.0 * n  # a tester bank: one channel started every 10 min
        df, meta = generate(subject, cond, make, start_unix=begin)
        stored = storage.store(db, df, meta, battery=subject.uid, actor=actor, root=root)
        out.append((subject, cond, stored))
    return out


def write_bdf(subject: Subject, cond: dm.Condition, folder: Path, make: Generator, *,
              start_unix: float | None) -> Path:
    """A check-up as a BDF CSV file (for the intake desk: a person uploads it in the browser)."""
    df, _ = generate(subject, cond, make, start_unix=start_unix)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{subject.key}.csv"
    path.write_bytes(dm.bdf_csv_bytes(df))
    return path
