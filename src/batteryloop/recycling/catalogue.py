"""The recycler's batch list: every batch with its status, route, input mass and recycling
efficiency, filtered and one page at a time.

Why a module of its own: the list is a read over many batches, while ``service`` works on one. A
closed batch answers from the figures frozen when it closed; an open one is evaluated now (its
figures are a draft and say so), only for the rows of the page asked for.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from batteryloop.errors import BatteryloopError, ValidationFailed
from batteryloop.recycling import routes, service
from batteryloop.store.models import Dismantling, Organisation, RecyclingBatch

STATUSES = ("open", "closed")


def _filters(status: str | None, route: str | None, recycler: str | None,
             start: date | None, end: date | None, query: str | None) -> list[Any]:
    where: list[Any] = []
    if status is not None:
        if status not in STATUSES:
            raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}",
                                   location="status")
        where.append(RecyclingBatch.status == status)
    if route is not None:
        if route not in routes.names():
            raise ValidationFailed(f"unknown route '{route}' (known: {', '.join(routes.names())})",
                                   location="route")
        where.append(RecyclingBatch.route == route)
    if recycler is not None:
        where.append(RecyclingBatch.recycler_id.in_(
            select(Organisation.id).where(Organisation.uid == recycler)))
    if start is not None and end is not None and end < start:
        raise ValidationFailed("the period ends before it starts", location="end")
    if start is not None:
        where.append(RecyclingBatch.processed_on >= start)
    if end is not None:
        where.append(RecyclingBatch.processed_on <= end)
    if query:
        where.append(func.lower(RecyclingBatch.ref).contains(query.strip().lower(),
                                                             autoescape=True))
    return where


def _figures(session: Session, batch: RecyclingBatch) -> dict[str, Any]:
    """Input mass, recycling efficiency and the EU target judged on it, from the frozen result of a
    closed batch or a draft evaluation of an open one."""
    if batch.status == "closed" and batch.result:
        result = orjson.loads(batch.result)
    else:
        try:
            result = service.compute(session, batch)
        except BatteryloopError as exc:  # e.g. an open batch with nothing dismantled in it
            return {"input_kg": None, "recycling_efficiency_pct": None, "balance_closed": None,
                    "targets": [], "outputs_basis": batch.outputs_basis, "problem": exc.message}
    eff = result["compliance"]["recycling_efficiency"]
    return {"input_kg": result["mass_balance"]["total"]["input_kg"],
            "recycling_efficiency_pct": eff["value_pct"],
            "balance_closed": result["mass_balance"]["closed"],
            "targets": [{"regulation": t["regulation"], **t["in_force"]} for t in eff["targets"]
                        if t["in_force"]],
            "outputs_basis": result["outputs"]["basis"], "problem": None}


def batches(session: Session, *, status: str | None = None, route: str | None = None,
            recycler: str | None = None, start: date | None = None, end: date | None = None,
            query: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """Batches newest first (processed on, then created), with their figures."""
    where = _filters(status, route, recycler, start, end, query)
    total = session.scalar(select(func.count()).select_from(RecyclingBatch).where(*where)) or 0
    rows = list(session.scalars(
        select(RecyclingBatch).where(*where)
        .order_by(RecyclingBatch.processed_on.desc().nulls_first(),
                  RecyclingBatch.created_at.desc(), RecyclingBatch.id.desc())
        .limit(limit).offset(offset)))
    ids = [b.id for b in rows]
    counts = dict(session.execute(
        select(Dismantling.batch_id, func.count()).where(Dismantling.batch_id.in_(ids))
        .group_by(Dismantling.batch_id)).all()) if ids else {}
    org_ids = {b.recycler_id for b in rows if b.recycler_id is not None}
    orgs = {o.id: o for o in session.scalars(
        select(Organisation).where(Organisation.id.in_(org_ids)))} if org_ids else {}
    items = []
    for b in rows:
        org = orgs.get(b.recycler_id) if b.recycler_id is not None else None
        items.append({
            "ref": b.ref, "route": b.route, "status": b.status,
            "processed_on": b.processed_on.isoformat() if b.processed_on else None,
            "closed_at": b.closed_at.isoformat() if b.closed_at else None,
            "recycler": {"uid": org.uid, "name": org.name} if org else None,
            "batteries": counts.get(b.id, 0), **_figures(session, b),
        })
    return {"total": total, "items": items}


def recyclers(session: Session) -> list[dict[str, str]]:
    """Organisations that have batches, for the filter."""
    rows = session.scalars(select(Organisation).where(Organisation.id.in_(
        select(RecyclingBatch.recycler_id).where(RecyclingBatch.recycler_id.is_not(None))))
        .order_by(Organisation.name))
    return [{"uid": o.uid, "name": o.name} for o in rows]
