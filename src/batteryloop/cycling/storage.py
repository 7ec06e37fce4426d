"""Stored tests: one Parquet file per tester file, a ``cycler_tests`` row, a ``tested`` event.

A test is keyed on the SHA-256 of the tester file's bytes and kept at
``<data_dir>/tests/<sha256[:2]>/<sha256>.parquet`` (zstd), with its metadata (source name, hash,
tester, format, channel, cell id, normalisations, findings) in the Parquet key-value metadata under
the key ``batteryloop``. The same file imported again stores nothing and appends nothing.

Storing is two steps so the CPU-heavy half can run in a worker process or on a Dask worker:

* :func:`prepare` writes the Parquet file under a temporary name next to its final place;
* :func:`commit` inserts the row and the event in one transaction and renames the temporary file
  into place inside that transaction. If the database refuses, the file is removed; if the file
  cannot be put in place, the transaction rolls back. Either both exist or neither does.
"""

from __future__ import annotations

import hashlib
import math
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from batteryloop.cycling.schema import SCHEMA, CyclerMetadata
from batteryloop.errors import Conflict, NotFound, ValidationFailed
from batteryloop.settings import get_settings
from batteryloop.store import Database
from batteryloop.store.models import Battery, CyclerTest

#: Key of the JSON metadata in the Parquet footer.
META_KEY = "batteryloop"
#: Version of that JSON's layout, so later readers can tell old files apart.
META_VERSION = 1
EVENT_TYPE = "tested"
_SHA = frozenset("0123456789abcdef")


def data_dir(explicit: Path | None = None) -> Path:
    return Path(explicit) if explicit is not None else get_settings().data_dir


def relative_path(sha256: str) -> str:
    """Where a test lives, relative to the data directory (what ``cycler_tests`` keeps)."""
    return f"tests/{sha256[:2]}/{sha256}.parquet"


def parquet_path(sha256: str, root: Path | None = None) -> Path:
    return data_dir(root) / relative_path(sha256)


def is_sha256(text: str) -> bool:
    return len(text) == 64 and set(text.lower()) <= _SHA


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, streamed (the same hash the readers put in the metadata)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- summary (written by another module; optional until it lands) --------------------------------
def summarise(df: pl.DataFrame) -> pl.DataFrame | None:
    """Per-cycle table from ``batteryloop.cycling.summary.cycles``, or None if that is missing."""
    try:
        from batteryloop.cycling.summary import cycles
    except ImportError:  # a build without the summary module: store the data without it
        return None
    return cycles(df)


def _summary_or_none(df: pl.DataFrame) -> pl.DataFrame | None:
    """The summary for the event payload, where a failing summary must not stop the storing."""
    try:
        return summarise(df)
    except Exception:  # noqa: BLE001 - ingest reports the failure as a warning
        return None


def last_discharge_capacity(summary: pl.DataFrame | None) -> float | None:
    """The discharge capacity (Ah) of the last cycle that discharged, from the per-cycle table."""
    if summary is None or summary.height == 0:
        return None
    names = [c for c in summary.columns
             if "discharg" in c and "capacity" in c and not c.startswith("cycle_")]
    preferred = [c for c in names if c.endswith("_ah")] or names
    if not preferred:
        return None
    col = summary[preferred[0]]
    if not col.dtype.is_numeric():
        return None
    values = [v for v in col.drop_nulls().to_list()
              if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]
    return float(values[-1]) if values else None


# --- metadata ------------------------------------------------------------------------------------
def metadata_dict(meta: CyclerMetadata, *, rows: int, cycles: int) -> dict[str, Any]:
    """What goes into the Parquet footer (and the API's metadata answer)."""
    return {
        "version": META_VERSION,
        "source_name": meta.name,
        "sha256": meta.sha256,
        "tester": meta.tester,
        "format": meta.file_format,
        "channel": meta.channel,
        "cell_id": meta.cell_id,
        "start_time_unix": meta.start_time_unix,
        "nominal_capacity_ah": meta.nominal_capacity_ah,
        "normalisations": list(meta.normalisations),
        "findings": [_finding(f) for f in meta.findings],
        "truncated_at_row": meta.truncated_at_row,
        "rows": rows,
        "cycles": cycles,
        "extra": _portable(meta.extra),
    }


