"""The grading workflow over the registry: facts from the ledger, a decision, and its trace.

    inspect (``inspected``) -> health (``health-assessed``) -> grade (``graded`` + status change)
    -> route: apply it (status change) or make a second-life battery from graded sources

Every decision rests on ledger events: a grade names the inspection and health events it used (by
sequence number and hash), the policy (name, version, SHA-256) and the prices, so a certificate can
point at exactly what was decided from what.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.errors import Conflict, IllegalTransition, NotFound, ValidationFailed
from batteryloop.grading import inspection as inspections
from batteryloop.grading import policy as policies
from batteryloop.grading.engine import Facts, evaluate
from batteryloop.grading.metrics import Measure
from batteryloop.grading.policy import Policy
from batteryloop.grading.value import Prices, rated_energy_kwh, residual_value
from batteryloop.health.assess import EVENT as HEALTH_EVENT
from batteryloop.health.soh import parameters as soh_parameters
from batteryloop.registry.schemas import SECOND_LIFE, BatteryIn, SuccessorIn
from batteryloop.registry.service import Registry
from batteryloop.store.models import Battery, Event

EVENT = "graded"
GRADABLE = ("collected", "tested", "graded")
DAYS_PER_YEAR = 365.25
DAYS_PER_MONTH = 30.4375


class HealthValueIn(BaseModel):
    """A health value given to the grading (e.g. from a pulse-test model run elsewhere)."""

    model_config = ConfigDict(extra="forbid")

    parameter: str
    value: float
    lower: float
    upper: float
    unit: str | None = Field(default=None, description="default: the parameter's own unit")
    method: str = "supplied"
    measured_at: str | None = None
    source: str | None = None

    @field_validator("parameter")
    @classmethod
    def _known(cls, value: str) -> str:
        # any parameter the health floor defines (a policy's SOH is one of HEALTH_PARAMETERS)
        known = soh_parameters()["parameters"]
        if value not in known:
            raise ValueError(f"unknown health parameter '{value}' (known: {', '.join(known)})")
        return value

    @model_validator(mode="after")
    def _unit(self) -> HealthValueIn:
        if self.unit is None:
            self.unit = soh_parameters()["parameters"].get(self.parameter, {}).get("unit", "")
        return self


def _health_values(values: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for v in values:
        d = v.as_dict() if hasattr(v, "as_dict") else v.model_dump() if hasattr(v, "model_dump") else dict(v)
        item = HealthValueIn(**{k: val for k, val in d.items() if val is not None})
        Measure.from_health(item.model_dump())  # checks finiteness and lower <= value <= upper
        out.append({k: val for k, val in item.model_dump().items() if val is not None})
    if not out:
        raise ValidationFailed("health values were given but the list is empty", location="health")
    return out


def record_health(session: Session, ref: str, values: Iterable[Any], *, actor: str | None = None,
                  method: str = "supplied", source: str | None = None) -> dict[str, Any]:
    """Record given health values (HealthValue, dicts) as a `health-assessed` event."""
    reg = Registry(session)
    battery = reg.battery(ref)
    payload: dict[str, Any] = {"method": method, "values": _health_values(values)}
    if source:
        payload["source"] = source
    appended = reg.append(battery.uid, HEALTH_EVENT, payload, actor=actor)
    return {"battery": battery.uid, "seq": appended.seq, "hash": appended.hash.hex(), **payload}


def _health_from_history(history: list[dict[str, Any]]) -> tuple[dict[str, Measure], list[dict[str, Any]]]:
    """The newest value of each health parameter over all `health-assessed` events."""
    latest: dict[str, tuple[Measure, dict[str, Any]]] = {}
    for event in history:
        if event["type"] != HEALTH_EVENT:
            continue
        for value in event["payload"].get("values", []):
            try:
                latest[value["parameter"]] = (Measure.from_health(value), event)
            except (ValidationFailed, KeyError):
                continue
    refs: dict[int, dict[str, Any]] = {}
    for _, event in latest.values():
        refs[event["seq"]] = {"type": HEALTH_EVENT, "seq": event["seq"], "hash": event["hash"],
                              "occurred_at": event["occurred_at"]}
    return {p: m for p, (m, _) in latest.items()}, [refs[s] for s in sorted(refs)]


def _descendant_cells(session: Session, battery: Battery) -> list[Battery]:
    found, frontier = [], [battery.id]
    while frontier:
        rows = list(session.scalars(select(Battery).where(Battery.parent_id.in_(frontier))))
        found += [b for b in rows if b.kind == "cell"]
        frontier = [b.id for b in rows if b.kind != "cell"]
    return found


def _cells_spread(session: Session, reg: Registry, battery: Battery) -> tuple[float, str] | None:
    """SOH spread of the battery's registered cells from their own health assessments."""
    cells = _descendant_cells(session, battery)
    values = []
    for cell in cells:
        measures, _ = _health_from_history(reg.history(cell.uid))
        if "capacity_soh" in measures:
            values.append(measures["capacity_soh"].value)
    if len(values) < 2:
        return None
    return max(values) - min(values), f"capacity SOH of {len(values)} registered cells"


