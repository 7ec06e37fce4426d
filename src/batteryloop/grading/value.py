"""Residual value of a graded battery, per kWh and per unit, priced at the lower bound of SOH.

    floor    = sum(element kg/kWh x price x payable share) x rated kWh - recycling cost x rated kWh
    ceiling  = new-equivalent price x remaining kWh x remaining share of life
               remaining kWh = rated kWh x SOH_lower / 100
               life share    = clamp((SOH_lower - SOH_end_of_life) / (100 - SOH_end_of_life), 0, 1)
    estimate = floor for the recycling route, else max(floor, ceiling - route cost x remaining kWh)

The floor can be negative: a battery whose materials pay less than their recycling (LFP, often)
costs its holder money. Prices and parameters come from ``data/prices.toml`` (with sources and
dates) or a file of the same shape; any single parameter can be overridden.

The element content behind the floor comes, by default, from the recycling stage's cell bill of
materials (``recycling/data/composition.toml``, EverBatt/BatPaC: the same kilograms the recycling
mass balance starts from); ``[floor] composition = "stoichiometry"`` in the prices file (or the
``composition_source`` override) uses the cathode formula at a practical capacity instead (the
``[composition]`` tables of the prices file).
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from batteryloop.errors import NotFound, ValidationFailed

OVERRIDABLE = (
    "new_price_usd_per_kwh", "end_of_life_soh", "route_cost_usd_per_kwh",
    "recycling_cost_usd_per_kwh", "usd_per_eur", "metal_prices", "payable", "composition_source",
)
COMPOSITION_SOURCES = ("recycling", "stoichiometry")


@dataclass(frozen=True)
class Prices:
    data: dict[str, Any] = field(repr=False)
    sha256: str
    path: str

    def section(self, name: str) -> dict[str, Any]:
        return self.data.get(name, {})


def _parse(text: str, label: str) -> Prices:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationFailed(str(exc), location=label) from None
    for key in ("new_equivalent", "route_cost", "recycling", "metals", "composition", "atomic_mass"):
        if not isinstance(data.get(key), dict):
            raise ValidationFailed(f"a prices file needs a [{key}] table", location=label)
    return Prices(data, hashlib.sha256(text.encode()).hexdigest(), label)


@cache
def _shipped() -> Prices:
    path = files("batteryloop.grading") / "data" / "prices.toml"
    return _parse(path.read_text("utf-8"), "grading/data/prices.toml")


def load_prices(path: str | Path | None = None) -> Prices:
    """The shipped price table, or a file of the same shape."""
    if path is None:
        return _shipped()
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no prices file {p}")
    return _parse(p.read_text("utf-8"), str(p))


def resolve_chemistry(chemistry: str | None, prices: Prices) -> str:
    if not chemistry:
        raise ValidationFailed("the battery has no chemistry: the floor needs one", location="chemistry")
    key = chemistry.strip().upper().replace("-", "").replace(" ", "")
    table = prices.section("composition")
    if key in table:
        return key
    aliases = {k.upper(): v for k, v in prices.section("aliases").items()}
    if key in aliases:
        return aliases[key]
    raise ValidationFailed(
        f"no composition for chemistry '{chemistry}' (known: "
        f"{', '.join(sorted(set(table) | set(aliases)))}); pass one", location="chemistry")


def composition(chemistry: str, prices: Prices | None = None) -> dict[str, float]:
    """Element content in kg per kWh from the cathode's stoichiometry, plus Cu and Al foils."""
    prices = prices or load_prices()
    spec = prices.section("composition")[resolve_chemistry(chemistry, prices)]
    masses = prices.section("atomic_mass")
    formula = spec["formula"]
    formula_mass = sum(n * masses[el] for el, n in formula.items())
    cam_kg_per_kwh = 1000.0 / (spec["capacity_mah_g"] * spec["voltage_v"])
    out = {el: cam_kg_per_kwh * n * masses[el] / formula_mass for el, n in formula.items() if el != "O"}
    out["Cu"] = out.get("Cu", 0.0) + spec.get("cu_kg_per_kwh", 0.0)
    out["Al"] = out.get("Al", 0.0) + spec.get("al_kg_per_kwh", 0.0)
    return out


