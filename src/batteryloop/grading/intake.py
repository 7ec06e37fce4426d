"""Intake of a returned battery in one step: its test (a tester file, or a pulse test), the
inspection, the health estimate and the grade, as the grading floor records them one by one.

Why a workflow of its own: a person at the intake desk hands over a file and what they saw, and
expects either a decision or a clear refusal. So everything that can be checked before writing is
checked first (the battery, its state, its rating, the policy, the inspection, the file parses, a
capacity can be measured from it); only then is the test stored and, in one unit of work, the
inspection, the health assessment and the grade appended. A bad file leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from batteryloop.cycling import storage
from batteryloop.cycling.ingest import Rejected, parse, tidy, warnings_of
from batteryloop.cycling.summary import steps
from batteryloop.errors import BatteryloopError, IllegalTransition, ValidationFailed
from batteryloop.grading import inspection as inspections
from batteryloop.grading import policy as policies
from batteryloop.grading.service import GRADABLE, grade
from batteryloop.health import soh
from batteryloop.health.assess import latest_assessment
from batteryloop.registry.service import Registry
from batteryloop.store import Database
from batteryloop.store.models import Battery

PULSE_MODEL_FOLDER = "models"  # under the data directory, as health.artifacts saves them


def _check_battery(session: Session, ref: str, inspection: inspections.InspectionIn | None
                   ) -> Battery:
    battery = Registry(session).battery(ref)
    if battery.state not in GRADABLE:
        raise IllegalTransition(
            f"battery {battery.uid} is '{battery.state}': intake grades batteries that are "
            f"{', '.join(GRADABLE)} (move it to 'collected' first)")
    if not battery.rated_capacity_ah:
        raise ValidationFailed(f"battery {battery.uid} has no rated capacity in the registry: "
                               "SOH needs it", location="rated_capacity_ah")
    if inspection is None and inspections.latest(session, battery.id) is None:
        raise ValidationFailed(f"battery {battery.uid} has no inspection recorded: give the "
                               "inspection with the test", location="inspection")
    return battery


def _parse(path: Path, name: str, strict: bool) -> tuple[Any, Any, Any]:
    """The tester file as one canonical table; a refusal names the file as the user called it."""
    try:
        return parse(path, strict=strict)
    except Rejected as exc:
        text = tidy(str(exc)).replace(str(path), name).replace(str(path.parent), "")
        raise ValidationFailed(text.removeprefix(f"{name}: "), location=name) from None


def _measurable(df: Any, rated_ah: float, name: str) -> None:
    """Refuse, before storing it, a file from which no capacity can be measured."""
    try:
        values = soh.from_steps(steps(df), rated_ah=rated_ah)
    except BatteryloopError as exc:
        raise ValidationFailed(f"{name}: {exc.message}", location=name) from None
    if not any(v.parameter == "capacity_soh" for v in values):
        raise ValidationFailed(f"{name}: no full discharge in this file, so no capacity SOH can "
                               "be measured from it", location=name)


def _result(session: Session, uid: str, graded: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"battery": Registry(session).describe(uid), "health": latest_assessment(session, uid),
            "grade": graded, **extra}


def intake_test(
    db: Database, ref: str, path: Path, *, policy: str = "ev-reuse",
    inspection: inspections.InspectionIn | None = None, actor: str | None = None,
    name: str | None = None, strict: bool = True, root: Path | None = None,
) -> dict[str, Any]:
    """Store the tester file as a test of the battery, record the inspection (if given), assess
    health from the test and grade it; returns the battery, the health and the grade."""
    name = name or path.name
    pol = policies.load(policy)
    with db.session() as s:
        battery = _check_battery(s, ref, inspection)
        uid, rated = battery.uid, float(battery.rated_capacity_ah or 0)
        if actor:
            Registry(s).organisation(actor)
    df, meta, summary = _parse(path, name, strict)
    _measurable(df, rated, name)
    stored = storage.store(db, df, meta, battery=uid, actor=actor, root=root, summary=summary)
    with db.session() as s:
        if inspection is not None:
            inspections.record(s, uid, inspection.model_copy(
                update={"test": stored.sha256, "inspector": inspection.inspector or actor}))
        graded = grade(s, uid, policy=pol, actor=actor, assess=stored.sha256, root=root)
        return _result(s, uid, graded, test=asdict(stored) | {"warnings": warnings_of(meta)})


def pulse_model(root: Path) -> tuple[Any, Any]:
    """The newest saved pulse-test SOH model under ``root`` (NotFound names what to do)."""
    from batteryloop.health import pulse

    return pulse.load(root)


def intake_pulse(
    session: Session, ref: str, voltages: list[float], soc: float, *, model: Any,
    policy: str = "ev-reuse", inspection: inspections.InspectionIn | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Estimate SOH from one pulse test with a trained model, record it with its interval and
    grade the battery on it. An out-of-domain test is graded on its widened interval and says
    why."""
    from batteryloop.health import pulse

    pol = policies.load(policy)
    battery = _check_battery(session, ref, inspection)
    test = pulse.PulseTest(voltages=tuple(voltages), soc=soc,
                           rated_ah=float(battery.rated_capacity_ah or 0),
                           chemistry=_pulse_chemistry(battery.chemistry))
    estimate = pulse.predict(model, test)
    value = {"parameter": "capacity_soh", "value": 100 * estimate.value,
             "lower": 100 * estimate.lower, "upper": 100 * estimate.upper,
             "method": f"pulse test: {estimate.method}",
             "source": f"model {estimate.model_version}"}
    if inspection is not None:
        inspections.record(session, battery.uid, inspection.model_copy(
            update={"test": "pulse test", "inspector": inspection.inspector or actor}))
    graded = grade(session, battery.uid, policy=pol, actor=actor, health=[value])
    return _result(session, battery.uid, graded, estimate=estimate.as_dict())


def _pulse_chemistry(chemistry: str | None) -> str:
    """The pulse model's chemistry family of a registry chemistry (NMC811 -> NMC)."""
    from batteryloop.health.pulse_features import chemistries

    text = (chemistry or "").upper()
    for family in sorted(chemistries(), key=len, reverse=True):
        if text.startswith(family):
            return family
    raise ValidationFailed(
        f"chemistry '{chemistry}' has no pulse-test model family (known: "
        f"{', '.join(chemistries())})", location="chemistry")
