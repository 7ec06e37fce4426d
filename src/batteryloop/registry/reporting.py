"""Traceability report per node: what each organisation reported, and whether it was in time.

China's 2018 Interim Provisions give each node a number of working days to report a battery event
(``data/roles.toml``). Working days are Monday to Friday less the deployment's configured holidays
(``Settings.holidays``); the official calendar's shifted working weekends are not modelled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.registry.ledger import iso, utc
from batteryloop.registry.lifecycle import lifecycle
from batteryloop.registry.roles import deadline_working_days
from batteryloop.store.models import Battery, Event, Organisation, OrganisationRole


@dataclass(frozen=True)
class ReportRow:
    organisation: str
    role: str | None
    battery: str
    code: str | None
    seq: int
    event: str
    detail: str | None
    occurred_at: str
    recorded_at: str
    deadline: str | None
    working_days: int
    missed: bool


def _role_for(roles: set[str], event_type: str, payload: dict) -> str | None:
    """The node role under which an event is reported, and so its deadline."""
    if event_type == "status-changed":
        node = lifecycle().state(payload.get("to", "")).node if payload.get("to") in lifecycle().states else None
        if node in roles:
            return node
    timed = sorted((deadline_working_days(r), r) for r in roles if deadline_working_days(r))
    return timed[0][1] if timed else (sorted(roles)[0] if roles else None)


def traceability_report(
    session: Session, *, organisation: str | None = None, since: datetime | None = None,
    until: datetime | None = None, holidays: list[str] | None = None,
) -> list[ReportRow]:
    """One row per event reported by the node (or by every node), with its deadline."""
    stmt = (
        select(Organisation.id, Organisation.name, Battery.uid, Battery.code, Event.seq, Event.type,
               Event.payload, Event.occurred_at, Event.recorded_at)
        .join(Event, Event.actor_id == Organisation.id)
        .join(Battery, Battery.id == Event.battery_id)
        .order_by(Organisation.name, Event.recorded_at, Event.id)
    )
    if organisation:
        stmt = stmt.where((Organisation.uid == organisation) | (Organisation.name == organisation))
    if since:
        stmt = stmt.where(Event.occurred_at >= since)
    if until:
        stmt = stmt.where(Event.occurred_at < until)
    rows = session.execute(stmt).all()
    if not rows:
        return []
    roles: dict[int, set[str]] = {}
    for oid, role in session.execute(select(OrganisationRole.organisation_id, OrganisationRole.role)):
        roles.setdefault(oid, set()).add(role)
    payloads = [orjson.loads(r.payload) for r in rows]
    node = [_role_for(roles.get(r.id, set()), r.type, p) for r, p in zip(rows, payloads, strict=True)]
    limit = np.array([deadline_working_days(n) or -1 if n else -1 for n in node])
    occurred = np.array([utc(r.occurred_at).date() for r in rows], dtype="datetime64[D]")
    recorded = np.array([utc(r.recorded_at).date() for r in rows], dtype="datetime64[D]")
    off = np.array(sorted(holidays or []), dtype="datetime64[D]")
    taken = np.busday_count(occurred, recorded, holidays=off)
    has = limit >= 0
    deadline = np.where(
        has, np.busday_offset(occurred, np.where(has, limit, 0), roll="forward", holidays=off), occurred
    )
    missed = has & (recorded > deadline)
    return [
        ReportRow(
            organisation=r.name, role=n, battery=r.uid, code=r.code, seq=r.seq, event=r.type,
            detail=p.get("to") if r.type == "status-changed" else None,
            occurred_at=iso(r.occurred_at), recorded_at=iso(r.recorded_at),
            deadline=str(d) if h else None, working_days=int(t), missed=bool(m),
        )
        for r, p, n, d, h, t, m in zip(rows, payloads, node, deadline, has, taken, missed, strict=True)
    ]


def as_dicts(rows: list[ReportRow]) -> list[dict]:
    return [asdict(r) for r in rows]


