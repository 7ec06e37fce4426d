"""Regrouping over the registry on both databases: numbers from the ledger, a plan that writes
nothing, packs built as new batteries with lineage and `regrouped` events, and bad input named."""

from __future__ import annotations

import pytest

from batteryloop import grading
from batteryloop.errors import Conflict, NotFound, ValidationFailed
from batteryloop.grading import regroup
from batteryloop.grading.inspection import InspectionIn
from batteryloop.health.soh import HealthValue
from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.registry.verify import verify

RATED_AH = 10.0
CELL_V = 3.6


def _soh(value: float, half: float = 1.0) -> HealthValue:
    return HealthValue("capacity_soh", value, value - half, value + half, "%", "pulse-test model",
                       "2025-01-01", "model-v1")


def _dcir(ohm: float) -> HealthValue:
    return HealthValue("dc_resistance", ohm, 0.9 * ohm, 1.1 * ohm, "ohm", "5 s pulse", "2025-01-01")


def _cells(s, sohs: dict[str, float], *, chemistry: str = "LFP", dcir: dict[str, float] | None = None,  # type: ignore[no-untyped-def]
           policy: str | None = "stationary-storage") -> None:
    """Collected cells with an inspection and a capacity SOH, graded by ``policy``."""
    reg = Registry(s)
    if not reg.organisations():
        reg.add_organisation(OrganisationIn(name="Lab", roles=["repurposer"]))
    for serial, soh in sohs.items():
        b = reg.register(BatteryIn(kind="cell", chemistry=chemistry, rated_capacity_ah=RATED_AH,
                                   nominal_voltage_v=CELL_V, identifiers={"serial": serial}))
        for state in ("in_service", "retired", "collected"):
            reg.change_status(b.uid, state)
        grading.record_inspection(s, serial, InspectionIn(inspector="Lab", ocv_v=3.3, bms_codes=[]))
        values = [_soh(soh)] + ([_dcir(dcir[serial])] if dcir and serial in dcir else [])
        grading.record_health(s, serial, values, actor="Lab")
        if policy:
            grading.grade(s, serial, policy=policy, actor="Lab")


# capacities 8.0, 8.2, 9.0, 9.2 Ah (and a weak 7.0): the best 2S2P pairs 8.0+9.2 and 8.2+9.0,
# 17.2 Ah each, which is also total / S = 34.4 / 2: the bound is met, the gap is 0
FIVE = {"A": 80.0, "B": 82.0, "C": 90.0, "D": 92.0, "E": 70.0}


