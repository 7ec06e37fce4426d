"""Issue 4 end to end, on real cells: a batch of 60 retired LMO 10 Ah cells of PulseBat (Tao et al.,
Nature Communications 15, 10154, 2024) goes from pulse tests to SOH, grades, routes, values,
regrouped packs and certificates, and every step is in the ledger, on SQLite and PostgreSQL.

The batch is 60 of the file's 95 cells (a seeded draw); the pulse-SOH model that assesses them is
trained on the other 35 only (per-type ridge, ``health.pulse``), so no cell is scored by a model
that saw it. Each cell arrives at one state of charge (the tested SOCs 5-50 % in turn) and brings
that one 5 s pulse test. PulseBat gives no nominal voltage: the batch's median rested voltage at
50 % SOC (U1 of the SOC 50 % test) stands in for it.

Measured with seed 0 (for the bounds below): SOH MAPE 2.2 % against the measured capacity, the
90 % intervals held 58 of 60 measured SOH values; routes by the lower bound of SOH (stationary-
storage policy): 41 band A, 4 band B, 8 band C, 7 to recycling; 53 repurposed cells make two 6S4P
packs (48 cells: 35.96 and 33.66 Ah usable, within 0.002 % of the capacity bound), the 5 weakest
left over for a later batch. Run time about 5 s on SQLite and 14 s on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from batteryloop import grading
from batteryloop.grading import regroup
from batteryloop.grading.inspection import InspectionIn
from batteryloop.grading.regroup.features import dcir_from_pulses
from batteryloop.health import artifacts, model_store, soh
from batteryloop.health import pulse_model as pm
from batteryloop.health.assess import PULSE_METHOD, assess_pulse
from batteryloop.health.datasets import load_pulsebat, pulsebat_files
from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.registry.verify import verify

CELL_TYPE = "LMO_10Ah"
BATCH = 60
LAYOUT = "6S4P"
VOLTAGES = [f"U{i}" for i in range(1, 22)]
POLICY = "stationary-storage"
BANDS = ((80.0, "A"), (70.0, "B"), (60.0, "C"))  # stationary-storage.toml, on the lower bound
NREL = (38.0, 132.0)  # repurposed selling price, USD/kWh (Neubauer et al., NREL 2012)
NREL_SOH = 75.0  # the SOH range those prices were analysed for (and tests/grading/test_value.py)
CES = 220.0  # used EV batteries traded at 220-235 USD/kWh (Circular Energy Storage, 2021-22)


@pytest.fixture(scope="module")
def cells(shared_dir: Path) -> pl.DataFrame:
    return load_pulsebat(shared_dir).filter(pl.col("cell_type") == CELL_TYPE)


@pytest.fixture(scope="module")
def batch(cells: pl.DataFrame) -> list[str]:
    ids = sorted(cells["cell_id"].unique().to_list())
    return sorted(np.random.default_rng(0).choice(ids, BATCH, replace=False).tolist())


@pytest.fixture(scope="module")
def artefact(shared_dir: Path, cells: pl.DataFrame, batch: list[str],
             tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A pulse-SOH artefact trained without any cell of the batch, saved and loaded back."""
    train = cells.filter(~pl.col("cell_id").is_in(batch))
    model = pm.fit(pm.PulseData.from_frame(train), "ridge", transfer=False)
    files = [p for p in pulsebat_files(shared_dir) if p.name.startswith(CELL_TYPE)]
    card = artifacts.ModelCard(
        name=pm.NAME, kind=f"ridge on {CELL_TYPE} without the batch's cells",
        features=[*pm.FEATURES, "soc", "cell_type"], target="soh",
        training_data_sha256=artifacts.data_sha256(files), training_files=[p.name for p in files],
        params={"method": "ridge", "coverage": pm.NOMINAL_COVERAGE, "held_out_cells": batch})
    root = tmp_path_factory.mktemp("models")
    folder = artifacts.save(model, card, root)
    return model_store.load_pulse(folder)


def _arrivals(cells: pl.DataFrame, batch: list[str]) -> pl.DataFrame:
    """Each cell's one pulse test, at the SOC it arrives with (the tested SOCs in turn)."""
    socs = sorted(cells["soc"].unique().to_list())
    wanted = pl.DataFrame({"cell_id": batch, "soc": [socs[i % len(socs)] for i in range(BATCH)]})
    return wanted.join(cells, on=["cell_id", "soc"], how="left").sort("cell_id")


