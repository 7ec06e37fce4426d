"""Intake and grading: upload a tester file (or give a pulse test) for a returned battery, with
what the inspector saw, and see the health estimate and the grading decision.

The page only collects the form; ``grading.intake`` checks everything it can before writing and
records test, inspection, health and grade for the signed-in writer's organisation. As the API's
writes, intake takes a writer acting for its own organisation that may read the records it writes
of that battery (passport/data/records.toml: the legitimate-interest tier, or its own batteries);
the batteries waiting are listed only to readers who may read those records of them.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from sqlalchemy.orm import Session

from batteryloop.accounts import tiers
from batteryloop.accounts.errors import Forbidden, Unauthorized
from batteryloop.api import auth
from batteryloop.api.deps import Db, database
from batteryloop.errors import BatteryloopError, ValidationFailed
from batteryloop.grading import intake as intake_service
from batteryloop.grading import policy as policies
from batteryloop.grading.inspection import InspectionIn
from batteryloop.grading.metrics import VISUAL_FINDINGS
from batteryloop.passport import records
from batteryloop.settings import get_settings
from batteryloop.web.pages.common import (Who, annotate, error_page, may_write, narrowed, render,
                                          tier_of)
from batteryloop.web.signin import require_csrf

router = APIRouter(include_in_schema=False)
WAITING_STATES = ("collected", "tested")
WRITES = ("inspections", "health", "grade")  # what every intake records (records.toml names)
_UNSAFE = re.compile(r"[^A-Za-z0-9._ +()-]+")

Text = Annotated[str | None, Form()]
Findings = Annotated[list[str] | None, Form()]


def _writer(who: Who) -> None:
    """A signed-in writer, or the refusal the API would give."""
    if not who.authenticated:
        raise Unauthorized("intake records events: sign in as a writer of an organisation")
    if not may_write(who):
        raise Forbidden("intake records events: your account has no 'write' role")


def _acting(session: Session, who: Who, ref: str, writes: tuple[str, ...], path: str) -> str:
    """The writer's own organisation, once it may read each record it will write of the battery
    (the answer shows them), as the API's writes check it."""
    actor = auth.acting_organisation(session, who, None)
    for name in writes:
        records.require(session, who.viewer, name, ref, path=path, audit=False)
    return actor


def _number(text: str | None, field: str) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        raise ValidationFailed(f"'{text}' is not a number", location=field) from None


def _inspection(actor: str, finding: list[str] | None, ocv_v: str | None,
                insulation_mohm: str | None, bms_read: str | None, bms_codes: str | None,
                notes: str | None) -> InspectionIn:
    ohm = _number(insulation_mohm, "insulation_mohm")
    codes = [c for c in re.split(r"[,\s]+", bms_codes or "") if c]
    try:
        return InspectionIn(inspector=actor, visual={f: True for f in finding or []},
                            ocv_v=_number(ocv_v, "ocv_v"),
                            insulation_resistance_ohm=ohm * 1e6 if ohm is not None else None,
                            bms_codes=codes if codes or bms_read else None,
                            notes=(notes or "").strip() or None)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValidationFailed(first["msg"], location=".".join(str(p) for p in first["loc"])
                               or "inspection") from None


def _safe_name(name: str | None) -> str:
    base = _UNSAFE.sub("_", Path((name or "").replace("\\", "/")).name.strip()).lstrip(".")
    return base[:200] or "upload.bin"


def _waiting(request: Request, db: Db, who: Who) -> list[dict[str, Any]]:
    """The batteries waiting for intake whose state and intake records the reader may read."""
    reader = records.Reader(db, who.viewer)
    where = reader.where(tiers.highest(tier_of("tests", *WRITES), records.field_tier("state")))
    if where is False:
        return []
    path = request.url.path
    found = [b for state in WAITING_STATES
             for b in records.batteries(db, who.viewer, state=state, where=narrowed(where),
                                        limit=50, path=path)["items"]]
    return annotate(db, reader, found, path=path)


def _form_context(request: Request, db: Db, who: Who, battery: str | None) -> dict[str, Any]:
    waiting = _waiting(request, db, who)
    return {"battery": battery or "", "waiting": waiting, "findings": VISUAL_FINDINGS,
            "policies": policies.available(), "can_write": may_write(who),
            "signed_in": who.authenticated}


