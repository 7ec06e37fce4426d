"""A plant's greenhouse-gas inventory: ISO 14064-1 categories, GHG Protocol scopes 1, 2 and 3.

Inputs are activity data the plant already has: the factory floor's inventory periods
(``factory.inventory.FactoryPeriod``: electricity, heat, NMP make-up and NMP emitted) or a plain
mapping of the same, plus fuels burned, process and fugitive gases, purchased materials and
transport. Each line keeps its activity, factor and the factor's source; scope 2 is given both
location-based (grid average) and market-based (contracts, then the residual mix).

NMP is not a greenhouse gas. NMP burnt in a thermal oxidiser on site is direct CO2 (from its
formula); NMP emitted to air is reported as NMVOC with its potential indirect CO2 as a memo item
(IPCC 2006 Vol. 1 7.2.1.5), counted only on request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from batteryloop.carbon import _data
from batteryloop.carbon.eol import co2_per_carbon
from batteryloop.carbon.factors import FactorSet, element_mass_fraction, load
from batteryloop.errors import ValidationFailed

ENERGY_UNITS_MJ = {"MJ": 1.0, "GJ": 1000.0, "TJ": 1e6, "kWh": 3.6, "MWh": 3600.0}
MASS_UNITS_KG = {"kg": 1.0, "t": 1000.0}
_PLANT_KEYS = {
    "electricity_kwh": ("electricity_kwh", "electricity_kWh"),
    "heat_kwh": ("heat_kwh", "heat_kWh", "steam_kwh", "steam_kWh"),
    "nmp_makeup_kg": ("nmp_makeup_kg",),
    "nmp_emitted_kg": ("nmp_emitted_kg",),
}


def _value(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationFailed(f"must be a number, got {value!r}", location=where)
    if value < 0:
        raise ValidationFailed(f"must be >= 0, got {value!r}", location=where)
    return float(value)


def plant_activity(period: Any) -> dict[str, Any]:
    """Electricity, heat and NMP figures from a ``FactoryPeriod`` or a mapping (missing = 0)."""
    if period is None:
        return {k: 0.0 for k in _PLANT_KEYS} | {"label": None}
    get = period.get if isinstance(period, Mapping) else (lambda k, d=None: getattr(period, k, d))
    out: dict[str, Any] = {}
    for key, names in _PLANT_KEYS.items():
        found = next((get(n) for n in names if get(n) is not None), 0.0)
        out[key] = _value(found, f"period.{key}")
    label = get("label")
    out["label"] = str(label) if label is not None else None
    return out


def _line(category: str, source: str, activity: float, unit: str, factor: float, factor_unit: str,
          factor_source: str, gases: Mapping[str, float] | None = None, estimate: bool = False) -> dict[str, Any]:
    scope = int(_data.load("ghg.toml")["scopes"][category])
    return {"category": category, "scope": scope, "source": source, "activity": activity, "unit": unit,
            "factor": factor, "factor_unit": factor_unit, "kg_co2e": activity * factor,
            "gases_kg": dict(gases) if gases else None, "factor_source": factor_source,
            "estimate": estimate}


def _fuel_line(fs: FactorSet, entry: Mapping[str, Any], n: int) -> tuple[dict[str, Any], float, str]:
    where = f"fuels[{n}]"
    name = entry.get("fuel")
    if not isinstance(name, str):
        raise ValidationFailed("needs 'fuel' (a name)", location=where)
    fuel = fs.fuel(name)
    amount = _value(entry.get("amount"), f"{where}.amount")
    unit = entry.get("unit", "MJ")
    if unit in ENERGY_UNITS_MJ:
        mj = amount * ENERGY_UNITS_MJ[unit]
    elif unit in MASS_UNITS_KG:
        mj = amount * MASS_UNITS_KG[unit] * fuel.ncv_mj_per_kg
    else:
        raise ValidationFailed(f"unit '{unit}' unknown (energy: {', '.join(ENERGY_UNITS_MJ)}; mass: "
                               f"{', '.join(MASS_UNITS_KG)}; convert volumes with your supplier's "
                               "calorific value)", location=f"{where}.unit")
    gwp = fs.gwp
    gases = {"CO2": mj * fuel.co2_kg_per_tj / 1e6, "CH4": mj * fuel.ch4_kg_per_tj / 1e6,
             "N2O": mj * fuel.n2o_kg_per_tj / 1e6}
    line = _line("1", f"stationary combustion: {name}", mj, "MJ", fuel.combustion_kg_co2e_per_mj(gwp),
                 "kg CO2e/MJ", fuel.source, gases)
    return line, mj, name


def inventory(
    period: Any = None,
    *,
    electricity_kwh: float | None = None,
    grid: str | float | None = None,
    contracts: Sequence[Mapping[str, Any]] = (),
    residual_mix_kg_per_kwh: float | None = None,
    heat_kwh: float | None = None,
    heat_source: str = "purchased",
    heat_kg_per_kwh: float | None = None,
    fuels: Sequence[Mapping[str, Any]] = (),
    process_emissions: Mapping[str, float] | None = None,
    nmp_makeup_kg: float | None = None,
    nmp_emitted_kg: float | None = None,
    nmp_oxidised_kg: float = 0.0,
    include_voc_indirect_co2: bool | None = None,
    materials: Mapping[str, float] | None = None,
    transport_tkm: Mapping[str, float] | None = None,
    label: str | None = None,
    factors: FactorSet | None = None,
) -> dict[str, Any]:
    """The inventory of one period (see the module docstring). Explicit arguments override the
    period's figures."""
    fs = factors or load()
    if grid is None:
        grid = _data.default_grid()
    spec = _data.load("ghg.toml")
    plant = plant_activity(period)
    elec = plant["electricity_kwh"] if electricity_kwh is None else _value(electricity_kwh, "electricity_kwh")
    heat = plant["heat_kwh"] if heat_kwh is None else _value(heat_kwh, "heat_kwh")
    makeup = plant["nmp_makeup_kg"] if nmp_makeup_kg is None else _value(nmp_makeup_kg, "nmp_makeup_kg")
    emitted = plant["nmp_emitted_kg"] if nmp_emitted_kg is None else _value(nmp_emitted_kg, "nmp_emitted_kg")
    oxidised = _value(nmp_oxidised_kg, "nmp_oxidised_kg")
    lines: list[dict[str, Any]] = []
    notes: list[str] = []

    # -- category 1: direct ----------------------------------------------------------------------
    for n, entry in enumerate(fuels):
        if not isinstance(entry, Mapping):
            raise ValidationFailed("must be {fuel, amount, unit}", location=f"fuels[{n}]")
        line, mj, name = _fuel_line(fs, entry, n)
        lines.append(line)
        up = fs.fuel(name).upstream_kg_co2e_per_mj
        if up > 0:
            lines.append(_line("4", f"upstream of {name} (fuel- and energy-related)", mj, "MJ", up,
                               "kg CO2e/MJ", fs.fuel(name).source))
    if heat_source not in ("purchased", "on_site"):
        raise ValidationFailed("must be 'purchased' (scope 2) or 'on_site' (fuel already listed under "
                               "fuels)", location="heat_source")
    for gas, kg in (process_emissions or {}).items():
        if gas not in fs.gwp:
            raise ValidationFailed(f"unknown gas '{gas}' (known: {', '.join(k for k in fs.gwp)})",
                                   location=f"process_emissions.{gas}")
        lines.append(_line("1", f"process and fugitive: {gas}", _value(kg, f"process_emissions.{gas}"),
                           f"kg {gas}", fs.gwp[gas], "kg CO2e/kg (GWP100)", "factors.toml [gwp]",
                           {gas: float(kg)}))
    nmp_formula = spec["nmp"]["formula"]
    nmp_co2 = element_mass_fraction(nmp_formula, "C") * co2_per_carbon()
    if oxidised > 0:
        lines.append(_line("1", "NMP burnt in the thermal oxidiser", oxidised, "kg NMP", nmp_co2,
                           "kg CO2/kg NMP (stoichiometric)", f"{nmp_formula}: carbon content x 44/12",
                           {"CO2": oxidised * nmp_co2}))
    include_voc = spec["nmp"]["voc_indirect_co2_included"] if include_voc_indirect_co2 is None else include_voc_indirect_co2
    if emitted > 0 and include_voc:
        lines.append(_line("1", "NMP emitted to air: indirect CO2 (NMVOC oxidation)", emitted, "kg NMP",
                           nmp_co2, "kg CO2/kg NMP", spec["nmp"]["source"], {"CO2": emitted * nmp_co2}))

    # -- category 2: imported energy (location- and market-based) --------------------------------
    grid_f = fs.grid(grid)
    location_lines: list[dict[str, Any]] = []
    if elec > 0:
        location_lines.append(_line("2", f"electricity, location-based ({grid_f.label or grid_f.name})",
                                    elec, "kWh", grid_f.value, "kg CO2e/kWh", grid_f.source))
        notes.append("location-based scope 2 uses life-cycle grid factors (Ember), which include "
                     "upstream fuel-chain emissions a strict scope 2 leaves to scope 3; pass a "
                     "combustion-only factor as grid for a strict figure")
    if heat > 0 and heat_source == "purchased":
        if heat_kg_per_kwh is None:
            ph = spec["purchased_heat"]
            per_kwh = 3.6 / float(ph["boiler_efficiency"]) * fs.heat_kg_co2e_per_mj(ph["fuel"])
            src = ph["source"]
        else:
            per_kwh, src = _value(heat_kg_per_kwh, "heat_kg_per_kwh"), "given by the user"
        location_lines.append(_line("2", "purchased heat/steam", heat, "kWh", per_kwh, "kg CO2e/kWh", src))
    elif heat > 0:
        notes.append("heat made on site: its fuel belongs under fuels (category 1); heat_kwh itself is "
                     "not counted again")
    market_lines = _market_based(elec, contracts, residual_mix_kg_per_kwh, grid_f.value, notes)
    market_lines += [dict(line) for line in location_lines if line["source"] == "purchased heat/steam"]

    # -- categories 3 and 4: transport, purchased goods -------------------------------------------
    for mode, tkm in (transport_tkm or {}).items():
        f = fs.transport_mode(mode)
        lines.append(_line("3", f"upstream transport by {mode}", _value(tkm, f"transport_tkm.{mode}"),
                           "tkm", f.value, "kg CO2e/tkm", f.source, estimate=f.estimate))
    if makeup > 0:
        f = fs.material("nmp")
        lines.append(_line("4", "purchased NMP (make-up)", makeup, "kg", f.value, "kg CO2e/kg",
                           f.source, estimate=f.estimate))
    for material, kg in (materials or {}).items():
        f = fs.material(material)
        lines.append(_line("4", f"purchased {material}", _value(kg, f"materials.{material}"), "kg",
                           f.value, "kg CO2e/kg", f.source, estimate=f.estimate))

    def total(rows: list[dict[str, Any]], scope: int) -> float:
        return math.fsum(r["kg_co2e"] for r in rows if r["scope"] == scope)

    scope1 = total(lines, 1)
    scope2_loc = total(location_lines, 2)
    scope2_mkt = total(market_lines, 2)
    scope3 = total(lines, 3)
    cats: dict[str, dict[str, Any]] = {}
    for row in lines + location_lines:
        c = cats.setdefault(row["category"], {"name": spec["categories"][row["category"]], "lines": [],
                                               "kg_co2e": 0.0})
        c["lines"].append(row)
        c["kg_co2e"] += row["kg_co2e"]
    memo = {"nmp_emitted_kg": emitted, "nmvoc_indirect_co2_kg": emitted * nmp_co2,
            "nmvoc_indirect_co2_included": bool(include_voc),
            "note": spec["nmp"]["source"]}
    return {
        "standard": "ISO 14064-1:2018 categories; GHG Protocol scopes",
        "period": label or plant["label"],
        "unit": "kg CO2e",
        "categories": dict(sorted(cats.items())),
        "scope_2_market_based_lines": market_lines,
        "scopes": {"scope_1": scope1, "scope_2_location_based": scope2_loc,
                   "scope_2_market_based": scope2_mkt, "scope_3": scope3},
        "totals": {"location_based": scope1 + scope2_loc + scope3,
                   "market_based": scope1 + scope2_mkt + scope3},
        "activity": {"electricity_kwh": elec, "heat_kwh": heat, "nmp_makeup_kg": makeup,
                     "nmp_emitted_kg": emitted, "nmp_oxidised_kg": oxidised},
        "memo": memo,
        "notes": notes,
        "sources": {"categories": spec["categories"]["source"], "scopes": spec["scopes"]["source"]},
        "factors": list(fs.origins),
    }


