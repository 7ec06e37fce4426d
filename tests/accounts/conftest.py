"""Accounts tests: cheap argon2 parameters (still argon2id hashes) and a private data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type

from batteryloop.accounts import hashing, service
from batteryloop.settings import get_settings


@pytest.fixture(autouse=True)
def _fast_accounts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(hashing, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                          parallelism=1, type=Type.ID))
    monkeypatch.setattr(hashing, "_DUMMY", None)
    service.VERIFIED.clear()
    monkeypatch.setenv("BATTERYLOOP_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
