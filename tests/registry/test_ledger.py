"""The hash-chained ledger through the Registry, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import itertools
import tomllib
from importlib.resources import files

import pytest
from registry_support import (
    ZERO_HASH,
    add_battery,
    add_org,
    at,
    count,
    counts,
    event_rows,
    reference_hash,
    walk,
)
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from batteryloop.errors import IllegalTransition, NotFound, ReadOnly, ValidationFailed
from batteryloop.registry import canonical, ledger, signing
from batteryloop.registry.ledger import Draft, chain_bytes
from batteryloop.registry.projection import EMPTY, Projection, apply
from batteryloop.registry.service import Registry
from batteryloop.registry.verify import verify
from batteryloop.store.models import Battery, Event

LIFECYCLE = tomllib.loads((files("batteryloop.registry") / "data" / "lifecycle.toml").read_text("utf-8"))
STATES = LIFECYCLE["states"]


def _setup(db):  # type: ignore[no-untyped-def]
    """Two organisations and two batteries; returns their uids."""
    with db.session() as s:
        reg = Registry(s)
        maker = add_org(reg, "Maker", "manufacturer")
        fleet = add_org(reg, "Fleet", "vehicle_maker")
        a = add_battery(reg, manufacturer="Maker", chemistry="NMC")
        b = add_battery(reg, kind="module", manufacturer="Maker", chemistry="LFP")
        return maker.uid, fleet.uid, a.uid, b.uid


def test_register_append_and_history_link_up(db) -> None:  # type: ignore[no-untyped-def]
    maker, fleet, a, b = _setup(db)
    with db.session() as s:
        reg = Registry(s)
        returned = [
            reg.change_status(a, "in_service", actor="Maker", occurred_at=at(1)),
            reg.append(b, "inspected", {"soh": 0.97}, actor="Maker", occurred_at=at(2)),
            reg.append(a, "inspected", {"soh": 0.93, "note": "cell 7 \"warm\"\n"}, occurred_at=at(3)),
            reg.transfer(a, custody_to="Fleet", actor="Maker", occurred_at=at(4)),
        ]
    with db.session() as s:
        reg = Registry(s)
        history = reg.history(a)
        other = reg.history(b)
        row = reg.battery(a)
        head_seq, head_hash = row.head_seq, row.head_hash
        rows = event_rows(s, a)

    assert [e["seq"] for e in history] == [1, 2, 3, 4]
    assert [e["type"] for e in history] == ["registered", "status-changed", "inspected", "transferred"]
    assert [e["actor"] for e in history] == [maker, maker, None, maker]
    assert history[0]["actor_name"] == "Maker"
    assert history[0]["payload"]["state"] == "produced"
    assert history[0]["payload"]["owner"] == maker
    assert history[0]["payload"]["chemistry"] == "NMC"
    assert history[1]["payload"] == {"from": "produced", "to": "in_service"}
    assert history[2]["payload"] == {"soh": 0.93, "note": "cell 7 \"warm\"\n"}
    assert history[3]["payload"] == {"custody": {"from": maker, "to": fleet}}
    assert [e["occurred_at"] for e in history[1:]] == [
        "2024-03-01T08:01:00.000000Z", "2024-03-01T08:03:00.000000Z", "2024-03-01T08:04:00.000000Z",
    ]

    # the chain: genesis, then each prev is the hash before it
    assert history[0]["prev_hash"] == ZERO_HASH
    for before, after in itertools.pairwise(history):
        assert after["prev_hash"] == before["hash"]
    assert len({e["hash"] for e in history}) == 4
    # what append returned is what was stored
    assert [r.hash.hex() for r in (returned[0], returned[2], returned[3])] == [e["hash"] for e in history[1:]]
    assert [r.seq for r in returned] == [2, 2, 3, 4]
    # the battery's head is the last event
    assert head_seq == 4 and head_hash.hex() == history[-1]["hash"]

    # each stored hash is sha256 of chain_bytes of the stored content, and of the reference JCS
    for e, r in zip(history, rows, strict=True):
        parts = {
            "battery": a, "seq": e["seq"], "event_type": e["type"], "actor": e["actor"],
            "occurred_at": e["occurred_at"], "recorded_at": e["recorded_at"],
            "prev": bytes.fromhex(e["prev_hash"]),
            "signature": bytes.fromhex(e["signature"]) if e["signature"] else None,
        }
        assert r["payload"].encode() == canonical.dumps(e["payload"])  # stored canonical
        assert hashlib.sha256(chain_bytes(payload=r["payload"].encode(), **parts)).hexdigest() == e["hash"]
        assert reference_hash(payload=e["payload"], **parts).hex() == e["hash"]

    # the other battery has its own chain
    assert [e["seq"] for e in other] == [1, 2]
    assert other[0]["prev_hash"] == ZERO_HASH and other[1]["prev_hash"] == other[0]["hash"]
    assert returned[1].hash.hex() == other[1]["hash"]


def test_state_eu_status_and_owner_follow_events(db) -> None:  # type: ignore[no-untyped-def]
    _, _, a, _ = _setup(db)
    path = ["in_service", "maintenance", "in_service", "retired", "collected", "tested", "tested",
            "graded", "reused", "in_service", "retired", "collected", "dismantled"]
    expected_eu = ["original"] * 8 + ["re-used"] * 4 + ["waste"]
    seen = []
    with db.session() as s:
        reg = Registry(s)
        for state in path:
            reg.change_status(a, state)
            battery = reg.battery(a)
            seen.append((battery.state, battery.eu_status))
    assert seen == list(zip(path, expected_eu, strict=True))
    with db.session() as s:
        battery = Registry(s).battery(a)
        assert (battery.head_seq, battery.state, battery.eu_status) == (14, "dismantled", "waste")
        assert verify(s).ok


def test_illegal_transition_names_both_states_and_writes_nothing(db) -> None:  # type: ignore[no-untyped-def]
    _, _, a, _ = _setup(db)
    before = counts(db)
    with pytest.raises(IllegalTransition) as info, db.session() as s:
        Registry(s).change_status(a, "retired")
    assert "'produced'" in info.value.message and "'retired'" in info.value.message
    # the same through a raw status-changed event (the ledger's own check)
    with pytest.raises(IllegalTransition) as info, db.session() as s:
        Registry(s).append(a, "status-changed", {"from": "produced", "to": "graded"})
    assert "'produced'" in info.value.message and "'graded'" in info.value.message
    # 'from' must be the current state
    with pytest.raises(ValidationFailed, match="'in_service'"), db.session() as s:
        Registry(s).append(a, "status-changed", {"from": "in_service", "to": "retired"})
    with pytest.raises(ValidationFailed, match="unknown lifecycle state 'scrapped'"), db.session() as s:
        Registry(s).change_status(a, "scrapped")
    assert counts(db) == before
    with db.session() as s:
        assert Registry(s).battery(a).state == "produced"


@pytest.mark.parametrize("source", sorted(STATES))
def test_every_transition_is_exactly_as_lifecycle_toml_says(source: str) -> None:
    """Read lifecycle.toml independently and try every (source, target) pair on the fold."""
    current = Projection(source, "original", "urn:o", "urn:o")
    allowed = set(STATES[source].get("next", []))
    for target in STATES:
        payload = {"from": source, "to": target}
        if STATES[source].get("read_only"):
            with pytest.raises(ReadOnly):
                apply(current, "status-changed", payload)
        elif target in allowed:
            after = apply(current, "status-changed", payload)
            assert after.state == target
            assert after.eu_status == STATES[target].get("eu_status", "original")
            assert (after.owner, after.responsible) == ("urn:o", "urn:o")
        else:
            with pytest.raises(IllegalTransition) as info:
                apply(current, "status-changed", payload)
            assert f"'{source}'" in info.value.message and f"'{target}'" in info.value.message


@pytest.mark.parametrize("state", ["produced", "reused", "repurposed", "remanufactured"])
def test_a_record_starts_only_in_an_initial_state(state: str) -> None:
    # Art. 77(6): re-use, repurposing and remanufacturing each start a new passport
    assert LIFECYCLE["initial"] == ["produced", "reused", "repurposed", "remanufactured"]
    assert apply(EMPTY, "registered", {"state": state, "owner": "urn:o"}).state == state
    with pytest.raises(IllegalTransition, match="'graded'"):
        apply(EMPTY, "registered", {"state": "graded"})
    with pytest.raises(ValidationFailed, match="must be 'registered'"):
        apply(EMPTY, "inspected", {})


def test_a_batch_that_fails_half_way_writes_nothing(db) -> None:  # type: ignore[no-untyped-def]
    _, _, a, b = _setup(db)
    before = counts(db)
    with db.session() as s:
        heads_before = {bt.uid: (bt.head_seq, bt.head_hash, bt.state) for bt in s.scalars(select(Battery))}
    # one ledger.append call: the third draft is illegal, the first two were fine
    with pytest.raises(IllegalTransition), db.session() as s:
        reg = Registry(s)
        ida, idb = reg.battery(a).id, reg.battery(b).id
        in_session = count(s, Event)
        try:
            ledger.append(s, [
                Draft(ida, "status-changed", {"from": "produced", "to": "in_service"}),
                Draft(idb, "inspected", {"soh": 1}),
                Draft(ida, "status-changed", {"from": "in_service", "to": "graded"}),
            ])
        finally:
            assert count(s, Event) == in_session  # not even inside the transaction
    # a unit of work: three good appends, then a bad one: all of it goes
    with pytest.raises(ReadOnly), db.session() as s:
        reg = Registry(s)
        reg.change_status(b, "waste")
        reg.append(a, "inspected", {"soh": 0.9})
        reg.change_status(b, "recycled")
        assert count(s, Event) == before["events"] + 3
        reg.append(b, "inspected", {"soh": 0.1})
    # a transfer to an organisation nobody registered
    with pytest.raises(NotFound), db.session() as s:
        reg = Registry(s)
        ida = reg.battery(a).id
        ledger.append(s, [
            Draft(ida, "inspected", {}),
            Draft(ida, "transferred", {"custody": {"from": None, "to": "urn:uuid:nobody"}}),
        ])
    assert counts(db) == before
    with db.session() as s:
        assert {bt.uid: (bt.head_seq, bt.head_hash, bt.state) for bt in s.scalars(select(Battery))} == heads_before
        assert verify(s).ok


def test_recycled_record_is_read_only(db) -> None:  # type: ignore[no-untyped-def]
    _, _, a, _ = _setup(db)
    with db.session() as s:
        walk(Registry(s), a, ("waste", "recycled"))
    before = counts(db)
    attempts = [
        lambda reg: reg.append(a, "inspected", {"soh": 0.5}),
        lambda reg: reg.append(a, "status-changed", {"from": "recycled", "to": "collected"}),
        lambda reg: reg.transfer(a, custody_to="Fleet"),
        lambda reg: reg.add_identifier(a, "serial", "SN-1"),
    ]
    for attempt in attempts:
        with pytest.raises(ReadOnly, match="read-only"), db.session() as s:
            attempt(Registry(s))
    with pytest.raises(IllegalTransition, match="'recycled' is final"), db.session() as s:
        Registry(s).change_status(a, "collected")
    assert counts(db) == before
    with db.session() as s:
        battery = Registry(s).battery(a)
        assert (battery.state, battery.eu_status, battery.head_seq) == ("recycled", "waste", 3)


def test_transfers_move_custody_and_responsibility(db) -> None:  # type: ignore[no-untyped-def]
    maker, fleet, a, _ = _setup(db)
    with db.session() as s:
        reg = Registry(s)
        recycler = add_org(reg, "Recycler", "recycler").uid
        ids = {o.uid: o.id for o in reg.organisations()}
        battery = reg.battery(a)
        assert (battery.owner_id, battery.responsible_id) == (ids[maker], ids[maker])
        reg.transfer(a, custody_to="Fleet", actor="Maker")
        battery = reg.battery(a)
        assert (battery.owner_id, battery.responsible_id) == (ids[fleet], ids[maker])
        reg.transfer(a, responsibility_to=recycler, actor="Maker")
        battery = reg.battery(a)
        assert (battery.owner_id, battery.responsible_id) == (ids[fleet], ids[recycler])
        reg.transfer(a, custody_to="Maker", responsibility_to="Fleet", reason="buy-back")
        battery = reg.battery(a)
        assert (battery.owner_id, battery.responsible_id) == (ids[maker], ids[fleet])
        with pytest.raises(ValidationFailed, match="custody"):
            reg.transfer(a)
        with pytest.raises(NotFound):
            reg.transfer(a, custody_to="Nobody Ltd")
    with db.session() as s:
        history = Registry(s).history(a)
        assert [e["payload"] for e in history[1:]] == [
            {"custody": {"from": maker, "to": fleet}},
            {"responsibility": {"from": maker, "to": recycler}},
            {"custody": {"from": fleet, "to": maker}, "responsibility": {"from": recycler, "to": fleet},
             "reason": "buy-back"},
        ]
        assert verify(s).ok


def _flip(hex_signature: str) -> str:
    raw = bytes.fromhex(hex_signature)
    return (raw[:-1] + bytes([raw[-1] ^ 1])).hex()


def test_signed_events(db) -> None:  # type: ignore[no-untyped-def]
    key, other_key = signing.generate(), signing.generate()
    with db.session() as s:
        reg = Registry(s)
        signer = add_org(reg, "Signer", "repurposer", public_key=signing.public_bytes(key)).uid
        add_org(reg, "Keyless", "repurposer")
        a = add_battery(reg, manufacturer="Signer").uid
    payload = {"soh": 0.91, "capacity_ah": 1e17, "tester": "Ω-7"}
    when = at(10)

    def signature(k, *, battery=a, event_type="inspected", actor=signer, occurred=when, body=payload):  # type: ignore[no-untyped-def]
        return signing.sign(k, signing.statement(battery, event_type, actor, ledger.iso(occurred), body)).hex()

    before = counts(db)
    refused = [
        {"signature": signature(other_key)},  # another organisation's key
        {"signature": signature(key, body={**payload, "soh": 0.99})},  # different payload
        {"signature": signature(key, occurred=at(11))},  # different time
        {"signature": signature(key, event_type="tested")},  # different type
        {"signature": signature(key), "actor": "Keyless"},  # actor without a key
        {"signature": signature(key), "actor": None},  # no actor at all
        {"signature": _flip(signature(key))},  # one bit flipped
    ]
    for case in refused:
        kw = {"actor": "Signer", **case}
        with pytest.raises(ValidationFailed, match="signature does not verify"), db.session() as s:
            Registry(s).append(a, "inspected", payload, occurred_at=when, **kw)
    with pytest.raises(ValidationFailed, match="64 bytes"), db.session() as s:
        Registry(s).append(a, "inspected", payload, actor="Signer", occurred_at=when, signature="ab")
    assert counts(db) == before

    with db.session() as s:
        Registry(s).append(a, "inspected", payload, actor="Signer", occurred_at=when,
                           signature=signature(key))
        status_sig = signature(key, event_type="status-changed",
                               body={"from": "produced", "to": "in_service"})
        Registry(s).change_status(a, "in_service", actor="Signer", occurred_at=when,
                                  signature=status_sig)
    with db.session() as s:
        history = Registry(s).history(a)
        assert [e["signature"] for e in history] == [None, signature(key), status_sig]
        assert history[1]["payload"] == payload
        report = verify(s)
        assert report.ok, report.breaches
        assert (report.batteries, report.events) == (1, 3)


@pytest.mark.parametrize("event_type", ["Inspected", "x", "inspected\n", "in spected", "-x", "a" * 49, "é-test"])
def test_event_types_are_checked(db, event_type: str) -> None:  # type: ignore[no-untyped-def]
    _, _, a, _ = _setup(db)
    with pytest.raises(ValidationFailed, match="event type"), db.session() as s:
        Registry(s).append(a, event_type, {})
    with db.session() as s:
        assert Registry(s).battery(a).head_seq == 1


def test_events_are_append_only_in_the_database(db) -> None:  # type: ignore[no-untyped-def]
    _, _, a, _ = _setup(db)
    with db.session() as s:
        Registry(s).append(a, "inspected", {"soh": 0.8})
        original = [(r["id"], r["payload"], r["hash"]) for r in event_rows(s, a)]
    statements = [
        "UPDATE events SET payload = '{}'",
        "UPDATE events SET seq = seq + 10 WHERE seq = 2",
        "DELETE FROM events WHERE seq = 2",
        "DELETE FROM events",
    ]
    for sql in statements:
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(sql))
    with db.session() as s:
        assert [(r["id"], r["payload"], r["hash"]) for r in event_rows(s, a)] == original
        assert verify(s).ok
