"""Residual value: the formula checked by hand, and typical inputs against published anchors."""

from __future__ import annotations

import pytest

from batteryloop.errors import ValidationFailed
from batteryloop.grading.value import composition, load_prices, residual_value

PRICES = load_prices()


def test_composition_from_stoichiometry_by_hand() -> None:
    # LiNi0.8Mn0.1Co0.1O2 at 200 mAh/g and 3.7 V: 1000 / 740 kg of cathode per kWh
    formula_mass = 6.94 + 0.8 * 58.693 + 0.1 * 54.938 + 0.1 * 58.933 + 2 * 15.999
    cam = 1000 / (200 * 3.7)
    nmc811 = composition("NMC811")
    assert nmc811["Li"] == pytest.approx(cam * 6.94 / formula_mass)
    assert nmc811["Ni"] == pytest.approx(cam * 0.8 * 58.693 / formula_mass)
    assert nmc811["Li"] == pytest.approx(0.096, abs=0.001)  # about 0.1 kg Li per kWh
    # LiFePO4 at 155 mAh/g and 3.2 V
    lfp = composition("LiFePO4")
    assert lfp["Li"] == pytest.approx(1000 / (155 * 3.2) * 6.94 / (6.94 + 55.845 + 30.974 + 4 * 15.999))
    assert "Co" not in lfp and "Ni" not in lfp
    assert composition("NMC") == composition("NMC622")  # the registry's "NMC" is read as 622


def test_formula_by_hand() -> None:
    out = residual_value(
        rated_energy_kwh=60, soh_lower=78, chemistry="NMC", route="repurposed",
        application="stationary", composition_kg_per_kwh={"Ni": 0.5, "Cu": 1.0},
        overrides={"metal_prices": {"Ni": 16.0, "Cu": 9.0}, "payable": {"Ni": 0.75, "Cu": 0.8},
                   "recycling_cost_usd_per_kwh": 8.0, "new_price_usd_per_kwh": 115.0,
                   "end_of_life_soh": 60.0, "usd_per_eur": 1.10},
    )
    floor_per_kwh = 0.5 * 16.0 * 0.75 + 1.0 * 9.0 * 0.8 - 8.0  # 6.0 + 7.2 - 8 = 5.2
    remaining = 60 * 0.78  # 46.8 kWh at the lower bound of SOH
    life = (78 - 60) / (100 - 60)  # 0.45
    ceiling = 115.0 * remaining * life  # 2421.9
    route_cost = 32.75 * 1.10 * remaining  # repurposing, EUR midpoint of 27.2-38.3
    assert out["remaining_energy_kwh"] == pytest.approx(remaining)
    assert out["floor"]["per_unit"] == pytest.approx(floor_per_kwh * 60, abs=0.01)
    assert out["floor"]["per_rated_kwh"] == pytest.approx(5.2, abs=0.01)
    assert out["ceiling"]["per_unit"] == pytest.approx(ceiling, abs=0.01)
    assert out["ceiling"]["per_remaining_kwh"] == pytest.approx(115 * life, abs=0.01)
    assert out["ceiling"]["life_fraction"] == pytest.approx(0.45)
    assert out["route_cost"]["per_unit"] == pytest.approx(route_cost, abs=0.01)
    assert out["estimate"]["per_unit"] == pytest.approx(ceiling - route_cost, abs=0.01)
    assert out["estimate"]["basis"] == "ceiling less the route cost"


def test_priced_at_the_lower_bound_and_life_capped() -> None:
    a = residual_value(rated_energy_kwh=50, soh_lower=70, chemistry="LFP", route="repurposed",
                       application="stationary")
    b = residual_value(rated_energy_kwh=50, soh_lower=80, chemistry="LFP", route="repurposed",
                       application="stationary")
    assert a["ceiling"]["per_unit"] < b["ceiling"]["per_unit"]
    spent = residual_value(rated_energy_kwh=50, soh_lower=55, chemistry="LFP", route="repurposed",
                           application="stationary")
    assert spent["ceiling"]["life_fraction"] == 0.0 and spent["estimate"]["basis"].startswith("floor")


@pytest.mark.parametrize("chemistry", ["NMC", "NMC811", "LFP"])
@pytest.mark.parametrize("soh_lower", [75.0, 80.0, 85.0, 90.0])
def test_repurposed_packs_within_nrel_range(chemistry: str, soh_lower: float) -> None:
    """NREL (Neubauer et al. 2012): repurposed automotive batteries sell at 38-132 USD/kWh."""
    out = residual_value(rated_energy_kwh=40, soh_lower=soh_lower, chemistry=chemistry,
                         route="repurposed", application="stationary")
    assert 38 <= out["ceiling"]["per_remaining_kwh"] <= 132


