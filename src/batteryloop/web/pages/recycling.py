"""Recycling batches: the list (status, route, input mass, recycling efficiency; filters) and one
batch (its dismantled batteries, the mass balance as a Sankey diagram and as the closure table
with its flags, recovery per element against the EU and China targets with every figure's inputs,
the economics, the certificate), with the close action for a writer of a recycler.

Who reads what follows ``api/routes/recycling.py``: batch figures and certificates are read at the
legitimate-interest tier (recyclers, dismantlers, repurposers, authorities); closing a batch needs a
signed-in writer of a recycler, acting for its own organisation. The targets are public, as
``GET /api/v1/recycling/targets`` is.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from batteryloop.accounts.errors import Forbidden, Unauthorized
from batteryloop.accounts.service import Principal
from batteryloop.api.deps import Db, database
from batteryloop.errors import BatteryloopError, ValidationFailed
from batteryloop.grading import catalogue as battery_catalogue
from batteryloop.recycling import catalogue, certificate, compliance, routes, service
from batteryloop.web.pages import plots, stage_plots
from batteryloop.web.pages.common import Who, attachment, error_page, render
from batteryloop.web.signin import require_csrf

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
READ_TIER = "legitimate_interest"  # as api/routes/recycling.py reads batches
CLOSING_ROLE = "recycler"  # as api/routes/recycling.py closes them


def may_read_batches(who: Principal) -> bool:
    return who.viewer.may_see(READ_TIER)


def may_close(who: Principal) -> bool:
    return (who.authenticated and who.may("write") and who.viewer.organisation is not None
            and CLOSING_ROLE in who.viewer.roles)


def _reader(who: Principal) -> None:
    """The refusal the API gives a caller below the tier (401 anonymous, 403 signed in)."""
    if may_read_batches(who):
        return
    if not who.authenticated:
        raise Unauthorized("recycling batches are read at the legitimate-interest tier: sign in "
                           "as a member of a recycler, dismantler or repurposer")
    raise Forbidden("recycling batches are read at the legitimate-interest tier; yours is "
                    f"'{who.viewer.tier}'")


def _day(text: str | None, field: str) -> date | None:
    if text is None or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValidationFailed(f"'{text}' is not a date (YYYY-MM-DD)", location=field) from None


@router.get("/recycling", response_class=HTMLResponse)
def batch_list(
    request: Request, db: Db, who: Who, q: str | None = None, status: str | None = None,
    route: str | None = None, recycler: str | None = None, start: str | None = None,
    end: str | None = None, page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    readable = may_read_batches(who)
    filters = {"q": (q or "").strip() or None, "status": status or None, "route": route or None,
               "recycler": recycler or None, "start": (start or "").strip() or None,
               "end": (end or "").strip() or None}
    context: dict[str, Any] = {
        "readable": readable, "signed_in": who.authenticated, "filters": filters,
        "statuses": catalogue.STATUSES, "routes": routes.names(), "page": page, "pages": 1,
        "targets": compliance.targets(), "result": None, "recyclers": [],
        "query_without_page": {k: v for k, v in filters.items() if v},
    }
    if readable:
        try:
            result = catalogue.batches(
                db, status=filters["status"], route=filters["route"],
                recycler=filters["recycler"], start=_day(filters["start"], "start"),
                end=_day(filters["end"], "end"), query=filters["q"], limit=PAGE_SIZE,
                offset=(page - 1) * PAGE_SIZE)
        except BatteryloopError as exc:
            return error_page(request, exc, back="/recycling")
        context.update(result=result, pages=max(1, -(-result["total"] // PAGE_SIZE)),
                       recyclers=catalogue.recyclers(db))
    return render(request, "recycling.html", context)


def _compliance_rows(comp: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure and regulation: value, numerator / denominator, target, met."""
    eff = comp["recycling_efficiency"]
    figures = [("recycling efficiency", "all", eff["value_pct"], eff["recycled_output_kg"],
                eff["input_kg"], eff["formula"], eff["targets"])]
    figures += [(f"{m['element']} recovery", m["element"], m["value_pct"], m["recovered_kg"],
                 m["input_kg"], m["formula"], m["targets"]) for m in comp["material_recovery"]]
    rows = []
    for name, key, value, num, den, formula, targets in figures:
        for t in targets or [{"regulation": "—", "in_force": None, "next": None}]:
            rows.append({"figure": name, "key": key, "value_pct": value, "numerator_kg": num,
                         "denominator_kg": den, "formula": formula, "regulation": t["regulation"],
                         "in_force": t["in_force"], "next": t["next"]})
    return rows


