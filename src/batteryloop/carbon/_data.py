"""The carbon package's own data files (``data/*.toml``), read once."""

from __future__ import annotations

import hashlib
import tomllib
from functools import cache
from importlib.resources import files
from typing import Any


@cache
def text(name: str) -> str:
    return (files("batteryloop.carbon") / "data" / name).read_text("utf-8")


@cache
def load(name: str) -> dict[str, Any]:
    return tomllib.loads(text(name))


def sha256(name: str) -> str:
    return hashlib.sha256(text(name).encode()).hexdigest()


def label(name: str) -> str:
    return f"carbon/data/{name}"


def default_grid(kind: str = "grid") -> str:
    """The convention's electricity mix when the caller gives none (``processes.toml [defaults]``)."""
    return str(load("processes.toml")["defaults"][kind])
