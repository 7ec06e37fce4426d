"""The polisher after the condensers: a zeolite rotor concentrator or a water scrubber.

Condensation stops at saturation; the last 5-10 % of the NMP needs a second principle.

Rotor: one pass removes a fraction of the NMP (``adsorption_efficiency``); a split of the cleaned
air (1 / ``concentration_ratio``) crosses the cooling sector, is heated to the desorption
temperature, strips the adsorbed NMP and returns to the condenser inlet, so the rotor's NMP ends
up in the crude condensate. The heater supplies the desorption air's net sensible heat and the
heat of desorption (``adsorption_heat_ratio`` x the heat of vaporisation); the heat of adsorption
warms the cleaned air. Water passes (hydrophobic zeolite).

Scrubber: water absorbs a fraction of the NMP; the bleed (``bleed_nmp_mass_fraction``) goes to
the crude tank and fresh water replaces it and what the air evaporates. The bleed must not be so
concentrated that its NMP partial pressure exceeds the gas's (it would then strip, not absorb).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from batteryloop.errors import ValidationFailed
from batteryloop.factory import properties as props
from batteryloop.factory.streams import SECONDS_PER_HOUR, Gas, Liquid, mw


@dataclass(frozen=True)
class RotorResult:
    stack: Gas  # to the stack (and recirculation)
    desorb: Gas  # back to the condenser inlet
    adsorbed_kmol_h: np.ndarray
    heater_kW: np.ndarray


@dataclass(frozen=True)
class ScrubberResult:
    stack: Gas
    bleed: Liquid
    makeup_water: Liquid
    heat_removed_kW: np.ndarray  # to keep the scrubber isothermal (tiny; sign either way)
    pump_kW: np.ndarray


def rotor(gas: Gas, *, efficiency: float, concentration_ratio: float, outlet_T: float,
          heat_ratio: float) -> RotorResult:
    """Steady state of the rotor for the gas leaving the last condenser.

    The wheel's own heat cycles inside the rotor (the desorption sector heats it, the cooling
    sector takes that heat back into the desorption air before the heater), so what the heater
    supplies net is the desorption air's rise from the cleaned-air temperature to its temperature
    leaving the desorption sector (``outlet_T``), plus the heat of desorption.
    """
    adsorbed = efficiency * gas.nmp
    h_ads = heat_ratio * props.hvap(props.NMP, gas.T)  # J/mol released on adsorption
    # Process side: NMP vapour leaves the gas as adsorbate, its heat of adsorption stays in the air.
    h_in = gas.enthalpy_kW() * SECONDS_PER_HOUR
    adsorbate_h = adsorbed * (props.h_gas(props.NMP, gas.T) - h_ads)
    clean_amounts = (gas.air, gas.nmp - adsorbed, gas.water)
    T_clean = props.gas_temperature(*clean_amounts, h_in - adsorbate_h)
    clean = Gas(*clean_amounts, T_clean)
    split = 1.0 / concentration_ratio
    desorb_air = clean.scaled(split)
    stack = clean.scaled(1.0 - split)
    desorb = Gas(desorb_air.air, desorb_air.nmp + adsorbed, desorb_air.water,
                 np.full_like(gas.T, outlet_T))
    heater = desorb.enthalpy_kW() - desorb_air.enthalpy_kW() - adsorbate_h / SECONDS_PER_HOUR
    return RotorResult(stack, desorb, adsorbed, heater)


def scrubber(gas: Gas, *, efficiency: float, bleed_fraction: float, pump_kW_per_1000: float,
             P: float) -> ScrubberResult:
    """Steady state of an isothermal water scrubber for the gas leaving the last condenser."""
    absorbed = efficiency * gas.nmp
    x_n = (bleed_fraction / mw("nmp")) / (bleed_fraction / mw("nmp")
                                         + (1 - bleed_fraction) / mw("water"))
    p_n_liquid, _ = props.partial_pressures(gas.T, 1 - x_n)
    p_n_gas = gas.nmp / np.maximum(gas.total, 1e-300) * P
    if np.any((gas.nmp > 0) & (p_n_liquid >= p_n_gas)):
        raise ValidationFailed(
            f"a bleed of {bleed_fraction:.0%} NMP has an NMP partial pressure above the gas's at "
            "the scrubber temperature: it would strip NMP instead of absorbing it",
            location="scrubber.bleed_nmp_mass_fraction")
    bleed = Liquid(absorbed, absorbed * (1 - x_n) / x_n, gas.T.copy())
    # The air leaves saturated with water over the (almost pure) wash water at the top.
    y_sat = props.psat(props.WATER, gas.T) / P
    nmp_out = gas.nmp - absorbed
    water_sat = y_sat * (gas.air + nmp_out) / (1 - y_sat)
    water_out = np.maximum(gas.water, water_sat)
    makeup = Liquid(np.zeros_like(absorbed), bleed.water + (water_out - gas.water), gas.T.copy())
    stack = Gas(gas.air, nmp_out, water_out, gas.T.copy())
    heat = (gas.enthalpy_kW() + makeup.enthalpy_kW() - stack.enthalpy_kW() - bleed.enthalpy_kW())
    pump = pump_kW_per_1000 * gas.normal_m3_h / 1000.0
    return ScrubberResult(stack, bleed, makeup, heat, pump)
