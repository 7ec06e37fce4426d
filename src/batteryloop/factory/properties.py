"""NMP, water and air properties from ``thermo``/``chemicals``, tabulated once for numpy.

Every number here comes from the libraries: molar masses, boiling points and critical constants
from ``chemicals``; vapour pressure, heat of vaporisation and ideal-gas heat capacity from
``thermo``'s temperature-dependent property objects (the methods they pick for each compound);
NMP-water activity coefficients and excess enthalpy from modified UNIFAC (Dortmund) with the
group assignment and interaction parameters shipped in ``thermo``.

WHY tables: the unit model runs on arrays of hours or samples, while the libraries evaluate one
temperature and composition at a time. Each property is evaluated once on a grid and then
interpolated (vapour pressure in log space, activity coefficients as ln gamma on a temperature x
composition grid); tests check the tables against the libraries.

Enthalpies are molar (J/mol) with the ideal gas at 298.15 K as the zero of each species; a
liquid's enthalpy is the ideal gas's less the heat of vaporisation at the same temperature, plus
the excess enthalpy of mixing. No reactions happen in the unit, so formation enthalpies cancel.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.constants import R

from batteryloop.errors import ValidationFailed

NMP = "872-50-4"
WATER = "7732-18-5"
T_REF = 298.15

# Temperature span of the tables (K): -33 degC (below any coolant) to 287 degC (above NMP's
# normal boiling point and any desorption temperature).
T_MIN, T_MAX = 240.0, 560.0
_T = np.linspace(T_MIN, T_MAX, 641)  # 0.5 K steps
# Activity grid: 250-520 K in 5 K steps x water mole fraction 0..1 in 0.02 steps.
_TA = np.linspace(250.0, 520.0, 55)
_XA = np.linspace(0.0, 1.0, 51)


@dataclass(frozen=True)
class Species:
    """Constants of one compound, as the library gives them."""

    cas: str
    name: str
    mw: float  # g/mol = kg/kmol
    tb: float  # K, normal boiling point
    tc: float  # K
    pc: float  # Pa


@cache
def _chemical(cas: str):  # type: ignore[no-untyped-def]
    from thermo import Chemical

    return Chemical(cas)


@cache
def species(cas: str) -> Species:
    """Molar mass, normal boiling point and critical point of ``cas`` from the library."""
    c = _chemical(cas)
    return Species(cas=cas, name=c.name, mw=float(c.MW), tb=float(c.Tb), tc=float(c.Tc),
                   pc=float(c.Pc))


@cache
def air_composition() -> dict[str, float]:
    """Dry-air mole fractions (from ``nmp_line.toml``'s conventions), normalised to 1."""
    from batteryloop.factory.facts import load

    comp = {str(k): float(v) for k, v in load("nmp_line")["conventions"]["air_composition"].items()}
    total = sum(comp.values())
    return {k: v / total for k, v in comp.items()}


@cache
def air_mw() -> float:
    """Molar mass of dry air (g/mol) from its composition and the library's molar masses."""
    return sum(x * species(cas).mw for cas, x in air_composition().items())


@dataclass(frozen=True)
class _Tables:
    ln_psat: dict[str, np.ndarray]
    hvap: dict[str, np.ndarray]
    h_gas: dict[str, np.ndarray]  # keys: NMP, WATER, "air"
    ln_gamma_nmp: np.ndarray  # (len(_TA), len(_XA))
    ln_gamma_water: np.ndarray
    h_excess: np.ndarray


def _ideal_gas_enthalpy(cas: str) -> np.ndarray:
    cp = _chemical(cas).HeatCapacityGas
    return np.array([cp.T_dependent_property_integral(T_REF, float(t)) for t in _T])


@cache
def _tables() -> _Tables:
    from thermo.unifac import DOUFIP2016, DOUFSG, UNIFAC

    ln_psat, hvap, h_gas = {}, {}, {}
    for cas in (NMP, WATER):
        c = _chemical(cas)
        ln_psat[cas] = np.log([c.VaporPressure(float(t)) for t in _T])
        hvap[cas] = np.array([c.EnthalpyVaporization(float(t)) for t in _T])
        h_gas[cas] = _ideal_gas_enthalpy(cas)
    h_gas["air"] = sum(x * _ideal_gas_enthalpy(cas) for cas, x in air_composition().items())

    groups = [_chemical(NMP).UNIFAC_Dortmund_groups, _chemical(WATER).UNIFAC_Dortmund_groups]
    model = UNIFAC.from_subgroups(T=300.0, xs=[0.5, 0.5], chemgroups=groups, version=1,
                                  interaction_data=DOUFIP2016, subgroups=DOUFSG)
    shape = (len(_TA), len(_XA))
    lg_n, lg_w, he = np.empty(shape), np.empty(shape), np.empty(shape)
    tiny = 1e-9  # the model needs both components; the ends are the infinite-dilution limits
    for i, t in enumerate(_TA):
        for j, x in enumerate(_XA):
            xw = min(max(float(x), tiny), 1 - tiny)
            m = model.to_T_xs(float(t), [1 - xw, xw])
            g = m.gammas()
            lg_n[i, j], lg_w[i, j] = np.log(g[0]), np.log(g[1])
            he[i, j] = m.HE()
    return _Tables(ln_psat, hvap, h_gas, lg_n, lg_w, he)


def warm_up() -> None:
    """Build the tables now (about a second, once per process) rather than on first use."""
    _tables()


def _check_T(T: np.ndarray) -> None:
    if np.any(T < T_MIN) or np.any(T > T_MAX):
        bad = T[(T < T_MIN) | (T > T_MAX)].flat[0]
        raise ValidationFailed(f"{bad - 273.15:.1f} degC is outside the property tables "
                               f"({T_MIN - 273.15:.0f} to {T_MAX - 273.15:.0f} degC)",
                               location="temperature")


def psat(cas: str, T: np.ndarray | float) -> np.ndarray:
    """Vapour pressure (Pa) of pure ``cas`` at ``T`` (K)."""
    T = np.asarray(T, dtype=float)
    _check_T(T)
    return np.exp(np.interp(T, _T, _tables().ln_psat[cas]))


def hvap(cas: str, T: np.ndarray | float) -> np.ndarray:
    """Heat of vaporisation (J/mol) of ``cas`` at ``T`` (K)."""
    T = np.asarray(T, dtype=float)
    _check_T(T)
    return np.interp(T, _T, _tables().hvap[cas])


def h_gas(key: str, T: np.ndarray | float) -> np.ndarray:
    """Ideal-gas enthalpy (J/mol) relative to 298.15 K; ``key`` is a CAS number or ``"air"``."""
    T = np.asarray(T, dtype=float)
    _check_T(T)
    return np.interp(T, _T, _tables().h_gas[key])


def h_liquid(cas: str, T: np.ndarray | float) -> np.ndarray:
    """Pure-liquid enthalpy (J/mol), same zero as :func:`h_gas`."""
    return h_gas(cas, T) - hvap(cas, T)


def _bilinear(table: np.ndarray, T: np.ndarray, xw: np.ndarray) -> np.ndarray:
    T = np.clip(T, _TA[0], _TA[-1])
    xw = np.clip(xw, 0.0, 1.0)
    ft = (T - _TA[0]) / (_TA[1] - _TA[0])
    fx = xw / (_XA[1] - _XA[0])
    i = np.minimum(ft.astype(int), len(_TA) - 2)
    j = np.minimum(fx.astype(int), len(_XA) - 2)
    a, b = ft - i, fx - j
    return ((1 - a) * (1 - b) * table[i, j] + a * (1 - b) * table[i + 1, j]
            + (1 - a) * b * table[i, j + 1] + a * b * table[i + 1, j + 1])


def gammas(T: np.ndarray | float, x_water: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Activity coefficients (NMP, water) in the liquid at ``T`` (K) and water mole fraction."""
    T, xw = np.broadcast_arrays(np.asarray(T, dtype=float), np.asarray(x_water, dtype=float))
    t = _tables()
    return np.exp(_bilinear(t.ln_gamma_nmp, T, xw)), np.exp(_bilinear(t.ln_gamma_water, T, xw))


def h_excess(T: np.ndarray | float, x_water: np.ndarray | float) -> np.ndarray:
    """Excess enthalpy of the NMP-water liquid (J/mol of mixture); negative: mixing is exothermic.
    """
    T, xw = np.broadcast_arrays(np.asarray(T, dtype=float), np.asarray(x_water, dtype=float))
    return _bilinear(_tables().h_excess, T, xw)


def h_liquid_mixture(T: np.ndarray | float, n_nmp: np.ndarray | float,
                     n_water: np.ndarray | float) -> np.ndarray:
    """Enthalpy flow of an NMP-water liquid: same units as the amounts times J/mol."""
    n_nmp, n_water = np.asarray(n_nmp, dtype=float), np.asarray(n_water, dtype=float)
    total = n_nmp + n_water
    with np.errstate(invalid="ignore", divide="ignore"):
        xw = np.where(total > 0, n_water / np.where(total > 0, total, 1.0), 0.0)
    return (n_nmp * h_liquid(NMP, T) + n_water * h_liquid(WATER, T) + total * h_excess(T, xw))


def partial_pressures(T: np.ndarray | float,
                      x_water: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Equilibrium partial pressures (Pa) of NMP and water over the liquid (modified Raoult)."""
    T, xw = np.broadcast_arrays(np.asarray(T, dtype=float), np.asarray(x_water, dtype=float))
    g_n, g_w = gammas(T, xw)
    return (1 - xw) * g_n * psat(NMP, T), xw * g_w * psat(WATER, T)


def relative_volatility(T: np.ndarray | float, x_water: np.ndarray | float) -> np.ndarray:
    """Relative volatility of water over NMP; above 1 everywhere means no azeotrope."""
    T, xw = np.broadcast_arrays(np.asarray(T, dtype=float), np.asarray(x_water, dtype=float))
    g_n, g_w = gammas(T, xw)
    return (g_w * psat(WATER, T)) / (g_n * psat(NMP, T))


def bubble_temperature(P: np.ndarray | float, x_water: np.ndarray | float) -> np.ndarray:
    """Bubble temperature (K) of the NMP-water liquid at pressure ``P`` (Pa), by bisection."""
    P, xw = np.broadcast_arrays(np.asarray(P, dtype=float), np.asarray(x_water, dtype=float))
    lo = np.full(P.shape, T_MIN + 0.5)
    hi = np.full(P.shape, T_MAX - 0.5)
    for _ in range(48):
        mid = 0.5 * (lo + hi)
        p_n, p_w = partial_pressures(mid, xw)
        above = (p_n + p_w) > P
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return 0.5 * (lo + hi)


def saturation_ppm(cas: str, T: np.ndarray | float, P: float) -> np.ndarray:
    """Mole fraction (ppm by volume) of pure ``cas`` vapour saturating a gas at ``T`` and ``P``."""
    return psat(cas, T) / P * 1e6


def gas_temperature(n_air: np.ndarray, n_nmp: np.ndarray, n_water: np.ndarray,
                    enthalpy: np.ndarray) -> np.ndarray:
    """Temperature (K) at which a gas of these amounts has ``enthalpy`` (same units); bisection."""
    shape = np.broadcast(n_air, n_nmp, n_water, enthalpy).shape
    lo, hi = np.full(shape, T_MIN), np.full(shape, T_MAX)
    for _ in range(48):
        mid = 0.5 * (lo + hi)
        h = n_air * h_gas("air", mid) + n_nmp * h_gas(NMP, mid) + n_water * h_gas(WATER, mid)
        over = h > enthalpy
        hi = np.where(over, mid, hi)
        lo = np.where(over, lo, mid)
    return 0.5 * (lo + hi)


__all__ = ["NMP", "WATER", "R", "Species", "species", "air_mw", "air_composition", "psat", "hvap",
           "h_gas", "h_liquid", "gammas", "h_excess", "h_liquid_mixture", "partial_pressures",
           "relative_volatility", "bubble_temperature", "saturation_ppm", "gas_temperature",
           "warm_up"]
