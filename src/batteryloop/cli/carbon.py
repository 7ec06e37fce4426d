"""Carbon commands: footprint per kWh by stage, avoided emissions, claim check, plant inventory."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from batteryloop.cli.common import console, emit, guarded
from batteryloop.errors import ValidationFailed

JSON = Annotated[bool, typer.Option("--json", help="machine-readable output")]
GRID = Annotated[Optional[str], typer.Option(
    "--grid", help="electricity mix of the plant: a code (CN, EU, US, DE, FR...), a country name or "
                   "kg CO2e/kWh; default from carbon/data/processes.toml")]
FACTORS = Annotated[Optional[Path], typer.Option(
    "--factors", help="a factor file of the shape of carbon/data/factors.toml laid over the shipped one")]

app = typer.Typer(help="Carbon: footprint per kWh by life-cycle stage, avoided emissions, claims, "
                       "the plant's ISO 14064 inventory.", no_args_is_help=True)


def _pairs(values: list[str] | None, option: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for raw in values or []:
        key, sep, value = raw.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError
            out[key.strip()] = float(value)
        except ValueError:
            raise ValidationFailed(f"expected NAME=NUMBER, got '{raw}'", location=option) from None
    return out


def _factors(path: Path | None) -> Any:
    from batteryloop.carbon.factors import load

    return load(path) if path else None


def _stage_table(title: str, d: dict[str, Any]) -> Table:
    table = Table("stage", "per kWh of capacity", "per kWh over service life", title=title)
    life = d["per_kwh_service_life"]
    for key, name in d["stages"].items():
        table.add_row(name, f"{d['per_kwh_capacity'][key]:.2f}", f"{life[key]:.4f}")
    table.add_row("[bold]total[/bold]", f"[bold]{d['per_kwh_capacity']['total']:.2f}[/bold]",
                  f"[bold]{life['total']:.4f}[/bold]")
    return table


def _render_footprint(d: dict[str, Any]) -> None:
    console.print(_stage_table(f"{d['chemistry']} ({d['pack_type']}), grid {d['grid']['code']} "
                               f"{d['grid']['kg_per_kwh']:.3f} kg/kWh, {d['route']} recycling; kg CO2e", d))
    c2g = d["cradle_to_gate_per_kwh_capacity"]
    console.print(f"cradle-to-gate: pack {c2g['pack']:.1f}, cell {c2g['cell']:.1f} kg CO2e/kWh; service "
                  f"life {d['kwh_over_life_per_kwh_capacity']:.0f} kWh per kWh ({d['limited_by']})",
                  highlight=False)
    hot = Table("stage", "process", "input", "kg CO2e/kWh", title="largest contributions")
    for h in d["hotspots"]:
        hot.add_row(h["stage"], h["process"], h["input"], f"{h['kg_co2e_per_kwh']:.2f}")
    console.print(hot)
    pub = Table("study", "scope", "range", "this figure", "inside", title="published cradle-to-gate footprints")
    for p in d["published"]:
        pub.add_row(p["label"], p["scope"], f"{p['low']:.0f}-{p['high']:.0f}", f"{p['value']:.1f}",
                    "yes" if p["inside"] else "[red]no[/red]")
    console.print(pub)
    est = d["estimates"]
    console.print(f"{est['share_of_gross_emissions']:.0%} of gross emissions rest on estimated factors: "
                  f"{', '.join(est['factors'])}", highlight=False, soft_wrap=True)


@app.command("footprint")
@guarded
def footprint_(
    chemistry: Annotated[str, typer.Argument(help="NMC811, LFP, NMC622... (recycling/data/composition.toml)")],
    grid: GRID = None,
    cam_grid: Annotated[Optional[str], typer.Option(help="grid of cathode making (default: --grid)")] = None,
    pack_type: Annotated[Optional[str], typer.Option(help="module_liquid, module_passive, cell_to_pack")] = None,
    route: Annotated[Optional[str], typer.Option(help="recycling route at end of life")] = None,
    recycled: Annotated[Optional[list[str]], typer.Option(
        "--recycled", help="recycled content R1 as MATERIAL=SHARE, e.g. nickel_sulfate=0.16; repeatable")] = None,
    service_km: Annotated[Optional[float], typer.Option(help="vehicle service life, km")] = None,
    pack_kwh: Annotated[Optional[float], typer.Option(help="pack energy, kWh")] = None,
    cycle_life: Annotated[Optional[float], typer.Option(help="cycle life, full equivalent cycles")] = None,
    factors: FACTORS = None,
    as_json: JSON = False,
) -> None:
    """The carbon footprint per kWh by life-cycle stage (EU battery rules)."""
    from batteryloop.carbon.footprint import footprint

    fp = footprint(chemistry, grid=grid, cam_grid=cam_grid, pack_type=pack_type, route=route,
                   recycled_content=_pairs(recycled, "--recycled"),
                   service={"service_km": service_km, "pack_kwh": pack_kwh, "cycle_life_fec": cycle_life},
                   factors=_factors(factors))
    emit(fp.as_dict(), as_json, _render_footprint)


def _render_avoided(d: dict[str, Any]) -> None:
    rec = d["recycling"]
    table = Table("method", "credit", "recycling burden", "net avoided", "share of cradle-to-gate",
                  title=f"recycling {rec['chemistry']} ({rec['route']}), kg CO2e per kWh")
    for key in ("substitution", "cff"):
        r = rec[key]
        table.add_row(r["method"], f"{r['gross_credit']:.1f}", f"{r['recycling_burden']:.1f}",
                      f"{r['net_avoided']:.1f}", f"{r['share_of_cradle_to_gate']:.0%}")
    console.print(table)
    reuse = d["reuse"]
    console.print(f"reuse: {reuse['net_avoided']:.1f} kg CO2e per kWh of original capacity "
                  f"({reuse['displaced_share']:.0%} of a new {reuse['displaced']} battery, "
                  f"{reuse['avoided_production']:.1f} avoided - {reuse['repurposing_burden']:.1f} repurposing)",
                  highlight=False, soft_wrap=True)


@app.command("avoided")
@guarded
def avoided_(
    chemistry: str,
    grid: GRID = None,
    route: Annotated[Optional[str], typer.Option(help="recycling route")] = None,
    soh: Annotated[Optional[float], typer.Option("--soh", help="SOH at reuse, 0-1")] = None,
    second_life_fec: Annotated[Optional[float], typer.Option(help="second-life full equivalent cycles")] = None,
    factors: FACTORS = None,
    as_json: JSON = False,
) -> None:
    """Avoided emissions per kWh of recycling and of reuse."""
    from batteryloop.carbon.avoided import recycling_avoided, reuse_avoided

    fs = _factors(factors)
    data = {"recycling": recycling_avoided(chemistry, grid=grid, route=route, factors=fs),
            "reuse": reuse_avoided(chemistry, soh_at_reuse=soh, second_life_fec=second_life_fec,
                                   grid=grid, factors=fs)}
    emit(data, as_json, _render_avoided)


def _render_claim(d: dict[str, Any]) -> None:
    c = d["claim"]
    colour = "red" if d["verdict"] == "inconsistent" else "green"
    console.print(f"claim: {c['saving_t_per_kwh']:g} t CO2e per kWh = {c['share']:.0%} -> implied footprint "
                  f"{d['implied_baseline_kg_per_kwh']:.0f} kg CO2e/kWh; published "
                  f"{d['published']['low']:.0f}-{d['published']['high']:.0f}: [{colour}]{d['verdict']}[/{colour}]",
                  highlight=False, soft_wrap=True)
    for f in d["flags"]:
        console.print(f"  - {f['message']}", highlight=False, soft_wrap=True)
    table = Table("chemistry", "cradle-to-gate", "saving (substitution)", "share", "saving (CFF)", "share",
                  title="this engine, kg CO2e per kWh")
    for m in d["model"]:
        table.add_row(m["chemistry"], f"{m['cradle_to_gate']:.1f}", f"{m['substitution_net_avoided']:.1f}",
                      f"{m['substitution_share']:.0%}", f"{m['cff_net_avoided']:.1f}", f"{m['cff_share']:.0%}")
    console.print(table)


@app.command("claim")
@guarded
def claim_(
    saving_t: Annotated[Optional[float], typer.Option("--saving-t", help="claimed saving, t CO2e per kWh (default 0.19)")] = None,
    share: Annotated[Optional[float], typer.Option(help="claimed share, 0-1 (default 0.24)")] = None,
    low: Annotated[Optional[float], typer.Option(help="footprint range to test against, low (kg CO2e/kWh)")] = None,
    high: Annotated[Optional[float], typer.Option(help="footprint range, high")] = None,
    grid: GRID = None,
    as_json: JSON = False,
) -> None:
    """Check a recycling-saving claim against published footprints and this engine."""
    from batteryloop.carbon.avoided import check_claim

    if (low is None) != (high is None):
        raise ValidationFailed("give both --low and --high, or neither", location="--low/--high")
    rng = (low, high) if low is not None and high is not None else None
    emit(check_claim(saving_t, share, footprint_range=rng, grid=grid), as_json, _render_claim)


def _plant_day(hourly: Path, day: str | None) -> Any:
    """The factory's own inventory period (energy, NMP make-up and emitted) for one production day."""
    from batteryloop.cli.factory import kpis_of_file
    from batteryloop.factory.inventory import factory_periods

    days = [p for p in factory_periods(kpis_of_file(hourly, None, None, None, None), "day")
            if day is None and p.hours_complete == p.hours or p.label == day]
    if not days:
        raise ValidationFailed(f"{hourly}: no {'production day ' + day if day else 'complete day'} "
                               "in these hours", location="--day")
    return days[-1]


