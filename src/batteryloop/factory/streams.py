"""Gas and liquid streams of the recovery unit as numpy arrays (one entry per hour or sample).

Amounts are kmol/h; temperatures K; enthalpy flows kW. Concentrations in the plant's units
(mg/Nm3) convert through the normal molar volume of an ideal gas at the normal conditions named
in ``nmp_line.toml`` (DIN 1343), so a plant that reports at 20 degC changes one line there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from batteryloop.factory import properties as props
from batteryloop.factory.facts import load

SECONDS_PER_HOUR = 3600.0


@cache
def normal_molar_volume() -> float:
    """m3 per kmol of ideal gas at the configured normal conditions."""
    conv = load("nmp_line")["conventions"]
    return props.R * conv["normal_temperature_K"] / conv["normal_pressure_Pa"] * 1000.0


def mw(key: str) -> float:
    """kg/kmol of ``"nmp"``, ``"water"`` or ``"air"``."""
    return {"nmp": props.species(props.NMP).mw, "water": props.species(props.WATER).mw,
            "air": props.air_mw()}[key]


@dataclass(frozen=True)
class Gas:
    """Moist air carrying NMP vapour."""

    air: np.ndarray
    nmp: np.ndarray
    water: np.ndarray
    T: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.air + self.nmp + self.water

    @property
    def normal_m3_h(self) -> np.ndarray:
        return self.total * normal_molar_volume()

    def nmp_mg_Nm3(self) -> np.ndarray:
        """NMP concentration per Nm3 of the moist gas (NaN where there is no flow)."""
        v = self.normal_m3_h
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(v > 0, self.nmp * mw("nmp") * 1e6 / np.where(v > 0, v, 1.0), np.nan)

    def enthalpy_kW(self) -> np.ndarray:
        return (self.air * props.h_gas("air", self.T) + self.nmp * props.h_gas(props.NMP, self.T)
                + self.water * props.h_gas(props.WATER, self.T)) / SECONDS_PER_HOUR

    def scaled(self, factor: np.ndarray | float) -> Gas:
        return Gas(self.air * factor, self.nmp * factor, self.water * factor, self.T)

    def kg_h(self) -> dict[str, np.ndarray]:
        return {"air": self.air * mw("air"), "nmp": self.nmp * mw("nmp"),
                "water": self.water * mw("water")}


@dataclass(frozen=True)
class Liquid:
    """NMP-water liquid (condensate, crude, product, water cut)."""

    nmp: np.ndarray
    water: np.ndarray
    T: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.nmp + self.water

    def x_water(self) -> np.ndarray:
        t = self.total
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(t > 0, self.water / np.where(t > 0, t, 1.0), 0.0)

    def kg_h(self) -> dict[str, np.ndarray]:
        return {"air": np.zeros_like(self.nmp), "nmp": self.nmp * mw("nmp"),
                "water": self.water * mw("water")}

    def mass_kg_h(self) -> np.ndarray:
        return self.nmp * mw("nmp") + self.water * mw("water")

    def water_mass_fraction(self) -> np.ndarray:
        m = self.mass_kg_h()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(m > 0, self.water * mw("water") / np.where(m > 0, m, 1.0), np.nan)

    def enthalpy_kW(self) -> np.ndarray:
        return props.h_liquid_mixture(self.T, self.nmp, self.water) / SECONDS_PER_HOUR

    def plus(self, other: Liquid) -> Liquid:
        """Two liquids mixed adiabatically (temperature from the enthalpy balance)."""
        nmp, water = self.nmp + other.nmp, self.water + other.water
        h = props.h_liquid_mixture(self.T, self.nmp, self.water) + props.h_liquid_mixture(
            other.T, other.nmp, other.water)
        return Liquid(nmp, water, liquid_temperature(nmp, water, h, self.T, other.T))


def liquid_temperature(nmp: np.ndarray, water: np.ndarray, enthalpy: np.ndarray,
                       t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
    """Temperature of a liquid with this enthalpy flow, searched between and around t1 and t2."""
    lo = np.minimum(t1, t2) - 30.0
    hi = np.maximum(t1, t2) + 30.0
    lo = np.clip(lo, props.T_MIN, props.T_MAX)
    hi = np.clip(hi, props.T_MIN, props.T_MAX)
    empty = (nmp + water) <= 0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        over = props.h_liquid_mixture(mid, nmp, water) > enthalpy
        hi = np.where(over, mid, hi)
        lo = np.where(over, lo, mid)
    return np.where(empty, np.maximum(t1, t2), 0.5 * (lo + hi))


def zero_liquid(like: np.ndarray) -> Liquid:
    z = np.zeros_like(like, dtype=float)
    return Liquid(z, z.copy(), np.full_like(z, props.T_REF))
