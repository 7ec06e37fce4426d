"""Mass balance closure on batches built from real pack data, and what does not close is flagged."""

from __future__ import annotations

import polars as pl
import pytest
from sqlalchemy import select

from batteryloop.errors import Conflict, ValidationFailed
from batteryloop.recycling import composition, mass_balance, packs, service
from batteryloop.registry.service import Registry
from batteryloop.store.models import RecyclingBatch

from .recycling_support import RECYCLER, collected_pack, dismantle_as_published, orgs

LEAF, NMC, TESLA = "nissan-leaf-ze0-24kwh", "ellingsen-nmc-26kwh", "tesla-model-s-85kwh"


def _batch(db, route: str = "hydrometallurgical", ref: str = "B-1", names=(LEAF, NMC)) -> list[str]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        orgs(s)
        uids = []
        for n, name in enumerate(names):
            uid = collected_pack(s, name, f"P-{n}")
            dismantle_as_published(s, name, uid)
            uids.append(uid)
        service.create(s, service.BatchIn(ref=ref, route=route, batteries=uids,
                                          processed_on="2028-06-30", actor=RECYCLER))
    return uids


@pytest.mark.parametrize("route", ["pyrometallurgical", "hydrometallurgical", "direct"])
def test_real_packs_close_on_every_route(db, route) -> None:  # type: ignore[no-untyped-def]
    _batch(db, route)
    with db.session() as s:
        out = service.evaluate(s, "B-1")
    bal = out["mass_balance"]
    assert bal["closed"] and bal["flags"] == []
    assert bal["total"]["input_kg"] == pytest.approx(294.0 + 253.0)  # Leaf + Ellingsen packs
    assert bal["total"]["unaccounted_kg"] == pytest.approx(0.0, abs=1e-9)
    # cobalt comes only from the NMC pack's cells: 60 % of 253 kg x the NMC111 cell's Co share
    co = 0.60 * 253.0 * composition.cell_constituents("NMC111")["co"]
    assert out["inputs"]["constituents_kg"]["co"] == pytest.approx(co, rel=1e-9)


def test_measured_outputs_within_tolerance_close_and_a_missing_stream_is_flagged(db) -> None:  # type: ignore[no-untyped-def]
    _batch(db)
    with db.session() as s:
        modelled = pl.DataFrame(service.evaluate(s, "B-1")["outputs"]["streams"])
    # a scale reads 1 % light on every stream: still within 2 % overall and 5 % per constituent
    light = modelled.with_columns(pl.col("mass_kg") * 0.99)
    with db.session() as s:
        service.set_outputs(s, "B-1", light)
        out = service.evaluate(s, "B-1")
    assert out["outputs"]["basis"] == "measured" and out["mass_balance"]["closed"]
    assert out["mass_balance"]["total"]["unaccounted_pct"] == pytest.approx(1.0)
    # the copper product stream was not weighed: copper and the batch total are flagged
    no_cu = modelled.filter(~((pl.col("constituent") == "cu") & (pl.col("kind") == "product")))
    with db.session() as s:
        service.set_outputs(s, "B-1", no_cu)
        bal = service.evaluate(s, "B-1")["mass_balance"]
    cu_in = next(r for r in bal["constituents"] if r["constituent"] == "cu")["input_kg"]
    assert not bal["closed"]
    assert any(f.startswith("cu: in") and "unaccounted" in f for f in bal["flags"])
    expected_pct = 100 * 0.9 * cu_in / (294.0 + 253.0)
    assert bal["total"]["unaccounted_pct"] == pytest.approx(expected_pct)
    assert bal["flags"][0].startswith("batch:")
    with pytest.raises(Conflict, match="mass balance does not close"), db.session() as s:
        service.close(s, "B-1")
    with db.session() as s:
        assert s.scalar(select(RecyclingBatch.status)) == "open"


def test_outputs_with_an_impossible_weight_are_refused(db) -> None:  # type: ignore[no-untyped-def]
    _batch(db)
    rows = [service.OutputIn(stream="copper scrap", kind="product", constituent="cu", mass_kg=-2),
            service.OutputIn(stream="x", kind="product", constituent="co", mass_kg=1)]
    with pytest.raises(ValidationFailed, match="outputs row 1: mass_kg -2.0 is missing or impossible"), \
            db.session() as s:
        service.set_outputs(s, "B-1", rows)
    with pytest.raises(ValidationFailed, match="outputs row 1: .*not a number"), db.session() as s:
        service.set_outputs(s, "B-1", [service.OutputIn(stream="x", kind="product", constituent="cu",
                                                          mass_kg="lots")])
    with pytest.raises(ValidationFailed, match="unknown constituent 'gold'"), db.session() as s:
        service.set_outputs(s, "B-1", [service.OutputIn(stream="x", kind="product", constituent="gold",
                                                          mass_kg=1)])


def test_close_freezes_and_marks_every_battery_recycled(db) -> None:  # type: ignore[no-untyped-def]
    uids = _batch(db, names=(LEAF, NMC, TESLA))
    with db.session() as s:
        closed = service.close(s, "B-1", actor=RECYCLER)
    recovered = {b["uid"]: b["recovered_kg"] for b in closed["batteries"]}
    with db.session() as s:
        reg = Registry(s)
        for uid in uids:
            info = reg.describe(uid)
            assert info["state"] == "recycled" and info["read_only"]
            event = [e for e in reg.history(uid) if e["type"] == "recycled"][0]
            assert event["payload"]["batch"] == "B-1"
            assert event["payload"]["recovered_kg"]["co" if "co" in recovered[uid] else "cu"] > 0
        # the batteries' shares add back up to the batch's products
        products = {r["constituent"]: r["product"] for r in closed["mass_balance"]["constituents"]}
        for c, kg in products.items():
            assert sum(r.get(c, 0.0) for r in recovered.values()) == pytest.approx(kg)
        assert service.battery_summary(s, uids[0])["batch"]["ref"] == "B-1"
    with pytest.raises(Conflict, match="already closed"), db.session() as s:
        service.close(s, "B-1")


def test_balance_refuses_an_empty_input_and_flags_output_from_nothing() -> None:
    with pytest.raises(ValidationFailed, match="no input mass"):
        mass_balance.balance(pl.DataFrame({"constituent": ["cu"], "mass_kg": [0.0]}),
                             pl.DataFrame({"stream": ["a"], "kind": ["product"], "constituent": ["cu"],
                                           "mass_kg": [0.0]}))
    bal = mass_balance.balance(
        pl.DataFrame({"constituent": ["cu", "al"], "mass_kg": [100.0, 50.0]}),
        pl.DataFrame({"stream": ["cu", "al", "co?"], "kind": ["product", "product", "product"],
                      "constituent": ["cu", "al", "co"], "mass_kg": [100.0, 50.0, 3.0]}))
    assert any(f.startswith("co: in 0.000 kg, out 3.000 kg") for f in bal.flags)


def test_expected_fractions_of_every_published_pack_add_up_to_its_mass() -> None:
    for name, p in packs.packs().items():
        rows = packs.expected_fractions(name)
        assert sum(r["mass_kg"] for r in rows) == pytest.approx(p["mass_kg"])
        assert all(r["mass_kg"] > 0 for r in rows)
