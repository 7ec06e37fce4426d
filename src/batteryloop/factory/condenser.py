"""Condenser stages: how far the gas cools, what condenses, and the heat the coolant takes.

The gas leaves a stage at the temperature set by the coil's gas-side effectiveness; at that
temperature it carries at most the NMP and water vapour in equilibrium with the condensate.
The condensate is a non-ideal NMP-water liquid (NMP is hygroscopic: its water activity is below
its mole fraction), so the equilibrium is a flash with air as the inert:

    y_i P = x_i gamma_i(T, x) Psat_i(T)   for NMP and water, air all in the gas.

This is why condensation alone cannot clean the air: the NMP left is at least the saturation
concentration at the coil outlet (about 130 ppm over pure NMP at 10 degC). Fouling adds a
resistance, lowers NTU, raises the approach to the coolant and with it the NMP slip: the soft
sensor compares the measured outlet temperature with the clean coil's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from batteryloop.factory import properties as props
from batteryloop.factory.streams import Gas, Liquid, zero_liquid

FLOW_EXPONENT = -0.2  # NTU ~ h A / (m cp), gas film h ~ flow^0.8 (Dittus-Boelter) -> flow^-0.2


@dataclass(frozen=True)
class Stage:
    """One condenser coil: design NTU at the design flow and its fouling (R_f * U_clean)."""

    name: str
    coolant_temperature_K: float
    ntu: float
    fouling: float
    design_flow_Nm3_h: float
    chilled: bool = False  # served by the chiller rather than the cooling tower


@dataclass(frozen=True)
class StageResult:
    gas: Gas
    condensate: Liquid
    duty_kW: np.ndarray  # heat taken by the coolant (positive)


def effective_ntu(ntu: float, fouling: np.ndarray | float, flow_Nm3_h: np.ndarray,
                  design_flow_Nm3_h: float) -> np.ndarray:
    """NTU at this flow and fouling."""
    with np.errstate(divide="ignore"):
        ratio = np.where(flow_Nm3_h > 0, flow_Nm3_h / design_flow_Nm3_h, 1.0)
    return ntu * ratio ** FLOW_EXPONENT / (1.0 + np.asarray(fouling, dtype=float))


def outlet_temperature(T_in: np.ndarray, T_coolant: np.ndarray, ntu: np.ndarray) -> np.ndarray:
    """Gas outlet temperature of a coil of this NTU (coolant temperature taken as constant)."""
    return T_coolant + (T_in - T_coolant) * np.exp(-ntu)


def fouling_from_outlet(T_in: np.ndarray, T_out: np.ndarray, T_coolant: np.ndarray,
                        flow_Nm3_h: np.ndarray, stage: Stage) -> np.ndarray:
    """The fouling (R_f * U_clean) that explains a measured outlet temperature (NaN if none can).

    Inverts :func:`outlet_temperature`; a clean coil gives 0, a coil half as effective gives
    about 1. Used by the alarms to turn the soft-sensor residual into a fouling estimate.
    """
    T_in, T_out, T_c, flow = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in
                                                   (T_in, T_out, T_coolant, flow_Nm3_h)))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (T_out - T_c) / (T_in - T_c)
        ntu_seen = -np.log(ratio)
        clean = effective_ntu(stage.ntu, 0.0, flow, stage.design_flow_Nm3_h)
        fouling = clean / ntu_seen - 1.0
    return np.where((ratio > 0) & (ratio < 1), fouling, np.nan)


def flash_with_air(gas: Gas, T: np.ndarray, P: float) -> tuple[Gas, Liquid]:
    """Equilibrium of the gas at ``T`` and ``P``: what stays as vapour and what condenses.

    Solved for the liquid's water mole fraction by bisection (vectorised): for a trial x the
    partial pressures fix the vapour composition, air fixes the vapour amount, the species
    balances give the liquid amounts, and x must equal the liquid's own water fraction.
    Where the solution has no positive liquid the gas is below its dew point and passes unchanged.
    """
    T = np.broadcast_to(np.asarray(T, dtype=float), gas.air.shape)
    lo, hi = np.zeros(T.shape), np.ones(T.shape)
    psat_n, psat_w = props.psat(props.NMP, T), props.psat(props.WATER, T)
    for _ in range(52):
        x = 0.5 * (lo + hi)
        l_n, l_w = _liquid_for(x, gas, T, P, psat_n, psat_w)
        g = l_w * (1 - x) - x * l_n
        lo = np.where(g > 0, x, lo)
        hi = np.where(g > 0, hi, x)
    x = 0.5 * (lo + hi)
    l_n, l_w = _liquid_for(x, gas, T, P, psat_n, psat_w)
    wet = (l_n + l_w) > 0
    l_n = np.where(wet, np.clip(l_n, 0.0, gas.nmp), 0.0)
    l_w = np.where(wet, np.clip(l_w, 0.0, gas.water), 0.0)
    T_out = np.array(T, dtype=float)
    return (Gas(gas.air, gas.nmp - l_n, gas.water - l_w, T_out), Liquid(l_n, l_w, T_out.copy()))


def _liquid_for(x: np.ndarray, gas: Gas, T: np.ndarray, P: float, psat_n: np.ndarray,
                psat_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g_n, g_w = props.gammas(T, x)
    y_n = (1 - x) * g_n * psat_n / P
    y_w = x * g_w * psat_w / P
    vapour = gas.air / np.maximum(1 - y_n - y_w, 1e-12)
    return gas.nmp - y_n * vapour, gas.water - y_w * vapour


def cool(gas: Gas, T_out: np.ndarray, P: float) -> StageResult:
    """Cool the gas to ``T_out`` (or less far if it is already colder); duty from enthalpies."""
    T_out = np.minimum(np.asarray(T_out, dtype=float), gas.T)
    out, liquid = flash_with_air(gas, T_out, P)
    duty = gas.enthalpy_kW() - out.enthalpy_kW() - liquid.enthalpy_kW()
    return StageResult(out, liquid, duty)


def condense(gas: Gas, stage: Stage, T_coolant: np.ndarray, P: float,
             fouling: np.ndarray | float | None = None) -> StageResult:
    """One coil: outlet temperature from its effectiveness, then the flash and the duty."""
    ntu = effective_ntu(stage.ntu, stage.fouling if fouling is None else fouling,
                        gas.normal_m3_h, stage.design_flow_Nm3_h)
    T_out = outlet_temperature(gas.T, np.asarray(T_coolant, dtype=float), ntu)
    return cool(gas, T_out, P)


def no_stage(gas: Gas) -> StageResult:
    return StageResult(gas, zero_liquid(gas.air), np.zeros_like(gas.air))
