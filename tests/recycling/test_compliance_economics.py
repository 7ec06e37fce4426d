"""Compliance and economics of a small batch, every figure redone by hand from the cited inputs."""

from __future__ import annotations

from datetime import date

import pytest

from batteryloop.errors import ValidationFailed
from batteryloop.recycling import compliance, dismantling, economics, service

from .recycling_support import RECYCLER, collected_pack, orgs

# IUPAC atomic weights, written out for the hand calculation
LI, FE, P, O, C = 6.941, 55.845, 30.973762, 15.9994, 12.0107
LFP_MW = LI + FE + P + 4 * O
# EverBatt Table 4, LFP column: the black-mass parts (cathode, graphite, carbon black, PVDF)
CAM, GRAPHITE, CB, PVDF = 0.327, 0.168, 0.022, 0.027
BM = CAM + GRAPHITE + CB + PVDF


def _small_batch(db, processed_on: str = "2026-06-30") -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        orgs(s)
        uid = collected_pack(s, "nissan-leaf-ze0-24kwh", "SMALL-1", chemistry="LFP", mass_kg=100.0)
        dismantling.record(s, uid, dismantling.DismantlingIn(fractions=[
            {"fraction": "housing", "mass_kg": 40}, {"fraction": "cu_foil", "mass_kg": 20},
            {"fraction": "al_foil", "mass_kg": 10}, {"fraction": "black_mass", "mass_kg": 30}],
            actor=RECYCLER))
        service.create(s, service.BatchIn(ref="S-1", route="hydrometallurgical", batteries=[uid],
                                          processed_on=processed_on, actor=RECYCLER))


def _hand() -> dict[str, float]:
    cam = 30 * CAM / BM
    return {"li": cam * LI / LFP_MW, "graphite": 30 * GRAPHITE / BM, "steel": 40.0, "cu": 20.0, "al": 10.0}


def test_recycling_efficiency_and_recovery_by_hand(db) -> None:  # type: ignore[no-untyped-def]
    _small_batch(db)
    with db.session() as s:
        out = service.evaluate(s, "S-1")
    h = _hand()
    # EverBatt Table 12, hydrometallurgical: 90 % of Li, Cu, Al, steel, graphite; Fe, P, carbon
    # black and binder are not recovered; cathode oxygen is lost
    recycled = 0.9 * (h["steel"] + h["cu"] + h["al"] + h["graphite"] + h["li"])
    re_ = out["compliance"]["recycling_efficiency"]
    assert re_["input_kg"] == pytest.approx(100.0)
    assert re_["recycled_output_kg"] == pytest.approx(recycled)
    assert re_["value_pct"] == pytest.approx(recycled)  # 100 kg in: kg = %
    eu = next(t for t in re_["targets"] if t["regulation"] == "EU 2023/1542")
    assert eu["in_force"]["min_pct"] == 65.0 and eu["in_force"]["met"] is True   # from 2025-12-31
    assert eu["next"]["min_pct"] == 70.0 and eu["next"]["applies_from"] == "2030-12-31"
    rows = {m["element"]: m for m in out["compliance"]["material_recovery"]}
    assert rows["li"]["input_kg"] == pytest.approx(h["li"])
    assert rows["li"]["value_pct"] == pytest.approx(90.0)
    assert rows["co"]["value_pct"] is None  # no cobalt in LFP: nothing to judge
    li_targets = {t["regulation"]: t for t in rows["li"]["targets"]}
    # on 2026-06-30 the EU material recovery targets are not yet in force: 50 % from end 2027 is next
    assert li_targets["EU 2023/1542"]["in_force"] is None
    assert li_targets["EU 2023/1542"]["next"]["min_pct"] == 50.0
    assert li_targets["CN MIIT 2024"]["in_force"]["min_pct"] == 90.0
    assert li_targets["CN MIIT 2024"]["in_force"]["met"] is True
    cu = {t["regulation"]: t for t in rows["cu"]["targets"]}["EU 2023/1542"]
    assert cu["next"]["min_pct"] == 90.0 and cu["next"]["met"] is True


def test_targets_switch_with_the_period_date() -> None:
    later = compliance.material_recovery({"li": 10.0, "co": 10.0}, {"li": 7.0, "co": 9.6}, date(2032, 1, 1))
    li = {t["regulation"]: t for t in later[0]["targets"]}["EU 2023/1542"]["in_force"]
    co = {t["regulation"]: t for t in later[1]["targets"]}["EU 2023/1542"]["in_force"]
    assert (li["min_pct"], li["met"]) == (80.0, False)   # 70 % < 80 % (end 2031)
    assert (co["min_pct"], co["met"]) == (95.0, True)    # 96 % >= 95 %


