"""Which registered batteries a regrouping can be planned on: those matching a person's filters
(kind, lifecycle state, chemistry, grade, identifier) that have a rated capacity and a measured
capacity SOH, the two numbers ``from_ledger`` needs of every cell.

Why apart from ``from_ledger``: a planner picks cells by what they are, not by listing them; this
turns the filters into the list, and says how many matched but cannot be planned (and why), so
nothing is dropped silently.
"""

from __future__ import annotations

import orjson
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from batteryloop.grading.catalogue import with_grade
from batteryloop.health.assess import EVENT as HEALTH_EVENT
from batteryloop.registry.service import Registry
from batteryloop.store.models import Battery, Event

CAPACITY_PARAMETER = "capacity_soh"
MAX_BATTERIES = 20_000


def select_batteries(
    session: Session, *, kind: str | None = "cell", state: str | None = None,
    chemistry: str | None = None, grade: str | None = None, query: str | None = None,
    limit: int = MAX_BATTERIES, where: ColumnElement[bool] | None = None,
) -> tuple[list[str], int]:
    """The uids (registry order) of matching batteries with a rated capacity and a capacity SOH,
    and how many matched without them. Two queries, whatever the number of batteries.
    ``where``: of the batteries matching this condition only (those a reader may read)."""
    stmt = Registry.battery_filter(state=state, chemistry=chemistry, kind=kind, query=query)
    if where is not None:
        stmt = stmt.where(where)
    if grade:
        stmt = with_grade(session, stmt, grade)
    stmt = stmt.order_by(Battery.id).limit(limit)
    rows = session.execute(stmt.with_only_columns(Battery.id, Battery.uid,
                                                  Battery.rated_capacity_ah)).all()
    measured: set[int] = set()
    if rows:
        events = session.execute(select(Event.battery_id, Event.payload).where(
            Event.type == HEALTH_EVENT, Event.battery_id.in_(
                stmt.with_only_columns(Battery.id))))
        measured = {bid for bid, payload in events
                    if any(v.get("parameter") == CAPACITY_PARAMETER
                           for v in orjson.loads(payload).get("values", []))}
    usable = [uid for bid, uid, rated in rows if rated and bid in measured]
    return usable, len(rows) - len(usable)
