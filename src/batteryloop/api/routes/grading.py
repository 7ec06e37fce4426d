"""Grading endpoints: policies, inspections, grades, routes, residual value, second life,
certificates (JSON and PDF: GET drafts, POST issues and records) and their check."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from batteryloop.api.pagination import Paged
from batteryloop.accounts.service import Principal
from batteryloop.accounts.viewer import Viewer
from batteryloop.api import auth
from batteryloop.api.deps import Db
from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.grading import certificate as certificates
from batteryloop.grading import policy as policies
from batteryloop.grading import service
from batteryloop.grading.config import configured_base_url
from batteryloop.grading.engine import Facts
from batteryloop.grading.inspection import InspectionIn, listing, record
from batteryloop.grading.metrics import VISUAL_FINDINGS
from batteryloop.grading.value import OVERRIDABLE, residual_value
from batteryloop.passport import records
from batteryloop.registry.schemas import BatteryIn, SecondLife

router = APIRouter(tags=["grading"])
# A battery's inspections, grade and certificate rest on its state of health (Annex XIII point 4):
# read at the legitimate-interest tier or on one's own batteries (passport/data/records.toml);
# written by a signed-in writer for its own organisation. Policies and the stateless evaluation
# and value calculators hold no battery's data and stay open.
Who = Annotated[Viewer, Depends(auth.viewer)]
Writer = Annotated[Principal, Depends(auth.require_writer)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyText(_In):
    toml: str = Field(description="the whole policy file")


class EvaluateIn(_In):
    """Facts to evaluate a policy on, without touching the registry."""

    policy: str | None = Field(default="ev-reuse", description="a policy name")
    policy_toml: str | None = None
    health: list[service.HealthValueIn] = Field(default_factory=list)
    findings: dict[str, bool] = Field(default_factory=dict,
                                      description=f"known: {', '.join(VISUAL_FINDINGS)}")
    bms_codes: list[str] | None = None
    values: dict[str, float] = Field(
        default_factory=dict, description="exact values by metric: cell_soh_spread, calendar_age...")


class RouteIn(_In):
    route: Literal["reused", "repurposed", "remanufactured", "waste"] | None = None
    successor: BatteryIn | None = Field(
        default=None, description="register the second-life battery made from this one")
    actor: str | None = None


class SecondLifeIn(_In):
    sources: list[str] = Field(min_length=1)
    relation: SecondLife = "repurposed"
    battery: BatteryIn
    actor: str | None = None


class ValueIn(_In):
    rated_energy_kwh: float = Field(gt=0)
    soh_lower: float = Field(ge=0)
    chemistry: str
    route: Literal["reused", "repurposed", "remanufactured", "waste"]
    application: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict, description=", ".join(OVERRIDABLE))


def _policy(name: str | None, text: str | None) -> policies.Policy:
    if text:
        return policies.parse(text, label="policy_toml")
    return policies.load(name or "ev-reuse")


def _public(ref: str) -> str:
    if ref.endswith(".toml") or "/" in ref or "\\" in ref:
        raise NotFound(f"no grading policy '{ref}' (the API loads policies by name only)")
    return ref


@router.get("/grading/policies")
def list_policies(page: Paged) -> list[dict[str, Any]]:
    return page([{k: v for k, v in p.items() if k != "path"} for p in policies.available()])


@router.get("/grading/policies/{name}")
def show_policy(name: str) -> dict[str, Any]:
    out = policies.load(_public(name)).as_dict()
    out.pop("path", None)
    return out


@router.post("/grading/policies/check")
def check_policy(body: PolicyText) -> dict[str, Any]:
    """Validate a policy file's text; a problem names the line."""
    out = policies.parse(body.toml, label="policy_toml").as_dict()
    out.pop("path", None)
    return out


@router.post("/grading/evaluate")
def evaluate(body: EvaluateIn) -> dict[str, Any]:
    """What a policy decides on given facts; nothing is recorded."""
    pol = _policy(body.policy and _public(body.policy), body.policy_toml)
    facts = Facts.of(health=[h.model_dump() for h in body.health], findings=body.findings,
                     bms_codes=body.bms_codes, **body.values)
    return service.evaluate_facts(pol, facts)


@router.post("/grading/value")
def value(body: ValueIn) -> dict[str, Any]:
    return residual_value(rated_energy_kwh=body.rated_energy_kwh, soh_lower=body.soh_lower,
                          chemistry=body.chemistry, route=body.route, application=body.application,
                          overrides=body.overrides)


def _acting(db: Db, who: Principal, named: str | None, record_name: str, refs: list[str],
            request: Request) -> str:
    """The caller's organisation, once it may read what the write answers (the record)."""
    actor = auth.acting_organisation(db, who, named)
    for ref in refs:
        records.require(db, who.viewer, record_name, ref, path=request.url.path, audit=False)
    return actor


@router.post("/batteries/{ref}/inspections", status_code=status.HTTP_201_CREATED)
def add_inspection(ref: str, body: InspectionIn, db: Db, who: Writer,
                   request: Request) -> dict[str, Any]:
    """Record an inspection; the inspecting organisation is the caller's."""
    inspector = _acting(db, who, body.inspector, "inspections", [ref], request)
    return record(db, ref, body.model_copy(update={"inspector": inspector}))


@router.get("/batteries/{ref}/inspections")
def list_inspections(page: Paged, ref: str, db: Db, who: Who, request: Request) -> list[dict[str, Any]]:
    records.require(db, who, "inspections", ref, path=request.url.path)
    return page(listing(db, ref))