def _finding(f: Any) -> dict[str, Any] | str:
    try:
        return asdict(f)
    except TypeError:
        return str(f)


def _portable(extra: dict[str, Any]) -> dict[str, Any]:
    """Extra metadata without absolute paths of the machine that read it (sidecars are named)."""
    out: dict[str, Any] = {}
    for key, value in extra.items():
        if isinstance(value, str) and os.path.isabs(value):
            value = Path(value).name
        out[key] = value
    return out


def count_cycles(df: pl.DataFrame) -> int:
    return int(df["cycle_count"].drop_nulls().n_unique()) if df.height else 0


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``batteryloop`` key-value metadata of a stored test (reads the footer only)."""
    kv = pl.read_parquet_metadata(path)
    raw = kv.get(META_KEY)
    if raw is None:
        raise ValidationFailed("not a batteryloop test file (no metadata)", location=str(path))
    return orjson.loads(raw)


def read_parquet(path: str | Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """A stored test's canonical table and its metadata."""
    return pl.read_parquet(path).cast(dict(SCHEMA)), read_metadata(path)  # type: ignore[arg-type]


def write_parquet_atomic(df: pl.DataFrame, path: Path, metadata: dict[str, Any]) -> None:
    """Write to a temporary name in the same folder, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        _write(df, tmp, metadata)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write(df: pl.DataFrame, path: Path, metadata: dict[str, Any]) -> None:
    df.write_parquet(path, compression="zstd",
                     metadata={META_KEY: orjson.dumps(metadata, default=str).decode()})
    with path.open("rb") as fh:  # on disk before the rename makes it visible
        os.fsync(fh.fileno())


# --- prepare / commit ----------------------------------------------------------------------------
@dataclass
class Prepared:
    """A parsed tester file written to a temporary Parquet file, waiting for :func:`commit`.

    Small and picklable: it travels back from worker processes instead of the table itself.
    """

    sha256: str
    source_name: str
    tester: str
    format: str
    rows: int
    cycles: int
    tmp_path: str
    final_path: str
    relative_path: str
    metadata: dict[str, Any] = field(default_factory=dict)
    last_discharge_capacity_ah: float | None = None

    def discard(self) -> None:
        Path(self.tmp_path).unlink(missing_ok=True)


def prepare(df: pl.DataFrame, meta: CyclerMetadata, *, root: Path | None = None,
            summary: pl.DataFrame | None = None) -> Prepared:
    """Write the test's Parquet file under a temporary name beside its final place."""
    rows, cycles = df.height, count_cycles(df)
    metadata = metadata_dict(meta, rows=rows, cycles=cycles)
    q = last_discharge_capacity(summary)
    if q is not None:
        metadata["last_discharge_capacity_ah"] = q
    final = parquet_path(meta.sha256, root)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        _write(df, tmp, metadata)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Prepared(
        sha256=meta.sha256, source_name=meta.name, tester=meta.tester, format=meta.file_format,
        rows=rows, cycles=cycles, tmp_path=str(tmp), final_path=str(final),
        relative_path=relative_path(meta.sha256), metadata=metadata, last_discharge_capacity_ah=q,
    )


@dataclass
class StoredTest:
    """What :func:`commit` did: ``status`` is 'stored', 'linked' or 'already imported'."""

    status: str
    id: int
    sha256: str
    source_name: str
    tester: str
    format: str
    rows: int
    cycles: int
    parquet_path: str
    created_at: str
    battery: str | None = None
    event_seq: int | None = None

    @property
    def already_imported(self) -> bool:
        return self.status == "already imported"


def describe(row: CyclerTest, battery_uid: str | None) -> dict[str, Any]:
    return {
        "id": row.id, "sha256": row.sha256, "source_name": row.source_name, "tester": row.tester,
        "format": row.format, "rows": row.rows, "cycles": row.cycles,
        "parquet_path": row.parquet_path, "battery": battery_uid,
        "created_at": _utc(row.created_at).isoformat(),
    }


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _stored(status: str, row: CyclerTest, battery_uid: str | None, seq: int | None = None
            ) -> StoredTest:
    d = describe(row, battery_uid)
    return StoredTest(status=status, event_seq=seq, **d)


