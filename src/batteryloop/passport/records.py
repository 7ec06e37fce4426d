"""The records behind the passport, read by tier: a battery's registry record, the list of
batteries, its ledger history and lineage, and the gate in front of its health, inspection, grade,
certificate and tester records.

``passport.view`` filters the passport's attributes; this module applies the same Annex XIII tiers
to the other records the API and the web pages serve, from ``data/records.toml`` (each field of the
registry record maps to a passport attribute, or carries its own tier where none matches). A reader
reads a battery its organisation made, holds or is responsible for at the own-batteries tier at
least. Every restricted read that passes is written to the audit log in the caller's unit of work;
below the tier the answer is 401 (anonymous: sign in) or 403 (signed in), naming the tier needed
and nothing of the data.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from batteryloop.accounts import tiers
from batteryloop.accounts.viewer import TIERS, Tier, Viewer
from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.passport.attributes import table
from batteryloop.registry.service import Registry
from batteryloop.store.models import Battery, Identifier

if TYPE_CHECKING:
    from batteryloop.store.models import CyclerTest

HIDDEN: Tier = "authority"  # the tier of a record field records.toml does not name


@dataclass(frozen=True)
class Rule:
    """Who may read one field of the registry record, or one whole record."""

    name: str
    tier: Tier
    basis: str
    reading: str
    attribute: str | None = None
    label: str | None = None
    audit: str | None = None
    note: str | None = None

    @property
    def audit_name(self) -> str:
        """How the audit log names a read of it: its attribute, or the record's own name."""
        return self.audit or self.attribute or f"registry.{self.name}"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "tier": self.tier, "attribute": self.attribute,
                "basis": self.basis, "reading": self.reading, "note": self.note}


def _rule(where: str, name: str, raw: dict[str, Any]) -> Rule:
    attr = raw.get("attribute")
    if attr is not None:
        if attr not in table():
            raise ValueError(f"records.toml: {where}.{name}: unknown passport attribute '{attr}'")
        if "tier" in raw:
            raise ValueError(f"records.toml: {where}.{name}: give an attribute or a tier, not both")
        found = table()[attr]
        tier, basis, reading = found.tier, found.basis, raw.get("reading", found.reading)
    else:
        tier, basis, reading = raw.get("tier"), raw.get("basis"), raw.get("reading")
        if tier not in TIERS or not basis or reading not in ("regulation", "project"):
            raise ValueError(f"records.toml: {where}.{name}: needs an attribute, or a tier of "
                             f"{', '.join(TIERS)} with its basis and reading")
    return Rule(name=name, tier=cast(Tier, tier), basis=basis, reading=reading, attribute=attr,
                label=raw.get("label"), audit=raw.get("audit"), note=raw.get("note"))


@cache
def _rules() -> dict[str, dict[str, Rule]]:
    text = (files("batteryloop.passport") / "data" / "records.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return {kind: {name: _rule(kind, name, raw) for name, raw in data[kind].items()}
            for kind in ("battery", "record")}


def field_rules() -> dict[str, Rule]:
    """The fields of the battery's registry record, by name."""
    return _rules()["battery"]


def record(name: str) -> Rule:
    try:
        return _rules()["record"][name]
    except KeyError:
        raise ValueError(f"records.toml has no [record.{name}]") from None


def field_tier(name: str) -> Tier:
    rule = field_rules().get(name)
    return rule.tier if rule else HIDDEN


# --- who reads which battery at which tier -------------------------------------------------------
class Reader:
    """A viewer reading batteries: raised to the own-batteries tier on the batteries its
    organisation made, holds or is responsible for (accounts/data/tiers.toml)."""

    def __init__(self, session: Session, viewer: Viewer) -> None:
        self.session, self.viewer = session, viewer
        self._org_id: int | None = None
        self._looked_up = False

    @property
    def org_id(self) -> int | None:
        if not self._looked_up:
            self._org_id, self._looked_up = tiers.organisation_id(self.session, self.viewer), True
        return self._org_id

    def of(self, battery: Battery | None) -> Viewer:
        if battery is None or self.viewer.may_see(tiers.own_battery_tier()):
            return self.viewer
        return tiers.raised_for(self.viewer, battery, self.org_id)

    def where(self, tier: Tier) -> bool | ColumnElement[bool]:
        """Where this reader reads at ``tier`` at least: everywhere (True), nowhere (False), or its
        own batteries (a condition on Battery)."""
        if self.viewer.may_see(tier):
            return True
        if tiers.rank(tiers.own_battery_tier()) < tiers.rank(tier) or self.org_id is None:
            return False
        return or_(Battery.manufacturer_id == self.org_id, Battery.owner_id == self.org_id,
                   Battery.responsible_id == self.org_id)


