"""Import of a passport from Battery Pass v1.2 JSON (the export's form).

The document is checked against the schemas first (attributes it leaves out are excused; what it
holds must conform); nothing is written unless all of it is accepted. Then:

* the battery is found by its identifier (canonical ``productIdentifier``, or the compact
  ``batteryPassportIdentifier`` with its hyphens put back); a battery the registry does not know
  is registered from the document (chemistry, ratings, mass, manufacturing date, manufacturer,
  operator), in the state its status starts a record in (original, repurposed, remanufactured);
  organisations it names that the registry does not know are added with their contact;
* static attributes become the passport record (merged into an existing one);
* dynamic values (condition, SOH values, counters) become ``condition-reported`` ledger events,
  method "imported";
* what the registry or the ledger decides (status, operator, date of putting into service) is not
  taken from the document: a difference is reported as a warning, the registry wins.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.passport import schemas, service
from batteryloop.passport.attributes import Attribute, batterypass, categories, table
from batteryloop.passport.export import canonical_urn
from batteryloop.passport.view import build, record_of
from batteryloop.registry import canonical, identifiers
from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.store.models import Battery, Organisation

IMPORTED = "imported from a Battery Pass v1.2 document"
_INITIAL = {"Original": "produced", "Repurposed": "repurposed", "Remanufactured": "remanufactured"}


def _normalise(doc: Any) -> dict[str, dict[str, Any]]:
    """Aspect documents by category, misspelling aliases mapped to the schema's names."""
    if not isinstance(doc, dict):
        raise ValidationFailed("a passport document is a JSON object", location="document")
    aspects = {meta["aspect"]: cat for cat, meta in categories().items()}
    unknown = set(doc) - set(aspects) - {"exportInfo"}
    if unknown:
        raise ValidationFailed(f"unknown top-level keys {sorted(unknown)} (expected the aspects "
                               f"{', '.join(aspects)})", location="document")
    aliases = batterypass()["aliases"]
    out = {}
    for aspect, cat in aspects.items():
        part = doc.get(aspect) or {}
        if not isinstance(part, dict):
            raise ValidationFailed("must be an object", location=aspect)
        part = dict(part)
        for alias, name in aliases.items():
            if alias in part:
                if name in part:
                    raise ValidationFailed(f"both '{alias}' and '{name}'", location=aspect)
                part[name] = part.pop(alias)
        out[cat] = part
    return out


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def _condition(attr: Attribute, v: Any) -> list[dict[str, Any]]:
    """Condition-report entries from an attribute's Battery Pass value."""
    shape = attr.shape or "plain"
    if shape == "plain":
        return [{"value": v, "method": IMPORTED}]
    if shape.startswith("wrap:"):
        return [{"value": v[shape[5:]], "measured_at": v["lastUpdate"], "method": IMPORTED}]
    if shape == "merge":
        return [{"value": {k: x for k, x in v.items() if k != "lastUpdate"},
                 "measured_at": v["lastUpdate"], "method": IMPORTED}]
    if shape == "power":
        inner = v["remainingPowerCapabilityValue"]
        return [{"value": {"atSoC": inner["atSoC"], "powerCapabilityAt": inner["powerCapabilityAt"]},
                 "measured_at": v["lastUpdate"], "method": IMPORTED}]
    if shape == "resistance":
        return [{"value": v[0]["internalResistanceIncreaseValue"], "measured_at": v[0]["lastUpdate"],
                 "method": IMPORTED}] if v else []
    if shape == "events":
        return [{"value": e["negativeEvent"], "measured_at": e["lastUpdate"], "method": IMPORTED}
                for e in v]
    raise ValueError(shape)


def _organisation(session: Session, info: dict[str, Any] | None, role: str) -> Organisation | None:
    """The organisation a ContactInformation names (by uid, then name), added if unknown."""
    if not info:
        return None
    reg = Registry(session)
    for ref in (info.get("identifier"), info.get("contactName")):
        if ref:
            try:
                return reg.organisation(ref)
            except NotFound:
                continue
    org = reg.add_organisation(OrganisationIn(name=info["contactName"], roles=[role]))
    try:  # keep the operator's identifier, so both registries name it alike
        org.uid = identifiers.check_passport_id(str(info.get("identifier") or ""))
        session.flush()
    except ValidationFailed:
        pass
    contact = {**(info.get("postalAddress") or {}),
               **{k: info[k] for k in ("emailAddress", "webAddress") if k in info}}
    if contact:
        service.set_contact(session, org.uid, contact)
    return org


