"""Recycling commands: composition, dismantling, batches, balance, compliance, economics,
certificates."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from batteryloop.cli.common import console, emit, guarded, unit_of_work
from batteryloop.errors import ValidationFailed

JSON = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ACTOR = Annotated[Optional[str], typer.Option("--actor", help="acting organisation (uid or name)")]

app = typer.Typer(help="Recycling: dismantle, batch, mass balance, compliance, economics, certificates.")
batch_app = typer.Typer(help="Recycling batches: create, outputs, show, close, certificate.")
app.add_typer(batch_app, name="batch")


def _pairs(items: list[str] | None, option: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise ValidationFailed(f"'{item}': expected KEY=NUMBER", location=option) from None
        if not sep:
            raise ValidationFailed(f"'{item}': expected KEY=NUMBER", location=option)
    return out


def _fraction(item: str) -> dict[str, Any]:
    """KIND=KG or KIND=KG:MATERIAL; the weight is checked by the service (missing, impossible)."""
    kind, sep, rest = item.partition("=")
    if not sep:
        raise ValidationFailed(f"'{item}': expected KIND=KG[:MATERIAL]", location="--fraction")
    kg, _, material = rest.partition(":")
    return {"fraction": kind.strip(), "mass_kg": kg.strip(), "material": material.strip() or None}


@app.command("composition")
@guarded
def composition_(chemistry: Annotated[Optional[str], typer.Argument(help="e.g. NMC811; none: list")] = None,
                 as_json: JSON = False) -> None:
    """Cell material content per kWh (and the pack breakdown) of a chemistry, with sources."""
    from batteryloop.recycling import composition

    if chemistry is None:
        emit({"chemistries": composition.chemistries(), "pack_types": composition.pack_types()},
             as_json, lambda d: console.print(", ".join(d["chemistries"])))
        return
    name = composition.canonical(chemistry)
    data = {"chemistry": name, "kg_per_kwh": composition.cell_content(name),
            "cell_kg_per_kwh": composition.cell_mass_per_kwh(name),
            "pack_type": composition.default_pack_type(name),
            "pack_breakdown": composition.pack_breakdown(name),
            "source": composition.source(name),
            "pack_source": composition.source(composition.default_pack_type(name))}

    def render(d: dict[str, Any]) -> None:
        table = Table("material", "kg/kWh")
        for k, v in d["kg_per_kwh"].items():
            table.add_row(k, f"{v:.4f}")
        console.print(table)
        console.print(f"cell: {d['cell_kg_per_kwh']:.3f} kg/kWh; source: {d['source']}", highlight=False)
        console.print(f"pack ({d['pack_type']}): " + ", ".join(
            f"{k} {v:.0%}" for k, v in d["pack_breakdown"].items()), highlight=False)

    emit(data, as_json, render)


@app.command("routes")
@guarded
def routes_(as_json: JSON = False) -> None:
    """The process routes with their per-constituent recoveries, reagents and energy."""
    from batteryloop.recycling import routes

    data = [routes.load(n).as_dict() for n in routes.names()]

    def render(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            rec = ", ".join(f"{k} {v['recovered']:.0%}" for k, v in r["fates"].items() if v["recovered"])
            console.print(f"[bold]{r['name']}[/bold]: {r['title']}\n  recovered: {rec}\n"
                          f"  source: {r['source']}", highlight=False, soft_wrap=True)

    emit(data, as_json, render)


@app.command("targets")
@guarded
def targets_(as_json: JSON = False) -> None:
    """Legal targets (EU 2023/1542, China MIIT 2024) keyed by regulation and date."""
    from batteryloop.recycling import compliance

    emit(compliance.targets(), True if as_json else as_json, None)


@app.command("dismantle")
@guarded
def dismantle(
    ref: str,
    fraction: Annotated[Optional[list[str]], typer.Option(
        "--fraction", help="KIND=KG or KIND=KG:MATERIAL, repeatable (black_mass, cu_foil, al_foil, "
                           "casings, plastics, electrolyte, housing, module_hardware, bms, wiring, thermal...)")] = None,
    from_pack: Annotated[Optional[str], typer.Option(
        "--from-pack", help="take the fractions a published pack implies (data/packs.toml)")] = None,
    weighed_kg: Annotated[Optional[str], typer.Option("--weighed-kg", help="the battery's weight")] = None,
    chemistry: Optional[str] = None,
    modules: Optional[int] = None,
    cells: Optional[int] = None,
    at: Annotated[Optional[datetime], typer.Option("--at", help="when (ISO 8601; default now)")] = None,
    notes: Optional[str] = None,
    actor: ACTOR = None,
    as_json: JSON = False,
) -> None:
    """Record a dismantling: weighed fractions, the `dismantled` event, status `dismantled`."""
    from batteryloop.recycling import dismantling, packs

    rows = [_fraction(f) for f in fraction or []]
    if from_pack:
        rows += packs.expected_fractions(from_pack)
    if not rows:
        raise ValidationFailed("give at least one --fraction (or --from-pack)", location="--fraction")
    data = dismantling.DismantlingIn(
        fractions=rows, weighed_mass_kg=weighed_kg, chemistry=chemistry, modules=modules,
        cells=cells, dismantled_at=at, notes=notes, actor=actor)
    with unit_of_work() as s:
        out = dismantling.record(s, ref, data)

    def render(d: dict[str, Any]) -> None:
        console.print(f"[green]dismantled[/green] {d['battery']['code'] or d['battery']['uid']} "
                      f"(event {d['event_seq']}): {d['fractions_kg']:.3f} of {d['weighed_mass_kg']:.3f} kg "
                      f"in {len(d['fractions'])} fractions", highlight=False)
        for r in d["remarks"]:
            console.print(f"  note: {r}", highlight=False)

    emit(out, as_json, render)


@app.command("dismantling")
@guarded
def dismantling_(ref: str, as_json: JSON = False) -> None:
    """A battery's dismantling record."""
    from batteryloop.recycling import dismantling

    with unit_of_work() as s:
        out = dismantling.as_dict(s, dismantling.for_battery(s, ref))
    emit(out, True if as_json else as_json, None)


