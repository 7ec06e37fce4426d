"""Avoided emissions of recycling and of reuse per kWh, and a check of published saving claims.

Two ways to count what recycling saves, both shown because claims rarely say which they use:

- substitution (avoided burden): every kg recovered replaces a kg of virgin material, minus the
  recycling burden; this is the end-of-life stage with A = 0 for every material;
- CFF (what the EU battery footprint lets a maker declare): the same with (1 - A) of the credit,
  A from PEF Annex C (0.2 for metals); this is the footprint's end-of-life stage.

:func:`check_claim` turns a claim "recycling saves X t CO2e per kWh, Y %" into the footprint it
implies (X / Y) and sets it beside the published cradle-to-gate footprints and this engine's own
figures: the issue's 0.19 t / 24 % implies 792 kg CO2e/kWh, seven to thirteen times the published
61-106, and a saving larger than the whole footprint of making the battery.
"""

from __future__ import annotations

import math
from typing import Any

from batteryloop.carbon import _data, cff, published
from batteryloop.carbon.factors import FactorSet, load
from batteryloop.carbon.footprint import EOL, MJ_PER_KWH, Footprint, default_grid, footprint
from batteryloop.errors import ValidationFailed


def _eol_parts(fp: Footprint) -> tuple[float, float]:
    """(credits, burdens) of the end-of-life stage, kg CO2e per kWh: credits negative."""
    credit = math.fsum(c.kg_co2e for c in fp.result.contributions if c.stage == EOL and c.kg_co2e < 0)
    burden = math.fsum(c.kg_co2e for c in fp.result.contributions if c.stage == EOL and c.kg_co2e >= 0)
    return credit, burden


def recycling_avoided(chemistry: str, *, factors: FactorSet | None = None, **options: Any) -> dict[str, Any]:
    """What recycling one kWh of a chemistry's pack avoids, both ways, and its share of the
    cradle-to-gate footprint. ``options`` are :func:`footprint`'s (grid, route, ...)."""
    fs = factors or load()
    cfp = footprint(chemistry, factors=fs, **options)
    materials = [row["material"] for row in cfp.cff_table]
    zero_a = {m: 0.0 for m in materials}
    sub_options = dict(options) | {"a_factors": zero_a}
    sfp = footprint(chemistry, factors=fs, **sub_options)
    s_credit, s_burden = _eol_parts(sfp)
    c_credit, c_burden = _eol_parts(cfp)
    base = cfp.cradle_to_gate
    substitution = -(s_credit + s_burden)
    credited = -(c_credit + c_burden)
    return {
        "chemistry": cfp.chemistry, "route": cfp.route, "grid": cfp.grid["code"], "unit": "kg CO2e per kWh of capacity",
        "substitution": {"gross_credit": -s_credit, "recycling_burden": s_burden, "net_avoided": substitution,
                         "share_of_cradle_to_gate": substitution / base if base else None,
                         "method": "every recovered kg replaces virgin material (A = 0)"},
        "cff": {"gross_credit": -c_credit, "recycling_burden": c_burden, "net_avoided": credited,
                "share_of_cradle_to_gate": credited / base if base else None,
                "method": "Circular Footprint Formula, A from PEF Annex C (the EU declaration)"},
        "cradle_to_gate": base,
        "recovered": [{"material": r["material"], "kg_per_kwh": r["content_kg_per_kwh"] * r["R2"],
                       "R2": r["R2"], "A": r["A"]} for r in cfp.cff_table if r["R2"] > 0],
        "per_kwh_service_life": credited / cfp.service_life.energy_per_kwh()[0],
    }


