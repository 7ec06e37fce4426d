"""The landing page: the loop as the registry holds it now, batteries per lifecycle state.

A battery's lifecycle state is Annex XIII point 4 information (passport/data/records.toml), so the
counts per state are of the batteries whose state the reader may read (all of them at the
legitimate-interest tier, its own organisation's below it), as the API's filter on the state
counts them; an anonymous reader sees how many batteries there are, not where they are.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from batteryloop.api.deps import Db
from batteryloop.grading import catalogue
from batteryloop.passport import records
from batteryloop.store.models import Battery
from batteryloop.web.pages.common import Who, narrowed, render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def landing(request: Request, db: Db, who: Who) -> HTMLResponse:
    where = records.Reader(db, who.viewer).where(records.field_tier("state"))
    counts = catalogue.state_counts(db, narrowed(where)) if where is not False else None
    return render(request, "landing.html", {
        "counts": counts, "own_only": where is not True and where is not False,
        "total": db.scalar(select(func.count()).select_from(Battery)) or 0,
        "readable": sum(c["count"] for c in counts) if counts else 0,
    })
