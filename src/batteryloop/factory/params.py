"""The recovery line's parameters (``nmp_line.toml``) as checked, typed values.

A plant passes its own file, or overrides single values by dotted path
(``{"condensers.cond2.fouling": 0.5, "polisher.kind": "none"}``); every value is checked and a bad
one names its path.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batteryloop.errors import ValidationFailed
from batteryloop.factory.condenser import Stage
from batteryloop.factory.distillation import Dehydration, Rectification
from batteryloop.factory.facts import load, load_file

KELVIN = 273.15
POLISHERS = ("rotor", "scrubber", "none")
HEATER_ENERGY = ("heat", "electricity")


@dataclass(frozen=True)
class Rotor:
    adsorption_efficiency: float
    concentration_ratio: float
    desorption_temperature_K: float
    desorption_outlet_temperature_K: float
    adsorption_heat_ratio: float
    heater_energy: str


@dataclass(frozen=True)
class Scrubber:
    removal_efficiency: float
    bleed_nmp_mass_fraction: float
    pump_kW_per_1000_Nm3_h: float


@dataclass(frozen=True)
class Utilities:
    fan_pressure_rise_Pa: float
    fan_efficiency: float
    chiller_cop: float
    cooling_water_kW_per_kW: float


@dataclass(frozen=True)
class LineParams:
    """Everything :func:`batteryloop.factory.unit.simulate` needs besides the measured hour."""

    name: str
    pressure_Pa: float
    design_flow_Nm3_h: float
    design_temperature_K: float
    design_nmp_mg_Nm3: float
    humidity_g_per_kg: float
    hx_outlet_K: float
    fresh_air_K: float
    condensers: tuple[Stage, ...]
    recirculation: float
    polisher: str
    rotor: Rotor
    scrubber: Scrubber
    dehydration: Dehydration
    rectification: Rectification
    utilities: Utilities
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def stage(self, name: str) -> Stage:
        for s in self.condensers:
            if s.name == name:
                return s
        raise ValidationFailed(f"no condenser stage named {name!r}", location="condensers")

    def override(self, changes: Mapping[str, Any]) -> LineParams:
        """A copy with values replaced by dotted path; condenser stages are addressed by name."""
        raw = copy.deepcopy(self.raw)
        for path, value in changes.items():
            _set(raw, path, value)
        return parse(raw)


def _set(raw: dict[str, Any], path: str, value: Any) -> None:
    if isinstance(value, dict | list):
        raise ValidationFailed("a parameter override is a single value", location=path)
    parts = path.split(".")
    node: Any = raw
    for part in parts[:-1]:
        if isinstance(node, list):
            match = [s for s in node if s.get("name") == part]
            if not match:
                raise ValidationFailed("no such condenser stage", location=path)
            node = match[0]
            continue
        if not isinstance(node, dict) or part not in node:
            raise ValidationFailed("no such parameter", location=path)
        node = node[part]
    if not isinstance(node, dict) or parts[-1] not in node or isinstance(node[parts[-1]],
                                                                          dict | list):
        raise ValidationFailed("no such parameter", location=path)
    node[parts[-1]] = value


def _num(table: Mapping[str, Any], key: str, where: str, *, lo: float | None = None,
         hi: float | None = None, lo_open: bool = False) -> float:
    loc = f"{where}.{key}" if where else key
    if key not in table:
        raise ValidationFailed("missing", location=loc)
    v = table[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValidationFailed(f"must be a number, got {v!r}", location=loc)
    v = float(v)
    if v != v:
        raise ValidationFailed("must be a number, got NaN", location=loc)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ValidationFailed(f"must be {'>' if lo_open else '>='} {lo}, got {v}", location=loc)
    if hi is not None and v > hi:
        raise ValidationFailed(f"must be <= {hi}, got {v}", location=loc)
    return v


def _flag(table: Mapping[str, Any], key: str, where: str) -> bool:
    v = table.get(key, False)
    if not isinstance(v, bool):
        raise ValidationFailed(f"must be true or false, got {v!r}", location=f"{where}.{key}")
    return v


def _table(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    t = raw.get(key)
    if not isinstance(t, Mapping):
        raise ValidationFailed("missing table", location=key)
    return t


def parse(raw: Mapping[str, Any]) -> LineParams:
    """Check and type a parsed ``nmp_line.toml``."""
    conv, ex, hx = _table(raw, "conventions"), _table(raw, "exhaust"), _table(raw, "heat_recovery")
    design_flow = _num(ex, "flow_Nm3_h", "exhaust", lo=0, lo_open=True)
    stages_raw = raw.get("condensers")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise ValidationFailed("at least one condenser stage is needed", location="condensers")
    stages = []
    for i, s in enumerate(stages_raw):
        if not isinstance(s, Mapping):
            raise ValidationFailed("each stage is a table", location=f"condensers[{i}]")
        name = s.get("name")
        if not isinstance(name, str) or not name:
            raise ValidationFailed("each stage needs a name", location=f"condensers[{i}].name")
        where = f"condensers.{name}"
        stages.append(Stage(
            name=name,
            coolant_temperature_K=_num(s, "coolant_temperature_C", where, lo=-30, hi=80) + KELVIN,
            ntu=_num(s, "ntu", where, lo=0, lo_open=True),
            fouling=_num(s, "fouling", where, lo=0),
            design_flow_Nm3_h=design_flow,
            chilled=_flag(s, "chilled", where)))
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ValidationFailed("two stages share a name", location="condensers")
    polisher = _table(raw, "polisher").get("kind")
    if polisher not in POLISHERS:
        raise ValidationFailed(f"must be one of {', '.join(POLISHERS)}, got {polisher!r}",
                               location="polisher.kind")
    ro, sc = _table(raw, "rotor"), _table(raw, "scrubber")
    heater = ro.get("heater_energy")
    if heater not in HEATER_ENERGY:
        raise ValidationFailed(f"must be one of {', '.join(HEATER_ENERGY)}, got {heater!r}",
                               location="rotor.heater_energy")
    if float(ro.get("desorption_outlet_temperature_C", 0)) >= float(
            ro.get("desorption_temperature_C", 0)):
        raise ValidationFailed("the desorption air leaves colder than the heater makes it",
                               location="rotor.desorption_outlet_temperature_C")
    dist = _table(raw, "distillation")
    de, re_ = _table(dist, "dehydration"), _table(dist, "rectification")
    ut = _table(raw, "utilities")
    return LineParams(
        name=str(raw.get("name", "")),
        pressure_Pa=_num(conv, "operating_pressure_Pa", "conventions", lo=1e4, hi=2e5),
        design_flow_Nm3_h=design_flow,
        design_temperature_K=_num(ex, "temperature_C", "exhaust", lo=0, hi=250) + KELVIN,
        design_nmp_mg_Nm3=_num(ex, "nmp_mg_Nm3", "exhaust", lo=0),
        humidity_g_per_kg=_num(ex, "humidity_g_per_kg", "exhaust", lo=0, hi=100),
        hx_outlet_K=_num(hx, "outlet_temperature_C", "heat_recovery", lo=0, hi=250) + KELVIN,
        fresh_air_K=_num(hx, "fresh_air_temperature_C", "heat_recovery", lo=-30, hi=60) + KELVIN,
        condensers=tuple(stages),
        recirculation=_num(_table(raw, "recirculation"), "fraction", "recirculation", lo=0,
                           hi=0.95),
        polisher=str(polisher),
        rotor=Rotor(
            adsorption_efficiency=_num(ro, "adsorption_efficiency", "rotor", lo=0, hi=1),
            concentration_ratio=_num(ro, "concentration_ratio", "rotor", lo=1, lo_open=True),
            desorption_temperature_K=_num(ro, "desorption_temperature_C", "rotor", lo=50,
                                          hi=280) + KELVIN,
            desorption_outlet_temperature_K=_num(ro, "desorption_outlet_temperature_C", "rotor",
                                                 lo=0, hi=280) + KELVIN,
            adsorption_heat_ratio=_num(ro, "adsorption_heat_ratio", "rotor", lo=0, hi=5),
            heater_energy=str(heater)),
        scrubber=Scrubber(
            removal_efficiency=_num(sc, "removal_efficiency", "scrubber", lo=0, hi=1),
            bleed_nmp_mass_fraction=_num(sc, "bleed_nmp_mass_fraction", "scrubber", lo=0,
                                         hi=1, lo_open=True),
            pump_kW_per_1000_Nm3_h=_num(sc, "pump_kW_per_1000_Nm3_h", "scrubber", lo=0)),
        dehydration=Dehydration(
            pressure_Pa=_num(de, "pressure_kPa", "distillation.dehydration", lo=1, hi=200) * 1e3,
            theoretical_stages=_num(de, "theoretical_stages", "distillation.dehydration", lo=1),
            reflux_ratio=_num(de, "reflux_ratio", "distillation.dehydration", lo=0, lo_open=True),
            reflux_to_minimum=_num(de, "reflux_to_minimum", "distillation.dehydration", lo=1,
                                   lo_open=True),
            water_cut_nmp_mass_fraction=_num(de, "water_cut_nmp_mass_fraction",
                                             "distillation.dehydration", lo=0, hi=0.5,
                                             lo_open=True)),
        rectification=Rectification(
            pressure_Pa=_num(re_, "pressure_kPa", "distillation.rectification", lo=1, hi=200) * 1e3,
            reflux_ratio=_num(re_, "reflux_ratio", "distillation.rectification", lo=0),
            heavies_purge_fraction=_num(re_, "heavies_purge_fraction",
                                        "distillation.rectification", lo=0, hi=1),
            product_temperature_K=_num(re_, "product_temperature_C", "distillation.rectification",
                                       lo=0, hi=150) + KELVIN),
        utilities=Utilities(
            fan_pressure_rise_Pa=_num(ut, "fan_pressure_rise_Pa", "utilities", lo=0),
            fan_efficiency=_num(ut, "fan_efficiency", "utilities", lo=0, hi=1, lo_open=True),
            chiller_cop=_num(ut, "chiller_cop", "utilities", lo=0, lo_open=True),
            cooling_water_kW_per_kW=_num(ut, "cooling_water_kW_per_kW", "utilities", lo=0)),
        raw=copy.deepcopy(dict(raw)),
    )


def load_line(path: str | Path | None = None) -> LineParams:
    """The shipped representative line, or a plant's own file."""
    return parse(load("nmp_line") if path is None else load_file(path))
