"""The passport's attributes and their Annex XIII access tiers, from ``data/annex_xiii.toml``.

This module only answers questions about the table (which attributes exist, where they sit in the
Battery Pass model, who may read them); ``passport.view`` applies it to data.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from batteryloop.accounts.viewer import TIERS, Tier, Viewer
from batteryloop.errors import NotFound

SOURCES = ("static", "registry", "ledger")
TYPES = ("number", "string", "uri", "enum", "object", "array")


@dataclass(frozen=True)
class Attribute:
    id: str
    category: str
    path: tuple[str, ...]  # inside the category's Battery Pass document; () = not in the model
    tier: Tier
    basis: str
    reading: str  # "regulation" | "project"
    source: str  # static | registry | ledger
    type: str
    label: str
    unit: str | None = None
    note: str | None = None
    values: tuple[str, ...] = ()
    shape: str | None = None

    @property
    def settable(self) -> bool:
        """Set by the maker (or the responsible operator) through create/update/import."""
        return self.source == "static"

    @property
    def reportable(self) -> bool:
        """Carried by a `condition-reported` ledger event."""
        return self.source == "ledger" and self.shape is not None

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id, "category": self.category, "path": ".".join(self.path) or None,
            "tier": self.tier, "basis": self.basis, "reading": self.reading, "source": self.source,
            "type": self.type, "unit": self.unit, "label": self.label, "note": self.note,
        }


def _data(name: str) -> dict[str, Any]:
    return tomllib.loads((files("batteryloop.passport") / "data" / name).read_text("utf-8"))


@cache
def batterypass() -> dict[str, Any]:
    """Categories, status names, chemistry names, aliases and schema overrides."""
    return _data("batterypass.toml")


@cache
def table() -> dict[str, Attribute]:
    """Every attribute by id, in the order of the data file; checked once when first loaded."""
    categories = batterypass()["categories"]
    out: dict[str, Attribute] = {}
    paths: dict[tuple[str, tuple[str, ...]], str] = {}
    for raw in _data("annex_xiii.toml")["attribute"]:
        attr = Attribute(
            id=raw["id"], category=raw["category"],
            path=tuple(p for p in raw["path"].split(".") if p), tier=raw["tier"],
            basis=raw["basis"], reading=raw["reading"], source=raw["source"], type=raw["type"],
            label=raw["label"], unit=raw.get("unit"), note=raw.get("note"),
            values=tuple(raw.get("values", ())), shape=raw.get("shape"),
        )
        problems = [
            f"unknown category '{attr.category}'" if attr.category not in categories else "",
            f"unknown tier '{attr.tier}'" if attr.tier not in TIERS else "",
            f"unknown source '{attr.source}'" if attr.source not in SOURCES else "",
            f"unknown type '{attr.type}'" if attr.type not in TYPES else "",
            "reading must be regulation or project" if attr.reading not in ("regulation", "project") else "",
            "duplicate id" if attr.id in out else "",
            f"same path as {paths.get((attr.category, attr.path))}"
            if attr.path and (attr.category, attr.path) in paths else "",
        ]
        problems = [p for p in problems if p]
        if problems:
            raise ValueError(f"annex_xiii.toml: {attr.id}: {'; '.join(problems)}")
        out[attr.id] = attr
        if attr.path:
            paths[(attr.category, attr.path)] = attr.id
    return out


def attribute(attr_id: str) -> Attribute:
    try:
        return table()[attr_id]
    except KeyError:
        raise NotFound(f"no passport attribute '{attr_id}'") from None


def categories() -> dict[str, dict[str, Any]]:
    return batterypass()["categories"]


def visible(viewer: Viewer) -> list[Attribute]:
    return [a for a in table().values() if viewer.may_see(a.tier)]


def withheld_counts(viewer: Viewer) -> dict[str, int]:
    """How many attributes of each higher tier the table keeps from this viewer (never values)."""
    counts: dict[str, int] = {}
    for a in table().values():
        if not viewer.may_see(a.tier):
            counts[a.tier] = counts.get(a.tier, 0) + 1
    return counts


def by_path(category: str) -> dict[tuple[str, ...], Attribute]:
    return {a.path: a for a in table().values() if a.category == category and a.path}
