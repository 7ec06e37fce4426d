"""The battery list: search by identifier (GB/T code, passport id and, where the reader may read
them, VINs, serials and second-life codes), filter by lifecycle state, chemistry, kind and grade,
one page at a time.

The list is the API's (``passport.records.batteries``): each battery shows the fields its reader
may read, and a filter on a restricted field (state, grade) matches only the batteries whose field
the reader may read. A filter the reader may use on no battery at all is not applied, and the
page says so (the count of its matches would disclose the field). A search by part of an
identifier matches only identifiers the reader may read; one that gives a whole identifier finds
its battery still, as ``/batteries/{ref}`` does for anyone who holds the identifier.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import and_

from batteryloop.api.deps import Db
from batteryloop.errors import BatteryloopError, NotFound
from batteryloop.grading import catalogue
from batteryloop.passport import records
from batteryloop.registry.lifecycle import lifecycle
from batteryloop.registry.service import Registry
from batteryloop.web.pages.common import Who, annotate, error_page, narrowed, render, tier_of

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


def _only_q(filters: dict[str, Any]) -> bool:
    return not any(v for k, v in filters.items() if k != "q")


def _exact(request: Request, db: Db, who: Who, q: str) -> dict[str, Any] | None:
    """The battery of a whole identifier the reader holds (the list as it shows that battery)."""
    try:
        uid = Registry(db).battery(q).uid
    except NotFound:
        return None
    found = records.batteries(db, who.viewer, q=uid, limit=1, path=request.url.path)
    return found if found["total"] == 1 else None


@router.get("/batteries", response_class=HTMLResponse)
def batteries(
    request: Request, db: Db, who: Who,
    q: str | None = None, state: str | None = None, chemistry: str | None = None,
    kind: str | None = None, grade: str | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    reader = records.Reader(db, who.viewer)
    states_where = reader.where(records.field_tier("state"))
    grades_where = reader.where(tier_of("grade"))
    filters: dict[str, Any] = {"q": (q or "").strip() or None, "state": state or None,
                               "chemistry": chemistry or None, "kind": kind or None,
                               "grade": grade or None}
    if filters["kind"] not in (None, "pack", "module", "cell"):
        filters["kind"] = None
    not_applied = [name for name, where in (("state", states_where), ("grade", grades_where))
                   if filters[name] and where is False]
    for name in not_applied:
        filters[name] = None
    try:
        if state:
            lifecycle().state(state)  # an unknown state is a clear error, to any reader
        by_grade = None
        if filters["grade"]:
            by_grade = catalogue.graded(db, filters["grade"])
            if (limit := narrowed(grades_where)) is not None:
                by_grade = and_(by_grade, limit)
        result = records.batteries(db, who.viewer, state=filters["state"],
                                   chemistry=filters["chemistry"], kind=filters["kind"],
                                   q=filters["q"], limit=PAGE_SIZE,
                                   offset=(page - 1) * PAGE_SIZE, where=by_grade,
                                   path=request.url.path)
        if not result["total"] and filters["q"] and _only_q(filters):
            result = _exact(request, db, who, filters["q"]) or result
        result["items"] = annotate(db, reader, result["items"], path=request.url.path,
                                   grades=grades_where is not False)
    except BatteryloopError as exc:
        db.rollback()  # no audit entry for a read the page then did not show
        return error_page(request, exc, back="/batteries")
    pages = max(1, -(-result["total"] // PAGE_SIZE))
    return render(request, "batteries.html", {
        "result": result, "filters": filters, "page": page, "pages": pages,
        "show_states": states_where is not False, "records": grades_where is not False,
        "not_applied": not_applied, "states": list(lifecycle().states),
        "chemistries": catalogue.chemistries_in_use(db),
        "grades": catalogue.grades_in_use(db, narrowed(grades_where))
        if grades_where is not False else [],
        "query_without_page": {k: v for k, v in filters.items() if v},
    })
