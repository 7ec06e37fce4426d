"""The Circular Footprint Formula (PEF method, as the EU battery carbon-footprint rules require).

Per kg of a material in the product (symbols as in ``data/cff.toml`` and the PEF method):

    virgin          = (1 - R1) Ev
    recycled_input  = R1 (A Erecycled + (1 - A) Ev Qsin/Qp)
    end_of_life     = (1 - A) R2 (ErecyclingEoL - E*v Qsout/Qp)
    energy          = (1 - B) R3 (EER - LHV XERheat ESEheat - LHV XERelec ESEelec)
    disposal        = (1 - R2 - R3) ED

The first two belong to raw material acquisition, the rest to end of life and recycling. The
functions take numpy arrays (one entry per material) as well as floats, so a whole bill of
materials is one call. The process graph (``footprint.py``) uses :func:`supply_coefficients` and
:func:`eol_coefficients`, so the matrix result and this closed form are the same numbers (tested).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from batteryloop.errors import ValidationFailed

FloatArray = NDArray[np.float64]
SHARES = ("R1", "R2", "R3", "A", "B")


@cache
def parameters() -> dict[str, Any]:
    """``data/cff.toml``: defaults, A per material, which element each material's R2 follows."""
    return tomllib.loads((files("batteryloop.carbon") / "data" / "cff.toml").read_text("utf-8"))


def a_factor(material: str, override: dict[str, float] | None = None) -> float:
    """A of a material: the caller's value, else the PEF Annex C value, else the PEF default."""
    if override and material in override:
        return _share(override[material], f"A.{material}")
    table = parameters()["A"]
    value = table.get(material)
    return float(value if isinstance(value, (int, float)) else parameters()["defaults"]["A"])


def _share(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValidationFailed(f"must be a number between 0 and 1, got {value!r}", location=name) from None
    if not 0.0 <= v <= 1.0:
        raise ValidationFailed(f"must be between 0 and 1, got {v:g}", location=name)
    return v


def _arr(value: ArrayLike, name: str, *, share: bool = False, positive: bool = False) -> FloatArray:
    out = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(out)):
        raise ValidationFailed("must be finite", location=name)
    if share and (np.any(out < 0.0) or np.any(out > 1.0)):
        raise ValidationFailed(f"must be between 0 and 1, got {out.tolist()}", location=name)
    if positive and np.any(out <= 0.0):
        raise ValidationFailed(f"must be > 0, got {out.tolist()}", location=name)
    return out


@dataclass(frozen=True)
class Terms:
    """The CFF terms per kg of material (arrays when given arrays)."""

    virgin: FloatArray
    recycled_input: FloatArray
    end_of_life: FloatArray
    energy: FloatArray
    disposal: FloatArray

    @property
    def raw_material(self) -> FloatArray:
        return self.virgin + self.recycled_input

    @property
    def eol(self) -> FloatArray:
        return self.end_of_life + self.energy + self.disposal

    @property
    def total(self) -> FloatArray:
        return self.raw_material + self.eol


def material_terms(
    *, ev: ArrayLike, r1: ArrayLike = 0.0, r2: ArrayLike = 0.0, a: ArrayLike = 0.5,
    e_recycled: ArrayLike = 0.0, e_recycling_eol: ArrayLike = 0.0, e_star_v: ArrayLike | None = None,
    q_in: ArrayLike = 1.0, q_out: ArrayLike = 1.0, r3: ArrayLike = 0.0, b: ArrayLike = 0.0,
    e_er: ArrayLike = 0.0, lhv: ArrayLike = 0.0, x_er_heat: ArrayLike = 0.0,
    x_er_elec: ArrayLike = 0.0, e_se_heat: ArrayLike = 0.0, e_se_elec: ArrayLike = 0.0,
    ed: ArrayLike = 0.0,
) -> Terms:
    """The five CFF terms, kg CO2e per kg of material in the product."""
    R1, R2, R3 = _arr(r1, "R1", share=True), _arr(r2, "R2", share=True), _arr(r3, "R3", share=True)
    A, B = _arr(a, "A", share=True), _arr(b, "B", share=True)
    if np.any(R2 + R3 > 1.0 + 1e-12):
        raise ValidationFailed("R2 + R3 must not exceed 1 (a material cannot be both recycled and "
                               "burnt for energy)", location="R2+R3")
    Ev = _arr(ev, "Ev")
    Esv = Ev if e_star_v is None else _arr(e_star_v, "E*v")
    Qin, Qout = _arr(q_in, "Qsin/Qp", positive=True), _arr(q_out, "Qsout/Qp", positive=True)
    Erec, Eeol = _arr(e_recycled, "Erecycled"), _arr(e_recycling_eol, "ErecyclingEoL")
    energy = (1 - B) * R3 * (_arr(e_er, "EER") - _arr(lhv, "LHV") * _arr(x_er_heat, "XER,heat")
                             * _arr(e_se_heat, "ESE,heat")
                             - _arr(lhv, "LHV") * _arr(x_er_elec, "XER,elec") * _arr(e_se_elec, "ESE,elec"))
    return Terms(
        virgin=(1 - R1) * Ev,
        recycled_input=R1 * (A * Erec + (1 - A) * Ev * Qin),
        end_of_life=(1 - A) * R2 * (Eeol - Esv * Qout),
        energy=energy,
        disposal=(1 - R2 - R3) * _arr(ed, "ED"),
    )


def supply_coefficients(r1: float, a: float, q_in: float = 1.0) -> tuple[float, float]:
    """kg of virgin and of recycled material a kg of input 'costs' under the CFF.

    (1 - R1) Ev + R1 (A Erec + (1 - A) Ev Qin) = Ev [(1 - R1) + R1 (1 - A) Qin] + Erec [R1 A]
    """
    r1, a = _share(r1, "R1"), _share(a, "A")
    return (1 - r1) + r1 * (1 - a) * q_in, r1 * a


def eol_coefficients(r2: float, a: float, q_out: float = 1.0, r3: float = 0.0) -> tuple[float, float, float]:
    """(recycling, avoided virgin, disposal) amounts per kg of material in the product.

    (1 - A) R2 (ErecEoL - E*v Qout) + (1 - R2 - R3) ED: recycling (1 - A) R2, a credit of
    (1 - A) R2 Qout kg of virgin material, and (1 - R2 - R3) kg to disposal.
    """
    r2, a, r3 = _share(r2, "R2"), _share(a, "A"), _share(r3, "R3")
    if r2 + r3 > 1.0 + 1e-12:
        raise ValidationFailed("R2 + R3 must not exceed 1", location="R2+R3")
    return (1 - a) * r2, (1 - a) * r2 * q_out, 1 - r2 - r3
