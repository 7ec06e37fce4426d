"""What every page needs: who is reading, the unit of work, and rendering a page or an error.

Who may see what follows the API, by the same rules (``passport.records`` and its records.toml):
each field of a battery's registry record and each of its records (ledger history, lineage, tests,
health, inspections, grade, certificate) at its Annex XIII tier, and a reader's own batteries (made,
held or operated by its organisation) at the own-batteries tier at least; an anonymous reader gets
the public fields only. A list, a filter, a count or a search shows and matches only what its
reader may read. Writing (intake) needs a signed-in writer acting for its own organisation, which
may read the records it writes; that organisation is the actor of every event it appends.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from batteryloop.accounts import tiers
from batteryloop.accounts.service import ANONYMOUS, Principal
from batteryloop.accounts.viewer import Tier
from batteryloop.api import auth
from batteryloop.errors import BatteryloopError
from batteryloop.grading import catalogue
from batteryloop.passport import records
from batteryloop.store.models import Battery
from batteryloop.web.templating import templates

Who = Annotated[Principal, Depends(auth.principal)]
Where = bool | ColumnElement[bool]  # everywhere, nowhere, or a condition on Battery


def may_write(who: Principal) -> bool:
    return who.authenticated and who.may("write") and who.viewer.organisation is not None


def tier_of(*names: str) -> Tier:
    """The tier that reading all these records (records.toml [record.NAME]) needs."""
    return tiers.highest(*(records.record(n).tier for n in names))


def narrowed(where: Where) -> ColumnElement[bool] | None:
    """``Reader.where`` as an optional condition: None where it holds everywhere."""
    return None if where is True or where is False else where


audit = records.audit_reads  # the restricted reads a page shows, recorded in its unit of work


def annotate(session: Session, reader: records.Reader, items: list[dict[str, Any]], *,
             path: str, grades: bool = False) -> list[dict[str, Any]]:
    """List items (``records.batteries``) with what a page adds, each as its reader may read it:
    a name (the GB/T code, else another identifier only where the reader may read identifiers),
    the rated capacity and, with ``grades``, the latest grade and route. A fixed number of
    queries whatever the number of items; what is shown above the public tier is audited."""
    uids = [i["uid"] for i in items]
    if not uids:
        return []
    rows = {b.uid: b for b in session.scalars(select(Battery).where(Battery.uid.in_(uids)))}
    names = catalogue.labels(session, uids)
    latest = catalogue.latest_grades(session, [b.id for b in rows.values()]) if grades else {}
    identifiers = records.field_rules()["identifiers"]
    grade = records.record("grade")
    out, reads = [], []
    for item in items:
        b = rows[item["uid"]]
        who = reader.of(b)
        shown: list[str] = []
        label = b.code
        if not label and names.get(b.uid) and who.may_see(identifiers.tier):
            label = names[b.uid]
            shown.append(identifiers.audit_name)
        extra: dict[str, Any] = {"label": label, "grade": None, "route": None}
        if who.may_see(records.field_tier("rated_capacity_ah")):
            extra["rated_capacity_ah"] = b.rated_capacity_ah
        if b.id in latest and who.may_see(grade.tier):
            extra.update(latest[b.id])
            shown.append(grade.audit_name)
        out.append({**item, **extra})
        reads.append((who, b.uid, shown))
    audit(session, reads, path)
    return out


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200
           ) -> HTMLResponse:
    who = getattr(request.state, "principal", None) or ANONYMOUS
    return templates.TemplateResponse(
        request, name, {"viewer_tier": who.viewer.tier, **context},
        status_code=status_code)


def error_page(request: Request, exc: BatteryloopError, *, back: str | None = None
               ) -> HTMLResponse:
    """The error as a page: the problem's title, its message (naming the file, row or field) and
    the status the API would answer."""
    return render(request, "error.html", {"title": exc.title, "detail": exc.message,
                                          "location": getattr(exc, "location", None),
                                          "back": back}, status_code=exc.status)


def attachment(body: bytes | Any, filename: str, **headers: str) -> Response:
    """A download the browser saves as ``filename``: PDF bytes as they are, anything else as JSON.
    Keyword headers are added as given (``**{"X-Certificate-SHA256": ...}``)."""
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', **headers}
    if isinstance(body, bytes):
        return Response(body, media_type="application/pdf", headers=headers)
    return JSONResponse(body, headers=headers)
