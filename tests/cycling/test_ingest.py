"""Ingest of files and folders: parallel parsing, each file all or nothing, bad copies rejected
with a reason and leaving nothing behind (no Parquet file, no row, no event). Both databases."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from batteryloop.cycling.ingest import discover, ingest_paths
from batteryloop.errors import NotFound
from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.store.models import CyclerTest, Event

GOOD = ["pec/pec.csv", "maccor/PredictionDiagnostics_000109_tztest.010", "biologic/GCPL-0.mpr",
        "arbin/2017-05-09_test-TC-contact_CH33.csv"]
SIDECAR = "arbin/2017-05-09_test-TC-contact_CH33_Metadata.csv"


@pytest.fixture
def root(data_dir: Path) -> Path:
    return data_dir


@pytest.fixture
def battery(db) -> str:  # type: ignore[no-untyped-def]
    with db.session() as s:
        reg = Registry(s)
        reg.add_organisation(OrganisationIn(name="Lab", roles=["manufacturer"]))
        return reg.register(BatteryIn(kind="cell"), actor="Lab").uid


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _corrupt(folder: Path, cycler_file) -> list[tuple[Path, str]]:  # type: ignore[no-untyped-def]
    """Broken copies of real files, each with what its rejection must say."""
    folder.mkdir(parents=True, exist_ok=True)
    mpr = cycler_file("biologic/biol.mpr").read_bytes()
    nda = cycler_file("neware/filetype14-0.ndax").read_bytes()
    unknown = "not a recognised battery-tester file"
    cases = [
        (folder / "biol_truncated.mpr", mpr[: len(mpr) // 2], "cut short"),
        (folder / "neware_truncated.ndax", nda[: len(nda) // 2], "not a zip file"),
        (folder / "notes.mpr", b"Cell notes\nformation done 2024-03-01, OCV 3.41 V\n" * 20, unknown),
        (folder / "garbage.res", os.urandom(20_000), unknown),
    ]
    for path, data, _ in cases:
        path.write_bytes(data)
    return [(path, reason) for path, _, reason in cases]


def _state(db, root: Path) -> tuple[set[str], set[str], list[Path]]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        rows = set(s.scalars(select(CyclerTest.sha256)))
        payloads = list(s.scalars(select(Event.payload).where(Event.type == "tested")))
    import orjson

    events = {orjson.loads(p)["sha256"] for p in payloads}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".sqlite") \
        if root.exists() else []
    return rows, events, files


def test_folder_ingest_in_parallel_stores_good_and_rejects_bad(  # type: ignore[no-untyped-def]
    db, root: Path, battery: str, cycler_file, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    (folder / "sub").mkdir(parents=True)
    good = []
    for i, rel in enumerate(GOOD):
        dst = (folder / "sub" if i % 2 else folder) / Path(rel).name
        shutil.copy(cycler_file(rel), dst)
        good.append(dst)
    shutil.copy(cycler_file(SIDECAR), good[-1].parent / Path(SIDECAR).name)  # beside its data
    bad = _corrupt(folder / "bad", cycler_file)

    report = ingest_paths([folder], battery=battery, workers=2, db=db, actor="Lab")

    assert not report.ok
    by_path = {Path(r.path).name: r for r in report.results}
    assert by_path[Path(SIDECAR).name].status == "skipped"
    for path in good:
        r = by_path[path.name]
        assert r.status == "stored", (r.path, r.message)
        assert r.sha256 == _sha(path) and r.battery == battery and r.rows and r.rows > 0
    for path, reason in bad:
        r = by_path[path.name]
        assert r.status == "rejected", r
        assert path.name in r.message and reason in r.message, r.message
    assert len(report.rejected) == 4

    rows, events, files = _state(db, root)
    expected = {_sha(p) for p in good}
    assert rows == expected and events == expected  # nothing for any rejected file
    assert {f.stem for f in files} == expected and all(f.suffix == ".parquet" for f in files)

    # again: nothing new, and the bad files are still rejected
    again = ingest_paths([folder], battery=battery, workers=1, db=db)
    assert {r.status for r in again.results if Path(r.path).parent != folder / "bad"} == {
        "already imported", "skipped"}
    assert len(again.rejected) == 4
    assert _state(db, root) == (rows, events, files)
    with db.session() as s:
        tested = [e for e in Registry(s).history(battery) if e["type"] == "tested"]
    assert len(tested) == len(good)


def test_same_content_twice_in_one_run_is_stored_once(db, root: Path, cycler_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a, b = tmp_path / "a.csv", tmp_path / "copy_of_a.csv"
    shutil.copy(cycler_file("pec/pec.csv"), a)
    shutil.copy(a, b)
    report = ingest_paths([a, b], workers=1, db=db)
    assert [r.status for r in report.results] == ["stored", "already imported"]
    assert "same content as" in report.results[1].message
    rows, events, files = _state(db, root)
    assert len(rows) == 1 and events == set() and len(files) == 1  # no battery: no event


def test_lenient_stores_a_file_cut_mid_line_with_a_warning(db, root: Path, cycler_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    raw = cycler_file("pec/pec.csv").read_bytes()
    cut = tmp_path / "pec_cut.csv"
    cut.write_bytes(raw[: len(raw) // 2])
    strict = ingest_paths([cut], workers=1, db=db)
    assert strict.results[0].status == "rejected" and "cut short" in strict.results[0].message
    lenient = ingest_paths([cut], workers=1, db=db, strict=False)
    r = lenient.results[0]
    assert r.status == "stored" and any("truncated_file" in w for w in r.warnings)


def test_missing_path_and_unknown_battery(db, root: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = ingest_paths([tmp_path / "nope.mpr"], workers=1, db=db)
    assert report.results[0].status == "rejected" and "no such file" in report.results[0].message
    with pytest.raises(NotFound, match="no battery"):
        ingest_paths([tmp_path], battery="NOPE", db=db)


def test_discover_skips_companions_only_in_folders(tmp_path: Path) -> None:
    for name in ("X.csv", "X_Metadata.csv", "Y.mpr", "Y.mpl", "Z.mpl", ".hidden.csv"):
        (tmp_path / name).write_text("x")
    files, skipped = discover([tmp_path])
    assert sorted(f.name for f in files) == ["X.csv", "Y.mpr", "Z.mpl"]
    assert sorted(Path(s.path).name for s in skipped) == ["X_Metadata.csv", "Y.mpl"]
    files, skipped = discover([tmp_path / "X_Metadata.csv", tmp_path / "X.csv", tmp_path])
    assert [f.name for f in files][:2] == ["X_Metadata.csv", "X.csv"]  # named: always tried
