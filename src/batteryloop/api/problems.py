"""RFC 9457 problem details for every error, so clients get one shape and never a bare 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from batteryloop.errors import BatteryloopError, ImportRejected

log = logging.getLogger("batteryloop.api")
MEDIA = "application/problem+json"


def problem(status: int, title: str, detail: str, instance: str, **extra: object) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "instance": instance, **extra}
    return JSONResponse(body, status_code=status, media_type=MEDIA)


def install(app: FastAPI) -> None:
    @app.exception_handler(BatteryloopError)
    async def _domain(request: Request, exc: BatteryloopError) -> JSONResponse:
        extra: dict[str, object] = {}
        if isinstance(exc, ImportRejected):
            extra["errors"] = [
                {"row": p.row, "field": p.field, "message": p.message} for p in exc.problems
            ]
        location = getattr(exc, "location", None)
        if location:
            extra["location"] = location
        return problem(exc.status, exc.title, exc.message, request.url.path, **extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem(422, "Invalid input", detail, request.url.path, errors=errors)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), str(exc.detail), request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem(500, "Internal error", "the server failed; the error was logged",
                       request.url.path)
