"""Economics of a batch: revenue from recovered materials, costs, margin per tonne; and
reuse-then-recycle against recycle-now for a battery of a given SOH.

Prices and cost parameters come from ``data/prices.toml`` (EverBatt's 2019 defaults, cited), or a
file of the user's, with single entries overridable; every line of the result shows quantity x
unit price so that the margin can be checked by hand.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from chemicals.elements import molecular_weight, simple_formula_parser

from batteryloop.errors import ValidationFailed
from batteryloop.recycling import _data, composition
from batteryloop.recycling.routes import Route

FILE = "prices.toml"
CATHODE_CONSTITUENTS = ("li", "ni", "co", "mn", "fe", "p", "cathode_oxygen")
KM_PER_MILE = 1.609344
KG_PER_SHORT_TON = 907.18474
MJ_PER_KWH = 3.6


def prices(path: str | Path | None = None, overrides: dict[str, float] | None = None) -> dict[str, Any]:
    """The price table: this package's file, or ``path``; ``overrides`` like
    ``{"products.co.usd_per_kg": 33.0, "labour.hours_per_tonne": 5}``."""
    if path is None:
        table = _data.load(FILE)
        label = _data.label(FILE)
    else:
        p = Path(path)
        try:
            table = tomllib.loads(p.read_text("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ValidationFailed(f"not valid TOML: {exc}", location=str(p)) from None
        label = str(p)
    for key, value in (overrides or {}).items():
        node = table
        *heads, leaf = key.split(".")
        for h in heads:
            if not isinstance(node.get(h), dict):
                raise ValidationFailed(f"no section '{h}' in the price table", location=f"overrides['{key}']")
            node = node[h]
        if leaf not in node or isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise ValidationFailed("unknown entry or not a finite number", location=f"overrides['{key}']")
        node[leaf] = float(value)
    table["_label"] = label
    return table


def unit_price(table: dict[str, Any], constituent: str) -> float | None:
    """USD per kg of a recovered constituent, or None when the table does not price it."""
    spec = table.get("products", {}).get(constituent)
    if spec is None:
        return None
    if "usd_per_kg" in spec:
        return float(spec["usd_per_kg"])
    formula = dict(simple_formula_parser(spec["compound"]))
    element = constituent.capitalize()
    share = formula[element] * molecular_weight({element: 1}) / molecular_weight(formula)
    return float(spec["usd_per_kg_compound"]) / share


def revenue(table: dict[str, Any], products_kg: dict[str, float], route: Route,
            cathode_kg: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Lines of revenue. A route that regenerates the cathode (its cathode constituents share one
    product name) sells ``cathode_kg`` per chemistry at the cathode price instead."""
    lines = []
    direct = bool(cathode_kg) and route.fate("co").product == route.fate("li").product \
        and route.fate("li").product is not None
    for c, kg in products_kg.items():
        if kg <= 0 or (direct and c in CATHODE_CONSTITUENTS):
            continue
        price = unit_price(table, c)
        lines.append({"item": c, "kg": kg, "usd_per_kg": price,
                      "usd": kg * price if price is not None else 0.0,
                      "source": table["products"].get(c, {}).get("source", "not priced")})
    if direct:
        for chem, kg in (cathode_kg or {}).items():
            price = float(table["cathode"][composition.canonical(chem)])
            lines.append({"item": f"cathode {chem}", "kg": kg, "usd_per_kg": price,
                          "usd": kg * price, "source": table["cathode"]["source"]})
    return lines


