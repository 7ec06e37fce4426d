"""Regrouping endpoints: plan packs (nothing written), build them, and consistency groups."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, ConfigDict, Field

from batteryloop.accounts.service import Principal
from batteryloop.accounts.viewer import Viewer
from batteryloop.api import auth
from batteryloop.api.deps import Db
from batteryloop.grading.regroup import consistency, service
from batteryloop.grading.regroup.from_ledger import FEATURES
from batteryloop.passport import records

router = APIRouter(tags=["grading"])
# A plan reads the grade and health of every battery named (Annex XIII 4, legitimate interest, or
# one's own batteries); building one is a write by a signed-in writer for its own organisation.
Who = Annotated[Viewer, Depends(auth.viewer)]
Writer = Annotated[Principal, Depends(auth.require_writer)]
RECORD = "grade"
_MAX = 100_000  # batteries in one request


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batteries: list[str] = Field(min_length=1, max_length=_MAX,
                                 description="cells or modules: passport ids, codes or identifiers")
    layout: str = Field(default="14S4P", max_length=16, description="S series x P parallel")
    clustering: service.Clustering | None = Field(
        default=None, description="assemble within consistency groups")
    packing: service.Packing = "window"
    leftover: service.Leftover = "weakest"
    capacity_basis: service.Basis = "value"
    relation: service.Relation = "repurposed"
    seed: int = Field(default=0, ge=0, le=2**32 - 1)

    def options(self) -> dict[str, Any]:
        return {"clustering": self.clustering, "packing": self.packing, "leftover": self.leftover,
                "capacity_basis": self.capacity_basis, "relation": self.relation, "seed": self.seed}


class CommitIn(PlanIn):
    kind: Literal["pack", "module"] = "pack"
    identifier_prefix: str | None = Field(
        default=None, max_length=64, description="pack k gets the second-life identifier PREFIX-k")
    plan_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="the plan reviewed: build only that")
    actor: str | None = None


class ClusterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batteries: list[str] = Field(min_length=2, max_length=_MAX)
    method: consistency.Method = "kmeans"
    n_groups: int | None = Field(default=None, ge=1)
    target_range: float | None = Field(default=None, ge=0, description="Ah")
    min_size: int | None = Field(default=None, ge=1)
    features: list[Literal[FEATURES]] | None = None  # type: ignore[valid-type]
    seed: int = Field(default=0, ge=0, le=2**32 - 1)


def _may_read(db: Db, who: Viewer, refs: list[str], request: Request, *, audit: bool = True) -> None:
    for ref in refs:
        records.require(db, who, RECORD, ref, path=request.url.path, audit=audit)


@router.post("/regroup/plan")
def plan(body: PlanIn, db: Db, who: Who, request: Request) -> dict[str, Any]:
    """What regrouping these batteries would build; nothing is recorded."""
    _may_read(db, who, body.batteries, request)
    return service.plan(db, body.batteries, body.layout, **body.options())


@router.post("/regroup/commit", status_code=status.HTTP_201_CREATED)
def commit(body: CommitIn, db: Db, who: Writer, request: Request) -> dict[str, Any]:
    """Build the packs: new batteries linked to their sources, `regrouped` events on all; the
    caller's organisation makes them (and is responsible for them, Art. 77(6))."""
    actor = auth.acting_organisation(db, who, body.actor)
    _may_read(db, who.viewer, body.batteries, request, audit=False)
    return service.commit(db, body.batteries, body.layout, kind=body.kind,
                          identifier_prefix=body.identifier_prefix, plan_sha256=body.plan_sha256,
                          actor=actor, **body.options())


@router.post("/regroup/cluster")
def cluster(body: ClusterIn, db: Db, who: Who, request: Request) -> dict[str, Any]:
    """Consistency groups of the batteries from their ledgers' health; nothing is recorded."""
    _may_read(db, who, body.batteries, request)
    return service.cluster(db, body.batteries, method=body.method, n_groups=body.n_groups,
                           target_range=body.target_range, min_size=body.min_size,
                           features=body.features, seed=body.seed)
