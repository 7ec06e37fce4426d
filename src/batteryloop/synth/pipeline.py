"""The demo plant, run through the real services: every stage of the loop leaves what it would
leave in a real plant (rows, Parquet files, ledger events), so every page has something true to
show.

    registry      organisations, 300 packs (and modules) with back-filled histories up to their
                  collection (``synth.plant``); the makers' passports; the demo accounts
    intake        the collection outlet reads each retired pack's BMS (a condition report) and
                  hands it to the tester
    cycling       a check-up of each pack on the tester (``synth.tester``: the degradation model,
                  or PyBaMM), stored with its ``tested`` event
    grading       inspection, health from the test, the grade (stationary-storage policy)
    routes        half the packs graded for repurposing become stationary-storage products (a new
                  battery and passport each); packs graded waste go to the recycler
    certificates  a SOH and grading certificate with every pack that left the tester
    cells         loose second-life cells tested, graded and regrouped into a 14S4P pack; tester
                  files for the cells still waiting at the intake desk
    recycling     dismantling with weighed fractions, a closed batch per chemistry (mass balance,
                  compliance, carbon), one batch left open
    plant         two days of the NMP recovery line's telemetry with a fault, and its alarms
    models        the pulse-test SOH model, when the shared data are there
                  (plant and models run in a worker process meanwhile: ``synth.background``)

Each step picks its work by the records' state (packs collected and untested, graded and not yet
routed...), so running the demo again adds nothing, and a run that stopped half-way finishes.

The demo drives every stage, so this package imports every floor; like the faces, nothing but
the CLI (and tests) imports it.
"""

from __future__ import annotations

import copy
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from batteryloop.store import Database
from batteryloop.store.models import (
    Battery,
    CyclerTest,
    Dismantling,
    Event,
    FactoryAlarm,
    Identifier,
    Inspection,
    Organisation,
    PassportRecord,
    RecyclingBatch,
    User,
)
from batteryloop.synth import tester
from batteryloop.synth import degradation as dm


@cache
def config() -> dict[str, Any]:
    return tomllib.loads((files("batteryloop.synth") / "data" / "demo.toml").read_text())


@dataclass
class Step:
    name: str
    seconds: float  # wall-clock
    summary: str
    cpu_seconds: float = 0.0  # this process's CPU time (the machine may be shared)


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {"steps": [{"step": s.name, "seconds": round(s.seconds, 3),
                           "cpu_seconds": round(s.cpu_seconds, 3), "summary": s.summary}
                          for s in self.steps],
                "seconds": round(self.seconds, 3), "counts": self.counts}


@dataclass
class Context:
    db: Database
    root: Path
    make: tester.Generator
    packs: int
    now: datetime
    models: bool | None
    shared: Path | None
    cfg: dict[str, Any] = field(default_factory=config)
    pending: Any = None  # the background worker's future, if one runs
    _result: dict[str, Any] | None = None

    def actor(self, key: str) -> str:
        return self.cfg["actors"][key]

    def background(self) -> dict[str, Any]:
        """The background work's result (done here and now if no worker process runs)."""
        from batteryloop.synth import background

        if self._result is None:
            if self.pending is not None:
                self._result = self.pending.result()
            else:
                self._result = background.work(
                    str(self.root), self.cfg["plant"], self.now.isoformat(),
                    str(self.shared) if self.shared else None, self.models)
        return self._result


# ------------------------------------------------------------------------------------ helpers
def _org_id(session: Session, name: str) -> int:
    return session.scalar(select(Organisation.id).where(Organisation.name == name))


def _has_event(event_type: str) -> Any:
    return exists().where(and_(Event.battery_id == Battery.id, Event.type == event_type))


