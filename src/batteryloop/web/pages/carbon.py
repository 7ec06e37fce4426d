"""The carbon page: the footprint per kWh by life-cycle stage of every chemistry the carbon stage
knows, on the electricity mixes chosen (stacked, with the published cradle-to-gate figures beside
it), what recycling and a second life avoid per kWh, and the check of a saving claim ("recycling
saves X t CO2e per kWh, Y %": the footprint it implies against the published ranges).

Everything here is computed from the carbon stage's data files and the reader's inputs, as the
public ``/api/v1/carbon`` endpoints are: nothing is stored and nothing needs signing in. The forms
are GET forms (they change nothing), so they carry no CSRF token.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from batteryloop.carbon import _data, avoided, published
from batteryloop.carbon.factors import shipped
from batteryloop.carbon.footprint import STAGES, footprint
from batteryloop.errors import BatteryloopError, ValidationFailed
from batteryloop.recycling import composition
from batteryloop.web.pages import carbon_plots, plots
from batteryloop.web.pages.common import error_page, render

router = APIRouter(include_in_schema=False)
# convention of this page (the form changes it): the carbon stage's default mix first, then two
# contrasting ones; at most MAX_GRIDS at once, each a full set of footprints
COMPARED_GRIDS = ("EU", "US")
MAX_GRIDS = 4
SHORT_STAGE = {"raw_material_acquisition": "raw materials", "main_production": "production",
               "distribution": "distribution", "end_of_life": "end of life"}  # column headers


@lru_cache(maxsize=256)
def _footprint(chemistry: str, grid: str) -> dict[str, Any]:
    """The figures the page shows of one chemistry on one grid (defaults otherwise)."""
    fp = footprint(chemistry, grid=grid)
    return {"chemistry": fp.chemistry, "grid": fp.grid["code"], "pack_type": fp.pack_type,
            "per_kwh_capacity": dict(fp.per_kwh_capacity),
            "per_kwh_service_life": fp.per_kwh_service_life()["total"],
            "cradle_to_gate": fp.cradle_to_gate, "cell_cradle_to_gate": fp.cell_cradle_to_gate,
            "published": fp.comparison(), "estimate_share": fp.result.estimate_share}


@lru_cache(maxsize=64)
def _avoided(chemistry: str, grid: str) -> dict[str, Any]:
    rec = avoided.recycling_avoided(chemistry, grid=grid)
    reuse = avoided.reuse_avoided(chemistry, grid=grid)
    return {"chemistry": rec["chemistry"], "route": rec["route"],
            "substitution": rec["substitution"]["net_avoided"],
            "substitution_share": rec["substitution"]["share_of_cradle_to_gate"],
            "cff": rec["cff"]["net_avoided"], "cff_share": rec["cff"]["share_of_cradle_to_gate"],
            "reuse": reuse["net_avoided"], "reuse_displaced": reuse["displaced"],
            "cradle_to_gate": rec["cradle_to_gate"]}


def _grids(chosen: list[str] | None) -> list[str]:
    """The mixes to compare, as factor-set codes (unknown ones refused by name)."""
    wanted = [g.strip() for g in (chosen or []) if g and g.strip()]
    if not wanted:
        wanted = [_data.default_grid(), *COMPARED_GRIDS]
    if len(wanted) > MAX_GRIDS:
        raise ValidationFailed(f"at most {MAX_GRIDS} electricity mixes at once", location="grid")
    codes = []
    for g in wanted:
        code = shipped().grid(g).name  # NotFound names the known codes
        if code not in codes:
            codes.append(code)
    return codes


def _number(text: str | None, field: str, default: float) -> float:
    if text is None or not text.strip():
        return default
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        raise ValidationFailed(f"'{text}' is not a number", location=field) from None
    if not math.isfinite(value):
        raise ValidationFailed(f"'{text}' is not a finite number", location=field)
    return value


@router.get("/carbon", response_class=HTMLResponse)
def carbon_page(
    request: Request,
    grid: Annotated[list[str] | None, Query()] = None,
    saving_t: str | None = None,
    share_pct: str | None = None,
) -> HTMLResponse:
    defaults = published.claim_defaults()
    form = {"saving_t": (saving_t or "").strip() or f"{defaults['saving_t_per_kwh']:g}",
            "share_pct": (share_pct or "").strip() or f"{100 * defaults['share']:g}"}
    try:
        grids = _grids(grid)
        saving = _number(saving_t, "saving_t", float(defaults["saving_t_per_kwh"]))
        share = _number(share_pct, "share_pct", 100 * float(defaults["share"])) / 100
        if saving <= 0:
            raise ValidationFailed("the claimed saving must be above 0 t CO2e per kWh",
                                   location="saving_t")
        if not 0 < share <= 1:
            raise ValidationFailed("the claimed share must be above 0 % and at most 100 %",
                                   location="share_pct")
        check = avoided.check_claim(saving, share, grid=grids[0])
        chemistries = composition.chemistries()
        rows = [_footprint(c, g) for g in grids for c in chemistries]
        saved = [_avoided(c, grids[0]) for c in chemistries]
    except BatteryloopError as exc:
        return error_page(request, exc, back="/carbon")
    stages = _data.load("processes.toml")["stages"]
    stage_names = {s: stages[s] for s in STAGES}
    factor_set = shipped()
    return render(request, "carbon.html", {
        "grids": grids, "all_grids": list(factor_set.electricity.values()),
        "stage_names": stage_names, "functional_unit": stages["functional_unit"],
        "short_stage": SHORT_STAGE,
        "rows": rows, "saved": saved, "check": check, "form": form,
        "claim_source": defaults["source"], "factors": list(factor_set.origins),
        "studies": published.studies(),
        "footprint_plot": plots.as_json(carbon_plots.footprint_by_stage(rows, stage_names)),
        "avoided_plot": plots.as_json(carbon_plots.avoided(saved, grids[0])),
        "claim_plot": plots.as_json(carbon_plots.claim(check)),
    })
