"""One reader for the recycling data files, so every module cites the same parsed text."""

from __future__ import annotations

import hashlib
import tomllib
from functools import lru_cache
from importlib.resources import files
from typing import Any


@lru_cache(maxsize=16)
def _text(name: str) -> str:
    return (files("batteryloop.recycling") / "data" / name).read_text("utf-8")


def load(name: str) -> dict[str, Any]:
    """A data file of this package, parsed (a fresh copy: callers may change it)."""
    return tomllib.loads(_text(name))


def sha256(name: str) -> str:
    return hashlib.sha256(_text(name).encode("utf-8")).hexdigest()


def label(name: str) -> str:
    return f"recycling/data/{name}"
