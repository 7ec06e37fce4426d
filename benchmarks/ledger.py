"""Ledger speed: append, look-up and verify at a million events, on SQLite and PostgreSQL.

Appends N events over B batteries (random order, batches of one transaction each) through the real
append path (locks, lifecycle fold, RFC 8785 canonical JSON, SHA-256 chain, head update), and in the
same run a plain INSERT of the same rows, without hashing or locking, into a twin table with the
same columns and indexes: once through the driver's executemany (the floor, and the ledger's own
insert mechanism) and once through SQLAlchemy Core (how ordinary rows are written). Prints events/s for both and their ratio; then the p50/p99 time to look up
one battery with its whole history; then `verify` over the whole ledger in events/s.

    .venv/bin/python benchmarks/ledger.py                      # 1,000,000 events, 100,000 batteries
    .venv/bin/python benchmarks/ledger.py --events 100000 --batteries 10000 --backend sqlite
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import (
    Column,
    Index,
    MetaData,
    Table,
    UniqueConstraint,
    create_engine,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url

from batteryloop.registry import canonical
from batteryloop.registry.ledger import EVENT_COLUMNS, Draft, append, iso
from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.registry.verify import verify
from batteryloop.store import Database, bulk, connect
from batteryloop.store.models import Battery, Event

BATCH = 10_000
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/batteryloop_bench"


def _payload(rng: random.Random, i: int) -> dict:
    return {
        "test": "capacity",
        "capacity_ah": round(rng.uniform(40.0, 60.0), 3),
        "temperature_c": 25,
        "file_sha256": hashlib.sha256(i.to_bytes(8, "little")).hexdigest(),
    }


def _fresh(backend: str, workdir: Path) -> Database:
    if backend == "sqlite":
        return connect(f"sqlite:///{workdir / 'bench.sqlite'}")
    url = make_url(os.environ.get("BATTERYLOOP_BENCH_POSTGRES_URL", DEFAULT_PG))
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()
    return connect(url.render_as_string(hide_password=False))


def _twin(db: Database) -> Table:
    """events_plain: the events table's columns, keys and indexes, without triggers or hashing."""
    meta = MetaData()
    twin = Table(
        "events_plain", meta,
        *[Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
          for c in Event.__table__.columns],
        UniqueConstraint("battery_id", "seq"),
    )
    Index("ix_events_plain_actor", twin.c.actor_id)
    meta.create_all(db.engine)
    return twin


