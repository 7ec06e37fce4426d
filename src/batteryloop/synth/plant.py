"""Seeds a demo plant: the nodes of the loop and a few hundred packs with histories.

Histories follow the lifecycle graph and the real reporting rules, so the traceability report has
something to say (some nodes report late). Everything is random but seeded: the same demo each run.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from batteryloop.registry import gbt34014, ledger
from batteryloop.registry.ledger import Draft
from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.store.models import Organisation

ORGANISATIONS = [
    ("Ningde Cell Works", ["manufacturer"], "CN"),
    ("Yangtze Motors", ["vehicle_maker"], "CN"),
    ("Rhein Automobil", ["vehicle_maker"], "DE"),
    ("QuickFix Battery Service", ["repair_shop"], "CN"),
    ("Green Loop Collection", ["collection_outlet"], "CN"),
    ("Second Wind Storage", ["repurposer"], "CN"),
    ("Renew Packs", ["remanufacturer"], "DE"),
    ("Circular Metals Recycling", ["recycler", "dismantler"], "CN"),
    ("Battery Audit Office", ["auditor"], "CN"),
]
# (chemistry, GB/T type letter name, modules per pack, module Ah, module V, kg per module)
PACK_TYPES = [("LFP", "LFP", 8, 150.0, 38.4, 28.0), ("NMC811", "NMC", 12, 60.0, 44.4, 24.0)]


def _working_days_later(start: datetime, days: int) -> datetime:
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


def seed(session: Session, *, packs: int = 300, rng_seed: int = 20261122,
         until_collection: bool = False) -> str:
    """Seed once; a database that already has organisations is left as it is.

    ``until_collection``: the back-filled histories of retired packs end when the collection
    outlet takes them; testing, grading, routes and recycling are then left to the real services
    (``synth.pipeline``). Without it every pack's whole story is back-filled (a quick registry for
    tests of the pages)."""
    if session.scalar(select(func.count()).select_from(Organisation)):
        return "demo data already present: nothing seeded"
    rng = random.Random(rng_seed)
    reg = Registry(session)
    orgs = {name: reg.add_organisation(OrganisationIn(name=name, roles=roles, country=country))
            for name, roles, country in ORGANISATIONS}
    maker = orgs["Ningde Cell Works"]
    specs: list[BatteryIn] = []
    for n in range(packs):
        chem, letter, modules, ah, volts, kg = PACK_TYPES[n % len(PACK_TYPES)]
        made = date(2016, 1, 1) + timedelta(days=rng.randrange(0, 4 * 365))
        code = gbt34014.compose("NDW", "pack", letter, "A1", f"{rng.randrange(10**7):07d}", made,
                                f"{n:07d}")
        specs.append(BatteryIn(
            code=code, chemistry=chem, rated_capacity_ah=ah * 2,
            rated_energy_wh=ah * volts * modules,  # modules/2 in series, two strings in parallel
            nominal_voltage_v=volts * modules / 2, mass_kg=round(kg * modules * 1.35, 1),
            manufacturer=maker.uid, manufacturing_place="Ningde, Fujian, CN",
        ))
        for m in range(2):  # two modules per pack registered as parts, enough to show the tree
            specs.append(BatteryIn(
                code=gbt34014.compose("NDW", "module", letter, "A1", f"{rng.randrange(10**7):07d}",
                                      made, f"{n * 10 + m:07d}"),
                parent=code, chemistry=chem, rated_capacity_ah=ah, nominal_voltage_v=volts,
                mass_kg=kg, manufacturer=maker.uid,
            ))
    batteries = reg.register_many(specs, actor=maker.uid)
    pack_rows = [b for b in batteries if b.kind == "pack"]
    drafts: list[Draft] = []
    fates = {"in_service": 0, "repurposed": 0, "recycled": 0, "graded": 0, "collected": 0}
    for battery in pack_rows:
        made = datetime.combine(battery.manufactured_on, datetime.min.time(), UTC)
        vehicle = orgs[rng.choice(["Yangtze Motors", "Rhein Automobil"])]
        state = "produced"
        owner = maker.uid

        def event(kind: str, payload: dict, actor: Organisation, when: datetime, deadline: int,
                  bid: int = battery.id) -> None:
            late = rng.random() < 0.08  # some nodes report late
            recorded = _working_days_later(when, deadline + rng.randint(1, 10) if late
                                           else rng.randint(0, deadline))
            drafts.append(Draft(bid, kind, payload, actor.id, when,
                                recorded_at=min(recorded, datetime.now(UTC))))

        def move(to: str, actor: Organisation, when: datetime, deadline: int = 15) -> None:
            nonlocal state
            event("status-changed", {"from": state, "to": to}, actor, when, deadline)
            state = to

        def hand(to: Organisation, actor: Organisation, when: datetime) -> None:
            nonlocal owner
            event("transferred", {"custody": {"from": owner, "to": to.uid},
                                  "responsibility": {"from": owner, "to": to.uid}}, actor, when, 15)
            owner = to.uid

        t = made + timedelta(days=rng.randint(20, 60))
        hand(vehicle, maker, t)
        t += timedelta(days=rng.randint(10, 40))
        move("in_service", vehicle, t)
        life_end = t + timedelta(days=rng.randint(4 * 365, 8 * 365))
        if life_end > datetime.now(UTC) - timedelta(days=120):
            fates["in_service"] += 1
            continue
        if rng.random() < 0.3:
            t += timedelta(days=rng.randint(300, 1000))
            move("maintenance", orgs["QuickFix Battery Service"], t, 30)
            t += timedelta(days=rng.randint(2, 20))
            move("in_service", orgs["QuickFix Battery Service"], t, 30)
        move("retired", vehicle, life_end)
        t = life_end + timedelta(days=rng.randint(3, 30))
        outlet = orgs["Green Loop Collection"]
        hand(outlet, vehicle, t)
        move("collected", outlet, t, 30)
        if until_collection:
            fates["collected"] += 1
            continue
        grader = orgs["Second Wind Storage"]
        t += timedelta(days=rng.randint(5, 40))
        hand(grader, outlet, t)
        move("tested", grader, t)
        event("tested", {"method": "capacity", "capacity_ah": round(
            battery.rated_capacity_ah * rng.uniform(0.62, 0.95), 1)}, grader, t, 15)
        t += timedelta(days=rng.randint(1, 10))
        move("graded", grader, t)
        roll = rng.random()
        if roll < 0.45:
            t += timedelta(days=rng.randint(5, 30))
            move("repurposed", grader, t)
            fates["repurposed"] += 1
        elif roll < 0.8:
            recycler = orgs["Circular Metals Recycling"]
            t += timedelta(days=rng.randint(5, 30))
            move("waste", grader, t)
            hand(recycler, grader, t)
            t += timedelta(days=rng.randint(5, 60))
            move("dismantled", recycler, t)
            t += timedelta(days=rng.randint(10, 60))
            move("recycled", recycler, t, 30)
            fates["recycled"] += 1
        else:
            fates["graded"] += 1
    drafts.sort(key=lambda d: (d.battery_id, d.occurred_at))
    ledger.append(session, drafts)
    made = (f"seeded {len(orgs)} organisations, {len(pack_rows)} packs with "
            f"{len(batteries) - len(pack_rows)} modules and {len(drafts) + len(batteries)} ledger "
            f"events; packs in service {fates['in_service']}, ")
    if until_collection:
        return made + f"collected and waiting for testing {fates['collected']}"
    return (made + f"repurposed {fates['repurposed']}, recycled {fates['recycled']}, "
            f"graded and waiting {fates['graded']}")
