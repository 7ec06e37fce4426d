"""Plant endpoints: the NMP recovery unit's model, its KPIs and its daily report.

All are computations over the line's data files and the caller's inputs; nothing is stored.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

import polars as pl
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from batteryloop.factory import kpi, report, unit
from batteryloop.factory.limits import load_factors, load_limits
from batteryloop.factory.params import load_line

router = APIRouter(prefix="/plant", tags=["plant"])


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelIn(_In):
    conditions: dict[str, float] = Field(
        default_factory=dict, description="measured inputs, tag -> value in the tag's unit; unset "
                                          "inputs take the line's design point")
    overrides: dict[str, float | str | bool] = Field(
        default_factory=dict, description="line parameters by dotted path, e.g. polisher.kind")


class HourIn(_In):
    time: datetime = Field(description="start of the hour")
    tags: dict[str, float | None] = Field(description="hourly means, tag -> value")


class HoursIn(_In):
    hours: list[HourIn] = Field(min_length=1, max_length=24 * 400)
    shifts: str | None = Field(default=None, description="e.g. 'A=06:00,B=14:00,C=22:00'")
    stack_limit: str | None = None
    workplace_limit: str | None = None


class KpiIn(HoursIn):
    by: Literal["day", "shift", "hour"] = "day"


class ReportIn(HoursIn):
    day: date
    format: Literal["json", "pdf"] = "json"


def _params(overrides: dict[str, Any]) -> Any:
    params = load_line()
    return params.override(overrides) if overrides else params


@router.get("/model")
def get_model() -> dict[str, Any]:
    """The shipped line at its design point."""
    params = load_line()
    conditions = unit.design_conditions(params)
    return {"line": params.name, "conditions": conditions,
            **unit.simulate(params, conditions).as_dict()}


@router.post("/model")
def post_model(body: ModelIn) -> dict[str, Any]:
    """Steady-state mass and energy balance for one hour's measured inputs."""
    params = _params(body.overrides)
    conditions = unit.design_conditions(params) | body.conditions
    return {"line": params.name, "conditions": conditions,
            **unit.simulate(params, conditions).as_dict()}


def _result(body: HoursIn) -> kpi.KpiResult:
    rows = [{"time": h.time.replace(tzinfo=None), **h.tags} for h in body.hours]
    tags = sorted({t for h in body.hours for t in h.tags})
    frame = pl.DataFrame(rows, schema={"time": pl.Datetime("us"), **{t: pl.Float64 for t in tags}})
    pattern = kpi.ShiftPattern.parse(body.shifts) if body.shifts else kpi.ShiftPattern()
    return kpi.compute(frame, limits=load_limits(stack=body.stack_limit,
                                                 workplace=body.workplace_limit),
                       shifts=pattern, rotor_heater_energy=load_line().rotor.heater_energy)


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and v != v:
            return None
        return v.isoformat() if isinstance(v, datetime | date) else v
    return [{k: clean(v) for k, v in r.items()} for r in rows]


@router.post("/kpi")
def post_kpi(body: KpiIn) -> dict[str, Any]:
    """KPIs per day, shift or hour for hourly tag means, with the limit exceedances."""
    result = _result(body)
    frame = {"day": result.days, "shift": result.shifts, "hour": result.hourly}[body.by]
    return {"by": body.by, "currency": result.factors.currency,
            "periods": _jsonable(frame.to_dicts()), "exceedances": result.exceedances,
            "limits": result.limits.as_dict(), "notes": result.notes}


@router.post("/report", responses={200: {"content": {"application/json": {},
                                                     "application/pdf": {}}}})
def post_report(body: ReportIn) -> Any:
    """The daily report of one production day, as JSON or PDF."""
    data = report.daily(_result(body), body.day, line=load_line().name)
    if body.format == "pdf":
        return Response(report.daily_pdf(data), media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="nmp-recovery-{body.day.isoformat()}.pdf"'})
    return data


@router.get("/limits")
def get_limits(stack: str | None = None, workplace: str | None = None) -> dict[str, Any]:
    """The limits and factors the KPIs use, each with its source."""
    f = load_factors()
    return {"limits": load_limits(stack=stack, workplace=workplace).as_dict(),
            "factors": f.as_dict()}
