"""The registry's operations: everything the CLI, the API and bulk import do goes through here.

Each method works inside the caller's session (one unit of work) and leaves its trace in the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Select, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from batteryloop.errors import Conflict, NotFound, ValidationFailed
from batteryloop.registry import gbt34014, identifiers, ledger, signing
from batteryloop.registry.ledger import Draft
from batteryloop.registry.lifecycle import lifecycle
from batteryloop.registry.projection import EMPTY, Projection
from batteryloop.registry.roles import check_role
from batteryloop.registry.schemas import BatteryIn, OrganisationIn, SuccessorIn
from batteryloop.store.models import Battery, Identifier, Lineage, Organisation, OrganisationRole

_RANK = {"pack": 3, "module": 2, "cell": 1}


def _hex(value: str | None, what: str, size: int) -> bytes | None:
    if value is None:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValidationFailed(f"{what} must be hex", location=what) from None
    if len(raw) != size:
        raise ValidationFailed(f"{what} must be {size} bytes ({2 * size} hex characters)", location=what)
    return raw


class Registry:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._orgs: dict[str, Organisation] = {}

    # --- organisations -------------------------------------------------------------------------
    def add_organisation(self, data: OrganisationIn) -> Organisation:
        for role in data.roles:
            check_role(role)
        if self.session.scalar(select(Organisation.id).where(Organisation.name == data.name)):
            raise Conflict(f"an organisation named '{data.name}' already exists")
        org = Organisation(
            uid=identifiers.new_passport_id(),
            name=data.name,
            country=data.country,
            public_key=_hex(data.public_key, "public_key", 32),
            created_at=datetime.now(UTC),
            roles=[OrganisationRole(role=r) for r in dict.fromkeys(data.roles)],
        )
        self.session.add(org)
        self.session.flush()
        return org

    def organisation(self, ref: str) -> Organisation:
        """By uid or by exact name."""
        if ref in self._orgs:
            return self._orgs[ref]
        org = self.session.scalar(
            select(Organisation).where(or_(Organisation.uid == ref, Organisation.name == ref))
        )
        if org is None:
            raise NotFound(f"no organisation '{ref}'")
        self._orgs[ref] = org
        return org

    def organisations(self) -> list[Organisation]:
        return list(self.session.scalars(select(Organisation).order_by(Organisation.name)))

    def _org_by_id(self, oid: int | None) -> Organisation | None:
        return self.session.get(Organisation, oid) if oid is not None else None

    def projection(self, battery: Battery) -> Projection:
        """What the battery's events add up to, as its row records it (no events yet: empty)."""
        if battery.head_seq == 0:
            return EMPTY
        owner, responsible = self._org_by_id(battery.owner_id), self._org_by_id(battery.responsible_id)
        return Projection(battery.state, battery.eu_status, owner.uid if owner else None,
                          responsible.uid if responsible else None)

    def _actor(self, ref: str | None) -> Organisation | None:
        return self.organisation(ref) if ref else None

    # --- batteries -----------------------------------------------------------------------------
    def battery(self, ref: str) -> Battery:
        """By passport id, GB/T 34014 code or any other identifier."""
        ref = ref.strip()
        stmt = select(Battery)
        if ref.lower().startswith("urn:uuid:"):
            found = self.session.scalar(stmt.where(Battery.uid == ref.lower()))
        else:
            found = self.session.scalar(stmt.where(Battery.code == ref.upper()))
            if found is None:
                found = self.session.scalar(
                    stmt.join(Identifier, Identifier.battery_id == Battery.id).where(
                        Identifier.value == ref
                    )
                )
        if found is None:
            raise NotFound(f"no battery '{ref}'")
        return found

    def prepare(
        self, data: BatteryIn, in_call: dict[str, tuple[str, str]]
    ) -> tuple[dict, dict, dict[str, str]]:
        """Row values, the 'registered' payload and the identifiers of one new battery.

        ``in_call`` maps the code and uid of batteries registered earlier in the same call to their
        (uid, kind), so a file can list a pack before its modules and cells.
        """
        kind, chemistry, made_on = data.kind, data.chemistry, data.manufactured_on
        code = None
        if data.code:
            decoded = gbt34014.parse(data.code, lenient=data.lenient_code)
            code = decoded.code
            if kind and kind != decoded.product_type:
                raise ValidationFailed(
                    f"kind '{kind}' contradicts the code's product type '{decoded.product_type}'",
                    location="kind",
                )
            kind = decoded.product_type
            chemistry = chemistry or decoded.battery_type
            if made_on and made_on != decoded.production_date:
                raise ValidationFailed(
                    f"manufactured_on {made_on} contradicts the code's production date "
                    f"{decoded.production_date}",
                    location="manufactured_on",
                )
            made_on = decoded.production_date
        if kind is None:
            raise ValidationFailed("kind is required when there is no GB/T 34014 code", location="kind")
        uid = identifiers.check_passport_id(data.uid) if data.uid else identifiers.new_passport_id()
        parent_id = parent_uid = parent_kind = None
        if data.parent:
            if data.parent in in_call:
                parent_uid, parent_kind = in_call[data.parent]
            else:
                parent = self.battery(data.parent)
                parent_id, parent_uid, parent_kind = parent.id, parent.uid, parent.kind
            if _RANK[parent_kind] <= _RANK[kind]:
                raise ValidationFailed(f"a {kind} cannot be part of a {parent_kind}", location="parent")
        maker = self._actor(data.manufacturer)
        owner = self._actor(data.owner) or maker
        lifecycle().check_initial(data.state)
        extra = {s: identifiers.normalise(s, v) for s, v in data.identifiers.items()}
        row = {
            "uid": uid, "code": code, "kind": kind, "parent_id": parent_id,
            "chemistry": chemistry, "rated_capacity_ah": data.rated_capacity_ah,
            "rated_energy_wh": data.rated_energy_wh, "nominal_voltage_v": data.nominal_voltage_v,
            "mass_kg": data.mass_kg, "manufacturer_id": maker.id if maker else None,
            "manufactured_on": made_on, "manufacturing_place": data.manufacturing_place,
            "state": data.state, "eu_status": lifecycle().eu_status_after(None, data.state),
            "owner_id": None, "responsible_id": None, "head_seq": 0, "head_hash": None,
            "created_at": datetime.now(UTC),
        }
        payload = {
            "state": data.state, "owner": owner.uid if owner else None,
            "responsible": owner.uid if owner else None, "code": code, "kind": kind,
            "parent": parent_uid, "chemistry": chemistry,
            "rated_capacity_ah": data.rated_capacity_ah, "rated_energy_wh": data.rated_energy_wh,
            "nominal_voltage_v": data.nominal_voltage_v, "mass_kg": data.mass_kg,
            "manufacturer": maker.uid if maker else None,
            "manufactured_on": made_on.isoformat() if isinstance(made_on, date) else None,
            "manufacturing_place": data.manufacturing_place, "identifiers": extra or None,
        }
        for key in (code, uid, *extra.values()):
            if key:
                in_call[key] = (uid, kind)
        return row, {k: v for k, v in payload.items() if v is not None}, extra

    def register_many(
        self, items: Sequence[BatteryIn], *, actor: str | None = None,
        occurred_at: datetime | None = None,
    ) -> list[Battery]:
        """Register batteries, all or nothing; a parent may come earlier in the same call."""
        actor_org = self._actor(actor)
        in_call: dict[str, tuple[str, str]] = {}
        prepared = [self.prepare(item, in_call) for item in items]
        ids_by_uid: dict[str, int] = {}
        try:
            # parents first: packs, then modules, then cells, so in-call parents have ids
            for level in (3, 2, 1):
                batch = []
                for row, payload, _ in prepared:
                    if _RANK[row["kind"]] != level:
                        continue
                    if row["parent_id"] is None and "parent" in payload:
                        row["parent_id"] = ids_by_uid[payload["parent"]]
                    batch.append(row)
                if batch:
                    result = self.session.execute(
                        insert(Battery).returning(Battery.id, Battery.uid), batch
                    )
                    ids_by_uid.update({uid: bid for bid, uid in result})
            ids = [ids_by_uid[row["uid"]] for row, _, _ in prepared]
            ident_rows = [
                {"battery_id": bid, "scheme": scheme, "value": value}
                for bid, (row, _, extra) in zip(ids, prepared, strict=True)
                for scheme, value in (
                    [("passport", row["uid"])]
                    + ([("gbt34014", row["code"])] if row["code"] else [])
                    + list(extra.items())
                )
            ]
            self.session.execute(insert(Identifier), ident_rows)
        except IntegrityError as exc:
            raise Conflict(
                f"a battery code, passport id or identifier is already registered ({exc.orig})"
            ) from None
        ledger.append(
            self.session,
            [
                Draft(bid, "registered", payload, actor_org.id if actor_org else None, occurred_at)
                for bid, (_, payload, _) in zip(ids, prepared, strict=True)
            ],
        )
        return list(
            self.session.scalars(select(Battery).where(Battery.id.in_(ids)).order_by(Battery.id))
        )

    def register(self, data: BatteryIn, *, actor: str | None = None) -> Battery:
        return self.register_many([data], actor=actor)[0]

    def list_batteries(
        self, *, state: str | None = None, chemistry: str | None = None, kind: str | None = None,
        query: str | None = None, limit: int = 50, offset: int = 0,
    ) -> tuple[list[Battery], int]:
        """A page of batteries and the total that match."""
        stmt = self.battery_filter(state=state, chemistry=chemistry, kind=kind, query=query)
        total = self.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        page = self.session.scalars(stmt.order_by(Battery.id).limit(limit).offset(offset))
        return list(page), total

    @staticmethod
    def battery_filter(
        *, state: str | None = None, chemistry: str | None = None, kind: str | None = None,
        query: str | None = None,
    ) -> Select[tuple[Battery]]:
        """The batteries that match, as a statement other stages can narrow further (grades)."""
        stmt = select(Battery)
        if state:
            stmt = stmt.where(Battery.state == state)
        if chemistry:
            stmt = stmt.where(Battery.chemistry == chemistry)
        if kind:
            stmt = stmt.where(Battery.kind == kind)
        if query:
            like = f"%{query.strip()}%"
            stmt = stmt.where(
                or_(
                    Battery.uid.like(like.lower()),
                    Battery.code.like(like.upper()),
                    Battery.id.in_(select(Identifier.battery_id).where(Identifier.value.like(like))),
                )
            )
        return stmt

    # --- events --------------------------------------------------------------------------------
    def append(
        self, ref: str, event_type: str, payload: dict[str, Any], *, actor: str | None = None,
        occurred_at: datetime | None = None, signature: str | None = None,
        key: Ed25519PrivateKey | None = None,
    ) -> ledger.Appended:
        """Append one event; ``key`` signs it here as the actor (the CLI holding its own key)."""
        battery = self.battery(ref)
        org = self._actor(actor)
        raw_signature = _hex(signature, "signature", 64)
        if key is not None:
            if org is None:
                raise ValidationFailed("a signed event needs an acting organisation", location="actor")
            occurred_at = occurred_at or datetime.now(UTC)
            statement = signing.statement(
                battery.uid, event_type, org.uid, ledger.iso(occurred_at), payload
            )
            raw_signature = signing.sign(key, statement)
        return ledger.append(
            self.session,
            [Draft(battery.id, event_type, payload, org.id if org else None, occurred_at, raw_signature)],
        )[0]

    def change_status(
        self, ref: str, to: str, *, actor: str | None = None, occurred_at: datetime | None = None,
        reason: str | None = None, signature: str | None = None,
        key: Ed25519PrivateKey | None = None,
    ) -> ledger.Appended:
        battery = self.battery(ref)
        lifecycle().check(battery.state, to)
        payload: dict[str, Any] = {"from": battery.state, "to": to}
        if reason:
            payload["reason"] = reason
        return self.append(ref, "status-changed", payload, actor=actor, occurred_at=occurred_at,
                           signature=signature, key=key)

    def transfer(
        self, ref: str, *, custody_to: str | None = None, responsibility_to: str | None = None,
        actor: str | None = None, occurred_at: datetime | None = None, reason: str | None = None,
        signature: str | None = None, key: Ed25519PrivateKey | None = None,
    ) -> ledger.Appended:
        """Move custody (who holds it) and/or responsibility (the accountable operator)."""
        current = self.projection(self.battery(ref))
        payload: dict[str, Any] = {}
        if custody_to:
            payload["custody"] = {"from": current.owner, "to": self.organisation(custody_to).uid}
        if responsibility_to:
            payload["responsibility"] = {
                "from": current.responsible,
                "to": self.organisation(responsibility_to).uid,
            }
        if reason:
            payload["reason"] = reason
        return self.append(ref, "transferred", payload, actor=actor, occurred_at=occurred_at,
                           signature=signature, key=key)

    def add_identifier(self, ref: str, scheme: str, value: str, *, actor: str | None = None) -> None:
        battery = self.battery(ref)
        value = identifiers.normalise(scheme, value)
        try:
            with self.session.begin_nested():
                self.session.add(Identifier(battery_id=battery.id, scheme=scheme, value=value))
        except IntegrityError:
            raise Conflict(f"identifier {scheme} '{value}' is already in use") from None
        self.append(ref, "identifier-added", {"scheme": scheme, "value": value}, actor=actor)

    def history(self, ref: str) -> list[dict[str, Any]]:
        return ledger.history(self.session, self.battery(ref).id)

    # --- lineage -------------------------------------------------------------------------------
    def create_successor(self, data: SuccessorIn) -> Battery:
        """Register a re-used, repurposed or remanufactured battery with a new identity (a new
        passport, Art. 77(6)), linked to all sources.

        Each source moves to the same status (if its lifecycle allows) and records its successor;
        responsibility for the new battery lies with the operator who made it (Art. 77(6)).
        """
        sources = [self.battery(ref) for ref in dict.fromkeys(data.sources)]
        spec = data.battery.model_copy(update={"state": data.relation})
        if data.actor and not spec.owner:
            spec = spec.model_copy(update={"owner": data.actor})
        child = self.register(spec, actor=data.actor)
        actor = self._actor(data.actor)
        actor_id = actor.id if actor else None
        drafts: list[Draft] = []
        for source in sources:  # every check before anything is written
            if source.state != data.relation:
                lifecycle().check(source.state, data.relation)
                drafts.append(Draft(source.id, "status-changed",
                                    {"from": source.state, "to": data.relation}, actor_id))
            drafts.append(Draft(source.id, "lineage-linked",
                                {"successor": child.uid, "relation": data.relation}, actor_id))
        drafts.append(Draft(child.id, "lineage-linked",
                            {"sources": [s.uid for s in sources], "relation": data.relation},
                            actor_id))
        self.session.add_all(
            Lineage(child_id=child.id, parent_id=s.id, relation=data.relation) for s in sources
        )
        self.session.flush()
        ledger.append(self.session, drafts)  # one locked, ordered write for all the sources
        return child

    def lineage(self, ref: str, *, depth: int = 10) -> dict[str, Any]:
        """Sources (what it was made from) and successors (what was made from it), recursively."""
        battery = self.battery(ref)

        def walk(bid: int, up: bool, level: int, seen: frozenset[int]) -> list[dict[str, Any]]:
            if level >= depth:
                return []
            mine, other = (Lineage.child_id, Lineage.parent_id) if up else (Lineage.parent_id, Lineage.child_id)
            rows = self.session.execute(
                select(Battery, Lineage.relation).join(Lineage, other == Battery.id).where(mine == bid)
                .order_by(Battery.id)
            )
            return [
                {**self.brief(b), "relation": rel,
                 ("sources" if up else "successors"): walk(b.id, up, level + 1, seen | {b.id})}
                for b, rel in rows
                if b.id not in seen
            ]

        return {
            **self.brief(battery),
            "sources": walk(battery.id, True, 0, frozenset({battery.id})),
            "successors": walk(battery.id, False, 0, frozenset({battery.id})),
        }

    @staticmethod
    def brief(b: Battery) -> dict[str, Any]:
        return {"uid": b.uid, "code": b.code, "kind": b.kind, "state": b.state, "eu_status": b.eu_status}

    def describe(self, ref: str) -> dict[str, Any]:
        """Everything the registry knows of one battery, for show and the API."""
        b = self.battery(ref)

        def org(oid: int | None) -> dict[str, str] | None:
            found = self._org_by_id(oid)
            return {"uid": found.uid, "name": found.name} if found else None

        parent = self.session.get(Battery, b.parent_id) if b.parent_id else None
        children = self.session.scalars(select(Battery).where(Battery.parent_id == b.id).order_by(Battery.id))
        idents = self.session.execute(
            select(Identifier.scheme, Identifier.value).where(Identifier.battery_id == b.id)
            .order_by(Identifier.id)
        )
        lineage = self.lineage(b.uid, depth=1)
        return {
            "uid": b.uid, "code": b.code, "kind": b.kind, "chemistry": b.chemistry,
            "rated_capacity_ah": b.rated_capacity_ah, "rated_energy_wh": b.rated_energy_wh,
            "nominal_voltage_v": b.nominal_voltage_v, "mass_kg": b.mass_kg,
            "manufacturer": org(b.manufacturer_id),
            "manufactured_on": b.manufactured_on.isoformat() if b.manufactured_on else None,
            "manufacturing_place": b.manufacturing_place, "state": b.state,
            "eu_status": b.eu_status, "read_only": lifecycle().state(b.state).read_only,
            "owner": org(b.owner_id), "responsible": org(b.responsible_id),
            "parent": self.brief(parent) if parent else None,
            "children": [self.brief(c) for c in children],
            "identifiers": [{"scheme": s, "value": v} for s, v in idents],
            "sources": lineage["sources"], "successors": lineage["successors"],
            "events": b.head_seq, "head_hash": b.head_hash.hex() if b.head_hash else None,
        }
