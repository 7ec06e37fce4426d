"""Recycling endpoints: composition, routes, targets, dismantlings, batches (outputs, balance,
close, certificate JSON and PDF), period compliance, recycled content, reuse against recycling.

Reference data and the stateless calculations are public. Recording a dismantling needs a signed-in
writer of a dismantler or recycler, batches a writer of a recycler, acting for its own
organisation; batch figures, dismantling records and certificates are read at the
legitimate-interest tier (recyclers, dismantlers, authorities).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, ConfigDict, Field

from batteryloop.api.pagination import Paged
from batteryloop.accounts.service import Principal
from batteryloop.accounts.viewer import Viewer
from batteryloop.api import auth
from batteryloop.api.deps import Db
from batteryloop.recycling import certificate, compliance, composition, dismantling, routes, service

router = APIRouter(prefix="/recycling", tags=["recycling"])
Reader = Annotated[Viewer, Depends(auth.require_tier("legitimate_interest"))]
Dismantler = Annotated[Principal, Depends(auth.require_organisation_role("dismantler", "recycler"))]
Recycler = Annotated[Principal, Depends(auth.require_organisation_role("recycler"))]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OutputsIn(_In):
    outputs: list[service.OutputIn] = Field(min_length=1)


class CloseIn(_In):
    actor: str | None = None


class ContentIn(_In):
    bom: dict[str, dict[str, float]] = Field(description='{"co": {"total_kg": 8.1, "recycled_kg": 1.4}}')
    as_of: date | None = None


class ReuseIn(_In):
    chemistry: str
    rated_energy_kwh: float = Field(gt=0, allow_inf_nan=False)
    soh_pct: float = Field(gt=0, le=150, allow_inf_nan=False)
    route: str = "hydrometallurgical"


@router.get("/chemistries")
def chemistries() -> dict[str, Any]:
    return {"chemistries": composition.chemistries(), "pack_types": composition.pack_types()}


@router.get("/composition/{chemistry}")
def cell_composition(chemistry: str) -> dict[str, Any]:
    name = composition.canonical(chemistry)
    pack_type = composition.default_pack_type(name)
    return {"chemistry": name, "kg_per_kwh": composition.cell_content(name),
            "cell_kg_per_kwh": composition.cell_mass_per_kwh(name), "pack_type": pack_type,
            "pack_breakdown": composition.pack_breakdown(name), "source": composition.source(name),
            "pack_source": composition.source(pack_type)}


@router.get("/routes")
def list_routes(page: Paged) -> list[dict[str, Any]]:
    return page([routes.load(n).as_dict() for n in routes.names()])


@router.get("/targets")
def targets() -> dict[str, Any]:
    return compliance.targets()


@router.post("/dismantlings/{ref}", status_code=status.HTTP_201_CREATED)
def dismantle(ref: str, body: dismantling.DismantlingIn, db: Db, who: Dismantler) -> dict[str, Any]:
    body.actor = auth.acting_organisation(db, who, body.actor)
    return dismantling.record(db, ref, body)


@router.get("/dismantlings/{ref}")
def show_dismantling(ref: str, db: Db, _who: Reader) -> dict[str, Any]:
    return dismantling.as_dict(db, dismantling.for_battery(db, ref))


@router.get("/batteries/{ref}")
def battery_summary(ref: str, db: Db, _who: Reader) -> dict[str, Any]:
    """What recycling knows of one battery (dismantling, batch, recovered materials)."""
    return service.battery_summary(db, ref)


@router.post("/batches", status_code=status.HTTP_201_CREATED)
def create_batch(body: service.BatchIn, db: Db, who: Recycler) -> dict[str, Any]:
    body.actor = auth.acting_organisation(db, who, body.actor)
    return service.create(db, body)


@router.put("/batches/{ref}/outputs")
def put_outputs(ref: str, body: OutputsIn, db: Db, _who: Recycler) -> dict[str, Any]:
    return service.set_outputs(db, ref, body.outputs)


@router.get("/batches/{ref}")
def show_batch(ref: str, db: Db, _who: Reader) -> dict[str, Any]:
    return service.evaluate(db, ref)


@router.post("/batches/{ref}/close")
def close_batch(ref: str, body: CloseIn, db: Db, who: Recycler) -> dict[str, Any]:
    return service.close(db, ref, actor=auth.acting_organisation(db, who, body.actor))


@router.get("/batches/{ref}/certificate")
def certificate_json(ref: str, db: Db, _who: Reader) -> dict[str, Any]:
    return certificate.build(db, ref)


@router.get("/batches/{ref}/certificate.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def certificate_pdf(ref: str, db: Db, _who: Reader) -> Response:
    cert = certificate.build(db, ref)
    return Response(certificate.pdf(cert), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="recycling-{ref}.pdf"',
                             "X-Certificate-SHA256": cert["sha256"]})


@router.get("/compliance")
def period_compliance(start: date, end: date, db: Db, _who: Reader) -> dict[str, Any]:
    return service.period(db, start, end)


@router.post("/recycled-content")
def recycled_content(body: ContentIn) -> dict[str, Any]:
    return compliance.recycled_content(body.bom, body.as_of or date.today())


@router.post("/reuse-vs-recycle")
def reuse_vs_recycle(body: ReuseIn) -> dict[str, Any]:
    return service.reuse_vs_recycle(body.chemistry, body.rated_energy_kwh, body.soh_pct, route=body.route)
