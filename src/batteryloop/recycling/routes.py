"""Process routes (pyrometallurgical, hydrometallurgical, direct) as configurable models.

A route says, for each constituent of the balance, what share leaves as a product and where the
rest goes (residue or loss), and what reagents and energy one kg of cell-derived input takes.
Defaults are EverBatt's (``data/routes.toml``, cited per table); a batch may override any number
and keeps the route exactly as it ran, with the file's SHA-256, so its figures can be re-derived.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.recycling import _data
from batteryloop.recycling.composition import CONSTITUENTS

FILE = "routes.toml"
KINDS = ("product", "residue", "loss")


@dataclass(frozen=True)
class Fate:
    recovered: float
    rest: str
    product: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Route:
    name: str
    title: str
    source: str
    fates: dict[str, Fate]
    reagents_kg_per_kg: dict[str, float]
    energy_mj_per_kg: dict[str, float]
    water_gal_per_kg: float
    overrides: dict[str, float] = field(default_factory=dict)
    data_sha256: str = ""

    def fate(self, constituent: str) -> Fate:
        return self.fates[constituent]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "source": self.source,
            "fates": {k: {"recovered": f.recovered, "rest": f.rest, "product": f.product,
                          "note": f.note} for k, f in self.fates.items()},
            "reagents_kg_per_kg": self.reagents_kg_per_kg,
            "energy_mj_per_kg": self.energy_mj_per_kg, "water_gal_per_kg": self.water_gal_per_kg,
            "overrides": self.overrides, "data_file": _data.label(FILE),
            "data_sha256": self.data_sha256,
        }

    def modelled_outputs(self, inputs: pl.DataFrame) -> pl.DataFrame:
        """What the route makes of constituent masses (``constituent``, ``mass_kg``): one row per
        constituent and kind, with the product's name; closes by construction."""
        fates = pl.DataFrame(
            [{"constituent": k, "recovered": f.recovered, "rest": f.rest, "product": f.product}
             for k, f in self.fates.items()],
            schema={"constituent": pl.String, "recovered": pl.Float64, "rest": pl.String,
                    "product": pl.String})
        totals = inputs.group_by("constituent").agg(pl.col("mass_kg").sum())
        joined = totals.join(fates, on="constituent", how="left")
        product = joined.select(
            pl.col("product").fill_null(pl.col("constituent")).alias("stream"),
            pl.lit("product").alias("kind"), "constituent",
            (pl.col("mass_kg") * pl.col("recovered")).alias("mass_kg"))
        rest = joined.select(
            pl.format("{} ({})", pl.col("rest"), pl.col("constituent")).alias("stream"),
            pl.col("rest").alias("kind"), "constituent",
            (pl.col("mass_kg") * (1.0 - pl.col("recovered"))).alias("mass_kg"))
        return pl.concat([product, rest]).filter(pl.col("mass_kg") > 0).sort("constituent", "kind")


def names() -> list[str]:
    return list(_data.load(FILE)["routes"])


def balance_settings() -> dict[str, Any]:
    return dict(_data.load(FILE)["balance"])


def _number(value: Any, where: str, *, share: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationFailed(f"expected a number, got {value!r}", location=where)
    if value < 0 or (share and value > 1):
        raise ValidationFailed(f"{value} is outside {'0..1' if share else '>= 0'}", location=where)
    return float(value)


def load(name: str, overrides: dict[str, float] | None = None) -> Route:
    """A route by name, with ``overrides`` such as ``{"li.recovered": 0.95,
    "energy.electricity": 3.0, "reagents.sulfuric_acid": 1.0}``."""
    raw = _data.load(FILE)["routes"]
    if name not in raw:
        raise NotFound(f"unknown recycling route '{name}' (known: {', '.join(raw)})")
    spec = raw[name]
    where = f"{_data.label(FILE)} [routes.{name}]"
    default_rest = spec.get("default_rest", "residue")
    fates: dict[str, Fate] = {}
    for k in CONSTITUENTS:
        f = spec.get("constituents", {}).get(k)
        fates[k] = Fate(_number(f["recovered"], f"{where} {k}", share=True), f["rest"],
                        f.get("product"), f.get("note")) if f else Fate(0.0, default_rest)
    reagents = {k: _number(v, f"{where} reagents.{k}") for k, v in spec.get("reagents_kg_per_kg", {}).items()}
    energy = {k: _number(v, f"{where} energy.{k}") for k, v in spec.get("energy_mj_per_kg", {}).items()}
    water = _number(spec.get("water_gal_per_kg", {}).get("water", 0.0), f"{where} water")
    applied: dict[str, float] = {}
    for key, value in (overrides or {}).items():
        head, _, tail = key.partition(".")
        loc = f"overrides['{key}']"
        if head in fates and tail == "recovered":
            v = _number(value, loc, share=True)
            fates[head] = Fate(v, fates[head].rest, fates[head].product or head, fates[head].note)
        elif head == "reagents" and tail:
            reagents[tail] = _number(value, loc)
        elif head == "energy" and tail:
            energy[tail] = _number(value, loc)
        elif head == "water" and not tail:
            water = _number(value, loc)
        else:
            raise ValidationFailed("expected CONSTITUENT.recovered, reagents.NAME, energy.NAME or "
                                   "water", location=loc)
        applied[key] = float(value)
    for k, f in fates.items():
        if f.rest not in ("residue", "loss"):
            raise ValidationFailed(f"rest must be 'residue' or 'loss', not '{f.rest}'",
                                   location=f"{where} {k}")
    return Route(name=name, title=spec.get("title", name), source=spec.get("source", ""),
                 fates=fates, reagents_kg_per_kg=reagents, energy_mj_per_kg=energy,
                 water_gal_per_kg=water, overrides=applied, data_sha256=_data.sha256(FILE))


def from_dict(d: dict[str, Any]) -> Route:
    """A route as a batch stored it (``Route.as_dict``)."""
    return Route(
        name=d["name"], title=d["title"], source=d["source"],
        fates={k: Fate(v["recovered"], v["rest"], v.get("product"), v.get("note"))
               for k, v in d["fates"].items()},
        reagents_kg_per_kg=dict(d["reagents_kg_per_kg"]), energy_mj_per_kg=dict(d["energy_mj_per_kg"]),
        water_gal_per_kg=float(d["water_gal_per_kg"]), overrides=dict(d.get("overrides", {})),
        data_sha256=d.get("data_sha256", ""))
