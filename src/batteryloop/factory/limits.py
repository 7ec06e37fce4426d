"""Workplace and stack limits and the prices and emission factors, from the data files.

Limits expressed as organic carbon (NMHC as C, total C) are turned into NMP with NMP's carbon
mass fraction from its formula (``chemicals``), so the KPIs compare like with like.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from batteryloop.errors import ValidationFailed
from batteryloop.factory import properties as props
from batteryloop.factory.facts import load, load_file


@cache
def nmp_carbon_fraction() -> float:
    """Mass fraction of carbon in NMP, from its formula."""
    from chemicals.elements import mass_fractions, simple_formula_parser
    from chemicals.identifiers import search_chemical

    formula = search_chemical(props.NMP).formula
    return float(mass_fractions(simple_formula_parser(formula))["C"])


@dataclass(frozen=True)
class Limits:
    stack_name: str
    stack_mg_Nm3: float  # as NMP, hourly mean
    stack_source: str
    stack_basis: str
    stack_limit_as_stated: float
    workplace_name: str
    workplace_twa_mg_m3: float | None
    workplace_short_term_mg_m3: float | None
    workplace_source: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _choose(section: dict[str, Any], name: str | None, where: str) -> tuple[str, dict[str, Any]]:
    key = name or section.get("default")
    table = section.get("limits", {})
    if key not in table:
        raise ValidationFailed(f"unknown limit {key!r}; known: {', '.join(table)}", location=where)
    return str(key), table[key]


def _num(t: dict[str, Any], key: str, where: str) -> float | None:
    v = t.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
        raise ValidationFailed(f"must be a positive number, got {v!r}", location=f"{where}.{key}")
    return float(v)


def load_limits(path: str | Path | None = None, *, stack: str | None = None,
                workplace: str | None = None) -> Limits:
    """The chosen (or default) stack and workplace limits, the stack one converted to NMP."""
    raw = load("limits") if path is None else load_file(path)
    s_name, s = _choose(raw.get("stack", {}), stack, "stack")
    w_name, w = _choose(raw.get("workplace", {}), workplace, "workplace")
    stated = _num(s, "hourly_mg_Nm3", f"stack.limits.{s_name}")
    if stated is None:
        raise ValidationFailed("missing", location=f"stack.limits.{s_name}.hourly_mg_Nm3")
    basis = s.get("basis", "nmp")
    if basis not in ("nmp", "carbon"):
        raise ValidationFailed(f"must be 'nmp' or 'carbon', got {basis!r}",
                               location=f"stack.limits.{s_name}.basis")
    as_nmp = stated / nmp_carbon_fraction() if basis == "carbon" else stated
    return Limits(
        stack_name=s_name, stack_mg_Nm3=as_nmp, stack_source=str(s.get("source", "")),
        stack_basis=str(basis), stack_limit_as_stated=stated,
        workplace_name=w_name,
        workplace_twa_mg_m3=_num(w, "twa_8h_mg_m3", f"workplace.limits.{w_name}"),
        workplace_short_term_mg_m3=_num(w, "short_term_mg_m3", f"workplace.limits.{w_name}"),
        workplace_source=str(w.get("source", "")))


@dataclass(frozen=True)
class Factors:
    currency: str
    nmp_price_per_kg: float
    nmp_co2e_kg_per_kg: float
    electricity_price_per_kWh: float
    electricity_co2e_kg_per_kWh: float
    heat_price_per_kWh: float
    heat_co2e_kg_per_kWh: float  # fuel CO2 / boiler efficiency
    sources: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def load_factors(path: str | Path | None = None) -> Factors:
    """Prices and emission factors (``factors.toml`` or a plant's own file)."""
    raw = load("factors") if path is None else load_file(path)

    def num(section: str, key: str) -> float:
        t = raw.get(section, {})
        v = t.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
            raise ValidationFailed(f"must be a number >= 0, got {v!r}", location=f"{section}.{key}")
        return float(v)

    eff = num("heat", "boiler_efficiency")
    if not 0 < eff <= 1:
        raise ValidationFailed(f"must be in (0, 1], got {eff}", location="heat.boiler_efficiency")
    src = {f"{sec}.{k}": str(v) for sec in ("nmp", "electricity", "heat")
           for k, v in raw.get(sec, {}).items() if k.endswith("source")}
    return Factors(
        currency=str(raw.get("currency", "")),
        nmp_price_per_kg=num("nmp", "price_per_kg"),
        nmp_co2e_kg_per_kg=num("nmp", "co2e_kg_per_kg"),
        electricity_price_per_kWh=num("electricity", "price_per_kWh"),
        electricity_co2e_kg_per_kWh=num("electricity", "co2e_kg_per_kWh"),
        heat_price_per_kWh=num("heat", "price_per_kWh"),
        heat_co2e_kg_per_kWh=num("heat", "fuel_co2_kg_per_kWh") / eff,
        sources=src)
