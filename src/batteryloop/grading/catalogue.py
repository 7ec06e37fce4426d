"""The batteries as the loop sees them: a page of batteries with their latest grade, filters by
lifecycle state, chemistry, kind and grade, and the count in each lifecycle state.

Why here and not in the registry: a grade is a grading fact (the payload of the newest `graded`
event), and the registry floor knows nothing of grading. Every read is a fixed number of queries
per page (the page, its total, the grades of the batteries on it), never one per battery.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, cast, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from batteryloop.grading.service import EVENT as GRADED
from batteryloop.registry.lifecycle import lifecycle
from batteryloop.registry.service import Registry
from batteryloop.store.models import Battery, Event

MAX_PAGE = 200


def _latest_graded() -> Any:
    """battery_id -> id of its newest `graded` event."""
    return (select(Event.battery_id, func.max(Event.id).label("event_id"))
            .where(Event.type == GRADED).group_by(Event.battery_id).subquery("latest_graded"))


def _grade_expr(session: Session) -> ColumnElement[Any]:
    """The `grade` field of an event's JSON payload, in the database's own JSON functions."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(Event.payload, JSONB)["grade"].astext
    return func.json_extract(Event.payload, "$.grade")


def graded(session: Session, grade: str) -> ColumnElement[bool]:
    """A condition on Battery: its latest grade is ``grade`` (for a statement built elsewhere)."""
    latest = _latest_graded()
    return Battery.id.in_(select(latest.c.battery_id)
                          .join(Event, Event.id == latest.c.event_id)
                          .where(_grade_expr(session) == grade))


def with_grade(session: Session, stmt: Select[Any], grade: str) -> Select[Any]:
    latest = _latest_graded()
    return (stmt.join(latest, latest.c.battery_id == Battery.id)
            .join(Event, Event.id == latest.c.event_id)
            .where(_grade_expr(session) == grade))


def latest_grades(session: Session, battery_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The newest grade of each of these batteries (one query), by battery id."""
    if not battery_ids:
        return {}
    newest = (select(func.max(Event.id)).where(Event.type == GRADED,
                                               Event.battery_id.in_(battery_ids))
              .group_by(Event.battery_id))
    rows = session.execute(select(Event.battery_id, Event.payload, Event.occurred_at)
                           .where(Event.id.in_(newest)))
    out = {}
    for battery_id, payload, occurred in rows:
        data = orjson.loads(payload)
        out[battery_id] = {"grade": data.get("grade"), "route": data.get("route"),
                           "policy": (data.get("policy") or {}).get("name"),
                           "graded_at": occurred.isoformat()}
    return out


def find(
    session: Session, *, query: str | None = None, state: str | None = None,
    chemistry: str | None = None, kind: str | None = None, grade: str | None = None,
    limit: int = 50, offset: int = 0,
) -> dict[str, Any]:
    """A page of batteries matching every filter given, each with its name (``labels``) and its
    latest grade (or None)."""
    limit = max(1, min(int(limit), MAX_PAGE))
    offset = max(0, int(offset))
    if state:
        lifecycle().state(state)  # an unknown state is a clear error, not an empty page
    stmt = Registry.battery_filter(state=state, chemistry=chemistry, kind=kind, query=query)
    if grade:
        stmt = with_grade(session, stmt, grade)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    page = list(session.scalars(stmt.order_by(Battery.id).limit(limit).offset(offset)))
    grades = latest_grades(session, [b.id for b in page])
    names = labels(session, [b.uid for b in page])
    items = [{**Registry.brief(b), "label": names.get(b.uid), "chemistry": b.chemistry,
              "rated_capacity_ah": b.rated_capacity_ah, **(grades.get(b.id) or {"grade": None})}
             for b in page]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def grades_in_use(session: Session, where: ColumnElement[bool] | None = None) -> list[str]:
    """The grades that batteries hold now (for a filter's choices); ``where``: of the batteries
    matching this condition only (those whose grade a reader may read)."""
    latest = _latest_graded()
    expr = _grade_expr(session)
    stmt = select(expr).select_from(Event).join(latest, latest.c.event_id == Event.id)
    if where is not None:
        stmt = stmt.join(Battery, Battery.id == latest.c.battery_id).where(where)
    rows = session.scalars(stmt.distinct())
    return sorted(g for g in rows if g)


def chemistries_in_use(session: Session) -> list[str]:
    rows = session.scalars(select(Battery.chemistry).where(Battery.chemistry.is_not(None))
                           .distinct())
    return sorted(rows)


def state_counts(session: Session, where: ColumnElement[bool] | None = None
                 ) -> list[dict[str, Any]]:
    """Batteries in each lifecycle state, in the lifecycle's own order (zeros included);
    ``where``: of the batteries matching this condition only (those whose state a reader may read)."""
    stmt = select(Battery.state, func.count()).group_by(Battery.state)
    if where is not None:
        stmt = stmt.where(where)
    counts = {state: n for state, n in session.execute(stmt)}
    states = lifecycle().states
    out = [{"state": name, "count": int(counts.pop(name, 0)), "node": s.node,
            "eu_status": s.eu_status, "next": list(s.next)} for name, s in states.items()]
    out += [{"state": name, "count": int(n), "node": None, "eu_status": None, "next": []}
            for name, n in sorted(counts.items())]  # states a deployment has since removed
    return out


def labels(session: Session, uids: list[str]) -> dict[str, str]:
    """A short name people use for each battery: its GB/T 34014 code, else its first identifier
    other than the passport id, else nothing (the caller shows the uid). One query."""
    from batteryloop.store.models import Identifier

    if not uids:
        return {}
    rows = session.execute(select(Battery.uid, Battery.code, Identifier.value)
                           .outerjoin(Identifier, (Identifier.battery_id == Battery.id)
                                      & (Identifier.scheme.not_in(("passport", "gbt34014"))))
                           .where(Battery.uid.in_(uids)).order_by(Identifier.id))
    out: dict[str, str] = {}
    for uid, code, value in rows:
        if uid not in out and (code or value):
            out[uid] = code or value
    return out
