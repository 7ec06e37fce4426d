"""Shared fixtures: the real data folder and a database on each backend.

Tests that take ``db`` run twice, on SQLite and on PostgreSQL. PostgreSQL comes from
``BATTERYLOOP_TEST_POSTGRES_URL``; without it those runs skip, except under ``CI=true`` where a
missing server or data file is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from batteryloop.store import Database, connect
from shared_data import need

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _wiring() -> None:
    """The floors joined as the faces join them at start-up (``batteryloop.wiring``): every test
    runs with recycling's carbon provider and passport hook set, whichever test ran before."""
    from batteryloop import wiring

    wiring.install()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = Path(os.environ.get("BATTERYLOOP_SHARED", ROOT.parent / "shared")).resolve()
    if not (path / "data").is_dir():
        need(f"real data folder not found at {path} (set BATTERYLOOP_SHARED)")
    return path


@pytest.fixture(scope="session")
def shared_file(shared_dir: Path):  # type: ignore[no-untyped-def]
    def find(relative: str) -> Path:
        path = shared_dir / relative
        if not path.is_file():
            need(f"missing real data file {path}")
        return path

    return find


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test: migrations run once, not per test."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite"
    connect(f"sqlite:///{path}").dispose()
    return path


def _postgres_url() -> str | None:
    url = os.environ.get("BATTERYLOOP_TEST_POSTGRES_URL")
    if not url:
        return None
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _postgres() -> Iterator[Database | None]:
    url = _postgres_url()
    if url is None:
        yield None
        return
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means the same here
        admin.dispose()
        need(f"PostgreSQL not reachable at {url}: {exc}")
    admin.dispose()
    database = connect(url)
    yield database
    database.dispose()


def _truncate(database: Database) -> None:
    """Empty every table, and restore the append-only guard a tampering test may have lifted."""
    with database.engine.begin() as conn:
        conn.execute(text("ALTER TABLE events ENABLE TRIGGER events_append_only"))
        conn.execute(text(
            "TRUNCATE factory_alarms, dismantled_fractions, dismantlings, recycling_outputs, recycling_batches, inspections, passport_contacts, passports, audit_log, api_tokens, user_roles, users, cycler_tests, lineage, identifiers, events, batteries, organisation_roles, organisations "
            "RESTART IDENTITY CASCADE"
        ))


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path, _sqlite_template: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "batteryloop.sqlite"
        shutil.copy(_sqlite_template, path)
        database = connect(f"sqlite:///{path}", migrate=False)
        yield database
        database.dispose()
        return
    pg = request.getfixturevalue("_postgres")
    if pg is None:
        need("BATTERYLOOP_TEST_POSTGRES_URL is not set")
    _truncate(pg)
    yield pg


@pytest.fixture
def sqlite_db(tmp_path: Path, _sqlite_template: Path) -> Iterator[Database]:
    path = tmp_path / "batteryloop.sqlite"
    shutil.copy(_sqlite_template, path)
    database = connect(f"sqlite:///{path}", migrate=False)
    yield database
    database.dispose()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh data directory (Parquet files, models, keys), set in the settings."""
    from batteryloop.settings import get_settings

    data = tmp_path / "data"
    monkeypatch.setenv("BATTERYLOOP_DATA_DIR", str(data))
    get_settings.cache_clear()
    yield data
    get_settings.cache_clear()


@pytest.fixture
def cli(db: Database, data_dir: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Runs `batteryloop ...` against the test database; returns (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from batteryloop.cli import common
    from batteryloop.cli.main import app
    from batteryloop.settings import get_settings

    monkeypatch.setenv("BATTERYLOOP_DATABASE_URL", db.engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    monkeypatch.setattr(common, "_db", db)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return run
