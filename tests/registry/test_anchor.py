"""An anchor kept outside the database catches a chain that was rewritten consistently."""

from __future__ import annotations

from datetime import datetime
from hashlib import sha256

import orjson
import pytest
from sqlalchemy import text

from batteryloop.errors import ValidationFailed
from batteryloop.registry import anchor
from batteryloop.registry.ledger import chain_bytes, iso
from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.registry.verify import verify


def _ledger(db) -> list[str]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        reg = Registry(s)
        reg.add_organisation(OrganisationIn(name="Lab", roles=["repurposer"]))
        uids = [reg.register(BatteryIn(kind="cell"), actor="Lab").uid for _ in range(3)]
        for uid in uids:
            for n in range(4):
                reg.append(uid, "note", {"n": n, "text": "capacity check"}, actor="Lab")
    return uids


def _rewrite(db, uid: str, seq: int) -> None:  # type: ignore[no-untyped-def]
    """What a forger with database rights does: edit one event and recompute everything after it."""
    with db.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER events_no_update")
        else:
            conn.exec_driver_sql("ALTER TABLE events DISABLE TRIGGER events_append_only")
        bid = conn.execute(text("SELECT id FROM batteries WHERE uid = :u"), {"u": uid}).scalar_one()
        rows = conn.execute(text(
            "SELECT e.id, e.seq, e.type, o.uid, e.occurred_at, e.recorded_at, e.payload, e.prev_hash, "
            "e.signature FROM events e LEFT JOIN organisations o ON o.id = e.actor_id "
            "WHERE e.battery_id = :b ORDER BY e.seq"), {"b": bid}).all()
        prev = None
        for eid, s, etype, actor, occurred, recorded, payload, prev_hash, sig in rows:
            if s < seq:
                continue
            if s == seq:
                payload = orjson.dumps({"n": 99, "text": "capacity check"}).decode()
            prev = bytes(prev_hash) if prev is None else prev
            occurred, recorded = (datetime.fromisoformat(t) if isinstance(t, str) else t
                                  for t in (occurred, recorded))  # raw SQLite rows are text
            digest = sha256(chain_bytes(
                battery=uid, seq=s, event_type=etype, actor=actor, occurred_at=iso(occurred),
                recorded_at=iso(recorded), payload=payload.encode(), prev=prev, signature=sig,
            )).digest()
            conn.execute(text("UPDATE events SET payload = :p, prev_hash = :v, hash = :h WHERE id = :i"),
                         {"p": payload, "v": prev, "h": digest, "i": eid})
            prev = digest
        conn.execute(text("UPDATE batteries SET head_hash = :h WHERE id = :b"), {"h": prev, "b": bid})


def test_consistent_rewrite_passes_verify_but_not_the_anchor(db) -> None:  # type: ignore[no-untyped-def]
    uids = _ledger(db)
    with db.session() as s:
        saved = orjson.loads(orjson.dumps(anchor.take(s)))
    assert len(saved["heads"]) == 3
    _rewrite(db, uids[1], seq=3)
    with db.session() as s:
        assert verify(s).ok  # the chain is self-consistent again: only the anchor can tell
        breaches = anchor.check(s, saved)
    assert len(breaches) == 1
    assert breaches[0].battery == uids[1] and breaches[0].seq == 5 and breaches[0].kind == "edited"


def test_appends_after_the_anchor_are_fine(db) -> None:  # type: ignore[no-untyped-def]
    uids = _ledger(db)
    with db.session() as s:
        saved = anchor.take(s)
    with db.session() as s:
        Registry(s).append(uids[0], "note", {"n": 5}, actor="Lab")
        assert anchor.check(s, saved) == []


def test_an_edited_anchor_is_refused(db) -> None:  # type: ignore[no-untyped-def]
    _ledger(db)
    with db.session() as s:
        saved = anchor.take(s)
        saved["heads"][0][1] = 1
        with pytest.raises(ValidationFailed, match="anchor was edited"):
            anchor.check(s, saved)
