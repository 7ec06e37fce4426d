"""Dismantling records: weighed fractions, the `dismantled` event, and refusals that write nothing."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import func, select

from batteryloop.errors import Conflict, IllegalTransition, ValidationFailed
from batteryloop.recycling import dismantling, packs
from batteryloop.registry.schemas import BatteryIn
from batteryloop.registry.service import Registry
from batteryloop.store.models import DismantledFraction, Dismantling, Event
from .recycling_support import RECYCLER, collected_pack, dismantle_as_published, orgs

LEAF = "nissan-leaf-ze0-24kwh"


def _counts(s) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Dismantling, DismantledFraction, Event))  # type: ignore[return-value]


def test_leaf_pack_dismantled_as_published_closes_and_lands_in_the_ledger(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        orgs(s)
        uid = collected_pack(s, LEAF, "LEAF-1")
        out = dismantle_as_published(s, LEAF, uid)
    # 192 cells x 0.787 kg = 151.104 kg of cells; 48 modules x 3.8 kg = 182.4 kg
    cell_kg = sum(f["mass_kg"] for f in out["fractions"] if f["level"] == "cell")
    assert cell_kg == pytest.approx(192 * 0.787)
    module_hw = next(f for f in out["fractions"] if f["fraction"] == "module_hardware")
    assert module_hw["mass_kg"] == pytest.approx(48 * 3.8 - 192 * 0.787)
    assert out["fractions_kg"] == pytest.approx(294.0) and abs(out["unaccounted_kg"]) < 1e-9
    with db.session() as s:
        history = Registry(s).history(uid)
        assert [e["type"] for e in history[-2:]] == ["dismantled", "status-changed"]
        assert history[-2]["payload"]["weighed_mass_kg"] == 294.0
        assert history[-1]["payload"]["to"] == "dismantled"
        assert Registry(s).describe(uid)["state"] == "dismantled"


@pytest.mark.parametrize("bad, message", [
    (-3.0, "impossible"), (0.0, "impossible"), (math.nan, "impossible"), ("heavy", "not a number"),
    (None, "missing"), (math.inf, "impossible"),
])
def test_an_impossible_or_missing_fraction_weight_is_refused_whole(db, bad, message) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        orgs(s)
        uid = collected_pack(s, LEAF, "LEAF-2")
        before = _counts(s)
    rows = packs.expected_fractions(LEAF)
    rows[2] = {**rows[2], "mass_kg": bad}
    with pytest.raises(ValidationFailed, match=message) as info, db.session() as s:
        dismantling.record(s, uid, dismantling.DismantlingIn(fractions=rows, weighed_mass_kg=294.0))
    assert f"fractions[2] ({rows[2]['fraction']}).mass_kg" in str(info.value)
    with db.session() as s:
        assert _counts(s) == before
        assert Registry(s).describe(uid)["state"] == "collected"


def test_a_missing_fraction_or_one_too_heavy_is_refused(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        orgs(s)
        uid = collected_pack(s, LEAF, "LEAF-3")
    with pytest.raises(ValidationFailed, match=r"96\.9\d+ kg \(32\.\d+ %\) .* is in no fraction"), db.session() as s:
        dismantle_as_published(s, LEAF, uid, drop="housing")
    with pytest.raises(ValidationFailed, match="more than the 294.000 kg battery"), db.session() as s:
        dismantle_as_published(s, LEAF, uid, scale={"black_mass": 1.5})
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Dismantling)) == 0


def test_battery_without_any_weight_is_refused(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        orgs(s)
        uid = collected_pack(s, LEAF, "LEAF-4", mass_kg=None)
    data = dismantling.DismantlingIn(fractions=[{"fraction": "housing", "mass_kg": 50}])
    with pytest.raises(ValidationFailed, match="weighed_mass_kg: the battery's weight is missing"), db.session() as s:
        dismantling.record(s, uid, data)


def test_cell_fraction_needs_a_chemistry_and_unknown_fraction_is_named(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        orgs(s)
        uid = collected_pack(s, LEAF, "LEAF-5", chemistry=None)
    with pytest.raises(ValidationFailed, match="chemistry is needed"), db.session() as s:
        dismantling.record(s, uid, dismantling.DismantlingIn(
            fractions=[{"fraction": "black_mass", "mass_kg": 10}], weighed_mass_kg=10))
    with pytest.raises(ValidationFailed, match="unknown fraction 'gold'"), db.session() as s:
        dismantling.record(s, uid, dismantling.DismantlingIn(
            fractions=[{"fraction": "gold", "mass_kg": 10}], weighed_mass_kg=10))


def test_twice_or_from_the_wrong_state_is_refused(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        orgs(s)
        uid = collected_pack(s, LEAF, "LEAF-6")
        dismantle_as_published(s, LEAF, uid)
    with pytest.raises(Conflict, match="already been dismantled"), db.session() as s:
        dismantle_as_published(s, LEAF, uid)
    with db.session() as s:
        reg = Registry(s)
        fresh = reg.register(BatteryIn(kind="pack", chemistry="LMO", mass_kg=294.0))  # 'produced'
    with pytest.raises(IllegalTransition), db.session() as s:
        dismantle_as_published(s, LEAF, fresh.uid)


def test_weighed_mass_far_from_the_registered_one_is_remarked(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        orgs(s)
        uid = collected_pack(s, LEAF, "LEAF-7", mass_kg=250.0)
        out = dismantle_as_published(s, LEAF, uid)
    assert out["remarks"] == ["weighed 294.0 kg against 250.0 kg registered"]
    assert out["dismantler"]["name"] == RECYCLER
