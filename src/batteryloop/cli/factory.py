"""Plant commands: the NMP recovery unit's model, its KPIs and its daily report."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from batteryloop.cli.common import console, emit, guarded
from batteryloop.errors import ValidationFailed

JSON = Annotated[bool, typer.Option("--json", help="machine-readable output")]
LINE = Annotated[Optional[Path], typer.Option(
    "--line", help="the line's parameters (shape of factory/data/nmp_line.toml); "
                   "default: the shipped one")]
SHIFTS = Annotated[Optional[str], typer.Option(
    "--shifts", help="shift starts, e.g. 'A=06:00,B=14:00,C=22:00' (the default) or "
                     "'07:00,19:00'")]
STACK = Annotated[Optional[str], typer.Option(
    "--stack-limit", help="which stack limit of factory/data/limits.toml applies "
                          "(default: its default)")]
WORKPLACE = Annotated[Optional[str], typer.Option(
    "--workplace-limit", help="which workplace limit of factory/data/limits.toml applies")]

app = typer.Typer(help="Plant: the NMP solvent-recovery unit's model, KPIs and daily report.",
                  no_args_is_help=True)


def _pairs(values: list[str] | None, option: str, numeric: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw in values or []:
        key, sep, value = raw.partition("=")
        if not sep or not key.strip():
            raise ValidationFailed(f"expected NAME=VALUE, got '{raw}'", location=option)
        v: Any = value.strip()
        try:
            v = float(v)
        except ValueError:
            if numeric:
                raise ValidationFailed(f"not a number: '{raw}'", location=option) from None
            v = {"true": True, "false": False}.get(v.lower(), v)
        out[key.strip()] = v
    return out


def _render_model(d: dict[str, Any]) -> None:
    ind = d["indicators"]
    t = Table("indicator", "value", title="NMP recovery unit, steady state")
    rows = [("NMP in (kg/h)", ind["nmp_in_kg_h"], "{:.1f}"),
            ("capture rate", ind["capture_rate"], "{:.2%}"),
            ("recovery rate (product / NMP in)", ind["recovery_rate"], "{:.2%}"),
            ("stack NMP (mg/Nm3)", ind["stack_nmp_mg_Nm3"], "{:.1f}"),
            ("crude water (wt%)", ind["crude_water_wt_pct"], "{:.2f}"),
            ("product purity (wt%)", ind["product_purity_wt_pct"], "{:.3f}"),
            ("product water (ppm)", ind["product_water_ppm"], "{:.0f}"),
            ("electricity (kW)", ind["electricity_kW"], "{:.1f}"),
            ("heat (kW)", ind["heat_kW"], "{:.1f}"),
            ("energy per kg recovered (kWh/kg)", ind["specific_energy_kWh_per_kg"], "{:.3f}")]
    for name, value, fmt in rows:
        t.add_row(name, "-" if value is None else fmt.format(value))
    console.print(t)
    tags = Table("tag", "model", title="predicted tags")
    for k, v in d["tags"].items():
        tags.add_row(k, "-" if v is None else f"{v:.3f}")
    console.print(tags)
    console.print("balance closure (relative): " + ", ".join(
        f"{k} {v:.1e}" for k, v in d["closure"].items()), highlight=False)


@app.command("model")
@guarded
def model_(
    tag: Annotated[Optional[list[str]], typer.Option(
        "--tag", help="a measured input as TAG=VALUE in the tag's unit, e.g. "
                      "oven.exhaust.nmp=6000; repeatable; unset inputs take the line's design "
                      "point")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="override a line parameter as PATH=VALUE, e.g. polisher.kind=none or "
                      "condensers.cond2.fouling=0.5; repeatable")] = None,
    line: LINE = None,
    as_json: JSON = False,
) -> None:
    """Steady-state mass and energy balance of the recovery unit for one hour."""
    from batteryloop.factory import unit
    from batteryloop.factory.params import load_line

    params = load_line(line)
    changes = _pairs(set_, "--set", numeric=False)
    if changes:
        params = params.override(changes)
    conditions = unit.design_conditions(params) | _pairs(tag, "--tag", numeric=True)
    balance = unit.simulate(params, conditions)
    emit({"line": params.name, "conditions": conditions, **balance.as_dict()}, as_json,
         _render_model)


def kpis_of_file(hourly: Path, shifts: str | None, stack: str | None, workplace: str | None,
          line: Path | None) -> Any:
    from batteryloop.factory import kpi
    from batteryloop.factory.hourly import read_hourly
    from batteryloop.factory.limits import load_limits
    from batteryloop.factory.params import load_line

    pattern = kpi.ShiftPattern.parse(shifts) if shifts else kpi.ShiftPattern()
    return kpi.compute(read_hourly(hourly), limits=load_limits(stack=stack, workplace=workplace),
                       shifts=pattern, rotor_heater_energy=load_line(line).rotor.heater_energy)


def _render_kpi(d: dict[str, Any]) -> None:
    t = Table("period", "recovery", "purity wt%", "water ppm", "stack mg/Nm3", "kWh/kg",
              f"saved {d['currency']}", "CO2e kg", "hours", title="NMP recovery KPIs")
    for r in d["periods"]:
        def f(key: str, fmt: str, row: dict[str, Any] = r) -> str:
            return "-" if row.get(key) is None else fmt.format(row[key])
        t.add_row(r["period"], f("recovery_rate", "{:.2%}"), f("purity_wt_pct", "{:.3f}"),
                  f("water_ppm", "{:.0f}"), f("stack_mean_mg_Nm3", "{:.1f}"),
                  f("energy_kWh_per_kg", "{:.3f}"), f("cost_saved", "{:,.0f}"),
                  f("co2e_avoided_kg", "{:,.0f}"), f"{r['hours_complete']}/{r['hours']}")
    console.print(t)
    for e in d["exceedances"]:
        console.print(f"[red]exceeded[/red] {e['kind']} {e['period']}", highlight=False)


@app.command("kpi")
@guarded
def kpi_(
    hourly: Annotated[Path, typer.Argument(help="hourly tag means (CSV or Parquet) with 'time'")],
    by: Annotated[str, typer.Option("--by", help="day, shift or hour")] = "day",
    shifts: SHIFTS = None,
    stack_limit: STACK = None,
    workplace_limit: WORKPLACE = None,
    line: LINE = None,
    as_json: JSON = False,
) -> None:
    """Recovery rate, purity, emissions against the limits, energy, cost saved and CO2e avoided."""
    import polars as pl

    if by not in ("day", "shift", "hour"):
        raise ValidationFailed("must be day, shift or hour", location="--by")
    result = kpis_of_file(hourly, shifts, stack_limit, workplace_limit, line)
    frame = {"day": result.days, "shift": result.shifts, "hour": result.hourly}[by]
    label = {"day": pl.col("day").cast(pl.Utf8),
             "shift": pl.col("day").cast(pl.Utf8) + pl.lit(" ") + pl.col("shift"),
             "hour": pl.col("time").dt.strftime("%Y-%m-%d %H:%M")}[by]
    if by == "hour":
        frame = frame.with_columns(hours=pl.lit(1),
                                   hours_complete=pl.col("complete").cast(pl.Int32))
    rows = frame.with_columns(period=label).drop([c for c in ("time", "start", "day")
                                                  if c in frame.columns]).to_dicts()
    emit({"by": by, "currency": result.factors.currency, "periods": rows,
          "exceedances": result.exceedances, "limits": result.limits.as_dict(),
          "notes": result.notes}, as_json, _render_kpi)


@app.command("report")
@guarded
def report_(
    hourly: Annotated[Path, typer.Argument(help="hourly tag means (CSV or Parquet) with 'time'")],
    day: Annotated[str, typer.Option("--day", help="production day, YYYY-MM-DD")],
    pdf: Annotated[Optional[Path], typer.Option(
        "--pdf", help="also write the PDF here")] = None,
    shifts: SHIFTS = None,
    stack_limit: STACK = None,
    workplace_limit: WORKPLACE = None,
    line: LINE = None,
    as_json: JSON = False,
) -> None:
    """The daily report of one production day (JSON, and PDF with --pdf)."""
    from batteryloop.factory import report
    from batteryloop.factory.params import load_line

    try:
        which = date.fromisoformat(day)
    except ValueError:
        raise ValidationFailed(f"not a date YYYY-MM-DD: '{day}'", location="--day") from None
    result = kpis_of_file(hourly, shifts, stack_limit, workplace_limit, line)
    data = report.daily(result, which, line=load_line(line).name)
    if pdf is not None:
        pdf.write_bytes(report.daily_pdf(data))
    emit(data, as_json, lambda d: console.print(
        f"{d['day']}: recovery {d['day_kpis']['recovery_rate']:.2%}, "
        f"{'compliant' if d['compliant'] else str(len(d['exceedances'])) + ' exceedance(s)'}"
        + (f"; PDF written to {pdf}" if pdf else ""), highlight=False))