def reuse_avoided(chemistry: str, *, soh_at_reuse: float | None = None, second_life_fec: float | None = None,
                  grid: str | float | None = None, factors: FactorSet | None = None,
                  **overrides: Any) -> dict[str, Any]:
    """What a second life of one kWh of retired pack avoids: part of a new stationary battery.

    avoided = FP_new x E_second / E_new - repurposing burden, per kWh of original capacity, with
    E_second = SOH x FEC_2 x (1 + end ratio)/2 and E_new = FEC_new x (1 + EoL SOH)/2.
    """
    fs = factors or load()
    grid = default_grid() if grid is None else grid
    spec = dict(_data.load("processes.toml")["reuse"])
    for key, value in overrides.items():
        if key not in spec or key in ("source", "convention"):
            raise ValidationFailed(f"unknown reuse parameter (known: {', '.join(k for k in spec if k not in ('source', 'convention'))})",
                                   location=f"reuse.{key}")
        spec[key] = value
    if soh_at_reuse is not None:
        spec["soh_at_reuse"] = soh_at_reuse
    if second_life_fec is not None:
        spec["second_life_fec"] = second_life_fec
    soh = cff._share(spec["soh_at_reuse"], "soh_at_reuse")
    end_ratio = cff._share(spec["second_life_end_ratio"], "second_life_end_ratio")
    new_eol = cff._share(spec["displaced_end_of_life_soh"], "displaced_end_of_life_soh")
    for name in ("second_life_fec", "displaced_fec"):
        v = spec[name]
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValidationFailed(f"must be > 0, got {v!r}", location=f"reuse.{name}")
    if soh == 0:
        raise ValidationFailed("a battery with no capacity left cannot be reused", location="soh_at_reuse")
    new = footprint(spec["displaced_chemistry"], grid=grid, factors=fs)
    e_second = soh * float(spec["second_life_fec"]) * (1 + end_ratio) / 2
    e_new = float(spec["displaced_fec"]) * (1 + new_eol) / 2
    displaced_share = e_second / e_new
    avoided_production = new.cradle_to_gate * displaced_share
    materials = {m: float(kg) * fs.material(m).value for m, kg in spec["repurposing_materials_kg_per_kwh"].items()}
    test = float(spec["repurposing_test_kwh_per_kwh"]) * fs.grid(grid).value
    burden = math.fsum(materials.values()) + test
    return {
        "chemistry": chemistry, "displaced": spec["displaced_chemistry"], "grid": fs.grid(grid).name,
        "unit": "kg CO2e per kWh of original capacity",
        "second_life_kwh_per_kwh": e_second, "displaced_battery_kwh_per_kwh": e_new,
        "displaced_share": displaced_share, "displaced_cradle_to_gate": new.cradle_to_gate,
        "avoided_production": avoided_production,
        "repurposing_burden": burden, "repurposing_detail": materials | {"testing electricity": test},
        "net_avoided": avoided_production - burden,
        "parameters": {k: spec[k] for k in ("soh_at_reuse", "second_life_fec", "second_life_end_ratio",
                                            "displaced_fec", "displaced_end_of_life_soh")},
        "source": spec["source"],
        "note": f"testing energy counted as {spec['repurposing_test_kwh_per_kwh']} kWh x grid factor; "
                f"{MJ_PER_KWH} MJ per kWh",
    }


