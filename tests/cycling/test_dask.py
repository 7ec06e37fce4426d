"""`--engine dask`: many files on a LocalCluster (two small workers) into a partitioned data set
whose rows are exactly the files' rows, one partition per file; bad files leave nothing."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from batteryloop.cycling import read, storage
from batteryloop.cycling.engine_dask import dataset_dirs, ingest_dask, partition, scan
from batteryloop.settings import get_settings

distributed = pytest.importorskip("dask.distributed")

FILES = ["pec/pec.csv", "maccor/xTESLADIAG_000019_CH70.070", "biologic/biol.mpr",
         "arbin/20160805_test001_45_cc_01.res", "neware/neware_uio.csv",
         "novonix/test_Nova_Form-CH01-01_short.csv"]


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    data = tmp_path / "data"
    monkeypatch.setenv("BATTERYLOOP_DATA_DIR", str(data))
    get_settings.cache_clear()
    yield data
    get_settings.cache_clear()


def test_dask_run_builds_a_dataset_with_the_files_rows(  # type: ignore[no-untyped-def]
    sqlite_db, root: Path, client, cycler_file, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    expected: dict[str, int] = {}
    for rel in FILES:
        src = cycler_file(rel)
        shutil.copy(src, folder / src.name)
        expected[hashlib.sha256(src.read_bytes()).hexdigest()] = read(src)[0].height
    (folder / "garbage.mpr").write_bytes(b"\x00\x01 not a tester file" * 500)

    report = ingest_dask([folder], db=sqlite_db, client=client)

    assert report.engine == "dask" and report.dataset == str(root / "dataset")
    assert len(report.stored) == len(FILES) and len(report.rejected) == 1
    assert "garbage.mpr" in report.rejected[0].message

    counts = scan().group_by("sha256").agg(pl.len().alias("n")).collect()
    assert dict(zip(counts["sha256"], counts["n"], strict=True)) == expected
    # one partition (folder) per file, under tester= and format= folders
    samples, cycles = dataset_dirs()
    parts = sorted(samples.rglob("*.parquet"))
    assert len(parts) == len(FILES)
    for r in report.stored:
        assert partition(samples, r.tester, r.format, r.sha256).is_file()  # type: ignore[arg-type]
        stored, _ = storage.read_parquet(storage.parquet_path(r.sha256))  # type: ignore[arg-type]
        assert stored.height == expected[r.sha256]  # type: ignore[index]
    assert not list(root.rglob("*.tmp"))
    if importlib.util.find_spec("batteryloop.cycling.summary") is not None:
        # the per-cycle sibling data set: one partition per file as well
        assert len(list(cycles.rglob("*.parquet"))) == len(FILES)
        assert scan(cycles=True).select(pl.col("sha256").n_unique()).collect().item() == len(FILES)

    again = ingest_dask([folder], db=sqlite_db, client=client)
    assert {r.status for r in again.results} == {"already imported", "rejected"}
    assert scan().select(pl.len()).collect().item() == sum(expected.values())


def test_scheduler_address_from_the_environment(  # type: ignore[no-untyped-def]
    sqlite_db, root: Path, client, cycler_file, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATTERYLOOP_DASK_SCHEDULER", client.scheduler.address)
    report = ingest_dask([cycler_file("pec/pec.csv")], db=sqlite_db)
    assert [r.status for r in report.results] == ["stored"]
    assert client.status == "running"  # our own client was closed, the cluster left alone
    assert scan().select(pl.len()).collect().item() == report.results[0].rows
