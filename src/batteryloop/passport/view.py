"""The passport: a view over the registry, the ledger (status, transfers, health, condition
reports) and the maker's static attributes, filtered by who is reading.

``read`` (one battery) and ``search`` (many) are the only ways out of this module: they build the
full passport, filter it by the viewer's Annex XIII tier (``Shown``), and record the read of
restricted attributes in the audit log, before anything is serialised. The API, the web pages,
the exports, the QR page and the search results all take a ``Shown``; none sees the full passport.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from batteryloop.accounts.tiers import refusal
from batteryloop.accounts.viewer import Viewer
from batteryloop.errors import BatteryloopError, NotFound
from batteryloop.health.assess import EVENT as HEALTH_EVENT
from batteryloop.passport import circularity, computed
from batteryloop.passport.attributes import (
    Attribute,
    attribute,
    batterypass,
    categories,
    table,
    withheld_counts,
)
from batteryloop.registry import canonical
from batteryloop.registry.ledger import iso
from batteryloop.registry.lifecycle import lifecycle
from batteryloop.registry.service import Registry
from batteryloop.store.models import Battery, Organisation, PassportContact, PassportRecord

CONDITION_EVENT = "condition-reported"
UPDATED_EVENT = "passport-updated"


class Forbidden(BatteryloopError):
    """403: the caller's tier does not reach what was asked (says which tier, never a value)."""

    status = 403
    title = "Forbidden"


