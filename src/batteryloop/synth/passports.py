"""What the demo's makers declare in their batteries' passports (``passport.service.create``) and
what a collection outlet reads from a retired pack's BMS (``passport.service.report_condition``).

Declared values come from ``data/demo.toml`` (conventions and cited facts) and from the other
stages' data: voltage limits from the degradation model's chemistries, the electrolyte salt's
share from the recycling stage's cell bill of materials, the expected cycle life from the
degradation model. The carbon footprint is left undeclared on purpose: the passport then shows the
carbon stage's computed figure (``passport/computed.py``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from batteryloop.recycling import composition
from batteryloop.store.models import Battery
from batteryloop.synth import degradation as dm


def settings() -> dict[str, Any]:
    from batteryloop.synth.pipeline import config

    return config()["passport"]


@cache
def expected_cycles(chemistry: str) -> float:
    """Equivalent full cycles at 25 C (``reference_efc_per_day``) until the capacity reaches the
    exhaustion threshold, by the degradation model (no knee spread: the typical battery)."""
    s = settings()
    chem = dm.chemistry(chemistry)
    efc = np.arange(1.0, 20001.0)
    q = dm.capacity_fraction(chem, efc / s["reference_efc_per_day"], efc)
    below = np.flatnonzero(q < s["capacity_threshold_for_exhaustion"] / 100.0)
    return float(efc[below[0]]) if below.size else float(efc[-1])


def _salt_share_pct(chemistry: str, pack_type: str) -> float:
    """LiPF6 as % of the pack's mass: its share of a cell times the cells' share of the pack."""
    cell = composition.design(chemistry).bom["lipf6"]
    return round(100.0 * cell * composition.pack_breakdown(pack_type)["cells"], 3)


def static_values(battery: Battery, *, second_life: bool = False, pack_type: str) -> dict[str, Any]:
    """The attributes a maker (or the repurposer, for a second-life pack) declares."""
    s = settings()
    chem = dm.chemistry(battery.chemistry or "")
    series = dm.series_count(chem, battery.nominal_voltage_v)
    salt = s["electrolyte_salt"]
    family = chem.name
    declared = s["second_life"] if second_life else s
    values: dict[str, Any] = {
        "general.battery_category": declared["category"],
        "general.warranty_period": declared["warranty_period"],
        "materials.critical_raw_materials": list(s["critical_raw_materials"][family]),
        "materials.hazardous_substances": [{
            "hazardousSubstanceClass": salt["hazard_class"], "hazardousSubstanceName": salt["name"],
            "hazardousSubstanceIdentifier": salt["cas"],
            "hazardousSubstanceConcentration": _salt_share_pct(battery.chemistry or "", pack_type),
            "hazardousSubstanceImpact": list(salt["impacts"]),
            "hazardousSubstanceLocation": {"componentName": "electrolyte"},
        }],
        "circularity.extinguishing_agent": list(s["extinguishing_agent"]),
        "performance.minimum_voltage": round(series * chem.min_voltage_v, 3),
        "performance.maximum_voltage": round(series * chem.max_voltage_v, 3),
        "performance.capacity_threshold_for_exhaustion": s["capacity_threshold_for_exhaustion"],
    }
    if not second_life:
        values["performance.expected_lifetime"] = s["expected_lifetime_years"]
        values["performance.expected_number_of_cycles"] = expected_cycles(battery.chemistry or "")
    return values


def bms_readout(cond: dm.Condition, rated_energy_wh: float | None) -> dict[str, Any]:
    """What a retired pack's BMS reports of its use: full cycles and throughput."""
    usage = cond.usage
    if usage is None:
        return {}
    out: dict[str, Any] = {
        "performance.number_of_full_cycles": round(usage.efc, 1),
        "performance.capacity_throughput": round(usage.efc * cond.rated_ah, 1),
    }
    if rated_energy_wh:
        out["performance.energy_throughput"] = round(usage.efc * rated_energy_wh / 1000.0, 1)
    return out
