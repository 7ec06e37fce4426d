"""The `batteryloop` command: one verb per thing a user does, grouped by stage."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from batteryloop.cli import (
    accounts, carbon, cycling, factory, grading, health, model, passport, plant_telemetry,
    recycling, registry,
)
from batteryloop.cli.common import console, database, emit, guarded
from batteryloop.settings import get_settings

app = typer.Typer(
    help="batteryloop: the closed loop of EV traction batteries.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _start() -> None:
    """batteryloop: the closed loop of EV traction batteries."""
    from batteryloop import wiring

    wiring.install()  # recycling batches get their carbon figures and archive their passports


app.add_typer(registry.org_app, name="org")
app.add_typer(registry.code_app, name="code")
for name, fn in (
    ("register", registry.register), ("show", registry.show), ("history", registry.history),
    ("status", registry.status), ("transfer", registry.transfer),
    ("successor", registry.successor), ("lineage", registry.lineage),
    ("verify", registry.verify), ("import", registry.import_), ("export", registry.export),
):
    app.command(name)(fn)
app.add_typer(cycling.app)  # ingest, cycles, export-test
app.add_typer(health.app, name="health")
app.add_typer(model.app, name="model")
app.add_typer(passport.app, name="passport")
app.add_typer(grading.app, name="grade")
app.add_typer(recycling.app, name="recycle")
app.add_typer(carbon.app, name="carbon")
app.add_typer(factory.app, name="plant")
plant_telemetry.register(factory.app)  # plant tags, ingest-mqtt, import-csv, simulate, alarms...
accounts.register(app)  # user, token, audit


@app.command()
@guarded
def init(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
         ) -> None:
    """Create or upgrade the database (Alembic migrations)."""
    db = database()
    url = db.engine.url.render_as_string(hide_password=True)
    emit({"database": url, "dialect": db.dialect}, as_json,
         lambda d: console.print(f"database ready: {d['database']}"))


@app.command()
@guarded
def serve(
    host: Annotated[Optional[str], typer.Option(help="default from settings")] = None,
    port: Annotated[Optional[int], typer.Option(help="default from settings")] = None,
) -> None:
    """Serve the API (and web pages) with uvicorn."""
    import uvicorn

    from batteryloop.api import create_app

    settings = get_settings()
    host, port = host or settings.host, port or settings.port
    console.print(f"batteryloop on http://{host}:{port}/  (API docs: /api/v1/docs)")
    uvicorn.run(create_app(database()), host=host, port=port, log_level="warning")


@app.command()
@guarded
def demo(
    packs: Annotated[int, typer.Option(help="retired packs to seed")] = 300,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
    host: Optional[str] = None,
    port: Optional[int] = None,
    pybamm: Annotated[bool, typer.Option(
        "--pybamm", help="tester curves from PyBaMM (pip install pybamm; about 1 s a battery)")
    ] = False,
    models: Annotated[Optional[bool], typer.Option(
        "--models/--no-models", help="train the pulse-SOH model (default: when the shared data "
                                     "are there)")] = None,
    cells: Annotated[Optional[int], typer.Option(
        help="second-life cells to test, grade and regroup (default 100)")] = None,
    plant_hours: Annotated[Optional[float], typer.Option(
        help="hours of NMP-line telemetry (default 48)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Build a demo plant on the embedded database through every stage of the loop (once; a
    second run adds nothing), print the demo accounts and serve it."""
    from batteryloop.cli import demo as demo_output
    from batteryloop.synth.pipeline import run

    settings = get_settings()
    report = run(database(), packs=packs, pybamm=pybamm, models=models, cells=cells,
                 plant_hours=plant_hours, echo=None if as_json else demo_output.echo_step)
    host, port = host or settings.host, port or settings.port
    data = {**report.as_dict(), **demo_output.access(host, port)}
    emit(data, as_json, demo_output.render)
    if serve_after:
        serve(host=host, port=port)
