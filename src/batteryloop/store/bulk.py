"""Driver-level executemany for hot paths (the ledger's appends).

SQLAlchemy's per-row bind processing costs more than the INSERT itself at ledger rates, so hot
paths hand tuples straight to the driver. Values must already be in the driver's form: times in
SQLite's text form (as SQLAlchemy writes them), aware datetimes for PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection


def _placeholder(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def time_param(conn: Connection) -> Callable[[str], Any]:
    """Converts a UTC time 'YYYY-MM-DDTHH:MM:SS.ffffffZ' to what the driver stores for
    DateTime(timezone=True): SQLAlchemy's SQLite text form, or an aware datetime."""
    if conn.dialect.name == "sqlite":
        return lambda text: f"{text[:10]} {text[11:26]}"
    return lambda text: datetime.fromisoformat(text)


def insert_many(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    if not rows:
        return
    marks = ", ".join([_placeholder(conn)] * len(columns))
    conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", list(rows))


def update_many(
    conn: Connection, table: str, columns: Sequence[str], key: str, rows: Sequence[tuple]
) -> None:
    """UPDATE table SET columns... WHERE key = last value of each row tuple."""
    if not rows:
        return
    mark = _placeholder(conn)
    sets = ", ".join(f"{c} = {mark}" for c in columns)
    conn.exec_driver_sql(f"UPDATE {table} SET {sets} WHERE {key} = {mark}", list(rows))
