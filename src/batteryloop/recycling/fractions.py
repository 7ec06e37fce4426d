"""Dismantled fractions turned into the mass balance's constituents, as columns.

A dismantler weighs fractions (black mass, foils, casings, housing...); the balance and the
compliance figures need kilograms of lithium, cobalt, copper, graphite... A fraction's make-up is
either its cell parts in the proportions of the battery's chemistry (``composition``) or a fixed
material make-up (``data/fractions.toml``); one join turns a table of weighed fractions into a
table of constituent masses.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import polars as pl

from batteryloop.errors import ValidationFailed
from batteryloop.recycling import _data, composition
from batteryloop.recycling.composition import CONSTITUENTS

FILE = "fractions.toml"


@lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    return _data.load(FILE)


def kinds() -> dict[str, dict[str, Any]]:
    """Fraction kinds with their level, description and default material."""
    return {k: dict(v) for k, v in _raw()["fractions"].items()}


def materials() -> dict[str, dict[str, float]]:
    return {name: {k: float(v) for k, v in spec.items() if k in CONSTITUENTS}
            for name, spec in _raw()["materials"].items()}


def is_cell_derived(kind: str) -> bool:
    return "parts" in _raw()["fractions"].get(kind, {})


def check(kind: str, material: str | None, chemistry: str | None, *, location: str) -> str | None:
    """Refuse an unknown fraction kind or material; return the material a fixed make-up uses."""
    spec = _raw()["fractions"].get(kind)
    if spec is None:
        raise ValidationFailed(f"unknown fraction '{kind}' (known: {', '.join(kinds())})",
                               location=location)
    if "parts" in spec:
        if not chemistry:
            raise ValidationFailed(f"fraction '{kind}' comes from cells: the battery's chemistry "
                                   "is needed (set it in the registry or give --chemistry)",
                                   location=location)
        composition.canonical(chemistry)
        if material:
            raise ValidationFailed(f"fraction '{kind}' takes its make-up from the chemistry, not "
                                   "a material", location=location)
        return None
    chosen = material or spec.get("default_material")
    if chosen not in _raw()["materials"]:
        raise ValidationFailed(f"unknown material '{chosen}' for fraction '{kind}' (known: "
                               f"{', '.join(_raw()['materials'])})", location=location)
    return str(chosen)


def makeup(kind: str, chemistry: str | None, material: str | None) -> dict[str, float]:
    """kg of each constituent per kg of this fraction (adds up to 1)."""
    spec = _raw()["fractions"][kind]
    if "parts" in spec:
        parts = composition.cell_parts(str(chemistry))
        out: dict[str, float] = {}
        for part in spec["parts"]:
            for k, v in parts[part].items():
                out[k] = out.get(k, 0.0) + v
        total = sum(out.values())
        return {k: v / total for k, v in out.items() if v > 0}
    return materials()[material or spec["default_material"]]


def constituents(table: pl.DataFrame) -> pl.DataFrame:
    """Weighed fractions -> constituent masses.

    ``table`` has columns ``fraction``, ``mass_kg``, ``chemistry`` (null for pack parts) and
    ``material`` (null: the fraction's default), plus any key columns the caller keeps (battery,
    dismantling id); the result has those keys and ``constituent``, ``mass_kg``.
    """
    keys = [c for c in table.columns if c not in ("fraction", "mass_kg", "chemistry", "material")]
    combos = table.select("fraction", "chemistry", "material").unique()
    rows = [
        {"fraction": f, "chemistry": ch, "material": m, "constituent": k, "share": v}
        for f, ch, m in combos.iter_rows()  # one row per distinct make-up, not per fraction
        for k, v in makeup(f, composition.canonical(ch) if ch and is_cell_derived(f) else None,
                           m).items()
    ]
    shares = pl.DataFrame(rows, schema={"fraction": pl.String, "chemistry": pl.String,
                                        "material": pl.String, "constituent": pl.String,
                                        "share": pl.Float64})
    joined = table.join(shares, on=["fraction", "chemistry", "material"], how="left",
                        nulls_equal=True)
    return (joined.with_columns((pl.col("mass_kg") * pl.col("share")).alias("mass_kg"))
            .group_by([*keys, "constituent"], maintain_order=True).agg(pl.col("mass_kg").sum()))
