"""Several OS processes append to the same battery at once: no event lost, no fork, chain verifies."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
import time
from collections import Counter

import pytest
from shared_data import need
from registry_support import ZERO_HASH, add_battery, add_org

from batteryloop.registry.service import Registry
from batteryloop.registry.verify import verify
from batteryloop.store import Database

PROCESSES = 4
EVENTS = 50  # per process, one transaction each


def _writer(url: str, battery: str, worker: int, start, results) -> None:  # type: ignore[no-untyped-def]
    """One process: its own engine, EVENTS single-event transactions; reports when it wrote."""
    from batteryloop.store import connect

    db = connect(url, migrate=False)
    try:
        start.wait(timeout=60)  # all processes begin together
        began = time.time()
        for i in range(EVENTS):
            with db.session() as s:
                Registry(s).append(battery, "measured", {"worker": worker, "i": i})
        results.put(("span", worker, began, time.time()))
    except BaseException as exc:
        results.put(("error", worker, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        db.dispose()


def _run(db: Database, url: str) -> None:
    with db.session() as s:
        reg = Registry(s)
        add_org(reg, "Maker", "manufacturer")
        battery = add_battery(reg, manufacturer="Maker").uid
        other = add_battery(reg, manufacturer="Maker").uid

    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, battery, w, start, results)) for w in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
    reports = []
    for _ in procs:  # each writer reports once, unless it died without a word
        try:
            reports.append(results.get(timeout=5))
        except queue.Empty:
            break
    assert not alive, "writers hung"
    assert [p.exitcode for p in procs] == [0] * PROCESSES, reports
    spans = {r[1]: r[2:] for r in reports if r[0] == "span"}
    assert sorted(spans) == list(range(PROCESSES))
    # every writer was at work while every other was: they contended for the same chain
    assert max(began for began, _ in spans.values()) < min(ended for _, ended in spans.values())

    with db.session() as s:
        reg = Registry(s)
        history = reg.history(battery)
        row = reg.battery(battery)
        total = PROCESSES * EVENTS + 1
        assert len(history) == total
        assert [e["seq"] for e in history] == list(range(1, total + 1))
        # one chain, no fork: every event links to the one before it, hashes all differ
        assert history[0]["prev_hash"] == ZERO_HASH
        assert all(after["prev_hash"] == before["hash"] for before, after in itertools.pairwise(history))
        assert len({e["hash"] for e in history}) == total
        assert (row.head_seq, row.head_hash.hex()) == (total, history[-1]["hash"])
        # every process's events, each once, in the order that process wrote them
        measured = [e["payload"] for e in history[1:]]
        assert Counter(p["worker"] for p in measured) == {w: EVENTS for w in range(PROCESSES)}
        for w in range(PROCESSES):
            assert [p["i"] for p in measured if p["worker"] == w] == list(range(EVENTS))
        if db.dialect == "postgresql":  # row locks queue waiters, so the writers interleave
            switches = sum(a["worker"] != b["worker"] for a, b in itertools.pairwise(measured))
            assert switches >= PROCESSES
        assert [e["seq"] for e in reg.history(other)] == [1]
        report = verify(s)
        assert report.ok, report.breaches
        assert (report.batteries, report.events) == (2, total + 1)


@pytest.fixture
def postgres_required() -> None:
    if not os.environ.get("BATTERYLOOP_TEST_POSTGRES_URL"):
        need("BATTERYLOOP_TEST_POSTGRES_URL is not set")


@pytest.mark.postgres
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_concurrent_appends_postgresql(postgres_required: None, db: Database) -> None:
    assert db.dialect == "postgresql"
    _run(db, db.engine.url.render_as_string(hide_password=False))


def test_concurrent_appends_sqlite_file(sqlite_db: Database) -> None:
    assert sqlite_db.dialect == "sqlite"
    _run(sqlite_db, sqlite_db.engine.url.render_as_string(hide_password=False))
