"""Stored tests: one zstd Parquet file per tester file plus a row and a `tested` event, both or
neither, and the same file twice stores nothing new. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from batteryloop.cycling import read, storage
from batteryloop.errors import Conflict, NotFound
from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.registry.verify import verify
from batteryloop.settings import get_settings
from batteryloop.store.models import CyclerTest, Event

FILES = ["pec/pec.csv", "maccor/xTESLADIAG_000019_CH70.070", "biologic/biol.mpr",
         "arbin/FastCharge_000025_CH8.csv"]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("BATTERYLOOP_DATA_DIR", str(data))
    get_settings.cache_clear()
    yield data
    get_settings.cache_clear()


def _battery(db) -> str:  # type: ignore[no-untyped-def]
    with db.session() as s:
        reg = Registry(s)
        try:
            reg.organisation("Lab")
        except NotFound:
            reg.add_organisation(OrganisationIn(name="Lab", roles=["manufacturer"]))
        return reg.register(BatteryIn(kind="cell", chemistry="NMC"), actor="Lab").uid


def _tested(db, uid: str) -> list[dict]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return [e for e in Registry(s).history(uid) if e["type"] == "tested"]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "tests").rglob("*") if p.is_file()) if root.exists() else []


def _rows(db) -> int:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(CyclerTest)) or 0


def test_store_writes_parquet_row_and_event(db, root: Path, cycler_file) -> None:  # type: ignore[no-untyped-def]
    uid = _battery(db)
    for rel in FILES:
        path = cycler_file(rel)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        df, meta = read(path)
        stored = storage.store(db, df, meta, battery=uid, actor="Lab")
        assert stored.status == "stored" and stored.sha256 == sha and stored.battery == uid

        parquet = root / "tests" / sha[:2] / f"{sha}.parquet"
        assert parquet.is_file() and stored.parquet_path == f"tests/{sha[:2]}/{sha}.parquet"
        assert pq.ParquetFile(parquet).metadata.row_group(0).column(0).compression == "ZSTD"
        back, kv = storage.read_parquet(parquet)
        assert back.equals(df), rel  # identical rows, dtypes included
        assert kv["sha256"] == sha and kv["source_name"] == path.name
        assert kv["tester"] == meta.tester and kv["format"] == meta.file_format
        assert kv["channel"] == meta.channel and kv["cell_id"] == meta.cell_id
        assert kv["normalisations"] == meta.normalisations and kv["rows"] == df.height

    events = _tested(db, uid)
    assert len(events) == len(FILES)
    by_hash = {e["payload"]["sha256"]: e["payload"] for e in events}
    for rel in FILES:
        path = cycler_file(rel)
        payload = by_hash[hashlib.sha256(path.read_bytes()).hexdigest()]
        df, meta = read(path)
        assert payload["rows"] == df.height and payload["tester"] == meta.tester
        assert payload["format"] == meta.file_format
        assert payload["cycles"] == df["cycle_count"].drop_nulls().n_unique()
    with db.session() as s:
        assert verify(s).ok
        assert [t["source_name"] for t in storage.tests_of(s, uid)] == [Path(f).name for f in FILES]


def test_same_file_twice_stores_nothing_new(db, root: Path, cycler_file) -> None:  # type: ignore[no-untyped-def]
    uid = _battery(db)
    df, meta = read(cycler_file("pec/pec.csv"))
    first = storage.store(db, df, meta, battery=uid)
    again = storage.store(db, df, meta, battery=uid)
    assert again.status == "already imported" and again.already_imported
    assert again.id == first.id and again.event_seq is None
    assert len(_tested(db, uid)) == 1 and _rows(db) == 1 and len(_files(root)) == 1


def test_stored_without_battery_is_linked_once_later(db, root: Path, cycler_file) -> None:  # type: ignore[no-untyped-def]
    uid = _battery(db)
    df, meta = read(cycler_file("arbin/FastCharge_000025_CH8.csv"))
    assert storage.store(db, df, meta).battery is None
    assert _tested(db, uid) == []
    linked = storage.store(db, df, meta, battery=uid)
    assert linked.status == "linked" and linked.battery == uid
    assert storage.store(db, df, meta, battery=uid).status == "already imported"
    assert len(_tested(db, uid)) == 1 and _rows(db) == 1 and len(_files(root)) == 1
    other = _battery(db)
    with pytest.raises(Conflict, match="already imported for battery"):
        storage.store(db, df, meta, battery=other)
    assert _tested(db, other) == []


def test_unknown_battery_stores_nothing(db, root: Path, cycler_file) -> None:  # type: ignore[no-untyped-def]
    df, meta = read(cycler_file("pec/pec.csv"))
    with pytest.raises(NotFound):
        storage.store(db, df, meta, battery="urn:uuid:00000000-0000-4000-8000-000000000000")
    assert _rows(db) == 0 and _files(root) == []


def test_database_failure_leaves_no_parquet_file(db, root: Path, cycler_file, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    uid = _battery(db)
    df, meta = read(cycler_file("pec/pec.csv"))

    def broken(*a, **k):  # type: ignore[no-untyped-def]
        raise RuntimeError("ledger down")

    monkeypatch.setattr(Registry, "append", broken)
    with pytest.raises(RuntimeError, match="ledger down"):
        storage.store(db, df, meta, battery=uid)
    assert _files(root) == [] and _rows(db) == 0  # no file, no temporary file, no row


def test_failure_after_the_rename_removes_the_file(db, root: Path, cycler_file, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    uid = _battery(db)
    df, meta = read(cycler_file("pec/pec.csv"))

    def fail_before_commit(*a, **k):  # type: ignore[no-untyped-def]
        raise RuntimeError("commit refused")

    monkeypatch.setattr(storage, "_stored", fail_before_commit)  # runs after the rename
    with pytest.raises(RuntimeError):
        storage.store(db, df, meta, battery=uid)
    assert _files(root) == [] and _rows(db) == 0 and _tested(db, uid) == []


def test_file_failure_leaves_no_row_or_event(db, root: Path, cycler_file, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    uid = _battery(db)
    df, meta = read(cycler_file("pec/pec.csv"))

    def no_rename(src, dst):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "replace", no_rename)
    with pytest.raises(OSError):
        storage.store(db, df, meta, battery=uid)
    monkeypatch.undo()
    assert _files(root) == [] and _rows(db) == 0 and _tested(db, uid) == []
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Event).where(Event.type == "tested")) == 0


def test_find_by_prefix_show_and_load(db, root: Path, cycler_file) -> None:  # type: ignore[no-untyped-def]
    df, meta = read(cycler_file("biologic/biol.mpr"))
    storage.store(db, df, meta)
    with db.session() as s:
        assert storage.find(s, meta.sha256[:10]).sha256 == meta.sha256
        shown = storage.show(s, meta.sha256)
        assert shown["metadata"]["tester"] == "BioLogic" and shown["rows"] == df.height
        loaded, kv = storage.load(s, meta.sha256.upper())
        assert loaded.equals(df) and kv["sha256"] == meta.sha256
        with pytest.raises(NotFound):
            storage.find(s, "ffffffff")
        with pytest.raises(NotFound):
            storage.find(s, "xyz")


def test_bdf_csv_export_reads_back_as_the_same_table(tmp_path: Path, cycler_file) -> None:  # type: ignore[no-untyped-def]
    df, _ = read(cycler_file("maccor/xTESLADIAG_000019_CH70.070"))
    out = tmp_path / "x.bdf.csv"
    storage.write_bdf_csv(df, out)
    header = out.read_text().splitlines()[0].split(",")
    assert {"Test Time / s", "Voltage / V", "Current / A", "Cycle Count / 1"} <= set(header)
    back, meta = read(out)
    assert meta.file_format == "bdf_csv" and back.height == df.height
    for col in ("test_time_second", "voltage_volt", "current_ampere", "charging_capacity_ah",
                "discharging_capacity_ah"):
        assert (back[col] - df[col]).abs().max() < 1e-9, col
    assert back["step_type"].cast(pl.String).to_list() == df["step_type"].cast(pl.String).to_list()


def test_tested_event_carries_the_last_discharge_capacity(db, root: Path, cycler_file) -> None:  # type: ignore[no-untyped-def]
    summary = pytest.importorskip("batteryloop.cycling.summary")
    uid = _battery(db)
    df, meta = read(cycler_file("pec/pec.csv"))
    storage.store(db, df, meta, battery=uid)
    cycles = summary.cycles(df)
    discharged = cycles.filter(pl.col("discharge_capacity_ah") > 0)
    payload = _tested(db, uid)[0]["payload"]
    assert payload["last_discharge_capacity_ah"] == pytest.approx(
        discharged["discharge_capacity_ah"][-1], rel=1e-9)
    kv = storage.read_metadata(storage.parquet_path(meta.sha256))
    assert kv["last_discharge_capacity_ah"] == pytest.approx(payload["last_discharge_capacity_ah"])


def test_two_concurrent_imports_of_one_file_store_it_once(db, root: Path, cycler_file) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    uid = _battery(db)
    df, meta = read(cycler_file("pec/pec.csv"))
    prepared = [storage.prepare(df, meta) for _ in range(2)]  # both past the "stored?" check
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda p: storage.commit(db, p, battery=uid), prepared))
    assert sorted(r.status for r in results) == ["already imported", "stored"]
    assert _rows(db) == 1 and len(_tested(db, uid)) == 1
    assert [f.name for f in _files(root)] == [f"{meta.sha256}.parquet"]  # no temporary left


def test_insert_race_on_postgresql_ends_as_already_imported(db, root: Path, cycler_file, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Both imports pass the "stored?" check before either inserts; the unique hash decides."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    if db.dialect != "postgresql":
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): this race cannot happen there")
    uid = _battery(db)
    df, meta = read(cycler_file("pec/pec.csv"))
    prepared = [storage.prepare(df, meta) for _ in range(2)]
    real, barrier, calls = storage.existing, threading.Barrier(2, timeout=10), []

    def racing(session, sha256):  # type: ignore[no-untyped-def]
        calls.append(sha256)
        if len(calls) <= 2:  # each commit's first look: wait for the other, see nothing stored
            barrier.wait()
            return None
        return real(session, sha256)

    monkeypatch.setattr(storage, "existing", racing)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda p: storage.commit(db, p, battery=uid), prepared))
    assert sorted(r.status for r in results) == ["already imported", "stored"]
    assert len(calls) == 3  # the loser looked again after the unique violation
    assert _rows(db) == 1 and len(_tested(db, uid)) == 1
    assert [f.name for f in _files(root)] == [f"{meta.sha256}.parquet"]
