"""Helpers shared by the registry tests (plain functions, imported by name; not a test module)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.store import Database
from batteryloop.store.models import Battery, Event, Identifier, Lineage, Organisation

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
ZERO_HASH = "0" * 64
# produced -> graded, the way a battery goes to second life
TO_GRADED = ("in_service", "retired", "collected", "tested", "graded")


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def add_org(reg: Registry, name: str, *roles: str, public_key: bytes | None = None) -> Organisation:
    return reg.add_organisation(
        OrganisationIn(
            name=name, roles=list(roles or ("manufacturer",)),
            public_key=public_key.hex() if public_key else None,
        )
    )


def add_battery(reg: Registry, *, kind: str = "pack", manufacturer: str | None = None,
                chemistry: str = "NMC", **extra: Any) -> Battery:
    return reg.register(
        BatteryIn(kind=kind, manufacturer=manufacturer, chemistry=chemistry, **extra),
        actor=manufacturer,
    )


def walk(reg: Registry, uid: str, states: tuple[str, ...], *, actor: str | None = None) -> None:
    for state in states:
        reg.change_status(uid, state, actor=actor)


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def counts(db: Database) -> dict[str, int]:
    with db.session() as s:
        return {m.__tablename__: count(s, m) for m in (Organisation, Battery, Event, Identifier, Lineage)}


def event_rows(session: Session, battery_uid: str) -> list[dict[str, Any]]:
    """A battery's stored event rows in seq order, as the database holds them."""
    stmt = (
        select(Event, Battery.uid, Organisation.uid)
        .join(Battery, Battery.id == Event.battery_id)
        .outerjoin(Organisation, Organisation.id == Event.actor_id)
        .where(Battery.uid == battery_uid)
        .order_by(Event.seq)
    )
    return [
        {
            "id": e.id, "seq": e.seq, "type": e.type, "battery": buid, "actor": actor,
            "occurred_at": e.occurred_at, "recorded_at": e.recorded_at, "payload": e.payload,
            "prev": bytes(e.prev_hash), "hash": bytes(e.hash),
            "signature": bytes(e.signature) if e.signature is not None else None,
        }
        for e, buid, actor in session.execute(stmt)
    ]


def reference_hash(*, battery: str, seq: int, event_type: str, actor: str | None, occurred_at: str,
                   recorded_at: str, payload: Any, prev: bytes, signature: bytes | None) -> bytes:
    """The event hash as the module docstring defines it, built with the reference JCS library."""
    return hashlib.sha256(
        rfc8785.dumps(
            {
                "actor": actor, "battery": battery, "occurred_at": occurred_at, "payload": payload,
                "prev": prev.hex(), "recorded_at": recorded_at, "seq": seq,
                "signature": signature.hex() if signature is not None else None,
                "type": event_type,
            }
        )
    ).digest()


def unguard_events(conn: Any) -> None:
    """Remove the append-only guard on ``events`` (what a tamperer with owner rights can do)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only"))
    else:
        conn.execute(text("DROP TRIGGER events_no_update"))
        conn.execute(text("DROP TRIGGER events_no_delete"))


def reguard_events(db: Database) -> None:
    """Undo ``unguard_events`` where it would outlive the test (the PostgreSQL database is shared)."""
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE events ENABLE TRIGGER events_append_only"))
