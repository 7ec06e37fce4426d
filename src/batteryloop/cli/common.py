"""What every command shares: the database, one-line errors, JSON or rich output."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import orjson
import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from batteryloop.errors import BatteryloopError, ImportRejected
from batteryloop.settings import get_settings
from batteryloop.store import Database, connect

console = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

_db: Database | None = None


def database() -> Database:
    global _db
    if _db is None:
        _db = connect(get_settings().resolved_database_url)
    return _db


@contextmanager
def unit_of_work() -> Iterator[Session]:
    with database().session() as session:
        yield session


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guarded(fn: F) -> F:
    """Turn domain and database errors into one line on stderr and a non-zero exit."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ImportRejected as exc:
            for problem in exc.problems[:20]:
                err.print(f"  {problem}", highlight=False)
            if len(exc.problems) > 20:
                err.print(f"  ... and {len(exc.problems) - 20} more", highlight=False)
            fail(exc.message)
        except BatteryloopError as exc:
            fail(exc.message)
        except OperationalError as exc:
            fail(f"database error: {exc.orig}")
        except FileNotFoundError as exc:
            fail(f"{exc.filename}: no such file")

    return run  # type: ignore[return-value]


def emit(data: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    if as_json or render is None:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
    else:
        render(data)


@contextmanager
def working(what: str, *, quiet: bool = False) -> Iterator[None]:
    """A spinner with the elapsed time on stderr while long work runs (none for --json output)."""
    if quiet:
        yield
        return
    with Console(stderr=True).status(f"{what}...", spinner="dots"):
        yield