def facts_for(session: Session, battery: Battery, *, when: datetime | None = None,
              history: list[dict[str, Any]] | None = None) -> tuple[Facts, list[dict[str, Any]]]:
    """Facts about a battery from its registry record, latest inspection and health events, and
    the ledger events they rest on."""
    reg = Registry(session)
    when = when or datetime.now(UTC)
    history = history if history is not None else reg.history(battery.uid)
    measures, rests_on = _health_from_history(history)
    facts = Facts(measures=dict(measures))
    if battery.manufactured_on:
        age = (when.date() - battery.manufactured_on).days / DAYS_PER_YEAR
        facts.measures["calendar_age"] = Measure.exact(round(age, 3), "years",
                                                       method="since the manufacturing date")
    row = inspections.latest(session, battery.id)
    if row is not None:
        event = next((e for e in history if e["type"] == inspections.EVENT and e["seq"] == row.event_seq),
                     None)
        if event:
            rests_on.append({"type": inspections.EVENT, "seq": event["seq"], "hash": event["hash"],
                             "occurred_at": event["occurred_at"]})
        facts.findings = {k: bool(v) for k, v in orjson.loads(row.visual).items()}
        facts.bms_codes = orjson.loads(row.bms_codes) if row.bms_codes is not None else None
        src = f"inspection (event {row.event_seq})"
        if row.insulation_resistance_ohm is not None:
            volts = row.insulation_voltage_v or battery.nominal_voltage_v
            if volts:
                facts.measures["insulation_resistance"] = Measure.exact(
                    row.insulation_resistance_ohm / volts, "ohm/V",
                    method=f"{row.insulation_resistance_ohm:g} ohm at {volts:g} V", source=src)
        cell_v = orjson.loads(row.cell_voltages_v) if row.cell_voltages_v else None
        if cell_v:
            facts.measures["min_cell_voltage"] = Measure.exact(min(cell_v), "V",
                                                               method="cell OCV", source=src)
        elif battery.kind == "cell" and row.ocv_v is not None:
            facts.measures["min_cell_voltage"] = Measure.exact(row.ocv_v, "V", method="OCV", source=src)
        cell_soh = orjson.loads(row.cell_soh_pct) if row.cell_soh_pct else None
        if cell_soh and len(cell_soh) >= 2:
            facts.measures["cell_soh_spread"] = Measure.exact(
                round(max(cell_soh) - min(cell_soh), 6), "percentage points",
                method=f"max - min of {len(cell_soh)} cell SOH values", source=src)
        if row.expiry_date:
            months = (row.expiry_date - when.date()).days / DAYS_PER_MONTH
            facts.measures["months_to_expiry"] = Measure.exact(
                round(months, 3), "months", method=f"to the maker's expiry date {row.expiry_date}",
                source=src)
    if "cell_soh_spread" not in facts.measures:
        spread = _cells_spread(session, reg, battery)
        if spread:
            facts.measures["cell_soh_spread"] = Measure.exact(round(spread[0], 6), "percentage points",
                                                              method=spread[1])
    rests_on.sort(key=lambda r: r["seq"])
    return facts, rests_on


