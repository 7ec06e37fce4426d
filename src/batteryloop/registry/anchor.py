"""Anchors: a digest of every chain's head, kept outside the database.

A chain can be checked against itself, but someone with write access could recompute a whole
battery's chain after an edit. An auditor who keeps an anchor (each battery's head seq and hash at
a moment, with one root hash over them all) can later prove that no event up to that moment was
changed: the event at each anchored seq must still carry the anchored hash.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from batteryloop.errors import ValidationFailed
from batteryloop.registry.ledger import iso
from batteryloop.registry.verify import Breach
from batteryloop.store.models import Battery, Event

FORMAT = "batteryloop-anchor/1"


def _root(heads: list[list[Any]]) -> str:
    digest = hashlib.sha256()
    for uid, seq, head in heads:
        digest.update(f"{uid} {seq} {head}\n".encode())
    return digest.hexdigest()


def take(session: Session) -> dict[str, Any]:
    """The current head of every chain, sorted by battery uid, with their root hash."""
    heads = [
        [uid, seq, head.hex()]
        for uid, seq, head in session.execute(
            select(Battery.uid, Battery.head_seq, Battery.head_hash)
            .where(Battery.head_seq > 0)
            .order_by(Battery.uid)
        )
    ]
    return {"format": FORMAT, "taken_at": iso(datetime.now(UTC)), "root": _root(heads), "heads": heads}


def check(session: Session, anchor: dict[str, Any], *, chunk: int = 2000) -> list[Breach]:
    """Breaches of an anchor: anchored events that changed or vanished."""
    if anchor.get("format") != FORMAT or "heads" not in anchor:
        raise ValidationFailed(f"not a {FORMAT} file", location="anchor")
    heads = anchor["heads"]
    if _root(heads) != anchor.get("root"):
        raise ValidationFailed("the anchor's root hash does not match its heads: the anchor was edited",
                               location="anchor")
    breaches: list[Breach] = []
    for start in range(0, len(heads), chunk):
        part = heads[start : start + chunk]
        ids = dict(session.execute(select(Battery.uid, Battery.id).where(
            Battery.uid.in_([uid for uid, _, _ in part]))).all())
        wanted = [(ids[uid], seq) for uid, seq, _ in part if uid in ids]
        found = {
            (bid, seq): (eid, digest.hex())
            for bid, seq, eid, digest in session.execute(
                select(Event.battery_id, Event.seq, Event.id, Event.hash).where(
                    tuple_(Event.battery_id, Event.seq).in_(wanted)
                )
            )
        }
        for uid, seq, head in part:
            if uid not in ids:
                breaches.append(Breach(uid, "removed", None, seq,
                                       f"battery {uid} was in the anchor but is no longer in the registry"))
                continue
            event = found.get((ids[uid], seq))
            if event is None:
                breaches.append(Breach(uid, "removed", None, seq,
                                       f"battery {uid}: anchored event seq {seq} no longer exists"))
            elif event[1] != head:
                breaches.append(Breach(uid, "edited", event[0], seq,
                                       f"battery {uid}: event #{event[0]} (seq {seq}) differs from the "
                                       "anchor: the chain up to it was rewritten"))
    return breaches
