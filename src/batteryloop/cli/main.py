"""The `batteryloop` command: one verb per thing a user does, grouped by stage."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from batteryloop.cli import accounts, cycling, grading, health, passport, registry
from batteryloop.cli.common import console, database, guarded
from batteryloop.settings import get_settings

app = typer.Typer(
    help="batteryloop: the closed loop of EV traction batteries.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
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
app.add_typer(passport.app, name="passport")
app.add_typer(grading.app, name="grade")
accounts.register(app)  # user, token, audit


@app.command()
@guarded
def init() -> None:
    """Create or upgrade the database (Alembic migrations)."""
    db = database()
    console.print(f"database ready: {db.engine.url.render_as_string(hide_password=True)}")


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
) -> None:
    """Seed a demo plant on the embedded database (once) and serve it."""
    from batteryloop.synth import seed

    with database().session() as s:
        summary = seed(s, packs=packs)
    console.print(summary)
    if serve_after:
        serve(host=host, port=port)
