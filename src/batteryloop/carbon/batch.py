"""Carbon figures of a real recycling batch, from its records (the recycling floor's provider hook).

The recycling floor computes a batch's balance from weighed fractions and measured (or modelled)
outputs, and its reagent and energy use from the route it ran; it asks a provider for the
``carbon`` section and never imports this floor. :func:`install` sets this module's provider:

    recycling emissions = electricity + natural gas + diesel + reagents + process CO2
                          (carbonaceous constituents lost, i.e. burned; carbonate reagents)
    avoided virgin      = each recovered constituent as the virgin material it replaces
    net avoided         = avoided virgin - recycling emissions   (substitution, A = 0)
    CFF-credited        = (1 - A) x net                          (what an EU declaration credits)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from batteryloop.carbon import _data, cff
from batteryloop.carbon.eol import carbon_fractions, process_co2
from batteryloop.carbon.factors import FactorSet, element_mass_fraction, load
from batteryloop.errors import ValidationFailed
from batteryloop.recycling import composition, fractions

ENERGY_KEYS = ("electricity", "natural_gas", "diesel")


def _material_for(constituent: str, route_products: Mapping[str, str | None]) -> str | None:
    """The virgin material a recovered constituent replaces (lithium as the route's product)."""
    recovers = cff.parameters()["recovers"]
    if constituent == "li":
        product = (route_products.get("li") or "").lower()
        return "lithium_hydroxide" if "hydroxide" in product else "lithium_carbonate"
    for material, c in recovers.items():
        if c == constituent and not material.endswith(("_brine", "_spodumene", "_synthetic")):
            return material
    return None


def _mixed_fractions(batteries: list[Mapping[str, Any]]) -> dict[str, float]:
    """Carbon fractions of carbonaceous constituents, weighted by each battery's input of them."""
    totals: dict[str, float] = {}
    carbon: dict[str, float] = {}
    for b in batteries:
        fr = carbon_fractions(b["chemistry"])
        for c, f in fr.items():
            kg = float(b.get("input_kg", {}).get(c, 0.0))
            totals[c] = totals.get(c, 0.0) + kg
            carbon[c] = carbon.get(c, 0.0) + kg * f
    fallback = carbon_fractions(batteries[0]["chemistry"]) if batteries else {}
    return {c: (carbon[c] / totals[c] if totals.get(c) else fallback.get(c, 0.0)) for c in fallback}


def batch_carbon(result: Mapping[str, Any], *, grid: str | float | None = None,
                 factors: FactorSet | None = None) -> dict[str, Any]:
    """The ``carbon`` section of a recycling batch result (see the module docstring)."""
    fs = factors or load()
    grid_f = fs.grid(_data.default_grid("recycling_grid") if grid is None else grid)
    consumption = result["consumption"]
    energy = consumption["energy_mj"]
    unknown = sorted(set(energy) - set(ENERGY_KEYS))
    if unknown:
        raise ValidationFailed(f"energy carriers unknown to the carbon model: {', '.join(unknown)}",
                               location="consumption.energy_mj")
    lines = {
        "electricity": energy.get("electricity", 0.0) / 3.6 * grid_f.value,
        "natural_gas": energy.get("natural_gas", 0.0) * fs.heat_kg_co2e_per_mj("natural_gas"),
        "diesel": energy.get("diesel", 0.0) * (fs.fuel("diesel").combustion_kg_co2e_per_mj(fs.gwp)
                                               + fs.fuel("diesel").upstream_kg_co2e_per_mj),
    }
    reagents = {k: v * fs.material(k).value for k, v in consumption["reagents_kg"].items()}
    streams = result["outputs"]["streams"]
    lost: dict[str, float] = {}
    recovered: dict[str, float] = {}
    for s in streams:
        if s["kind"] == "loss":
            lost[s["constituent"]] = lost.get(s["constituent"], 0.0) + float(s["mass_kg"])
        elif s["kind"] == "product":
            recovered[s["constituent"]] = recovered.get(s["constituent"], 0.0) + float(s["mass_kg"])
    batteries = list(result.get("batteries", []))
    process = process_co2(lost, consumption["reagents_kg"], _mixed_fractions(batteries), fs) if batteries else {}
    emissions = math.fsum(lines.values()) + math.fsum(reagents.values()) + math.fsum(process.values())
    products = {k: (v.get("product") if isinstance(v, Mapping) else None)
                for k, v in result["route"]["fates"].items()}
    avoided: list[dict[str, Any]] = []
    for constituent, kg in sorted(recovered.items()):
        material = _material_for(constituent, products)
        if material is None:
            continue
        f = fs.material(material)
        per = element_mass_fraction(f.formula, constituent) if f.formula and len(constituent) <= 2 else 1.0
        kg_material = kg / per if per > 0 else kg
        avoided.append({"constituent": constituent, "recovered_kg": kg, "replaces": material,
                        "material_kg": kg_material, "kg_co2e": kg_material * f.value,
                        "A": cff.a_factor(material), "estimate": f.estimate})
    gross = math.fsum(a["kg_co2e"] for a in avoided)
    credited = math.fsum((1 - a["A"]) * a["kg_co2e"] for a in avoided)
    cell_kg = float(result["inputs"]["cell_derived_kg"])
    kwh = _cell_kwh(batteries, cell_kg)
    net = gross - emissions
    return {
        "unit": "kg CO2e", "grid": {"code": grid_f.name, "kg_per_kwh": grid_f.value, "source": grid_f.source},
        "recycling_emissions": {"energy": lines, "reagents": reagents, "process_co2": process,
                                "total": emissions},
        "avoided_virgin": {"materials": avoided, "total": gross},
        "net_avoided": net,
        "cff_net_avoided": credited - (1 - _mean_a(avoided)) * emissions,
        "per_kg_cell_input": {"emissions": emissions / cell_kg, "net_avoided": net / cell_kg} if cell_kg else None,
        "per_kwh": {"kwh": kwh, "emissions": emissions / kwh, "net_avoided": net / kwh} if kwh else None,
        "method": "substitution: recovered constituents replace the virgin materials named; the "
                  "CFF figure weights credit and burden by (1 - A), A from PEF Annex C",
        "factors": list(fs.origins),
    }


def _mean_a(avoided: list[dict[str, Any]]) -> float:
    """Credit-weighted A, used to weight the batch's recycling burden as the CFF does."""
    total = math.fsum(a["kg_co2e"] for a in avoided)
    return math.fsum(a["A"] * a["kg_co2e"] for a in avoided) / total if total else 0.0


def _cell_kwh(batteries: list[Mapping[str, Any]], cell_kg: float) -> float | None:
    """kWh of cells in the batch: cell mass over the input-weighted kg per kWh of the chemistries."""
    weights: dict[str, float] = {}
    for b in batteries:
        weights[b["chemistry"]] = weights.get(b["chemistry"], 0.0) + math.fsum(b.get("input_kg", {}).values())
    total = math.fsum(weights.values())
    if not total or not cell_kg:
        return None
    kg_per_kwh = math.fsum(w * composition.cell_mass_per_kwh(c) for c, w in weights.items()) / total
    return cell_kg / kg_per_kwh


def battery_share(result: Mapping[str, Any], uid: str) -> dict[str, Any] | None:
    """One battery's part of a closed batch's carbon section (for its passport).

    What its recovered constituents avoid is its share of each constituent's credit (the batch
    splits every product among its batteries by their input of that constituent, so the shares add
    up to the batch); the recycling emissions are split by cell-derived input, the basis the route's
    reagents and energy are counted on. None when the batch carries no carbon figures."""
    carbon = result.get("carbon")
    mine = next((b for b in result.get("batteries", []) if b["uid"] == uid), None)
    if not carbon or mine is None:
        return None
    avoided = math.fsum(m["kg_co2e"] * mine["recovered_kg"].get(m["constituent"], 0.0)
                        / m["recovered_kg"]
                        for m in carbon["avoided_virgin"]["materials"] if m["recovered_kg"] > 0)
    cell_kinds = {k for k in fractions.kinds() if fractions.is_cell_derived(k)}
    cell_kg = math.fsum(f["mass_kg"] for f in result["inputs"]["fractions"]
                        if f["battery"] == uid and f["fraction"] in cell_kinds)
    total_cell_kg = float(result["inputs"]["cell_derived_kg"])
    share = cell_kg / total_cell_kg if total_cell_kg else 0.0
    emissions = carbon["recycling_emissions"]["total"] * share
    return {
        "unit": carbon["unit"], "avoided_virgin": avoided, "recycling_emissions": emissions,
        "net_avoided": avoided - emissions, "cell_derived_kg": cell_kg,
        "share_of_batch_cell_input": share,
        "batch": {"net_avoided": carbon["net_avoided"],
                  "cff_net_avoided": carbon["cff_net_avoided"], "per_kwh": carbon.get("per_kwh")},
        "grid": carbon["grid"], "factors": carbon["factors"],
        "method": "credit: the battery's share of each recovered constituent; burden: its share of "
                  "the batch's cell-derived input; " + carbon["method"],
    }


def install(grid: str | float | None = None, factors: FactorSet | None = None) -> None:
    """Make recycling batches carry their carbon figures (``batteryloop.wiring.install`` calls
    this as the faces start)."""
    from batteryloop.recycling import service

    service.set_carbon_provider(lambda result: batch_carbon(result, grid=grid, factors=factors))