def costs(table: dict[str, Any], route: Route, *, cell_input_kg: float,
          input_kg: float) -> list[dict[str, Any]]:
    """Lines of cost: reagents and energy per kg of cell-derived input, labour and transport per
    tonne of all input."""
    lines = []
    for name, kg_per_kg in route.reagents_kg_per_kg.items():
        kg = kg_per_kg * cell_input_kg
        price = float(table["reagents"][name])
        lines.append({"item": f"reagent {name}", "quantity": kg, "unit": "kg",
                      "usd_per_unit": price, "usd": kg * price, "source": table["reagents"]["source"]})
    energy = table["energy"]
    per_unit = {
        "electricity": (1 / MJ_PER_KWH, "kWh", energy["electricity_usd_per_kwh"]),
        "natural_gas": (1 / energy["natural_gas_mj_per_1000_ft3"], "1000 ft3",
                        energy["natural_gas_usd_per_1000_ft3"]),
        "diesel": (1 / energy["diesel_mj_per_litre"], "L", energy["diesel_usd_per_litre"]),
    }
    for name, mj_per_kg in route.energy_mj_per_kg.items():
        factor, unit, price = per_unit[name]
        qty = mj_per_kg * cell_input_kg * factor
        lines.append({"item": f"energy {name}", "quantity": qty, "unit": unit,
                      "usd_per_unit": float(price), "usd": qty * float(price),
                      "mj": mj_per_kg * cell_input_kg, "source": energy["source"]})
    gal = route.water_gal_per_kg * cell_input_kg
    if gal:
        lines.append({"item": "water", "quantity": gal, "unit": "gal",
                      "usd_per_unit": float(energy["water_usd_per_gal"]),
                      "usd": gal * float(energy["water_usd_per_gal"]), "source": energy["source"]})
    labour = table["labour"]
    hours = float(labour["hours_per_tonne"]) * input_kg / 1000
    lines.append({"item": "labour", "quantity": hours, "unit": "h",
                  "usd_per_unit": float(labour["usd_per_hour"]),
                  "usd": hours * float(labour["usd_per_hour"]), "source": labour["source"]})
    transport = table["transport"]
    ton_miles = input_kg / KG_PER_SHORT_TON * float(transport["km"]) / KM_PER_MILE
    lines.append({"item": "transport", "quantity": ton_miles, "unit": "ton-mile",
                  "usd_per_unit": float(transport["usd_per_ton_mile"]),
                  "usd": ton_miles * float(transport["usd_per_ton_mile"]),
                  "source": transport["source"]})
    return lines


def batch(table: dict[str, Any], route: Route, *, products_kg: dict[str, float], input_kg: float,
          cell_input_kg: float, cathode_kg: dict[str, float] | None = None) -> dict[str, Any]:
    """Revenue, costs and margin (total and per tonne of input) of one batch."""
    rev = revenue(table, products_kg, route, cathode_kg)
    cost = costs(table, route, cell_input_kg=cell_input_kg, input_kg=input_kg)
    total_rev = math.fsum(r["usd"] for r in rev)
    total_cost = math.fsum(c["usd"] for c in cost)
    margin = total_rev - total_cost
    return {
        "currency": table.get("currency", "USD"), "as_of": table.get("as_of"),
        "price_table": table["_label"], "revenue": rev, "costs": cost,
        "revenue_usd": total_rev, "cost_usd": total_cost, "margin_usd": margin,
        "input_t": input_kg / 1000,
        "margin_usd_per_t": margin / (input_kg / 1000) if input_kg > 0 else None,
    }


def reuse_vs_recycle(table: dict[str, Any], *, rated_energy_kwh: float, soh_pct: float,
                     recycle_now_margin_usd: float) -> dict[str, Any]:
    """Reuse-then-recycle against recycle-now for one battery.

    recycle-now earns today's recycling margin; reuse earns remaining energy (rated x SOH) x the
    second-life price, less repurposing (per rated kWh), then the same recycling margin
    discounted over the second life. Below the second-life SOH floor, reuse is not offered.
    """
    for name, v in (("rated_energy_kwh", rated_energy_kwh), ("soh_pct", soh_pct)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValidationFailed(f"{v!r} is impossible (need a finite number above 0)", location=name)
    if soh_pct > 150:
        raise ValidationFailed(f"SOH {soh_pct} % is impossible", location="soh_pct")
    sl = table["second_life"]
    years, rate = float(sl["years"]), float(sl["discount_rate"])
    discount = (1 + rate) ** -years
    remaining_kwh = rated_energy_kwh * soh_pct / 100
    second_life = remaining_kwh * float(sl["usd_per_kwh"])
    repurposing = rated_energy_kwh * float(sl["repurposing_usd_per_kwh"])
    later = recycle_now_margin_usd * discount
    reuse_total = second_life - repurposing + later
    eligible = soh_pct >= float(sl["min_soh_pct"])
    gain = (100 * (reuse_total - recycle_now_margin_usd) / abs(recycle_now_margin_usd)
            if recycle_now_margin_usd else None)
    return {
        "rated_energy_kwh": rated_energy_kwh, "soh_pct": soh_pct, "eligible_for_reuse": eligible,
        "recycle_now": {"margin_usd": recycle_now_margin_usd},
        "reuse_then_recycle": {
            "remaining_kwh": remaining_kwh, "second_life_revenue_usd": second_life,
            "repurposing_cost_usd": repurposing, "recycling_later_usd": later,
            "discount_factor": discount, "total_usd": reuse_total,
        },
        "better": ("reuse_then_recycle" if eligible and reuse_total > recycle_now_margin_usd
                   else "recycle_now"),
        "difference_usd": reuse_total - recycle_now_margin_usd,
        "gain_pct_of_recycle_now": gain,
        "parameters": {k: v for k, v in sl.items() if k != "anchor"},
        "published_anchor": sl.get("anchor"),
    }
