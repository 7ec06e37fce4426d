"""Registry endpoints: organisations, batteries, events, lineage, verify, import, reports.

Reads go through ``passport.records``: a battery's record shows each reader the fields its Annex
XIII tier allows (anonymous readers: what the public passport shows); its ledger history and
lineage have no public part (401 anonymous, 403 signed in below the tier); the organisation
directory is public; the ledger's integrity report and anchor are the authority tier's. Writes
need a signed-in writer acting for its own organisation that may read the battery's ledger (its
own batteries, or all of them at the legitimate-interest tier), and answer only what the writer
may read. Registering organisations (their roles decide their users' tiers) and bulk imports are
an admin's.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile, status
from pydantic import BaseModel, Field

from batteryloop.api.pagination import Paged
from batteryloop.accounts.service import Principal
from batteryloop.accounts.viewer import Viewer
from batteryloop.api import auth
from batteryloop.api.deps import Db
from batteryloop.errors import ValidationFailed
from batteryloop.passport import records
from batteryloop.registry import anchor, reporting
from batteryloop.registry.bulk_import import Importer
from batteryloop.registry.schemas import (
    BatteryIn,
    EventIn,
    OrganisationIn,
    StatusIn,
    SuccessorIn,
    TransferIn,
)
from batteryloop.registry.service import Registry
from batteryloop.registry.verify import verify
from batteryloop.store.models import Organisation

router = APIRouter(tags=["registry"])
MAX_IMPORT_BYTES = 64 * 1024 * 1024
Who = Annotated[Viewer, Depends(auth.viewer)]
Writer = Annotated[Principal, Depends(auth.require_writer)]
Admin = Annotated[Principal, Depends(auth.require_admin)]


class Appended(BaseModel):
    battery: str
    seq: int
    hash: str


class Page(BaseModel):
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


class IdentifierIn(BaseModel):
    scheme: str
    value: str
    actor: str | None = None


class EventBody(BaseModel):
    type: str
    actor: str | None = None
    occurred_at: datetime | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    signature: str | None = None


def _org(o: Organisation) -> dict[str, Any]:
    return {
        "uid": o.uid, "name": o.name, "country": o.country, "roles": sorted(r.role for r in o.roles),
        "public_key": o.public_key.hex() if o.public_key else None,
    }


def _appended(reg: Registry, ref: str, result: Any) -> Appended:
    return Appended(battery=reg.battery(ref).uid, seq=result.seq, hash=result.hash.hex())


def _acts_on(db: Db, who: Principal, ref: str, named: str | None, request: Request) -> str:
    """The acting organisation, once it is clear that it may read the battery's ledger (a write
    answers with its new event's hash, and its errors name the battery's state)."""
    actor = auth.acting_organisation(db, who, named)
    records.require(db, who.viewer, "history", ref, path=request.url.path, audit=False)
    return actor


@router.post("/organisations", status_code=status.HTTP_201_CREATED)
def add_organisation(body: OrganisationIn, db: Db, _admin: Admin) -> dict[str, Any]:
    """An organisation and its roles (admin only: the roles decide what its users may read)."""
    return _org(Registry(db).add_organisation(body))


@router.get("/organisations")
def list_organisations(page: Paged, db: Db) -> list[dict[str, Any]]:
    """The directory of organisations (public: names, roles, signing keys)."""
    return page([_org(o) for o in Registry(db).organisations()])


@router.get("/organisations/{ref}")
def show_organisation(ref: str, db: Db) -> dict[str, Any]:
    return _org(Registry(db).organisation(ref))


@router.post("/batteries", status_code=status.HTTP_201_CREATED)
def register_battery(body: BatteryIn, db: Db, who: Writer, request: Request,
                     actor: str | None = None) -> dict[str, Any]:
    """Register a battery, acting for the caller's organisation; the answer is its record as the
    caller may read it."""
    acting = auth.acting_organisation(db, who, actor)
    uid = Registry(db).register(body, actor=acting).uid
    return records.battery(db, uid, who.viewer, path=request.url.path)


@router.get("/batteries")
def list_batteries(
    db: Db,
    who: Who,
    request: Request,
    state: Annotated[str | None, Query(
        description="legitimate-interest tier; below it, only the caller's own batteries")] = None,
    chemistry: str | None = None,
    kind: Literal["pack", "module", "cell"] | None = None,
    q: Annotated[str | None, Query(description="any identifier, or part of one")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Page:
    """Batteries, each with the fields the caller may read. A search by part of an identifier
    matches only identifiers the caller may read."""
    return Page(**records.batteries(db, who, state=state, chemistry=chemistry, kind=kind, q=q,
                                    limit=limit, offset=offset, path=request.url.path))


@router.get("/batteries/{ref}")
def show_battery(ref: str, db: Db, who: Who, request: Request) -> dict[str, Any]:
    """The battery's record with the fields the caller may read; ``withheld`` names the rest."""
    return records.battery(db, ref, who, path=request.url.path)


@router.get("/batteries/{ref}/history")
def battery_history(page: Paged, ref: str, db: Db, who: Who, request: Request) -> list[dict[str, Any]]:
    """The battery's ledger (legitimate-interest tier, or the caller's own battery)."""
    return page(records.history(db, ref, who, path=request.url.path))