@dataclass(frozen=True)
class Value:
    """One attribute's value in its Battery Pass form, with where it came from."""

    value: Any
    source: str  # static | registry | ledger | computed (passport/computed.py: no declared value)
    updated_at: str | None = None
    by: dict[str, str] | None = None  # the originator: organisation uid and name
    measurement: dict[str, Any] | None = None  # method, interval, unit, date, test or model

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Passport:
    """The full passport of one battery. Never leaves this module unfiltered."""

    uid: str
    kind: str
    ceased: bool
    archived_at: str | None
    values: dict[str, Value]

    def as_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, "kind": self.kind, "ceased": self.ceased,
                "archived_at": self.archived_at,
                "values": {k: v.as_dict() for k, v in self.values.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Passport:
        return cls(data["uid"], data["kind"], data["ceased"], data.get("archived_at"),
                   {k: Value(**v) for k, v in data["values"].items() if k in table()})


@dataclass(frozen=True)
class Shown:
    """What one viewer may see of one passport: the only form a passport is serialised from."""

    uid: str
    kind: str
    tier: str
    ceased: bool
    archived_at: str | None
    values: dict[str, Value]
    withheld: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON of the API: the seven categories, each attribute with its tier and basis."""
        cats: dict[str, dict[str, Any]] = {c: {} for c in categories()}
        for attr_id, value in self.values.items():
            attr = table()[attr_id]
            cats[attr.category][attr_id] = {
                "label": attr.label, "unit": attr.unit, "tier": attr.tier, "basis": attr.basis,
                **value.as_dict(),
            }
        return {
            "passport": self.uid, "kind": self.kind, "viewer_tier": self.tier,
            "ceased": self.ceased, "archived_at": self.archived_at,
            "categories": cats, "withheld": self.withheld,
        }


# --- building the full passport ----------------------------------------------------------------
def _org(org: Organisation | None) -> dict[str, str] | None:
    return {"uid": org.uid, "name": org.name} if org else None


def contact_of(session: Session, org: Organisation | None) -> dict[str, Any] | None:
    """ContactInformation of the Battery Pass model for an organisation (its passport contact)."""
    if org is None:
        return None
    info: dict[str, Any] = {"contactName": org.name, "identifier": org.uid}
    row = session.get(PassportContact, org.id)
    if row is not None:
        stored = canonical.loads(row.contact)
        address = {k: stored[k] for k in ("streetAddress", "postalCode", "addressCountry") if k in stored}
        if address:
            info["postalAddress"] = address
        info.update({k: stored[k] for k in ("emailAddress", "webAddress") if k in stored})
    return info


def _date_time(day: date | None) -> str | None:
    return f"{day.isoformat()}T00:00:00Z" if day else None


def _registry_values(session: Session, b: Battery, orgs: dict[int, Organisation]) -> dict[str, Value]:
    maker = orgs.get(b.manufacturer_id) if b.manufacturer_id else None
    raw: dict[str, Any] = {
        "general.product_identifier": b.uid,
        "general.passport_identifier": b.uid,
        "general.manufacturer_information": contact_of(session, maker),
        "general.manufacturing_date": _date_time(b.manufactured_on),
        "general.battery_mass": b.mass_kg,
        "performance.rated_capacity": b.rated_capacity_ah,
        "performance.rated_energy": b.rated_energy_wh / 1000 if b.rated_energy_wh else None,
        "performance.nominal_voltage": b.nominal_voltage_v,
    }
    when = iso(b.created_at)
    return {k: Value(v, "registry", when) for k, v in raw.items() if v is not None}


def _health_values(event: dict[str, Any], b: Battery) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Attribute values from one `health-assessed` event (SOH parameters of Annex VII).

    Its power capability (at the minimum voltage, state of charge not recorded) is left out: the
    Battery Pass's remaining power capability is given at a state of charge, so it comes from
    condition reports only.
    """
    out: dict[str, tuple[Any, dict[str, Any]]] = {}
    for v in event["payload"].get("values", []):
        measured = v.get("measured_at")
        m = {"parameter": v["parameter"], "method": v.get("method"), "unit": v.get("unit"),
             "value": v["value"], "lower": v.get("lower"), "upper": v.get("upper"),
             "measured_at": iso(datetime.fromisoformat(measured)) if measured else None,
             "source": v.get("source"),
             "assessment": event["payload"].get("method")}
        value = v["value"]
        match v["parameter"]:
            case "capacity_soh":
                out["performance.capacity_fade"] = (100 - value, m)
                if b.rated_capacity_ah:
                    out["performance.remaining_capacity"] = (value / 100 * b.rated_capacity_ah, m)
            case "capacity_fade":
                out["performance.capacity_fade"] = (value, m)
            case "soce":
                out["performance.state_of_certified_energy"] = (value, m)
                if b.rated_energy_wh:
                    out["performance.remaining_energy"] = (value / 100 * b.rated_energy_wh / 1000, m)
            case "resistance_increase":
                out["performance.internal_resistance_increase"] = (value, m)
            case "round_trip_efficiency":
                out["performance.remaining_round_trip_efficiency"] = (value, m)
            case "self_discharge":
                out["performance.current_self_discharging_rate"] = (value, m)
    return out


def _ledger_values(session: Session, reg: Registry, b: Battery) -> dict[str, Value]:
    """Status, operator, putting into service, SOH, condition reports, dismantling and recycling,
    from the chain."""
    out: dict[str, Value] = {}
    events = reg.history(b.uid)
    status_at = responsible_at = None
    negative: list[dict[str, Any]] = []
    recycling_seen: dict[str, tuple[str, dict[str, str] | None]] = {}
    for e in events:
        by = {"uid": e["actor"], "name": e["actor_name"]} if e["actor"] else None
        when = e["occurred_at"]
        etype, payload = e["type"], e["payload"]
        if etype == "registered":
            status_at = responsible_at = when
        elif etype == "status-changed":
            if lifecycle().state(payload["to"]).eu_status:
                status_at = when
            if payload["to"] == "in_service" and "general.putting_into_service" not in out:
                out["general.putting_into_service"] = Value(when, "ledger", when, by)
        elif etype == "transferred" and payload.get("responsibility"):
            responsible_at = when
        elif etype == HEALTH_EVENT:
            for attr_id, (value, m) in _health_values(e, b).items():
                out[attr_id] = Value(value, "ledger", m.get("measured_at") or when, by, m)
        elif etype == CONDITION_EVENT:
            for attr_id, item in payload.get("values", {}).items():
                if attr_id not in table():
                    continue
                m = {k: item[k] for k in ("method", "lower", "upper", "measured_at") if k in item}
                at = item.get("measured_at") or when
                if table()[attr_id].shape == "events":
                    texts = item["value"] if isinstance(item["value"], list) else [item["value"]]
                    negative += [{"negativeEvent": t, "lastUpdate": at} for t in texts]
                    out[attr_id] = Value(list(negative), "ledger", at, by, m or None)
                else:
                    out[attr_id] = Value(item["value"], "ledger", at, by, m or None)
        elif etype in circularity.EVENTS:
            recycling_seen[etype] = (when, by)
    for attr_id, (value, (when, by)) in circularity.values(session, b, recycling_seen).items():
        out[attr_id] = Value(value, "ledger", when, by)
    out["general.battery_status"] = Value(b.eu_status, "ledger", status_at)
    responsible = session.get(Organisation, b.responsible_id) if b.responsible_id else None
    operator = contact_of(session, responsible)
    if operator:
        out["general.operator_information"] = Value(operator, "ledger", responsible_at)
    lineage = reg.lineage(b.uid)
    if lineage["sources"] or lineage["successors"]:
        out["general.lineage"] = Value(
            {"sources": lineage["sources"], "successors": lineage["successors"]}, "ledger"
        )
    return out


def _static_values(record: PassportRecord | None, b: Battery) -> dict[str, Value]:
    out: dict[str, Value] = {}
    if b.chemistry:
        names = batterypass()["chemistry"]
        out["materials.chemistry"] = Value(
            {"shortName": b.chemistry, "clearName": names.get(b.chemistry.upper(), b.chemistry)},
            "registry", iso(b.created_at),
        )
    if record is not None:
        for attr_id, item in canonical.loads(record.attributes).items():
            if attr_id in table():
                out[attr_id] = Value(item["value"], "static", item.get("updated_at"), item.get("by"))
    return out


def record_of(session: Session, battery: Battery) -> PassportRecord | None:
    return session.scalar(select(PassportRecord).where(PassportRecord.battery_id == battery.id))


def build(session: Session, battery: Battery) -> Passport:
    """The full passport of a battery (or its archive, once it has ceased)."""
    record = record_of(session, battery)
    if record is not None and record.archived:
        return Passport.from_dict(canonical.loads(record.archived))
    reg = Registry(session)
    orgs = {o.id: o for o in reg.organisations()}
    values = _static_values(record, battery)
    values.update(_registry_values(session, battery, orgs))
    values.update(_ledger_values(session, reg, battery))
    for attr_id, (value, m) in computed.values(battery, values).items():  # where none is declared
        values[attr_id] = Value(value, computed.SOURCE, measurement=m)
    order = list(table())
    ordered = {k: values[k] for k in sorted(values, key=order.index)}
    return Passport(battery.uid, battery.kind, lifecycle().state(battery.state).read_only,
                    None, ordered)


# --- the one way out: filter by the viewer, record restricted reads ----------------------------
def _for_battery(session: Session, viewer: Viewer, battery: Battery) -> Viewer:
    """The viewer as it reads this battery (an operator reads its own batteries at a higher tier)."""
    try:
        from batteryloop.accounts.tiers import viewer_for_battery
    except ModuleNotFoundError as exc:  # FALLBACK until the accounts stage lands: viewer unchanged
        if exc.name != "batteryloop.accounts.tiers":
            raise
        return viewer
    return viewer_for_battery(session, viewer, battery)


def _record_reads(session: Session, reads: list[tuple[Viewer, str, list[str]]], path: str) -> None:
    """Audit each (viewer, battery uid, restricted attributes shown) in the caller's unit of work."""
    reads = [(who, uid, attrs) for who, uid, attrs in reads if attrs]
    if not reads:
        return
    try:
        from batteryloop.accounts.audit import record_read
    except ModuleNotFoundError as exc:  # FALLBACK until the accounts stage lands: not recorded
        if exc.name != "batteryloop.accounts.audit":
            raise
        return
    for who, uid, attrs in reads:
        record_read(session, who, uid, attrs, path)


def restricted(shown: Shown) -> list[str]:
    return [a for a in shown.values if table()[a].tier != "public"]


def filtered(passport: Passport, viewer: Viewer) -> Shown:
    return Shown(
        uid=passport.uid, kind=passport.kind, tier=viewer.tier, ceased=passport.ceased,
        archived_at=passport.archived_at,
        values={k: v for k, v in passport.values.items() if viewer.may_see(table()[k].tier)},
        withheld=withheld_counts(viewer),
    )


def read(session: Session, ref: str, viewer: Viewer, *, path: str,
         only: Iterable[str] | None = None) -> Shown:
    """One passport as ``viewer`` may see it; restricted attributes shown are audited.

    ``only``: the attribute ids the caller will serialise (the audit names just those).
    """
    battery = Registry(session).battery(ref)
    who = _for_battery(session, viewer, battery)
    shown = filtered(build(session, battery), who)
    if only is not None:
        wanted = set(only)
        shown = replace(shown, values={k: v for k, v in shown.values.items() if k in wanted})
    _record_reads(session, [(who, shown.uid, restricted(shown))], path)
    return shown


def read_attribute(session: Session, ref: str, attr_id: str, viewer: Viewer, *,
                   path: str) -> tuple[Attribute, Value]:
    """One attribute: 401 (anonymous) or 403 (signed in) when the viewer's tier does not reach it,
    whether or not it has a value (so the answer says nothing about the data); 404 only to those
    who may see it."""
    attr = attribute(attr_id)
    battery = Registry(session).battery(ref)
    who = _for_battery(session, viewer, battery)
    if not who.may_see(attr.tier):  # 401 anonymous (sign in), 403 signed in
        raise refusal(who, attr.tier, f"attribute '{attr_id}'")
    shown = read(session, ref, viewer, path=path, only=[attr_id])
    if attr_id not in shown.values:
        raise NotFound(f"attribute '{attr_id}' has no value in this passport")
    return attr, shown.values[attr_id]


SEARCH_FIELDS = (
    "general.product_identifier", "general.battery_category", "materials.chemistry",
    "general.manufacturer_information", "general.battery_status", "general.operator_information",
)
_FILTERS = {"category": "general.battery_category", "chemistry": "materials.chemistry",
            "status": "general.battery_status"}


def search(session: Session, viewer: Viewer, *, q: str | None = None,
           category: str | None = None, chemistry: str | None = None, status: str | None = None,
           limit: int = 50, offset: int = 0, path: str) -> dict[str, Any]:
    """Passports matching identifiers and filters, each as the viewer may see it.

    A filter on an attribute the viewer may not read is refused (401/403), whatever it would match:
    otherwise the result count alone would disclose the attribute.
    """
    for name, value in (("category", category), ("chemistry", chemistry), ("status", status)):
        if value is not None and not viewer.may_see(table()[_FILTERS[name]].tier):
            raise refusal(viewer, table()[_FILTERS[name]].tier, f"filtering on {name}")
    stmt = select(Battery)
    if q:
        like = f"%{q.strip()}%"
        stmt = stmt.where(Battery.uid.like(like.lower()) | Battery.code.like(like.upper()))
    if chemistry:
        stmt = stmt.where(Battery.chemistry == chemistry)
    if status:
        stmt = stmt.where(Battery.eu_status == status)
    if category:
        # the category is a static attribute (JSON text): matched here, not in SQL, so that
        # SQLite and PostgreSQL answer alike
        ids = [
            bid for bid, text in session.execute(
                select(PassportRecord.battery_id, PassportRecord.attributes))
            if canonical.loads(text).get("general.battery_category", {}).get("value") == category
        ]
        stmt = stmt.where(Battery.id.in_(ids))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    items, reads = [], []
    for battery in session.scalars(stmt.order_by(Battery.id).limit(limit).offset(offset)):
        who = _for_battery(session, viewer, battery)
        shown = filtered(build(session, battery), who)
        shown = replace(shown, values={k: v for k, v in shown.values.items() if k in SEARCH_FIELDS})
        reads.append((who, shown.uid, restricted(shown)))
        items.append(shown)
    _record_reads(session, reads, path)
    return {"items": items, "total": total, "limit": limit, "offset": offset}
