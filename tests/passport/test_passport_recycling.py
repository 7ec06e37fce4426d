"""The passport after the recycling and carbon stages: closing a recycling batch archives each
battery's passport read-only (reads still work, writes are refused) with what was dismantled and
recovered in its circularity category; where the maker declared no carbon footprint the passport
shows the carbon stage's, marked as computed, and never over a declared one."""

from __future__ import annotations

import hashlib
from importlib.resources import files

import pytest
from fastapi.testclient import TestClient
from passport_support import (
    FOOTPRINT,
    TO_GRADED,
    add_orgs,
    assess,
    dismantle,
    original,
    populate,
    recycle_in_batch,
    register,
    second_life,
    walk,
)

from batteryloop.accounts.viewer import Viewer
from batteryloop.api import create_app
from batteryloop.api.routes import passport as passport_api
from batteryloop.carbon import _data as carbon_data
from batteryloop.errors import Conflict
from batteryloop.passport import service, view
from batteryloop.registry.schemas import BatteryIn
from batteryloop.registry.service import Registry

AUTHORITY = Viewer(tier="authority")
PACK_KG = 310.5  # passport_support.register
PACK_KWH = 48.0


def _collected(s, chemistry: str, tag: str, *, declared: bool = True) -> str:  # type: ignore[no-untyped-def]
    """A pack with a full passport (or one without the footprint figures), through its first life
    to collection."""
    uid = register(s, chemistry)
    populate(s, uid, tag, chemistry=chemistry)
    if not declared:
        service.update(s, uid, {}, unset=list(FOOTPRINT), actor="Maker")
    walk(s, uid, ["in_service", "retired", "collected"])
    return uid


