"""The FastAPI application: routers of each stage under /api/v1."""

from __future__ import annotations

from fastapi import FastAPI

from batteryloop import __version__, wiring
from batteryloop.api import guards, problems
from batteryloop.api.routes import accounts, cycling, grading, health, passport, registry
from batteryloop.api.routes import regroup
from batteryloop.api.routes import recycling
from batteryloop.api.routes import carbon
from batteryloop.api.routes import factory
from batteryloop.api.routes import plant_telemetry
from batteryloop.settings import get_settings
from batteryloop.store import Database
from batteryloop.web import routes as web_routes


def create_app(db: Database) -> FastAPI:
    wiring.install()  # recycling batches get their carbon figures and archive their passports
    app = FastAPI(
        title="batteryloop",
        version=__version__,
        description="The closed loop of EV traction batteries: registry, tester data, health, "
        "grading, passport, recycling, carbon and the factory's NMP recovery.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
    )
    app.state.db = db
    problems.install(app)
    settings = get_settings()
    guards.install(app, body_bytes=settings.max_body_bytes, upload_bytes=settings.max_upload_bytes,
                   rate=settings.rate_limit)
    accounts.install(app)
    app.include_router(registry.router, prefix="/api/v1")
    app.include_router(cycling.router, prefix="/api/v1")
    app.include_router(health.router, prefix="/api/v1")
    app.include_router(grading.router, prefix="/api/v1")
    app.include_router(regroup.router, prefix="/api/v1")
    app.include_router(passport.router, prefix="/api/v1")
    app.include_router(recycling.router, prefix="/api/v1")
    app.include_router(carbon.router, prefix="/api/v1")
    app.include_router(factory.router, prefix="/api/v1")
    app.include_router(plant_telemetry.router, prefix="/api/v1")
    web_routes.install(app)  # pages: /passport

    @app.get("/api/v1/health", tags=["meta"])
    def service_status() -> dict[str, str]:
        return {"status": "ok", "version": __version__, "database": db.dialect}

    return app
