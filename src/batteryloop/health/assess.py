"""Health of a battery in the registry: from its stored tests to a `health-assessed` ledger event.

The event carries every parameter with its interval, the method, the test file's hash (or the
model's version), so the grade that follows can name exactly what it rested on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.cycling import storage
from batteryloop.cycling.summary import cycles, steps
from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.health import soh
from batteryloop.registry.service import Registry
from batteryloop.store.models import CyclerTest

EVENT = "health-assessed"


def latest_test(session: Session, battery_id: int) -> CyclerTest:
    row = session.scalar(
        select(CyclerTest).where(CyclerTest.battery_id == battery_id).order_by(CyclerTest.id.desc())
    )
    if row is None:
        raise NotFound("the battery has no stored test: ingest a tester file for it first")
    return row


def assess_from_test(
    session: Session, ref: str, *, test: str | None = None, actor: str | None = None,
    initial_r_ohm: float | None = None, root: Path | None = None,
) -> dict[str, Any]:
    """Measure SOH parameters from a stored test of the battery and record them in its ledger."""
    reg = Registry(session)
    battery = reg.battery(ref)
    if not battery.rated_capacity_ah:
        raise ValidationFailed(
            "the battery has no rated capacity in the registry: SOH needs it", location="rated_capacity_ah"
        )
    row = storage.find(session, test) if test else latest_test(session, battery.id)
    if row.battery_id != battery.id:
        raise ValidationFailed(f"test {row.sha256[:12]} belongs to another battery", location="test")
    df, _ = storage.load(session, row.sha256, root)
    values = soh.from_steps(
        steps(df), rated_ah=battery.rated_capacity_ah, certified_wh=battery.rated_energy_wh,
        when=row.created_at, source=row.sha256,
    )
    if initial_r_ohm:
        r = cycles(df)["dcir_ohm"].drop_nans().drop_nulls()
        if r.len():
            values.append(soh.resistance_increase(float(r.tail(3).mean()), initial_r_ohm,
                                                  when=row.created_at, source=row.sha256))
    payload = {
        "method": "measured", "test": row.sha256, "tester": row.tester,
        "values": [v.as_dict() for v in values],
    }
    appended = reg.append(battery.uid, EVENT, payload, actor=actor)
    return {"battery": battery.uid, "seq": appended.seq, **payload}


def latest_assessment(session: Session, ref: str) -> dict[str, Any] | None:
    """The newest `health-assessed` event of a battery, as recorded."""
    for event in reversed(Registry(session).history(ref)):
        if event["type"] == EVENT:
            return {"seq": event["seq"], "occurred_at": event["occurred_at"], **event["payload"]}
    return None
