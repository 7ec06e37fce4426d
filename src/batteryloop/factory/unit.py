"""The whole recovery line in steady state: mass and energy balance per hour (or per sample).

``simulate(params, conditions)`` takes the measured inputs of an hour as tag -> value (floats, or
numpy arrays / polars columns for many hours at once) and returns a :class:`Balance`: every
stream crossing the unit's boundary per species (kg/h) and its enthalpy (kW), the heat supplied
and removed, the electricity used, the tags the model predicts, and the indicators (capture and
recovery rates, stack concentration, purity, water, specific energy). ``Balance.closure()``
checks that NMP, water, air and energy in equal out.

Boundary: oven exhaust (and scrubber water) in; stack gas, air returned to the dryer, product
NMP, water cut and heavies purge out. The rotor's desorption loop is inside.

``expected_outlet(params, conditions)`` is the soft sensor for the alarms: the clean unit's
outlet temperatures and NMP concentrations for the measured exhaust and coolant temperatures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batteryloop.errors import ValidationFailed
from batteryloop.factory import adsorption, condenser, distillation
from batteryloop.factory import properties as props
from batteryloop.factory.facts import tags as tag_table
from batteryloop.factory.params import KELVIN, LineParams
from batteryloop.factory.streams import Gas, mw, normal_molar_volume

EXHAUST_TAGS = ("oven.exhaust.flow", "oven.exhaust.temp", "oven.exhaust.nmp")
SPECIES = ("nmp", "water", "air")
_RECYCLE_ITERATIONS = 60
_RECYCLE_TOLERANCE = 1e-10


def required_tags(params: LineParams) -> tuple[str, ...]:
    """The tags :func:`simulate` needs: exhaust flow, temperature, NMP and each coolant."""
    return EXHAUST_TAGS + tuple(f"{s.name}.coolant.temp" for s in params.condensers)


def design_conditions(params: LineParams) -> dict[str, float]:
    """The design hour of the line (for what-if runs without measurements)."""
    out = {"oven.exhaust.flow": params.design_flow_Nm3_h,
           "oven.exhaust.temp": params.design_temperature_K - KELVIN,
           "oven.exhaust.nmp": params.design_nmp_mg_Nm3}
    for s in params.condensers:
        out[f"{s.name}.coolant.temp"] = s.coolant_temperature_K - KELVIN
    return out


# ----------------------------------------------------------------------------- input checks

def _as_arrays(conditions: Any) -> dict[str, np.ndarray]:
    if hasattr(conditions, "columns") and hasattr(conditions, "get_column"):  # polars frame
        return {c: conditions.get_column(c).to_numpy().astype(float) for c in conditions.columns}
    if not isinstance(conditions, Mapping):
        raise ValidationFailed("conditions must map tag names to values", location="conditions")
    out = {}
    for k, v in conditions.items():
        try:
            out[str(k)] = np.asarray(v, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValidationFailed(f"not a number: {v!r}", location=str(k)) from exc
    return out


def _where(tag: str, mask: np.ndarray) -> str:
    if mask.ndim == 0:
        return tag
    return f"{tag}[{int(np.flatnonzero(mask.ravel())[0])}]"


def _check(values: dict[str, np.ndarray], needed: tuple[str, ...]) -> None:
    known = tag_table()
    for tag in needed:
        if tag not in values:
            raise ValidationFailed("missing tag", location=tag)
    for tag, v in values.items():
        if tag not in known:
            continue
        bad = ~np.isfinite(v)
        if np.any(bad):
            raise ValidationFailed("not a finite number", location=_where(tag, bad))
        lo, hi = known[tag]["range"]
        out = (v < lo) | (v > hi)
        if np.any(out):
            first = v[out].flat[0] if v.ndim else float(v)
            what = "negative" if first < 0 <= lo else "outside the instrument range"
            raise ValidationFailed(f"{first} {known[tag]['unit']} is {what} [{lo}, {hi}]",
                                   location=_where(tag, out))
    try:
        np.broadcast_shapes(*(v.shape for v in values.values()))
    except ValueError as exc:
        raise ValidationFailed("tag arrays differ in length", location="conditions") from exc


def _coolant_check(tag: str, T_coolant: np.ndarray, T_gas: np.ndarray) -> None:
    warm = np.broadcast_to(T_coolant >= T_gas, np.broadcast(T_coolant, T_gas).shape)
    if np.any(warm):
        gas_C = float(np.broadcast_to(T_gas, warm.shape)[warm].flat[0]) - KELVIN
        raise ValidationFailed("coolant is not colder than the gas entering the stage "
                               f"({gas_C:.1f} degC)", location=_where(tag, warm))


# ----------------------------------------------------------------------------- gas side

def exhaust_gas(params: LineParams, flow: np.ndarray, temp_C: np.ndarray,
                nmp_mg: np.ndarray) -> Gas:
    """Oven exhaust as amounts: the flow is moist Nm3/h, humidity is per kg of dry air."""
    flow, temp_C, nmp_mg = np.broadcast_arrays(flow, temp_C, nmp_mg)
    total = flow / normal_molar_volume()
    nmp = nmp_mg * flow * 1e-6 / mw("nmp")
    water_per_air = params.humidity_g_per_kg / 1000.0 * mw("air") / mw("water")
    air = (total - nmp) / (1 + water_per_air)
    if np.any(air < 0):
        raise ValidationFailed("NMP concentration exceeds the whole gas flow",
                               location=_where("oven.exhaust.nmp", air < 0))
    return Gas(air, nmp, air * water_per_air, temp_C + KELVIN)


def mix_gases(a: Gas, b: Gas) -> Gas:
    """Adiabatic mixing of two gas streams."""
    amounts = (a.air + b.air, a.nmp + b.nmp, a.water + b.water)
    h = (a.enthalpy_kW() + b.enthalpy_kW()) * 3600.0
    return Gas(*amounts, props.gas_temperature(*amounts, h))


@dataclass
class GasSide:
    exhaust: Gas
    hx: condenser.StageResult
    stages: list[condenser.StageResult]
    stage_inlets: list[Gas]
    after_condensers: Gas
    clean: Gas  # after the polisher, before the split to stack and dryer
    desorb: Gas | None
    rotor_heater_kW: np.ndarray
    scrub: adsorption.ScrubberResult | None
    iterations: int


def _gas_side(params: LineParams, v: dict[str, np.ndarray], *, measured_intermediates: bool = False,
              fouling: Mapping[str, float] | None = None) -> GasSide:
    P = params.pressure_Pa
    exhaust = exhaust_gas(params, v["oven.exhaust.flow"], v["oven.exhaust.temp"],
                          v["oven.exhaust.nmp"])
    if "hx.outlet.temp" in v:
        T_hx = v["hx.outlet.temp"] + KELVIN
    else:
        T_hx = np.full_like(exhaust.T, params.hx_outlet_K)
    hotter = np.broadcast_to(T_hx > exhaust.T, exhaust.T.shape)
    if np.any(hotter):
        raise ValidationFailed("heat-recovery outlet is warmer than the exhaust",
                               location=_where("hx.outlet.temp", hotter))
    hx = condenser.cool(exhaust, T_hx, P)
    desorb: Gas | None = None
    if params.polisher == "rotor":
        # Start the desorption loop at its steady air flow (the stack returns exactly the exhaust
        # air); only its NMP is left to converge, and the condensers hold that near saturation.
        share = 1.0 / (params.rotor.concentration_ratio - 1.0)
        desorb = Gas(hx.gas.air * share, np.zeros_like(hx.gas.nmp), hx.gas.water * share,
                     np.full_like(hx.gas.T, params.rotor.desorption_outlet_temperature_K))
    previous: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    iterations = 0
    for _ in range(_RECYCLE_ITERATIONS):
        iterations += 1
        gas = hx.gas if desorb is None else mix_gases(hx.gas, desorb)
        stages, inlets = [], []
        for s in params.condensers:
            tag = f"{s.name}.coolant.temp"
            T_c = v[tag] + KELVIN
            _coolant_check(tag, T_c, gas.T)
            inlets.append(gas)
            f = None if fouling is None else fouling.get(s.name)
            res = condenser.condense(gas, s, T_c, P, f)
            stages.append(res)
            gas = res.gas
            measured = f"{s.name}.outlet.temp"
            if measured_intermediates and measured in v:
                T_m = np.minimum(v[measured] + KELVIN, inlets[-1].T)
                gas = condenser.cool(inlets[-1], T_m, P).gas
        after = gas
        heater = np.zeros_like(after.air)
        scrub = None
        if params.polisher == "rotor" and desorb is not None:
            r = params.rotor
            rr = adsorption.rotor(after, efficiency=r.adsorption_efficiency,
                                  concentration_ratio=r.concentration_ratio,
                                  outlet_T=r.desorption_outlet_temperature_K,
                                  heat_ratio=r.adsorption_heat_ratio)
            clean, heater = rr.stack, rr.heater_kW
            new = rr.desorb
            scale_w = np.maximum(exhaust.water, 1e-6 * exhaust.total)
            residual = np.maximum(np.abs(new.nmp - desorb.nmp) / np.maximum(exhaust.nmp, 1e-30),
                                  np.abs(new.water - desorb.water) / np.maximum(scale_w, 1e-30))
            if bool(np.all(residual <= _RECYCLE_TOLERANCE)):
                desorb = new
                break
            # Wegstein's acceleration of the loop's NMP and water (the air is already exact).
            x = (desorb.nmp, desorb.water)
            g = (new.nmp, new.water)
            nxt = g
            if previous is not None:
                nxt = tuple(_wegstein(xi, gi, xp, gp) for xi, gi, xp, gp in
                            zip(x, g, previous[:2], previous[2:], strict=True))
            previous = (*x, *g)
            desorb = Gas(new.air, nxt[0], nxt[1], new.T)
            continue
        if params.polisher == "scrubber":
            sc = params.scrubber
            scrub = adsorption.scrubber(after, efficiency=sc.removal_efficiency,
                                        bleed_fraction=sc.bleed_nmp_mass_fraction,
                                        pump_kW_per_1000=sc.pump_kW_per_1000_Nm3_h, P=P)
            clean = scrub.stack
        else:
            clean = after
        break
    return GasSide(exhaust, hx, stages, inlets, after, clean, desorb, heater, scrub, iterations)


def _wegstein(x: np.ndarray, g: np.ndarray, x_prev: np.ndarray, g_prev: np.ndarray) -> np.ndarray:
    """Next guess of a fixed point x = g(x) from two evaluations (bounded Wegstein step)."""
    dx = x - x_prev
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(np.abs(dx) > 0, (g - g_prev) / np.where(np.abs(dx) > 0, dx, 1.0), 0.0)
        q = np.clip(slope / (slope - 1.0), -5.0, 0.0)
    return np.maximum(q * x + (1.0 - q) * g, 0.0)


# ----------------------------------------------------------------------------- balance

@dataclass(frozen=True)
class Balance:
    """Steady state of the unit for each hour (arrays) or one hour (0-d arrays)."""

    inputs: dict[str, dict[str, np.ndarray]]  # stream -> species -> kg/h
    outputs: dict[str, dict[str, np.ndarray]]
    enthalpy_in_kW: dict[str, np.ndarray]  # stream enthalpies and heat supplied
    enthalpy_out_kW: dict[str, np.ndarray]  # stream enthalpies and heat removed
    electricity_kW: dict[str, np.ndarray]
    heat_kW: dict[str, np.ndarray]  # bought heat (steam, heater)
    tags: dict[str, np.ndarray]  # predicted values, tags.toml units
    indicators: dict[str, np.ndarray]
    recycle_iterations: int = 0
    notes: list[str] = field(default_factory=list)

    def species_in(self, species: str) -> np.ndarray:
        return sum(s[species] for s in self.inputs.values())

    def species_out(self, species: str) -> np.ndarray:
        return sum(s[species] for s in self.outputs.values())

    def closure(self) -> dict[str, float]:
        """Largest relative imbalance (|in - out| / in) of each species and of energy.

        Energy is compared on the enthalpy scale of the streams (ideal gas at 25 degC = 0) plus the
        heat supplied and removed; its denominator is the total heat supplied and removed.
        """
        out: dict[str, float] = {}
        for sp in SPECIES:
            i, o = self.species_in(sp), self.species_out(sp)
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = np.where(i > 0, np.abs(i - o) / np.where(i > 0, i, 1.0), np.abs(o))
            out[sp] = float(np.max(rel))
        e_in = sum(self.enthalpy_in_kW.values())
        e_out = sum(self.enthalpy_out_kW.values())
        scale = sum(np.abs(x) for x in self.enthalpy_in_kW.values()) + sum(
            np.abs(x) for x in self.enthalpy_out_kW.values())
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(scale > 0, np.abs(e_in - e_out) / np.where(scale > 0, scale, 1.0), 0.0)
        out["energy"] = float(np.max(rel))
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: floats for one hour, lists for many."""
        def conv(x: Any) -> Any:
            if isinstance(x, dict):
                return {k: conv(v) for k, v in x.items()}
            a = np.asarray(x, dtype=float)
            if a.ndim == 0:
                f = float(a)
                return None if f != f else f
            return [None if y != y else float(y) for y in a.ravel()]
        return {"inputs": conv(self.inputs), "outputs": conv(self.outputs),
                "enthalpy_in_kW": conv(self.enthalpy_in_kW),
                "enthalpy_out_kW": conv(self.enthalpy_out_kW),
                "electricity_kW": conv(self.electricity_kW), "heat_kW": conv(self.heat_kW),
                "tags": conv(self.tags), "indicators": conv(self.indicators),
                "closure": self.closure(), "recycle_iterations": self.recycle_iterations,
                "notes": list(self.notes)}


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def simulate(params: LineParams, conditions: Mapping[str, Any] | Any) -> Balance:
    """Steady-state mass and energy balance of the line for the measured hour(s)."""
    v = _as_arrays(conditions)
    _check(v, required_tags(params))
    gs = _gas_side(params, v)
    P = params.pressure_Pa
    u = params.utilities

    # Air leaving: split to the dryer and the stack.
    r = params.recirculation
    stack, returned = gs.clean.scaled(1.0 - r), gs.clean.scaled(r)
    T_shape = gs.exhaust.T

    # Crude: every condensate plus the scrubber bleed, mixed adiabatically.
    crude = gs.hx.condensate
    for st in gs.stages:
        crude = crude.plus(st.condensate)
    if gs.scrub is not None:
        crude = crude.plus(gs.scrub.bleed)
    dist = distillation.purify(crude, params.dehydration, params.rectification)

    inputs = {"exhaust": gs.exhaust.kg_h()}
    e_in = {"exhaust": gs.exhaust.enthalpy_kW(),
            "reboilers": dist.reboiler_kW,
            "rotor_heater": np.broadcast_to(gs.rotor_heater_kW, T_shape.shape).astype(float)}
    e_out = {"stack": stack.enthalpy_kW(), "returned_to_dryer": returned.enthalpy_kW(),
             "product": dist.product.enthalpy_kW(), "water_cut": dist.water_cut.enthalpy_kW(),
             "purge": dist.purge.enthalpy_kW(), "heat_recovery": gs.hx.duty_kW,
             "distillation_condensers": dist.condenser_kW}
    for s, st in zip(params.condensers, gs.stages, strict=True):
        e_out[f"{s.name}_coolant"] = st.duty_kW
    if gs.scrub is not None:
        inputs["scrubber_water"] = gs.scrub.makeup_water.kg_h()
        e_in["scrubber_water"] = gs.scrub.makeup_water.enthalpy_kW()
        e_out["scrubber_heat"] = gs.scrub.heat_removed_kW
    outputs = {"stack": stack.kg_h(), "returned_to_dryer": returned.kg_h(),
               "product": dist.product.kg_h(), "water_cut": dist.water_cut.kg_h(),
               "purge": dist.purge.kg_h()}

    # Utilities.
    actual_m3_s = gs.exhaust.total * props.R * gs.exhaust.T / P * 1000.0 / 3600.0
    fans = actual_m3_s * u.fan_pressure_rise_Pa / u.fan_efficiency / 1000.0
    pairs = list(zip(params.condensers, gs.stages, strict=True))
    chilled = sum((st.duty_kW for s, st in pairs if s.chilled), np.zeros_like(fans))
    tower_load = sum((st.duty_kW for s, st in pairs if not s.chilled), np.zeros_like(fans))
    chiller = chilled / u.chiller_cop
    tower_load = tower_load + chilled + chiller + dist.condenser_kW
    electricity = {"fans": fans, "chiller": chiller,
                   "cooling_tower": tower_load * u.cooling_water_kW_per_kW}
    heat = {"distillation": dist.reboiler_kW}
    rotor_heater = np.broadcast_to(gs.rotor_heater_kW, fans.shape).astype(float)
    if params.polisher == "rotor":
        bucket = heat if params.rotor.heater_energy == "heat" else electricity
        bucket["rotor_heater"] = rotor_heater
    if gs.scrub is not None:
        electricity["scrubber_pump"] = gs.scrub.pump_kW

    nmp_in = inputs["exhaust"]["nmp"]
    net_in = nmp_in - outputs["returned_to_dryer"]["nmp"]
    product_nmp = outputs["product"]["nmp"]
    elec_total = sum(electricity.values())
    heat_total = sum(heat.values())
    indicators = {
        "nmp_in_kg_h": nmp_in,
        "nmp_net_in_kg_h": net_in,
        "crude_nmp_kg_h": crude.nmp * mw("nmp"),
        "capture_rate": _ratio(crude.nmp * mw("nmp"), net_in),
        "recovery_rate": _ratio(product_nmp, net_in),
        "condensers_single_pass_removal": 1 - _ratio(gs.after_condensers.nmp, gs.hx.gas.nmp + (
            gs.desorb.nmp if gs.desorb is not None else 0.0)),
        "stack_nmp_kg_h": outputs["stack"]["nmp"],
        "stack_nmp_mg_Nm3": stack.nmp_mg_Nm3(),
        "condenser_outlet_saturation_ppm": props.saturation_ppm(props.NMP,
                                                                gs.after_condensers.T, P),
        "crude_water_wt_pct": 100 * crude.water_mass_fraction(),
        "product_purity_wt_pct": dist.purity_wt_pct,
        "product_water_ppm": dist.water_ppm,
        "electricity_kW": elec_total,
        "heat_kW": heat_total,
        "specific_energy_kWh_per_kg": _ratio(elec_total + heat_total, product_nmp),
        "specific_heat_kWh_per_kg": _ratio(heat_total, product_nmp),
        "specific_electricity_kWh_per_kg": _ratio(elec_total, product_nmp),
        "heat_recovered_kW": gs.hx.duty_kW,
        "dehydration_minimum_stages": dist.minimum_stages,
        "dehydration_relative_volatility": dist.relative_volatility,
    }
    tags = {
        "nmp.feed": net_in,
        "hx.outlet.temp": gs.hx.gas.T - KELVIN,
        "cond.outlet.nmp": gs.after_condensers.nmp_mg_Nm3(),
        "stack.nmp": stack.nmp_mg_Nm3(),
        "stack.flow": stack.normal_m3_h,
        "crude.flow": crude.mass_kg_h(),
        "crude.water": 100 * crude.water_mass_fraction(),
        "product.flow": dist.product.mass_kg_h(),
        "product.purity": dist.purity_wt_pct,
        "product.water": dist.water_ppm,
        "power.fans": fans,
        "power.chiller": chiller,
        "steam.distillation": dist.reboiler_kW,
        "heat.rotor": rotor_heater,
    }
    for s, st in zip(params.condensers, gs.stages, strict=True):
        tags[f"{s.name}.outlet.temp"] = st.gas.T - KELVIN
    if params.polisher == "rotor":
        tags["rotor.desorb.temp"] = np.full_like(fans,
                                                 params.rotor.desorption_temperature_K - KELVIN)
    notes = []
    if params.polisher == "none":
        notes.append("no polisher: the stack carries what the last condenser leaves (saturation)")
    return Balance(inputs, outputs, e_in, e_out, electricity, heat, tags, indicators,
                   gs.iterations, notes)


