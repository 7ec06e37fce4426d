"""One battery: identity, lineage both ways, the passport at the reader's tier and, for readers
who may read them, the ledger with its verification, the tests with their plots, health with
intervals, the grade with its reasons and the certificate.

The same gates as the API's (``passport.records``): the registry record shows the fields the reader
may read of this battery, and each record (ledger history, lineage, tests, health, grade,
certificate) is shown only at its tier, or on the reader's own batteries; each shown is audited.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from batteryloop.api.deps import Db
from batteryloop.cycling import storage
from batteryloop.cycling.dqdv import dqdv
from batteryloop.errors import BatteryloopError, NotFound
from batteryloop.grading import certificate as certificates
from batteryloop.grading.config import configured_base_url
from batteryloop.grading.service import latest_grade
from batteryloop.health.assess import latest_assessment
from batteryloop.passport import records, view
from batteryloop.passport.attributes import categories
from batteryloop.registry.service import Registry
from batteryloop.registry.verify import verify
from batteryloop.store.models import Battery
from batteryloop.web.pages import lineage, plots
from batteryloop.web.pages.common import Who, attachment, error_page, render

router = APIRouter(include_in_schema=False)
DQDV_CYCLES = 3  # first, middle and last full discharge: enough to see the peaks move
DQDV_GRID_STEP_V = 0.005


def _passport(db: Session, uid: str, who: Who, path: str) -> dict[str, Any] | None:
    try:
        shown = view.read(db, uid, who.viewer, path=path)
    except BatteryloopError:
        return None
    data = shown.as_dict()
    data["titles"] = {c: meta["title"] for c, meta in categories().items()}
    return data


def _full_discharges(summary: pl.DataFrame) -> list[int]:
    q = summary["discharge_capacity_ah"].fill_nan(None)
    top = q.max()
    if top is None or top <= 0:
        return []
    full = summary.filter(q >= 0.5 * top)["cycle_count"].to_list()
    picks = {full[0], full[len(full) // 2], full[-1]} if full else set()
    return sorted(picks)[:DQDV_CYCLES]


def _test_plots(db: Session, sha256: str, rated_ah: float | None) -> dict[str, Any]:
    df, _ = storage.load(db, sha256)
    summary = storage.summarise(df)
    out: dict[str, Any] = {"sha256": sha256}
    if summary is None or summary.height == 0:
        return out
    out["fade"] = plots.as_json(plots.capacity_fade(summary, rated_ah))
    picks = _full_discharges(summary)
    if picks:
        curves = dqdv(df, direction="discharge", cycles=picks, grid_step_v=DQDV_GRID_STEP_V)
        out["dqdv"] = plots.as_json(plots.dqdv_curves(curves))
    return out


def _chosen_test(tests: list[dict[str, Any]], asked: str | None) -> str | None:
    """The stored test to plot: one of this battery's (by its SHA-256 or a prefix of it), else
    the newest; a test of another battery is never loaded through this page."""
    if not asked:
        return str(tests[-1]["sha256"]) if tests else None
    found = [t["sha256"] for t in tests if str(t["sha256"]).startswith(asked.strip().lower())]
    if len(found) != 1:
        raise NotFound(f"this battery has no stored test '{asked}'")
    return str(found[0])


def _records(db: Session, battery: Battery, who: Who, path: str,
             test: str | None) -> dict[str, Any]:
    """The records of the battery this reader may read, each checked (and audited) on its own."""
    uid = battery.uid
    out: dict[str, Any] = {}
    if records.permits(db, who.viewer, "history", battery, path=path):
        report = verify(db, battery_id=battery.id)
        out.update(show_history=True, history=Registry(db).history(uid), verified=report.ok,
                   breaches=report.breaches)
    if records.permits(db, who.viewer, "tests", battery, path=path):
        tests = storage.tests_of(db, uid)
        chosen = _chosen_test(tests, test)
        out.update(show_tests=True, tests=tests,
                   test_plots=_test_plots(db, chosen, battery.rated_capacity_ah)
                   if chosen else None)
    if records.permits(db, who.viewer, "health", battery, path=path):
        health = latest_assessment(db, uid)
        out.update(show_health=True, health=health,
                   health_plot=plots.as_json(plots.health_intervals(health["values"]))
                   if health and health.get("values") else None)
    if records.permits(db, who.viewer, "grade", battery, path=path):
        out.update(show_grade=True, grade=latest_grade(db, uid),
                   show_certificate=records.Reader(db, who.viewer).of(battery).may_see(
                       records.record("certificate").tier))
    return out


@router.get("/batteries/{ref}", response_class=HTMLResponse)
def battery_page(request: Request, ref: str, db: Db, who: Who,
                 test: str | None = None) -> HTMLResponse:
    path = request.url.path
    try:
        battery = Registry(db).battery(ref)
        context: dict[str, Any] = {
            "b": records.battery(db, battery.uid, who.viewer, path=path),
            "passport": _passport(db, battery.uid, who, path),
            "graph": None, "show_lineage": False,
        }
        if records.permits(db, who.viewer, "lineage", battery, path=path):
            context.update(show_lineage=True,
                           graph=lineage.graph(Registry(db).lineage(battery.uid)))
        context.update(_records(db, battery, who, path, test))
        context["records"] = any(context.get(k) for k in (
            "show_history", "show_tests", "show_health", "show_grade"))
    except BatteryloopError as exc:
        db.rollback()  # no audit entry for a read the page then did not show
        return error_page(request, exc, back="/batteries")
    return render(request, "battery.html", context)


def _certificate(request: Request, db: Session, ref: str, who: Who) -> dict[str, Any]:
    """A draft certificate, as the API's GET builds it, for a reader who may read it (the
    browser's session cookie signs in pages, not the JSON API, so the page serves it itself)."""
    found = records.require(db, who.viewer, "certificate", ref, path=request.url.path)
    base = configured_base_url() or str(request.base_url).rstrip("/")
    return certificates.build(db, found.uid, base_url=base)


@router.get("/batteries/{ref}/certificate.pdf", response_model=None)
def certificate_pdf(request: Request, ref: str, db: Db, who: Who) -> Response:
    try:
        cert = _certificate(request, db, ref, who)
    except BatteryloopError as exc:
        db.rollback()  # no audit entry for a read the page then did not show
        return error_page(request, exc, back=f"/batteries/{ref}")
    name = cert["battery"]["code"] or cert["battery"]["uid"].rsplit(":", 1)[-1]
    return attachment(certificates.pdf(cert), f"certificate-{name}.pdf",
                      **{"X-Certificate-SHA256": cert["sha256"]})


@router.get("/batteries/{ref}/certificate.json", response_model=None)
def certificate_json(request: Request, ref: str, db: Db, who: Who) -> Response:
    try:
        cert = _certificate(request, db, ref, who)
    except BatteryloopError as exc:
        db.rollback()  # no audit entry for a read the page then did not show
        return error_page(request, exc, back=f"/batteries/{ref}")
    name = cert["battery"]["code"] or cert["battery"]["uid"].rsplit(":", 1)[-1]
    return attachment(cert, f"certificate-{name}.json")
