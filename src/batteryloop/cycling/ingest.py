"""Ingest tester files and folders: parse in parallel, store each file all or nothing.

Parsing is CPU-bound, so files are parsed in worker processes (``concurrent.futures``, started
with ``spawn``: polars' thread pool does not survive ``fork``). A worker reads, validates and
summarises one file and writes its Parquet file under a temporary name; this process then commits
each file in its own transaction (:func:`batteryloop.cycling.storage.commit`), so one bad file
never blocks or half-writes another.

A file is rejected, with the reason, when no reader recognises it, when it cannot be parsed, when
validation finds an error, or (``strict``, the default) when its last line was cut mid-write:
storing half of a file that is still being written would later give a second test for the same
run. Files already stored (same SHA-256) are reported as "already imported" without parsing.

Folders are walked recursively. Companion files that the readers pick up by themselves (an Arbin
``X_Metadata.csv`` next to ``X.csv``, a BioLogic ``X.mpl`` next to ``X.mpr``/``X.csv``) and hidden
files are skipped there; named explicitly, every file is tried.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from batteryloop.cycling import storage
from batteryloop.cycling.schema import CyclerMetadata
from batteryloop.errors import BatteryloopError
from batteryloop.store import Database

#: Statuses of a file in a report; only "rejected" fails an ingest.
STORED, LINKED, ALREADY, REJECTED, SKIPPED = (
    "stored", "linked", "already imported", "rejected", "skipped")


@dataclass
class FileResult:
    """What happened to one file."""

    path: str
    status: str
    sha256: str | None = None
    tester: str | None = None
    format: str | None = None
    rows: int | None = None
    cycles: int | None = None
    battery: str | None = None
    event_seq: int | None = None
    message: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float | None = None


@dataclass
class IngestReport:
    results: list[FileResult] = field(default_factory=list)
    engine: str = "local"
    dataset: str | None = None
    seconds: float = 0.0

    def with_status(self, *status: str) -> list[FileResult]:
        return [r for r in self.results if r.status in status]

    @property
    def stored(self) -> list[FileResult]:
        return self.with_status(STORED, LINKED)

    @property
    def rejected(self) -> list[FileResult]:
        return self.with_status(REJECTED)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in (STORED, LINKED, ALREADY, REJECTED, SKIPPED)}
        for r in self.results:
            out[r.status] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "engine": self.engine, "dataset": self.dataset,
                "seconds": round(self.seconds, 3), "counts": self.counts(),
                "files": [asdict(r) for r in self.results]}


# --- finding the files ---------------------------------------------------------------------------
def _companion_of(path: Path, names: set[str]) -> str | None:
    """The data file that ``path`` belongs to, when it is a sidecar the readers load themselves."""
    low = path.name.lower()
    stem = None
    if low.endswith("_metadata.csv"):
        stem = path.name[: -len("_metadata.csv")]
    elif path.suffix.lower() == ".mpl":
        stem = path.stem
    if stem is None:
        return None
    for name in sorted(names):
        if name != path.name and Path(name).stem == stem:
            return name
    return None


def discover(paths: Iterable[str | Path]) -> tuple[list[Path], list[FileResult]]:
    """Files to ingest (folders walked recursively, duplicates dropped), and the results already
    known: companions skipped, paths that do not exist rejected."""
    files: list[Path] = []
    skipped: list[FileResult] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            files.append(p)

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for folder, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                visible = {n for n in names if not n.startswith(".")}
                for name in sorted(visible):
                    f = Path(folder) / name
                    owner = _companion_of(f, visible)
                    if owner:
                        skipped.append(FileResult(str(f), SKIPPED,
                                                  message=f"companion file of {owner}"))
                    elif f.is_file():
                        add(f)
        elif p.is_file():
            add(p)
        else:
            skipped.append(FileResult(str(p), REJECTED, message=f"{p}: no such file or folder"))
    return files, skipped


# --- one file (runs in a worker) -----------------------------------------------------------------
class Rejected(Exception):
    """A file that will not be stored; the message says why and names the file."""


@dataclass
class Outcome:
    """A worker's answer for one file: a prepared (temporary) Parquet file, or a rejection."""

    path: str
    prepared: storage.Prepared | None = None
    message: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def tidy(message: str, max_lines: int = 4) -> str:
    """One reason, not a page: repeated lines of a tool's output collapsed, long output cut."""
    lines = list(dict.fromkeys(line.rstrip() for line in message.splitlines() if line.strip()))
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], f"... ({len(lines) - max_lines} more line(s))"]
    return "\n".join(lines)


