"""Carbon of a recycling batch from its records, cross-checked with the footprint's route."""

from __future__ import annotations

import polars as pl
import pytest

from batteryloop.carbon.batch import batch_carbon
from batteryloop.carbon.factors import shipped
from batteryloop.carbon.footprint import footprint
from batteryloop.carbon.inventory import multipliers
from batteryloop.recycling import composition, routes


def _result(route_name: str, chemistry: str, cell_kg: float) -> dict:
    """A batch result as recycling.service.compute shapes it (modelled outputs, cells only)."""
    route = routes.load(route_name)
    cons = {k: v * cell_kg for k, v in composition.cell_constituents(chemistry).items() if v > 0}
    totals = pl.DataFrame({"constituent": list(cons), "mass_kg": list(cons.values())})
    return {
        "route": route.as_dict(),
        "inputs": {"cell_derived_kg": cell_kg},
        "outputs": {"basis": "modelled", "streams": route.modelled_outputs(totals).to_dicts()},
        "consumption": {"reagents_kg": {k: v * cell_kg for k, v in route.reagents_kg_per_kg.items()},
                        "energy_mj": {k: v * cell_kg for k, v in route.energy_mj_per_kg.items()}},
        "batteries": [{"chemistry": chemistry, "input_kg": cons}],
    }


@pytest.mark.parametrize("route", ["hydrometallurgical", "pyrometallurgical", "direct"])
def test_batch_emissions_equal_the_route_in_the_footprint(route: str) -> None:
    c = batch_carbon(_result(route, "NMC811", 1000.0), grid="CN")
    fp = footprint("NMC811", route=route, eol_grid="CN")
    per_kg = multipliers(fp.graph, [f"route:{route}"])[f"route:{route}"]
    assert c["recycling_emissions"]["total"] / 1000.0 == pytest.approx(per_kg)
    assert c["per_kg_cell_input"]["emissions"] == pytest.approx(per_kg)


def test_batch_avoided_virgin_by_hand() -> None:
    c = batch_carbon(_result("hydrometallurgical", "NMC811", 1000.0), grid="CN")
    ni = next(a for a in c["avoided_virgin"]["materials"] if a["constituent"] == "ni")
    ni_kg = 1000.0 * composition.cell_constituents("NMC811")["ni"] * 0.98  # EverBatt Table 12
    niso4 = ni_kg * (58.693 + 32.06 + 4 * 15.999) / 58.693
    assert ni["recovered_kg"] == pytest.approx(ni_kg)
    assert ni["kg_co2e"] == pytest.approx(niso4 * shipped().material("nickel_sulfate").value, rel=1e-4)
    assert c["net_avoided"] == pytest.approx(c["avoided_virgin"]["total"] - c["recycling_emissions"]["total"])
    # kWh from the cell mass: 1000 kg / (0.803 kg / 0.168 kWh)
    assert c["per_kwh"]["kwh"] == pytest.approx(1000.0 / (0.803 / 0.168))


def test_pyrometallurgy_burns_the_graphite() -> None:
    pyro = batch_carbon(_result("pyrometallurgical", "LFP", 100.0), grid="CN")
    burned = pyro["recycling_emissions"]["process_co2"]["burned graphite"]
    graphite = 100.0 * composition.cell_constituents("LFP")["graphite"]
    assert burned == pytest.approx(graphite * 44.009 / 12.011, rel=1e-4)
