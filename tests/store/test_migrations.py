"""The schema comes from the migrations, and it matches the models on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from batteryloop.store.migrate import downgrade, upgrade
from batteryloop.store.models import Base


def test_migrated_schema_matches_models(db) -> None:  # type: ignore[no-untyped-def]
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_downgrade_and_upgrade_again(sqlite_db) -> None:  # type: ignore[no-untyped-def]
    downgrade(sqlite_db.engine, "base")
    assert "events" not in inspect(sqlite_db.engine).get_table_names()
    upgrade(sqlite_db.engine)
    assert {"organisations", "batteries", "identifiers", "events", "lineage"} <= set(
        inspect(sqlite_db.engine).get_table_names()
    )