def audit_reads(session: Session, reads: Iterable[tuple[Viewer, str, list[str]]], path: str) -> None:
    """Record restricted reads in the caller's unit of work: one write per viewer."""
    from batteryloop.accounts.audit import record_reads

    by_viewer: dict[Viewer, list[tuple[str, list[str]]]] = {}
    for who, uid, names in reads:
        if names:
            by_viewer.setdefault(who, []).append((uid, names))
    for who, items in by_viewer.items():
        record_reads(session, who, items, path)


def _shown(fields: dict[str, Any], who: Viewer) -> tuple[dict[str, Any], list[str], list[str]]:
    """The fields ``who`` may read, the names of those withheld, and the audit names of the
    restricted fields shown with a value."""
    shown: dict[str, Any] = {}
    withheld: list[str] = []
    audited: list[str] = []
    for name, value in fields.items():
        rule = field_rules().get(name)
        tier = rule.tier if rule else HIDDEN
        if not who.may_see(tier):
            withheld.append(name)
            continue
        shown[name] = value
        if tier != "public" and value not in (None, [], {}):
            audited.append(rule.audit_name if rule else f"registry.{name}")
    return shown, withheld, audited


def _refuse(viewer: Viewer, rule: Rule, what: str | None = None) -> Exception:
    return tiers.refusal(viewer, rule.tier, what or rule.label or rule.name)


# --- the registry record and the list of batteries -----------------------------------------------
def battery(session: Session, ref: str, viewer: Viewer, *, path: str) -> dict[str, Any]:
    """One battery's registry record as ``viewer`` may read it; ``withheld`` names the fields
    kept back (never their values)."""
    reg = Registry(session)
    found = reg.battery(ref)
    who = Reader(session, viewer).of(found)
    shown, withheld, audited = _shown(reg.describe(found.uid), who)
    audit_reads(session, [(who, found.uid, audited)], path)
    return {**shown, "viewer_tier": who.tier, "withheld": withheld}


def _narrowed(stmt: Select[tuple[Battery]], reader: Reader, name: str,
              condition: ColumnElement[bool], what: str) -> Select[tuple[Battery]]:
    """A filter on a field: as asked where the reader may read it, refused where it may nowhere
    (the count of matches would disclose the field), else narrowed to its own batteries."""
    allowed = reader.where(field_tier(name))
    if allowed is False:
        rule = field_rules().get(name) or Rule(name, HIDDEN, "not in records.toml", "project")
        raise _refuse(reader.viewer, rule, what)
    stmt = stmt.where(condition)
    return stmt if allowed is True else stmt.where(allowed)


def batteries(
    session: Session, viewer: Viewer, *, state: str | None = None, chemistry: str | None = None,
    kind: str | None = None, q: str | None = None, limit: int = 50, offset: int = 0, path: str,
    where: ColumnElement[bool] | None = None,
) -> dict[str, Any]:
    """A page of batteries, each as ``viewer`` may read it. A search by part of an identifier
    matches only identifiers the reader may read (its own batteries', or all at their tier).
    ``where``: a further condition on Battery that the caller has gated itself (a web page's
    filter on the grade, narrowed with ``Reader.where`` to the batteries whose grade it may read)."""
    reader = Reader(session, viewer)
    stmt = select(Battery) if where is None else select(Battery).where(where)
    if state:
        stmt = _narrowed(stmt, reader, "state", Battery.state == state, "filtering on state")
    if chemistry:
        stmt = _narrowed(stmt, reader, "chemistry", Battery.chemistry == chemistry,
                         "filtering on chemistry")
    if kind:
        stmt = _narrowed(stmt, reader, "kind", Battery.kind == kind, "filtering on kind")
    if q:
        like = f"%{q.strip()}%"
        matches: list[ColumnElement[bool]] = [Battery.uid.like(like.lower()),
                                              Battery.code.like(like.upper())]
        by_identifier = Battery.id.in_(
            select(Identifier.battery_id).where(Identifier.value.like(like)))
        readable = reader.where(field_tier("identifiers"))
        if readable is True:
            matches.append(by_identifier)
        elif readable is not False:
            matches.append(and_(by_identifier, readable))
        stmt = stmt.where(or_(*matches))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    items, reads = [], []
    for found in session.scalars(stmt.order_by(Battery.id).limit(limit).offset(offset)):
        who = reader.of(found)
        shown, _, audited = _shown(Registry.brief(found) | {"chemistry": found.chemistry}, who)
        items.append(shown)
        reads.append((who, found.uid, audited))
    audit_reads(session, reads, path)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