def expected_outlet(params: LineParams, conditions: Mapping[str, Any] | Any, *,
                    measured_intermediates: bool = True) -> dict[str, np.ndarray]:
    """Soft sensor: what a clean unit would show for these measured inputs.

    Needs the exhaust flow, temperature and NMP and each stage's coolant temperature; uses the
    measured ``hx.outlet.temp`` and (with ``measured_intermediates``) each stage's measured
    outlet temperature as the next stage's inlet, so each coil is judged on its own. Values are
    floats or arrays (one per sample); returns tag -> expected value in tags.toml units:
    ``<stage>.outlet.temp``, ``cond.outlet.nmp`` and ``stack.nmp``. Fouling is taken as zero
    (the clean coil): the residual measured - expected is the fouling signal.
    """
    v = _as_arrays(conditions)
    _check(v, required_tags(params))
    clean = {s.name: 0.0 for s in params.condensers}
    gs = _gas_side(params, v, measured_intermediates=measured_intermediates, fouling=clean)
    out = {f"{s.name}.outlet.temp": st.gas.T - KELVIN for s, st in zip(params.condensers, gs.stages,
                                                                     strict=True)}
    out["cond.outlet.nmp"] = gs.after_condensers.nmp_mg_Nm3()
    out["stack.nmp"] = gs.clean.nmp_mg_Nm3()
    return out
