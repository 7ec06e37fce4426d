"""Carbon endpoints: footprint per kWh by stage, avoided emissions, claim check, plant inventory.

All are computations over data files and the caller's inputs; nothing is stored.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from batteryloop.api.pagination import Paged
from batteryloop.carbon import avoided, footprint, ghg_inventory, published
from batteryloop.carbon.factors import shipped

router = APIRouter(prefix="/carbon", tags=["carbon"])

Grid = str | float | None
GRID_HELP = "electricity mix: a code (CN, EU, US, DE...), a country name or kg CO2e/kWh"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServiceIn(_In):
    pack_kwh: float | None = Field(default=None, gt=0)
    service_km: float | None = Field(default=None, gt=0)
    kwh_per_km: float | None = Field(default=None, gt=0)
    cycle_life_fec: float | None = Field(default=None, gt=0)
    end_of_life_soh: float | None = Field(default=None, gt=0, le=1)


class ManufacturingIn(_In):
    electricity_kwh: float = Field(ge=0, description="per kWh of cells made")
    heat_mj: float = Field(ge=0, description="per kWh of cells made")
    nmp_makeup_kg: float | None = Field(default=None, ge=0)


class FootprintIn(_In):
    chemistry: str
    grid: Grid = Field(default=None, description=GRID_HELP)
    cam_grid: Grid = None
    eol_grid: Grid = None
    pack_type: str | None = None
    route: str | None = None
    route_overrides: dict[str, float] = Field(default_factory=dict)
    recycled_content: dict[str, float] = Field(default_factory=dict, description="R1 per material, 0-1")
    a_factors: dict[str, float] = Field(default_factory=dict, description="CFF A per material, 0-1")
    collection_rate: float | None = Field(default=None, ge=0, le=1)
    manufacturing: ManufacturingIn | None = None
    service: ServiceIn = Field(default_factory=ServiceIn)
    distribution_km: dict[str, float] | None = None
    lithium_source: str | None = None
    graphite: Literal["graphite", "graphite_synthetic"] = "graphite"


def _footprint(body: FootprintIn) -> footprint.Footprint:
    mfg = None
    if body.manufacturing:
        mfg = footprint.ManufacturingEnergy(body.manufacturing.electricity_kwh, body.manufacturing.heat_mj,
                                            body.manufacturing.nmp_makeup_kg, source="given by the caller")
    return footprint.footprint(
        body.chemistry, grid=body.grid, cam_grid=body.cam_grid, eol_grid=body.eol_grid,
        pack_type=body.pack_type, route=body.route, route_overrides=body.route_overrides,
        recycled_content=body.recycled_content, a_factors=body.a_factors,
        collection_rate=body.collection_rate, manufacturing=mfg,
        service=body.service.model_dump(), distribution_km=body.distribution_km,
        lithium_source=body.lithium_source, graphite=body.graphite)


@router.post("/footprint")
def post_footprint(body: FootprintIn) -> dict[str, Any]:
    """Footprint per kWh by life-cycle stage, with every parameter open to the caller."""
    return _footprint(body).as_dict()


@router.get("/footprint/{chemistry}")
def get_footprint(chemistry: str, grid: str | None = Query(default=None, description=GRID_HELP),
                  pack_type: str | None = None, route: str | None = None) -> dict[str, Any]:
    """Footprint per kWh by stage with the defaults."""
    return footprint.footprint(chemistry, grid=grid, pack_type=pack_type, route=route).as_dict()


class ReuseIn(_In):
    soh_at_reuse: float | None = Field(default=None, gt=0, le=1)
    second_life_fec: float | None = Field(default=None, gt=0)
    second_life_end_ratio: float | None = Field(default=None, gt=0, le=1)
    displaced_chemistry: str | None = None
    displaced_fec: float | None = Field(default=None, gt=0)
    displaced_end_of_life_soh: float | None = Field(default=None, gt=0, le=1)


class AvoidedIn(_In):
    chemistry: str
    grid: Grid = Field(default=None, description=GRID_HELP)
    route: str | None = None
    reuse: ReuseIn = Field(default_factory=ReuseIn)


@router.post("/avoided")
def post_avoided(body: AvoidedIn) -> dict[str, Any]:
    """Avoided emissions per kWh of recycling (substitution and CFF) and of reuse."""
    reuse = {k: v for k, v in body.reuse.model_dump().items() if v is not None}
    return {"recycling": avoided.recycling_avoided(body.chemistry, grid=body.grid, route=body.route),
            "reuse": avoided.reuse_avoided(body.chemistry, grid=body.grid, **reuse)}


@router.get("/claim")
def get_claim(saving_t_per_kwh: float | None = Query(default=None, gt=0, description="default 0.19"),
              share: float | None = Query(default=None, gt=0, le=1, description="default 0.24"),
              low: float | None = Query(default=None, gt=0), high: float | None = Query(default=None, gt=0),
              grid: str | None = Query(default=None, description=GRID_HELP)) -> dict[str, Any]:
    """Is 'recycling saves X t CO2e per kWh, Y %' consistent with published footprints?"""
    from batteryloop.errors import ValidationFailed

    if (low is None) != (high is None):
        raise ValidationFailed("give both low and high, or neither", location="low/high")
    rng = (low, high) if low is not None and high is not None else None
    return avoided.check_claim(saving_t_per_kwh, share, footprint_range=rng, grid=grid)


class FuelIn(_In):
    fuel: str
    amount: float = Field(ge=0)
    unit: str = "MJ"


class ContractIn(_In):
    kwh: float = Field(ge=0)
    kg_per_kwh: float = Field(ge=0)
    instrument: str = "contract"


class PeriodIn(_In):
    label: str | None = None
    electricity_kwh: float | None = Field(default=None, ge=0)
    heat_kwh: float | None = Field(default=None, ge=0)
    nmp_makeup_kg: float | None = Field(default=None, ge=0)
    nmp_emitted_kg: float | None = Field(default=None, ge=0)


class InventoryIn(_In):
    period: PeriodIn = Field(default_factory=PeriodIn,
                             description="the factory's activity data for the period")
    grid: Grid = Field(default=None, description=GRID_HELP)
    contracts: list[ContractIn] = Field(default_factory=list)
    residual_mix_kg_per_kwh: float | None = Field(default=None, ge=0)
    heat_source: Literal["purchased", "on_site"] = "purchased"
    heat_kg_per_kwh: float | None = Field(default=None, ge=0)
    fuels: list[FuelIn] = Field(default_factory=list)
    process_emissions: dict[str, float] = Field(default_factory=dict, description="kg of gas by name")
    nmp_oxidised_kg: float = Field(default=0.0, ge=0)
    include_voc_indirect_co2: bool | None = None
    materials: dict[str, float] = Field(default_factory=dict, description="purchased kg by material")
    transport_tkm: dict[str, float] = Field(default_factory=dict)


@router.post("/inventory")
def post_inventory(body: InventoryIn) -> dict[str, Any]:
    """The plant's GHG inventory for a period: ISO 14064-1 categories, scopes 1/2/3."""
    return ghg_inventory.inventory(
        body.period.model_dump(), grid=body.grid, contracts=[c.model_dump() for c in body.contracts],
        residual_mix_kg_per_kwh=body.residual_mix_kg_per_kwh, heat_source=body.heat_source,
        heat_kg_per_kwh=body.heat_kg_per_kwh, fuels=[f.model_dump() for f in body.fuels],
        process_emissions=body.process_emissions, nmp_oxidised_kg=body.nmp_oxidised_kg,
        include_voc_indirect_co2=body.include_voc_indirect_co2, materials=body.materials,
        transport_tkm=body.transport_tkm, label=body.period.label)


@router.get("/grids")
def get_grids(page: Paged) -> list[dict[str, Any]]:
    """Electricity mixes known to the shipped factor set, with sources."""
    return page([f.as_dict() for f in shipped().electricity.values()])


@router.get("/published")
def get_published() -> dict[str, Any]:
    """The published footprints the engine is checked against, with citations."""
    return {"studies": published.studies(), "claim": published.claim_defaults()}