def parse(path: str | Path, *, strict: bool = True
          ) -> tuple[pl.DataFrame, CyclerMetadata, pl.DataFrame | None]:
    """Read, validate and summarise one file; :class:`Rejected` with a clear message if unfit."""
    from batteryloop.cycling import read

    try:
        df, meta = read(path)
    except BatteryloopError as exc:
        raise Rejected(exc.message) from None
    except Exception as exc:  # noqa: BLE001 - a reader tripping on odd bytes is still a bad file
        raise Rejected(f"{path}: could not be parsed ({type(exc).__name__}: {exc})") from None
    errors = [f for f in meta.findings if getattr(f, "severity", None) == "error"]
    if errors:
        first = errors[0]
        where = f", row {first.row}" if first.row is not None else ""
        more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        raise Rejected(f"{path}{where}: {first.code}: {first.message}{more}")
    if strict and meta.truncated_at_row is not None:
        raise Rejected(f"{path}: the file is cut short (its last line, line "
                       f"{meta.truncated_at_row}, ends mid-record): a copy still being written "
                       "or a broken transfer")
    try:
        summary = storage.summarise(df)
    except Exception as exc:  # noqa: BLE001 - the data are fine; only the derived table is missing
        from batteryloop.cycling.validate import Finding

        summary = None
        meta.findings.append(Finding("warning", "summary_failed",
                                     f"per-cycle summary failed ({type(exc).__name__}: {exc})"))
    return df, meta, summary


def warnings_of(meta: CyclerMetadata) -> list[str]:
    return [str(f) for f in meta.findings if getattr(f, "severity", None) == "warning"]


