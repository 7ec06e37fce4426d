"""Health endpoints: assess from stored tests or from a pulse test, read the latest assessment;
the trained health models (cards, reports, pulse-SOH prediction)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from batteryloop.api.pagination import Paged
from batteryloop.accounts.service import Principal
from batteryloop.accounts.viewer import Viewer
from batteryloop.api import auth
from batteryloop.api.deps import Db
from batteryloop.errors import BatteryloopError, NotFound, ValidationFailed
from batteryloop.health.assess import assess_from_test, latest_assessment
from batteryloop.passport import records

router = APIRouter(tags=["health"])
# A battery's state of health is Annex XIII point 4 (Art. 14): read at the legitimate-interest tier
# or on one's own batteries; assessed by a signed-in writer for its own organisation.
Who = Annotated[Viewer, Depends(auth.viewer)]
Writer = Annotated[Principal, Depends(auth.require_writer)]


class AssessIn(BaseModel):
    test: str | None = None
    initial_r_ohm: float | None = None
    actor: str | None = None


@router.post("/batteries/{ref}/health", status_code=status.HTTP_201_CREATED)
def assess(ref: str, body: AssessIn, db: Db, who: Writer, request: Request) -> dict[str, Any]:
    actor = auth.acting_organisation(db, who, body.actor)
    records.require(db, who.viewer, "health", ref, path=request.url.path, audit=False)
    return assess_from_test(db, ref, test=body.test, actor=actor,
                            initial_r_ohm=body.initial_r_ohm)


@router.get("/batteries/{ref}/health")
def latest(ref: str, db: Db, who: Who, request: Request) -> dict[str, Any]:
    records.require(db, who, "health", ref, path=request.url.path)
    result = latest_assessment(db, ref)
    if result is None:
        raise NotFound(f"battery '{ref}' has no health assessment yet")
    return result


# ------------------------------------------------------------------ pulse-test SOH and models

class PulseUploadTooLarge(BatteryloopError):
    status = 413
    title = "Upload too large"


def _read_upload(upload: UploadFile, request: Request) -> bytes:
    """The uploaded pulse-test file, refused (413) past the pulse-file limit, before or while
    reading: a pulse test is a few kB, never a tester dump."""
    from batteryloop.health.pulse_input import limits

    limit = limits()["max_file_bytes"]
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise PulseUploadTooLarge(f"upload is larger than the limit of {limit:,} bytes for a "
                                  "pulse-test file")
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise PulseUploadTooLarge(f"{_upload_name(upload)}: larger than the limit of {limit:,} "
                                  "bytes for a pulse-test file")
    return data


def _upload_name(upload: UploadFile) -> str:
    import re
    from pathlib import PurePosixPath

    base = PurePosixPath((upload.filename or "").replace("\\", "/")).name
    return re.sub(r"[^A-Za-z0-9._ +()-]+", "_", base).lstrip(".")[:200] or "upload.csv"


@router.post("/batteries/{ref}/health/pulse", status_code=status.HTTP_201_CREATED)
def assess_pulse_test(
    ref: str,
    request: Request,
    db: Db,
    who: Writer,
    file: Annotated[UploadFile, File(description="pulse-test CSV: soc (%), U1..U21 (V); optional "
                                                 "chemistry, rated_ah, pulse_width_s, cell_id")],
    actor: Annotated[str | None, Form(description="acting organisation (uid or name)")] = None,
    model_version: Annotated[str | None, Form(description="pulse-soh artefact version "
                                                          "(default: the newest)")] = None,
) -> dict[str, Any]:
    """SOH from a pulse test with the trained pulse-SOH model, recorded as `health-assessed`
    (values with interval, model version and card SHA-256, out-of-domain flags). A bad file is a
    422 problem naming the row and column; a model never trained is a 404 naming the command."""
    from batteryloop.health.assess import assess_pulse

    acting = auth.acting_organisation(db, who, actor)
    # 401/403/404 before reading the upload
    records.require(db, who.viewer, "health", ref, path=request.url.path, audit=False)
    data = _read_upload(file, request)
    return assess_pulse(db, ref, data, artefact=model_version, actor=acting,
                        name=_upload_name(file))


def _public_card(card: dict[str, Any]) -> dict[str, Any]:
    """A card without this server's file paths."""
    return {k: v for k, v in card.items() if k not in ("folder", "reports", "report")}


@router.get("/models")
def list_models(page: Paged, kind: str | None = None) -> list[dict[str, Any]]:
    """The trained health-model artefacts (newest first within a name), with headline scores."""
    from batteryloop.health import model_store

    if kind is not None and kind not in model_store.KINDS:
        raise ValidationFailed(f"unknown kind '{kind}' (have: {', '.join(model_store.KINDS)})",
                               location="kind")
    return page([_public_card(c) for c in model_store.catalogue(kind=kind)])


@router.get("/models/{name}")
def show_model(name: str) -> dict[str, Any]:
    """The newest artefact of a name (or kind): its full card."""
    from batteryloop.health import model_store

    return _public_card(model_store.card(name))


@router.get("/models/{name}/{version}")
def show_model_version(name: str, version: str) -> dict[str, Any]:
    from batteryloop.health import model_store

    return _public_card(model_store.card(name, version))


@router.get("/models/{name}/{version}/report", response_class=HTMLResponse)
def model_report(name: str, version: str) -> HTMLResponse:
    """The artefact's evaluation report (self-contained HTML with its figures)."""
    from batteryloop.health import model_store

    reports = [p for p in model_store.card(name, version)["reports"] if p.endswith(".html")]
    if not reports:
        raise NotFound(f"model {name} {version} has no evaluation report: run `batteryloop model "
                       f"evaluate {name} --version {version}`")
    from pathlib import Path

    return HTMLResponse(Path(reports[-1]).read_text(encoding="utf-8"))


@router.post("/models/pulse-soh/predict")
def predict_pulse(
    request: Request,
    file: Annotated[UploadFile, File(description="pulse-test CSV (see POST .../health/pulse)")],
    chemistry: Annotated[str | None, Form()] = None,
    rated_ah: Annotated[float | None, Form(gt=0)] = None,
    model_version: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    """SOH estimates of the tests in a pulse-test file; nothing is recorded."""
    from batteryloop.health import model_store

    data = _read_upload(file, request)
    table, est, combined, card = model_store.predict_pulse(
        data, artefact=model_version, chemistry=chemistry, rated_ah=rated_ah,
        name=_upload_name(file))
    return {"file": table.source, "sha256": table.sha256, "estimate": combined,
            "coverage": card.params.get("coverage"), "model": model_store.model_ref(card),
            "tests": est.to_dicts()}
