"""verify: a clean ledger passes; each kind of tampering, done in SQL, is named at its first event.

Three batteries with interleaved events; only the middle one is tampered with, so a report that
blames the wrong battery or the wrong event fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from registry_support import (
    add_battery,
    add_org,
    at,
    event_rows,
    reference_hash,
    reguard_events,
    unguard_events,
)
from sqlalchemy import Connection, delete, select, update

from batteryloop.registry import canonical, ledger, signing
from batteryloop.registry.service import Registry
from batteryloop.registry.verify import verify
from batteryloop.store import Database
from batteryloop.store.models import Battery, Event, Organisation


@dataclass
class Ledger:
    db: Database
    uids: list[str]  # three batteries; the middle one is the target
    target: str
    target_id: int
    events: dict[int, int]  # target's seq -> event id
    total: int
    key: object


@pytest.fixture
def ledger_db(db: Database) -> Iterator[Ledger]:
    key = signing.generate()
    with db.session() as s:
        reg = Registry(s)
        signer = add_org(reg, "Signer", "repurposer", public_key=signing.public_bytes(key)).uid
        add_org(reg, "Fleet", "vehicle_maker")
        uids = [add_battery(reg, manufacturer="Signer").uid for _ in range(3)]
        target = uids[1]
        signed_payload = {"soh": 0.95, "energy_j": 1e17}
        statement = signing.statement(target, "inspected", signer, ledger.iso(at(4)), signed_payload)
        for uid in uids:  # events of the three batteries interleave in id order
            reg.change_status(uid, "in_service", occurred_at=at(1))
        for uid in uids:
            reg.append(uid, "inspected", {"soh": 0.97, "n": 1}, occurred_at=at(2))
        reg.append(target, "inspected", {"soh": 0.95, "energy_j": 1e17}, actor="Signer",
                   occurred_at=at(4), signature=signing.sign(key, statement).hex())
        for uid in uids:
            reg.transfer(uid, custody_to="Fleet", occurred_at=at(5))
        reg.append(target, "inspected", {"soh": 0.9}, occurred_at=at(6))
        rows = event_rows(s, target)
        target_id = reg.battery(target).id
    assert [r["type"] for r in rows] == [
        "registered", "status-changed", "inspected", "inspected", "transferred", "inspected",
    ]
    try:
        yield Ledger(db, uids, target, target_id, {r["seq"]: r["id"] for r in rows}, 3 * 4 + 2, key)
    finally:
        reguard_events(db)


def tamper(lg: Ledger, change: Callable[[Connection], None]) -> None:
    with lg.db.engine.begin() as conn:
        unguard_events(conn)
        change(conn)


def rehash(conn: Connection, event_id: int) -> None:
    """Recompute one stored event's hash from its (tampered) stored content."""
    e = conn.execute(select(Event).where(Event.id == event_id)).one()
    battery = conn.scalar(select(Battery.uid).where(Battery.id == e.battery_id))
    actor = conn.scalar(select(Organisation.uid).where(Organisation.id == e.actor_id)) if e.actor_id else None
    digest = reference_hash(
        battery=battery, seq=e.seq, event_type=e.type, actor=actor,
        occurred_at=ledger.iso(e.occurred_at), recorded_at=ledger.iso(e.recorded_at),
        payload=canonical.loads(e.payload), prev=bytes(e.prev_hash),
        signature=bytes(e.signature) if e.signature is not None else None,
    )
    conn.execute(update(Event).where(Event.id == event_id).values(hash=digest))


def only_breach(lg: Ledger):  # type: ignore[no-untyped-def]
    with lg.db.session() as s:
        report = verify(s)
    assert report.batteries == 3
    assert len(report.breaches) == 1, report.breaches
    breach = report.breaches[0]
    assert breach.battery == lg.target
    return report, breach


def test_clean_ledger_verifies(ledger_db: Ledger) -> None:
    with ledger_db.db.session() as s:
        report = verify(s)
        assert report.ok, report.breaches
        assert (report.batteries, report.events) == (3, ledger_db.total)
        # each battery row agrees with its last event
        heads = {b.uid: (b.head_seq, bytes(b.head_hash)) for b in s.scalars(select(Battery))}
        for uid in ledger_db.uids:
            last = event_rows(s, uid)[-1]
            assert heads[uid] == (last["seq"], last["hash"])
    assert heads[ledger_db.target][0] == 6


def _where(lg: Ledger, seq: int):  # type: ignore[no-untyped-def]
    return (Event.battery_id == lg.target_id) & (Event.seq == seq)


def test_payload_edited(ledger_db: Ledger) -> None:
    lg = ledger_db
    tamper(lg, lambda c: c.execute(update(Event).where(_where(lg, 3)).values(payload='{"n":1,"soh":0.99}')))
    report, breach = only_breach(lg)
    assert (breach.kind, breach.event_id, breach.seq) == ("edited", lg.events[3], 3)
    assert report.events == lg.total


def test_occurred_at_edited(ledger_db: Ledger) -> None:
    lg = ledger_db
    moved = datetime(2023, 12, 31, 23, 59, tzinfo=UTC)
    tamper(lg, lambda c: c.execute(update(Event).where(_where(lg, 5)).values(occurred_at=moved)))
    _, breach = only_breach(lg)
    assert (breach.kind, breach.event_id, breach.seq) == ("edited", lg.events[5], 5)


def test_one_microsecond_is_enough(ledger_db: Ledger) -> None:
    lg = ledger_db
    moved = at(2).replace(microsecond=1)
    tamper(lg, lambda c: c.execute(update(Event).where(_where(lg, 3)).values(occurred_at=moved)))
    _, breach = only_breach(lg)
    assert (breach.kind, breach.event_id, breach.seq) == ("edited", lg.events[3], 3)


