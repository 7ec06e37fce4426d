"""The Circular Footprint Formula against hand-calculated cases (PEF method, Annex I 4.4.8)."""

from __future__ import annotations

import numpy as np
import pytest

from batteryloop.carbon import cff
from batteryloop.errors import ValidationFailed


def test_material_terms_by_hand() -> None:
    # Ev 10, Erecycled 2, ErecyclingEoL 3, R1 0.3, R2 0.6, A 0.2, Q 1, ED 0.5:
    # virgin 0.7*10 = 7; recycled 0.3*(0.2*2 + 0.8*10) = 2.52; EoL 0.8*0.6*(3 - 10) = -3.36;
    # disposal (1 - 0.6)*0.5 = 0.2; total 6.36
    t = cff.material_terms(ev=10, r1=0.3, r2=0.6, a=0.2, e_recycled=2, e_recycling_eol=3, ed=0.5)
    assert float(t.virgin) == pytest.approx(7.0)
    assert float(t.recycled_input) == pytest.approx(2.52)
    assert float(t.end_of_life) == pytest.approx(-3.36)
    assert float(t.disposal) == pytest.approx(0.2)
    assert float(t.raw_material) == pytest.approx(9.52)
    assert float(t.total) == pytest.approx(6.36)


def test_quality_ratios_and_energy_recovery_by_hand() -> None:
    # Qsin/Qp 0.9: recycled 0.3*(0.4 + 0.8*10*0.9) = 2.28; Qsout/Qp 0.8: EoL 0.48*(3 - 8) = -2.4
    # energy: (1 - 0)*0.2*(1.5 - 20*0.5*0.05 - 20*0.2*0.15) = 0.2*0.4 = 0.08; disposal 0.2*0.5 = 0.1
    t = cff.material_terms(ev=10, r1=0.3, r2=0.6, a=0.2, e_recycled=2, e_recycling_eol=3, ed=0.5,
                           q_in=0.9, q_out=0.8, r3=0.2, e_er=1.5, lhv=20, x_er_heat=0.5,
                           e_se_heat=0.05, x_er_elec=0.2, e_se_elec=0.15)
    assert float(t.recycled_input) == pytest.approx(2.28)
    assert float(t.end_of_life) == pytest.approx(-2.4)
    assert float(t.energy) == pytest.approx(0.08)
    assert float(t.disposal) == pytest.approx(0.1)


def test_columns_of_materials_in_one_call() -> None:
    t = cff.material_terms(ev=np.array([10.0, 4.0]), r1=np.array([0.0, 0.5]), r2=np.array([0.9, 0.0]),
                           a=np.array([0.2, 0.5]), e_recycled=np.array([1.0, 1.0]),
                           e_recycling_eol=np.array([1.0, 1.0]))
    # first: 10 + 0.8*0.9*(1 - 10) = 3.52; second: 0.5*4 + 0.5*(0.5*1 + 0.5*4) = 3.25
    assert t.total == pytest.approx([3.52, 3.25])


def test_matrix_coefficients_reproduce_the_closed_form() -> None:
    v, r = cff.supply_coefficients(0.3, 0.2)
    assert (v, r) == pytest.approx((0.94, 0.06))
    assert v * 10 + r * 2 == pytest.approx(7 + 2.52)
    rec, credit, disposal = cff.eol_coefficients(0.6, 0.2)
    assert (rec, credit, disposal) == pytest.approx((0.48, 0.48, 0.4))
    assert rec * 3 - credit * 10 == pytest.approx(-3.36)


def test_pef_annex_c_a_factors_and_default() -> None:
    assert cff.a_factor("aluminium") == 0.2
    assert cff.a_factor("plastics") == 0.5
    assert cff.a_factor("pvdf") == 0.5  # not in Annex C: the PEF default
    assert cff.a_factor("aluminium", {"aluminium": 0.5}) == 0.5


@pytest.mark.parametrize("kwargs, where", [
    ({"ev": 10, "a": 1.2}, "A"),
    ({"ev": 10, "r1": -0.1}, "R1"),
    ({"ev": 10, "r2": 0.7, "r3": 0.5}, "R2+R3"),
    ({"ev": 10, "q_in": 0.0}, "Qsin/Qp"),
    ({"ev": float("nan")}, "Ev"),
])
def test_bad_parameters_name_the_symbol(kwargs: dict, where: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        cff.material_terms(**kwargs)
    assert exc.value.location == where
