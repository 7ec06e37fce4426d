"""Writing a passport: the maker's static attributes, condition reports from use, operator
contacts, and the status lifecycle of Art. 77 (waste keeps the passport and moves responsibility
to the waste operator; recycling ends it and archives it read-only).

Preparing for re-use, repurposing and remanufacturing are the registry's ``create_successor``
(Art. 77(6)): a new battery, so a new passport, linked to all its originals, responsibility with the
operator who made it. The passport view shows those links (``general.lineage``).

Who may write: the battery's manufacturer or its responsible economic operator (static
attributes), and also its custody holder (condition reports, waste). Every write leaves an event
in the battery's ledger; static values themselves stay off the ledger (only their digest goes in),
since the ledger's history is not filtered by tier.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from sqlalchemy.orm import Session

from batteryloop.errors import Conflict, NotFound, ReadOnly, ValidationFailed
from batteryloop.passport import schemas
from batteryloop.passport.attributes import Attribute, attribute, table
from batteryloop.passport.view import (
    CONDITION_EVENT,
    UPDATED_EVENT,
    Forbidden,
    build,
    record_of,
)
from batteryloop.registry import canonical
from batteryloop.registry.ledger import iso
from batteryloop.registry.lifecycle import lifecycle
from batteryloop.registry.service import Registry
from batteryloop.store.models import Battery, Organisation, PassportContact, PassportRecord

CONTACT_FIELDS = ("streetAddress", "postalCode", "addressCountry", "emailAddress", "webAddress")
TEMPERATURE_FIELDS = ("timeExtremeHighTemp", "timeExtremeLowTemp", "timeExtremeHighTempCharging",
                      "timeExtremeLowTempCharging")


# --- checks --------------------------------------------------------------------------------------
def writer(session: Session, battery: Battery, actor: str | None, *, custody: bool = False) -> Organisation:
    """The acting organisation, if it may write this battery's passport; else 403/422."""
    if not actor:
        raise ValidationFailed("an acting organisation is required", location="actor")
    org = Registry(session).organisation(actor)
    allowed = {battery.manufacturer_id, battery.responsible_id}
    if custody:
        allowed.add(battery.owner_id)
    if org.id not in allowed:
        who = "manufacturer, responsible operator or custody holder" if custody else \
            "manufacturer or responsible operator"
        raise Forbidden(f"'{org.name}' is not the battery's {who}")
    return org


def writable(battery: Battery) -> None:
    if lifecycle().state(battery.state).read_only:
        raise ReadOnly(
            f"the battery is '{battery.state}': its passport has ceased and is archived read-only"
        )


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationFailed(f"must be a number, got {value!r}", location=where)
    return value


def check_static(attr: Attribute, value: Any) -> Any:
    """A static value in its Battery Pass form, checked by type and, where the schemas are at hand,
    against the schema fragment at the attribute's path."""
    where = attr.id
    if not attr.settable:
        raise ValidationFailed(f"is derived from the {attr.source}, not set here", location=where)
    expected = {"number": (int, float), "string": str, "uri": str, "enum": str, "object": dict,
                "array": list}[attr.type]
    if isinstance(value, bool) or not isinstance(value, expected):
        raise ValidationFailed(f"must be {attr.type}, got {type(value).__name__}", location=where)
    if attr.type == "number":
        _number(value, where)
    if attr.values and value not in attr.values:
        raise ValidationFailed(f"must be one of {', '.join(attr.values)}", location=where)
    if attr.path and schemas.available():
        document: dict[str, Any] = {}
        put(document, attr.path, value)
        errors = schemas.validate(attr.category, document, expected={attr.path})
        if errors:
            first = errors[0]
            raise ValidationFailed(f"{first['path']}: {first['message']}", location=where)
    return value


