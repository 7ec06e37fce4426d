"""ISO 14064-1 / GHG Protocol inventory of a plant period, worked by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from batteryloop.carbon.ghg_inventory import inventory
from batteryloop.errors import NotFound, ValidationFailed

NG = 0.0561571  # kg CO2e per MJ: IPCC 2006 56,100 CO2 + 29.8 x 1 CH4 + 273 x 0.1 N2O per TJ


def _period():  # type: ignore[no-untyped-def]
    from batteryloop.factory.inventory import FactoryPeriod

    return FactoryPeriod(start=dt.datetime(2025, 1, 1), end=dt.datetime(2025, 1, 2), level="day",
                         label="2025-01-01", electricity_kWh=12000.0, heat_kWh=30000.0,
                         nmp_fed_kg=5000.0, nmp_recovered_kg=4950.0, nmp_makeup_kg=50.0,
                         nmp_emitted_kg=2.0, hours=24, hours_complete=24)


def test_scopes_by_hand_from_a_factory_period() -> None:
    r = inventory(_period(), grid="CN",
                  fuels=[{"fuel": "natural_gas", "amount": 10, "unit": "GJ"}],
                  process_emissions={"HFC-134a": 1.0},
                  contracts=[{"kwh": 5000, "kg_per_kwh": 0.0, "instrument": "GO"}])
    s = r["scopes"]
    # scope 1: 10,000 MJ x NG + 1 kg HFC-134a x 1530
    assert s["scope_1"] == pytest.approx(10000 * NG + 1530.0)
    # scope 2 location: 12,000 kWh x 0.582 + 30,000 kWh heat x 3.6 / 0.9 x NG
    heat = 30000 * 3.6 / 0.9 * NG
    assert s["scope_2_location_based"] == pytest.approx(12000 * 0.582 + heat)
    # market: 5,000 kWh at 0, the other 7,000 at the grid factor (no residual mix given)
    assert s["scope_2_market_based"] == pytest.approx(7000 * 0.582 + heat)
    # scope 3: 50 kg of NMP make-up bought
    assert s["scope_3"] == pytest.approx(50 * 5.0)
    assert r["totals"]["location_based"] == pytest.approx(s["scope_1"] + s["scope_2_location_based"] + s["scope_3"])
    assert r["period"] == "2025-01-01"
    cat_sum = sum(c["kg_co2e"] for c in r["categories"].values())
    assert cat_sum == pytest.approx(r["totals"]["location_based"])
    assert r["memo"]["nmp_emitted_kg"] == 2.0 and not r["memo"]["nmvoc_indirect_co2_included"]


def test_nmp_burnt_on_site_is_direct_co2_from_its_formula() -> None:
    # C5H9NO: 5 x 44.009 / 99.133 = 2.2197 kg CO2 per kg
    r = inventory({"electricity_kwh": 0}, nmp_oxidised_kg=10.0, nmp_emitted_kg=4.0, include_voc_indirect_co2=True)
    assert r["scopes"]["scope_1"] == pytest.approx(14.0 * 2.2197, rel=1e-4)
    assert r["memo"]["nmvoc_indirect_co2_included"]


def test_residual_mix_and_on_site_heat() -> None:
    r = inventory({"electricity_kwh": 1000.0, "heat_kwh": 500.0}, grid="DE", heat_source="on_site",
                  residual_mix_kg_per_kwh=0.7)
    assert r["scopes"]["scope_2_location_based"] == pytest.approx(1000 * 0.381)
    assert r["scopes"]["scope_2_market_based"] == pytest.approx(1000 * 0.7)
    assert any("heat made on site" in n for n in r["notes"])


def test_fuel_by_mass_uses_the_ipcc_calorific_value() -> None:
    r = inventory(None, fuels=[{"fuel": "diesel", "amount": 1.0, "unit": "t"}])
    # 1,000 kg x 43.0 MJ/kg x (74,100 + 29.8 x 3 + 273 x 0.6) kg/TJ
    assert r["scopes"]["scope_1"] == pytest.approx(43000 * (74100 + 29.8 * 3 + 273 * 0.6) / 1e6)


@pytest.mark.parametrize("kwargs, error, where", [
    ({"fuels": [{"fuel": "whale_oil", "amount": 1}]}, NotFound, None),
    ({"fuels": [{"fuel": "diesel", "amount": 1, "unit": "barrel"}]}, ValidationFailed, "fuels[0].unit"),
    ({"fuels": [{"fuel": "diesel", "amount": -1}]}, ValidationFailed, "fuels[0].amount"),
    ({"electricity_kwh": 100.0, "contracts": [{"kwh": 200, "kg_per_kwh": 0}]}, ValidationFailed, "contracts"),
    ({"process_emissions": {"unobtainium": 1.0}}, ValidationFailed, "process_emissions.unobtainium"),
    ({"heat_source": "volcano"}, ValidationFailed, "heat_source"),
    ({"electricity_kwh": -5.0}, ValidationFailed, "electricity_kwh"),
])
def test_bad_activity_data_names_the_field(kwargs: dict, error: type, where: str | None) -> None:
    with pytest.raises(error) as exc:
        inventory(None, **kwargs)
    if where:
        assert exc.value.location == where


def test_bad_period_field() -> None:
    with pytest.raises(ValidationFailed) as exc:
        inventory({"electricity_kWh": "lots"})
    assert exc.value.location == "period.electricity_kwh"
