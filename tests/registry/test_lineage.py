"""Second life: repurposed and remanufactured batteries get a new identity linked to their sources."""

from __future__ import annotations

import re

import pytest
from registry_support import TO_GRADED, add_battery, add_org, counts, walk
from sqlalchemy import select

from batteryloop.errors import IllegalTransition
from batteryloop.registry.schemas import BatteryIn, SuccessorIn
from batteryloop.registry.service import Registry
from batteryloop.registry.verify import verify
from batteryloop.store import Database
from batteryloop.store.models import Battery, Lineage

URN = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _graded_sources(db: Database, n: int = 3, *, last_state: tuple[str, ...] = TO_GRADED) -> list[str]:
    """n modules taken to 'graded' (the last one only as far as ``last_state``)."""
    with db.session() as s:
        reg = Registry(s)
        add_org(reg, "Maker", "manufacturer")
        add_org(reg, "Second Life", "repurposer", "remanufacturer")
        uids = [add_battery(reg, kind="module", manufacturer="Maker", chemistry="LFP").uid for _ in range(n)]
        for i, uid in enumerate(uids):
            walk(reg, uid, last_state if i == n - 1 else TO_GRADED)
        return uids


def _successor(reg: Registry, sources: list[str], relation: str, **battery: object) -> str:
    spec = BatteryIn(kind="pack", chemistry="LFP", **battery)  # type: ignore[arg-type]
    return reg.create_successor(
        SuccessorIn(sources=sources, relation=relation, battery=spec, actor="Second Life")  # type: ignore[arg-type]
    ).uid


def _shape(tree: dict, way: str) -> object:
    """uid, relation and state of every node, recursively in one direction."""
    return [(node["uid"], node["relation"], node["state"], _shape(node, way)) for node in tree[way]]


def test_repurposed_pack_from_three_graded_sources(db: Database) -> None:
    sources = _graded_sources(db)
    before = counts(db)
    with db.session() as s:
        child = _successor(Registry(s), sources, "repurposed", rated_energy_wh=30000.0)
    assert URN.match(child) and child not in sources
    assert counts(db) == {
        **before, "batteries": before["batteries"] + 1, "lineage": 3,
        "identifiers": before["identifiers"] + 1,
        # per source: status-changed + lineage-linked; child: registered + lineage-linked
        "events": before["events"] + 3 * 2 + 2,
    }
    with db.session() as s:
        reg = Registry(s)
        second_life = reg.organisation("Second Life")
        made = reg.battery(child)
        assert (made.state, made.eu_status, made.kind) == ("repurposed", "repurposed", "pack")
        # the operator who made it holds it and answers for it
        assert made.owner_id == made.responsible_id == second_life.id
        assert made.rated_energy_wh == 30000.0
        for uid in sources:
            src = reg.battery(uid)
            assert (src.state, src.eu_status) == ("repurposed", "repurposed")
            tail = reg.history(uid)[-2:]
            assert [(e["type"], e["payload"]) for e in tail] == [
                ("status-changed", {"from": "graded", "to": "repurposed"}),
                ("lineage-linked", {"successor": child, "relation": "repurposed"}),
            ]
            assert tail[1]["actor"] == second_life.uid
        history = reg.history(child)
        assert [e["type"] for e in history] == ["registered", "lineage-linked"]
        assert history[0]["payload"]["state"] == "repurposed"
        assert history[1]["payload"] == {"sources": sources, "relation": "repurposed"}

        tree = reg.lineage(child)
        assert tree["uid"] == child and tree["successors"] == []
        assert _shape(tree, "sources") == [(uid, "repurposed", "repurposed", []) for uid in sources]
        for uid in sources:
            up = reg.lineage(uid)
            assert up["sources"] == []
            assert _shape(up, "successors") == [(child, "repurposed", "repurposed", [])]
        assert sorted(s.scalars(select(Lineage.parent_id).where(Lineage.child_id == made.id))) == sorted(
            reg.battery(uid).id for uid in sources
        )
        report = verify(s)
        assert report.ok, report.breaches
        assert report.batteries == 4


def test_two_generations_show_the_whole_tree(db: Database) -> None:
    sources = _graded_sources(db)
    with db.session() as s:
        reg = Registry(s)
        pack = _successor(reg, sources, "repurposed")
        # the repurposed pack serves, comes back, is graded and remanufactured
        walk(reg, pack, ("in_service", "retired", "collected", "tested", "graded"))
        reman = _successor(reg, [pack], "remanufactured")
    with db.session() as s:
        reg = Registry(s)
        assert (reg.battery(reman).state, reg.battery(reman).eu_status) == ("remanufactured", "remanufactured")
        assert reg.battery(pack).eu_status == "remanufactured"
        down = reg.lineage(reman)
        assert down["successors"] == []
        assert _shape(down, "sources") == [
            (pack, "remanufactured", "remanufactured",
             [(uid, "repurposed", "repurposed", []) for uid in sources]),
        ]
        for uid in sources:
            assert _shape(reg.lineage(uid), "successors") == [
                (pack, "repurposed", "remanufactured", [(reman, "remanufactured", "remanufactured", [])]),
            ]
        middle = reg.lineage(pack)
        assert [n["uid"] for n in middle["sources"]] == sources
        assert [n["uid"] for n in middle["successors"]] == [reman]
        # depth limits the walk
        assert _shape(reg.lineage(reman, depth=1), "sources") == [(pack, "remanufactured", "remanufactured", [])]
        assert verify(s).ok


def test_a_source_that_is_not_graded_fails_everything(db: Database) -> None:
    # the last source is only 'tested'; the first two would be changed before it is reached
    sources = _graded_sources(db, last_state=TO_GRADED[:-1])
    before = counts(db)
    with db.session() as s:
        states_before = {b.uid: (b.state, b.head_seq, b.head_hash) for b in s.scalars(select(Battery))}
    with pytest.raises(IllegalTransition) as info, db.session() as s:
        _successor(Registry(s), sources, "repurposed")
    assert "'tested'" in info.value.message and "'repurposed'" in info.value.message
    assert counts(db) == before
    with db.session() as s:
        assert {b.uid: (b.state, b.head_seq, b.head_hash) for b in s.scalars(select(Battery))} == states_before
        assert s.scalars(select(Lineage)).all() == []
        assert verify(s).ok
