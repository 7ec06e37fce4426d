"""Where CI differs from a laptop: missing real data skips locally and fails under ``CI=true``.

A module of its own (not conftest) so test files can import it: several test folders have a
conftest.py of their own, and ``from conftest import ...`` would reach whichever loaded last.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def need(reason: str) -> None:
    """Skip locally, fail in CI: what CI needs must be there."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: missing is a failure)")
    pytest.skip(reason)
