"""The audit log of restricted reads: hash-chained, append-only at the database, verifiable."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from batteryloop.accounts.audit import entries, record_read, record_reads, verify_audit
from batteryloop.accounts.viewer import Viewer

RECYCLER = Viewer(tier="legitimate_interest", organisation="urn:uuid:org-1", user="alice",
                  roles=frozenset({"recycler"}))
AUTHORITY = Viewer(tier="authority", organisation="urn:uuid:org-2", user="msa")
B1 = "urn:uuid:00000000-0000-4000-8000-000000000001"
B2 = "urn:uuid:00000000-0000-4000-8000-000000000002"


def _fill(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        assert record_read(s, RECYCLER, B1, ["state_of_health", "dismantling_info"],
                           f"/api/v1/passports/{B1}")
        assert record_read(s, AUTHORITY, B1, ["test_reports"], f"/api/v1/passports/{B1}")
    with db.session() as s:
        assert record_reads(s, RECYCLER, [(B1, ["cycle_count"]), (B2, ["state_of_health"]),
                                          (B2, [])], "/api/v1/passports") == 2


@contextmanager
def _guard_lifted(db):  # type: ignore[no-untyped-def]
    """A connection on which the append-only triggers do not fire (as a database owner could)."""
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
            conn.execute(text("DROP TRIGGER audit_log_no_delete"))
        yield conn


def test_reads_are_chained_and_verify(db) -> None:  # type: ignore[no-untyped-def]
    _fill(db)
    with db.session() as s:
        items, total = entries(s)
        report = verify_audit(s)
        only_b2, n_b2 = entries(s, battery=B2)
    assert total == 4 and [e["seq"] for e in items] == [4, 3, 2, 1]
    first = items[-1]
    assert first["user"] == "alice" and first["organisation"] == "urn:uuid:org-1"
    assert first["tier"] == "legitimate_interest" and first["battery"] == B1
    assert first["attributes"] == ["dismantling_info", "state_of_health"]
    assert first["path"] == f"/api/v1/passports/{B1}" and first["at"].endswith("Z")
    assert n_b2 == 1 and only_b2[0]["attributes"] == ["state_of_health"]
    assert report.ok and report.entries == 4 and report.head == items[0]["hash"]


def test_nothing_is_recorded_for_no_attributes_or_a_rolled_back_read(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        assert record_read(s, RECYCLER, B1, [], "/x") is False

    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.session() as s:
        record_read(s, RECYCLER, B1, ["state_of_health"], "/x")
        raise Boom  # the response failed: its read is not logged either
    with db.session() as s:
        assert entries(s)[1] == 0


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET user_name = 'someone else' WHERE seq = 1",
     "UPDATE audit_log SET attributes = '[]'",
     "DELETE FROM audit_log WHERE seq = 2",
     "DELETE FROM audit_log"],
)
def test_the_database_refuses_update_and_delete(db, statement: str) -> None:  # type: ignore[no-untyped-def]
    _fill(db)
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text(statement))
    with db.session() as s:
        assert verify_audit(s).ok and entries(s)[1] == 4


@pytest.mark.parametrize(
    ("statement", "seq", "kind"),
    [
        ("UPDATE audit_log SET user_name = 'someone else' WHERE seq = 2", 2, "edited"),
        ("UPDATE audit_log SET attributes = '[\"cycle_count\"]' WHERE seq = 1", 1, "edited"),
        ("UPDATE audit_log SET battery = 'urn:uuid:x' WHERE seq = 3", 3, "edited"),
        ("DELETE FROM audit_log WHERE seq = 2", 3, "removed"),
    ],
)
def test_verify_names_a_direct_edit(db, statement: str, seq: int, kind: str) -> None:  # type: ignore[no-untyped-def]
    _fill(db)
    with _guard_lifted(db) as conn:
        assert conn.execute(text(statement)).rowcount == 1
    with db.session() as s:
        report = verify_audit(s)
    assert not report.ok
    assert (report.breaches[0].seq, report.breaches[0].kind) == (seq, kind)


def test_verify_catches_a_rehashed_entry_at_the_next_link(db) -> None:  # type: ignore[no-untyped-def]
    """An editor who also rewrites the edited entry's hash breaks the link of the one after."""
    _fill(db)
    with _guard_lifted(db) as conn:
        conn.execute(text("UPDATE audit_log SET hash = prev_hash WHERE seq = 2"))
    with db.session() as s:
        kinds = {(b.seq, b.kind) for b in verify_audit(s).breaches}
    assert (2, "edited") in kinds and (3, "unlinked") in kinds


def test_concurrent_readers_never_fork_the_chain(db) -> None:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def reader(n: int) -> None:
        try:
            for i in range(5):
                with db.session() as s:
                    record_read(s, RECYCLER, B1, [f"attr_{n}_{i}"], "/concurrent")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with db.session() as s:
        report = verify_audit(s)
    assert report.ok and report.entries == 20
