"""Grading endpoints: policies, inspections, grades, routes, residual value, second life,
certificates (JSON and PDF)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from batteryloop.api.deps import Db
from batteryloop.errors import NotFound
from batteryloop.grading import certificate as certificates
from batteryloop.grading import policy as policies
from batteryloop.grading import service
from batteryloop.grading.config import configured_base_url
from batteryloop.grading.engine import Facts
from batteryloop.grading.inspection import InspectionIn, listing, record
from batteryloop.grading.metrics import VISUAL_FINDINGS
from batteryloop.grading.value import OVERRIDABLE, residual_value
from batteryloop.registry.schemas import BatteryIn

router = APIRouter(tags=["grading"])


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
    relation: Literal["repurposed", "remanufactured"] = "repurposed"
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
def list_policies() -> list[dict[str, Any]]:
    return [{k: v for k, v in p.items() if k != "path"} for p in policies.available()]


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


@router.post("/batteries/{ref}/inspections", status_code=status.HTTP_201_CREATED)
def add_inspection(ref: str, body: InspectionIn, db: Db) -> dict[str, Any]:
    return record(db, ref, body)


@router.get("/batteries/{ref}/inspections")
def list_inspections(ref: str, db: Db) -> list[dict[str, Any]]:
    return listing(db, ref)


@router.post("/batteries/{ref}/grade", status_code=status.HTTP_201_CREATED)
def grade(ref: str, body: service.GradeIn, db: Db) -> dict[str, Any]:
    pol = _policy(body.policy and _public(body.policy), body.policy_toml)
    return service.grade(db, ref, policy=pol,
                         health=[h.model_dump() for h in body.health] if body.health else None,
                         actor=body.actor, assess=(body.test or True) if body.assess else False)


@router.get("/batteries/{ref}/grade")
def latest_grade(ref: str, db: Db) -> dict[str, Any]:
    out = service.latest_grade(db, ref)
    if out is None:
        raise NotFound(f"battery '{ref}' has not been graded")
    return out


@router.post("/batteries/{ref}/route", status_code=status.HTTP_201_CREATED)
def apply_route(ref: str, body: RouteIn, db: Db) -> dict[str, Any]:
    return service.apply_route(db, ref, actor=body.actor, route=body.route, successor=body.successor)


@router.post("/grading/second-life", status_code=status.HTTP_201_CREATED)
def second_life(body: SecondLifeIn, db: Db) -> dict[str, Any]:
    return service.second_life(db, body.sources, body.relation, body.battery, actor=body.actor)


def _base(request: Request) -> str:
    return configured_base_url() or str(request.base_url).rstrip("/")


@router.get("/batteries/{ref}/certificate")
def certificate_json(ref: str, request: Request, db: Db) -> dict[str, Any]:
    return certificates.build(db, ref, base_url=_base(request))


@router.get("/batteries/{ref}/certificate.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def certificate_pdf(ref: str, request: Request, db: Db) -> Response:
    cert = certificates.build(db, ref, base_url=_base(request))
    name = (cert["battery"]["code"] or cert["battery"]["uid"].rsplit(":", 1)[-1])
    return Response(certificates.pdf(cert), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="certificate-{name}.pdf"',
                             "X-Certificate-SHA256": cert["sha256"]})
