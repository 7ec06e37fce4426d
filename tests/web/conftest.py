"""A seeded plant for the page tests: the demo packs and modules, graded second-life cells, cells
waiting at intake, and users of three organisations (a repurposer's writer and reader, a
recycler's reader). Pages are read over HTTP as a browser would, signed in with a bearer token
(the browser tests sign in with the session cookie)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from batteryloop.accounts.service import Accounts
from batteryloop.api import create_app
from batteryloop.store import Database
from batteryloop.synth import seed
from batteryloop.synth.cells import seed_cells

PACKS = 10
GRADED_CELLS = 14
WAITING_CELLS = 2
USERS = {  # name: (organisation, user roles)
    "rita": ("Second Wind Storage", ("reader", "writer")),
    "mia": ("Second Wind Storage", ("reader",)),
    "carl": ("Circular Metals Recycling", ("reader",)),
}


@dataclass
class Site:
    db: Database
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, as_user: str | None = None, **kw):  # type: ignore[no-untyped-def]
        return self.client.get(path, headers=self.auth(as_user), **kw)

    def post(self, path: str, as_user: str | None = None, **kw):  # type: ignore[no-untyped-def]
        return self.client.post(path, headers=self.auth(as_user), **kw)

    def auth(self, user: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}


def seed_plant(db: Database, *, packs: int = PACKS, graded: int = GRADED_CELLS,
               waiting: int = WAITING_CELLS) -> dict[str, str]:
    """Seed the plant and its users; returns an API token per user."""
    with db.session() as s:
        seed(s, packs=packs)
        seed_cells(s, graded=graded, waiting=waiting)
        accounts = Accounts(s)
        tokens = {}
        for name, (org, roles) in USERS.items():
            accounts.add_user(name, org, roles=roles)
            scopes = ["write"] if "writer" in roles else []
            tokens[name] = accounts.create_token(name, scopes=scopes)[1]
    return tokens


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens hashed with the cheapest argon2 parameters: these tests are not about hashing."""
    from argon2 import PasswordHasher, Type

    from batteryloop.accounts import hashing, service

    monkeypatch.setattr(hashing, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                          parallelism=1, type=Type.ID))
    monkeypatch.setattr(hashing, "_DUMMY", None)
    service.VERIFIED.clear()


@pytest.fixture
def site(db: Database, data_dir: Path) -> Iterator[Site]:
    tokens = seed_plant(db)
    with TestClient(create_app(db)) as client:
        yield Site(db, client, tokens)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """Debian's Chromium (scripts/apt-packages.txt), never a browser build Playwright downloads."""
    from shared_data import need

    from .browser_support import CHROMIUM, TIMEOUT_MS

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("the playwright package is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.is_file():
        need(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"],
                                     headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def shot():  # type: ignore[no-untyped-def]
    """Keep a full-page screenshot of what the browser shows now."""
    from .browser_support import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:  # type: ignore[no-untyped-def]
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0
        return path

    return take
