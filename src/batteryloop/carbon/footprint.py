"""The carbon footprint of a traction battery per kWh, by life-cycle stage (EU battery rules).

The battery becomes a process graph (``inventory.ProcessGraph``) built from the recycling floor's
composition (what a cell and pack are made of) and routes (how it is recycled), the cathode
recipe, manufacturing energy and yields (``data/processes.toml``) and the emission factors
(``data/factors.toml``):

    battery (1 kWh of pack) = pack + distribution + end of life
    pack   = 1 kWh of cells + pack parts (housing, modules, BMS, wiring, thermal) as materials
    cell   = cathode active material + anode, foils, electrolyte, separator, binder, NMP
             (content / yield / acceptance) + manufacturing electricity and heat
    CAM    = metal salts by stoichiometry + reagents + calcination energy (+ Li2CO3 CO2)
    every material comes through a CFF supply (virgin and recycled content, R1, A);
    end of life = transport + per material (1 - A) R2 (recycling - avoided virgin)

Stages follow Regulation (EU) 2023/1542 Annex II: raw material acquisition and pre-processing
(materials and CAM), main product production (cell and pack), distribution, end of life and
recycling. The electricity mix of the plant is a parameter (``grid``); CAM making and recycling
may sit on other grids. The declared figure is per kWh of the total energy over the service life
(the functional unit); the per-kWh-of-capacity figure is what published studies report and is
given beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chemicals.elements import molecular_weight, simple_formula_parser

from batteryloop.carbon import _data, cff, published
from batteryloop.carbon._data import default_grid
from batteryloop.carbon.eol import RouteBurden, decomposition_co2, route_burden
from batteryloop.carbon.factors import FactorSet, element_mass_fraction, formula_mass, load
from batteryloop.carbon.inventory import ProcessGraph, Result, multipliers
from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.recycling import composition, routes

RAW, MAIN, DIST, EOL = "raw_material_acquisition", "main_production", "distribution", "end_of_life"
STAGES = (RAW, MAIN, DIST, EOL)
MJ_PER_KWH = 3.6


@dataclass(frozen=True)
class ManufacturingEnergy:
    """Energy (and NMP make-up) per kWh of cells made: the plant's own figures or EverBatt's."""

    electricity_kwh: float
    heat_mj: float
    nmp_makeup_kg: float | None = None
    source: str = "given"

    def __post_init__(self) -> None:
        for name in ("electricity_kwh", "heat_mj"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValidationFailed(f"must be a number >= 0, got {v!r}", location=f"manufacturing.{name}")
        if self.nmp_makeup_kg is not None and not (math.isfinite(self.nmp_makeup_kg) and self.nmp_makeup_kg >= 0):
            raise ValidationFailed("must be a number >= 0", location="manufacturing.nmp_makeup_kg")

    @classmethod
    def default(cls) -> ManufacturingEnergy:
        spec = _data.load("processes.toml")["cell_manufacturing"]
        mj = float(spec["energy_mj_per_kwh"])
        return cls(electricity_kwh=mj * float(spec["electricity_share"]) / MJ_PER_KWH,
                   heat_mj=mj * float(spec["natural_gas_share"]), source=spec["source"])

    @classmethod
    def from_plant(cls, period: Any, produced_kwh: float) -> ManufacturingEnergy:
        """From a factory inventory period (electricity, heat/steam, NMP make-up) and the kWh of
        cells it made: the plant's own energy per kWh instead of the literature's."""
        from batteryloop.carbon.ghg_inventory import plant_activity

        if not (isinstance(produced_kwh, (int, float)) and math.isfinite(produced_kwh) and produced_kwh > 0):
            raise ValidationFailed(f"must be > 0, got {produced_kwh!r}", location="produced_kwh")
        act = plant_activity(period)
        return cls(electricity_kwh=act["electricity_kwh"] / produced_kwh,
                   heat_mj=act["heat_kwh"] * MJ_PER_KWH / produced_kwh,
                   nmp_makeup_kg=act["nmp_makeup_kg"] / produced_kwh if act["nmp_makeup_kg"] else None,
                   source=f"plant records over {produced_kwh:g} kWh of cells")


@dataclass(frozen=True)
class ServiceLife:
    """Total energy over the service life per kWh of capacity ([REG] Annex II functional unit)."""

    pack_kwh: float
    service_km: float
    kwh_per_km: float
    cycle_life_fec: float
    end_of_life_soh: float

    @classmethod
    def default(cls, chemistry: str, **overrides: float | None) -> ServiceLife:
        spec = _data.load("processes.toml")["service_life"]
        fec = spec["cycle_life_fec"]
        values: dict[str, float] = {
            "pack_kwh": float(spec["pack_kwh"]), "service_km": float(spec["service_km"]),
            "kwh_per_km": float(spec["kwh_per_km"]),
            "cycle_life_fec": float(fec.get(composition.canonical(chemistry), fec["default"])),
            "end_of_life_soh": float(spec["end_of_life_soh"]),
        }
        for key, value in overrides.items():
            if key not in values:
                raise ValidationFailed(f"unknown service-life parameter (known: {', '.join(values)})",
                                       location=f"service.{key}")
            if value is not None:
                values[key] = float(value)
        life = cls(**values)
        life.check()
        return life

    def check(self) -> None:
        for name in ("pack_kwh", "service_km", "kwh_per_km", "cycle_life_fec"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValidationFailed(f"must be > 0, got {v!r}", location=f"service.{name}")
        if not 0 < self.end_of_life_soh <= 1:
            raise ValidationFailed(f"must be in (0, 1], got {self.end_of_life_soh!r}",
                                   location="service.end_of_life_soh")

    def energy_per_kwh(self) -> tuple[float, str]:
        """kWh delivered over life per kWh of capacity, and which limit set it."""
        vehicle = self.service_km * self.kwh_per_km / self.pack_kwh
        cycles = self.cycle_life_fec * (1.0 + self.end_of_life_soh) / 2.0
        return (vehicle, "vehicle") if vehicle <= cycles else (cycles, "cycle life")

    def as_dict(self) -> dict[str, Any]:
        energy, basis = self.energy_per_kwh()
        return {"pack_kwh": self.pack_kwh, "service_km": self.service_km,
                "kwh_per_km": self.kwh_per_km, "cycle_life_fec": self.cycle_life_fec,
                "end_of_life_soh": self.end_of_life_soh,
                "kwh_over_life_per_kwh_capacity": energy, "limited_by": basis,
                "source": _data.load("processes.toml")["service_life"]["source"]}


@dataclass
class Footprint:
    """A footprint per kWh: by stage, per kWh of capacity and per kWh over the service life."""

    chemistry: str
    pack_type: str
    grid: dict[str, Any]
    route: str
    per_kwh_capacity: dict[str, float]
    cell_cradle_to_gate: float
    service_life: ServiceLife
    result: Result = field(repr=False)
    cff_table: list[dict[str, Any]] = field(default_factory=list)
    route_burden: RouteBurden | None = None
    factor_origins: tuple[dict[str, str], ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    conventions: list[str] = field(default_factory=list)
    manufacturing: ManufacturingEnergy | None = None
    graph: ProcessGraph | None = field(default=None, repr=False)

    @property
    def total(self) -> float:
        return self.per_kwh_capacity["total"]

    @property
    def cradle_to_gate(self) -> float:
        """Raw material acquisition plus main production: what published studies report."""
        return self.per_kwh_capacity[RAW] + self.per_kwh_capacity[MAIN]

    def per_kwh_service_life(self) -> dict[str, float]:
        energy, _ = self.service_life.energy_per_kwh()
        return {k: v / energy for k, v in self.per_kwh_capacity.items()}

    def hotspots(self, n: int = 12) -> list[dict[str, Any]]:
        return [{"stage": c.stage, "process": self.labels.get(c.process, c.process),
                 "input": self.labels.get(c.source, c.source), "kg_co2e_per_kwh": c.kg_co2e}
                for c in self.result.top(n)]

    def comparison(self) -> list[dict[str, Any]]:
        return published.compare(self.chemistry, pack=self.cradle_to_gate, cell=self.cell_cradle_to_gate)

    def as_dict(self) -> dict[str, Any]:
        energy, basis = self.service_life.energy_per_kwh()
        stages = _data.load("processes.toml")["stages"]
        return {
            "chemistry": self.chemistry, "pack_type": self.pack_type, "grid": self.grid,
            "route": self.route, "unit": "kg CO2e",
            "functional_unit": stages["functional_unit"],
            "stages": {k: stages[k] for k in STAGES},
            "per_kwh_service_life": self.per_kwh_service_life(),
            "per_kwh_capacity": self.per_kwh_capacity,
            "cradle_to_gate_per_kwh_capacity": {"pack": self.cradle_to_gate,
                                                "cell": self.cell_cradle_to_gate},
            "service_life": self.service_life.as_dict(),
            "manufacturing": None if self.manufacturing is None else {
                "electricity_kwh_per_kwh": self.manufacturing.electricity_kwh,
                "heat_mj_per_kwh": self.manufacturing.heat_mj, "source": self.manufacturing.source},
            "hotspots": self.hotspots(),
            "cff": self.cff_table,
            "recycling_route": self.route_burden.as_dict() if self.route_burden else None,
            "published": self.comparison(),
            "estimates": {"share_of_gross_emissions": self.result.estimate_share,
                          "factors": sorted({self.labels.get(k, k) for k in self.result.estimate_processes}),
                          "note": "factors with no open source (factors.toml estimate = true); "
                                  "replace them with supplier or licensed data"},
            "conventions": self.conventions,
            "factors": list(self.factor_origins),
            "sources": {"stages": stages["source"], "composition": "recycling/data/composition.toml",
                        "routes": "recycling/data/routes.toml", "processes": _data.label("processes.toml"),
                        "cff": _data.label("cff.toml")},
            "limited_by": basis, "kwh_over_life_per_kwh_capacity": energy,
        }


# --------------------------------------------------------------------------------------------
# Building the graph
# --------------------------------------------------------------------------------------------

class _Builder:
    def __init__(self, factors: FactorSet, a_override: Mapping[str, float] | None,
                 r1: Mapping[str, float], q_in: float) -> None:
        self.f = factors
        self.g = ProcessGraph()
        self.labels: dict[str, str] = {}
        self.a_override = dict(a_override or {})
        self.r1 = dict(r1)
        self.q_in = q_in
        self.cff_rows: dict[str, dict[str, Any]] = {}

    def electricity(self, code: str | float) -> str:
        factor = self.f.grid(code)
        key = f"electricity:{factor.name}:{factor.value:g}"
        if not self.g.has(key):
            self.g.add(key, unit="kWh", direct=factor.value, label=f"electricity ({factor.label or factor.name})")
            self.labels[key] = f"electricity, {factor.label or factor.name}"
        return key

    def heat(self) -> str:
        key = "heat:natural_gas"
        if not self.g.has(key):
            self.g.add(key, unit="MJ", direct=self.f.heat_kg_co2e_per_mj("natural_gas"))
            self.labels[key] = "natural gas heat"
        return key

    def diesel(self) -> str:
        key = "fuel:diesel"
        if not self.g.has(key):
            fuel = self.f.fuel("diesel")
            self.g.add(key, unit="MJ", direct=fuel.combustion_kg_co2e_per_mj(self.f.gwp) + fuel.upstream_kg_co2e_per_mj)
            self.labels[key] = "diesel"
        return key

    def virgin(self, material: str) -> str:
        key = f"virgin:{material}"
        if not self.g.has(key):
            f = self.f.material(material)
            self.g.add(key, unit="kg", direct=f.value, estimate=f.estimate)
            self.labels[key] = f"{material} (virgin)"
        return key

    def transport(self, mode: str) -> str:
        key = f"transport:{mode}"
        if not self.g.has(key):
            f = self.f.transport_mode(mode)
            self.g.add(key, unit="tkm", direct=f.value, estimate=f.estimate)
            self.labels[key] = f"transport by {mode}"
        return key

    def a(self, material: str) -> float:
        return cff.a_factor(material, self.a_override)

    def supply(self, material: str, recycled_key: str | None) -> str:
        """CFF supply of a material: virgin plus recycled content (R1) with allocation A."""
        key = f"supply:{material}"
        if self.g.has(key):
            return key
        r1 = self.r1.get(material, 0.0)
        a = self.a(material)
        v, r = cff.supply_coefficients(r1, a, self.q_in)
        inputs = {self.virgin(material): v}
        if r > 0:
            if recycled_key is None:
                raise ValidationFailed(
                    f"recycled content of '{material}' needs a recycled burden: the route does not "
                    "recover it and factors.toml gives no 'recycled' value", location=f"recycled_content.{material}")
            inputs[recycled_key] = r
        self.g.add(key, unit="kg", inputs=inputs, stage=RAW)
        self.labels[key] = f"{material} supply"
        return key


def _precursors(formula: Mapping[str, float], lithium_source: str, factors: FactorSet) -> dict[str, float]:
    """kg of each precursor per kg of CAM, by stoichiometry (one salt unit per metal atom)."""
    spec = _data.load("processes.toml")["cathode"]["precursor"]
    m_cam = float(molecular_weight(dict(formula)))
    out: dict[str, float] = {}
    covered: set[str] = {"O"}
    ordered = [("Li", lithium_source)] + [(el, spec.get(el)) for el in formula if el not in ("Li", "O")]
    for el, material in ordered:
        if el in covered:
            continue
        if material is None:
            raise ValidationFailed(f"no precursor for element {el} of the cathode",
                                   location=f"{_data.label('processes.toml')} [cathode.precursor]")
        salt = factors.material(material).formula
        if not salt:
            raise ValidationFailed("a precursor needs a formula", location=f"factors [material.{material}]")
        per_atom = formula_mass(salt) * element_mass_fraction(salt, el) / formula_mass(el)
        if per_atom <= 0:
            raise ValidationFailed(f"'{material}' ({salt}) contains no {el}; it cannot supply the "
                                   "cathode's " + el, location="lithium_source" if el == "Li" else
                                   f"{_data.label('processes.toml')} [cathode.precursor]")
        out[material] = out.get(material, 0.0) + formula[el] * formula_mass(salt) / per_atom / m_cam
        covered |= set(simple_formula_parser(salt))
    return out


def footprint(
    chemistry: str,
    *,
    grid: str | float | None = None,
    cam_grid: str | float | None = None,
    eol_grid: str | float | None = None,
    pack_type: str | None = None,
    route: str | None = None,
    route_overrides: Mapping[str, float] | None = None,
    recycled_content: Mapping[str, float] | None = None,
    a_factors: Mapping[str, float] | None = None,
    collection_rate: float | None = None,
    manufacturing: ManufacturingEnergy | None = None,
    service: Mapping[str, float | None] | None = None,
    distribution_km: Mapping[str, float] | None = None,
    lithium_source: str | None = None,
    graphite: str = "graphite",
    factors: FactorSet | None = None,
) -> Footprint:
    """The footprint of one kWh of a chemistry's pack, by stage (see the module docstring)."""
    fs = factors or load()
    chem = composition.canonical(chemistry)
    proc = _data.load("processes.toml")
    grid = default_grid() if grid is None else grid
    design = composition.design(chem)
    content = composition.cell_content(chem)
    kg_cell = design.kg_per_kwh
    pack_type = pack_type or composition.default_pack_type(chem)
    if pack_type not in composition.pack_types():
        raise NotFound(f"unknown pack type '{pack_type}' (known: {', '.join(composition.pack_types())})")
    breakdown = composition.pack_breakdown(pack_type)
    if breakdown["cells"] <= 0:
        raise ValidationFailed("a pack type needs cells", location=f"pack_types.{pack_type}")
    kg_pack = kg_cell / breakdown["cells"]
    cath = proc["cathode"].get(chem)
    if cath is None:
        raise NotFound(f"no cathode recipe for {chem} in {_data.label('processes.toml')}")
    li_src = lithium_source or cath["lithium_source"]
    if graphite not in ("graphite", "graphite_synthetic"):
        raise ValidationFailed("graphite must be 'graphite' or 'graphite_synthetic'", location="graphite")
    for name, value in (recycled_content or {}).items():
        fs.material(name)
        cff._share(value, f"recycled_content.{name}")
    eol_spec = proc["end_of_life"]
    coll = eol_spec["collection_rate"] if collection_rate is None else collection_rate
    coll = cff._share(coll, "collection_rate")
    route_name = route or eol_spec["route"]
    rt = routes.load(route_name, dict(route_overrides or {}))
    burden = route_burden(rt, chem, fs)
    mfg = manufacturing or ManufacturingEnergy.default()
    life = ServiceLife.default(chem, **dict(service or {}))
    q = float(cff.parameters()["defaults"]["Q_in"])
    b = _Builder(fs, a_factors, recycled_content or {}, q)
    g = b.g
    conventions: list[str] = []

    # -- recycling (background): route per kg cell, mass-allocated to what it recovers -------
    recovers = cff.parameters()["recovers"]
    route_key = f"route:{rt.name}"
    inputs: dict[str, float] = {b.electricity(eol_grid if eol_grid is not None else default_grid("recycling_grid")): burden.electricity_kwh,
                                b.heat(): burden.natural_gas_mj, b.diesel(): burden.diesel_mj}
    for reagent, kg in burden.reagents_kg.items():
        inputs[b.virgin(reagent)] = inputs.get(b.virgin(reagent), 0.0) + kg
    g.add(route_key, unit="kg cell", direct=burden.process_co2_kg, inputs=inputs)
    b.labels[route_key] = f"{rt.name} recycling"
    mapped = {c for c in recovers.values()}
    recovered_mapped = math.fsum(v for c, v in burden.recovered_kg.items() if c in mapped)

    def recycling_key(material: str) -> str | None:
        """Recycled material from the route (per kg of material), or from factors' 'recycled'."""
        key = f"recycled:{material}"
        if g.has(key):
            return key
        constituent = recovers.get(material)
        f = fs.material(material)
        per_constituent = _constituent_per_kg(material, constituent, fs)
        from_route = constituent in burden.recovered_kg and recovered_mapped > 0
        if not from_route and f.recycled is None:
            return None
        inputs_r = {route_key: per_constituent / recovered_mapped} if from_route else {}
        g.add(key, unit="kg", direct=f.recycled or 0.0, inputs=inputs_r)
        b.labels[key] = f"{material} (recycled)"
        return key

    def supply(material: str) -> str:
        return b.supply(material, recycling_key(material))

    # -- cathode active material (raw material stage) -----------------------------------------
    precursors = _precursors(design.cathode_formula, li_src, fs)
    cam_inputs: dict[str, float] = {supply(m): kg for m, kg in precursors.items()}
    for reagent, kg in cath.get("reagents", {}).items():
        cam_inputs[b.virgin(reagent)] = kg
    cam_inputs[b.electricity(cam_grid if cam_grid is not None else grid)] = float(cath["electricity_mj"]) / MJ_PER_KWH
    cam_inputs[b.heat()] = float(cath["natural_gas_mj"])
    carbonate = precursors.get(li_src, 0.0) if fs.material(li_src).formula == "Li2CO3" else 0.0
    cam_co2 = carbonate * decomposition_co2("Li2CO3")
    g.add("cam", unit="kg CAM", direct=cam_co2, inputs=cam_inputs, stage=RAW)
    b.labels["cam"] = f"cathode active material ({design.cathode})"
    if cath.get("convention"):
        conventions.append(f"cathode recipe: {cath['source']}")

    # -- cell (main production) -----------------------------------------------------------------
    y = proc["yields"]
    acc = float(y["cell_acceptance"])
    names = proc["cell_materials"]
    bom = design.bom
    nmp = content["nmp_makeup"] if mfg.nmp_makeup_kg is None else mfg.nmp_makeup_kg
    cell_in_product = {  # kg per kWh of cell, in the product
        graphite: content["graphite"],
        names["carbon_black"]: content["carbon_black"],
        names["binder"]: content["binder"],
        names["separator"]: content["separator"],
        names["plastics_other"]: content["plastics_other"],
        names["aluminium"]: bom["aluminium"] * kg_cell,
        names["copper"]: bom["copper"] * kg_cell,
        names["electrolyte_salt"]: bom["lipf6"] * kg_cell,
        names["electrolyte_solvent"]: (bom["ec"] + bom["dmc"]) * kg_cell,
    }
    yield_of = {graphite: y["graphite"], names["carbon_black"]: y["carbon_black"],
                names["binder"]: y["binder"], names["separator"]: y["separator"],
                names["plastics_other"]: y["plastics_other"], names["aluminium"]: y["aluminium"],
                names["copper"]: y["copper"], names["electrolyte_salt"]: y["electrolyte"],
                names["electrolyte_solvent"]: y["electrolyte"]}
    cell_inputs: dict[str, float] = {"cam": content["cathode_active_material"] / y["cathode_active_material"] / acc}
    for material, kg in cell_in_product.items():
        key = supply(material)
        cell_inputs[key] = cell_inputs.get(key, 0.0) + kg / float(yield_of[material]) / acc
    if nmp > 0:
        cell_inputs[supply(names["nmp"])] = nmp / y["nmp"] / acc
    cell_inputs[b.electricity(grid)] = mfg.electricity_kwh
    cell_inputs[b.heat()] = cell_inputs.get(b.heat(), 0.0) + mfg.heat_mj
    g.add("cell", unit="kWh cell", inputs=cell_inputs, stage=MAIN)
    b.labels["cell"] = "cell manufacturing"

    # -- pack (main production) -----------------------------------------------------------------
    parts = proc["pack_parts"]
    pack_materials: dict[str, float] = {}
    for part, share in breakdown.items():
        if part == "cells" or share == 0:
            continue
        if part not in parts:
            raise ValidationFailed(f"no material make-up for pack part '{part}'",
                                   location=f"{_data.label('processes.toml')} [pack_parts]")
        for material, ms in parts[part].items():
            pack_materials[material] = pack_materials.get(material, 0.0) + kg_pack * share * ms
    pack_inputs: dict[str, float] = {"cell": 1.0}
    for material, kg in pack_materials.items():
        key = supply(material)
        pack_inputs[key] = pack_inputs.get(key, 0.0) + kg
    assembly = float(proc["pack_assembly"]["electricity_kwh_per_kwh"])
    if assembly:
        pack_inputs[b.electricity(grid)] = pack_inputs.get(b.electricity(grid), 0.0) + assembly
    g.add("pack", unit="kWh pack", inputs=pack_inputs, stage=MAIN)
    b.labels["pack"] = "pack assembly"
    conventions.append(f"pack parts as materials: {parts['source']}")

    # -- distribution -----------------------------------------------------------------------------
    legs = dict(proc["distribution"]["legs"]) if distribution_km is None else dict(distribution_km)
    dist_inputs: dict[str, float] = {}
    for mode, km in legs.items():
        if not (isinstance(km, (int, float)) and math.isfinite(km) and km >= 0):
            raise ValidationFailed(f"must be a distance >= 0 km, got {km!r}", location=f"distribution.{mode}")
        dist_inputs[b.transport(mode)] = kg_pack / 1000.0 * km
    g.add("distribution", unit="kWh pack", inputs=dist_inputs, stage=DIST)
    b.labels["distribution"] = "distribution"
    conventions.append(f"distribution: {proc['distribution']['source']}")

    # -- end of life (CFF: (1 - A) R2 (ErecEoL - E*v Qout)) ------------------------------------
    q_out = float(cff.parameters()["defaults"]["Q_out"])
    eol_inputs: dict[str, float] = {}
    for mode, km in eol_spec["legs"].items():
        eol_inputs[b.transport(mode)] = kg_pack / 1000.0 * float(km)
    in_product: dict[str, float] = {m: content["cathode_active_material"] * kg for m, kg in precursors.items()}
    for material, kg in cell_in_product.items():
        in_product[material] = in_product.get(material, 0.0) + kg
    pack_recovery = eol_spec["pack_parts_recovery"]
    rows: list[dict[str, Any]] = []
    for material in sorted(set(in_product) | set(pack_materials)):
        a = b.a(material)
        constituent = recovers.get(material)
        r_route = rt.fate(constituent).recovered if constituent in rt.fates else 0.0
        c_cell = in_product.get(material, 0.0)
        c_pack = pack_materials.get(material, 0.0)
        r2_cell = coll * r_route
        r2_pack = coll * float(pack_recovery.get(material, 0.0))
        content_total = c_cell + c_pack
        r2 = (r2_cell * c_cell + r2_pack * c_pack) / content_total if content_total else 0.0
        rec_key = recycling_key(material) if r2_cell * c_cell > 0 else None
        recycled_kg = 0.0
        if rec_key and r2_cell * c_cell > 0:
            eol_inputs[rec_key] = eol_inputs.get(rec_key, 0.0) + (1 - a) * r2_cell * c_cell
            recycled_kg += r2_cell * c_cell
        if r2_pack * c_pack > 0:
            pkey = f"recycled_pack:{material}"
            if not g.has(pkey):
                g.add(pkey, unit="kg", direct=fs.material(material).recycled or 0.0)
                b.labels[pkey] = f"{material} (scrap from dismantling)"
            eol_inputs[pkey] = eol_inputs.get(pkey, 0.0) + (1 - a) * r2_pack * c_pack
            recycled_kg += r2_pack * c_pack
        if recycled_kg > 0:
            vkey = b.virgin(material)
            eol_inputs[vkey] = eol_inputs.get(vkey, 0.0) - (1 - a) * q_out * recycled_kg
        rows.append({"material": material, "content_kg_per_kwh": content_total,
                     "R1": b.r1.get(material, 0.0), "R2": r2, "A": a,
                     "Ev": fs.material(material).value,
                     "_eol_parts": [(k, w) for k, w in ((rec_key, r2_cell * c_cell),
                                                        (f"recycled_pack:{material}", r2_pack * c_pack))
                                    if k and w > 0],
                     "_recycled_key": f"recycled:{material}" if g.has(f"recycled:{material}") else None})
    g.add("end_of_life", unit="kWh pack", inputs=eol_inputs, stage=EOL)
    b.labels["end_of_life"] = "end of life"
    conventions.append(f"end of life: {eol_spec['source']}")
    conventions.append(f"{eol_spec['pack_parts_source']}")
    conventions.append("recycling burden allocated by mass over the materials the route recovers "
                       "([EVERBATT] Eq. 11); the same burden is Erecycled for recycled content")

    g.add("battery", unit="kWh pack", inputs={"pack": 1.0, "distribution": 1.0, "end_of_life": 1.0}, stage=MAIN)
    result = g.solve({"battery": 1.0})
    cell_only = g.solve({"cell": 1.0})
    per_stage = {s: result.by_stage.get(s, 0.0) for s in STAGES}
    per_stage["total"] = result.total
    _cff_columns(rows, g)
    grid_f = fs.grid(grid)
    return Footprint(
        chemistry=chem, pack_type=pack_type,
        grid={"code": grid_f.name, "label": grid_f.label, "kg_per_kwh": grid_f.value, "source": grid_f.source},
        route=rt.name, per_kwh_capacity=per_stage, cell_cradle_to_gate=cell_only.total,
        service_life=life, result=result, cff_table=rows, route_burden=burden,
        factor_origins=fs.origins, labels=b.labels, conventions=conventions, manufacturing=mfg,
        graph=g,
    )