def run(backend: str, n_events: int, n_batteries: int, lookups: int) -> dict[str, float]:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        db = _fresh(backend, Path(tmp))
        with db.session() as s:
            reg = Registry(s)
            maker = reg.add_organisation(OrganisationIn(name="Maker", roles=["manufacturer"]))
            tester = reg.add_organisation(OrganisationIn(name="Tester", roles=["repurposer"]))
            maker_uid, tester_id = maker.uid, tester.id
        t0 = time.perf_counter()
        ids: list[int] = []
        for start in range(0, n_batteries, BATCH):
            with db.session() as s:
                made = Registry(s).register_many(
                    [BatteryIn(kind="cell", chemistry="NMC811", manufacturer=maker_uid,
                               rated_capacity_ah=50.0)
                     for _ in range(min(BATCH, n_batteries - start))],
                    actor=maker_uid,
                )
                ids.extend(b.id for b in made)
        register_s = time.perf_counter() - t0

        targets = [rng.choice(ids) for _ in range(n_events)]
        payloads = [_payload(rng, i) for i in range(n_events)]
        base = datetime(2026, 1, 1, tzinfo=UTC)
        t0 = time.perf_counter()
        for start in range(0, n_events, BATCH):
            with db.session() as s:
                append(s, [
                    Draft(targets[i], "tested", payloads[i], tester_id, base + timedelta(seconds=i))
                    for i in range(start, min(start + BATCH, n_events))
                ])
        append_s = time.perf_counter() - t0

        twin = _twin(db)
        seq: dict[int, int] = {}
        rows = []
        zero = bytes(32)
        now = datetime.now(UTC)
        with db.engine.connect() as conn:
            as_time = bulk.time_param(conn)
        for i in range(n_events):
            seq[targets[i]] = seq.get(targets[i], 1) + 1
            rows.append((
                targets[i], seq[targets[i]], "tested", tester_id,
                as_time(iso(base + timedelta(seconds=i))), as_time(iso(now)),
                canonical.dumps(payloads[i]).decode(), zero, zero, None,
            ))
        t0 = time.perf_counter()
        for start in range(0, n_events, BATCH):
            # the same driver-level executemany the ledger uses, minus hashing, locks and heads
            with db.engine.begin() as conn:
                bulk.insert_many(conn, twin.name, EVENT_COLUMNS, rows[start:start + BATCH])
        plain_s = time.perf_counter() - t0
        # and through SQLAlchemy Core, the way the platform writes ordinary rows
        with db.engine.begin() as conn:
            conn.exec_driver_sql(f"DELETE FROM {twin.name}")
        columns = list(EVENT_COLUMNS)
        dicts = [dict(zip(columns, r, strict=True)) for r in rows]
        for d, i in zip(dicts, range(n_events), strict=True):
            d["occurred_at"], d["recorded_at"] = base + timedelta(seconds=i), now
        t0 = time.perf_counter()
        for start in range(0, n_events, BATCH):
            with db.engine.begin() as conn:
                conn.execute(insert(twin), dicts[start:start + BATCH])
        core_s = time.perf_counter() - t0
        del rows, dicts

        # refresh the planner's statistics after the bulk load, as autovacuum would on a
        # production server (it is off on this test server)
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        sample = rng.sample(ids, min(lookups, len(ids)))
        times = []
        with db.session() as s:
            uids = dict(s.execute(select(Battery.id, Battery.uid).where(Battery.id.in_(sample))).all())
        for bid in sample:
            with db.session() as s:
                t = time.perf_counter()
                reg = Registry(s)
                reg.describe(uids[bid])
                reg.history(uids[bid])
                times.append(time.perf_counter() - t)
        times.sort()
        with db.session() as s:
            report = verify(s)
        assert report.ok, report.breaches[:3]
        db.dispose()
    total_events = n_events + n_batteries
    return {
        "register_batteries_per_s": n_batteries / register_s,
        "append_events_per_s": n_events / append_s,
        "plain_insert_rows_per_s": n_events / plain_s,
        "ratio": plain_s / append_s,
        "core_insert_rows_per_s": n_events / core_s,
        "core_ratio": core_s / append_s,
        "lookup_p50_ms": statistics.median(times) * 1e3,
        "lookup_p99_ms": times[int(0.99 * (len(times) - 1))] * 1e3,
        "verify_events_per_s": report.events / report.seconds,
        "verified_events": float(report.events),
        "ledger_events": float(total_events),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batteries", type=int, default=100_000)
    ap.add_argument("--lookups", type=int, default=2_000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = ap.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"ledger benchmark: {args.events:,} events over {args.batteries:,} batteries, "
          f"batches of {BATCH:,}, {os.cpu_count()} CPUs")
    for backend in backends:
        r = run(backend, args.events, args.batteries, args.lookups)
        print(f"\n[{backend}]")
        print(f"  register           {r['register_batteries_per_s']:>12,.0f} batteries/s")
        print(f"  append (chained)   {r['append_events_per_s']:>12,.0f} events/s")
        print(f"  plain INSERT       {r['plain_insert_rows_per_s']:>12,.0f} rows/s")
        print(f"  ratio chained/plain {r['ratio']:>11.2f}   (aim >= 0.5)")
        print(f"  SQLAlchemy Core INSERT {r['core_insert_rows_per_s']:>9,.0f} rows/s")
        print(f"  ratio chained/Core  {r['core_ratio']:>11.2f}")
        print(f"  look-up + history  p50 {r['lookup_p50_ms']:.2f} ms, p99 {r['lookup_p99_ms']:.2f} ms"
              f"   at {int(r['ledger_events']):,} events")
        print(f"  verify             {r['verify_events_per_s']:>12,.0f} events/s "
              f"({int(r['verified_events']):,} events)")


if __name__ == "__main__":
    main()