def _expected_grade(lower: float) -> tuple[str, str]:
    for limit, grade in BANDS:
        if lower >= limit:
            return "repurposed", grade
    return "waste", "R"


@pytest.mark.shared
def test_a_batch_of_retired_cells_from_tests_to_packs_and_certificates(  # type: ignore[no-untyped-def]
        db, cells: pl.DataFrame, batch: list[str], artefact: tuple) -> None:
    arrivals = _arrivals(cells, batch)
    assert arrivals.height == BATCH and arrivals["U1"].null_count() == 0
    volts = float(cells.filter(pl.col("cell_id").is_in(batch) & (pl.col("soc") == 50.0))["U1"].median())
    u = arrivals.select(VOLTAGES).to_numpy()
    dcir, _ = dcir_from_pulses(u, arrivals["rated_ah"].to_numpy())
    serial = [f"LMO-{i:02d}" for i in range(BATCH)]
    with db.session() as s:
        reg = Registry(s)
        reg.add_organisation(OrganisationIn(name="Lab", roles=["repurposer"]))
        reg.add_organisation(OrganisationIn(name="Fleet", roles=["vehicle_maker"]))

    # intake: register, retire, inspect, assess (pulse model + DCIR), grade, certify, route
    graded, issued = {}, {}
    for i, row in enumerate(arrivals.iter_rows(named=True)):
        with db.session() as s:
            reg = Registry(s)
            uid = reg.register(BatteryIn(
                kind="cell", chemistry="LMO", rated_capacity_ah=row["rated_ah"],
                nominal_voltage_v=volts, identifiers={"serial": serial[i]}), actor="Fleet").uid
            for state in ("in_service", "retired", "collected"):
                reg.change_status(uid, state, actor="Fleet")
            grading.record_inspection(s, uid, InspectionIn(inspector="Lab", ocv_v=row["U1"],
                                                           bms_codes=[]))
            test = arrivals[i].select("soc", *VOLTAGES)
            assess_pulse(s, uid, test, artefact=artefact, actor="Lab", name=f"{serial[i]}.csv")
            grading.record_health(s, uid, [soh.dc_resistance(
                float(dcir[i]), method="5 s DCIR, five pulses of the same test")], actor="Lab",
                method="pulse test")
            graded[uid] = grading.grade(s, uid, policy=POLICY, actor="Lab")
            issued[uid] = grading.issue_certificate(s, uid, actor="Lab", with_pdf=i == 0)
            if graded[uid]["route"] == "waste":
                grading.apply_route(s, uid, actor="Lab")
    uids = list(graded)

    # SOH from the model against the capacity PulseBat measured, on cells it never saw
    measured = 100 * arrivals["soh"].to_numpy()
    used = np.array([[g["soh"]["value"], g["soh"]["lower"], g["soh"]["upper"]] for g in graded.values()])
    assert all(g["soh"]["parameter"] == "capacity_soh" for g in graded.values())
    assert np.mean(np.abs(used[:, 0] - measured) / measured) * 100 < 3.0
    assert np.mean((used[:, 1] <= measured) & (measured <= used[:, 2])) >= 0.85

    # grades and routes follow the policy's bands on the lower bound, cell by cell
    routes = {uid: g["route"] for uid, g in graded.items()}
    for uid, g in graded.items():
        assert (g["route"], g["grade"]) == _expected_grade(g["soh"]["lower"]), g["reasons"]
    repurposed = [uid for uid in uids if routes[uid] == "repurposed"]
    waste = [uid for uid in uids if routes[uid] == "waste"]
    assert len(repurposed) + len(waste) == BATCH and waste and len(repurposed) >= 48

    # values priced at the lower bound, within the published anchors where they apply
    for uid, g in graded.items():
        v, lower = g["value"], g["soh"]["lower"]
        assert v["remaining_energy_kwh"] == pytest.approx(10 * volts / 1000 * lower / 100, abs=1e-4)
        if g["route"] == "waste":
            assert v["ceiling"] is None and v["estimate"]["per_unit"] == v["floor"]["per_unit"]
            continue
        ceiling = v["ceiling"]["per_remaining_kwh"]
        assert ceiling <= NREL[1] and v["estimate"]["per_remaining_kwh"] < CES
        if lower >= NREL_SOH:
            assert NREL[0] <= ceiling <= NREL[1], (lower, ceiling)

    # the repurposed cells regrouped into packs: plan, then build that plan
    with db.session() as s:
        plan = regroup.plan(s, repurposed, LAYOUT)
    assert plan["features"]["used"] == ["capacity", "dcir", "ocv"]
    assert plan["summary"]["packs"] == len(repurposed) // 24
    with db.session() as s:
        built = regroup.commit(s, repurposed, LAYOUT, actor="Lab", identifier_prefix="SL-LMO",
                               plan_sha256=plan["sha256"])["built"]
    members = {b["uid"]: {u for g in p["groups"] for u in g} for b, p in zip(built, plan["packs"], strict=True)}
    packed = set().union(*members.values())
    leftover = set(plan["leftover"])
    assert len(packed) == 24 * len(built) and packed | leftover == set(repurposed)
    capacity = {c["uid"]: c["capacity_ah"] for c in plan["cells"]}
    assert max(capacity[u] for u in leftover) <= min(capacity[u] for u in packed)  # weakest left
    for p in plan["packs"]:
        assert p["usable_capacity_ah"] <= p["upper_bound_ah"] and p["gap_pct"] < 1.0
        assert p["usable_capacity_lower_ah"] < p["usable_capacity_ah"]

    with db.session() as s:
        reg = Registry(s)
        for b, p in zip(built, plan["packs"], strict=True):
            pack = reg.describe(b["uid"])
            assert pack["state"] == "repurposed" and pack["chemistry"] == "LMO"
            assert {x["uid"] for x in pack["sources"]} == members[b["uid"]]  # lineage to all
            assert pack["rated_capacity_ah"] == pytest.approx(p["usable_capacity_lower_ah"])
            assert pack["nominal_voltage_v"] == pytest.approx(6 * volts)
            last = reg.history(b["uid"])[-1]
            assert last["type"] == "regrouped" and last["payload"]["plan"] == plan["sha256"]
            assert last["payload"]["groups"] == p["groups"]

        # every cell's steps, in order, in its own chain
        intake = ["registered", "status-changed", "status-changed", "status-changed", "inspected",
                  "health-assessed", "health-assessed", "status-changed", "graded",
                  "status-changed", "certificate-issued"]
        for uid in uids:
            history = reg.history(uid)
            types = [e["type"] for e in history]
            tail = {"waste": ["status-changed"],
                    "packed": ["status-changed", "lineage-linked", "regrouped"],
                    "left": []}["waste" if uid in waste else "packed" if uid in packed else "left"]
            assert types == intake + tail, (uid, types)
            pulse_event, dcir_event = history[5]["payload"], history[6]["payload"]
            assert pulse_event["method"] == PULSE_METHOD and pulse_event["in_domain"]
            assert pulse_event["model"]["version"] == artefact[1].version
            assert dcir_event["values"][0]["parameter"] == "dc_resistance"
            cert_event = history[10]
            assert cert_event["payload"]["sha256"] == issued[uid]["certificate"]["sha256"]
            assert cert_event["payload"]["graded"]["seq"] == history[8]["seq"] == graded[uid]["seq"]
            if uid in packed:
                r = history[-1]["payload"]
                pack_uid = next(b for b, m in members.items() if uid in m)
                assert r["pack"] == pack_uid and r["plan"] == plan["sha256"]
                assert reg.battery(uid).state == "repurposed"
            elif uid in waste:
                assert reg.battery(uid).eu_status == "waste"
            else:
                assert reg.battery(uid).state == "graded"

        # the certificates check against the ledger: every JSON, and the one PDF
        for uid in uids:
            out = grading.check_certificate(s, issued[uid]["certificate"])
            assert out["valid"] and out["issued"]["seq"] == 11, out["problems"]
        first = issued[uids[0]]
        assert first["pdf"] is not None
        assert grading.check_certificate(s, first["pdf"])["battery"] == uids[0]
        report = verify(s)
        assert report.ok and report.batteries == BATCH + len(built)