def check_condition(attr: Attribute, item: Any) -> dict[str, Any]:
    """One value of a condition report: a bare value or {value, method, lower, upper, measured_at}."""
    where = attr.id
    if not attr.reportable:
        raise ValidationFailed("is not reported from use (see the passport's attribute table)",
                               location=where)
    entry = dict(item) if isinstance(item, dict) and "value" in item else {"value": item}
    unknown = set(entry) - {"value", "method", "lower", "upper", "measured_at"}
    if unknown:
        raise ValidationFailed(f"unknown fields {sorted(unknown)}", location=where)
    value = entry["value"]
    match attr.shape:
        case "events":
            texts = value if isinstance(value, list) else [value]
            if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
                raise ValidationFailed("must be a description or a list of them", location=where)
        case "merge":
            if not isinstance(value, dict) or set(value) != set(TEMPERATURE_FIELDS):
                raise ValidationFailed(f"must give hours for {', '.join(TEMPERATURE_FIELDS)}",
                                       location=where)
            for k in TEMPERATURE_FIELDS:
                _number(value[k], f"{where}.{k}")
        case "power":
            if not isinstance(value, dict) or set(value) != {"atSoC", "powerCapabilityAt"}:
                raise ValidationFailed("must be {atSoC, powerCapabilityAt}", location=where)
            for k in ("atSoC", "powerCapabilityAt"):
                _number(value[k], f"{where}.{k}")
        case _:
            _number(value, where)
    for k in ("lower", "upper"):
        if k in entry:
            _number(entry[k], f"{where}.{k}")
    if "measured_at" in entry:
        try:
            entry["measured_at"] = iso(datetime.fromisoformat(str(entry["measured_at"])))
        except ValueError:
            raise ValidationFailed("measured_at must be an ISO 8601 time", location=where) from None
    return entry