def test_plan_writes_nothing_and_commit_builds_the_plan(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        _cells(s, FIVE)
        heads = {r: Registry(s).battery(r).head_seq for r in FIVE}
    with db.session() as s:
        plan = regroup.plan(s, list(FIVE), "2S2P")
        assert {r: Registry(s).battery(r).head_seq for r in FIVE} == heads  # nothing written
    uid = {c["ref"]: c["uid"] for c in plan["cells"]}
    assert plan["layout"] == "2S2P" and plan["summary"]["packs"] == 1
    pack = plan["packs"][0]
    assert pack["usable_capacity_ah"] == pytest.approx(17.2)
    assert pack["upper_bound_ah"] == pytest.approx(17.2) and pack["gap_pct"] == pytest.approx(0.0)
    # at the lower bounds (SOH - 1 %): 7.9 + 9.1 and 8.1 + 8.9 = 17.0 Ah
    assert pack["usable_capacity_lower_ah"] == pytest.approx(17.0)
    assert pack["nominal_voltage_v"] == pytest.approx(2 * CELL_V)
    assert pack["energy_lower_wh"] == pytest.approx(17.0 * 2 * CELL_V)
    assert {frozenset(g) for g in pack["groups"]} == {frozenset({uid["A"], uid["D"]}),
                                                     frozenset({uid["B"], uid["C"]})}
    assert plan["leftover"] == [uid["E"]]  # the weakest cell would limit any pack it joined
    assert plan["features"]["used"] == ["capacity", "ocv"]  # no cell has a DC resistance
    rests = plan["cells"][0]["rests_on"][0]
    assert rests["type"] == "health-assessed" and rests["parameter"] == "capacity_soh"

    with db.session() as s:
        built = regroup.commit(s, list(FIVE), "2S2P", actor="Lab", identifier_prefix="SL-2025",
                               plan_sha256=plan["sha256"])
    assert built["plan"]["sha256"] == plan["sha256"]
    child = built["built"][0]
    assert {"scheme": "second_life", "value": "SL-2025-1"} in child["identifiers"]
    assert child["rated_capacity_ah"] == pytest.approx(17.0)  # what it can promise
    with db.session() as s:
        reg = Registry(s)
        lineage = reg.lineage("SL-2025-1")
        assert {x["uid"] for x in lineage["sources"]} == {uid[r] for r in "ABCD"}
        pack_battery = reg.describe("SL-2025-1")
        assert pack_battery["state"] == "repurposed" and pack_battery["chemistry"] == "LFP"
        assert pack_battery["nominal_voltage_v"] == pytest.approx(7.2)
        for r in "ABCD":
            history = reg.history(r)
            assert [e["type"] for e in history][-3:] == ["status-changed", "lineage-linked",
                                                        "regrouped"]
            event = history[-1]["payload"]
            assert event["pack"] == child["uid"] and event["plan"] == plan["sha256"]
            cell = next(c for c in plan["cells"] if c["uid"] == uid[r])
            assert (event["group"], event["position"]) == (cell["group"], cell["position"])
            assert event["capacity_ah"] == pytest.approx(FIVE[r] / 100 * RATED_AH)
            assert event["usable_capacity_ah"] == pytest.approx(17.2) and event["gap_pct"] == 0
            assert history[-1]["actor_name"] == "Lab"
        last = reg.history("SL-2025-1")[-1]
        assert last["type"] == "regrouped" and last["payload"]["sources"] == 4
        assert last["payload"]["groups"] == pack["groups"]
        assert reg.battery("E").state == "graded"  # left over: untouched, for a later batch
        assert verify(s).ok


def test_a_changed_record_voids_the_reviewed_plan(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        _cells(s, FIVE)
        plan = regroup.plan(s, list(FIVE), "2S2P")
    with db.session() as s:  # a newer assessment of one cell after the review
        grading.record_health(s, "A", [_soh(81.0)])
        heads = {r: Registry(s).battery(r).head_seq for r in FIVE}
    with db.session() as s, pytest.raises(Conflict, match="records changed since"):
        regroup.commit(s, list(FIVE), "2S2P", plan_sha256=plan["sha256"])
    with db.session() as s:
        assert {r: Registry(s).battery(r).head_seq for r in FIVE} == heads
        assert Registry(s).list_batteries(kind="pack")[1] == 0


def test_resistance_balances_when_every_cell_has_one(db) -> None:  # type: ignore[no-untyped-def]
    sohs = {f"R{i}": 90.0 for i in range(4)}
    dcir = {"R0": 0.010, "R1": 0.010, "R2": 0.020, "R3": 0.020}
    with db.session() as s:
        _cells(s, sohs, dcir=dcir)
        plan = regroup.plan(s, list(sohs), "2S2P")
    # equal capacities: every grouping is at the bound; balance pairs a low with a high resistance
    assert plan["features"]["used"] == ["capacity", "dcir", "ocv"]
    assert plan["method"]["resistance_balance"] is True
    by_uid = {c["uid"]: c["ref"] for c in plan["cells"]}
    groups = [sorted(dcir[by_uid[u]] for u in g) for g in plan["packs"][0]["groups"]]
    assert groups == [[0.010, 0.020], [0.010, 0.020]]
    assert plan["packs"][0]["resistance_spread_pct"] == pytest.approx(0.0)
    with db.session() as s:  # one more cell without a resistance: the feature is dropped, named
        _cells(s, {"R4": 90.0})
        plan = regroup.plan(s, [*sohs, "R4"], "2S2P")
    assert "dcir" not in plan["features"]["used"]
    assert plan["features"]["dropped"]["dcir"].startswith("missing for 1 of 5 batteries")


def test_clusters_from_the_ledger_and_packs_within_them(db) -> None:  # type: ignore[no-untyped-def]
    low = {f"L{i}": 80.0 + 0.1 * i for i in range(4)}   # 8.00..8.03 Ah
    high = {f"H{i}": 95.0 + 0.1 * i for i in range(4)}  # 9.50..9.53 Ah
    with db.session() as s:
        _cells(s, {**low, **high})
    with db.session() as s:
        found = regroup.cluster_batteries(s, [*low, *high], method="binning", target_range=0.5)
        uid = {c["ref"]: c["uid"] for c in found["cells"]}
        assert [g["size"] for g in found["groups"]] == [4, 4] and not found["unassigned"]
        assert set(found["groups"][0]["batteries"]) == {uid[r] for r in high}  # group 0: strongest
        assert found["groups"][1]["capacity_range_ah"] == pytest.approx(0.03)
        assert found["score"]["capacity_range_max"] == pytest.approx(0.03)
        kmeans = regroup.cluster_batteries(s, [*low, *high], method="kmeans", n_groups=2)
        assert [set(g["batteries"]) for g in kmeans["groups"]] == [
            {uid[r] for r in high}, {uid[r] for r in low}]
        plan = regroup.plan(s, [*low, *high], "2S2P",
                            clustering=regroup.Clustering(method="binning", target_range=0.5))
    assert plan["summary"]["packs"] == 2
    for pack in plan["packs"]:  # each pack takes the cells of one group only
        members = {u for g in pack["groups"] for u in g}
        assert members in ({uid[r] for r in high}, {uid[r] for r in low})
    assert {p["cluster"] for p in plan["packs"]} == {0, 1}


def test_bad_input_names_the_battery_and_writes_nothing(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        _cells(s, FIVE)
        _cells(s, {"W": 50.0})  # graded waste (SOH below 60 %)
        _cells(s, {"N": 85.0}, policy=None)  # not graded
        _cells(s, {"M": 85.0}, chemistry="NMC")
        reg = Registry(s)
        reg.register(BatteryIn(kind="cell", chemistry="LFP", rated_capacity_ah=RATED_AH,
                               identifiers={"serial": "X"}))  # never assessed
        _cells(s, {"G": 85.0}, policy="stationary-storage")
        grading.apply_route(s, "G", route="waste")
        for state in ("dismantled", "recycled"):
            reg.change_status("G", state)
        heads = {b.uid: b.head_seq for b in reg.list_batteries(limit=100)[0]}
    four = list("ABCD")
    cases = [  # error, message, batteries (the last one is the odd one), is the odd one named
        (ValidationFailed, "3 batteries cannot fill one 2S2P pack \\(4 cells\\)", ["A", "B", "C"], False),
        (NotFound, "no battery 'NOPE'", [*four[:3], "NOPE"], False),
        (ValidationFailed, "listed twice", ["A", "B", "C", "A"], True),
        (ValidationFailed, "has no capacity_soh in its health-assessed events", [*four[:3], "X"], True),
        (Conflict, "'recycled' \\(EU status waste\\)", [*four[:3], "G"], True),
        (Conflict, "was graded 'waste'", [*four[:3], "W"], True),
        (Conflict, "has not been graded", [*four[:3], "N"], True),
        (ValidationFailed, "one pack takes one chemistry", [*four[:3], "M"], True),
    ]
    for error, message, refs, named in cases:
        with db.session() as s, pytest.raises(error, match=message) as caught:
            regroup.commit(s, refs, "2S2P", actor="Lab")
        if named:
            with db.session() as s:
                assert Registry(s).battery(refs[-1]).uid in str(caught.value), message
    with db.session() as s, pytest.raises(ValidationFailed, match="not a layout like 14S4P"):
        regroup.plan(s, four, "2x2")
    with db.session() as s, pytest.raises(Conflict, match="'recycled'"):
        regroup.cluster_batteries(s, [*four, "G"], method="kmeans", n_groups=2)
    with db.session() as s, pytest.raises(ValidationFailed, match="no dcir recorded"):
        regroup.cluster_batteries(s, four, method="kmeans", n_groups=2, features=["capacity", "dcir"])
    with db.session() as s:
        assert {b.uid: b.head_seq for b in Registry(s).list_batteries(limit=100)[0]} == heads
    with db.session() as s:  # a cell built into a pack once cannot be built into another
        regroup.commit(s, four, "2S2P")
    with db.session() as s, pytest.raises(Conflict, match="already part of second-life battery"):
        regroup.plan(s, four, "2S2P")
