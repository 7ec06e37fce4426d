"""Tester-data endpoints: upload a tester file for a battery, list its tests, read one test.

An upload is written to a temporary folder under its own (sanitised) file name, so format
detection sees the real suffix and the stored metadata the real name; the temporary copy is gone
when the request ends. A file no reader accepts is a 422 problem naming the file, never a 500.

Tester data is data from the use of an individual battery (Annex XIII point 4): read at the
legitimate-interest tier or on one's own batteries (passport/data/records.toml); uploaded by a
signed-in writer for its own organisation.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile, status

from batteryloop.api.pagination import Paged
from batteryloop.accounts.service import Principal
from batteryloop.accounts.viewer import Viewer
from batteryloop.api import auth
from batteryloop.api.deps import Db, database
from batteryloop.errors import BatteryloopError, ValidationFailed
from batteryloop.passport import records
from batteryloop.settings import get_settings
from batteryloop.store import Database

router = APIRouter(tags=["cycling"])
Who = Annotated[Viewer, Depends(auth.viewer)]
Writer = Annotated[Principal, Depends(auth.require_writer)]
_CHUNK = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._ +()-]+")


class UploadTooLarge(BatteryloopError):
    status = 413
    title = "Upload too large"


class SummaryUnavailable(BatteryloopError):
    status = 501
    title = "Not available"


def _safe_name(name: str | None) -> str:
    base = Path((name or "").replace("\\", "/")).name.strip()
    base = _UNSAFE.sub("_", base).lstrip(".")
    return base[:200] or "upload.bin"


def _save(upload: UploadFile, folder: Path, limit: int) -> Path:
    path = folder / _safe_name(upload.filename)
    size = 0
    with path.open("wb") as out:
        while chunk := upload.file.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise UploadTooLarge(f"{path.name}: upload is larger than the limit of "
                                     f"{limit:,} bytes (max_upload_bytes)")
            out.write(chunk)
    return path


def _rejected(message: str, tmp: Path, name: str) -> ValidationFailed:
    """The reader's message with the temporary path replaced by the uploaded file's name."""
    text = message.replace(str(tmp), name).replace(str(tmp.parent), "")
    exc = ValidationFailed(text)
    exc.location = name
    exc.details = {"file": name}
    return exc


@router.post("/batteries/{ref}/tests", status_code=status.HTTP_201_CREATED)
def upload_test(
    ref: str,
    request: Request,
    response: Response,
    who: Writer,
    file: Annotated[UploadFile, File(description="a battery-tester file (any supported format)")],
    actor: Annotated[str | None, Form(description="acting organisation (uid or name)")] = None,
    strict: Annotated[bool, Form(description="reject a file whose last line is cut short")] = True,
) -> dict[str, Any]:
    """Store a tester file as a test of this battery (201), or say it is already stored (200)."""
    from batteryloop.cycling import storage
    from batteryloop.cycling.ingest import Rejected, parse, tidy, warnings_of

    db: Database = database(request)
    limit = get_settings().max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise UploadTooLarge(f"upload is larger than the limit of {limit:,} bytes "
                             "(max_upload_bytes)")
    with db.session() as s:  # 404, or 401/403, before reading the upload
        actor = auth.acting_organisation(s, who, actor)
        battery_uid = records.require(s, who.viewer, "tests", ref, path=request.url.path,
                                      audit=False).uid
    folder = Path(tempfile.mkdtemp(prefix="batteryloop-upload-"))
    try:
        path = _save(file, folder, limit)
        try:
            df, meta, summary = parse(path, strict=strict)
        except Rejected as exc:
            raise _rejected(tidy(str(exc)), path, path.name) from None
        stored = storage.store(db, df, meta, battery=battery_uid, actor=actor, summary=summary)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if stored.already_imported:
        response.status_code = status.HTTP_200_OK
    return asdict(stored) | {"already_imported": stored.already_imported,
                             "warnings": warnings_of(meta)}


@router.get("/batteries/{ref}/tests")
def list_tests(page: Paged, ref: str, db: Db, who: Who, request: Request) -> list[dict[str, Any]]:
    """The stored tests linked to a battery, oldest first."""
    from batteryloop.cycling import storage

    battery = records.require(db, who, "tests", ref, path=request.url.path)
    return page(storage.tests_of(db, battery.uid))


@router.get("/tests/{sha256}")
def show_test(sha256: str, db: Db, who: Who, request: Request) -> dict[str, Any]:
    """A stored test: its row and its Parquet metadata (tester, channel, normalisations...)."""
    from batteryloop.cycling import storage

    row = records.stored_test(db, sha256, who, path=request.url.path)
    return storage.show(db, row.sha256)


@router.get("/tests/{sha256}/cycles")
def test_cycles(page: Paged, sha256: str, db: Db, who: Who, request: Request) -> list[dict[str, Any]]:
    """One row per cycle: capacities, energies, efficiencies, voltages."""
    import polars as pl

    from batteryloop.cycling import storage

    row = records.stored_test(db, sha256, who, path=request.url.path)
    df, _ = storage.load(db, row.sha256)
    summary = storage.summarise(df)
    if summary is None:
        raise SummaryUnavailable("per-cycle summary is not available in this build "
                                 "(batteryloop.cycling.summary is missing)")
    floats = [c for c, t in summary.schema.items() if t.is_float()]
    if floats:
        summary = summary.with_columns(pl.col(floats).fill_nan(None))
    return page(summary.to_dicts())
