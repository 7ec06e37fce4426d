"""Re-checks every chain and names the first event that was edited, removed or reordered.

It trusts nothing in the database: each event's hash is recomputed from its stored content, each
link to the previous hash, the sequence numbers, the signatures, and the ``batteries`` row's head
and state against the fold of its events. Reads are streamed, so memory stays flat at any size.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from batteryloop.errors import BatteryloopError
from batteryloop.registry import canonical, signing
from batteryloop.registry.ledger import GENESIS, Organisations, chain_bytes, iso
from batteryloop.registry.projection import EMPTY, Projection, apply
from batteryloop.store.models import Battery, Event, Organisation

_PROJECTING = {"registered", "status-changed", "transferred"}


@dataclass(frozen=True)
class Breach:
    battery: str
    kind: str  # edited | removed | reordered | inserted | signature | projection
    event_id: int | None
    seq: int | None
    message: str


@dataclass
class Report:
    batteries: int = 0
    events: int = 0
    seconds: float = 0.0
    breaches: list[Breach] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaches

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else float("inf")


class _Chain:
    """The running check of one battery's chain."""

    def __init__(self, battery_id: int, uid: str, head_seq: int, head_hash: bytes | None, row: Projection):
        self.battery_id, self.uid = battery_id, uid
        self.head_seq, self.head_hash, self.row = head_seq, head_hash, row
        self.seq, self.prev, self.last_id = 0, GENESIS, 0
        self.projection: Projection | None = EMPTY
        self.breach: Breach | None = None

    def fail(self, kind: str, event_id: int | None, seq: int | None, message: str) -> None:
        if self.breach is None:
            self.breach = Breach(self.uid, kind, event_id, seq, message)

    def close(self) -> Breach | None:
        if self.breach is None:
            if self.head_seq > self.seq:
                self.fail(
                    "removed", None, self.seq + 1,
                    f"battery {self.uid}: the chain ends at seq {self.seq} but the battery's head "
                    f"says {self.head_seq}: event(s) {self.seq + 1}..{self.head_seq} were removed",
                )
            elif self.head_seq < self.seq or (self.seq and self.head_hash != self.prev):
                self.fail(
                    "inserted", None, self.seq,
                    f"battery {self.uid}: the chain's last event (seq {self.seq}) is not the head "
                    f"the battery records (seq {self.head_seq}): events were added or replaced",
                )
            elif self.projection is not None and self.seq and self.projection != self.row:
                self.fail(
                    "projection", None, None,
                    f"battery {self.uid}: the record says {self.row} but its events add up to "
                    f"{self.projection}: the battery row was edited",
                )
        return self.breach


def verify(session: Session, *, batch: int = 20_000, battery_id: int | None = None) -> Report:
    """Check every chain, or only one battery's (``battery_id``: a page showing one history)."""
    report = Report()
    started = time.perf_counter()
    orgs = Organisations(session)
    actor = aliased(Organisation)
    stmt = (
        select(
            Battery.id, Battery.uid, Battery.head_seq, Battery.head_hash, Battery.state,
            Battery.eu_status, Battery.owner_id, Battery.responsible_id,
            Event.id, Event.seq, Event.type, actor.uid, Event.actor_id, Event.occurred_at,
            Event.recorded_at, Event.payload, Event.prev_hash, Event.hash, Event.signature,
        )
        .outerjoin(Event, Event.battery_id == Battery.id)
        .outerjoin(actor, actor.id == Event.actor_id)
        .order_by(Battery.id, Event.seq)
        .execution_options(yield_per=batch)
    )
    if battery_id is not None:
        stmt = stmt.where(Battery.id == battery_id)
    chain: _Chain | None = None
    for (
        bid, buid, head_seq, head_hash, state, eu, owner, resp,
        eid, seq, etype, actor_uid, actor_id, occurred, recorded, payload, prev, digest, sig,
    ) in session.execute(stmt):
        if chain is None or chain.battery_id != bid:
            if chain is not None and (found := chain.close()):
                report.breaches.append(found)
            report.batteries += 1
            chain = _Chain(bid, buid, head_seq, head_hash,
                           Projection(state, eu, orgs.uid_of(owner), orgs.uid_of(resp)))
        if eid is None:
            continue
        report.events += 1
        if chain.breach is not None:
            continue
        _check_event(chain, eid, seq, etype, actor_uid, actor_id, occurred, recorded, payload,
                     prev, digest, sig, orgs)
    if chain is not None and (found := chain.close()):
        report.breaches.append(found)
    report.seconds = time.perf_counter() - started
    return report


def _check_event(chain: _Chain, eid, seq, etype, actor_uid, actor_id, occurred, recorded, payload,
                 prev, digest, sig, orgs: Organisations) -> None:  # type: ignore[no-untyped-def]
    where = f"battery {chain.uid}, event #{eid} (seq {seq}, {etype})"
    payload_bytes = payload.encode()
    occurred_iso = iso(occurred)
    recomputed = hashlib.sha256(
        chain_bytes(
            battery=chain.uid, seq=seq, event_type=etype, actor=actor_uid,
            occurred_at=occurred_iso, recorded_at=iso(recorded), payload=payload_bytes,
            prev=prev, signature=sig,
        )
    ).digest()
    if recomputed != digest:
        if prev != chain.prev:  # not just changed in place: it does not follow the event before it
            chain.fail("reordered", eid, seq, f"{where} neither matches its hash nor links to the "
                       "event before it: events were moved, removed or replaced")
        else:
            chain.fail("edited", eid, seq, f"{where} was edited: its content no longer matches its hash")
        return
    if seq != chain.seq + 1:
        kind = "removed" if seq > chain.seq + 1 else "reordered"
        chain.fail(kind, eid, seq, f"{where}: expected seq {chain.seq + 1} after seq {chain.seq}: "
                   + ("event(s) before it were removed" if kind == "removed" else "events were reordered"))
        return
    if prev != chain.prev:
        chain.fail("reordered", eid, seq, f"{where} does not link to the event before it "
                   "(previous hash differs): events were removed, replaced or reordered")
        return
    if eid <= chain.last_id:
        chain.fail("reordered", eid, seq, f"{where} was stored before the event it follows: reordered")
        return
    if sig is not None:
        key = orgs.key.get(actor_id)
        message = signing.statement(chain.uid, etype, actor_uid, occurred_iso, canonical.loads(payload_bytes))
        if key is None or not signing.is_valid(key, sig, message):
            chain.fail("signature", eid, seq, f"{where}: the signature does not verify")
            return
    if etype in _PROJECTING and chain.projection is not None:
        try:
            chain.projection = apply(chain.projection, etype, orjson.loads(payload_bytes))
        except BatteryloopError as exc:
            chain.fail("edited", eid, seq, f"{where} breaks the lifecycle: {exc.message}")
            return
    chain.seq, chain.prev, chain.last_id = seq, digest, eid