def test_economics_by_hand(db) -> None:  # type: ignore[no-untyped-def]
    _small_batch(db)
    with db.session() as s:
        econ = service.evaluate(s, "S-1")["economics"]
    h = _hand()
    li_price = 7.9 / (2 * LI / (2 * LI + C + 3 * O))   # Li2CO3 at 7.90 USD/kg, per kg of Li
    revenue = (0.9 * h["steel"] * 0.30 + 0.9 * h["cu"] * 6.60 + 0.9 * h["al"] * 1.30
               + 0.9 * h["graphite"] * 0.28 + 0.9 * h["li"] * li_price)
    assert econ["revenue_usd"] == pytest.approx(revenue, rel=1e-4)
    cells = 60.0  # cu_foil + al_foil + black_mass: the cell-derived input
    reagents = cells * (0.031 * 0.46 + 0.012 * 0.15 + 0.366 * 0.74 + 0.561 * 0.40 + 1.08 * 0.06 + 0.02 * 0.15)
    energy = cells * (0.125 / 3.6 * 0.0688 + 2.5 / 1088 * 4.10 + 0.6 / 35.8 * 0.80) + cells * 1.0 * 0.0036
    labour = 8.0 * 0.1 * 20.0
    transport = 100 / 907.18474 * 500 / 1.609344 * 6.28
    assert econ["cost_usd"] == pytest.approx(reagents + energy + labour + transport, rel=1e-9)
    assert econ["margin_usd_per_t"] == pytest.approx((revenue - econ["cost_usd"]) / 0.1, rel=1e-4)


def test_price_overrides_and_bad_ones() -> None:
    table = economics.prices(overrides={"products.co.usd_per_kg": 33.0})
    assert economics.unit_price(table, "co") == 33.0
    with pytest.raises(ValidationFailed, match="overrides\\['products.co.usd'\\]"):
        economics.prices(overrides={"products.co.usd": 1.0})


def test_reuse_then_recycle_by_hand() -> None:
    table = economics.prices()
    out = economics.reuse_vs_recycle(table, rated_energy_kwh=50.0, soh_pct=80.0,
                                     recycle_now_margin_usd=400.0)
    later = 400.0 / 1.05 ** 8
    total = 50 * 0.8 * 85.0 - 50 * 35.4 + later
    assert out["reuse_then_recycle"]["total_usd"] == pytest.approx(total)
    assert out["better"] == "reuse_then_recycle"
    assert out["gain_pct_of_recycle_now"] == pytest.approx(100 * (total - 400) / 400)
    low = economics.reuse_vs_recycle(table, rated_energy_kwh=50.0, soh_pct=55.0, recycle_now_margin_usd=400.0)
    assert low["eligible_for_reuse"] is False and low["better"] == "recycle_now"
    with pytest.raises(ValidationFailed, match="soh_pct"):
        economics.reuse_vs_recycle(table, rated_energy_kwh=50.0, soh_pct=-1.0, recycle_now_margin_usd=0.0)


def test_recycle_now_of_an_lfp_pack_earns_less_than_of_an_nmc_pack() -> None:
    # EverBatt's fees (Table 13) say the same: recyclers are paid to take LFP, pay for cobalt-rich NMC
    lfp = service.modelled_pack("LFP", 60.0)["economics"]["margin_usd"]
    nmc = service.modelled_pack("NMC111", 60.0)["economics"]["margin_usd"]
    assert lfp < nmc


def test_recycled_content_by_hand() -> None:
    out = compliance.recycled_content({"co": {"total_kg": 10.0, "recycled_kg": 2.0},
                                       "li": {"total_kg": 1.0, "recycled_kg": 0.05}}, date(2031, 9, 1))
    co, li = out["elements"]
    assert co["value_pct"] == pytest.approx(20.0) and co["targets"][0]["in_force"]["min_pct"] == 16.0
    assert co["targets"][0]["in_force"]["met"] is True and co["targets"][0]["next"]["min_pct"] == 26.0
    assert li["value_pct"] == pytest.approx(5.0) and li["targets"][0]["in_force"]["met"] is False
    with pytest.raises(ValidationFailed, match="bom.ni: recycled_kg 3 exceeds total_kg 2"):
        compliance.recycled_content({"ni": {"total_kg": 2, "recycled_kg": 3}}, date(2031, 9, 1))


def test_period_compliance_sums_closed_batches(db) -> None:  # type: ignore[no-untyped-def]
    _small_batch(db)
    with db.session() as s:
        closed = service.close(s, "S-1", actor=RECYCLER)
        period = service.period(s, date(2026, 1, 1), date(2026, 12, 31))
        empty = service.period(s, date(2027, 1, 1), date(2027, 12, 31))
    assert [b["ref"] for b in period["batches"]] == ["S-1"]
    assert period["compliance"]["recycling_efficiency"]["value_pct"] == pytest.approx(
        closed["compliance"]["recycling_efficiency"]["value_pct"])
    assert empty["batches"] == [] and empty["compliance"]["recycling_efficiency"]["value_pct"] is None
