"""What a cell and a pack are made of, per kWh and per kg, from ``data/composition.toml``.

Recovery, compliance, economics and the carbon footprint all start from the same question: how many
kilograms of lithium, nickel, copper... came in with a battery whose chemistry, mass and energy the
registry knows. The answer is the published cell bill of materials (EverBatt/BatPaC) turned into
kg per kWh, plus the cathode's stoichiometry for the elements; nothing here is a bare literal.

Two kinds of key come out of :func:`cell_content` and they overlap on purpose, so do not add them
all up: element keys (``li ni co mn fe p al cu f``) are element masses wherever they sit in the
cell; component keys (``cathode_active_material graphite carbon_black electrolyte separator binder
plastics_other``) are the materials as bought; ``al`` and ``cu`` are both (foils and can).
``nmp_manufacture`` / ``nmp_makeup`` are solvent handled / consumed in making the cell, not in it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

from chemicals.elements import molecular_weight, simple_formula_parser

from batteryloop.errors import NotFound, ValidationFailed

_FILE = "recycling/data/composition.toml"
ELEMENTS = ("li", "ni", "co", "mn", "fe", "p", "al", "cu", "f")
COMPONENTS = ("cathode_active_material", "graphite", "carbon_black", "electrolyte", "separator",
              "binder", "plastics_other")
PACK_PARTS = ("cells", "modules", "housing", "bms", "wiring", "thermal")
_BOM_KEYS = ("cathode_active", "graphite", "carbon_black", "binder_pvdf", "copper", "aluminium",
             "lipf6", "ec", "dmc", "pp", "pe", "pet")
_BOM_SUM_TOLERANCE = 0.005  # the published shares are rounded to 0.1 %
_LIPF6 = "LiPF6"
_PVDF_UNIT = "C2H2F2"  # vinylidene fluoride, the repeat unit of PVDF


@dataclass(frozen=True)
class CellDesign:
    """One chemistry's reference cell as the data file states it, with its source."""

    chemistry: str
    cathode: str
    cathode_formula: dict[str, float]
    cell_mass_kg: float
    cell_kwh: float
    bom: dict[str, float]
    source: str
    verified: bool

    @property
    def kg_per_kwh(self) -> float:
        return self.cell_mass_kg / self.cell_kwh


@lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    return tomllib.loads((files("batteryloop.recycling") / "data" / "composition.toml").read_text("utf-8"))


def _mass_fractions(formula: dict[str, float]) -> dict[str, float]:
    """Element mass fractions of a formula (IUPAC atomic weights via ``chemicals``)."""
    total = molecular_weight(formula)
    return {el: n * molecular_weight({el: 1}) / total for el, n in formula.items()}


def canonical(chemistry: str) -> str:
    """The data file's name for a chemistry as batteries carry it (``NCM523`` -> ``NMC532``)."""
    raw = _raw()
    key = chemistry.strip().upper().replace("-", "").replace(" ", "").replace("_", "")
    if key in raw["chemistry"]:
        return key
    alias = raw["aliases"].get(key)
    if alias:
        return str(alias)
    raise NotFound(f"unknown chemistry '{chemistry}'; known: {', '.join(chemistries())} "
                   f"(and aliases in {_FILE})")


def chemistries() -> list[str]:
    """Chemistries with composition data, in the data file's order."""
    return list(_raw()["chemistry"])


def design(chemistry: str) -> CellDesign:
    name = canonical(chemistry)
    row = _raw()["chemistry"][name]
    where = f"{_FILE} [chemistry.{name}]"
    bom = {k: float(v) for k, v in row["bom"].items()}
    missing = [k for k in _BOM_KEYS if k not in bom]
    if missing:
        raise ValidationFailed(f"bom lacks {', '.join(missing)}", location=where)
    if abs(sum(bom.values()) - 1.0) > _BOM_SUM_TOLERANCE:
        raise ValidationFailed(f"bom shares add to {sum(bom.values()):.4f}, not 1", location=where)
    return CellDesign(
        chemistry=name, cathode=row["cathode"],
        cathode_formula={k: float(v) for k, v in row["cathode_formula"].items()},
        cell_mass_kg=float(row["cell_mass_kg"]), cell_kwh=float(_raw()["reference_cell_kwh"]),
        bom=bom, source=row["source"], verified=bool(row.get("verified", False)),
    )


@lru_cache(maxsize=32)
def _cell_content(name: str) -> dict[str, float]:
    d = design(name)
    kg = {k: share * d.kg_per_kwh for k, share in d.bom.items()}  # component kg per kWh
    cam = _mass_fractions(d.cathode_formula)
    salt = _mass_fractions(dict(simple_formula_parser(_LIPF6)))
    pvdf = _mass_fractions(dict(simple_formula_parser(_PVDF_UNIT)))
    raw = _raw()
    out = {el: 0.0 for el in ELEMENTS}
    for el in ("li", "ni", "co", "mn", "fe", "p", "al"):
        out[el] += kg["cathode_active"] * cam.get(el.capitalize(), 0.0)
    out["li"] += kg["lipf6"] * salt["Li"]
    out["p"] += kg["lipf6"] * salt["P"]
    out["f"] = kg["lipf6"] * salt["F"] + kg["binder_pvdf"] * pvdf["F"]
    out["al"] += kg["aluminium"]
    out["cu"] = kg["copper"]
    out.update(
        cathode_active_material=kg["cathode_active"],
        graphite=kg["graphite"],
        carbon_black=kg["carbon_black"],
        electrolyte=kg["lipf6"] + kg["ec"] + kg["dmc"],
        separator=kg["pp"] + kg["pe"],
        binder=kg["binder_pvdf"],
        plastics_other=kg["pet"],
    )
    nmp = kg["binder_pvdf"] * float(raw["nmp_per_binder"])
    out["nmp_manufacture"] = nmp
    out["nmp_makeup"] = nmp * (1.0 - float(raw["nmp_recovered_share"]))
    return out