def _latest_grades(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    from batteryloop.grading.service import latest_grades

    return latest_grades(session, ids)


# ------------------------------------------------------------------------------------ steps
def step_registry(ctx: Context) -> str:
    from batteryloop.synth.plant import seed

    with ctx.db.session() as s:
        return seed(s, packs=ctx.packs, until_collection=True)


def step_passports(ctx: Context) -> str:
    """Operators' contacts and the maker's passport record of every pack it made."""
    from batteryloop.passport import service as passport
    from batteryloop.synth.passports import static_values

    pack_type = ctx.cfg["recycling"]["pack_type"]
    with ctx.db.session() as s:
        for org, contact in ctx.cfg["contacts"].items():
            passport.set_contact(s, org, dict(contact))
        maker = ctx.actor("maker")
        todo = list(s.scalars(
            select(Battery).where(Battery.kind == "pack",
                                  Battery.manufacturer_id == _org_id(s, maker),
                                  ~exists().where(PassportRecord.battery_id == Battery.id))
            .order_by(Battery.id)))
        for b in todo:
            passport.create(s, b.uid, static_values(b, pack_type=pack_type), actor=maker)
    return (f"{len(todo)} passports declared by {maker}; contacts of "
            f"{len(ctx.cfg['contacts'])} operators")


def step_accounts(ctx: Context) -> str:
    from batteryloop.synth.users import ensure

    with ctx.db.session() as s:
        made = ensure(s)
    return f"{len(made)} demo accounts created"


def _collected_packs(session: Session, owner: str) -> list[Battery]:
    return list(session.scalars(
        select(Battery).where(Battery.kind == "pack", Battery.state == "collected",
                              Battery.owner_id == _org_id(session, owner))
        .order_by(Battery.id)))


def step_intake(ctx: Context) -> str:
    """The collection outlet reads each pack's BMS, then hands the pack to the tester."""
    from batteryloop.passport import service as passport
    from batteryloop.registry.service import Registry
    from batteryloop.synth.passports import bms_readout

    collector, to = ctx.actor("collector"), ctx.actor("tester")
    with ctx.db.session() as s:
        reg = Registry(s)
        packs = _collected_packs(s, collector)
        energy = {b.id: b.rated_energy_wh for b in packs}
        for subject in tester.subjects(s, packs):
            readout = bms_readout(tester.condition_of(subject), energy[subject.id])
            if readout:
                passport.report_condition(s, subject.uid, readout, actor=collector)
            reg.transfer(subject.uid, custody_to=to, actor=collector,
                         reason="handed to the tester for a check-up")
    return f"{len(packs)} retired packs' BMS read and handed to {to}"


def step_cycling(ctx: Context) -> str:
    owner = ctx.actor("tester")
    with ctx.db.session() as s:
        packs = [b for b in _collected_packs(s, owner)
                 if not s.scalar(select(CyclerTest.id).where(CyclerTest.battery_id == b.id))]
        subjects = tester.subjects(s, packs)
    done = tester.run(ctx.db, subjects, actor=owner, make=ctx.make,
                      start=ctx.now - timedelta(days=3), root=ctx.root)
    rows = sum(stored.rows for _, _, stored in done)
    return f"{len(done)} check-ups stored ({rows:,} rows, `tested` events)"


def _inspection(ctx: Context, df: Any, series: int, key: str) -> Any:
    """What the inspector sees and measures (``demo.toml [grading]``): the OCV the battery arrived
    with (its test's first sample), cell voltages read from a pack's BMS, the insulation, findings
    and fault codes at the configured rates."""
    from batteryloop.grading.inspection import InspectionIn

    g = ctx.cfg["grading"]
    rng = tester.rng_for(key, "inspection")
    visual = {name: bool(rng.random() < share) for name, share in g["findings"].items()}
    ocv = float(df["voltage_volt"][0])
    cell_v = None
    if series > 1:
        cells = rng.normal(ocv / series, g["cell_voltage_spread_v"], series)
        if rng.random() < g["deep_discharge_share"]:
            cells[int(rng.integers(series))] = 1.8
        cell_v = [round(float(v), 3) for v in cells]
    median, sigma = g["insulation_mohm"]
    insulation = float(np.exp(rng.normal(np.log(median * 1e6), sigma)))
    if rng.random() < g["low_insulation_share"]:
        insulation = g["low_insulation_ohm"]
    codes = [str(rng.choice(g["bms_codes"]))] if rng.random() < g["bms_fault_share"] else []
    return InspectionIn(inspector=ctx.actor("tester"), visual=visual, ocv_v=round(ocv, 3),
                        cell_voltages_v=cell_v, insulation_resistance_ohm=round(insulation, 0),
                        bms_codes=codes)


def _grade_tested(ctx: Context, session: Session, batteries: list[Battery], *,
                  dc_resistance: bool) -> dict[str, int]:
    """Inspect, assess health from the stored test (resistance against the battery's fresh
    rating) and grade each battery; returns how many took each route."""
    from batteryloop.cycling import storage
    from batteryloop.cycling.summary import cycles
    from batteryloop.grading import inspection
    from batteryloop.grading import policy as policies
    from batteryloop.grading.service import grade, record_health
    from batteryloop.health import soh
    from batteryloop.health.assess import assess_from_test

    actor, policy = ctx.actor("tester"), policies.load(ctx.cfg["grading"]["policy"])
    routes: dict[str, int] = {}
    keys = {s.id: s.key for s in tester.subjects(session, batteries,
                                                 dict.fromkeys((b.id for b in batteries), 0.0))}
    for b in batteries:
        chem = dm.chemistry(b.chemistry or "")
        series = dm.series_count(chem, b.nominal_voltage_v)
        row = session.scalar(select(CyclerTest).where(CyclerTest.battery_id == b.id)
                             .order_by(CyclerTest.id.desc()))
        df, _ = storage.load(session, row.sha256, ctx.root)
        inspection.record(session, b.uid, _inspection(ctx, df, series, keys[b.id]))
        fresh = dm.fresh_resistance_ohm(chem, b.rated_capacity_ah, series)
        assess_from_test(session, b.uid, actor=actor, initial_r_ohm=fresh, root=ctx.root)
        if dc_resistance:
            r = cycles(df)["dcir_ohm"].drop_nans().drop_nulls()
            if r.len():
                record_health(session, b.uid, [soh.dc_resistance(
                    float(r.median()), source=row.sha256,
                    method="DCIR at the onset of the 1 C charge pulse at the arrival SOC")],
                    actor=actor, method="measured", source=row.sha256)
        decided = grade(session, b.uid, policy=policy, actor=actor)
        routes[decided["route"]] = routes.get(decided["route"], 0) + 1
    return routes


def step_grading(ctx: Context) -> str:
    owner = ctx.actor("tester")
    with ctx.db.session() as s:
        packs = [b for b in _collected_packs(s, owner)
                 if s.scalar(select(CyclerTest.id).where(CyclerTest.battery_id == b.id))
                 and not s.scalar(select(Inspection.id).where(Inspection.battery_id == b.id))]
        routes = _grade_tested(ctx, s, packs, dc_resistance=False)
    return f"{len(packs)} packs inspected, assessed and graded: " + ", ".join(
        f"{k} {v}" for k, v in sorted(routes.items()))


def step_routes(ctx: Context) -> str:
    """Build second-life products from part of the packs graded for repurposing; send the packs
    graded waste to the recycler."""
    from batteryloop.grading.service import apply_route
    from batteryloop.passport import service as passport
    from batteryloop.registry.schemas import BatteryIn
    from batteryloop.registry.service import Registry
    from batteryloop.synth.passports import static_values

    g = ctx.cfg["grading"]
    owner, recycler = ctx.actor("tester"), ctx.actor("recycler")
    pack_type = ctx.cfg["recycling"]["pack_type"]
    built = wasted = 0
    with ctx.db.session() as s:
        reg = Registry(s)
        graded = list(s.scalars(select(Battery).where(
            Battery.kind == "pack", Battery.state == "graded",
            Battery.owner_id == _org_id(s, owner)).order_by(Battery.id)))
        grades = _latest_grades(s, [b.id for b in graded])
        made = s.scalar(select(func.count()).select_from(Identifier).where(
            Identifier.scheme == "second_life",
            Identifier.value.startswith(g["second_life_prefix"])))
        for b in graded:
            decided = grades[b.id]
            if decided["route"] == "waste":
                apply_route(s, b.uid, actor=owner)
                reg.transfer(b.uid, custody_to=recycler, responsibility_to=recycler, actor=owner,
                             reason="graded waste: to the recycler")
                wasted += 1
            elif decided["route"] == "repurposed" and \
                    tester.rng_for(b.code or b.uid, "route").random() < g["built_share"]:
                made += 1
                soh_lower = (decided.get("soh") or {}).get("lower") or 0.0
                rated = round(b.rated_capacity_ah * soh_lower / 100.0, 1) if soh_lower else None
                spec = BatteryIn(
                    kind="pack", chemistry=b.chemistry, rated_capacity_ah=rated,
                    nominal_voltage_v=b.nominal_voltage_v, mass_kg=b.mass_kg,
                    rated_energy_wh=round(rated * b.nominal_voltage_v, 0)
                    if rated and b.nominal_voltage_v else None,
                    manufacturer=owner,
                    identifiers={"second_life": f"{g['second_life_prefix']}{made:04d}"})
                child = apply_route(s, b.uid, actor=owner, successor=spec)
                product = reg.battery(child["uid"])
                passport.create(s, product.uid, static_values(product, second_life=True,
                                                              pack_type=pack_type), actor=owner)
                reg.change_status(product.uid, "in_service", actor=owner,
                                  reason="installed as stationary storage")
                built += 1
    return (f"{built} stationary-storage packs built from graded packs (new passports), "
            f"{wasted} packs to {recycler}")


def step_certificates(ctx: Context) -> str:
    """A SOH and grading certificate goes with every pack that leaves the tester: built into a
    second-life product or sent to the recycler (graded stock gets one when it is sold)."""
    from batteryloop.grading import certificate
    from batteryloop.registry.lifecycle import lifecycle

    owner = ctx.actor("tester")
    closed = [name for name in lifecycle().states if lifecycle().state(name).read_only]
    with ctx.db.session() as s:
        todo = list(s.scalars(select(Battery).where(
            Battery.kind == "pack", _has_event("graded"), ~_has_event(certificate.ISSUED),
            Battery.state.not_in([*closed, "graded"])).order_by(Battery.id)))
        for b in todo:
            certificate.issue(s, b.uid, actor=owner)
    return f"{len(todo)} SOH and grading certificates issued with the packs that left the tester"


def step_cells(ctx: Context) -> str:
    """Loose second-life cells: tested, assessed (with DC resistance), graded; one 14S4P pack
    regrouped from them; tester files for the cells waiting at the intake desk."""
    from batteryloop.synth import cells as demo_cells

    c = ctx.cfg["cells"]
    with ctx.db.session() as s:
        seeded = demo_cells.seed_cells(s, graded=c["graded"], waiting=c["waiting"], grade=False)
    return "; ".join([seeded, _test_and_grade_cells(ctx), _regroup_cells(ctx), _intake_files(ctx)])


def _test_and_grade_cells(ctx: Context) -> str:
    from batteryloop.registry.service import Registry
    from batteryloop.synth.cells import GRADED_PREFIX

    c = ctx.cfg["cells"]
    owner = ctx.actor("tester")
    with ctx.db.session() as s:
        todo = [b for b in _cells(s, GRADED_PREFIX, "collected")
                if not s.scalar(select(CyclerTest.id).where(CyclerTest.battery_id == b.id))]
        # the cells' first life (in modules now taken apart) is not in the registry: draw it
        days = {b.id: float(tester.rng_for(b.uid, "days").uniform(*c["days_in_service"]))
                for b in todo}
        subjects = tester.subjects(s, todo, days)
        reg, owner_id = Registry(s), _org_id(s, owner)
        for b in todo:
            if b.owner_id != owner_id:
                reg.transfer(b.uid, custody_to=owner, actor=owner, reason="bought for repurposing")
    tester.run(ctx.db, subjects, actor=owner, make=ctx.make, start=ctx.now - timedelta(days=2),
               root=ctx.root)
    with ctx.db.session() as s:
        ready = [b for b in _cells(s, GRADED_PREFIX, "collected")
                 if not s.scalar(select(Inspection.id).where(Inspection.battery_id == b.id))]
        routes = _grade_tested(ctx, s, ready, dc_resistance=True)
    return f"{len(subjects)} cells tested, {len(ready)} graded (" + ", ".join(
        f"{k} {v}" for k, v in sorted(routes.items())) + ")"


def _regroup_cells(ctx: Context) -> str:
    """One pack from the first cells graded for repurposing (plan, then commit that plan), with
    the repurposer's passport; the other graded cells are left for the planner page."""
    from batteryloop.grading.regroup import service as regroup
    from batteryloop.passport import service as passport
    from batteryloop.registry.service import Registry
    from batteryloop.synth.cells import GRADED_PREFIX
    from batteryloop.synth.passports import static_values

    c = ctx.cfg["cells"]
    owner = ctx.actor("tester")
    with ctx.db.session() as s:
        if s.scalar(select(Identifier.id).where(Identifier.scheme == "second_life",
                                                Identifier.value.startswith(c["regroup_prefix"]))):
            return "cells regrouped already"
        graded = _cells(s, GRADED_PREFIX, "graded")
        grades = _latest_grades(s, [b.id for b in graded])
        pool = [b.uid for b in graded if grades.get(b.id, {}).get("route") == "repurposed"]
        pool = pool[: c["regroup"]]
        if len(pool) < regroup.Layout.parse(c["layout"]).cells:
            return f"{len(pool)} cells graded for repurposing: too few for a {c['layout']} pack"
        plan = regroup.plan(s, pool, c["layout"])
        made = regroup.commit(s, pool, c["layout"], plan_sha256=plan["sha256"], actor=owner,
                              identifier_prefix=c["regroup_prefix"])
        reg = Registry(s)
        for pack in made["built"]:
            product = reg.battery(pack["uid"])
            passport.create(s, product.uid, static_values(
                product, second_life=True, pack_type=ctx.cfg["recycling"]["pack_type"]),
                actor=owner)
    return (f"{len(made['built'])} {c['layout']} pack regrouped from {len(pool)} cells "
            f"(plan {plan['sha256'][:12]})")


def _cells(session: Session, prefix: str, state: str) -> list[Battery]:
    return list(session.scalars(
        select(Battery).join(Identifier, Identifier.battery_id == Battery.id)
        .where(Identifier.scheme == "serial", Identifier.value.startswith(prefix),
               Battery.state == state).order_by(Identifier.value)))


def _intake_files(ctx: Context) -> str:
    """BDF CSV check-ups of the cells waiting at intake, to upload on the intake page."""
    from batteryloop.synth import cells as demo_cells

    folder = ctx.root / "demo" / "intake"
    with ctx.db.session() as s:
        waiting = _cells(s, demo_cells.INTAKE_PREFIX, "collected")
        span = ctx.cfg["cells"]["days_in_service"]
        days = {b.id: float(tester.rng_for(b.uid, "days").uniform(*span)) for b in waiting}
        subjects = tester.subjects(s, waiting, days)
    written = 0
    for subject in subjects:
        if (folder / f"{subject.key}.csv").is_file():
            continue
        tester.write_bdf(subject, tester.condition_of(subject), folder, ctx.make,
                         start_unix=(ctx.now - timedelta(days=1)).timestamp())
        written += 1
    return f"{written} intake tester files in {folder}"


def step_recycling(ctx: Context) -> str:
    """Dismantle the waste packs at the recycler (a few wait), close a batch per chemistry and
    leave one open."""
    from batteryloop.recycling import dismantling, packs
    from batteryloop.recycling import service as batches

    r = ctx.cfg["recycling"]
    recycler = ctx.actor("recycler")
    out = []
    with ctx.db.session() as s:
        # every pack the recycler took in, in order; the last few wait undismantled (so a second
        # run finds the same ones waiting and dismantles nothing more)
        taken = list(s.scalars(select(Battery).where(
            Battery.kind == "pack", Battery.owner_id == _org_id(s, recycler)).order_by(Battery.id)))
        waiting = {b.id for b in taken[-r["waiting"]:]} if r["waiting"] else set()
        todo = [b for b in taken if b.state == "waste" and b.id not in waiting
                and not s.scalar(select(Dismantling.id).where(Dismantling.battery_id == b.id))]
        for b in todo:  # weighed as the pack type's shares and the cell BOM imply, with noise
            rng = tester.rng_for(b.code or b.uid, "dismantling")
            rows = packs.breakdown_fractions(b.chemistry, b.mass_kg, r["pack_type"])
            noise = rng.normal(0.0, r["weighing_noise"], len(rows))
            weighed = [{**f, "mass_kg": round(f["mass_kg"] * (1 + e), 2)}
                       for f, e in zip(rows, noise, strict=True)]
            dismantling.record(s, b.uid, dismantling.DismantlingIn(
                fractions=weighed, actor=recycler,
                weighed_mass_kg=round(b.mass_kg * (1 + rng.normal(0, r["weighing_noise"])), 1)))
        out.append(f"{len(todo)} packs dismantled ({len(waiting)} waiting)")
    with ctx.db.session() as s:
        if s.scalar(select(RecyclingBatch.id)
                    .where(RecyclingBatch.ref.startswith(r["batch_prefix"]))):
            return "; ".join(out + ["batches exist: none created"])
        free = list(s.execute(
            select(Battery.uid, Battery.chemistry)
            .join(Dismantling, Dismantling.battery_id == Battery.id)
            .where(Dismantling.batch_id.is_(None)).order_by(Battery.id)))
        by_family: dict[str, list[str]] = {}
        for uid, chem in free:
            by_family.setdefault(dm.chemistry(chem).name, []).append(uid)
        # the newest dismantled packs wait in a batch left open; the others are processed
        size = r["open_batch_size"]
        keep_open = [uid for uid, _ in free[-size:]] if len(free) > size else []
        year, n = ctx.now.year, 0
        for family in sorted(by_family):
            group = [u for u in by_family[family] if u not in keep_open][: r["closed_batch_size"]]
            if not group:
                continue
            n += 1
            ref = f"{r['batch_prefix']}-{year}-{n:03d}"
            batches.create(s, batches.BatchIn(ref=ref, route=r["route"], batteries=group,
                                              processed_on=ctx.now.date(), actor=recycler))
            closed = batches.close(s, ref, actor=recycler)
            eff = closed["compliance"]["recycling_efficiency"]["value_pct"]
            out.append(f"batch {ref} ({family}, {len(group)} packs) closed: recycling efficiency "
                       f"{eff:.1f} %")
        if keep_open:
            n += 1
            ref = f"{r['batch_prefix']}-{year}-{n:03d}"
            batches.create(s, batches.BatchIn(ref=ref, route=r["route"], batteries=keep_open,
                                              processed_on=ctx.now.date(), actor=recycler))
            out.append(f"batch {ref} ({len(keep_open)} packs) left open to close in the browser")
    return "; ".join(out)


def step_plant(ctx: Context) -> str:
    """The line's telemetry and alarm transitions come from the background worker; the alarm log
    is written here (the database is this process's)."""
    from batteryloop.factory.alarm_log import AlarmLog

    plant = ctx.background()["plant"]
    line = ctx.cfg["plant"]["line"]
    if plant["run"] is None:
        return f"line {line} has telemetry: nothing simulated"
    with ctx.db.session() as s:
        recorded = AlarmLog(s).record(line, plant["transitions"])
    raised = sorted({t["alarm"] for t in plant["transitions"].to_dicts()
                     if t.get("kind") == "raised"})
    run = plant["run"]
    return (f"{run['stored']:,} samples of line {line} over {ctx.cfg['plant']['hours']} h from a "
            f"historian CSV ({Path(run['csv']).name}); alarms raised: "
            f"{', '.join(raised) or 'none'}; "
            f"{recorded} alarm log entries (background work {plant['seconds']:.1f} s, cpu "
            f"{plant['cpu_seconds']:.1f} s)")


def step_models(ctx: Context) -> str:
    models = ctx.background()["models"]
    return f"{models['summary']} (background work {models['seconds']:.1f} s)"


STEPS: list[tuple[str, Callable[[Context], str]]] = [
    ("registry", step_registry), ("passports", step_passports), ("accounts", step_accounts),
    ("intake", step_intake), ("cycling", step_cycling), ("grading", step_grading),
    ("routes", step_routes), ("certificates", step_certificates), ("cells", step_cells),
    ("recycling", step_recycling), ("plant", step_plant), ("models", step_models),
]


def run(db: Database, *, packs: int = 300, root: Path | None = None, pybamm: bool = False,
        models: bool | None = None, shared: Path | None = None, now: datetime | None = None,
        cells: int | None = None, plant_hours: float | None = None, parallel: bool = True,
        echo: Callable[[Step], None] | None = None) -> Report:
    """Run every step (see the module docstring); ``echo`` hears about each as it ends.

    ``cells`` and ``plant_hours`` override ``data/demo.toml`` (a smaller plant for tests).

    ``parallel``: the NMP line and the model training run in a worker process meanwhile
    (``synth.background``); without it (or if no process can be started) they run in turn."""
    from batteryloop import wiring
    from batteryloop.settings import get_settings
    from batteryloop.synth import background

    wiring.install()  # batches get their carbon figures; recycled batteries' passports archive
    settings = get_settings()
    cfg = copy.deepcopy(config())
    if cells is not None:
        cfg["cells"]["graded"] = cells
    if plant_hours is not None:
        cfg["plant"]["hours"] = plant_hours
    ctx = Context(db=db, root=Path(root) if root else settings.data_dir,
                  make=tester.generator(pybamm), packs=packs, now=now or datetime.now(UTC),
                  models=models, shared=shared if shared is not None else shared_folder(),
                  cfg=cfg)
    pool = None
    if parallel:
        pool, ctx.pending = background.start(ctx.root, ctx.cfg["plant"], ctx.now, ctx.shared,
                                             ctx.models)
    report = Report()
    try:
        for name, fn in STEPS:
            began, cpu = time.perf_counter(), time.process_time()
            summary = fn(ctx)
            step = Step(name, time.perf_counter() - began, summary, time.process_time() - cpu)
            report.steps.append(step)
            if echo:
                echo(step)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    report.counts = counts(db, ctx.root)
    return report


def shared_folder() -> Path | None:
    """The real data: ``BATTERYLOOP_SHARED``, else ``shared`` beside the project (as the tests and
    the README have it), else none."""
    from batteryloop.settings import get_settings

    if get_settings().shared is not None:
        return get_settings().shared
    beside = Path(__file__).resolve().parents[3].parent / "shared"
    return beside if (beside / "data").is_dir() else None


def counts(db: Database, root: Path) -> dict[str, Any]:
    """What the plant holds: batteries by state, events by type, tests, batches, alarms..."""
    from batteryloop.factory.telemetry.store import TelemetryStore

    with db.session() as s:
        states = dict(s.execute(select(Battery.state, func.count()).group_by(Battery.state)).all())
        events = dict(s.execute(select(Event.type, func.count()).group_by(Event.type)).all())
        batches = dict(s.execute(select(RecyclingBatch.status, func.count())
                                 .group_by(RecyclingBatch.status)).all())
        out = {
            "batteries": states, "events": events,
            "tests": s.scalar(select(func.count()).select_from(CyclerTest)),
            "passports": s.scalar(select(func.count()).select_from(PassportRecord)),
            "inspections": s.scalar(select(func.count()).select_from(Inspection)),
            "dismantlings": s.scalar(select(func.count()).select_from(Dismantling)),
            "recycling_batches": batches,
            "alarms": s.scalar(select(func.count()).select_from(FactoryAlarm)),
            "users": s.scalar(select(func.count()).select_from(User)),
        }
    store = TelemetryStore(root / "telemetry")
    out["telemetry_samples"] = {line: store.count(line) for line in store.lines()}
    return out

