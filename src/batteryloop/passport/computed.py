"""The carbon footprint the passport shows where the maker has declared none (Art. 7, Annex II).

The maker declares its battery model's footprint (the static ``carbon.*`` attributes). Until it
does, the passport shows what the carbon stage computes for the battery's chemistry: per kWh of the
total energy over the service life (the functional unit of Annex II), by life-cycle stage, and in
absolute terms for the battery's rated energy, from ``carbon.footprint.footprint`` with its
defaults (electricity mix, pack type, recycling route, service life; the pack's own rated energy
for the vehicle's service life). Every such value says so: its source is ``computed`` and its
measurement names the method, batteryloop's version, the chemistry as modelled, the parameters and
the SHA-256 of the factor set and of the process data.

Never beside a declared figure: if the maker declared any of the three figures, none is computed
(a declared total beside computed stages would not add up). Nothing is computed for a cell or a
module (the model is a pack: housing, BMS, wiring and thermal parts come with it), for a battery
made from others (its materials and making belong to its sources' footprints; Annex II gives no
method for a second life), or for a chemistry the carbon stage has no data for.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from batteryloop import __version__
from batteryloop.carbon import _data as carbon_data
from batteryloop.carbon.footprint import STAGES, footprint
from batteryloop.errors import NotFound
from batteryloop.passport.attributes import batterypass
from batteryloop.store.models import Battery

FIGURES = ("carbon.battery_carbon_footprint", "carbon.per_lifecycle_stage", "carbon.absolute")
SOURCE = "computed"
METHOD = ("computed, not declared by the maker: batteryloop carbon.footprint, a process-graph "
          "LCA of a pack of this chemistry by the life-cycle stages of Regulation (EU) 2023/1542 "
          "Annex II, with the carbon stage's default parameters")
DATA_FILES = ("processes.toml", "cff.toml")


def values(battery: Battery, present: Mapping[str, Any]) -> dict[str, tuple[Any, dict[str, Any]]]:
    """``{attribute id: (value, measurement)}`` of the computed footprint for ``battery``, given the
    values its passport already has (``present``: attribute id -> view value)."""
    if any(a in present for a in FIGURES) or battery.kind != "pack" or not battery.chemistry:
        return {}
    lineage = present.get("general.lineage")
    if lineage is not None and lineage.value.get("sources"):
        return {}
    kwh = battery.rated_energy_wh / 1000 if battery.rated_energy_wh else None
    figures = _figures(battery.chemistry, kwh)
    if figures is None:
        return {}
    out = {"carbon.battery_carbon_footprint": figures["total"],
           "carbon.per_lifecycle_stage": figures["stages"]}
    if figures["absolute"] is not None:
        out["carbon.absolute"] = figures["absolute"]
    return {k: (copy.deepcopy(v), copy.deepcopy(figures["measurement"])) for k, v in out.items()}


@lru_cache(maxsize=128)
def _figures(chemistry: str, kwh: float | None) -> dict[str, Any] | None:
    """The footprint of a pack of ``chemistry`` (``kwh`` of it, when known), in passport form."""
    try:
        fp = footprint(chemistry, service={"pack_kwh": kwh} if kwh else None)
    except NotFound:  # a chemistry (or cathode recipe) the carbon stage has no data for
        return None
    life = fp.per_kwh_service_life()
    names = batterypass()["lifecycle_stages"]
    measurement = {
        "method": METHOD,
        "version": f"batteryloop {__version__}",
        "unit": "kg CO2e per kWh of the total energy provided over the service life",
        "registered_chemistry": chemistry, "modelled_chemistry": fp.chemistry,
        "pack_type": fp.pack_type, "grid": fp.grid, "recycling_route": fp.route,
        "functional_unit": carbon_data.load("processes.toml")["stages"]["functional_unit"],
        "service_life": fp.service_life.as_dict(),
        "pack_kwh_from": "the battery's rated energy" if kwh else "the convention above",
        "per_kwh_capacity": fp.per_kwh_capacity,
        "estimate_share": fp.result.estimate_share,
        "factors": [dict(o) for o in fp.factor_origins],
        "data": [{"file": carbon_data.label(name), "sha256": carbon_data.sha256(name)}
                 for name in DATA_FILES],
        "breakdown": f"GET /api/v1/carbon/footprint/{fp.chemistry} (or `batteryloop carbon "
                     f"footprint {fp.chemistry}`) gives every process and factor",
    }
    return {
        "total": life["total"],
        "stages": [{"lifecycleStage": names[s], "carbonFootprint": life[s]} for s in STAGES],
        "absolute": fp.per_kwh_capacity["total"] * kwh if kwh else None,
        "measurement": measurement,
    }