def test_closing_a_batch_archives_each_passport_read_only_with_what_was_recovered(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        add_orgs(s)
        uids = [_collected(s, "LFP", "lfp"), _collected(s, "NMC", "nmc", declared=False)]
        for uid in uids:
            dismantle(s, uid)
    with db.session() as s:
        before = {uid: view.read(s, uid, AUTHORITY, path="test") for uid in uids}
        # the recycler closes the batch: it is neither maker nor operator, and never held custody
        closed = recycle_in_batch(s, uids, "B-PASSPORT-1")
    shares = {}
    with db.session() as s:
        reg = Registry(s)
        for uid in uids:
            info = reg.describe(uid)
            assert info["state"] == "recycled" and info["read_only"]
            shown = view.read(s, uid, AUTHORITY, path="test")
            assert shown.ceased and shown.archived_at
            # archived as it stood: nothing it showed before the close is lost or changed
            for attr_id, value in before[uid].values.items():
                assert shown.values[attr_id].value == value.value, attr_id
            record = shown.values["circularity.dismantling_record"]
            assert record.by["name"] == "Recycler" and record.source == "ledger"
            assert sum(f["mass_kg"] for f in record.value["fractions"]) == pytest.approx(PACK_KG)
            recovered = shown.values["circularity.recovered_materials"]
            event = next(e for e in reg.history(uid) if e["type"] == "recycled")
            assert recovered.updated_at == event["occurred_at"] and recovered.by["name"] == "Recycler"
            assert recovered.value["batch"] == "B-PASSPORT-1"
            assert recovered.value["route"] == "hydrometallurgical"
            assert recovered.value["recovered_kg"] == pytest.approx(event["payload"]["recovered_kg"],
                                                                    abs=1e-6)
            mine = next(b for b in closed["batteries"] if b["uid"] == uid)
            for c, kg in recovered.value["recovered_kg"].items():
                assert recovered.value["recovered_share_pct"][c] == pytest.approx(
                    100 * kg / mine["input_kg"][c])
            assert recovered.value["batch_recycling_efficiency_pct"] == pytest.approx(
                closed["compliance"]["recycling_efficiency"]["value_pct"])
            shares[uid] = recovered.value["carbon"]
    # each battery's part of the batch's carbon: the parts add back up to the batch
    batch = closed["carbon"]
    assert sum(c["net_avoided"] for c in shares.values()) == pytest.approx(batch["net_avoided"])
    assert sum(c["recycling_emissions"] for c in shares.values()) == pytest.approx(
        batch["recycling_emissions"]["total"])
    # emissions by cell-derived input: 80 % of the LFP pack is cells, 60 % of the NMC one
    # (recycling/data/composition.toml pack types), both packs 310.5 kg
    assert shares[uids[0]]["share_of_batch_cell_input"] == pytest.approx(0.8 / (0.8 + 0.6))

    for write in (
        lambda s: service.update(s, uids[0], {"carbon.performance_class": "A"}, actor="Maker"),
        lambda s: service.report_condition(s, uids[0], {"performance.state_of_charge": 1},
                                           actor="Maker"),
        lambda s: Registry(s).change_status(uids[0], "collected", actor="Recycler"),
        lambda s: assess(s, uids[1], actor="Recycler"),
    ):
        with pytest.raises(Conflict, match="read-only"), db.session() as s:
            write(s)

    app = create_app(db)
    app.dependency_overrides[passport_api.current_viewer] = lambda: Viewer(tier="authority",
                                                                           user="auditor")
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get(f"/api/v1/passports/{uids[1]}")
        page = client.get(f"/passport/{uids[1]}")
    assert r.status_code == 200 and r.json()["ceased"] is True
    circularity = r.json()["categories"]["circularity"]
    assert circularity["circularity.recovered_materials"]["value"]["batch"] == "B-PASSPORT-1"
    assert r.json()["categories"]["carbon_footprint"]["carbon.battery_carbon_footprint"]["source"] \
        == "computed"
    assert page.status_code == 200 and "This passport has ceased" in page.text
    assert 'data-attribute="circularity.recovered_materials"' in page.text
    assert _shipped_sha256("factors.toml")[:12] in page.text  # the computed value's factor set


def test_a_dismantled_battery_shows_its_dismantling_before_its_batch_closes(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        add_orgs(s)
        uid = _collected(s, "LMO", "lmo")
        dismantle(s, uid)
    with db.session() as s:
        shown = view.read(s, uid, AUTHORITY, path="test")
        public = view.read(s, uid, Viewer(), path="test")
    assert not shown.ceased
    fractions = {f["fraction"]: f["mass_kg"] for f in shown.values["circularity.dismantling_record"]
                 .value["fractions"]}
    # LMO pack type: 33 % housing, 51.4 % cells (recycling/data/composition.toml)
    assert fractions["housing"] == pytest.approx(0.33 * PACK_KG)
    assert "circularity.recovered_materials" not in shown.values  # no batch has closed yet
    assert "circularity.dismantling_record" not in public.values  # Annex XIII 2(c): restricted


def _shipped_sha256(name: str) -> str:
    return hashlib.sha256((files("batteryloop.carbon") / "data" / name).read_bytes()).hexdigest()


def test_a_computed_footprint_where_the_maker_declared_none(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        add_orgs(s)
        uid = original(s, "LFP", tag="cf")
        service.update(s, uid, {}, unset=list(FOOTPRINT), actor="Maker")
    with db.session() as s:
        shown = view.read(s, uid, Viewer(), path="test")  # the footprint is public (1(c))
    total = shown.values["carbon.battery_carbon_footprint"]
    m = total.measurement
    assert total.source == "computed" and total.by is None
    assert m["method"].startswith("computed, not declared by the maker")
    assert m["version"].startswith("batteryloop ")
    assert m["factors"] == [{"file": "carbon/data/factors.toml",
                             "sha256": _shipped_sha256("factors.toml")}]
    assert {"file": "carbon/data/processes.toml", "sha256": _shipped_sha256("processes.toml")} \
        in m["data"]
    # by hand: the footprint per kWh of capacity over the energy a 48 kWh LFP pack delivers in
    # its service life: min(200,000 km x 0.18 kWh/km / 48 kWh, 3,000 FEC x (1 + 0.8) / 2) = 750
    life = carbon_data.load("processes.toml")["service_life"]
    energy = min(life["service_km"] * life["kwh_per_km"] / PACK_KWH,
                 life["cycle_life_fec"]["LFP"] * (1 + life["end_of_life_soh"]) / 2)
    assert energy == pytest.approx(750.0) and m["service_life"]["limited_by"] == "vehicle"
    assert total.value == pytest.approx(m["per_kwh_capacity"]["total"] / energy)
    stages = shown.values["carbon.per_lifecycle_stage"].value
    assert [x["lifecycleStage"] for x in stages] == ["RawMaterialExtraction", "MainProduction",
                                                     "Distribution", "Recycling"]
    assert sum(x["carbonFootprint"] for x in stages) == pytest.approx(total.value)
    assert stages[0]["carbonFootprint"] > stages[1]["carbonFootprint"] > stages[2]["carbonFootprint"] > 0
    assert stages[3]["carbonFootprint"] < 0  # end of life: the recycling credit (CFF)
    assert shown.values["carbon.absolute"].value == pytest.approx(
        m["per_kwh_capacity"]["total"] * PACK_KWH)
    # the maker's class and study stay as declared
    assert shown.values["carbon.performance_class"].source == "static"

    # a declared figure is never overridden, nor completed with computed ones beside it
    with db.session() as s:
        service.update(s, uid, {"carbon.battery_carbon_footprint": 0.09}, actor="Maker")
    with db.session() as s:
        shown = view.read(s, uid, Viewer(), path="test")
    declared = shown.values["carbon.battery_carbon_footprint"]
    assert declared.value == 0.09 and declared.source == "static"
    assert "carbon.per_lifecycle_stage" not in shown.values and "carbon.absolute" not in shown.values


def test_no_computed_footprint_for_a_cell_or_a_battery_made_from_others(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        add_orgs(s)
        cell = Registry(s).register(BatteryIn(kind="cell", chemistry="LFP", rated_energy_wh=320,
                                              manufacturer="Maker"), actor="Maker").uid
        source = original(s, "NMC", tag="src")
        walk(s, source, TO_GRADED)
        child = second_life(s, [source], chemistry="NMC", tag="sl")
        service.update(s, child, {}, unset=list(FOOTPRINT), actor="Reuse")
        unknown = register(s, "NA")  # sodium-ion: no composition data in the carbon stage
    with db.session() as s:
        for uid in (cell, child, unknown):
            shown = view.read(s, uid, AUTHORITY, path="test")
            assert not set(FOOTPRINT) & set(shown.values), uid