def import_document(session: Session, doc: Any, *, actor: str | None, kind: str = "pack") -> dict[str, Any]:
    if not actor:
        raise ValidationFailed("an acting organisation is required", location="actor")
    parts = _normalise(doc)
    if schemas.available():
        errors = [f"{categories()[cat]['aspect']}/{e['path']}: {e['message']}"
                  for cat, part in parts.items()
                  for e in schemas.validate(cat, part, expected=set())]
        if errors:
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            raise ValidationFailed("; ".join(errors[:5]) + more, location="document")
    values = {a.id: v for a in table().values()
              if a.path and (v := _get(parts[a.category], a.path)) is not None}
    left_out = _computed(doc, values)
    uid = values.get("general.product_identifier") or values.get("general.passport_identifier")
    if not isinstance(uid, str):
        raise ValidationFailed("no productIdentifier or batteryPassportIdentifier", location="document")
    uid = identifiers.check_passport_id(canonical_urn(uid))

    reg = Registry(session)
    warnings: list[str] = [f"{a}: computed by the exporting platform, not declared: not imported"
                           for a in left_out]
    try:
        battery = reg.battery(uid)
        created = False
    except NotFound:
        battery, created = _register(session, uid, values, actor, kind), True
    org = service.writer(session, battery, actor)
    service.writable(battery)

    static = {k: v for k, v in values.items() if table()[k].settable}
    derived = build(session, battery).values
    for attr_id, v in values.items():
        attr = table()[attr_id]
        if attr.settable or attr.reportable or attr_id in ("general.passport_identifier",):
            continue
        have = derived.get(attr_id)
        mine = _comparable(attr_id, have.value) if have else None
        if mine != _comparable(attr_id, v):
            warnings.append(f"{attr_id}: the document says {v!r}, the registry {mine!r}; "
                            "the registry's value stands")
    if static:
        record = record_of(session, battery)
        stored = {} if record is None else canonical.loads(record.attributes)
        changed = service.apply_static(stored, static, [], org)
        service.store_static(session, battery, record, stored, org, changed)
    reported: list[str] = []
    for attr_id, v in values.items():
        attr = table()[attr_id]
        if not attr.reportable:
            continue
        for entry in _condition(attr, v):
            service.report_condition(session, battery.uid, {attr_id: entry}, actor=org.uid)
        reported.append(attr_id)
    return {"passport": battery.uid, "created": created, "static": sorted(static),
            "reported": reported, "warnings": warnings}


def _computed(doc: dict[str, Any], values: dict[str, Any]) -> list[str]:
    """Take out of ``values`` what the document's exportInfo says the exporting platform computed
    (a footprint where the maker declared none): importing it would make it a declaration."""
    info = doc.get("exportInfo")
    listed = info.get("computed") if isinstance(info, dict) else None
    if not isinstance(listed, list):
        return []
    aspects = {meta["aspect"]: cat for cat, meta in categories().items()}
    paths = {(aspects.get(str(e.get("aspect"))), tuple(str(e.get("path", "")).split(".")))
             for e in listed if isinstance(e, dict)}
    out = [a.id for a in table().values() if a.id in values and (a.category, a.path) in paths]
    for attr_id in out:
        del values[attr_id]
    return out


def _comparable(attr_id: str, value: Any) -> Any:
    """A registry-derived value as the document would give it, for the difference check."""
    if attr_id == "general.battery_status" and value in batterypass()["status"]:
        return batterypass()["status"][value]
    if attr_id in ("general.manufacturer_information", "general.operator_information"):
        return (value or {}).get("contactName")
    return value


def _register(session: Session, uid: str, values: dict[str, Any], actor: str, kind: str) -> Battery:
    status = values.get("general.battery_status", "Original")
    if status not in _INITIAL:
        raise ValidationFailed(
            f"a battery new to this registry cannot start its record as '{status}' (only "
            f"{', '.join(_INITIAL)}): register it and its history first, then import",
            location="GeneralProductInformation/batteryStatus",
        )
    maker = _organisation(session, values.get("general.manufacturer_information"), "manufacturer")
    operator = _organisation(session, values.get("general.operator_information"), "manufacturer")
    chemistry = (values.get("materials.chemistry") or {}).get("shortName")
    made = values.get("general.manufacturing_date")
    energy = values.get("performance.rated_energy")
    spec = BatteryIn(
        uid=uid, kind=kind, chemistry=chemistry,
        rated_capacity_ah=values.get("performance.rated_capacity"),
        rated_energy_wh=energy * 1000 if energy else None,
        nominal_voltage_v=values.get("performance.nominal_voltage"),
        mass_kg=values.get("general.battery_mass"),
        manufacturer=maker.uid if maker else None,
        manufactured_on=date.fromisoformat(made[:10]) if made else None,
        owner=(operator or maker).uid if (operator or maker) else actor,
        state=_INITIAL[status],
    )
    return Registry(session).register(spec, actor=actor)