def cell_content(chemistry: str) -> dict[str, float]:
    """kg per kWh of cell energy: element masses, component masses and NMP used in manufacture."""
    return dict(_cell_content(canonical(chemistry)))


def cell_mass_per_kwh(chemistry: str) -> float:
    """kg of cell per kWh of cell energy for the reference design (1 / specific energy)."""
    return design(chemistry).kg_per_kwh


def element_fractions(chemistry: str) -> dict[str, float]:
    """Element mass per kg of cell (content per kWh divided by cell kg per kWh)."""
    content = cell_content(chemistry)
    per_kwh = cell_mass_per_kwh(chemistry)
    return {el: content[el] / per_kwh for el in ELEMENTS}


def component_fractions(chemistry: str) -> dict[str, float]:
    """Material (component) mass per kg of cell; these add to 1 within the BOM's rounding."""
    content = cell_content(chemistry)
    d = design(chemistry)
    out = {k: content[k] / d.kg_per_kwh for k in COMPONENTS}
    out["copper"] = d.bom["copper"]
    out["aluminium"] = d.bom["aluminium"]
    return out


def pack_types() -> list[str]:
    return list(_raw()["pack_types"])


def default_pack_type(chemistry: str) -> str:
    return str(_raw()["default_pack_type"][canonical(chemistry)])


def pack_breakdown(chemistry_or_pack_type: str) -> dict[str, float]:
    """Mass shares of a pack (cells, modules, housing, bms, wiring, thermal) adding to 1.

    Takes a pack type from the data file, or a chemistry, which maps to its usual pack type.
    """
    types = _raw()["pack_types"]
    name = chemistry_or_pack_type if chemistry_or_pack_type in types else default_pack_type(
        chemistry_or_pack_type)
    row = types[name]
    shares = {part: float(row[part]) for part in PACK_PARTS}
    if abs(sum(shares.values()) - 1.0) > 1e-9:
        raise ValidationFailed(f"pack shares add to {sum(shares.values()):.4f}, not 1",
                               location=f"{_FILE} [pack_types.{name}]")
    return shares


def source(chemistry_or_pack_type: str) -> str:
    """The citation behind a chemistry's cell data or a pack type's breakdown."""
    raw = _raw()
    if chemistry_or_pack_type in raw["pack_types"]:
        return str(raw["pack_types"][chemistry_or_pack_type]["source"])
    return design(chemistry_or_pack_type).source


CONSTITUENTS = ("li", "ni", "co", "mn", "fe", "p", "al", "cu", "cathode_oxygen", "graphite",
                "carbon_black", "binder", "electrolyte_other", "plastics", "steel", "electronics",
                "other")
CELL_PARTS = ("cathode_active_material", "graphite", "carbon_black", "binder", "electrolyte",
              "plastics", "copper", "aluminium")


@lru_cache(maxsize=32)
def _cell_parts(name: str) -> dict[str, dict[str, float]]:
    d = design(name)
    bom = d.bom
    cam = _mass_fractions(d.cathode_formula)
    salt = _mass_fractions(dict(simple_formula_parser(_LIPF6)))
    cam_split = {el.lower(): share for el, share in cam.items() if el != "O"}
    cam_split["cathode_oxygen"] = cam.get("O", 0.0)
    electrolyte = bom["lipf6"] + bom["ec"] + bom["dmc"]
    li_e, p_e = bom["lipf6"] * salt["Li"], bom["lipf6"] * salt["P"]
    parts = {
        "cathode_active_material": {k: v * bom["cathode_active"] for k, v in cam_split.items()},
        "graphite": {"graphite": bom["graphite"]},
        "carbon_black": {"carbon_black": bom["carbon_black"]},
        "binder": {"binder": bom["binder_pvdf"]},
        "electrolyte": {"li": li_e, "p": p_e, "electrolyte_other": electrolyte - li_e - p_e},
        "plastics": {"plastics": bom["pp"] + bom["pe"] + bom["pet"]},
        "copper": {"cu": bom["copper"]},
        "aluminium": {"al": bom["aluminium"]},
    }
    total = sum(sum(p.values()) for p in parts.values())
    # The published shares are rounded: scale so that the parts make exactly one kg of cell.
    return {name_: {k: v / total for k, v in p.items()} for name_, p in parts.items()}


def cell_parts(chemistry: str) -> dict[str, dict[str, float]]:
    """kg of each balance constituent per kg of cell, grouped by cell part (they add up to 1)."""
    return {k: dict(v) for k, v in _cell_parts(canonical(chemistry)).items()}


def cell_constituents(chemistry: str) -> dict[str, float]:
    """kg of each balance constituent per kg of cell (adds up to 1)."""
    out = dict.fromkeys(CONSTITUENTS, 0.0)
    for part in _cell_parts(canonical(chemistry)).values():
        for k, v in part.items():
            out[k] += v
    return out
