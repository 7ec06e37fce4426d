"""Registry endpoints: organisations, batteries, events, lineage, verify, import, reports."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from pydantic import BaseModel, Field

from batteryloop.api.deps import Db
from batteryloop.errors import ValidationFailed
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


@router.post("/organisations", status_code=status.HTTP_201_CREATED)
def add_organisation(body: OrganisationIn, db: Db) -> dict[str, Any]:
    return _org(Registry(db).add_organisation(body))


@router.get("/organisations")
def list_organisations(db: Db) -> list[dict[str, Any]]:
    return [_org(o) for o in Registry(db).organisations()]


@router.get("/organisations/{ref}")
def show_organisation(ref: str, db: Db) -> dict[str, Any]:
    return _org(Registry(db).organisation(ref))


@router.post("/batteries", status_code=status.HTTP_201_CREATED)
def register_battery(body: BatteryIn, db: Db, actor: str | None = None) -> dict[str, Any]:
    reg = Registry(db)
    return reg.describe(reg.register(body, actor=actor).uid)


@router.get("/batteries")
def list_batteries(
    db: Db,
    state: str | None = None,
    chemistry: str | None = None,
    kind: Literal["pack", "module", "cell"] | None = None,
    q: Annotated[str | None, Query(description="any identifier, or part of one")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Page:
    reg = Registry(db)
    items, total = reg.list_batteries(
        state=state, chemistry=chemistry, kind=kind, query=q, limit=limit, offset=offset
    )
    return Page(items=[reg.brief(b) | {"chemistry": b.chemistry} for b in items], total=total,
                limit=limit, offset=offset)


@router.get("/batteries/{ref}")
def show_battery(ref: str, db: Db) -> dict[str, Any]:
    return Registry(db).describe(ref)


@router.get("/batteries/{ref}/history")
def battery_history(ref: str, db: Db) -> list[dict[str, Any]]:
    return Registry(db).history(ref)


@router.post("/batteries/{ref}/status", status_code=status.HTTP_201_CREATED)
def change_status(ref: str, body: StatusIn, db: Db) -> Appended:
    reg = Registry(db)
    result = reg.change_status(ref, body.to, actor=body.actor, occurred_at=body.occurred_at,
                               reason=body.reason, signature=body.signature)
    return _appended(reg, ref, result)


@router.post("/batteries/{ref}/transfers", status_code=status.HTTP_201_CREATED)
def transfer(ref: str, body: TransferIn, db: Db) -> Appended:
    reg = Registry(db)
    result = reg.transfer(ref, custody_to=body.custody_to, responsibility_to=body.responsibility_to,
                          actor=body.actor, occurred_at=body.occurred_at, reason=body.reason,
                          signature=body.signature)
    return _appended(reg, ref, result)


@router.post("/batteries/{ref}/events", status_code=status.HTTP_201_CREATED)
def append_event(ref: str, body: EventBody, db: Db) -> Appended:
    reg = Registry(db)
    EventIn(battery=ref, **body.model_dump())  # same checks as bulk import
    result = reg.append(ref, body.type, body.payload, actor=body.actor,
                        occurred_at=body.occurred_at, signature=body.signature)
    return _appended(reg, ref, result)


@router.post("/batteries/{ref}/identifiers", status_code=status.HTTP_201_CREATED)
def add_identifier(ref: str, body: IdentifierIn, db: Db) -> dict[str, Any]:
    reg = Registry(db)
    reg.add_identifier(ref, body.scheme, body.value, actor=body.actor)
    return reg.describe(ref)


@router.get("/batteries/{ref}/lineage")
def lineage(ref: str, db: Db, depth: Annotated[int, Query(ge=1, le=50)] = 10) -> dict[str, Any]:
    return Registry(db).lineage(ref, depth=depth)


@router.post("/successors", status_code=status.HTTP_201_CREATED)
def create_successor(body: SuccessorIn, db: Db) -> dict[str, Any]:
    reg = Registry(db)
    return reg.describe(reg.create_successor(body).uid)


@router.get("/verify")
def verify_ledger(db: Db) -> dict[str, Any]:
    report = verify(db)
    return {
        "ok": report.ok, "batteries": report.batteries, "events": report.events,
        "seconds": round(report.seconds, 3),
        "breaches": [b.__dict__ for b in report.breaches],
    }


@router.get("/anchor")
def take_anchor(db: Db) -> dict[str, Any]:
    """Every chain's head and their root hash: keep it outside to detect a rewritten history."""
    return anchor.take(db)


@router.post("/import/{kind}")
async def import_file(
    kind: Literal["batteries", "events"],
    db: Db,
    file: Annotated[UploadFile, File(description="CSV with a header row, or JSON")],
    skip_invalid: Annotated[bool, Form()] = False,
    actor: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
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
    organisation: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    format: Literal["json", "csv"] = "json",
) -> Response | list[dict[str, Any]]:
    from batteryloop.settings import get_settings

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