@router.get("/recycling/batches/{ref}", response_class=HTMLResponse)
def batch_page(request: Request, ref: str, db: Db, who: Who) -> HTMLResponse:
    try:
        _reader(who)
        figures = service.evaluate(db, ref)
    except BatteryloopError as exc:
        return error_page(request, exc, back="/recycling")
    names = battery_catalogue.labels(db, [b["uid"] for b in figures["batteries"]])
    recycler = figures["batch"].get("recycler")
    own = bool(recycler) and recycler["uid"] == who.viewer.organisation
    return render(request, "recycling_batch.html", {
        "f": figures, "names": names,
        "flagged": {flag.split(":", 1)[0] for flag in figures["mass_balance"]["flags"]},
        "compliance_rows": _compliance_rows(figures["compliance"]),
        "can_close": may_close(who) and figures["batch"]["status"] == "open"
        and (not recycler or own),
        "sankey": plots.as_json(stage_plots.mass_balance_sankey(figures["mass_balance"],
                                                                figures["outputs"]["streams"])),
        "recovery_plot": plots.as_json(stage_plots.recovery(
            figures["compliance"]["material_recovery"])),
    })


def _certificate(db: Db, ref: str, who: Principal) -> dict[str, Any]:
    """The certificate as ``GET /api/v1/recycling/batches/{ref}/certificate`` builds it, for a
    reader of that tier (the session cookie signs in pages, not the JSON API)."""
    _reader(who)
    return certificate.build(db, ref)


@router.get("/recycling/batches/{ref}/certificate.json", response_model=None)
def certificate_json(request: Request, ref: str, db: Db, who: Who) -> Response:
    try:
        cert = _certificate(db, ref, who)
    except BatteryloopError as exc:
        return error_page(request, exc, back=f"/recycling/batches/{ref}")
    return attachment(cert, f"recycling-{ref}.json", **{"X-Certificate-SHA256": cert["sha256"]})


@router.get("/recycling/batches/{ref}/certificate.pdf", response_model=None)
def certificate_pdf(request: Request, ref: str, db: Db, who: Who) -> Response:
    try:
        cert = _certificate(db, ref, who)
    except BatteryloopError as exc:
        return error_page(request, exc, back=f"/recycling/batches/{ref}")
    return attachment(certificate.pdf(cert), f"recycling-{ref}.pdf",
                      **{"X-Certificate-SHA256": cert["sha256"]})


@router.post("/recycling/batches/{ref}/close", response_model=None,
             dependencies=[Depends(require_csrf)])
def close_batch(request: Request, ref: str, who: Who) -> Response:
    """Close the batch for the signed-in recycler: its balance must close; every battery gets its
    ``recycled`` event. One unit of work: a refusal leaves nothing behind."""
    try:
        if not who.authenticated:
            raise Unauthorized("closing a batch records events: sign in as a writer of a recycler")
        if not may_close(who):
            raise Forbidden("closing a batch needs a writer ('write' role) of an organisation "
                            "with the role recycler")
        actor = str(who.viewer.organisation)
        with database(request).session() as s:
            recycler = service.evaluate(s, ref)["batch"].get("recycler")
            if recycler and recycler["uid"] != actor:
                raise Forbidden(f"batch '{ref}' is {recycler['name']}'s: only they close it")
            service.close(s, ref, actor=actor)
    except BatteryloopError as exc:
        return error_page(request, exc, back=f"/recycling/batches/{ref}")
    return RedirectResponse(f"/recycling/batches/{ref}", status_code=303)
