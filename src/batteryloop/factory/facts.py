"""Loads the factory's data files (``factory/data/*.toml``) once."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from batteryloop.errors import ValidationFailed


@cache
def load(name: str) -> dict[str, Any]:
    """The parsed TOML file ``data/<name>.toml`` beside this module."""
    text = (files("batteryloop.factory") / "data" / f"{name}.toml").read_text("utf-8")
    return tomllib.loads(text)


def load_file(path: str | Path) -> dict[str, Any]:
    """A user's TOML file (a plant's own line, limits or factors), with a clear error if broken."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise ValidationFailed("file not found", location=str(p)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValidationFailed(f"not valid TOML: {exc}", location=str(p)) from exc


def tags() -> dict[str, dict[str, Any]]:
    """Tag name -> {unit, range, location, description} from ``tags.toml``."""
    return load("tags")["tags"]