def _value_for(battery: Battery, decision: Any, prices: Prices | None) -> dict[str, Any]:
    energy = rated_energy_kwh(battery)
    soh = decision.soh
    if energy is None:
        return {"skipped": "no rated energy (nor rated capacity and nominal voltage) in the registry"}
    if soh is None and decision.route != "waste":
        return {"skipped": "no SOH"}
    try:  # recycling without a health test: the floor per unit needs no SOH
        return residual_value(rated_energy_kwh=energy, soh_lower=soh["lower"] if soh else 0.0,
                              chemistry=battery.chemistry or "", route=decision.route,
                              application=decision.application, prices=prices)
    except ValidationFailed as exc:
        return {"skipped": exc.message}


def grade(
    session: Session, ref: str, *, policy: str | Policy = "ev-reuse",
    health: Sequence[Any] | None = None, actor: str | None = None, when: datetime | None = None,
    prices: Prices | None = None, require_inspection: bool = True,
    assess: bool | str = False, root: Path | None = None,
) -> dict[str, Any]:
    """Grade a battery: record given health values (if any), evaluate the policy on the ledger's
    facts, append `graded` and move the battery to 'graded' (through 'tested' from 'collected').

    ``assess`` first measures health from the battery's stored capacity test (the latest, or the
    one whose SHA-256 it names) with ``health.assess`` and records it, as `health assess` does.
    """
    reg = Registry(session)
    battery = reg.battery(ref)
    pol = policy if isinstance(policy, Policy) else policies.load(policy)
    if battery.state not in GRADABLE:
        raise IllegalTransition(
            f"cannot grade a battery that is '{battery.state}': grading follows collection "
            f"(the battery must be {', '.join(GRADABLE)})")
    if require_inspection and inspections.latest(session, battery.id) is None:
        raise ValidationFailed(
            f"battery {battery.uid} has no inspection recorded: inspect it first "
            "(visual findings, OCV, insulation, BMS codes)", location="inspection")
    if assess:
        from batteryloop.health.assess import assess_from_test

        assess_from_test(session, battery.uid, test=assess if isinstance(assess, str) else None,
                         actor=actor, root=root)
    if health:
        record_health(session, battery.uid, health, actor=actor)
    history = reg.history(battery.uid)
    facts, rests_on = facts_for(session, battery, when=when, history=history)
    decision = evaluate(pol, facts)
    value = _value_for(battery, decision, prices)
    payload = {**decision.as_dict(), "value": value, "rests_on": rests_on}
    uid, state = battery.uid, battery.state
    if state == "collected":
        reg.change_status(uid, "tested", actor=actor, reason="inspected and health-assessed")
    appended = reg.append(uid, EVENT, payload, actor=actor)
    status = None
    if state != "graded":
        status = reg.change_status(
            uid, "graded", actor=actor,
            reason=f"graded {decision.route} by policy {pol.name} rule {decision.decided_by['id']}")
    return {
        "battery": uid, "seq": appended.seq, "hash": appended.hash.hex(),
        "status_seq": status.seq if status else None, **payload,
    }


def evaluate_facts(policy: str | Policy, facts: Facts) -> dict[str, Any]:
    """Evaluate a policy on given facts, touching no database (the what-if of the Python API)."""
    pol = policy if isinstance(policy, Policy) else policies.load(policy)
    return evaluate(pol, facts).as_dict()


def latest_grade(session: Session, ref: str) -> dict[str, Any] | None:
    """The newest `graded` event of a battery, with its position in the chain."""
    reg = Registry(session)
    battery = reg.battery(ref)
    for event in reversed(reg.history(battery.uid)):
        if event["type"] == EVENT:
            return {"battery": battery.uid, "seq": event["seq"], "hash": event["hash"],
                    "occurred_at": event["occurred_at"], "actor": event["actor_name"],
                    **event["payload"]}
    return None


