"""Floor 1: SQLAlchemy models and sessions, Alembic migrations, where files live."""

from batteryloop.store.db import Database, connect

__all__ = ["Database", "connect"]
