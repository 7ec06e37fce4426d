"""Incoming inspection: what the inspector saw and measured, kept as a row and as a ledger event.

The `inspected` event carries the whole record, so the chain vouches for it; the ``inspections``
row (linked to the event by its sequence number) is what queries and the grading read.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.errors import ValidationFailed
from batteryloop.grading.metrics import VISUAL_FINDINGS
from batteryloop.registry import ledger
from batteryloop.registry.service import Registry
from batteryloop.store.models import Battery, Inspection, Organisation

EVENT = "inspected"
_SKEW = timedelta(minutes=5)  # clocks of a field tablet and the server may differ a little


def _finite(values: list[float] | None, name: str) -> list[float] | None:
    if values is not None and not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be finite numbers")
    return values


class InspectionIn(BaseModel):
    """One inspection. Visual findings not named are recorded as checked and not seen."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    inspector: str | None = Field(default=None, description="inspecting organisation (uid or name)")
    inspected_by: str | None = Field(default=None, max_length=200, description="the person")
    inspected_at: datetime | None = Field(default=None, description="default now (UTC)")
    visual: dict[str, bool] = Field(
        default_factory=dict, description=f"findings seen (true) or not: {', '.join(VISUAL_FINDINGS)}")
    ocv_v: float | None = Field(default=None, gt=0, description="open-circuit voltage")
    cell_voltages_v: list[float] | None = Field(default=None, description="cell OCVs")
    insulation_resistance_ohm: float | None = Field(default=None, ge=0)
    insulation_voltage_v: float | None = Field(
        default=None, gt=0, description="working voltage to relate the insulation to (default: nominal)")
    bms_codes: list[str] | None = Field(default=None, description="fault codes read out; omit if not read")
    cell_soh_pct: list[float] | None = Field(default=None, description="SOH of each cell, %")
    expiry_date: date | None = Field(default=None, description="the maker's expiry date")
    test: str | None = Field(default=None, max_length=200, description="the pulse or capacity test")
    notes: str | None = None

    @field_validator("visual")
    @classmethod
    def _known_findings(cls, value: dict[str, bool]) -> dict[str, bool]:
        for key in value:
            if key not in VISUAL_FINDINGS:
                raise ValueError(f"unknown finding '{key}' (known: {', '.join(VISUAL_FINDINGS)})")
        return value

    @field_validator("cell_voltages_v")
    @classmethod
    def _voltages(cls, value: list[float] | None) -> list[float] | None:
        value = _finite(value, "cell_voltages_v")
        if value is not None and any(v < 0 or v > 10 for v in value):
            raise ValueError("cell voltages must be between 0 and 10 V")
        return value

    @field_validator("cell_soh_pct")
    @classmethod
    def _cell_soh(cls, value: list[float] | None) -> list[float] | None:
        value = _finite(value, "cell_soh_pct")
        if value is not None and any(v < 0 or v > 150 for v in value):
            raise ValueError("cell SOH values must be between 0 and 150 %")
        return value

    @field_validator("bms_codes")
    @classmethod
    def _codes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        codes = [c.strip() for c in value if c.strip()]
        return list(dict.fromkeys(codes))


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def record(session: Session, ref: str, data: InspectionIn) -> dict[str, Any]:
    """Store an inspection and append its `inspected` event; returns the record with seq and hash."""
    reg = Registry(session)
    battery = reg.battery(ref)
    inspector = reg.organisation(data.inspector) if data.inspector else None
    when = ledger.utc(data.inspected_at) if data.inspected_at else datetime.now(UTC)
    if when > datetime.now(UTC).replace(microsecond=0) + _SKEW:
        raise ValidationFailed("inspected_at is in the future", location="inspected_at")
    visual = {name: bool(data.visual.get(name, False)) for name in VISUAL_FINDINGS}
    payload: dict[str, Any] = {
        "inspected_by": data.inspected_by, "visual": visual, "ocv_v": data.ocv_v,
        "cell_voltages_v": data.cell_voltages_v,
        "insulation_resistance_ohm": data.insulation_resistance_ohm,
        "insulation_voltage_v": data.insulation_voltage_v, "bms_codes": data.bms_codes,
        "cell_soh_pct": data.cell_soh_pct,
        "expiry_date": data.expiry_date.isoformat() if data.expiry_date else None,
        "test": data.test, "notes": data.notes,
    }
    payload = {k: v for k, v in payload.items() if v is not None}
    appended = reg.append(battery.uid, EVENT, payload, actor=inspector.uid if inspector else None,
                          occurred_at=when)
    row = Inspection(
        battery_id=battery.id, inspector_id=inspector.id if inspector else None,
        inspected_by=data.inspected_by, inspected_at=when, visual=_json(visual),
        ocv_v=data.ocv_v, cell_voltages_v=_json(data.cell_voltages_v),
        insulation_resistance_ohm=data.insulation_resistance_ohm,
        insulation_voltage_v=data.insulation_voltage_v, bms_codes=_json(data.bms_codes),
        cell_soh_pct=_json(data.cell_soh_pct), expiry_date=data.expiry_date, test_ref=data.test,
        notes=data.notes, event_seq=appended.seq, created_at=datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    return as_dict(session, row, battery_uid=battery.uid, event_hash=appended.hash.hex())



def as_dict(session: Session, row: Inspection, *, battery_uid: str | None = None,
            event_hash: str | None = None) -> dict[str, Any]:
    if battery_uid is None:
        battery_uid = session.scalar(select(Battery.uid).where(Battery.id == row.battery_id))
    inspector = session.get(Organisation, row.inspector_id) if row.inspector_id else None
    return {
        "id": row.id, "battery": battery_uid,
        "inspector": {"uid": inspector.uid, "name": inspector.name} if inspector else None,
        "inspected_by": row.inspected_by, "inspected_at": ledger.iso(row.inspected_at),
        "visual": orjson.loads(row.visual), "ocv_v": row.ocv_v,
        "cell_voltages_v": orjson.loads(row.cell_voltages_v) if row.cell_voltages_v else None,
        "insulation_resistance_ohm": row.insulation_resistance_ohm,
        "insulation_voltage_v": row.insulation_voltage_v,
        "bms_codes": orjson.loads(row.bms_codes) if row.bms_codes is not None else None,
        "cell_soh_pct": orjson.loads(row.cell_soh_pct) if row.cell_soh_pct else None,
        "expiry_date": row.expiry_date.isoformat() if row.expiry_date else None,
        "test": row.test_ref, "notes": row.notes, "event_seq": row.event_seq,
        **({"event_hash": event_hash} if event_hash else {}),
    }


def latest(session: Session, battery_id: int) -> Inspection | None:
    return session.scalar(
        select(Inspection).where(Inspection.battery_id == battery_id)
        .order_by(Inspection.inspected_at.desc(), Inspection.id.desc())
    )


def listing(session: Session, ref: str) -> list[dict[str, Any]]:
    battery = Registry(session).battery(ref)
    rows = session.scalars(
        select(Inspection).where(Inspection.battery_id == battery.id).order_by(Inspection.id)
    )
    return [as_dict(session, r, battery_uid=battery.uid) for r in rows]
