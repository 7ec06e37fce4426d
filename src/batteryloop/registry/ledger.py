"""The hash-chained event ledger: one chain per battery, appended to and never changed.

Each event's hash is SHA-256 over the RFC 8785 canonical JSON of
``{actor, battery, occurred_at, payload, prev, recorded_at, seq, signature, type}``, where ``prev``
is the previous event's hash (64 zeros for the first). Appends lock the battery rows they touch
(``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and the unique
``(battery_id, seq)`` constraint backs that up, so concurrent writers can neither fork a chain nor
lose an event.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any, NamedTuple

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.errors import BatteryloopError, NotFound, ValidationFailed
from batteryloop.registry import canonical, signing
from batteryloop.registry.projection import EMPTY, Projection, apply
from batteryloop.store import bulk
from batteryloop.store.models import Battery, Event, Organisation

GENESIS = bytes(32)
EVENT_COLUMNS = (
    "battery_id", "seq", "type", "actor_id", "occurred_at", "recorded_at", "payload", "prev_hash",
    "hash", "signature",
)
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9-]{1,47}\Z")
_LOCK_CHUNK = 5000


def utc(dt: datetime) -> datetime:
    """Aware UTC; a naive time (SQLite gives those back) is taken as UTC."""
    if dt.tzinfo is UTC:
        return dt
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def iso(dt: datetime) -> str:
    """The one text form of a time that goes into hashes: UTC, microseconds, 'Z'."""
    return utc(dt).isoformat(timespec="microseconds")[:26] + "Z"


def chain_bytes(
    *,
    battery: str,
    seq: int,
    event_type: str,
    actor: str | None,
    occurred_at: str,
    recorded_at: str,
    payload: bytes,
    prev: bytes,
    signature: bytes | None,
) -> bytes:
    """RFC 8785 bytes of the hashed object, assembled from already-canonical parts.

    Keys are written in their canonical order; ``payload`` must be canonical JSON already (it is
    stored that way), and uids, types and times need no escaping (their patterns allow none), so
    the result equals ``rfc8785.dumps`` of the whole object (tested, including odd values, which
    go through orjson).
    """
    if not (_PLAIN.match(battery) and _PLAIN.match(event_type) and (actor is None or _PLAIN.match(actor))):
        return _chain_bytes_escaped(battery, seq, event_type, actor, occurred_at, recorded_at,
                                    payload, prev, signature)
    return _CHAIN % (
        b"null" if actor is None else b'"' + actor.encode() + b'"',
        battery.encode(), occurred_at.encode(), payload, prev.hex().encode(),
        recorded_at.encode(), seq,
        b'"' + signature.hex().encode() + b'"' if signature is not None else b"null",
        event_type.encode(),
    )


_PLAIN = re.compile(r"^[A-Za-z0-9:._-]*\Z")  # \Z: "$" would let a final "\n" through
_CHAIN = (
    b'{"actor":%s,"battery":"%s","occurred_at":"%s","payload":%s,"prev":"%s",'
    b'"recorded_at":"%s","seq":%d,"signature":%s,"type":"%s"}'
)
_CHAIN_ESCAPED = (
    b'{"actor":%s,"battery":%s,"occurred_at":"%s","payload":%s,"prev":"%s",'
    b'"recorded_at":"%s","seq":%d,"signature":%s,"type":%s}'
)


def _chain_bytes_escaped(battery, seq, event_type, actor, occurred_at, recorded_at, payload, prev,
                         signature) -> bytes:  # type: ignore[no-untyped-def]
    """The same object for values that need JSON escaping (seen only after tampering)."""
    return _CHAIN_ESCAPED % (
        orjson.dumps(actor), orjson.dumps(battery), occurred_at.encode(), payload,
        prev.hex().encode(), recorded_at.encode(), seq,
        b'"' + signature.hex().encode() + b'"' if signature is not None else b"null",
        orjson.dumps(event_type),
    )


@dataclass
class Draft:
    """An event to append. ``signature`` is over ``signing.statement(...)`` of these fields."""

    battery_id: int
    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    actor_id: int | None = None
    occurred_at: datetime | None = None
    signature: bytes | None = None
    # Only trusted back-fills (demo seeding, migration of legacy records) set this; the API and
    # CLI never do, so a reported time is the platform's own clock.
    recorded_at: datetime | None = None


class Appended(NamedTuple):
    battery_id: int
    seq: int
    hash: bytes


class Organisations:
    """id <-> uid and keys of all organisations, loaded once per unit of work."""

    def __init__(self, session: Session) -> None:
        rows = session.execute(select(Organisation.id, Organisation.uid, Organisation.public_key))
        self.uid: dict[int, str] = {}
        self.id: dict[str, int] = {}
        self.key: dict[int, bytes | None] = {}
        for oid, uid, key in rows:
            self.uid[oid], self.id[uid], self.key[oid] = uid, oid, key

    def uid_of(self, oid: int | None) -> str | None:
        return None if oid is None else self.uid[oid]

    def id_of(self, uid: str | None) -> int | None:
        if uid is None:
            return None
        try:
            return self.id[uid]
        except KeyError:
            raise NotFound(f"no organisation with uid '{uid}'") from None


@dataclass
class _Head:
    uid: str
    seq: int
    hash: bytes
    projection: Projection
    changed: bool = False


def _lock_heads(session: Session, ids: list[int], orgs: Organisations) -> dict[int, _Head]:
    heads: dict[int, _Head] = {}
    conn = session.connection()
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""  # SQLite: BEGIN IMMEDIATE
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    for start in range(0, len(ids), _LOCK_CHUNK):
        chunk = ids[start : start + _LOCK_CHUNK]
        # one lock order for every writer (by id), so two writers cannot deadlock
        sql = (
            "SELECT id, uid, head_seq, head_hash, state, eu_status, owner_id, responsible_id "
            f"FROM batteries WHERE id IN ({', '.join([mark] * len(chunk))}) ORDER BY id{lock}"
        )
        for bid, uid, seq, head, state, eu, owner, resp in conn.exec_driver_sql(sql, tuple(chunk)):
            projection = (
                EMPTY if seq == 0 else Projection(state, eu, orgs.uid_of(owner), orgs.uid_of(resp))
            )
            heads[bid] = _Head(uid, seq, bytes(head) if head else GENESIS, projection)
    missing = set(ids) - heads.keys()
    if missing:
        raise NotFound(f"no battery with id {sorted(missing)[0]}")
    return heads


def append(session: Session, drafts: Sequence[Draft], *, now: datetime | None = None) -> list[Appended]:
    """Append events in order, all or nothing; returns their positions and hashes."""
    if not drafts:
        return []
    recorded = now_iso = iso(now or datetime.now(UTC))
    orgs = Organisations(session)
    heads = _lock_heads(session, sorted({d.battery_id for d in drafts}), orgs)
    rows: list[tuple] = []
    out: list[Appended] = []
    as_time = bulk.time_param(session.connection())
    recorded_param = now_param = as_time(recorded)
    checked_types: set[str] = set()
    for index, draft in enumerate(drafts):
        if draft.type not in checked_types:
            if not EVENT_TYPE.match(draft.type):
                raise ValidationFailed(
                    f"event type '{draft.type}' must be lower-case letters, digits and '-'",
                    location=f"event {index + 1}",
                )
            checked_types.add(draft.type)
        head = heads[draft.battery_id]
        try:
            projection = apply(head.projection, draft.type, draft.payload)
        except BatteryloopError as exc:
            where = f"event {index + 1} ({draft.type}), battery {head.uid}"
            raise type(exc)(f"{where}: {exc.message}") from None
        if projection is not head.projection:
            for party in (projection.owner, projection.responsible):
                orgs.id_of(party)  # an unknown organisation fails here, naming it
        payload = canonical.dumps(draft.payload)
        actor = orgs.uid_of(draft.actor_id) if draft.actor_id is not None else None
        if draft.recorded_at is not None:
            recorded = iso(draft.recorded_at)
            recorded_param = as_time(recorded)
        else:
            recorded, recorded_param = now_iso, now_param
        if draft.occurred_at is None:
            occurred, occurred_param = recorded, recorded_param
        else:
            occurred = iso(draft.occurred_at)
            occurred_param = as_time(occurred)
        if draft.signature is not None:
            key = orgs.key.get(draft.actor_id) if draft.actor_id is not None else None
            message = signing.statement(head.uid, draft.type, actor, occurred, draft.payload)
            if key is None or not signing.is_valid(key, draft.signature, message):
                raise ValidationFailed(
                    "signature does not verify against the acting organisation's public key",
                    location=f"event {index + 1} ({draft.type}), battery {head.uid}",
                )
        seq = head.seq + 1
        digest = sha256(
            chain_bytes(
                battery=head.uid, seq=seq, event_type=draft.type, actor=actor, occurred_at=occurred,
                recorded_at=recorded, payload=payload, prev=head.hash, signature=draft.signature,
            )
        ).digest()
        rows.append(
            (
                draft.battery_id, seq, draft.type, draft.actor_id,
                occurred_param, recorded_param, payload.decode(), head.hash, digest, draft.signature,
            )
        )
        head.seq, head.hash, head.projection, head.changed = seq, digest, projection, True
        out.append(Appended(draft.battery_id, seq, digest))
    conn = session.connection()
    bulk.insert_many(conn, "events", EVENT_COLUMNS, rows)
    bulk.update_many(
        conn, "batteries",
        ("head_seq", "head_hash", "state", "eu_status", "owner_id", "responsible_id"), "id",
        [
            (h.seq, h.hash, h.projection.state, h.projection.eu_status,
             orgs.id_of(h.projection.owner), orgs.id_of(h.projection.responsible), bid)
            for bid, h in heads.items()
            if h.changed
        ],
    )
    # the ORM may hold these rows from before the core UPDATE: make it reload them
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Battery) and obj.id in heads:
            session.expire(obj)
    return out


def history(session: Session, battery_id: int) -> list[dict[str, Any]]:
    """A battery's events in chain order, with the acting organisation's name."""
    stmt = (
        select(
            Event.id, Event.seq, Event.type, Organisation.uid, Organisation.name, Event.occurred_at,
            Event.recorded_at, Event.payload, Event.prev_hash, Event.hash, Event.signature,
        )
        .outerjoin(Organisation, Organisation.id == Event.actor_id)
        .where(Event.battery_id == battery_id)
        .order_by(Event.seq)
    )
    return [
        {
            "id": eid, "seq": seq, "type": etype, "actor": actor, "actor_name": actor_name,
            "occurred_at": iso(occurred), "recorded_at": iso(recorded),
            "payload": orjson.loads(payload), "prev_hash": prev.hex(), "hash": digest.hex(),
            "signature": sig.hex() if sig else None,
        }
        for eid, seq, etype, actor, actor_name, occurred, recorded, payload, prev, digest, sig
        in session.execute(stmt)
    ]