@router.post("/batteries/{ref}/status", status_code=status.HTTP_201_CREATED)
def change_status(ref: str, body: StatusIn, db: Db, who: Writer, request: Request) -> Appended:
    actor = _acts_on(db, who, ref, body.actor, request)
    reg = Registry(db)
    result = reg.change_status(ref, body.to, actor=actor, occurred_at=body.occurred_at,
                               reason=body.reason, signature=body.signature)
    return _appended(reg, ref, result)


@router.post("/batteries/{ref}/transfers", status_code=status.HTTP_201_CREATED)
def transfer(ref: str, body: TransferIn, db: Db, who: Writer, request: Request) -> Appended:
    actor = _acts_on(db, who, ref, body.actor, request)
    reg = Registry(db)
    result = reg.transfer(ref, custody_to=body.custody_to, responsibility_to=body.responsibility_to,
                          actor=actor, occurred_at=body.occurred_at, reason=body.reason,
                          signature=body.signature)
    return _appended(reg, ref, result)


@router.post("/batteries/{ref}/events", status_code=status.HTTP_201_CREATED)
def append_event(ref: str, body: EventBody, db: Db, who: Writer, request: Request) -> Appended:
    actor = _acts_on(db, who, ref, body.actor, request)
    reg = Registry(db)
    EventIn(battery=ref, **(body.model_dump() | {"actor": actor}))  # same checks as bulk import
    result = reg.append(ref, body.type, body.payload, actor=actor,
                        occurred_at=body.occurred_at, signature=body.signature)
    return _appended(reg, ref, result)


@router.post("/batteries/{ref}/identifiers", status_code=status.HTTP_201_CREATED)
def add_identifier(ref: str, body: IdentifierIn, db: Db, who: Writer,
                   request: Request) -> dict[str, Any]:
    actor = _acts_on(db, who, ref, body.actor, request)
    Registry(db).add_identifier(ref, body.scheme, body.value, actor=actor)
    return records.battery(db, ref, who.viewer, path=request.url.path)


@router.get("/batteries/{ref}/lineage")
def lineage(ref: str, db: Db, who: Who, request: Request,
            depth: Annotated[int, Query(ge=1, le=50)] = 10) -> dict[str, Any]:
    """Sources and successors across generations: the passport's general.lineage (legitimate-
    interest tier, or the caller's own battery)."""
    return records.lineage(db, ref, who, depth=depth, path=request.url.path)


@router.post("/successors", status_code=status.HTTP_201_CREATED)
def create_successor(body: SuccessorIn, db: Db, who: Writer, request: Request) -> dict[str, Any]:
    """A re-used, repurposed or remanufactured battery: a new passport linked to all its sources,
    made and answered for by the caller's organisation (Art. 77(6))."""
    actor = auth.acting_organisation(db, who, body.actor)
    for source in body.sources:
        records.require(db, who.viewer, "history", source, path=request.url.path, audit=False)
    uid = Registry(db).create_successor(body.model_copy(update={"actor": actor})).uid
    return records.battery(db, uid, who.viewer, path=request.url.path)


@router.get("/verify")
def verify_ledger(db: Db, who: Who) -> dict[str, Any]:
    """Re-check every chain (authority tier: breaches name batteries and their events)."""
    records.require_tier(who, "ledger")
    report = verify(db)
    return {
        "ok": report.ok, "batteries": report.batteries, "events": report.events,
        "seconds": round(report.seconds, 3),
        "breaches": [b.__dict__ for b in report.breaches],
    }


@router.get("/anchor")
def take_anchor(db: Db, who: Who) -> dict[str, Any]:
    """Every chain's head and their root hash: keep it outside to detect a rewritten history
    (authority tier)."""
    records.require_tier(who, "ledger")
    return anchor.take(db)


@router.post("/import/{kind}")
async def import_file(
    kind: Literal["batteries", "events"],
    db: Db,
    _admin: Admin,
    file: Annotated[UploadFile, File(description="CSV with a header row, or JSON")],
    skip_invalid: Annotated[bool, Form()] = False,
    actor: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    """Bulk import (admin only: an events file names its own actors)."""
    data = await file.read(MAX_IMPORT_BYTES + 1)
    name = Path(file.filename or "upload").name
    if len(data) > MAX_IMPORT_BYTES:
        raise ValidationFailed(f"file larger than {MAX_IMPORT_BYTES} bytes", location=name)
    report = Importer(db).run(Path(name), kind=kind, skip_invalid=skip_invalid, actor=actor,
                              data=data, write_rejects=False)
    return {
        "file": name, "kind": report.kind, "rows": report.rows, "written": report.written,
        "rejected": [{"row": p.row, "field": p.field, "message": p.message} for p in report.problems],
    }


@router.get("/reports/traceability", response_model=None)
def traceability(
    db: Db,
    who: Who,
    organisation: Annotated[str | None, Query(
        description="default: the caller's own; another's, or all: authority tier")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    format: Literal["json", "csv"] = "json",
) -> Response | list[dict[str, Any]]:
    """What a node reported and whether in time (its own report; any at the authority tier)."""
    from batteryloop.settings import get_settings

    organisation = records.report_organisation(db, who, organisation)
    rows = reporting.as_dicts(reporting.traceability_report(
        db, organisation=organisation, since=since, until=until, holidays=get_settings().holidays
    ))
    if format == "json":
        return rows
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(reporting.ReportRow.__dataclass_fields__))
    writer.writeheader()
    writer.writerows(rows)
    return Response(buffer.getvalue(), media_type="text/csv")