@router.get("/intake", response_class=HTMLResponse)
def intake_form(request: Request, db: Db, who: Who, battery: str | None = None) -> HTMLResponse:
    return render(request, "intake.html", _form_context(request, db, who, battery))


@router.post("/intake/test", response_class=HTMLResponse,
             dependencies=[Depends(require_csrf)])
def intake_test(
    request: Request, who: Who,
    battery: Annotated[str, Form()], file: Annotated[UploadFile, File()],
    policy: Annotated[str, Form()] = "ev-reuse", finding: Findings = None, ocv_v: Text = None,
    insulation_mohm: Text = None, bms_read: Text = None, bms_codes: Text = None,
    notes: Text = None,
) -> HTMLResponse:
    folder = Path(tempfile.mkdtemp(prefix="batteryloop-intake-"))
    try:
        _writer(who)
        with database(request).session() as s:
            actor = _acting(s, who, battery.strip(), ("tests", *WRITES), request.url.path)
        inspection = _inspection(actor, finding, ocv_v, insulation_mohm, bms_read, bms_codes, notes)
        name = _safe_name(file.filename)
        if not file.filename:
            raise ValidationFailed("choose a tester file to upload", location="file")
        path = folder / name
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        result = intake_service.intake_test(database(request), battery.strip(), path,
                                            policy=policy, inspection=inspection, actor=actor,
                                            name=name)
    except BatteryloopError as exc:
        return error_page(request, exc, back=f"/intake?battery={battery}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return render(request, "intake_result.html", {"result": result, "mode": "test"})


def _pulse_values(file: UploadFile | None, voltages: str | None, soc: str | None,
                  chemistry: str | None, rated_ah: float | None) -> tuple[list[float], float]:
    """One pulse test, from an uploaded pulse CSV (its one row) or from the form's fields."""
    if file is not None and file.filename:
        from batteryloop.health.pulse_input import read_pulse_file

        name = _safe_name(file.filename)
        folder = Path(tempfile.mkdtemp(prefix="batteryloop-pulse-"))
        try:
            path = folder / name
            with path.open("wb") as out:
                shutil.copyfileobj(file.file, out)
            table = read_pulse_file(path, chemistry=chemistry, rated_ah=rated_ah, name=name)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if len(table) != 1:
            raise ValidationFailed(f"{len(table)} pulse tests in the file: intake takes one per "
                                   "battery", location=name)
        return [float(v) for v in table.voltages[0]], float(table.soc[0])
    parts = [p for p in re.split(r"[,;\s]+", voltages or "") if p]
    volts = [_number(p, f"voltages[{i}]") for i, p in enumerate(parts)]
    level = _number(soc, "soc")
    if level is None:
        raise ValidationFailed("give the state of charge the battery arrived with (%)",
                               location="soc")
    return [float(v) for v in volts if v is not None], level


@router.post("/intake/pulse", response_class=HTMLResponse,
             dependencies=[Depends(require_csrf)])
def intake_pulse(
    request: Request, who: Who, battery: Annotated[str, Form()],
    file: Annotated[UploadFile | None, File()] = None, voltages: Text = None, soc: Text = None,
    policy: Annotated[str, Form()] = "ev-reuse", finding: Findings = None, ocv_v: Text = None,
    insulation_mohm: Text = None, bms_read: Text = None, bms_codes: Text = None,
    notes: Text = None,
) -> HTMLResponse:
    from batteryloop.registry.service import Registry

    try:
        _writer(who)
        # one unit of work: a refusal anywhere leaves no inspection, health or grade behind
        with database(request).session() as s:
            actor = _acting(s, who, battery.strip(), WRITES, request.url.path)
            inspection = _inspection(actor, finding, ocv_v, insulation_mohm, bms_read, bms_codes,
                                     notes)
            record = Registry(s).battery(battery.strip())
            volts, level = _pulse_values(file, voltages, soc, record.chemistry,
                                         record.rated_capacity_ah)
            model, _card = intake_service.pulse_model(
                get_settings().data_dir / intake_service.PULSE_MODEL_FOLDER)
            result = intake_service.intake_pulse(s, record.uid, volts, level, model=model,
                                                 policy=policy, inspection=inspection,
                                                 actor=actor)
    except BatteryloopError as exc:
        return error_page(request, exc, back=f"/intake?battery={battery}")
    return render(request, "intake_result.html", {"result": result, "mode": "pulse"})
