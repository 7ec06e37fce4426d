"""Composition data: the published cell BOM turned into kg per kWh, checked by hand."""

from __future__ import annotations

import pytest

from batteryloop.errors import NotFound
from batteryloop.recycling import composition

# IUPAC standard atomic weights (g/mol), written out here so the test does not lean on the code's
# own source of them.
LI, NI, MN, CO, O, P, F = 6.941, 58.6934, 54.938045, 58.933195, 15.9994, 30.973762, 18.9984032


def test_chemistries_cover_the_issue() -> None:
    assert set(composition.chemistries()) >= {"NMC111", "NMC532", "NMC622", "NMC811", "NCA", "LFP", "LMO"}


def test_nmc111_lithium_and_cobalt_per_kwh_by_hand() -> None:
    # EverBatt Table 4: NMC111 cell 0.856 kg, 0.168 kWh; cathode 34.7 %, LiPF6 2.2 %.
    kg_per_kwh = 0.856 / 0.168
    cam_mw = LI + (NI + MN + CO) / 3 + 2 * O
    li = 0.347 * kg_per_kwh * LI / cam_mw + 0.022 * kg_per_kwh * LI / (LI + P + 6 * F)
    co = 0.347 * kg_per_kwh * (CO / 3) / cam_mw
    got = composition.cell_content("NMC111")
    assert got["li"] == pytest.approx(li, rel=1e-4)
    assert got["co"] == pytest.approx(co, rel=1e-3)
    # published range: about 0.13-0.15 kg Li and 0.35-0.40 kg Co per kWh for NMC111 cells
    assert 0.12 < got["li"] < 0.16 and 0.33 < got["co"] < 0.42
    assert got["cu"] == pytest.approx(0.157 * kg_per_kwh)
    assert got["electrolyte"] == pytest.approx((0.022 + 0.062 + 0.062) * kg_per_kwh)
    # EverBatt: NMP = 24 x binder, 99.5 % recovered
    assert got["nmp_manufacture"] == pytest.approx(24 * 0.030 * kg_per_kwh)
    assert got["nmp_makeup"] == pytest.approx(24 * 0.030 * kg_per_kwh * 0.005)


def test_lfp_has_no_cobalt_or_nickel_and_iron_follows_the_formula() -> None:
    got = composition.cell_content("LiFePO4")  # an alias
    assert got["co"] == 0 and got["ni"] == 0
    fe = 0.327 * 1.054 / 0.168 * 55.845 / (LI + 55.845 + P + 4 * O)
    assert got["fe"] == pytest.approx(fe, rel=1e-3)


def test_nickel_rises_and_cobalt_falls_from_111_to_811() -> None:
    ni = [composition.cell_content(c)["ni"] for c in ("NMC111", "NMC532", "NMC622", "NMC811")]
    co = [composition.cell_content(c)["co"] for c in ("NMC111", "NMC532", "NMC622", "NMC811")]
    assert ni == sorted(ni) and co == sorted(co, reverse=True)


@pytest.mark.parametrize("chemistry", ["NMC111", "NMC532", "NMC622", "NMC811", "NCA", "LFP", "LMO"])
def test_constituents_and_components_add_up_to_the_cell(chemistry: str) -> None:
    assert sum(composition.cell_constituents(chemistry).values()) == pytest.approx(1.0)
    assert sum(composition.component_fractions(chemistry).values()) == pytest.approx(1.0, abs=0.005)


@pytest.mark.parametrize("key", ["module_liquid", "module_passive", "cell_to_pack", "NCA", "LFP"])
def test_pack_breakdown_adds_to_one(key: str) -> None:
    shares = composition.pack_breakdown(key)
    assert set(shares) == {"cells", "modules", "housing", "bms", "wiring", "thermal"}
    assert sum(shares.values()) == pytest.approx(1.0)


def test_every_chemistry_and_pack_type_cites_a_source() -> None:
    for key in (*composition.chemistries(), *composition.pack_types()):
        assert len(composition.source(key)) > 20


def test_unknown_chemistry_is_refused() -> None:
    with pytest.raises(NotFound, match="unknown chemistry 'LTO'"):
        composition.cell_content("LTO")