def tested_payload(p: Prepared | CyclerTest, last_q: float | None = None) -> dict[str, Any]:
    """The ``tested`` event's payload: which file, read how, how much data."""
    payload: dict[str, Any] = {
        "sha256": p.sha256, "source_name": p.source_name, "tester": p.tester,
        "format": p.format, "rows": p.rows, "cycles": p.cycles,
    }
    if last_q is not None and math.isfinite(last_q):
        payload["last_discharge_capacity_ah"] = round(last_q, 9)
    return payload


def _battery_uid(session: Session, battery_id: int | None) -> str | None:
    if battery_id is None:
        return None
    return session.scalar(select(Battery.uid).where(Battery.id == battery_id))


def _link(session: Session, row: CyclerTest, battery_ref: str | None, actor: str | None,
          last_q: float | None) -> StoredTest:
    """An already stored test: nothing new, or a first link to a battery given now."""
    from batteryloop.registry.service import Registry

    current = _battery_uid(session, row.battery_id)
    if battery_ref is None:
        return _stored("already imported", row, current)
    reg = Registry(session)
    battery = reg.battery(battery_ref)
    if row.battery_id == battery.id:
        return _stored("already imported", row, current)
    if row.battery_id is not None:
        raise Conflict(f"{row.source_name}: this file (sha256 {row.sha256[:12]}...) is already "
                       f"imported for battery {current}")
    row.battery_id = battery.id
    session.flush()
    appended = reg.append(battery.uid, EVENT_TYPE, tested_payload(row, last_q), actor=actor)
    return _stored("linked", row, battery.uid, appended.seq)


def existing(session: Session, sha256: str) -> CyclerTest | None:
    return session.scalar(select(CyclerTest).where(CyclerTest.sha256 == sha256))


def commit(db: Database, prepared: Prepared, *, battery: str | None = None,
           actor: str | None = None, root: Path | None = None) -> StoredTest:
    """Insert the row (and the ``tested`` event) and move the Parquet file into place, atomically.

    Re-importing a stored file (same SHA-256) writes nothing and appends nothing; the one exception
    is a test stored without a battery and now given one, which is linked (one ``tested`` event).
    """
    from batteryloop.registry.service import Registry

    final = Path(prepared.final_path)
    if root is not None:  # the data directory as this process sees it
        final = parquet_path(prepared.sha256, root)
    placed = False
    try:
        with db.session() as session:
            row = existing(session, prepared.sha256)
            if row is not None:
                prepared.discard()
                return _link(session, row, battery, actor, prepared.last_discharge_capacity_ah)
            reg = Registry(session)
            target = reg.battery(battery) if battery else None
            row = CyclerTest(
                sha256=prepared.sha256, battery_id=target.id if target else None,
                source_name=prepared.source_name[:255], tester=prepared.tester[:64],
                format=prepared.format[:32], rows=prepared.rows, cycles=prepared.cycles,
                parquet_path=prepared.relative_path, created_at=datetime.now(UTC),
            )
            try:
                with session.begin_nested():
                    session.add(row)
            except IntegrityError:  # the same file, committed by a concurrent import just now
                prepared.discard()
                row = existing(session, prepared.sha256)
                if row is None:
                    raise
                return _link(session, row, battery, actor, prepared.last_discharge_capacity_ah)
            seq = None
            if target is not None:
                seq = reg.append(target.uid, EVENT_TYPE,
                                 tested_payload(prepared, prepared.last_discharge_capacity_ah),
                                 actor=actor).seq
            os.replace(prepared.tmp_path, final)  # last step before the commit
            placed = True
            result = _stored("stored", row, target.uid if target else None, seq)
        return result
    except BaseException:
        prepared.discard()
        if placed and not _committed_elsewhere(db, prepared.sha256):
            final.unlink(missing_ok=True)
        raise


