"""The audit log: every read of a restricted passport attribute, who, what and when.

One global hash chain. Entry ``seq`` hashes, with SHA-256, the RFC 8785 canonical JSON of
``{at, attributes, battery, organisation, path, prev, seq, tier, user}`` where ``prev`` is the hash
of entry ``seq - 1`` (64 zeros for the first). The database refuses UPDATE and DELETE on the table
(migration 0004); ``verify_audit`` recomputes every link, so an edit made after lifting that guard
is named, and so is a removed entry anywhere but at the end (keep ``AuditReport.head`` outside the
database to catch that too).

Appends are serialised: SQLite's ``BEGIN IMMEDIATE`` (every unit of work takes it) and a
transaction-scoped advisory lock on PostgreSQL, held until the caller's commit; the unique
``seq`` backs both up, so two readers can never fork the chain.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from batteryloop.accounts.viewer import Viewer
from batteryloop.errors import ValidationFailed
from batteryloop.registry import canonical
from batteryloop.registry.ledger import iso
from batteryloop.store.models import AuditEntry

GENESIS = bytes(32)
_PG_LOCK_KEY = 0x626C_6175_6469_74  # "blaudit": the advisory lock of the audit chain
MAX_PATH = 500


def entry_bytes(
    *, seq: int, at: str, organisation: str | None, user: str | None, tier: str, battery: str,
    attributes: list[str], path: str, prev: bytes,
) -> bytes:
    """The canonical bytes an entry's hash is taken over."""
    return canonical.dumps({
        "at": at, "attributes": attributes, "battery": battery, "organisation": organisation,
        "path": path, "prev": prev.hex(), "seq": seq, "tier": tier, "user": user,
    })


def _lock(session: Session) -> None:
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})


def _head(session: Session) -> tuple[int, bytes]:
    row = session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    return (0, GENESIS) if row is None else (row[0], bytes(row[1]))


def record_reads(
    session: Session, viewer: Viewer, reads: Iterable[tuple[str, Sequence[str]]], path: str,
    *, now: datetime | None = None,
) -> int:
    """Record reads of several batteries' restricted attributes at once; returns entries written.

    Batteries with no attributes listed are skipped. The INSERT runs now, inside the caller's unit
    of work, so it commits or rolls back with the response that showed the data.
    """
    items = []
    for battery, attributes in reads:
        attrs = sorted(set(attributes))
        if not attrs:
            continue
        if not battery or len(battery) > 64:
            raise ValidationFailed("a battery's passport identifier has 1 to 64 characters",
                                   location="battery")
        items.append((battery, attrs))
    if not items:
        return 0
    at = now or datetime.now(UTC)
    at_text = iso(at)
    path = path[:MAX_PATH]
    _lock(session)
    seq, prev = _head(session)
    rows: list[dict[str, Any]] = []
    for battery, attrs in items:
        seq += 1
        digest = sha256(entry_bytes(
            seq=seq, at=at_text, organisation=viewer.organisation, user=viewer.user,
            tier=viewer.tier, battery=battery, attributes=attrs, path=path, prev=prev,
        )).digest()
        rows.append({
            "seq": seq, "at": datetime.fromisoformat(at_text), "organisation": viewer.organisation,
            "user_name": viewer.user, "tier": viewer.tier, "battery": battery,
            "attributes": canonical.dumps(attrs).decode(), "path": path, "prev_hash": prev,
            "hash": digest,
        })
        prev = digest
    session.execute(insert(AuditEntry), rows)
    return len(rows)


def record_read(
    session: Session, viewer: Viewer, battery_uid: str, attributes: list[str], path: str,
    *, now: datetime | None = None,
) -> bool:
    """Record that ``viewer`` read these restricted attributes of one battery at ``path``.

    Call it in the same unit of work (session) as the read it records; nothing is written, and
    False returned, when ``attributes`` is empty.
    """
    return record_reads(session, viewer, [(battery_uid, attributes)], path, now=now) == 1


# --- reading and verifying -----------------------------------------------------------------------
def _row_dict(row: AuditEntry) -> dict[str, Any]:
    return {
        "seq": row.seq, "at": iso(row.at), "organisation": row.organisation, "user": row.user_name,
        "tier": row.tier, "battery": row.battery, "attributes": canonical.loads(row.attributes),
        "path": row.path, "hash": bytes(row.hash).hex(),
    }


def entries(
    session: Session, *, battery: str | None = None, limit: int = 100, offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """A page of entries (newest first) and how many match."""
    stmt = select(AuditEntry)
    count = select(func.count()).select_from(AuditEntry)
    if battery is not None:
        stmt = stmt.where(AuditEntry.battery == battery)
        count = count.where(AuditEntry.battery == battery)
    rows = session.scalars(stmt.order_by(AuditEntry.seq.desc()).limit(limit).offset(offset))
    return [_row_dict(r) for r in rows], session.scalar(count) or 0


@dataclass(frozen=True)
class AuditBreach:
    seq: int
    kind: str  # edited | unlinked | removed | reordered
    message: str


@dataclass
class AuditReport:
    entries: int = 0
    head: str | None = None  # hash of the last entry: keep it elsewhere to catch a cut tail
    breaches: list[AuditBreach] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaches

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "entries": self.entries, "head": self.head,
            "breaches": [{"seq": b.seq, "kind": b.kind, "message": b.message}
                         for b in self.breaches],
        }


def verify_audit(session: Session, *, batch: int = 5000) -> AuditReport:
    """Recompute the whole chain from the stored rows; name every entry that does not fit."""
    report = AuditReport()
    expected_seq, prev = 1, GENESIS
    stmt = select(
        AuditEntry.seq, AuditEntry.at, AuditEntry.organisation, AuditEntry.user_name,
        AuditEntry.tier, AuditEntry.battery, AuditEntry.attributes, AuditEntry.path,
        AuditEntry.prev_hash, AuditEntry.hash,
    ).order_by(AuditEntry.seq)
    result = session.execute(stmt.execution_options(yield_per=batch))
    for seq, at, org, user, tier, battery, attrs_text, path, prev_hash, digest in result:
        report.entries += 1
        prev_hash, digest = bytes(prev_hash), bytes(digest)
        if seq != expected_seq:
            kind = "removed" if seq > expected_seq else "reordered"
            what = "entries were removed" if kind == "removed" else "sequence numbers were changed"
            report.breaches.append(AuditBreach(
                seq, kind, f"entry {seq} follows entry {expected_seq - 1}: {what}",
            ))
        if prev_hash != prev:
            report.breaches.append(AuditBreach(
                seq, "unlinked", f"entry {seq} does not link to the hash of the entry before it",
            ))
        try:
            attributes = canonical.loads(attrs_text)
            canonical_text = canonical.dumps(attributes).decode()
            recomputed = sha256(entry_bytes(
                seq=seq, at=iso(at), organisation=org, user=user, tier=tier, battery=battery,
                attributes=attributes, path=path, prev=prev_hash,
            )).digest()
        except (ValueError, ValidationFailed):
            canonical_text, recomputed = None, None
        if recomputed != digest or canonical_text != attrs_text:
            report.breaches.append(AuditBreach(
                seq, "edited", f"entry {seq} was changed after it was written: its content no "
                "longer gives its hash",
            ))
        expected_seq, prev = seq + 1, digest
    report.head = prev.hex() if report.entries else None
    return report
