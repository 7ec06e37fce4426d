"""Emission factors with their sources: ``data/factors.toml``, optionally overridden by a user's file.

A footprint is only as good as the factors under it, so every factor keeps its source and two
flags: ``verified`` (checked here against a stored copy of the source) and ``estimate`` (no open
source was found). Reports carry the flags through, so a user sees which part of a result rests on
estimates. A user's file of the same shape replaces entries one by one (a plant's own supplier
factors, a licensed database); the result names the files and their SHA-256.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from chemicals.elements import molecular_weight, simple_formula_parser

from batteryloop.errors import NotFound, ValidationFailed

SHIPPED = "carbon/data/factors.toml"
_SECTIONS = ("material", "electricity", "fuel", "transport")


@dataclass(frozen=True)
class Factor:
    """One emission factor: kg CO2e per unit of ``per``."""

    name: str
    value: float
    per: str
    source: str
    verified: bool = False
    estimate: bool = False
    convention: bool = False
    recycled: float | None = None
    formula: str | None = None
    note: str | None = None
    label: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "value": self.value, "per": self.per, "source": self.source,
               "verified": self.verified, "estimate": self.estimate,
               "convention": self.convention}
        if self.recycled is not None:
            out["recycled"] = self.recycled
        if self.formula:
            out["formula"] = self.formula
        if self.note:
            out["note"] = self.note
        if self.label:
            out["label"] = self.label
        return out


@dataclass(frozen=True)
class Fuel:
    """A fuel burned on site: IPCC-style factors per TJ of net calorific value."""

    name: str
    co2_kg_per_tj: float
    ch4_kg_per_tj: float
    n2o_kg_per_tj: float
    ncv_mj_per_kg: float
    upstream_kg_co2e_per_mj: float
    source: str
    verified: bool

    def combustion_kg_co2e_per_mj(self, gwp: Mapping[str, float]) -> float:
        """Direct CO2e of burning 1 MJ (NCV): CO2 + GWP-weighted CH4 and N2O."""
        per_tj = self.co2_kg_per_tj + gwp["CH4"] * self.ch4_kg_per_tj + gwp["N2O"] * self.n2o_kg_per_tj
        return per_tj / 1e6

    def combustion_co2_kg_per_mj(self) -> float:
        return self.co2_kg_per_tj / 1e6


@dataclass(frozen=True)
class FactorSet:
    """All factors of one run, with where they came from."""

    materials: dict[str, Factor]
    electricity: dict[str, Factor]
    fuels: dict[str, Fuel]
    transport: dict[str, Factor]
    gwp: dict[str, float]
    origins: tuple[dict[str, str], ...] = field(default_factory=tuple)

    def material(self, name: str) -> Factor:
        try:
            return self.materials[name]
        except KeyError:
            raise NotFound(f"no emission factor for material '{name}'; known: "
                           f"{', '.join(sorted(self.materials))}") from None

    def grid(self, mix: str | float) -> Factor:
        """An electricity factor by code ('CN'), name ('China') or a number in kg CO2e/kWh."""
        if isinstance(mix, (int, float)) and not isinstance(mix, bool):
            return _custom_grid(float(mix))
        text = str(mix).strip()
        try:
            return _custom_grid(float(text))
        except ValueError:
            pass
        key = text.upper()
        if key in self.electricity:
            return self.electricity[key]
        for f in self.electricity.values():
            if f.label and f.label.lower() == text.lower():
                return f
        raise NotFound(f"no electricity mix '{mix}'; give a code ({', '.join(self.electricity)}), "
                       "a country name or a number in kg CO2e/kWh")

    def fuel(self, name: str) -> Fuel:
        try:
            return self.fuels[name]
        except KeyError:
            raise NotFound(f"no fuel '{name}'; known: {', '.join(sorted(self.fuels))}") from None

    def transport_mode(self, mode: str) -> Factor:
        try:
            return self.transport[mode]
        except KeyError:
            raise NotFound(f"no transport mode '{mode}'; known: {', '.join(sorted(self.transport))}") from None

    def heat_kg_co2e_per_mj(self, fuel: str = "natural_gas") -> float:
        """Burning a fuel for process heat, including its upstream if the factor file gives it."""
        f = self.fuel(fuel)
        return f.combustion_kg_co2e_per_mj(self.gwp) + f.upstream_kg_co2e_per_mj


def _custom_grid(value: float) -> Factor:
    if not math.isfinite(value) or value < 0:
        raise ValidationFailed(f"an electricity factor must be a number >= 0 kg CO2e/kWh, got {value}",
                               location="grid")
    return Factor(name="custom", value=value, per="kWh", source="given by the user",
                  verified=False, convention=True)


def _number(value: Any, where: str, *, minimum: float | None = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationFailed(f"must be a finite number, got {value!r}", location=where)
    if minimum is not None and value < minimum:
        raise ValidationFailed(f"must be >= {minimum:g}, got {value!r}", location=where)
    return float(value)


def _text(row: Mapping[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"needs a '{key}' (text)", location=where)
    return value


def _factor(name: str, row: Mapping[str, Any], where: str, value_key: str, per: str | None) -> Factor:
    if not isinstance(row, Mapping):
        raise ValidationFailed("must be a table", location=where)
    recycled = row.get("recycled")
    formula = row.get("formula")
    if formula is not None:
        try:
            molecular_weight(simple_formula_parser(str(formula)))
        except Exception:  # noqa: BLE001 - the parser raises several kinds on a bad formula
            raise ValidationFailed(f"formula '{formula}' is not a chemical formula",
                                   location=where) from None
    return Factor(
        name=name,
        value=_number(row.get(value_key), f"{where}.{value_key}"),
        per=per or _text(row, "per", where),
        source=_text(row, "source", where),
        verified=bool(row.get("verified", False)),
        estimate=bool(row.get("estimate", False)),
        convention=bool(row.get("convention", False)),
        recycled=None if recycled is None else _number(recycled, f"{where}.recycled"),
        formula=str(formula) if formula else None,
        note=row.get("note"),
        label=row.get("name"),
    )


def _fuel(name: str, row: Mapping[str, Any], where: str) -> Fuel:
    if not isinstance(row, Mapping):
        raise ValidationFailed("must be a table", location=where)
    return Fuel(
        name=name,
        co2_kg_per_tj=_number(row.get("co2_kg_per_tj"), f"{where}.co2_kg_per_tj"),
        ch4_kg_per_tj=_number(row.get("ch4_kg_per_tj"), f"{where}.ch4_kg_per_tj"),
        n2o_kg_per_tj=_number(row.get("n2o_kg_per_tj"), f"{where}.n2o_kg_per_tj"),
        ncv_mj_per_kg=_number(row.get("ncv_mj_per_kg"), f"{where}.ncv_mj_per_kg", minimum=1e-9),
        upstream_kg_co2e_per_mj=_number(row.get("upstream_kg_co2e_per_mj", 0.0),
                                        f"{where}.upstream_kg_co2e_per_mj"),
        source=_text(row, "source", where),
        verified=bool(row.get("verified", False)),
    )


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Entry-by-entry override: a user's [material.copper] replaces the shipped one whole."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for section, value in override.items():
        if section in _SECTIONS and isinstance(value, Mapping):
            merged = dict(out.get(section, {}))
            merged.update(value)
            out[section] = merged
        elif section == "gwp" and isinstance(value, Mapping):
            merged = dict(out.get("gwp", {}))
            merged.update(value)
            out["gwp"] = merged
        else:
            out[section] = value
    return out


def _build(raw: Mapping[str, Any], label: str, origins: tuple[dict[str, str], ...]) -> FactorSet:
    for section in (*_SECTIONS, "gwp"):
        if not isinstance(raw.get(section), Mapping):
            raise ValidationFailed(f"a factor file needs a [{section}] table", location=label)
    materials = {k: _factor(k, v, f"{label} [material.{k}]", "virgin", None)
                 for k, v in raw["material"].items()}
    electricity = {k.upper(): _factor(k.upper(), v, f"{label} [electricity.{k}]", "kg_per_kwh", "kWh")
                   for k, v in raw["electricity"].items()}
    fuels = {k: _fuel(k, v, f"{label} [fuel.{k}]") for k, v in raw["fuel"].items()}
    transport = {k: _factor(k, v, f"{label} [transport.{k}]", "kg_per_tkm", "tkm")
                 for k, v in raw["transport"].items()}
    gwp = {k: _number(v, f"{label} [gwp].{k}") for k, v in raw["gwp"].items()
           if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for gas in ("CO2", "CH4", "N2O"):
        if gas not in gwp:
            raise ValidationFailed(f"[gwp] needs {gas}", location=label)
    return FactorSet(materials, electricity, fuels, transport, gwp, origins)


def _read(text: str, label: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationFailed(str(exc), location=label) from None


@cache
def _shipped_text() -> str:
    return (files("batteryloop.carbon") / "data" / "factors.toml").read_text("utf-8")


@cache
def shipped() -> FactorSet:
    text = _shipped_text()
    origin = {"file": SHIPPED, "sha256": hashlib.sha256(text.encode()).hexdigest()}
    return _build(_read(text, SHIPPED), SHIPPED, (origin,))


def load(override: str | Path | Mapping[str, Any] | None = None) -> FactorSet:
    """The shipped factors, with a user's file (path or parsed mapping) laid over them."""
    if override is None:
        return shipped()
    base_text = _shipped_text()
    origins = [{"file": SHIPPED, "sha256": hashlib.sha256(base_text.encode()).hexdigest()}]
    if isinstance(override, Mapping):
        label, data = "factors override", dict(override)
        origins.append({"file": label, "sha256": hashlib.sha256(repr(sorted(data.items())).encode()).hexdigest()})
    else:
        path = Path(override)
        if not path.is_file():
            raise NotFound(f"{path}: no such factor file")
        text = path.read_text("utf-8")
        label, data = str(path), _read(text, str(path))
        origins.append({"file": label, "sha256": hashlib.sha256(text.encode()).hexdigest()})
    return _build(_merge(_read(base_text, SHIPPED), data), label, tuple(origins))


def formula_mass(formula: str) -> float:
    """Molar mass in g/mol from a formula (IUPAC atomic weights via ``chemicals``)."""
    return float(molecular_weight(simple_formula_parser(formula)))


def element_mass_fraction(formula: str, element: str) -> float:
    """Mass of ``element`` per mass of compound (0 when absent)."""
    atoms = simple_formula_parser(formula)
    symbol = element.capitalize()
    if symbol not in atoms:
        return 0.0
    return atoms[symbol] * float(molecular_weight({symbol: 1})) / formula_mass(formula)
