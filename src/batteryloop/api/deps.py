"""Request-scoped dependencies: one database session (one unit of work) per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from batteryloop.store import Database


def database(request: Request) -> Database:
    return request.app.state.db


def session(request: Request) -> Iterator[Session]:
    with request.app.state.db.session() as s:
        yield s


# Commit before the response is sent ("function" scope): a client never receives a success for a
# unit of work that then fails to commit, and audit rows of a read land before its data leaves.
Db = Annotated[Session, Depends(session, scope="function")]
