"""Helpers for the recycling tests: real packs registered, collected and dismantled."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from batteryloop.recycling import dismantling, packs
from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry

MAKER = "Pack Maker"
RECYCLER = "Loop Recycling"


def orgs(s: Session) -> None:
    reg = Registry(s)
    reg.add_organisation(OrganisationIn(name=MAKER, roles=["manufacturer"]))
    reg.add_organisation(OrganisationIn(name=RECYCLER, roles=["recycler", "dismantler"]))


def collected_pack(s: Session, name: str, serial: str, **override: Any) -> str:
    """Register a real pack (mass, energy, chemistry as published) and walk it to 'collected'."""
    p = packs.pack(name)
    reg = Registry(s)
    spec = {"kind": "pack", "chemistry": p["chemistry"], "mass_kg": p["mass_kg"],
            "rated_energy_wh": p["energy_kwh"] * 1000, "manufacturer": MAKER} | override
    b = reg.register(BatteryIn(**spec), actor=MAKER)
    reg.add_identifier(b.uid, "serial", serial)
    for state in ("in_service", "retired", "collected"):
        reg.change_status(b.uid, state)
    return b.uid


def dismantle_as_published(s: Session, name: str, uid: str, *, scale: dict[str, float] | None = None,
                           drop: str | None = None) -> dict[str, Any]:
    """Dismantle with the fractions the pack's published data imply (optionally mis-weighed)."""
    rows = [f for f in packs.expected_fractions(name) if f["fraction"] != drop]
    rows = [{**f, "mass_kg": f["mass_kg"] * (scale or {}).get(f["fraction"], 1.0)} for f in rows]
    data = dismantling.DismantlingIn(fractions=rows, weighed_mass_kg=packs.pack(name)["mass_kg"],
                                     actor=RECYCLER)
    return dismantling.record(s, uid, data)
