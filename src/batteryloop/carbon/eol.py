"""A recycling route in carbon terms: energy, reagents and process CO2 per kg of cell input.

The route itself (recovery per constituent, reagents and energy per kg, from EverBatt) belongs to
``recycling.routes``; this module adds what carbon needs on top: the CO2 of carbonaceous
constituents the route burns (their carbon content from formulas), of carbonate reagents that
decompose, and of supercritical CO2 lost in extraction ([EVERBATT] section 5.3.1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batteryloop.carbon import _data
from batteryloop.carbon.factors import FactorSet, element_mass_fraction, formula_mass
from batteryloop.errors import ValidationFailed
from batteryloop.recycling import composition
from batteryloop.recycling.routes import Route

ENERGY_CARRIERS = ("electricity", "natural_gas", "diesel")
_CO2 = "CO2"


def co2_per_carbon() -> float:
    """kg CO2 per kg of carbon oxidised (molar masses)."""
    return formula_mass(_CO2) / formula_mass("C")


def _carbon_fraction(formula: str) -> float:
    return element_mass_fraction(formula, "C")


def carbon_fractions(chemistry: str) -> dict[str, float]:
    """kg of carbon per kg of each carbonaceous balance constituent of a chemistry's cell."""
    spec = _data.load("processes.toml")["recycling_process_co2"]["carbon_formula"]
    bom = composition.design(chemistry).bom
    cf = {k: _carbon_fraction(v) for k, v in spec.items()}
    # electrolyte_other = electrolyte less its Li and P: EC, DMC and LiPF6's fluorine
    salt_f = bom["lipf6"] * element_mass_fraction("LiPF6", "F")
    electrolyte_other = bom["ec"] + bom["dmc"] + salt_f
    plastics = bom["pp"] + bom["pe"] + bom["pet"]
    return {
        "graphite": cf["graphite"],
        "carbon_black": cf["carbon_black"],
        "binder": cf["binder"],
        "electrolyte_other": (bom["ec"] * cf["ec"] + bom["dmc"] * cf["dmc"]) / electrolyte_other,
        "plastics": (bom["pp"] * cf["pp"] + bom["pe"] * cf["pe"] + bom["pet"] * cf["pet"]) / plastics,
    }


def decomposition_co2(reagent_formula: str) -> float:
    """kg CO2 released per kg of a carbonate that decomposes (one CO2 per carbon atom)."""
    return _carbon_fraction(reagent_formula) * co2_per_carbon()


@dataclass(frozen=True)
class RouteBurden:
    """What 1 kg of cell input costs a route: energy, reagents, process CO2, and what it yields."""

    route: str
    chemistry: str
    electricity_kwh: float
    natural_gas_mj: float
    diesel_mj: float
    reagents_kg: dict[str, float]
    process_co2_kg: float
    process_co2_detail: dict[str, float]
    recovered_kg: dict[str, float]
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"route": self.route, "chemistry": self.chemistry, "per": "kg of cell input",
                "electricity_kwh": self.electricity_kwh, "natural_gas_mj": self.natural_gas_mj,
                "diesel_mj": self.diesel_mj, "reagents_kg": self.reagents_kg,
                "process_co2_kg": self.process_co2_kg, "process_co2_detail": self.process_co2_detail,
                "recovered_kg": self.recovered_kg, "source": self.source}


def process_co2(lost_kg: Mapping[str, float], reagents_kg: Mapping[str, float],
                fractions: Mapping[str, float], factors: FactorSet) -> dict[str, float]:
    """Process CO2 (kg) from burning lost carbonaceous constituents, decomposing carbonates and
    losing supercritical CO2, for given lost masses and reagent use per the same basis."""
    spec = _data.load("processes.toml")["recycling_process_co2"]
    out: dict[str, float] = {}
    k = co2_per_carbon()
    for constituent, frac in fractions.items():
        kg = lost_kg.get(constituent, 0.0)
        if kg > 0:
            out[f"burned {constituent}"] = kg * frac * k
    return out | _reagent_co2(reagents_kg, spec, factors)


def _reagent_co2(reagents: Mapping[str, float], spec: Mapping[str, Any], factors: FactorSet) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in spec["decomposing_reagents"]:
        kg = reagents.get(name, 0.0)
        if kg > 0:
            formula = factors.material(name).formula
            if not formula:
                raise ValidationFailed(f"reagent '{name}' decomposes but has no formula",
                                       location=f"factors [material.{name}]")
            out[f"decomposed {name}"] = kg * decomposition_co2(formula)
    co2 = reagents.get("carbon_dioxide", 0.0)
    if co2 > 0:
        out["supercritical CO2 lost"] = co2 * float(spec["supercritical_co2_loss"])
    return out


def route_burden(route: Route, chemistry: str, factors: FactorSet) -> RouteBurden:
    """Per kg of a chemistry's cells through ``route``."""
    unknown = sorted(set(route.energy_mj_per_kg) - set(ENERGY_CARRIERS))
    if unknown:
        raise ValidationFailed(f"route '{route.name}' uses energy carriers the carbon model does not "
                               f"know: {', '.join(unknown)} (known: {', '.join(ENERGY_CARRIERS)})",
                               location=f"route {route.name}")
    for name in route.reagents_kg_per_kg:
        factors.material(name)  # a clear error now rather than a missing process later
    constituents = composition.cell_constituents(chemistry)
    recovered = {c: kg * route.fate(c).recovered for c, kg in constituents.items()
                 if kg > 0 and route.fate(c).recovered > 0}
    lost = {c: kg * (1.0 - route.fate(c).recovered) for c, kg in constituents.items()
            if route.fate(c).rest == "loss"}
    detail = process_co2(lost, route.reagents_kg_per_kg, carbon_fractions(chemistry), factors)
    energy = route.energy_mj_per_kg
    return RouteBurden(
        route=route.name, chemistry=composition.canonical(chemistry),
        electricity_kwh=energy.get("electricity", 0.0) / 3.6,
        natural_gas_mj=energy.get("natural_gas", 0.0), diesel_mj=energy.get("diesel", 0.0),
        reagents_kg=dict(route.reagents_kg_per_kg),
        process_co2_kg=math.fsum(detail.values()), process_co2_detail=detail,
        recovered_kg=recovered, source=route.source,
    )
