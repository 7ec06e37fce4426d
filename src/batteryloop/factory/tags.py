"""The sensor tags of a recovery line: name, unit, plausible range, where the instrument sits.

The shipped list (``factory/data/tags.toml``) is this project's naming for the demo line; a plant
adds or overrides tags in a deployment file with the same ``[tags."name"]`` tables. Ingest checks
every sample against its tag: an unknown tag, another unit or a value outside the range is
quarantined, never converted or clipped.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import polars as pl

from batteryloop.errors import NotFound, ValidationFailed

# Tag names are dotted lower-case words; a topic level (no '/', '+', '#') and never '_batch'.
TAG_NAME = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*\Z")
_KEYS = {"unit", "range", "location", "description"}


@dataclass(frozen=True)
class Tag:
    name: str
    unit: str
    low: float
    high: float
    location: str
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "tag": self.name, "unit": self.unit, "range": [self.low, self.high],
            "location": self.location, "description": self.description,
        }


class TagSet(Mapping[str, Tag]):
    """An immutable set of tags with a column view for vectorised checks."""

    def __init__(self, tags: Mapping[str, Tag]) -> None:
        self._tags = dict(sorted(tags.items()))
        self._frame = pl.DataFrame(
            {
                "tag": list(self._tags),
                "tag_unit": [t.unit for t in self._tags.values()],
                "tag_low": [t.low for t in self._tags.values()],
                "tag_high": [t.high for t in self._tags.values()],
            },
            schema={"tag": pl.String, "tag_unit": pl.String, "tag_low": pl.Float64,
                    "tag_high": pl.Float64},
        )

    def __getitem__(self, name: str) -> Tag:
        try:
            return self._tags[name]
        except KeyError:
            raise NotFound(f"unknown tag {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tags

    def __iter__(self) -> Iterator[str]:
        return iter(self._tags)

    def __len__(self) -> int:
        return len(self._tags)

    def frame(self) -> pl.DataFrame:
        """tag, tag_unit, tag_low, tag_high: joined onto samples to check them in columns."""
        return self._frame


def _tag_from_table(name: str, table: Any, where: str) -> Tag:
    loc = f'{where}: [tags."{name}"]'
    if not TAG_NAME.match(name):
        raise ValidationFailed("tag name must be dotted lower-case words", location=loc)
    if not isinstance(table, dict):
        raise ValidationFailed("must be a table", location=loc)
    unknown = set(table) - _KEYS
    if unknown:
        raise ValidationFailed(f"unknown key(s) {sorted(unknown)}", location=loc)
    unit = table.get("unit")
    if not isinstance(unit, str) or not unit.strip():
        raise ValidationFailed("'unit' must be a non-empty string", location=loc)
    span = table.get("range")
    if (
        not isinstance(span, list) or len(span) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in span)
        or not all(math.isfinite(v) for v in span) or not span[0] < span[1]
    ):
        raise ValidationFailed("'range' must be [low, high] with low < high", location=loc)
    location = table.get("location")
    if not isinstance(location, str) or not location.strip():
        raise ValidationFailed("'location' must be a non-empty string", location=loc)
    return Tag(name, unit, float(span[0]), float(span[1]), location,
               str(table.get("description", "")))


def _read(path: Path | Any, where: str) -> dict[str, Tag]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValidationFailed(f"not valid TOML: {exc}", location=where) from None
    tables = raw.get("tags")
    if not isinstance(tables, dict):
        raise ValidationFailed("needs [tags.\"name\"] tables", location=where)
    return {name: _tag_from_table(name, table, where) for name, table in tables.items()}


def shipped_tags_path() -> Any:
    return files("batteryloop.factory") / "data" / "tags.toml"


def load_tags(deployment: Path | None = None) -> TagSet:
    """The shipped tags, with a deployment file's tags added (a same-named tag is replaced)."""
    tags = _read(shipped_tags_path(), "factory/data/tags.toml")
    if deployment is not None:
        tags.update(_read(Path(deployment), str(deployment)))
    return TagSet(tags)
