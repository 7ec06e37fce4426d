"""Where the real tester files are: BATTERYLOOP_SHARED, else the ``shared`` folder beside the repo.

A missing file skips its test on a developer machine and FAILS it under CI=true, so CI cannot go
green by silently testing nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _shared_root() -> Path:
    env = os.environ.get("BATTERYLOOP_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"shared data missing under CI: {what}")
    pytest.skip(f"shared data not available: {what}")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared data folder (see module docstring)."""
    root = _shared_root()
    if not root.is_dir():
        _missing(str(root))
    return root


@pytest.fixture(scope="session")
def cycler_file(shared_dir: Path) -> Callable[[str], Path]:
    """``cycler_file("maccor/x.010")`` -> path under data/cyclers, or skip/fail if absent."""

    def get(rel: str) -> Path:
        p = shared_dir / "data" / "cyclers" / rel
        if not p.is_file():
            _missing(str(p))
        return p

    return get
