"""The regrouping planner: choose cells (kind, state, chemistry, grade) and an sSpP layout, and see
what ``grading.regroup.service.plan`` would build of them, a dry run: groups, spreads, the gap to
the bound. Nothing is recorded; the plan's SHA-256 is what ``regroup commit`` takes to build it.

A plan reads the grade and the health of every cell in it, so, as ``POST /api/v1/regroup/plan``,
the planner selects only cells whose grade and health its reader may read (all at the
legitimate-interest tier, its own organisation's below it), and audits those reads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.accounts import tiers
from batteryloop.api.deps import Db
from batteryloop.errors import BatteryloopError, ValidationFailed
from batteryloop.grading import catalogue
from batteryloop.grading.regroup import service as regrouping
from batteryloop.grading.regroup.selection import select_batteries
from batteryloop.passport import records
from batteryloop.registry.lifecycle import lifecycle
from batteryloop.store.models import Battery
from batteryloop.web.pages import plots
from batteryloop.web.pages.common import (Who, annotate, audit, error_page, narrowed, render,
                                          tier_of)

router = APIRouter(include_in_schema=False)


def _number(text: str | None, field: str) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text.strip())
    except ValueError:
        raise ValidationFailed(f"'{text}' is not a number", location=field) from None
    if not value > 0:
        raise ValidationFailed("must be above 0", location=field)
    return value


READ = ("grade", "health")  # the records a plan reads of every cell (records.toml)


def _names(session: Session, reader: records.Reader, uids: list[str], path: str
           ) -> dict[str, str]:
    """What each cell is called on the page, as its reader may read it (``common.annotate``)."""
    items = annotate(session, reader, [{"uid": u} for u in uids], path=path)
    return {i["uid"]: i["label"] for i in items if i["label"]}


def _audit_plan(session: Session, reader: records.Reader, uids: list[str], path: str) -> None:
    """The grade and health of every cell planned were read: one audit entry per cell."""
    names = [records.record(n).audit_name for n in READ]
    rows = session.scalars(select(Battery).where(Battery.uid.in_(uids)))
    audit(session, [(reader.of(b), b.uid, names) for b in rows], path)


def _view(plan: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    """The plan's packs with each group's cells, their capacities and names, for the page."""
    basis = "capacity_ah" if plan["method"]["capacity_basis"] == "value" else "capacity_lower_ah"
    capacity = {c["uid"]: c[basis] for c in plan["cells"]}
    view = []
    for p in plan["packs"]:
        groups = [{"capacity": sum(capacity[u] for u in group),
                   "cells": [{"uid": u, "name": names.get(u), "capacity": capacity[u]}
                             for u in group]} for group in p["groups"]]
        view.append({**p, "usable": p["usable_capacity_ah"], "bound": p["upper_bound_ah"],
                     "groups": groups})
    return view


@router.get("/regroup", response_class=HTMLResponse)
def regroup(
    request: Request, db: Db, who: Who,
    kind: str = "cell", state: str | None = "graded", chemistry: str | None = None,
    grade: str | None = None,
    series: Annotated[int, Query(ge=1, le=400)] = 7,
    parallel: Annotated[int, Query(ge=1, le=100)] = 4,
    basis: str = "value", target_range: str | None = None, run: bool = False,
) -> HTMLResponse:
    reader = records.Reader(db, who.viewer)
    readable = reader.where(tier_of(*READ))
    plannable = readable is not False
    form: dict[str, Any] = {"kind": kind if kind in ("pack", "module", "cell") else "cell",
                            "state": state or None, "chemistry": chemistry or None,
                            "grade": grade or None, "series": series, "parallel": parallel,
                            "basis": "lower" if basis == "lower" else "value",
                            "target_range": (target_range or "").strip()}
    context: dict[str, Any] = {
        "form": form, "records": plannable, "own_only": narrowed(readable) is not None,
        "states": list(lifecycle().states), "chemistries": catalogue.chemistries_in_use(db),
        "grades": catalogue.grades_in_use(db, narrowed(readable)) if plannable else [],
        "plan": None,
    }
    if plannable and run:
        try:
            if form["state"]:
                lifecycle().state(form["state"])
            width = _number(form["target_range"], "target_range")
            # the state is read too where it filters; it has the same tier as grade and health
            where = reader.where(tiers.highest(tier_of(*READ), records.field_tier("state"))
                                 if form["state"] else tier_of(*READ))
            uids, unusable = select_batteries(db, kind=form["kind"], state=form["state"],
                                              chemistry=form["chemistry"], grade=form["grade"],
                                              where=narrowed(where))
            if not uids:
                raise ValidationFailed("no battery matching these filters has a rated capacity "
                                       "and a measured capacity SOH", location="batteries")
            plan = regrouping.plan(
                db, uids, f"{series}S{parallel}P", capacity_basis=form["basis"],
                clustering=regrouping.Clustering(target_range=width) if width else None)
        except BatteryloopError as exc:
            db.rollback()  # no audit entry for a read the page then did not show
            return error_page(request, exc, back="/regroup")
        _audit_plan(db, reader, uids, request.url.path)
        names = _names(db, reader, [c["uid"] for c in plan["cells"]], request.url.path)
        view = _view(plan, names)
        context.update(plan=plan, view=view, unusable=unusable, names=names,
                       packs_plot=plots.as_json(plots.packs(view)),
                       groups_plot=plots.as_json(plots.groups(view)))
    return render(request, "regroup.html", context)
