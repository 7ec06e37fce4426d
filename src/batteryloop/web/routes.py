"""Server-rendered passport pages: the public page a battery's QR code resolves to, and search.

Every page reads through ``passport.view`` (``read`` / ``search``), so it shows each reader what
their Annex XIII tier allows and nothing more; a signed-in caller of a higher tier (bearer token,
or the session cookie of /login: web/signin.py) sees more on the same URL. No external assets: the stylesheet is inlined from the package.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from batteryloop.accounts.viewer import PUBLIC, Viewer
from batteryloop.api.deps import session
from batteryloop.api.routes import passport as passport_api
from batteryloop.errors import BatteryloopError
from batteryloop.passport import qr, view
from batteryloop.passport.attributes import categories
from batteryloop.web.templating import templates

router = APIRouter(include_in_schema=False)
Db = Annotated[Session, Depends(session)]
Who = Annotated[Viewer, Depends(passport_api.current_viewer)]


def _error(request: Request, exc: BatteryloopError, tier: str) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "error.html", {"title": exc.title, "detail": exc.message, "viewer_tier": tier},
        status_code=exc.status,
    )


@router.get("/passport", response_class=HTMLResponse)
def search_page(request: Request, db: Db, who: Who, q: str | None = None,
                chemistry: str | None = None) -> Response:
    try:
        result = view.search(db, who, q=q or None, chemistry=chemistry or None, limit=100,
                             path=request.url.path)
    except BatteryloopError as exc:
        return _error(request, exc, who.tier)
    shown = {**result, "items": [s.as_dict() for s in result["items"]]}
    return templates.TemplateResponse(
        request, "search.html",
        {"result": shown, "q": q, "chemistry": chemistry, "viewer_tier": who.tier},
    )


@router.get("/passport/{ref}", response_class=HTMLResponse)
def passport_page(request: Request, ref: str, db: Db, who: Who) -> Response:
    try:
        shown = view.read(db, ref, who, path=request.url.path)
    except BatteryloopError as exc:
        return _error(request, exc, who.tier)
    url = qr.page_url(str(request.base_url), shown.uid)
    context: dict[str, Any] = {
        "passport": shown.as_dict(), "viewer_tier": shown.tier,
        "category_titles": {c: meta["title"] for c, meta in categories().items()},
        "qr_svg": qr.svg(url).decode(),
    }
    return templates.TemplateResponse(request, "passport.html", context)


@router.get("/passport/{ref}/qr.svg")
def passport_qr(request: Request, ref: str, db: Db, _who: Who) -> Response:
    battery_uid = view.read(db, ref, PUBLIC, path=request.url.path, only=()).uid
    return Response(qr.svg(qr.page_url(str(request.base_url), battery_uid)),
                    media_type="image/svg+xml")


def install(app: FastAPI) -> None:
    """Mount the pages (no prefix): the passport pages here, the stage pages, the static assets."""
    from batteryloop.web import assets, pages, signin

    app.include_router(router)
    signin.install(app)  # /login, /logout, session cookies and CSRF tokens
    pages.install(app)
    assets.install(app)