def test_repurposing_cost_within_published_range() -> None:
    """Lieskoski et al. 2024: 27.2-38.3 EUR/kWh."""
    eur = PRICES.section("route_cost")["repurposed"]["eur_per_kwh"]
    assert 27.2 <= eur <= 38.3
    out = residual_value(rated_energy_kwh=40, soh_lower=80, chemistry="NMC", route="repurposed",
                         application="stationary")
    usd_per_eur = PRICES.section("exchange")["usd_per_eur"]
    assert 27.2 <= out["route_cost"]["per_remaining_kwh"] / usd_per_eur <= 38.3


def test_used_ev_battery_below_the_scarcity_price() -> None:
    """CES: used EV batteries traded at 220-235 USD/kWh in 2021-22, above new packs. This model
    prices value in use, so even a like-new battery reused in a vehicle stays below that."""
    out = residual_value(rated_energy_kwh=75, soh_lower=97, chemistry="NMC811", route="reused",
                         application="ev")
    assert out["floor"]["per_remaining_kwh"] < out["estimate"]["per_remaining_kwh"] < 220
    assert out["estimate"]["per_remaining_kwh"] == out["ceiling"]["per_remaining_kwh"]  # no route cost


def test_recycling_floor_by_chemistry() -> None:
    nmc = residual_value(rated_energy_kwh=60, soh_lower=50, chemistry="NMC622", route="waste")
    lfp = residual_value(rated_energy_kwh=60, soh_lower=50, chemistry="LFP", route="waste")
    assert nmc["ceiling"] is None and nmc["estimate"]["per_unit"] == nmc["floor"]["per_unit"]
    assert nmc["floor"]["per_rated_kwh"] > 0
    # no nickel or cobalt: LFP's materials barely pay for their recycling (a tenth of NMC's floor)
    assert lfp["floor"]["per_rated_kwh"] < 0.2 * nmc["floor"]["per_rated_kwh"]
    gross = sum(m["value"] for m in nmc["floor"]["materials"])
    assert nmc["floor"]["per_unit"] == pytest.approx(gross - 8.0 * 60, abs=0.05)
    # with the stoichiometric composition (foils by convention) LFP's floor is a disposal cost
    lfp_stoich = residual_value(rated_energy_kwh=60, soh_lower=50, chemistry="LFP", route="waste",
                                overrides={"composition_source": "stoichiometry"})
    assert lfp_stoich["floor"]["per_rated_kwh"] < 0
    assert lfp_stoich["floor"]["composition"]["source"] == "stoichiometry"


def test_floor_from_the_recycling_bill_of_materials_by_hand() -> None:
    """The default floor prices the recycling stage's kg per kWh (EverBatt cell BOM)."""
    from batteryloop.recycling.composition import cell_content

    content = cell_content("LMO")  # LiMn2O4: Li, Mn, and the Cu and Al of foils and can
    metals = PRICES.section("metals")
    payable = PRICES.section("recycling")["payable"]
    gross = sum(content[el.lower()] * metals[el]["usd_per_kg"] * payable[el]
                for el in ("Li", "Mn", "Cu", "Al"))  # Ni, Co, Fe, P, F: none, or not paid for
    out = residual_value(rated_energy_kwh=10, soh_lower=50, chemistry="LiMn2O4", route="waste")
    assert out["floor"]["composition"]["source"] == "recycling"
    assert out["floor"]["composition"]["chemistry"] == "LMO"
    assert len(out["floor"]["composition"]["sha256"]) == 64
    assert out["floor"]["per_rated_kwh"] == pytest.approx(gross - 8.0, abs=0.01)
    kg = {m["element"]: m["kg_per_kwh"] for m in out["floor"]["materials"]}
    assert kg["Mn"] == pytest.approx(content["mn"], abs=1e-4) and kg["F"] == pytest.approx(
        content["f"], abs=1e-4)
    with pytest.raises(ValidationFailed, match="unknown composition source 'guess'"):
        residual_value(rated_energy_kwh=10, soh_lower=50, chemistry="LMO", route="waste",
                       overrides={"composition_source": "guess"})


def test_bad_inputs() -> None:
    with pytest.raises(ValidationFailed, match="no composition for chemistry 'NiMH'"):
        residual_value(rated_energy_kwh=1, soh_lower=80, chemistry="NiMH", route="waste")
    with pytest.raises(ValidationFailed, match="unknown price parameter"):
        residual_value(rated_energy_kwh=1, soh_lower=80, chemistry="LFP", route="waste",
                       overrides={"discount": 0.1})
    with pytest.raises(ValidationFailed, match="application"):
        residual_value(rated_energy_kwh=1, soh_lower=80, chemistry="LFP", route="reused",
                       application="boat")
    with pytest.raises(ValidationFailed, match="rated_energy_kwh"):
        residual_value(rated_energy_kwh=0, soh_lower=80, chemistry="LFP", route="waste")


def test_prices_cite_sources() -> None:
    for section in ("new_equivalent", "route_cost", "metals"):
        for name, entry in PRICES.section(section).items():
            assert entry.get("source"), f"{section}.{name}"
            assert "verified" in entry, f"{section}.{name}"