# --- whole records -------------------------------------------------------------------------------
def require(session: Session, viewer: Viewer, name: str, ref: str, *, path: str,
            audit: bool = True) -> Battery:
    """The battery, if ``viewer`` may read its record ``name`` (records.toml [record.NAME]); the
    read is audited (``audit=False``: a write checking that its caller may read what it will
    answer). An anonymous reader below the tier is refused before the battery is looked up, so
    the answer says nothing about it."""
    rule = record(name)
    if viewer.user is None and not viewer.may_see(rule.tier):
        raise _refuse(viewer, rule)
    found = Registry(session).battery(ref)
    who = Reader(session, viewer).of(found)
    if not who.may_see(rule.tier):
        raise _refuse(who, rule)
    if audit and rule.tier != "public":
        audit_reads(session, [(who, found.uid, [rule.audit_name])], path)
    return found


def permits(session: Session, viewer: Viewer, name: str, battery: Battery, *, path: str) -> bool:
    """For a page with an optional section: whether ``viewer`` may read this battery's record
    ``name``; audited when it may (the page then shows it)."""
    rule = record(name)
    who = Reader(session, viewer).of(battery)
    if not who.may_see(rule.tier):
        return False
    if rule.tier != "public":
        audit_reads(session, [(who, battery.uid, [rule.audit_name])], path)
    return True


def require_tier(viewer: Viewer, name: str) -> None:
    """A record about no one battery (the ledger's integrity report, say): the tier or 401/403."""
    rule = record(name)
    if not viewer.may_see(rule.tier):
        raise _refuse(viewer, rule)


def history(session: Session, ref: str, viewer: Viewer, *, path: str) -> list[dict[str, Any]]:
    found = require(session, viewer, "history", ref, path=path)
    return Registry(session).history(found.uid)


def lineage(session: Session, ref: str, viewer: Viewer, *, depth: int = 10,
            path: str) -> dict[str, Any]:
    found = require(session, viewer, "lineage", ref, path=path)
    return Registry(session).lineage(found.uid, depth=depth)


def stored_test(session: Session, ref: str, viewer: Viewer, *, path: str) -> CyclerTest:
    """A stored test, if ``viewer`` may read its battery's tester data. Below the tier, a test
    that does not exist and one that may not be read get the same answer."""
    from batteryloop.cycling import storage

    rule = record("tests")
    if viewer.may_see(rule.tier):
        row = storage.find(session, ref)
    elif viewer.user is None:
        raise _refuse(viewer, rule)
    else:
        try:
            row = storage.find(session, ref)
        except (NotFound, ValidationFailed):
            raise _refuse(viewer, rule) from None
    owner = session.get(Battery, row.battery_id) if row.battery_id is not None else None
    who = Reader(session, viewer).of(owner)
    if not who.may_see(rule.tier):
        raise _refuse(viewer, rule)
    if owner is not None:
        audit_reads(session, [(who, owner.uid, [rule.audit_name])], path)
    return row


def report_organisation(session: Session, viewer: Viewer, organisation: str | None) -> str | None:
    """Whose traceability report ``viewer`` reads: any (or all) at the authority tier, else only
    its own organisation's (the default)."""
    rule = record("traceability")
    if viewer.may_see(rule.tier):
        return organisation
    if viewer.organisation is None:
        raise _refuse(viewer, rule, "a traceability report")
    if organisation is None:
        return viewer.organisation
    if Registry(session).organisation(organisation).uid != viewer.organisation:
        raise _refuse(viewer, rule)
    return viewer.organisation