def _read_period(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(2, "no such file", str(path))
    text = path.read_text("utf-8")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValidationFailed(str(exc), location=str(path)) from None
    if not isinstance(data, dict):
        raise ValidationFailed("must be an object of activity data", location=str(path))
    return data


def _fuels(values: list[str] | None) -> list[dict[str, Any]]:
    out = []
    for raw in values or []:
        name, sep, rest = raw.partition("=")
        parts = rest.split()
        try:
            if not sep or len(parts) != 2:
                raise ValueError
            out.append({"fuel": name.strip(), "amount": float(parts[0]), "unit": parts[1]})
        except ValueError:
            raise ValidationFailed(f"expected FUEL='AMOUNT UNIT' (e.g. natural_gas='120 GJ'), got '{raw}'",
                                   location="--fuel") from None
    return out


def _contracts(values: list[str] | None) -> list[dict[str, Any]]:
    out = []
    for raw in values or []:
        kwh, sep, factor = raw.partition("@")
        try:
            if not sep:
                raise ValueError
            out.append({"kwh": float(kwh), "kg_per_kwh": float(factor), "instrument": "contract"})
        except ValueError:
            raise ValidationFailed(f"expected KWH@KG_PER_KWH, got '{raw}'", location="--contract") from None
    return out


def _render_inventory(d: dict[str, Any]) -> None:
    table = Table("cat.", "scope", "source", "activity", "factor", "kg CO2e",
                  title=f"GHG inventory {d['period'] or ''} (ISO 14064-1 categories)")
    for cat in d["categories"].values():
        for r in cat["lines"]:
            table.add_row(r["category"], str(r["scope"]), r["source"], f"{r['activity']:,.1f} {r['unit']}",
                          f"{r['factor']:.4g} {r['factor_unit']}", f"{r['kg_co2e']:,.1f}")
    console.print(table)
    s = d["scopes"]
    console.print(f"scope 1 {s['scope_1']:,.0f}; scope 2 {s['scope_2_location_based']:,.0f} (location) / "
                  f"{s['scope_2_market_based']:,.0f} (market); scope 3 {s['scope_3']:,.0f} kg CO2e",
                  highlight=False)
    m = d["memo"]
    if m["nmp_emitted_kg"]:
        console.print(f"memo: {m['nmp_emitted_kg']:.1f} kg NMP emitted to air (NMVOC); indirect CO2 "
                      f"{m['nmvoc_indirect_co2_kg']:.1f} kg {'included' if m['nmvoc_indirect_co2_included'] else 'not included'}",
                      highlight=False)
    for note in d["notes"]:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)