@batch_app.command("create")
@guarded
def batch_create(
    ref: str,
    route: Annotated[str, typer.Option(help="pyrometallurgical | hydrometallurgical | direct")],
    battery: Annotated[list[str], typer.Option("--battery", help="a dismantled battery, repeatable")],
    override: Annotated[Optional[list[str]], typer.Option(
        "--override", help="route parameter KEY=VALUE (li.recovered=0.95, energy.electricity=3)")] = None,
    processed_on: Annotated[Optional[datetime], typer.Option(formats=["%Y-%m-%d"])] = None,
    actor: ACTOR = None,
    as_json: JSON = False,
) -> None:
    """Feed dismantled batteries to a route (the route is stored as it will run)."""
    from batteryloop.recycling import service

    data = service.BatchIn(ref=ref, route=route, batteries=battery,
                           overrides=_pairs(override, "--override"),
                           processed_on=processed_on.date() if processed_on else None, actor=actor)
    with unit_of_work() as s:
        out = service.create(s, data)
    emit(out, as_json, lambda d: console.print(
        f"batch {d['batch']['ref']} ({d['batch']['route']}): {len(d['batteries'])} batteries", highlight=False))


@batch_app.command("outputs")
@guarded
def batch_outputs(ref: str, path: Annotated[Path, typer.Argument(help="CSV: stream,kind,constituent,mass_kg")],
                  as_json: JSON = False) -> None:
    """Record the batch's measured outputs (replaces earlier ones; all rows or none)."""
    import polars as pl

    from batteryloop.recycling import mass_balance, service

    try:
        table = pl.read_csv(path, schema_overrides={"mass_kg": pl.String})
    except pl.exceptions.PolarsError as exc:
        raise ValidationFailed(f"not a readable CSV: {exc}", location=str(path)) from None
    if "mass_kg" in table.columns:
        table = table.with_columns(pl.col("mass_kg").str.strip_chars().cast(pl.Float64, strict=False))
    with unit_of_work() as s:
        out = service.set_outputs(s, ref, mass_balance.check_outputs(table, location=str(path)))
    emit(out, as_json, lambda d: console.print(f"outputs recorded for batch {ref}", highlight=False))


def _render_batch(d: dict[str, Any]) -> None:
    bal = d["mass_balance"]
    console.print(f"[bold]batch {d['batch']['ref']}[/bold] ({d['route']['name']}, outputs "
                  f"{d['outputs']['basis']}, {d['batch']['status']})", highlight=False)
    t = bal["total"]
    colour = "green" if bal["closed"] else "red"
    console.print(f"mass balance [{colour}]{'closed' if bal['closed'] else 'NOT closed'}[/{colour}]: "
                  f"in {t['input_kg']:.3f} kg = products {t['product']:.3f} + residues "
                  f"{t['residue']:.3f} + losses {t['loss']:.3f} ({t['unaccounted_pct']:+.2f} % "
                  f"unaccounted, tolerance {bal['tolerance_pct']:g} %)", highlight=False)
    for f in bal["flags"]:
        console.print(f"  [red]flag[/red] {f}", highlight=False)
    _render_compliance(d["compliance"])
    e = d["economics"]
    console.print(f"economics: revenue {e['revenue_usd']:,.2f}, costs {e['cost_usd']:,.2f}, margin "
                  f"{e['margin_usd']:,.2f} {e['currency']} ({e['margin_usd_per_t']:,.2f} per t)",
                  highlight=False)


def _render_compliance(c: dict[str, Any]) -> None:
    re_ = c["recycling_efficiency"]
    table = Table("figure", "value %", "inputs", f"targets (as of {c['as_of']})")
    table.add_row("recycling efficiency", "-" if re_["value_pct"] is None else f"{re_['value_pct']:.2f}",
                  f"{re_['recycled_output_kg']:.3f} / {re_['input_kg']:.3f} kg", _targets(re_["targets"]))
    for m in c["material_recovery"]:
        table.add_row(f"{m['element']} recovery", "-" if m["value_pct"] is None else f"{m['value_pct']:.2f}",
                      f"{m['recovered_kg']:.3f} / {m['input_kg']:.3f} kg", _targets(m["targets"]))
    console.print(table)