def work(path: str, root: str, strict: bool = True) -> Outcome:
    """Parse one file and write its Parquet file under a temporary name (never raises)."""
    started = time.perf_counter()
    try:
        df, meta, summary = parse(path, strict=strict)
        prepared = storage.prepare(df, meta, root=Path(root), summary=summary)
        return Outcome(path, prepared=prepared, warnings=warnings_of(meta),
                       seconds=time.perf_counter() - started)
    except Rejected as exc:
        return Outcome(path, message=tidy(str(exc)), seconds=time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - e.g. disk full while writing the Parquet file
        return Outcome(path, message=f"{path}: {type(exc).__name__}: {exc}",
                       seconds=time.perf_counter() - started)


def finish(db: Database, outcome: Outcome, *, battery: str | None, actor: str | None,
           root: Path) -> FileResult:
    """Commit a worker's outcome (one transaction) and say what happened."""
    if outcome.prepared is None:
        return FileResult(outcome.path, REJECTED, message=outcome.message,
                          seconds=outcome.seconds)
    p = outcome.prepared
    base = {"sha256": p.sha256, "tester": p.tester, "format": p.format, "rows": p.rows,
            "cycles": p.cycles, "warnings": outcome.warnings, "seconds": outcome.seconds}
    try:
        stored = storage.commit(db, p, battery=battery, actor=actor, root=root)
    except BatteryloopError as exc:
        return FileResult(outcome.path, REJECTED, message=exc.message, **base)
    except Exception as exc:  # noqa: BLE001 - a database error rejects this file, not the run
        return FileResult(outcome.path, REJECTED,
                          message=f"{outcome.path}: not stored ({type(exc).__name__}: {exc})",
                          **base)
    base.update(rows=stored.rows, cycles=stored.cycles)
    return FileResult(outcome.path, stored.status, battery=stored.battery,
                      event_seq=stored.event_seq,
                      message="already imported" if stored.already_imported else None, **base)


# --- many files ----------------------------------------------------------------------------------
def _known(db: Database, files: Sequence[Path]) -> tuple[dict[Path, str], dict[str, Any]]:
    """Each file's SHA-256 and the stored rows among them (by hash)."""
    from sqlalchemy import select

    from batteryloop.store.models import Battery, CyclerTest

    hashes: dict[Path, str] = {}
    for f in files:
        try:
            hashes[f] = storage.file_sha256(f)
        except OSError:
            pass  # the worker reports it with the reader's wording
    rows: dict[str, Any] = {}
    unique = sorted(set(hashes.values()))
    with db.session() as s:
        for i in range(0, len(unique), 500):
            stmt = (select(CyclerTest, Battery.uid)
                    .outerjoin(Battery, Battery.id == CyclerTest.battery_id)
                    .where(CyclerTest.sha256.in_(unique[i:i + 500])))
            for row, uid in s.execute(stmt):
                rows[row.sha256] = storage.describe(row, uid) | {"battery_id": row.battery_id}
    return hashes, rows


def check_battery(db: Database, battery: str | None) -> int | None:
    """The battery's id; NotFound now, rather than the same rejection for every file."""
    if battery is None:
        return None
    from batteryloop.registry.service import Registry

    with db.session() as s:
        return Registry(s).battery(battery).id


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def default_workers(n_files: int) -> int:
    return max(1, min(os.cpu_count() or 1, n_files))


def ingest_paths(
    paths: Iterable[str | Path], *, battery: str | None = None, workers: int | None = None,
    db: Database | None = None, actor: str | None = None, root: Path | None = None,
    strict: bool = True, on_start: Callable[[int], None] | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> IngestReport:
    """Ingest files and folders (see the module docstring).

    ``workers`` is the number of parsing processes (default: one per core, at most one per file;
    1 parses in this process). ``on_start(n)`` is called with the number of files found and
    ``on_file(result)`` as each file is done, for progress bars.
    """
    started = time.perf_counter()
    own_db = db is None
    if db is None:
        from batteryloop.settings import get_settings
        from batteryloop.store import connect

        db = connect(get_settings().resolved_database_url)
    try:
        root = Path(storage.data_dir(root)).resolve()
        battery_id = check_battery(db, battery)
        files, early = discover(paths)
        if on_start:
            on_start(len(files))
        results: dict[Path, FileResult] = {}

        def done(path: Path, result: FileResult) -> None:
            results[path] = result
            if on_file:
                on_file(result)

        hashes, known = _known(db, files)
        todo: list[Path] = []
        first_of: dict[str, Path] = {}
        for f in files:
            sha = hashes.get(f)
            if sha is not None and sha in first_of:
                done(f, FileResult(str(f), ALREADY, sha256=sha,
                                   message=f"same content as {first_of[sha]}"))
                continue
            if sha is not None:
                first_of[sha] = f
            row = known.get(sha) if sha else None
            # Stored before: nothing to do, unless a battery is given now that the test is not
            # linked to yet (commit() links it, or refuses a different battery).
            if row is not None and (battery is None or row["battery_id"] == battery_id):
                done(f, FileResult(str(f), ALREADY, sha256=sha, tester=row["tester"],
                                   format=row["format"], rows=row["rows"], cycles=row["cycles"],
                                   battery=row["battery"], message="already imported"))
                continue
            todo.append(f)

        n = workers if workers is not None else default_workers(len(todo))
        if n <= 1 or len(todo) <= 1:
            for f in todo:
                done(f, finish(db, work(str(f), str(root), strict), battery=battery,
                               actor=actor, root=root))
        else:
            with _pool(min(n, len(todo))) as pool:
                futures: dict[Future[Outcome], Path] = {
                    pool.submit(work, str(f), str(root), strict): f for f in todo
                }
                for fut in as_completed(futures):
                    f = futures[fut]
                    try:
                        outcome = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a worker that died (memory, signal)
                        outcome = Outcome(str(f), message=f"{f}: worker failed "
                                          f"({type(exc).__name__}: {exc})")
                    done(f, finish(db, outcome, battery=battery, actor=actor, root=root))
        ordered = [results[f] for f in files]
        return IngestReport(results=early + ordered, engine="local",
                            seconds=time.perf_counter() - started)
    finally:
        if own_db:
            db.dispose()