@router.post("/batteries/{ref}/grade", status_code=status.HTTP_201_CREATED)
def grade(ref: str, body: service.GradeIn, db: Db, who: Writer, request: Request) -> dict[str, Any]:
    actor = _acting(db, who, body.actor, "grade", [ref], request)
    pol = _policy(body.policy and _public(body.policy), body.policy_toml)
    return service.grade(db, ref, policy=pol,
                         health=[h.model_dump() for h in body.health] if body.health else None,
                         actor=actor, assess=(body.test or True) if body.assess else False)


@router.get("/batteries/{ref}/grade")
def latest_grade(ref: str, db: Db, who: Who, request: Request) -> dict[str, Any]:
    records.require(db, who, "grade", ref, path=request.url.path)
    out = service.latest_grade(db, ref)
    if out is None:
        raise NotFound(f"battery '{ref}' has not been graded")
    return out


@router.post("/batteries/{ref}/route", status_code=status.HTTP_201_CREATED)
def apply_route(ref: str, body: RouteIn, db: Db, who: Writer, request: Request) -> dict[str, Any]:
    """Carry out the graded route; the answer is the battery's (or the successor's) record as the
    caller may read it."""
    actor = _acting(db, who, body.actor, "grade", [ref], request)
    out = service.apply_route(db, ref, actor=actor, route=body.route, successor=body.successor)
    return records.battery(db, out["uid"], who.viewer, path=request.url.path)


@router.post("/grading/second-life", status_code=status.HTTP_201_CREATED)
def second_life(body: SecondLifeIn, db: Db, who: Writer, request: Request) -> dict[str, Any]:
    """A re-used, repurposed or remanufactured battery made from graded sources: a new passport
    linked to all of them, the caller's organisation responsible for it (Art. 77(6))."""
    actor = _acting(db, who, body.actor, "grade", body.sources, request)
    out = service.second_life(db, body.sources, body.relation, body.battery, actor=actor)
    return records.battery(db, out["uid"], who.viewer, path=request.url.path)


def _base(request: Request) -> str:
    return configured_base_url() or str(request.base_url).rstrip("/")


@router.get("/batteries/{ref}/certificate")
def certificate_json(ref: str, request: Request, db: Db, who: Who) -> dict[str, Any]:
    """A draft of the certificate, not recorded (POST issues one that checks against the ledger)."""
    records.require(db, who, "certificate", ref, path=request.url.path)
    return certificates.build(db, ref, base_url=_base(request))


def _pdf_response(cert: dict[str, Any], document: bytes, status_code: int = 200,
                  event: dict[str, Any] | None = None) -> Response:
    name = (cert["battery"]["code"] or cert["battery"]["uid"].rsplit(":", 1)[-1])
    headers = {"Content-Disposition": f'inline; filename="certificate-{name}.pdf"',
               "X-Certificate-SHA256": cert["sha256"]}
    if event is not None:
        headers["X-Certificate-Event"] = str(event["seq"])
    return Response(document, status_code=status_code, media_type="application/pdf", headers=headers)


@router.get("/batteries/{ref}/certificate.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def certificate_pdf(ref: str, request: Request, db: Db, who: Who) -> Response:
    """A draft of the PDF certificate, not recorded (POST issues one)."""
    records.require(db, who, "certificate", ref, path=request.url.path)
    cert = certificates.build(db, ref, base_url=_base(request))
    return _pdf_response(cert, certificates.pdf(cert))


class IssueIn(_In):
    actor: str | None = Field(default=None, description="the issuing organisation")


@router.post("/batteries/{ref}/certificate", status_code=status.HTTP_201_CREATED)
def issue_certificate(ref: str, request: Request, db: Db, who: Writer,
                      body: IssueIn | None = None) -> dict[str, Any]:
    """Issue the JSON certificate and record it (`certificate-issued` with its SHA-256); the
    issuer is the caller's organisation."""
    actor = _acting(db, who, body.actor if body else None, "certificate", [ref], request)
    issued = certificates.issue(db, ref, base_url=_base(request), actor=actor)
    return issued["certificate"]


@router.post("/batteries/{ref}/certificate.pdf", response_class=Response, status_code=201,
             responses={201: {"content": {"application/pdf": {}}}})
def issue_certificate_pdf(ref: str, request: Request, db: Db, who: Writer,
                          body: IssueIn | None = None) -> Response:
    """Issue the PDF certificate and record it (`certificate-issued` with the file's SHA-256)."""
    actor = _acting(db, who, body.actor if body else None, "certificate", [ref], request)
    issued = certificates.issue(db, ref, base_url=_base(request), actor=actor, with_pdf=True)
    return _pdf_response(issued["certificate"], issued["pdf"], 201, issued["event"])


class CheckIn(_In):
    """One certificate: the JSON certificate as issued, or a PDF file in base64."""

    certificate: dict[str, Any] | None = None
    pdf_base64: str | None = Field(default=None, max_length=20_000_000)


@router.post("/certificates/check")
def check_certificate(body: CheckIn, db: Db) -> dict[str, Any]:
    """Is this certificate one the registry issued, unaltered, and still current? Reads only.
    Open to anyone: the caller holds the certificate, and the answer adds only where and when it
    was issued and whether a later grade or certificate followed."""
    if (body.certificate is None) == (body.pdf_base64 is None):
        raise ValidationFailed("give exactly one of certificate and pdf_base64", location="body")
    if body.certificate is not None:
        return certificates.check(db, body.certificate)
    try:
        data = base64.b64decode(body.pdf_base64 or "", validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed("not base64", location="pdf_base64") from None
    if not data.startswith(b"%PDF"):
        raise ValidationFailed("not a PDF file", location="pdf_base64")
    return certificates.check(db, data)