def _committed_elsewhere(db: Database, sha256: str) -> bool:
    """After a failed commit: did another import store the same file meanwhile (keep its file)?"""
    try:
        with db.session() as session:
            return existing(session, sha256) is not None
    except Exception:  # noqa: BLE001 - the database is what just failed; assume not
        return False


def store(db: Database, df: pl.DataFrame, meta: CyclerMetadata, *, battery: str | None = None,
          actor: str | None = None, root: Path | None = None,
          summary: pl.DataFrame | None = None) -> StoredTest:
    """Store one parsed tester file (see the module docstring); idempotent on the file's hash."""
    from batteryloop.registry.service import Registry

    with db.session() as session:
        row = existing(session, meta.sha256)
        if row is not None:
            last_q = None
            if battery is not None and row.battery_id is None:
                last_q = last_discharge_capacity(
                    summary if summary is not None else _summary_or_none(df))
            return _link(session, row, battery, actor, last_q)
        if battery is not None:
            Registry(session).battery(battery)  # NotFound before any work
    if summary is None:
        summary = _summary_or_none(df)
    prepared = prepare(df, meta, root=root, summary=summary)
    return commit(db, prepared, battery=battery, actor=actor, root=root)


# --- export --------------------------------------------------------------------------------------
def bdf_frame(df: pl.DataFrame) -> pl.DataFrame:
    """The canonical table with BDF preferred labels as headers ("Voltage / V"), for BDF CSV.

    Columns without a BDF preferred label (the per-cycle capacity and energy counters, which any
    BDF reader derives again from the cumulative ones) and optional columns with no values at all
    are left out.
    """
    from batteryloop.cycling.schema import PREFERRED_LABELS, REQUIRED

    label_of = {name: label for label, name in PREFERRED_LABELS.items()}
    keep = [c for c in df.columns if c in label_of
            and (c in REQUIRED or df[c].null_count() < df.height)]
    return df.select(
        (pl.col(c).cast(pl.String) if c == "step_type" else pl.col(c)).alias(label_of[c])
        for c in keep
    )


def write_bdf_csv(df: pl.DataFrame, path: Path) -> None:
    """BDF CSV, written atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        bdf_frame(df).write_csv(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- look-ups ------------------------------------------------------------------------------------
def find(session: Session, ref: str) -> CyclerTest:
    """A stored test by its full SHA-256 or an unambiguous prefix of at least 8 hex digits."""
    key = ref.strip().lower()
    if len(key) < 8 or not set(key) <= _SHA:
        raise NotFound(f"no stored test '{ref}' (give its sha256, or at least 8 hex digits of it)")
    if len(key) == 64:
        row = existing(session, key)
        if row is None:
            raise NotFound(f"no stored test with sha256 {key}")
        return row
    rows = list(session.scalars(select(CyclerTest).where(CyclerTest.sha256.startswith(key))
                                .limit(2)))
    if not rows:
        raise NotFound(f"no stored test with sha256 starting '{key}'")
    if len(rows) > 1:
        raise ValidationFailed(f"sha256 prefix '{key}' matches more than one test", location="sha256")
    return rows[0]


def absolute(row: CyclerTest, root: Path | None = None) -> Path:
    return data_dir(root) / row.parquet_path


def load(session: Session, ref: str, root: Path | None = None
         ) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The canonical table and metadata of a stored test."""
    row = find(session, ref)
    path = absolute(row, root)
    if not path.is_file():
        raise NotFound(f"stored test {row.sha256} has no Parquet file at {path}")
    return read_parquet(path)


def tests_of(session: Session, battery_ref: str) -> list[dict[str, Any]]:
    from batteryloop.registry.service import Registry

    battery = Registry(session).battery(battery_ref)
    rows = session.scalars(select(CyclerTest).where(CyclerTest.battery_id == battery.id)
                           .order_by(CyclerTest.id))
    return [describe(r, battery.uid) for r in rows]


def show(session: Session, ref: str, root: Path | None = None) -> dict[str, Any]:
    """A stored test's row joined with its Parquet metadata."""
    row = find(session, ref)
    out = describe(row, _battery_uid(session, row.battery_id))
    path = absolute(row, root)
    out["metadata"] = read_metadata(path) if path.is_file() else None
    return out