def _constituent_per_kg(material: str, constituent: str | None, fs: FactorSet) -> float:
    """kg of the recovered constituent (element) in 1 kg of the material (1 for metals as such)."""
    if constituent is None:
        return 1.0
    formula = fs.material(material).formula
    if formula and len(constituent) <= 2:
        frac = element_mass_fraction(formula, constituent)
        if frac > 0:
            return frac
    return 1.0


def _cff_columns(rows: list[dict[str, Any]], g: ProcessGraph) -> None:
    """The closed-form CFF per kg of each material, with Erecycled and ErecyclingEoL read from the
    graph (cumulative burden of its recycled material): the per-material view of the same figures
    (the end-of-life stage is the sum of content x end_of_life over materials, plus transport)."""
    keys = sorted({k for r in rows for k, _ in r["_eol_parts"]} | {r["_recycled_key"] for r in rows if r["_recycled_key"]})
    m = multipliers(g, keys) if keys else {}
    for row in rows:
        parts = row.pop("_eol_parts")
        rec_key = row.pop("_recycled_key")
        weight = math.fsum(w for _, w in parts)
        e_eol = math.fsum(m[k] * w for k, w in parts) / weight if weight else 0.0
        e_rec = m.get(rec_key, 0.0) if rec_key else 0.0
        t = cff.material_terms(ev=row["Ev"], r1=row["R1"], r2=row["R2"], a=row["A"],
                               e_recycled=e_rec, e_recycling_eol=e_eol)
        row.update(E_recycled=e_rec, E_recycling_eol=e_eol,
                   terms_per_kg={"virgin": float(t.virgin), "recycled_input": float(t.recycled_input),
                                 "end_of_life": float(t.end_of_life)})
