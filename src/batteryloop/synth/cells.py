"""Demo cells for the stages after collection: graded second-life cells to regroup into new packs,
and collected cells waiting at the intake desk for their capacity test.

They go through the real services (lifecycle moves, inspections, `health-assessed` values with
intervals, grades by the stationary-storage policy), so every page shows what a plant would
record. Random but seeded: the same cells each run.
"""

from __future__ import annotations

import random

from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.errors import NotFound
from batteryloop.grading import service as grading
from batteryloop.grading.inspection import InspectionIn, record
from batteryloop.registry.schemas import BatteryIn
from batteryloop.registry.service import Registry
from batteryloop.store.models import Identifier

GRADER = "Second Wind Storage"
MAKER = "Ningde Cell Works"
CHEMISTRY = "NMC"
RATED_AH = 50.0
NOMINAL_V = 3.65
GRADED_PREFIX = "SWS-CELL-"
INTAKE_PREFIX = "INTAKE-"
# the SOH of cells from retired EV packs spreads over roughly 70-95 % (demo convention)
SOH_RANGE = (70.0, 95.0)
SOH_HALF_WIDTH = 0.8  # percentage points: the interval of a capacity test, demo convention


def _to_collected(reg: Registry, uid: str, actor: str) -> None:
    for state in ("in_service", "retired", "collected"):
        reg.change_status(uid, state, actor=actor)


def seed_cells(session: Session, *, graded: int = 120, waiting: int = 3,
               rng_seed: int = 20261123, grade: bool = True) -> str:
    """Seed once (after ``synth.seed``, whose organisations act here).

    ``grade=False`` registers the ``graded`` cells collected but neither inspected nor graded:
    ``synth.pipeline`` then tests, assesses and grades them through the real services."""
    if session.scalar(select(Identifier.id).where(Identifier.value == f"{GRADED_PREFIX}0001")):
        return "demo cells already present: nothing seeded"
    reg = Registry(session)
    try:
        grader, maker = reg.organisation(GRADER).uid, reg.organisation(MAKER).uid
    except NotFound:
        raise NotFound("seed the demo plant first (its organisations act on the cells)") from None
    rng = random.Random(rng_seed)

    def spec(serial: str) -> BatteryIn:
        return BatteryIn(kind="cell", chemistry=CHEMISTRY, rated_capacity_ah=RATED_AH,
                         nominal_voltage_v=NOMINAL_V, rated_energy_wh=RATED_AH * NOMINAL_V,
                         manufacturer=maker, identifiers={"serial": serial})

    specs = [spec(f"{GRADED_PREFIX}{n:04d}") for n in range(1, graded + 1)]
    specs += [spec(f"{INTAKE_PREFIX}{n:04d}") for n in range(1, waiting + 1)]
    cells = reg.register_many(specs, actor=maker)
    for n, cell in enumerate(cells):
        _to_collected(reg, cell.uid, grader)
        if n >= graded or not grade:
            continue  # waiting at intake (or for the pipeline): no test, no inspection yet
        ocv = round(rng.uniform(3.55, 3.7), 3)
        record(session, cell.uid, InspectionIn(inspector=grader, ocv_v=ocv,
                                               insulation_resistance_ohm=5e6, bms_codes=[]))
        soh = round(rng.uniform(*SOH_RANGE), 2)
        grading.grade(session, cell.uid, policy="stationary-storage", actor=grader, health=[{
            "parameter": "capacity_soh", "value": soh, "lower": soh - SOH_HALF_WIDTH,
            "upper": soh + SOH_HALF_WIDTH, "method": "capacity test (demo)"}])
    done = "graded" if grade else "collected"
    return (f"seeded {graded} {done} second-life cells ({CHEMISTRY}, {RATED_AH:g} Ah) and "
            f"{waiting} collected cells waiting for intake ({INTAKE_PREFIX}0001...)")
