"""Dismantling records: a battery taken apart, each fraction weighed, kept as rows and as the
battery's ``dismantled`` ledger event (then its status moves to ``dismantled``).

The record is refused whole when a weight is missing or impossible: no weight for the pack, a
fraction of zero, negative or non-finite mass, fractions that weigh more than the pack, or a pack
whose fractions leave more unaccounted than the stated tolerance (a fraction was not weighed).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.errors import Conflict, NotFound, ValidationFailed
from batteryloop.recycling import composition, fractions, routes
from batteryloop.registry import ledger
from batteryloop.registry.lifecycle import lifecycle
from batteryloop.registry.service import Registry
from batteryloop.store.models import Battery, DismantledFraction, Dismantling, Organisation

EVENT = "dismantled"
STATE = "dismantled"
_SKEW = timedelta(minutes=5)
MASS_MISMATCH_WARN_PCT = 10.0  # convention: weighed vs registered mass worth a remark


class FractionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    fraction: str = Field(description="black_mass, cu_foil, al_foil, casings, plastics, "
                                      "electrolyte, cells, modules, housing, module_hardware, bms, "
                                      "wiring, thermal, other")
    mass_kg: Any = Field(description="weighed mass, kg")
    material: str | None = Field(default=None, description="for casings, housing...: aluminium, "
                                                           "steel, pouch_laminate...")


class DismantlingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    fractions: list[FractionIn] = Field(min_length=1)
    weighed_mass_kg: Any = Field(default=None, description="the battery as it came in; default: "
                                                           "its registered mass")
    chemistry: str | None = Field(default=None, description="default: the registered chemistry")
    modules: int | None = Field(default=None, ge=0)
    cells: int | None = Field(default=None, ge=0)
    dismantled_at: datetime | None = None
    tolerance_pct: float | None = Field(default=None, ge=0, le=100,
                                        description="unaccounted mass allowed (default from "
                                                    "routes.toml [balance])")
    notes: str | None = None
    actor: str | None = Field(default=None, description="dismantling organisation (uid or name)")


def _weight(value: Any, where: str) -> float:
    """A weight that can exist: a finite number above zero."""
    if value is None or value == "":
        raise ValidationFailed("weight is missing", location=where)
    if isinstance(value, bool):
        raise ValidationFailed(f"{value!r} is not a weight", location=where)
    try:
        kg = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValidationFailed(f"{value!r} is not a number", location=where) from None
    if not math.isfinite(kg) or kg <= 0:
        raise ValidationFailed(f"{value!r} kg is impossible (need a finite weight above 0)",
                               location=where)
    return kg


def _checked_fractions(data: DismantlingIn, chemistry: str | None) -> list[dict[str, Any]]:
    out = []
    kinds = fractions.kinds()
    for n, f in enumerate(data.fractions):
        where = f"fractions[{n}] ({f.fraction})"
        material = fractions.check(f.fraction, f.material, chemistry, location=where)
        out.append({"fraction": f.fraction, "level": kinds[f.fraction]["level"],
                    "material": material, "mass_kg": _weight(f.mass_kg, f"{where}.mass_kg")})
    return out


def record(session: Session, ref: str, data: DismantlingIn) -> dict[str, Any]:
    """Store a dismantling, append ``dismantled`` and move the battery to ``dismantled``."""
    reg = Registry(session)
    battery = reg.battery(ref)
    if session.scalar(select(Dismantling.id).where(Dismantling.battery_id == battery.id)):
        raise Conflict(f"battery '{ref}' has already been dismantled")
    lifecycle().check(battery.state, STATE)
    actor = reg.organisation(data.actor) if data.actor else None
    when = ledger.utc(data.dismantled_at) if data.dismantled_at else datetime.now(UTC)
    if when > datetime.now(UTC).replace(microsecond=0) + _SKEW:
        raise ValidationFailed("dismantled_at is in the future", location="dismantled_at")
    chemistry_raw = data.chemistry or battery.chemistry
    chemistry = composition.canonical(chemistry_raw) if chemistry_raw else None
    rows = _checked_fractions(data, chemistry)
    if data.weighed_mass_kg is None and battery.mass_kg is None:
        raise ValidationFailed("the battery's weight is missing: weigh it (weighed_mass_kg) or "
                               "register its mass", location="weighed_mass_kg")
    weighed = _weight(data.weighed_mass_kg if data.weighed_mass_kg is not None else battery.mass_kg,
                      "weighed_mass_kg")
    tol = float(data.tolerance_pct if data.tolerance_pct is not None
                else routes.balance_settings()["dismantling_unaccounted_pct"])
    total = math.fsum(r["mass_kg"] for r in rows)
    unaccounted = weighed - total
    if total > weighed * (1 + tol / 100):
        raise ValidationFailed(
            f"the fractions weigh {total:.3f} kg, more than the {weighed:.3f} kg battery (beyond "
            f"{tol:g} %): a weight is wrong", location="fractions")
    if unaccounted > weighed * tol / 100:
        raise ValidationFailed(
            f"{unaccounted:.3f} kg ({100 * unaccounted / weighed:.2f} %) of the {weighed:.3f} kg "
            f"battery is in no fraction (beyond {tol:g} %): a fraction is missing or mis-weighed",
            location="fractions")
    remarks = []
    if battery.mass_kg and abs(weighed - battery.mass_kg) > battery.mass_kg * MASS_MISMATCH_WARN_PCT / 100:
        remarks.append(f"weighed {weighed:.1f} kg against {battery.mass_kg:.1f} kg registered")
    children = list(session.scalars(select(Battery.uid).where(Battery.parent_id == battery.id)
                                    .order_by(Battery.id)))
    payload: dict[str, Any] = {
        "weighed_mass_kg": weighed, "chemistry": chemistry, "modules": data.modules,
        "cells": data.cells, "fractions": rows, "unaccounted_kg": round(unaccounted, 6),
        "registered_parts": children or None, "notes": data.notes,
    }
    payload = {k: v for k, v in payload.items() if v is not None}
    appended = reg.append(battery.uid, EVENT, payload, actor=actor.uid if actor else None,
                          occurred_at=when)
    reg.change_status(battery.uid, STATE, actor=actor.uid if actor else None, occurred_at=when,
                      reason="dismantled")
    row = Dismantling(
        battery_id=battery.id, dismantler_id=actor.id if actor else None, dismantled_at=when,
        weighed_mass_kg=weighed, chemistry=chemistry or (battery.chemistry or "unknown"),
        modules=data.modules, cells=data.cells, event_seq=appended.seq, batch_id=None,
        notes=data.notes, created_at=datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    session.add_all(DismantledFraction(dismantling_id=row.id, **r) for r in rows)
    session.flush()
    out = as_dict(session, row)
    out["event_hash"] = appended.hash.hex()
    out["remarks"] = remarks
    return out


def for_battery(session: Session, ref: str) -> Dismantling:
    battery = Registry(session).battery(ref)
    row = session.scalar(select(Dismantling).where(Dismantling.battery_id == battery.id))
    if row is None:
        raise NotFound(f"battery '{ref}' has not been dismantled")
    return row


def as_dict(session: Session, row: Dismantling) -> dict[str, Any]:
    battery = session.get(Battery, row.battery_id)
    who = session.get(Organisation, row.dismantler_id) if row.dismantler_id else None
    parts = session.scalars(select(DismantledFraction).where(
        DismantledFraction.dismantling_id == row.id).order_by(DismantledFraction.id))
    rows = [{"fraction": f.fraction, "level": f.level, "material": f.material,
             "mass_kg": f.mass_kg} for f in parts]
    total = math.fsum(r["mass_kg"] for r in rows)
    return {
        "id": row.id, "battery": {"uid": battery.uid, "code": battery.code, "kind": battery.kind},
        "dismantler": {"uid": who.uid, "name": who.name} if who else None,
        "dismantled_at": ledger.iso(row.dismantled_at), "weighed_mass_kg": row.weighed_mass_kg,
        "chemistry": row.chemistry, "modules": row.modules, "cells": row.cells,
        "fractions": rows, "fractions_kg": total, "unaccounted_kg": row.weighed_mass_kg - total,
        "event_seq": row.event_seq, "batch_id": row.batch_id, "notes": row.notes,
    }


def fraction_table(session: Session, dismantling_ids: list[int]) -> pl.DataFrame:
    """The weighed fractions of these dismantlings, one row each, with battery and chemistry."""
    stmt = (select(Battery.uid.label("battery"), Dismantling.chemistry, DismantledFraction.fraction,
                   DismantledFraction.material, DismantledFraction.mass_kg)
            .join(Dismantling, Dismantling.id == DismantledFraction.dismantling_id)
            .join(Battery, Battery.id == Dismantling.battery_id)
            .where(Dismantling.id.in_(dismantling_ids)).order_by(DismantledFraction.id))
    res = session.execute(stmt).all()
    return pl.DataFrame([tuple(r) for r in res], orient="row",
                        schema={"battery": pl.String, "chemistry": pl.String,
                                "fraction": pl.String, "material": pl.String,
                                "mass_kg": pl.Float64})
