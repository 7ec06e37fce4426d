"""The batch mass balance: what came in against what went out, constituent by constituent.

inputs = products + residues + losses must hold within a stated tolerance, for the whole batch and
for each constituent big enough to weigh; whatever does not is flagged with its numbers, so a
missing output stream or a wrong weight shows up before any recovery rate is claimed from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from batteryloop.errors import ValidationFailed
from batteryloop.recycling.composition import CONSTITUENTS
from batteryloop.recycling.routes import KINDS, balance_settings

OUTPUT_SCHEMA = {"stream": pl.String, "kind": pl.String, "constituent": pl.String,
                 "mass_kg": pl.Float64}


@dataclass
class Balance:
    rows: list[dict[str, Any]]
    total: dict[str, float]
    tolerance_pct: float
    constituent_tolerance_pct: float
    min_constituent_kg: float
    flags: list[str] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return not self.flags

    def as_dict(self) -> dict[str, Any]:
        return {"closed": self.closed, "tolerance_pct": self.tolerance_pct,
                "constituent_tolerance_pct": self.constituent_tolerance_pct,
                "min_constituent_kg": self.min_constituent_kg, "total": self.total,
                "constituents": self.rows, "flags": self.flags}


def check_outputs(outputs: pl.DataFrame, *, location: str = "outputs") -> pl.DataFrame:
    """Refuse an output table with an unknown kind or constituent or an impossible weight."""
    missing = [c for c in OUTPUT_SCHEMA if c not in outputs.columns]
    if missing:
        raise ValidationFailed(f"missing column(s) {', '.join(missing)}", location=location)
    out = outputs.select(list(OUTPUT_SCHEMA)).with_row_index("row", offset=1)
    bad = out.filter(~pl.col("kind").is_in(KINDS) | pl.col("kind").is_null())
    if bad.height:
        r = bad.row(0, named=True)
        raise ValidationFailed(f"kind '{r['kind']}' is not one of {', '.join(KINDS)}",
                               location=f"{location} row {r['row']}")
    bad = out.filter(~pl.col("constituent").is_in(CONSTITUENTS) | pl.col("constituent").is_null())
    if bad.height:
        r = bad.row(0, named=True)
        raise ValidationFailed(f"unknown constituent '{r['constituent']}' (known: "
                               f"{', '.join(CONSTITUENTS)})", location=f"{location} row {r['row']}")
    bad = out.filter(pl.col("mass_kg").is_null() | ~pl.col("mass_kg").is_finite()
                     | (pl.col("mass_kg") < 0))
    if bad.height:
        r = bad.row(0, named=True)
        raise ValidationFailed(f"mass_kg {r['mass_kg']} is missing or impossible (need a finite "
                               "weight >= 0)", location=f"{location} row {r['row']}")
    return out.drop("row")


def balance(inputs: pl.DataFrame, outputs: pl.DataFrame, *, tolerance_pct: float | None = None,
            constituent_tolerance_pct: float | None = None) -> Balance:
    """Close ``inputs`` (constituent, mass_kg) against ``outputs`` (stream, kind, constituent,
    mass_kg)."""
    settings = balance_settings()
    tol = float(settings["tolerance_pct"] if tolerance_pct is None else tolerance_pct)
    ctol = float(settings["constituent_tolerance_pct"] if constituent_tolerance_pct is None
                 else constituent_tolerance_pct)
    min_kg = float(settings["min_constituent_kg"])
    if not (math.isfinite(tol) and tol >= 0 and math.isfinite(ctol) and ctol >= 0):
        raise ValidationFailed("tolerances must be finite and >= 0", location="tolerance_pct")
    ins = inputs.group_by("constituent").agg(pl.col("mass_kg").sum().alias("input_kg"))
    outs = (check_outputs(outputs).group_by("constituent", "kind").agg(pl.col("mass_kg").sum())
            .pivot(on="kind", index="constituent", values="mass_kg"))
    for kind in KINDS:
        if kind not in outs.columns:
            outs = outs.with_columns(pl.lit(0.0).alias(kind))
    table = (ins.join(outs, on="constituent", how="full", coalesce=True)
             .with_columns(pl.col("input_kg", *KINDS).fill_null(0.0))
             .with_columns((pl.col("product") + pl.col("residue") + pl.col("loss")).alias("output_kg"))
             .with_columns((pl.col("input_kg") - pl.col("output_kg")).alias("unaccounted_kg"))
             .with_columns(pl.when(pl.col("input_kg") > 0)
                           .then(100.0 * pl.col("unaccounted_kg") / pl.col("input_kg"))
                           .otherwise(None).alias("unaccounted_pct"))
             .with_columns(pl.col("constituent").cast(pl.Enum(list(CONSTITUENTS))))
             .sort("constituent").with_columns(pl.col("constituent").cast(pl.String)))
    flags: list[str] = []
    for r in table.filter(
        (pl.col("input_kg") >= min_kg) & (pl.col("unaccounted_pct").abs() > ctol)
        | ((pl.col("input_kg") < min_kg) & (pl.col("output_kg") > pl.col("input_kg") + min_kg))
    ).iter_rows(named=True):
        flags.append(f"{r['constituent']}: in {r['input_kg']:.3f} kg, out {r['output_kg']:.3f} kg "
                     f"(products {r['product']:.3f}, residues {r['residue']:.3f}, losses "
                     f"{r['loss']:.3f}): {r['unaccounted_kg']:+.3f} kg unaccounted, beyond "
                     f"{ctol:g} %")
    sums = table.select(pl.col("input_kg", "product", "residue", "loss", "output_kg",
                               "unaccounted_kg").sum()).row(0, named=True)
    total_in = sums["input_kg"]
    if total_in <= 0:
        raise ValidationFailed("the batch has no input mass", location="inputs")
    total = {**sums, "unaccounted_pct": 100.0 * sums["unaccounted_kg"] / total_in}
    if abs(total["unaccounted_pct"]) > tol:
        flags.insert(0, f"batch: in {total_in:.3f} kg, out {sums['output_kg']:.3f} kg: "
                        f"{sums['unaccounted_kg']:+.3f} kg ({total['unaccounted_pct']:+.2f} %) "
                        f"unaccounted, beyond {tol:g} %")
    return Balance(rows=table.to_dicts(), total=total, tolerance_pct=tol,
                   constituent_tolerance_pct=ctol, min_constituent_kg=min_kg, flags=flags)
