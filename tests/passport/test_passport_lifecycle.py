"""The status lifecycle as Art. 77 has it: second life makes a new passport linked to all the
originals (two generations here), with responsibility on the new operator; waste keeps the
passport and moves responsibility to the waste operator; recycling ends it, archived read-only;
dynamic attributes follow the ledger."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from passport_support import TO_GRADED, add_orgs, assess, original, register, second_life, walk

from batteryloop.accounts.viewer import Viewer
from batteryloop.api import create_app
from batteryloop.api.routes import passport as passport_api
from batteryloop.errors import Conflict
from batteryloop.passport import service, view
from batteryloop.registry.service import Registry

LEGIT = Viewer(tier="legitimate_interest")


def _uids(nodes: list[dict]) -> set[str]:
    return {n["uid"] for n in nodes}


def test_two_generations_of_second_life_link_every_passport(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        add_orgs(s)
        a1, a2 = original(s, "NMC", tag="a1"), original(s, "NMC", tag="a2")
        for uid in (a1, a2):
            walk(s, uid, TO_GRADED)
        b = second_life(s, [a1, a2], tag="b")  # repurposed from two packs
        walk(s, b, ["retired", "collected", "tested", "graded"], actor="Reuse")
        d = original(s, "NMC", tag="d")
        walk(s, d, TO_GRADED)
        c = second_life(s, [b, d], relation="remanufactured", operator="Reman", tag="c")
    with db.session() as s:
        shown = {u: view.read(s, u, LEGIT, path="test") for u in (a1, b, c)}
        public_c = view.read(s, c, Viewer(), path="test")
    lineage_c = shown[c].values["general.lineage"].value
    assert _uids(lineage_c["sources"]) == {b, d}
    from_b = next(n for n in lineage_c["sources"] if n["uid"] == b)
    assert from_b["relation"] == "remanufactured" and _uids(from_b["sources"]) == {a1, a2}
    lineage_a1 = shown[a1].values["general.lineage"].value
    assert _uids(lineage_a1["successors"]) == {b}
    assert _uids(lineage_a1["successors"][0]["successors"]) == {c}
    # each new passport has its own identity, status and responsible operator
    assert shown[b].values["general.battery_status"].value == "remanufactured"  # b went on
    assert shown[c].values["general.battery_status"].value == "remanufactured"
    assert shown[a1].values["general.battery_status"].value == "repurposed"
    assert shown[c].values["general.operator_information"].value["contactName"] == "Reman"
    assert shown[b].values["general.operator_information"].value["contactName"] == "Reuse"
    assert shown[c].values["general.product_identifier"].value == c != b
    # the links are point-4 information: not public
    assert "general.lineage" not in public_c.values
    assert public_c.values["general.operator_information"].value["contactName"] == "Reman"


def test_waste_keeps_the_passport_and_moves_responsibility(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        add_orgs(s)
        uid = original(s, "LFP")
    with db.session() as s, pytest.raises(view.Forbidden):
        service.to_waste(s, uid, "Waste Co", actor="Recycler")  # not its battery
    with db.session() as s:
        result = service.to_waste(s, uid, "Waste Co", actor="Maker")
    with db.session() as s:
        shown = view.read(s, uid, LEGIT, path="test")
        battery = Registry(s).battery(uid)
        waste_co = Registry(s).organisation("Waste Co")
    assert result["status"] == "waste" and battery.responsible_id == waste_co.id
    assert shown.values["general.battery_status"].value == "waste"
    assert shown.values["general.operator_information"].value["identifier"] == waste_co.uid
    assert "carbon.battery_carbon_footprint" in shown.values  # the passport goes on
    # the waste operator now writes it; the maker still may (it made it)
    with db.session() as s:
        service.report_condition(s, uid, {"performance.state_of_charge": 20.5}, actor="Waste Co")
        assert not shown.ceased


def test_after_recycling_the_passport_is_archived_and_read_only(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        add_orgs(s)
        uid = original(s, "LMO")
        service.to_waste(s, uid, "Recycler", actor="Maker")
    with db.session() as s:
        before = view.read(s, uid, Viewer(tier="authority"), path="test")
        service.recycle(s, uid, actor="Recycler")
    with db.session() as s:
        after = view.read(s, uid, Viewer(tier="authority"), path="test")
    assert after.ceased and after.archived_at
    assert {k: v.value for k, v in after.values.items()} == {k: v.value for k, v in before.values.items()}
    for write in (
        lambda s: service.update(s, uid, {"carbon.performance_class": "A"}, actor="Maker"),
        lambda s: service.report_condition(s, uid, {"performance.state_of_charge": 1}, actor="Recycler"),
        lambda s: Registry(s).change_status(uid, "collected", actor="Recycler"),
        lambda s: assess(s, uid, actor="Recycler"),
    ):
        with pytest.raises(Conflict, match="read-only"), db.session() as s:
            write(s)
    with db.session() as s:
        maker = Registry(s).organisation("Maker").uid
    app = create_app(db)
    app.dependency_overrides[passport_api.acting_organisation] = lambda: maker  # signed in as Maker
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.patch(f"/api/v1/passports/{uid}", json={"set": {"carbon.performance_class": "A"}})
        page = client.get(f"/passport/{uid}")
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert "read-only" in r.json()["detail"]
    assert page.status_code == 200 and "This passport has ceased" in page.text


def test_dynamic_attributes_follow_the_ledger(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        add_orgs(s)
        uid = register(s, "LFP")
        service.create(s, uid, {"general.battery_category": "ev"}, actor="Maker")
    with db.session() as s:
        first = view.read(s, uid, LEGIT, path="test")
        assert "general.putting_into_service" not in first.values
        assert "performance.remaining_capacity" not in first.values
        walk(s, uid, ["in_service"], actor="Maker")
        assess(s, uid)
        service.report_condition(s, uid, {"performance.number_of_full_cycles": 100,
                                          "performance.negative_events": "hail"}, actor="Maker")
        service.report_condition(s, uid, {"performance.number_of_full_cycles": 250,
                                          "performance.negative_events": "flood"}, actor="Maker")
    with db.session() as s:
        shown = view.read(s, uid, LEGIT, path="test")
    soh = shown.values["performance.remaining_capacity"]
    assert soh.value == pytest.approx(131.25) and soh.by["name"] == "Maker"
    assert soh.measurement["parameter"] == "capacity_soh" and soh.measurement["lower"] < 87.5 < soh.measurement["upper"]
    assert soh.measurement["method"].startswith("mean discharge") or soh.measurement["method"]
    assert shown.values["performance.capacity_fade"].value == pytest.approx(12.5)
    assert shown.values["performance.number_of_full_cycles"].value == 250
    assert [e["negativeEvent"] for e in shown.values["performance.negative_events"].value] == ["hail", "flood"]
    assert shown.values["general.putting_into_service"].value.endswith("Z")
    with db.session() as s:
        audit = s.execute(__import__("sqlalchemy").text("SELECT count(*) FROM audit_log")).scalar()
    assert audit >= 2  # restricted reads were recorded


def test_only_the_maker_or_the_responsible_operator_writes_static_attributes(db) -> None:  # type: ignore[no-untyped-def]
    from batteryloop.errors import Conflict, NotFound, ValidationFailed

    with db.session() as s:
        add_orgs(s)
        uid = register(s, "LFP")
    with pytest.raises(view.Forbidden), db.session() as s:
        service.create(s, uid, {"general.battery_category": "ev"}, actor="Carco")
    with pytest.raises(ValidationFailed), db.session() as s:
        service.create(s, uid, {"general.battery_category": "ev"}, actor=None)
    with pytest.raises(NotFound), db.session() as s:
        service.update(s, uid, {"general.battery_category": "ev"}, actor="Maker")
    with db.session() as s:
        service.create(s, uid, {"general.battery_category": "ev"}, actor="Maker")
    with pytest.raises(Conflict), db.session() as s:
        service.create(s, uid, {"general.battery_category": "lmt"}, actor="Maker")
    with db.session() as s:
        Registry(s).transfer(uid, responsibility_to="Carco", custody_to="Carco", actor="Maker")
        service.update(s, uid, {"general.warranty_period": "P8Y"}, actor="Carco")
        service.update(s, uid, {}, unset=["general.warranty_period"], actor="Maker")
        events = [e["type"] for e in Registry(s).history(uid)]
    assert events.count("passport-updated") == 3
    with db.session() as s:
        history = Registry(s).history(uid)
    # the ledger carries which attributes changed and a digest, never the values
    assert all("P8Y" not in str(e["payload"]) for e in history)


def test_re_use_makes_a_new_passport_as_repurposing_does(db) -> None:  # type: ignore[no-untyped-def]
    """Art. 77(6): preparing for re-use, like repurposing and remanufacturing, gives the battery a
    new passport linked to its originals and makes its new operator responsible. Two generations:
    a repurposed from an original, then re-used by a vehicle maker; the original is recycled later
    and stays in the lineage, its passport archived."""
    with db.session() as s:
        add_orgs(s)
        a = original(s, "NMC", tag="ra")
        walk(s, a, TO_GRADED)
        b = second_life(s, [a], relation="repurposed", operator="Reuse", tag="rb")
        walk(s, b, ["retired", "collected", "tested", "graded"], actor="Reuse")
        c = second_life(s, [b], relation="reused", operator="Carco", tag="rc")
    with db.session() as s:
        shown = {u: view.read(s, u, LEGIT, path="test") for u in (a, b, c)}
        public_c = view.read(s, c, Viewer(), path="test")
        reg = Registry(s)
        states = {u: (reg.battery(u).state, reg.battery(u).eu_status) for u in (a, b, c)}
    assert len({a, b, c}) == 3
    assert states[c] == ("in_service", "re-used")  # put into service, it stays re-used
    assert states[b] == ("reused", "re-used") and states[a] == ("repurposed", "repurposed")
    lineage_c = shown[c].values["general.lineage"].value
    assert [(n["uid"], n["relation"]) for n in lineage_c["sources"]] == [(b, "reused")]
    assert [(n["uid"], n["relation"]) for n in lineage_c["sources"][0]["sources"]] == [
        (a, "repurposed")]
    lineage_a = shown[a].values["general.lineage"].value
    assert _uids(lineage_a["successors"]) == {b}
    assert _uids(lineage_a["successors"][0]["successors"]) == {c}
    assert shown[c].values["general.operator_information"].value["contactName"] == "Carco"
    assert shown[b].values["general.operator_information"].value["contactName"] == "Reuse"
    assert shown[c].values["general.battery_status"].value == "re-used"
    assert "general.lineage" not in public_c.values  # point 4: not public
    assert public_c.values["general.operator_information"].value["contactName"] == "Carco"
    # the re-user wrote the new passport's static attributes; the original's maker may not
    with pytest.raises(view.Forbidden), db.session() as s:
        service.update(s, c, {"carbon.performance_class": "A"}, actor="Maker")
    # the original reaches the end of its own life: waste, then recycled and archived; the
    # lineage of its successors still leads to it
    with db.session() as s:
        service.to_waste(s, a, "Recycler", actor="Maker")
        service.recycle(s, a, actor="Recycler")
    with db.session() as s:
        archived = view.read(s, a, LEGIT, path="test")
        again = view.read(s, c, LEGIT, path="test").values["general.lineage"].value
    assert archived.ceased and archived.archived_at
    assert [n["uid"] for n in again["sources"][0]["sources"]] == [a]
    assert again["sources"][0]["sources"][0]["state"] == "recycled"