def floor_content(chemistry: str, prices: Prices | None = None, source: str | None = None,
                  ) -> tuple[dict[str, float], dict[str, Any]]:
    """Element kg per kWh for the floor, and where it came from (see the module text)."""
    prices = prices or load_prices()
    source = source or prices.section("floor").get("composition", "stoichiometry")
    if source not in COMPOSITION_SOURCES:
        raise ValidationFailed(f"unknown composition source {source!r} (known: "
                               f"{', '.join(COMPOSITION_SOURCES)})", location="composition_source")
    if not chemistry:
        raise ValidationFailed("the battery has no chemistry: the floor needs one", location="chemistry")
    if source == "stoichiometry":
        return composition(chemistry, prices), {
            "source": "stoichiometry", "chemistry": resolve_chemistry(chemistry, prices),
            "data": prices.path}
    from batteryloop.recycling import _data
    from batteryloop.recycling import composition as cells

    try:
        name = cells.canonical(chemistry)
    except NotFound:
        raise ValidationFailed(
            f"no composition for chemistry '{chemistry}' in recycling/data/composition.toml "
            f"(known: {', '.join(cells.chemistries())})", location="chemistry") from None
    content = cells.cell_content(name)
    return {el.capitalize(): content[el] for el in cells.ELEMENTS}, {
        "source": "recycling", "chemistry": name, "data": _data.label("composition.toml"),
        "sha256": _data.sha256("composition.toml")}


