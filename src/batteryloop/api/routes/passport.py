"""Passport endpoints. Every read goes through ``passport.view`` and shows the caller what their
Annex XIII tier allows; writes act for the caller's organisation.

    GET    /passports                           search (filters on restricted attributes: 403)
    POST   /passports                           create the maker's record {battery, attributes}
    POST   /passports/import                    import Battery Pass v1.2 JSON
    GET    /passports/{ref}                     the passport, by tier
    PATCH  /passports/{ref}                     set / unset static attributes
    GET    /passports/{ref}/attributes/{id}     one attribute (403 above your tier, 404 if empty)
    GET    /passports/{ref}/export              ?format=batterypass|jsonld [&check=true]
    GET    /passports/{ref}/qr                  ?format=svg|png: the QR code of the public page
    POST   /passports/{ref}/condition           values from use (ledger event)
    POST   /passports/{ref}/waste               becomes waste: responsibility to the waste operator
    POST   /passports/{ref}/recycle             recycled: the passport ceases, archived read-only
    GET    /passport-attributes                 the attribute table with tiers and sources
    PUT    /organisations/{ref}/passport-contact  address, e-mail, web shown for an operator
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from batteryloop.api.pagination import Paged
from batteryloop.accounts.viewer import PUBLIC, Viewer
from batteryloop.api import problems
from batteryloop.api.deps import Db
from batteryloop.passport import export, importer, jsonld, qr, service, view

router = APIRouter(tags=["passport"])

# --- who is calling ------------------------------------------------------------------------------
try:
    from batteryloop.api import auth as _auth
except ModuleNotFoundError as exc:
    if exc.name != "batteryloop.api.auth":
        raise
    _auth = None

if _auth is not None:
    current_viewer = _auth.viewer

    def acting_organisation(
        who: Annotated[Any, Depends(_auth.require_organisation_role())],
    ) -> str | None:
        """The organisation a signed-in writer acts for (401 anonymous, 403 without 'write')."""
        return who.viewer.organisation
else:
    # FALLBACK, only until batteryloop.api.auth exists: every reader is PUBLIC, and writes name
    # their acting organisation in the body, as the registry's endpoints do.
    def current_viewer() -> Viewer:
        return PUBLIC

    def acting_organisation() -> str | None:
        return None


Who = Annotated[Viewer, Depends(current_viewer)]
Acting = Annotated[str | None, Depends(acting_organisation)]


def _actor(acting: str | None, named: str | None) -> str | None:
    """The signed-in caller's organisation; the body's ``actor`` only where there is no sign-in."""
    return acting if acting is not None else named


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateIn(_In):
    battery: str = Field(description="passport id, GB/T 34014 code or other identifier")
    attributes: dict[str, Any] = Field(default_factory=dict, description="attribute id -> value")
    actor: str | None = Field(default=None, description="only without sign-in")


class UpdateIn(_In):
    set: dict[str, Any] = Field(default_factory=dict)
    unset: list[str] = Field(default_factory=list)
    actor: str | None = None


class ConditionIn(_In):
    values: dict[str, Any] = Field(description="attribute id -> value or {value, method, lower, "
                                               "upper, measured_at}")
    actor: str | None = None


class WasteIn(_In):
    waste_operator: str
    reason: str | None = None
    actor: str | None = None


class ActorIn(_In):
    actor: str | None = None


class ContactIn(_In):
    streetAddress: str | None = None
    postalCode: str | None = None
    addressCountry: str | None = None
    emailAddress: str | None = None
    webAddress: str | None = None


@router.get("/passport-attributes")
def attribute_table(page: Paged) -> list[dict[str, Any]]:
    """Every attribute: category, Battery Pass path, Annex XIII tier and basis, source."""
    return page(service.attribute_table())


@router.get("/passports")
def search(
    request: Request, db: Db, who: Who,
    q: Annotated[str | None, Query(description="passport id or battery code, or part of one")] = None,
    category: str | None = None, chemistry: str | None = None,
    status_: Annotated[str | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    result = view.search(db, who, q=q, category=category, chemistry=chemistry, status=status_,
                         limit=limit, offset=offset, path=request.url.path)
    return {**result, "items": [s.as_dict() for s in result["items"]]}


@router.post("/passports", status_code=status.HTTP_201_CREATED)
def create(body: CreateIn, db: Db, acting: Acting) -> dict[str, Any]:
    return service.create(db, body.battery, body.attributes, actor=_actor(acting, body.actor))


@router.post("/passports/import", status_code=status.HTTP_201_CREATED)
def import_passport(
    document: dict[str, Any], db: Db, acting: Acting,
    kind: Literal["pack", "module", "cell"] = "pack", actor: str | None = None,
) -> dict[str, Any]:
    return importer.import_document(db, document, actor=_actor(acting, actor), kind=kind)


@router.get("/passports/{ref}")
def show(ref: str, request: Request, db: Db, who: Who) -> dict[str, Any]:
    return view.read(db, ref, who, path=request.url.path).as_dict()


@router.patch("/passports/{ref}")
def update(ref: str, body: UpdateIn, db: Db, acting: Acting) -> dict[str, Any]:
    return service.update(db, ref, body.set, unset=body.unset, actor=_actor(acting, body.actor))


@router.get("/passports/{ref}/attributes/{attr_id}")
def show_attribute(ref: str, attr_id: str, request: Request, db: Db, who: Who) -> dict[str, Any]:
    attr, value = view.read_attribute(db, ref, attr_id, who, path=request.url.path)
    return {"attribute": attr.id, "label": attr.label, "unit": attr.unit, "tier": attr.tier,
            "basis": attr.basis, **value.as_dict()}


@router.get("/passports/{ref}/export", response_model=None)
def export_passport(
    ref: str, request: Request, db: Db, who: Who,
    format: Literal["batterypass", "jsonld"] = "batterypass",
    check: Annotated[bool, Query(description="422 unless it validates against the schemas")] = False,
) -> JSONResponse:
    shown = view.read(db, ref, who, path=request.url.path)
    document = export.document(shown)
    if check:
        errors = export.check(shown, document)
        if errors:
            return problems.problem(
                422, "Export does not validate",
                f"{len(errors)} schema error(s) against Battery Pass v1.2", request.url.path,
                errors=errors,
            )
    if format == "jsonld":
        return JSONResponse(jsonld.jsonld(shown), media_type="application/ld+json")
    return JSONResponse(document)


@router.get("/passports/{ref}/qr", response_model=None)
def qr_code(ref: str, request: Request, db: Db, _who: Who,
            format: Literal["svg", "png"] = "svg") -> Response:
    """The code carries the public page's URL only; a bad credential is still refused (401)."""
    uid = view.read(db, ref, PUBLIC, path=request.url.path, only=()).uid
    url = qr.page_url(str(request.base_url), uid)
    if format == "png":
        return Response(qr.png(url), media_type="image/png", headers={"X-Passport-URL": url})
    return Response(qr.svg(url), media_type="image/svg+xml", headers={"X-Passport-URL": url})


@router.post("/passports/{ref}/condition", status_code=status.HTTP_201_CREATED)
def report_condition(ref: str, body: ConditionIn, db: Db, acting: Acting) -> dict[str, Any]:
    return service.report_condition(db, ref, body.values, actor=_actor(acting, body.actor))


@router.post("/passports/{ref}/waste", status_code=status.HTTP_201_CREATED)
def to_waste(ref: str, body: WasteIn, db: Db, acting: Acting) -> dict[str, Any]:
    return service.to_waste(db, ref, body.waste_operator, actor=_actor(acting, body.actor),
                            reason=body.reason)


@router.post("/passports/{ref}/recycle", status_code=status.HTTP_201_CREATED)
def recycle(ref: str, body: ActorIn, db: Db, acting: Acting) -> dict[str, Any]:
    return service.recycle(db, ref, actor=_actor(acting, body.actor))


@router.put("/organisations/{ref}/passport-contact")
def set_contact(ref: str, body: ContactIn, db: Db, acting: Acting) -> dict[str, Any]:
    org = service.Registry(db).organisation(ref)
    if acting is not None and acting != org.uid:
        raise view.Forbidden("an organisation sets only its own passport contact")
    return service.set_contact(db, org.uid, body.model_dump(exclude_none=True))