def _market_based(elec: float, contracts: Sequence[Mapping[str, Any]], residual: float | None,
                  location_factor: float, notes: list[str]) -> list[dict[str, Any]]:
    """Scope 2 market-based: contractual instruments first, the residual mix for the rest."""
    rows: list[dict[str, Any]] = []
    covered = 0.0
    for n, c in enumerate(contracts):
        if not isinstance(c, Mapping):
            raise ValidationFailed("must be {kwh, kg_per_kwh, instrument}", location=f"contracts[{n}]")
        kwh = _value(c.get("kwh"), f"contracts[{n}].kwh")
        factor = _value(c.get("kg_per_kwh"), f"contracts[{n}].kg_per_kwh")
        covered += kwh
        rows.append(_line("2", f"electricity, market-based: {c.get('instrument', 'contract')}", kwh,
                          "kWh", factor, "kg CO2e/kWh", str(c.get("source", "contractual instrument"))))
    if covered > elec * (1 + 1e-9):
        raise ValidationFailed(f"contracts cover {covered:g} kWh, more than the {elec:g} kWh used",
                               location="contracts")
    rest = elec - covered
    if rest > 0:
        if residual is None:
            factor, src = location_factor, "residual mix not given: location-based factor used"
            notes.append("market-based scope 2: no residual mix given, the grid average was used for "
                         "uncontracted electricity (a residual mix is usually higher)")
        else:
            factor, src = _value(residual, "residual_mix_kg_per_kwh"), "residual mix given by the user"
        rows.append(_line("2", "electricity, market-based: residual mix", rest, "kWh", factor,
                          "kg CO2e/kWh", src))
    return rows