@app.command("inventory")
@guarded
def inventory_(
    period: Annotated[Optional[Path], typer.Option(help="activity data (JSON or TOML): electricity_kwh, heat_kwh, nmp_makeup_kg, nmp_emitted_kg, label")] = None,
    plant_hours: Annotated[Optional[Path], typer.Option(help="the NMP unit's hourly tag means (CSV or Parquet, as `plant kpi` reads): the period's energy and NMP come from them")] = None,
    day: Annotated[Optional[str], typer.Option(help="with --plant-hours: the production day, YYYY-MM-DD (default: the last complete one)")] = None,
    electricity_kwh: Annotated[Optional[float], typer.Option()] = None,
    heat_kwh: Annotated[Optional[float], typer.Option(help="heat or steam used, kWh")] = None,
    heat_on_site: Annotated[bool, typer.Option("--heat-on-site", help="heat is made on site (list its fuel)")] = False,
    grid: GRID = None,
    fuel: Annotated[Optional[list[str]], typer.Option("--fuel", help="FUEL='AMOUNT UNIT', e.g. natural_gas='120 GJ'; repeatable")] = None,
    gas: Annotated[Optional[list[str]], typer.Option("--gas", help="process/fugitive gas as GAS=KG, e.g. HFC-134a=2.5; repeatable")] = None,
    contract: Annotated[Optional[list[str]], typer.Option("--contract", help="market-based: KWH@KG_PER_KWH; repeatable")] = None,
    residual_mix: Annotated[Optional[float], typer.Option(help="residual mix, kg CO2e/kWh")] = None,
    nmp_makeup_kg: Annotated[Optional[float], typer.Option()] = None,
    nmp_emitted_kg: Annotated[Optional[float], typer.Option()] = None,
    nmp_oxidised_kg: Annotated[float, typer.Option(help="NMP burnt in a thermal oxidiser on site, kg")] = 0.0,
    include_voc_co2: Annotated[bool, typer.Option("--include-voc-co2", help="count indirect CO2 of NMP emitted to air")] = False,
    material: Annotated[Optional[list[str]], typer.Option("--material", help="purchased MATERIAL=KG; repeatable")] = None,
    factors: FACTORS = None,
    as_json: JSON = False,
) -> None:
    """The plant's GHG inventory: ISO 14064-1 categories, scopes 1, 2 (location/market), 3."""
    from batteryloop.carbon.ghg_inventory import inventory

    if period and plant_hours:
        raise ValidationFailed("give --period or --plant-hours, not both", location="--plant-hours")
    data = inventory(
        _read_period(period) if period else _plant_day(plant_hours, day) if plant_hours else None,
        electricity_kwh=electricity_kwh, grid=grid,
        heat_kwh=heat_kwh, heat_source="on_site" if heat_on_site else "purchased",
        fuels=_fuels(fuel), process_emissions=_pairs(gas, "--gas"), contracts=_contracts(contract),
        residual_mix_kg_per_kwh=residual_mix, nmp_makeup_kg=nmp_makeup_kg, nmp_emitted_kg=nmp_emitted_kg,
        nmp_oxidised_kg=nmp_oxidised_kg, include_voc_indirect_co2=include_voc_co2 or None,
        materials=_pairs(material, "--material"), factors=_factors(factors))
    emit(data, as_json, _render_inventory)


@app.command("grids")
@guarded
def grids_(factors: FACTORS = None, as_json: JSON = False) -> None:
    """The electricity mixes the factor set knows, with their sources."""
    from batteryloop.carbon.factors import load

    rows = [f.as_dict() for f in load(factors).electricity.values()]

    def render(data: list[dict[str, Any]]) -> None:
        table = Table("code", "name", "kg CO2e/kWh", "verified", "source")
        for r in data:
            table.add_row(r["name"], r.get("label", ""), f"{r['value']:.3f}", "yes" if r["verified"] else "no",
                          r["source"])
        console.print(table)

    emit(rows, as_json, render)
