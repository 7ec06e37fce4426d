"""``--engine dask``: parse and summarise many tester files on a Dask cluster.

Each file is one task. A worker reads, validates and summarises its file, writes the test's Parquet
file under a temporary name (as the local engine does) and its partitions of two Hive-partitioned
data sets, also under temporary names:

* ``<data_dir>/dataset/tester=<T>/format=<F>/sha256=<H>/part-0.parquet``: the canonical rows, one
  partition per file;
* ``<data_dir>/dataset_cycles/tester=<T>/format=<F>/sha256=<H>/part-0.parquet``: the per-cycle
  summary of the same file (once ``batteryloop.cycling.summary`` is there).

Only small descriptions travel back. This process then commits each file in its own transaction
(row, ``tested`` event, rename of the test file) and only then moves the data-set partitions into
place, so both data sets hold exactly the files that are stored; a rejected file leaves nothing.

The cluster is the one at ``address`` or ``$BATTERYLOOP_DASK_SCHEDULER`` (e.g.
``tcp://10.0.0.5:8786``), else a ``LocalCluster`` started for the run. Workers must see the data
directory at the same path as this process (one machine, or a shared file system).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from batteryloop.cycling import storage
from batteryloop.cycling.ingest import (
    ALREADY,
    LINKED,
    STORED,
    FileResult,
    IngestReport,
    Outcome,
    Rejected,
    check_battery,
    discover,
    finish,
    parse,
    tidy,
    warnings_of,
)
from batteryloop.store import Database

SCHEDULER_ENV = "BATTERYLOOP_DASK_SCHEDULER"
SAMPLES, CYCLES = "dataset", "dataset_cycles"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def dataset_dirs(root: Path | None = None) -> tuple[Path, Path]:
    """The rows data set and its sibling per-cycle data set."""
    base = storage.data_dir(root)
    return base / SAMPLES, base / CYCLES


def partition(base: Path, tester: str, fmt: str, sha256: str) -> Path:
    """The one file of a tester file's partition (Hive style: key=value folders)."""
    def safe(v: str) -> str:
        return _UNSAFE.sub("_", v) or "unknown"

    return (base / f"tester={safe(tester)}" / f"format={safe(fmt)}" / f"sha256={sha256}"
            / "part-0.parquet")


def scan(root: Path | None = None, *, cycles: bool = False) -> pl.LazyFrame:
    """The data set (or its per-cycle sibling) as one lazy frame with tester, format, sha256."""
    base = dataset_dirs(root)[1 if cycles else 0]
    return pl.scan_parquet(base / "**" / "*.parquet", hive_partitioning=True,
                           hive_schema={"tester": pl.String, "format": pl.String,
                                        "sha256": pl.String})


@dataclass
class DaskOutcome(Outcome):
    """A worker's outcome plus the data-set partitions it wrote under temporary names."""

    moves: list[tuple[str, str]] = field(default_factory=list)  # (temporary, final)


def _write_tmp(df: pl.DataFrame, final: Path, moves: list[tuple[str, str]]) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{time.time_ns()}.tmp")
    df.write_parquet(tmp, compression="zstd")
    moves.append((str(tmp), str(final)))


def task(path: str, root: str, strict: bool = True) -> DaskOutcome:
    """One file on a Dask worker (never raises: a rejection is part of the answer)."""
    started = time.perf_counter()
    moves: list[tuple[str, str]] = []
    try:
        df, meta, summary = parse(path, strict=strict)
        prepared = storage.prepare(df, meta, root=Path(root), summary=summary)
        samples, cycles = dataset_dirs(Path(root))
        _write_tmp(df, partition(samples, meta.tester, meta.file_format, meta.sha256), moves)
        if summary is not None:
            _write_tmp(summary, partition(cycles, meta.tester, meta.file_format, meta.sha256),
                       moves)
        return DaskOutcome(path, prepared=prepared, warnings=warnings_of(meta),
                           seconds=time.perf_counter() - started, moves=moves)
    except Exception as exc:  # noqa: BLE001 - Rejected or anything else: this file only
        for tmp, _ in moves:
            Path(tmp).unlink(missing_ok=True)
        message = str(exc) if isinstance(exc, Rejected) else f"{path}: {type(exc).__name__}: {exc}"
        return DaskOutcome(path, message=tidy(message), seconds=time.perf_counter() - started)


def _place(outcome: DaskOutcome, result: FileResult) -> None:
    """Move the partitions into place if the file is stored, else drop them."""
    keep = result.status in (STORED, LINKED, ALREADY)
    for tmp, final in outcome.moves:
        if keep:
            os.replace(tmp, final)
        else:
            Path(tmp).unlink(missing_ok=True)


def client_for(address: str | None = None, *, workers: int | None = None,
               processes: bool = True) -> tuple[Any, Any]:
    """(client, cluster): the scheduler at ``address``/$BATTERYLOOP_DASK_SCHEDULER, else local.

    ``cluster`` is the LocalCluster started here (close it after the client), or None.
    """
    from dask.distributed import Client, LocalCluster

    address = address or os.environ.get(SCHEDULER_ENV) or None
    if address:
        return Client(address), None
    n = workers or max(1, min(os.cpu_count() or 1, 4))
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                           dashboard_address=None)
    return Client(cluster), cluster


def ingest_dask(
    paths: Iterable[str | Path], *, battery: str | None = None, db: Database | None = None,
    actor: str | None = None, root: Path | None = None, strict: bool = True,
    workers: int | None = None, address: str | None = None, client: Any = None,
    processes: bool = True, on_start: Callable[[int], None] | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> IngestReport:
    """Ingest files and folders on a Dask cluster (see the module docstring).

    Pass ``client`` to use a cluster you manage; otherwise one is found or started (``workers``
    processes, or threads with ``processes=False``) and closed at the end.
    """
    from dask.distributed import as_completed

    started = time.perf_counter()
    own_db = db is None
    if db is None:
        from batteryloop.settings import get_settings
        from batteryloop.store import connect

        db = connect(get_settings().resolved_database_url)
    cluster = None
    own_client = client is None
    try:
        root = Path(storage.data_dir(root)).resolve()
        check_battery(db, battery)
        files, early = discover(paths)
        if on_start:
            on_start(len(files))
        results: dict[Path, FileResult] = {}
        if files:
            if client is None:
                client, cluster = client_for(address, workers=workers, processes=processes)
            by_key = {}
            futures = client.map(task, [str(f) for f in files], root=str(root), strict=strict,
                                 pure=False)
            for f, fut in zip(files, futures, strict=True):
                by_key[fut.key] = f
            for fut in as_completed(futures):
                f = by_key[fut.key]
                try:
                    outcome: DaskOutcome = fut.result()
                except Exception as exc:  # noqa: BLE001 - a lost worker, a cancelled task
                    outcome = DaskOutcome(str(f), message=f"{f}: task failed "
                                          f"({type(exc).__name__}: {exc})")
                result = finish(db, outcome, battery=battery, actor=actor, root=root)
                _place(outcome, result)
                results[f] = result
                if on_file:
                    on_file(result)
                fut.release()
        samples, _ = dataset_dirs(root)
        return IngestReport(results=early + [results[f] for f in files], engine="dask",
                            dataset=str(samples), seconds=time.perf_counter() - started)
    finally:
        if own_client and client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        if own_db:
            db.dispose()