def put(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        document = document.setdefault(key, {})
    document[path[-1]] = value


# --- static attributes -------------------------------------------------------------------------
def store_static(session: Session, battery: Battery, record: PassportRecord | None,
           stored: dict[str, Any], org: Organisation, changed: list[str]) -> PassportRecord:
    now = datetime.now(UTC)
    text = canonical.dumps(stored).decode()
    digest = sha256(text.encode()).hexdigest()
    if record is None:
        record = PassportRecord(battery_id=battery.id, attributes=text, digest=digest, version=1,
                                created_at=now, updated_at=now, updated_by_id=org.id)
        session.add(record)
    else:
        record.attributes, record.digest = text, digest
        record.version += 1
        record.updated_at, record.updated_by_id = now, org.id
    session.flush()
    Registry(session).append(battery.uid, UPDATED_EVENT,
                             {"attributes": sorted(changed), "digest": digest,
                              "version": record.version}, actor=org.uid)
    return record


def apply_static(stored: dict[str, Any], values: dict[str, Any], unset: list[str],
           org: Organisation) -> list[str]:
    now = iso(datetime.now(UTC))
    for attr_id, value in values.items():
        stored[attr_id] = {"value": check_static(attribute(attr_id), value), "updated_at": now,
                           "by": {"uid": org.uid, "name": org.name}}
    for attr_id in unset:
        attribute(attr_id)
        stored.pop(attr_id, None)
    return [*values, *unset]


def create(session: Session, ref: str, values: dict[str, Any], *, actor: str | None) -> dict[str, Any]:
    """Start the maker's record of a passport (409 if there is one)."""
    battery = Registry(session).battery(ref)
    org = writer(session, battery, actor)
    writable(battery)
    if record_of(session, battery) is not None:
        raise Conflict(f"battery {battery.uid} already has a passport record: update it")
    stored: dict[str, Any] = {}
    changed = apply_static(stored, values, [], org)
    record = store_static(session, battery, None, stored, org, changed)
    return {"passport": battery.uid, "version": record.version, "digest": record.digest,
            "attributes": sorted(changed)}


def update(session: Session, ref: str, values: dict[str, Any], *, unset: list[str] | None = None,
           actor: str | None) -> dict[str, Any]:
    """Set (and unset) static attributes of an existing passport record."""
    battery = Registry(session).battery(ref)
    org = writer(session, battery, actor)
    writable(battery)
    record = record_of(session, battery)
    if record is None:
        raise NotFound(f"battery {battery.uid} has no passport record yet: create it first")
    if not values and not unset:
        raise ValidationFailed("nothing to update", location="attributes")
    stored = canonical.loads(record.attributes)
    changed = apply_static(stored, values, list(unset or []), org)
    record = store_static(session, battery, record, stored, org, changed)
    return {"passport": battery.uid, "version": record.version, "digest": record.digest,
            "attributes": sorted(changed)}


# --- dynamic attributes --------------------------------------------------------------------------
def report_condition(session: Session, ref: str, values: dict[str, Any], *, actor: str | None,
                     occurred_at: datetime | None = None) -> dict[str, Any]:
    """Record values from use (counters, SOC, temperatures, negative events, fades) in the ledger."""
    battery = Registry(session).battery(ref)
    org = writer(session, battery, actor, custody=True)
    writable(battery)
    if not values:
        raise ValidationFailed("no values reported", location="values")
    payload = {"values": {k: check_condition(attribute(k), v) for k, v in values.items()}}
    appended = Registry(session).append(battery.uid, CONDITION_EVENT, payload, actor=org.uid,
                                        occurred_at=occurred_at)
    return {"passport": battery.uid, "seq": appended.seq, "attributes": sorted(values)}


# --- operators' contacts -------------------------------------------------------------------------
def set_contact(session: Session, org_ref: str, contact: dict[str, Any]) -> dict[str, Any]:
    """The postal address, e-mail and web address the passport shows for an operator."""
    org = Registry(session).organisation(org_ref)
    unknown = set(contact) - set(CONTACT_FIELDS)
    if unknown:
        raise ValidationFailed(f"unknown fields {sorted(unknown)}", location="contact")
    clean = {k: str(v).strip() for k, v in contact.items() if v is not None and str(v).strip()}
    address = {"streetAddress", "postalCode", "addressCountry"}
    if address & clean.keys() and not address <= clean.keys():
        raise ValidationFailed("a postal address needs streetAddress, postalCode and addressCountry",
                               location="contact")
    row = session.get(PassportContact, org.id)
    text = canonical.dumps(clean).decode()
    if row is None:
        session.add(PassportContact(organisation_id=org.id, contact=text, updated_at=datetime.now(UTC)))
    else:
        row.contact, row.updated_at = text, datetime.now(UTC)
    session.flush()
    return {"organisation": org.uid, "name": org.name, **clean}


# --- status lifecycle (Art. 77(6), 77(7)) ----------------------------------------------------------
def to_waste(session: Session, ref: str, waste_operator: str, *, actor: str | None,
             reason: str | None = None) -> dict[str, Any]:
    """The battery becomes waste: the passport stays, responsibility (and custody) move to the
    waste management operator."""
    reg = Registry(session)
    battery = reg.battery(ref)
    org = writer(session, battery, actor, custody=True)
    operator = reg.organisation(waste_operator)
    reg.change_status(battery.uid, "waste", actor=org.uid, reason=reason)
    reg.transfer(battery.uid, custody_to=operator.uid, responsibility_to=operator.uid,
                 actor=org.uid, reason="waste: responsibility to the waste management operator")
    return {"passport": battery.uid, "status": "waste", "responsible": operator.uid}


def recycle(session: Session, ref: str, *, actor: str | None) -> dict[str, Any]:
    """The battery is recycled: its passport ceases and is archived, read-only, as it stood.

    Here the acting organisation must be the battery's maker, responsible operator or custody
    holder. A recycling batch's close goes through :func:`recycled_in_batch` instead."""
    battery = Registry(session).battery(ref)
    org = writer(session, battery, actor, custody=True)
    return _cease(session, battery, org.uid, reason=None)


def recycled_in_batch(session: Session, ref: str, actor: str | None) -> dict[str, Any]:
    """The recycling floor's hook for each battery of a batch that closes (``batteryloop.wiring``).

    Who may close a batch is the recycling face's decision (a recycler's writer, acting for its own
    organisation); the recycler need not hold the battery's custody in the registry, and a batch
    closed from the operator's own command line may name no actor. The battery has been dismantled
    and its ``recycled`` event appended; the batch's figures are frozen before this is called, so
    the archived passport carries what was recovered from the battery."""
    battery = Registry(session).battery(ref)
    return _cease(session, battery, actor, reason="recycled in a recycling batch")


def _cease(session: Session, battery: Battery, actor: str | None, *,
           reason: str | None) -> dict[str, Any]:
    reg = Registry(session)
    reg.change_status(battery.uid, "recycled", actor=actor, reason=reason)
    session.refresh(battery)
    passport = build(session, battery)
    now = datetime.now(UTC)
    passport.archived_at = iso(now)
    record = record_of(session, battery)
    if record is None:
        empty = canonical.dumps({}).decode()
        by = reg.organisation(actor).id if actor else None
        record = PassportRecord(battery_id=battery.id, attributes=empty,
                                digest=sha256(empty.encode()).hexdigest(), version=0,
                                created_at=now, updated_at=now, updated_by_id=by)
        session.add(record)
    record.archived = canonical.dumps(passport.as_dict()).decode()
    record.archived_at = now
    session.flush()
    return {"passport": battery.uid, "ceased": True, "archived_at": passport.archived_at}


def attribute_table() -> list[dict[str, Any]]:
    return [a.describe() for a in table().values()]