def _positive(name: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
            or value <= 0:
        raise ValidationFailed(f"{name} must be a positive number, got {value!r}", location=name)
    return float(value)


def _money(x: float) -> float:
    return round(x, 2)


def residual_value(
    *, rated_energy_kwh: float, soh_lower: float, chemistry: str, route: str,
    application: str | None = None, prices: Prices | None = None,
    composition_kg_per_kwh: Mapping[str, float] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Floor, ceiling, route cost and estimate, per unit and per kWh (see the module text)."""
    prices = prices or load_prices()
    overrides = dict(overrides or {})
    for key in overrides:
        if key not in OVERRIDABLE:
            raise ValidationFailed(f"unknown price parameter '{key}' (known: {', '.join(OVERRIDABLE)})",
                                   location="overrides")
    rated = _positive("rated_energy_kwh", rated_energy_kwh)
    if not isinstance(soh_lower, (int, float)) or not math.isfinite(soh_lower) or soh_lower < 0:
        raise ValidationFailed(f"soh_lower must be a non-negative number, got {soh_lower!r}",
                               location="soh_lower")
    soh = min(float(soh_lower), 100.0)
    remaining = rated * soh / 100.0
    usd_per_eur = float(overrides.get("usd_per_eur", prices.section("exchange").get("usd_per_eur", 1.0)))

    # floor: what the contained materials fetch, less recycling
    if composition_kg_per_kwh is not None:
        content, origin = dict(composition_kg_per_kwh), {"source": "given"}
    else:
        content, origin = floor_content(chemistry, prices, overrides.get("composition_source"))
    metal_prices = {k: v["usd_per_kg"] for k, v in prices.section("metals").items()}
    metal_prices.update(overrides.get("metal_prices", {}))
    payable = dict(prices.section("recycling").get("payable", {}))
    payable.update(overrides.get("payable", {}))
    materials = []
    gross = 0.0
    for element, kg in sorted(content.items()):
        if element not in metal_prices:
            raise ValidationFailed(f"no price for '{element}' in the prices table", location="metals")
        per_kwh = kg * metal_prices[element] * payable.get(element, 0.0)
        gross += per_kwh
        materials.append({"element": element, "kg_per_kwh": round(kg, 4), "kg": round(kg * rated, 3),
                          "usd_per_kg": metal_prices[element], "payable": payable.get(element, 0.0),
                          "value": _money(per_kwh * rated)})
    recycling_cost = float(overrides.get("recycling_cost_usd_per_kwh",
                                         prices.section("recycling")["cost_usd_per_kwh"]))
    floor_per_rated = gross - recycling_cost
    floor_unit = floor_per_rated * rated

    # ceiling: a new battery for the same job, scaled by remaining energy and life
    out_ceiling: dict[str, Any] | None = None
    ceiling_unit = 0.0
    life = 0.0
    if route != "waste":
        table = prices.section("new_equivalent")
        if not application or application not in table:
            raise ValidationFailed(f"no new-equivalent price for application {application!r} "
                                   f"(known: {', '.join(table)})", location="application")
        spec = table[application]
        new_price = float(overrides.get("new_price_usd_per_kwh", spec["usd_per_kwh"]))
        eol = float(overrides.get("end_of_life_soh", spec["end_of_life_soh"]))
        if not 0 <= eol < 100:
            raise ValidationFailed("end_of_life_soh must be in [0, 100)", location="end_of_life_soh")
        life = min(1.0, max(0.0, (soh - eol) / (100.0 - eol)))
        ceiling_unit = new_price * remaining * life
        out_ceiling = {
            "per_unit": _money(ceiling_unit),
            "per_remaining_kwh": _money(new_price * life),
            "new_price_per_kwh": new_price, "end_of_life_soh": eol, "life_fraction": round(life, 4),
            "source": spec.get("source"),
        }
    route_spec = prices.section("route_cost").get(route, {})
    if "route_cost_usd_per_kwh" in overrides:
        route_cost_kwh = float(overrides["route_cost_usd_per_kwh"])
    elif "usd_per_kwh" in route_spec:
        route_cost_kwh = float(route_spec["usd_per_kwh"])
    else:
        route_cost_kwh = float(route_spec.get("eur_per_kwh", 0.0)) * usd_per_eur
    route_cost_unit = route_cost_kwh * remaining if route != "waste" else 0.0
    if route == "waste":
        estimate_unit, basis = floor_unit, "floor: the battery goes to recycling"
    elif ceiling_unit - route_cost_unit >= floor_unit:
        estimate_unit, basis = ceiling_unit - route_cost_unit, "ceiling less the route cost"
    else:
        estimate_unit, basis = floor_unit, "floor: recycling pays more than the route"

    def per_remaining(x: float) -> float | None:
        return _money(x / remaining) if remaining > 0 else None

    return {
        "currency": prices.data.get("currency", "USD"), "as_of": prices.data.get("as_of"),
        "prices": {"path": prices.path, "sha256": prices.sha256},
        "priced_at": "lower bound of SOH",
        "inputs": {"rated_energy_kwh": rated, "soh_lower": soh, "chemistry": chemistry,
                   "route": route, "application": application,
                   **({"overrides": overrides} if overrides else {})},
        "remaining_energy_kwh": round(remaining, 4),
        "floor": {"per_unit": _money(floor_unit), "per_rated_kwh": _money(floor_per_rated),
                  "per_remaining_kwh": per_remaining(floor_unit),
                  "recycling_cost_per_kwh": recycling_cost, "materials": materials,
                  "composition": origin},
        "ceiling": out_ceiling,
        "route_cost": {"per_unit": _money(route_cost_unit),
                       "per_remaining_kwh": _money(route_cost_kwh) if route != "waste" else 0.0,
                       "source": route_spec.get("source")},
        "estimate": {"per_unit": _money(estimate_unit), "per_remaining_kwh": per_remaining(estimate_unit),
                     "basis": basis},
    }


def rated_energy_kwh(battery: Any) -> float | None:
    """From the registry row: rated energy, or rated capacity x nominal voltage."""
    if battery.rated_energy_wh:
        return battery.rated_energy_wh / 1000.0
    if battery.rated_capacity_ah and battery.nominal_voltage_v:
        return battery.rated_capacity_ah * battery.nominal_voltage_v / 1000.0
    return None
