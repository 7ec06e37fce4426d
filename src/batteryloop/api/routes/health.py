"""Health endpoints: assess from stored tests, read the latest assessment."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel

from batteryloop.api.deps import Db
from batteryloop.errors import NotFound
from batteryloop.health.assess import assess_from_test, latest_assessment

router = APIRouter(tags=["health"])


class AssessIn(BaseModel):
    test: str | None = None
    initial_r_ohm: float | None = None
    actor: str | None = None


@router.post("/batteries/{ref}/health", status_code=status.HTTP_201_CREATED)
def assess(ref: str, body: AssessIn, db: Db) -> dict[str, Any]:
    return assess_from_test(db, ref, test=body.test, actor=body.actor,
                            initial_r_ohm=body.initial_r_ohm)


@router.get("/batteries/{ref}/health")
def latest(ref: str, db: Db) -> dict[str, Any]:
    result = latest_assessment(db, ref)
    if result is None:
        raise NotFound(f"battery '{ref}' has no health assessment yet")
    return result