def apply_route(session: Session, ref: str, *, actor: str | None = None, route: str | None = None,
                successor: BatteryIn | None = None) -> dict[str, Any]:
    """Carry out the graded route: move the battery to it, or (reused, repurposed, remanufactured,
    with ``successor``) register the second-life battery made from it, with its own passport. Only the decided route, or
    'waste', can be applied."""
    reg = Registry(session)
    battery = reg.battery(ref)
    decided = latest_grade(session, battery.uid)
    if decided is None:
        raise NotFound(f"battery {battery.uid} has not been graded")
    route = route or decided["route"]
    if route != decided["route"] and route != "waste":
        raise Conflict(
            f"battery {battery.uid} was graded '{decided['route']}' (policy {decided['policy']['name']}, "
            f"rule {decided['decided_by']['id']}): only that route or 'waste' can be applied, not '{route}'")
    if battery.state != "graded":
        raise IllegalTransition(f"battery {battery.uid} is '{battery.state}', not 'graded': "
                                "its route was applied already or it was moved since")
    if successor is not None:
        if route not in SECOND_LIFE:
            raise ValidationFailed(f"a successor battery is made only when re-using, repurposing "
                                   f"or remanufacturing, not for '{route}'", location="successor")
        return second_life(session, [battery.uid], route, successor, actor=actor)
    reg.change_status(
        battery.uid, route, actor=actor,
        reason=f"route of grade {decided['seq']} (policy {decided['policy']['name']}, "
               f"rule {decided['decided_by']['id']})")
    return reg.describe(battery.uid)


def latest_grades(session: Session, battery_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Each battery's newest `graded` payload (with its ``seq``), in one query per 5,000."""
    out: dict[int, dict[str, Any]] = {}
    ids = list(battery_ids)
    for start in range(0, len(ids), 5000):
        rows = session.execute(
            select(Event.battery_id, Event.seq, Event.payload)
            .where(Event.battery_id.in_(ids[start : start + 5000]), Event.type == EVENT)
            .order_by(Event.battery_id, Event.seq))
        for bid, seq, payload in rows:  # the last row per battery wins
            out[bid] = {"seq": seq, **orjson.loads(payload)}
    return out


def second_life(session: Session, sources: Sequence[str], relation: str, battery: BatteryIn, *,
                actor: str | None = None) -> dict[str, Any]:
    """Register a second-life battery made from graded sources, linked to all of them.

    ``relation`` is reused, repurposed or remanufactured: each makes a new battery with its own
    passport id (and code or second-life identifiers, if given), the acting operator responsible
    for it (Art. 77(6)). Each source must have been graded to ``relation`` (or be in that state
    already)."""
    if relation not in SECOND_LIFE:
        raise ValidationFailed(f"relation must be one of {', '.join(SECOND_LIFE)}",
                               location="relation")
    if not sources:
        raise ValidationFailed("a second-life battery needs at least one source", location="sources")
    reg = Registry(session)
    chemistries = set()
    resolved = [reg.battery(ref) for ref in dict.fromkeys(sources)]
    grades = latest_grades(session, [b.id for b in resolved])  # one query, not one per source
    for source in resolved:
        chemistries.add(source.chemistry)
        if source.state == relation:
            continue
        decided = grades.get(source.id)
        if decided is None:
            raise Conflict(f"source {source.uid} has not been graded: grade it before reusing it")
        if decided["route"] != relation:
            raise Conflict(
                f"source {source.uid} was graded '{decided['route']}' (policy "
                f"{decided['policy']['name']}, rule {decided['decided_by']['id']}), not '{relation}'")
        if source.state != "graded":
            raise IllegalTransition(f"source {source.uid} is '{source.state}', not 'graded'")
    if battery.chemistry is None and len(chemistries) == 1 and None not in chemistries:
        battery = battery.model_copy(update={"chemistry": chemistries.pop()})
    child = reg.create_successor(
        SuccessorIn(sources=list(sources), relation=relation, battery=battery, actor=actor))  # type: ignore[arg-type]
    return reg.describe(child.uid)


class GradeIn(BaseModel):
    """What the API takes to grade a battery."""

    model_config = ConfigDict(extra="forbid")

    policy: str | None = Field(default=None, description="a policy name (default ev-reuse)")
    policy_toml: str | None = Field(default=None, description="or a whole policy file's text")
    health: list[HealthValueIn] | None = Field(
        default=None, description="health values to record first; default: the ledger's")
    assess: bool = Field(default=False, description="measure health from the stored test first")
    test: str | None = Field(default=None, description="with assess: the stored test's sha256")
    actor: str | None = None
