"""Request-scoped dependencies: one database session (one unit of work) per request."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session

from batteryloop.store import Database


def database(request: Request) -> Database:
    return request.app.state.db


def session(request: Request) -> Iterator[Session]:
    with request.app.state.db.session() as s:
        yield s
