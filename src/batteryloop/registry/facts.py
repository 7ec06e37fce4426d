"""Loads the registry's data files (``registry/data/*.toml``) once."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib.resources import files
from typing import Any


@cache
def load(name: str) -> dict[str, Any]:
    """The parsed TOML file ``data/<name>.toml`` beside this module."""
    return tomllib.loads((files("batteryloop.registry") / "data" / f"{name}.toml").read_text("utf-8"))
