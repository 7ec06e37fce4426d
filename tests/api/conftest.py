"""API tests sign in: organisations with users and API tokens, as headers to send.

Reads of restricted records and every write need a signed-in caller (passport/records.py), so the
tests act as the organisation whose step it is: ``member("Maker", "manufacturer")`` makes the
organisation (if new), a writer of it and an API token, and returns the Authorization header.
argon2 runs with cheap parameters here (still argon2id), and the rate limit is off: a test is one
caller making many calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

import pytest
from argon2 import PasswordHasher, Type

from batteryloop.accounts import hashing
from batteryloop.accounts import service as accounts_service
from batteryloop.accounts.service import Accounts
from batteryloop.errors import NotFound
from batteryloop.registry.schemas import OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.settings import get_settings

Member = Callable[..., dict[str, str]]


@pytest.fixture(autouse=True)
def _fast_accounts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(hashing, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                          parallelism=1, type=Type.ID))
    monkeypatch.setattr(hashing, "_DUMMY", None)
    monkeypatch.setenv("BATTERYLOOP_RATE_LIMIT", "")
    accounts_service.VERIFIED.clear()
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "org"


def make_member(db, org: str, roles: Iterable[str] = ("manufacturer",), *,  # type: ignore[no-untyped-def]
                scopes: Iterable[str] = ("write",), tier: str | None = None,
                user: str | None = None) -> dict[str, str]:
    """Headers of a new API token of a user of ``org`` (made with ``roles`` if it is new)."""
    scopes = tuple(scopes)
    with db.session() as s:
        reg = Registry(s)
        try:
            organisation = reg.organisation(org)
        except NotFound:
            organisation = reg.add_organisation(OrganisationIn(name=org, roles=list(roles)))
        accounts = Accounts(s)
        name = user or f"{_slug(org)}-{'-'.join(sorted(scopes)) or 'reader'}"
        try:
            accounts.user(name)
        except NotFound:
            user_roles = ["reader", *(["writer"] if "write" in scopes else []),
                          *(["admin"] if "admin" in scopes else [])]
            accounts.add_user(name, organisation.uid, user_roles)
        _, token = accounts.create_token(name, scopes=scopes, tier=tier)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def member(db) -> Member:  # type: ignore[no-untyped-def]
    """member(org, *roles, scopes=("write",), tier=None) -> headers; one token per call."""

    def make(org: str, *roles: str, **kw: object) -> dict[str, str]:
        return make_member(db, org, roles or ("manufacturer",), **kw)  # type: ignore[arg-type]

    return make


@pytest.fixture
def admin(member: Member) -> dict[str, str]:
    """A platform administrator (registers organisations, bulk imports)."""
    return member("Platform", "manufacturer", scopes=("write", "admin"))
