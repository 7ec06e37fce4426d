"""Property-based fuzzing of every operation in the OpenAPI schema: no input may produce a 5xx.

Schemathesis generates requests from the schema (valid and invalid: wrong types, missing fields,
odd strings, huge numbers) against a seeded demo database, once anonymously and once with an
administrator's token, so both the refusal paths and the working paths are walked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from argon2 import PasswordHasher, Type
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy import select

from batteryloop.accounts import hashing
from batteryloop.accounts.service import Accounts
from batteryloop.api import create_app
from batteryloop.settings import get_settings
from batteryloop.store import Database
from batteryloop.store.db import connect
from batteryloop.store.models import Organisation
from batteryloop.synth import seed

EXAMPLES = 12


@pytest.fixture(scope="module")
def _platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, str]]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    mp = pytest.MonkeyPatch()
    mp.setenv("BATTERYLOOP_DATA_DIR", str(root / "var"))
    mp.setenv("BATTERYLOOP_RATE_LIMIT", "")  # the fuzzer is one caller making thousands of calls
    mp.setattr(hashing, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1,
                                                 type=Type.ID))
    get_settings.cache_clear()
    db = connect(f"sqlite:///{root / 'fuzz.sqlite'}")
    with db.session() as s:
        seed(s, packs=6)
        accounts = Accounts(s)
        org = s.scalars(select(Organisation.uid).order_by(Organisation.id)).first()
        assert org is not None
        accounts.add_user("fuzz-admin", org, roles=("admin", "writer"),
                          password="fuzz-admin-password")
        accounts.grant_tier("fuzz-admin", "authority", by="fuzz-admin")
        _, token = accounts.create_token("fuzz-admin", scopes=("write", "admin"))
    yield db, token
    db.engine.dispose()
    mp.undo()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def api_schema(_platform: tuple[Database, str]):  # type: ignore[no-untyped-def]
    db, _ = _platform
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", create_app(db))


@pytest.fixture(scope="module")
def admin_token(_platform: tuple[Database, str]) -> str:
    return _platform[1]


_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(HealthCheck))


def _fuzz(schema, headers: dict[str, str]) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    """Every operation, EXAMPLES generated cases each; the failures as 'label: reason' lines.

    (Schemathesis' own pytest plugin does not load under pytest 9, so the operations are driven
    here with Hypothesis directly; the generation and the checks are Schemathesis'.)
    """
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @_SETTINGS
        def run(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect them all, report at the end
            failures.append(f"{operation.label}: {str(exc).strip().splitlines()[0][:300]}")
    return operations, failures


def test_no_server_error_anonymous(api_schema) -> None:  # type: ignore[no-untyped-def]
    operations, failures = _fuzz(api_schema, {})
    assert operations >= 30
    assert not failures, "\n".join(failures)


def test_no_server_error_as_admin(api_schema, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    operations, failures = _fuzz(api_schema, {"Authorization": f"Bearer {admin_token}"})
    assert operations >= 30
    assert not failures, "\n".join(failures)
