"""Real traction packs (``data/packs.toml``) and the dismantling their published data imply.

Tests and demos build batches from these rather than from invented weights: the pack's mass and
build (cells, modules) as published, the pack-level parts from its pack type's breakdown, and the
cells split into black mass, foils, electrolyte and plastics by the chemistry's cell BOM.
"""

from __future__ import annotations

from typing import Any

from batteryloop.errors import NotFound
from batteryloop.recycling import _data, composition

FILE = "packs.toml"
_PACK_FRACTION = {"modules": "module_hardware", "housing": "housing", "bms": "bms",
                  "wiring": "wiring", "thermal": "thermal"}
_CELL_FRACTION = {"black_mass": ("cathode_active_material", "graphite", "carbon_black", "binder"),
                  "cu_foil": ("copper",), "al_foil": ("aluminium",), "electrolyte": ("electrolyte",),
                  "plastics": ("plastics",)}


def packs() -> dict[str, dict[str, Any]]:
    return {k: dict(v) for k, v in _data.load(FILE)["packs"].items()}


def pack(name: str) -> dict[str, Any]:
    found = packs().get(name)
    if found is None:
        raise NotFound(f"unknown pack '{name}' (known: {', '.join(packs())})")
    return found


def expected_fractions(name: str) -> list[dict[str, Any]]:
    """The fractions (kg) a full dismantling of this pack yields, by its published data.

    Cells weigh ``cells x cell_mass_kg`` where published (else the pack type's cell share), module
    hardware ``modules x module_mass_kg`` less the cells where published; the rest of the pack is
    split in the proportions of the pack type's other parts. The fractions add up to the pack mass.
    """
    p = pack(name)
    mass = float(p["mass_kg"])
    shares = composition.pack_breakdown(p["pack_type"])
    cells_kg = (p["cells"] * p["cell_mass_kg"]) if "cell_mass_kg" in p else shares["cells"] * mass
    if "module_mass_kg" in p:
        module_kg = p["modules"] * p["module_mass_kg"] - cells_kg
    else:
        module_kg = shares["modules"] * mass
    rest_parts = {k: shares[k] for k in ("housing", "bms", "wiring", "thermal")}
    rest_kg = mass - cells_kg - module_kg
    rest_share = sum(rest_parts.values())
    out = [{"fraction": "module_hardware", "mass_kg": module_kg}] if module_kg > 0 else []
    out += [{"fraction": _PACK_FRACTION[k], "mass_kg": rest_kg * v / rest_share}
            for k, v in rest_parts.items() if v > 0]
    parts = composition.cell_parts(p["chemistry"])
    for fraction, names in _CELL_FRACTION.items():
        share = sum(sum(parts[n].values()) for n in names)
        out.append({"fraction": fraction, "mass_kg": cells_kg * share})
    return out


def breakdown_fractions(chemistry: str, mass_kg: float, pack_type: str | None = None
                        ) -> list[dict[str, Any]]:
    """The fractions (kg) of a pack known only by chemistry, mass and pack type: pack parts in the
    pack type's shares (``composition.pack_breakdown``), the cells split by the chemistry's cell
    BOM, as ``expected_fractions`` does for a published pack. They add up to ``mass_kg``."""
    shares = composition.pack_breakdown(pack_type or chemistry)
    cells_kg = shares["cells"] * mass_kg
    out = [{"fraction": fraction, "mass_kg": shares[part] * mass_kg}
           for part, fraction in _PACK_FRACTION.items() if shares[part] > 0]
    parts = composition.cell_parts(chemistry)
    for fraction, names in _CELL_FRACTION.items():
        share = sum(sum(parts[n].values()) for n in names)
        out.append({"fraction": fraction, "mass_kg": cells_kg * share})
    return out