def _targets(targets: list[dict[str, Any]]) -> str:
    out = []
    for t in targets:
        for label, j in (("", t["in_force"]), ("next ", t["next"])):
            if j:
                when = "" if label == "" else f" from {j['applies_from']}"
                out.append(f"{label}{t['regulation']} {j['min_pct']:g}%{when}: "
                           f"{'met' if j['met'] else 'MISSED'}")
    return "; ".join(out) or "-"


@batch_app.command("show")
@guarded
def batch_show(ref: str, as_json: JSON = False) -> None:
    """Balance, compliance and economics of a batch (closed: as frozen)."""
    from batteryloop.recycling import service

    with unit_of_work() as s:
        out = service.evaluate(s, ref)
    emit(out, as_json, _render_batch)


@batch_app.command("close")
@guarded
def batch_close(ref: str, actor: ACTOR = None, as_json: JSON = False) -> None:
    """Close a batch whose balance closes; its batteries become `recycled`."""
    from batteryloop.recycling import service

    with unit_of_work() as s:
        out = service.close(s, ref, actor=actor)
    emit(out, as_json, _render_batch)


@batch_app.command("certificate")
@guarded
def batch_certificate(
    ref: str,
    pdf: Annotated[Optional[Path], typer.Option("--pdf", help="also write the PDF here")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="write the JSON here")] = None,
    as_json: JSON = False,
) -> None:
    """The batch recycling certificate (JSON, and PDF with --pdf)."""
    from batteryloop.recycling import certificate

    with unit_of_work() as s:
        cert = certificate.build(s, ref)
    if out:
        out.write_text(json.dumps(cert, indent=2), "utf-8")
    if pdf:
        pdf.write_bytes(certificate.pdf(cert))
    emit(cert, as_json, lambda d: console.print(
        f"certificate of batch {ref}: sha256 {d['sha256']}"
        + (f"; PDF {pdf}" if pdf else "") + (f"; JSON {out}" if out else ""), highlight=False))


@app.command("compliance")
@guarded
def compliance_(
    start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="period start")],
    end: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="period end (targets judged here)")],
    as_json: JSON = False,
) -> None:
    """Compliance of the closed batches processed in a reporting period."""
    from batteryloop.recycling import service

    with unit_of_work() as s:
        out = service.period(s, start.date(), end.date())

    def render(d: dict[str, Any]) -> None:
        console.print(f"{len(d['batches'])} closed batches {d['period']['start']} .. {d['period']['end']}",
                      highlight=False)
        _render_compliance(d["compliance"])

    emit(out, as_json, render)


@app.command("recycled-content")
@guarded
def recycled_content(
    path: Annotated[Path, typer.Argument(help='JSON: {"co": {"total_kg": .., "recycled_kg": ..}, ...}')],
    as_of: Annotated[Optional[datetime], typer.Option("--as-of", formats=["%Y-%m-%d"])] = None,
    as_json: JSON = False,
) -> None:
    """Recycled content of a new battery from its bill of materials, against Article 8."""
    from batteryloop.recycling import compliance

    try:
        bom = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"not JSON: {exc.msg} (line {exc.lineno})", location=str(path)) from None
    if not isinstance(bom, dict):
        raise ValidationFailed("expected an object of elements", location=str(path))
    out = compliance.recycled_content(bom, as_of.date() if as_of else date.today())
    emit(out, True if as_json else as_json, None)


@app.command("reuse-vs-recycle")
@guarded
def reuse_vs_recycle(
    chemistry: Annotated[str, typer.Option(help="e.g. LFP, NMC622")],
    kwh: Annotated[float, typer.Option("--kwh", help="rated energy, kWh")],
    soh: Annotated[float, typer.Option("--soh", help="SOH, %")],
    route: str = "hydrometallurgical",
    as_json: JSON = False,
) -> None:
    """Reuse-then-recycle against recycle-now for one battery."""
    from batteryloop.recycling import service

    out = service.reuse_vs_recycle(chemistry, kwh, soh, route=route)

    def render(d: dict[str, Any]) -> None:
        r = d["reuse_then_recycle"]
        console.print(f"{d['chemistry']} {d['rated_energy_kwh']:g} kWh at {d['soh_pct']:g} % SOH: "
                      f"recycle now {d['recycle_now']['margin_usd']:,.2f} USD; reuse then recycle "
                      f"{r['total_usd']:,.2f} USD -> {d['better']}", highlight=False)
        a = d["published_anchor"] or {}
        if a:
            console.print(f"  published anchor ({a.get('source')}): +{a.get('lfp_profit_gain_pct')} % "
                          f"LFP, +{a.get('nmc_profit_gain_pct')} % NMC", highlight=False)

    emit(out, as_json, render)