def check_claim(saving_t_per_kwh: float | None = None, share: float | None = None, *,
                footprint_range: tuple[float, float] | None = None,
                chemistries: tuple[str, ...] = ("NMC811", "LFP"), grid: str | float | None = None,
                factors: FactorSet | None = None) -> dict[str, Any]:
    """Is "recycling saves X t CO2e per kWh, i.e. Y %" consistent with known footprints?

    The claim implies a baseline footprint of X / Y per kWh. It is set beside (1) the published
    cradle-to-gate ranges (or ``footprint_range``), (2) the claimed saving against the whole
    footprint, and (3) this engine's recycling savings for ``chemistries``.
    """
    defaults = published.claim_defaults()
    x = float(defaults["saving_t_per_kwh"] if saving_t_per_kwh is None else saving_t_per_kwh)
    y = float(defaults["share"] if share is None else share)
    if not (math.isfinite(x) and x > 0):
        raise ValidationFailed(f"the claimed saving must be > 0 t CO2e per kWh, got {x!r}", location="saving_t_per_kwh")
    if not (math.isfinite(y) and 0 < y <= 1):
        raise ValidationFailed(f"the claimed share must be in (0, 1] (24 % is 0.24), got {y!r}", location="share")
    saving_kg = x * 1000.0
    implied = saving_kg / y
    if footprint_range is not None:
        low, high = (float(v) for v in footprint_range)
        if not (0 < low <= high):
            raise ValidationFailed(f"must be 0 < low <= high, got {footprint_range!r}", location="footprint_range")
        ranges = [{"study": "given", "label": "footprint range given", "low": low, "high": high,
                   "scope": "pack", "verified": False, "source": "given by the caller"}]
    else:
        ranges = []
        for key, s in published.studies().items():
            ranges.append({"study": key, "label": s["label"], "low": float(s["low"]), "high": float(s["high"]),
                           "scope": s["scope"], "verified": bool(s.get("verified", False)), "source": s["source"]})
    lows = [r["low"] for r in ranges]
    highs = [r["high"] for r in ranges]
    low, high = min(lows), max(highs)
    fs = factors or load()
    grid = default_grid() if grid is None else grid
    model = []
    for chem in chemistries:
        rec = recycling_avoided(chem, grid=grid, factors=fs)
        model.append({"chemistry": rec["chemistry"], "cradle_to_gate": rec["cradle_to_gate"],
                      "substitution_net_avoided": rec["substitution"]["net_avoided"],
                      "substitution_share": rec["substitution"]["share_of_cradle_to_gate"],
                      "cff_net_avoided": rec["cff"]["net_avoided"],
                      "cff_share": rec["cff"]["share_of_cradle_to_gate"]})
    flags = []
    if implied > high:
        flags.append({"code": "implied_baseline_above_published",
                      "message": f"{x:g} t at {y:.0%} implies a footprint of {implied:.0f} kg CO2e/kWh, "
                                 f"{implied / high:.1f} to {implied / low:.1f} times the published "
                                 f"cradle-to-gate range {low:.0f}-{high:.0f} kg CO2e/kWh"})
    elif implied < low:
        flags.append({"code": "implied_baseline_below_published",
                      "message": f"{x:g} t at {y:.0%} implies a footprint of {implied:.0f} kg CO2e/kWh, "
                                 f"below the published range {low:.0f}-{high:.0f}"})
    if saving_kg > high:
        flags.append({"code": "saving_exceeds_footprint",
                      "message": f"the claimed saving, {saving_kg:.0f} kg CO2e/kWh, is larger than the whole "
                                 f"published cradle-to-gate footprint (at most {high:.0f}): recycling cannot "
                                 "save more than making the battery emits"})
    best = max(m["substitution_net_avoided"] for m in model) if model else None
    if best is not None and saving_kg > best:
        flags.append({"code": "saving_above_model",
                      "message": f"this engine's largest recycling saving (substitution, "
                                 f"{', '.join(chemistries)}) is {best:.0f} kg CO2e/kWh; the claim is "
                                 f"{saving_kg / best:.1f} times that"})
    return {
        "claim": {"saving_t_per_kwh": x, "share": y, "saving_kg_per_kwh": saving_kg},
        "implied_baseline_kg_per_kwh": implied,
        "published": {"low": low, "high": high, "studies": ranges},
        "consistent_saving_at_claimed_share_kg_per_kwh": [y * low, y * high],
        "claimed_saving_as_share_of_published": [saving_kg / high, saving_kg / low],
        "model": model,
        "flags": flags,
        "verdict": "inconsistent" if any(f["code"] in ("implied_baseline_above_published",
                                                       "implied_baseline_below_published",
                                                       "saving_exceeds_footprint") for f in flags)
        else "consistent",
        "unit": "kg CO2e per kWh of battery capacity",
    }