def test_middle_event_removed(ledger_db: Ledger) -> None:
    lg = ledger_db
    tamper(lg, lambda c: c.execute(delete(Event).where(_where(lg, 3))))
    report, breach = only_breach(lg)
    # the first event that shows it is the one after the gap
    assert (breach.kind, breach.event_id, breach.seq) == ("removed", lg.events[4], 4)
    assert report.events == lg.total - 1


def test_last_event_removed_is_caught_by_the_head(ledger_db: Ledger) -> None:
    lg = ledger_db
    tamper(lg, lambda c: c.execute(delete(Event).where(_where(lg, 6))))
    _, breach = only_breach(lg)
    assert (breach.kind, breach.event_id, breach.seq) == ("removed", None, 6)
    assert "ends at seq 5" in breach.message and "says 6" in breach.message


def test_seq_swapped(ledger_db: Ledger) -> None:
    lg = ledger_db

    def swap(conn: Connection) -> None:  # through a free number: (battery_id, seq) is unique
        conn.execute(update(Event).where(_where(lg, 3)).values(seq=-3))
        conn.execute(update(Event).where(_where(lg, 4)).values(seq=3))
        conn.execute(update(Event).where(_where(lg, -3)).values(seq=4))

    tamper(lg, swap)
    _, breach = only_breach(lg)
    # ordered by seq, the first out of place is the old seq 4, now at 3
    assert (breach.kind, breach.event_id, breach.seq) == ("reordered", lg.events[4], 3)


def test_hash_recomputed_after_edit_breaks_the_next_link(ledger_db: Ledger) -> None:
    lg = ledger_db

    def edit_and_rehash(conn: Connection) -> None:
        conn.execute(update(Event).where(_where(lg, 3)).values(payload='{"n":1,"soh":0.99}'))
        rehash(conn, lg.events[3])

    tamper(lg, edit_and_rehash)
    _, breach = only_breach(lg)
    assert (breach.kind, breach.event_id, breach.seq) == ("reordered", lg.events[4], 4)
    assert "does not link" in breach.message


def test_rewritten_tail_is_caught_by_the_head(ledger_db: Ledger) -> None:
    """Edit the last event and rehash it: no later link to break, but the head disagrees."""
    lg = ledger_db

    def edit_and_rehash(conn: Connection) -> None:
        conn.execute(update(Event).where(_where(lg, 6)).values(payload='{"soh":0.99}'))
        rehash(conn, lg.events[6])

    tamper(lg, edit_and_rehash)
    _, breach = only_breach(lg)
    assert (breach.kind, breach.event_id, breach.seq) == ("inserted", None, 6)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("state", "retired"),
        ("eu_status", "waste"),
        ("owner_id", select(Organisation.id).where(Organisation.name == "Signer").scalar_subquery()),
        ("responsible_id", select(Organisation.id).where(Organisation.name == "Fleet").scalar_subquery()),
    ],
    ids=["state", "eu_status", "owner", "responsible"],
)
def test_battery_row_edited_without_an_event(ledger_db: Ledger, column: str, value: object) -> None:
    lg = ledger_db
    tamper(lg, lambda c: c.execute(update(Battery).where(Battery.id == lg.target_id).values({column: value})))
    _, breach = only_breach(lg)
    assert (breach.kind, breach.event_id, breach.seq) == ("projection", None, None)


def test_forged_signature(ledger_db: Ledger) -> None:
    """A forger without the key signs with their own and makes the hash fit: the signature fails."""
    lg = ledger_db
    forger = signing.generate()

    def forge(conn: Connection) -> None:
        payload = {"energy_j": 1e17, "soh": 0.5}
        conn.execute(update(Event).where(_where(lg, 4)).values(payload=canonical.dumps(payload).decode()))
        signer = conn.scalar(select(Organisation.uid).where(Organisation.name == "Signer"))
        statement = signing.statement(lg.target, "inspected", signer, ledger.iso(at(4)), payload)
        conn.execute(update(Event).where(_where(lg, 4)).values(signature=signing.sign(forger, statement)))
        rehash(conn, lg.events[4])

    tamper(lg, forge)
    _, breach = only_breach(lg)
    assert (breach.kind, breach.event_id, breach.seq) == ("signature", lg.events[4], 4)


def test_signature_replaced_without_rehash_is_an_edit(ledger_db: Ledger) -> None:
    lg = ledger_db
    tamper(lg, lambda c: c.execute(update(Event).where(_where(lg, 4)).values(signature=bytes(64))))
    _, breach = only_breach(lg)
    assert (breach.kind, breach.event_id, breach.seq) == ("edited", lg.events[4], 4)


def test_first_breach_of_each_battery(ledger_db: Ledger) -> None:
    """Two batteries tampered with: one breach each, each at its first broken event."""
    lg = ledger_db
    first, target = lg.uids[0], lg.target
    with lg.db.session() as s:
        first_events = {r["seq"]: r["id"] for r in event_rows(s, first)}

    def both(conn: Connection) -> None:
        conn.execute(update(Event).where(_where(lg, 5)).values(payload="{}"))
        conn.execute(update(Event).where(_where(lg, 2)).values(payload='{"from":"produced","to":"retired"}'))
        conn.execute(update(Event).where(Event.id == first_events[3]).values(type="tested"))
        conn.execute(update(Event).where(Event.id == first_events[4]).values(payload="{}"))

    tamper(lg, both)
    with lg.db.session() as s:
        report = verify(s)
    assert [(b.battery, b.kind, b.event_id, b.seq) for b in report.breaches] == [
        (first, "edited", first_events[3], 3),
        (target, "edited", lg.events[2], 2),
    ]
    assert report.events == lg.total
