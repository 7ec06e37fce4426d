"""Grading commands: policies, inspection, grade, route, residual value, second life, certificates."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from batteryloop.cli import regroup
from batteryloop.cli.common import console, emit, fail, guarded, unit_of_work
from batteryloop.errors import ValidationFailed

JSON = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ACTOR = Annotated[Optional[str], typer.Option("--actor", help="acting organisation (uid or name)")]
POLICY = Annotated[str, typer.Option("--policy", help="policy name or path to a .toml file")]

app = typer.Typer(help="Grading and second life: inspect, grade, route, value, certificates, "
                       "regrouping.")
route_app = typer.Typer(help="Carry out a graded route.")
app.add_typer(route_app, name="route")
regroup.register(app)  # grade regroup, grade cluster


def _render_policy(d: dict[str, Any]) -> None:
    console.print(f"[bold]{d['name']}[/bold] v{d['version']} ({d['origin']}) {d['title']}",
                  highlight=False)
    console.print(f"sha256 {d['sha256']}\nSOH: {', '.join(d['soh_parameters'])}; "
                  f"default route: {d['default_route']}", highlight=False, soft_wrap=True)
    for n, r in enumerate(d["rules"], 1):
        when = "; ".join(
            c["finding"] if "finding" in c else
            " ".join(f"{c['metric']} {k.replace('_', ' ')} {v:g}" for k, v in c.items()
                     if k not in ("metric", "if_missing")) for c in r["when"])
        grade = f" ({r['grade']})" if r.get("grade") else ""
        console.print(f"{n:>2}. [bold]{escape(r['id'])}[/bold] {escape('[' + r['kind'] + ']')} "
                      f"-> {r['route']}{grade}: {escape(when)}",
                      highlight=False, soft_wrap=True)
        if r.get("source"):
            console.print(f"    source: {r['source']}", highlight=False, soft_wrap=True)
        if r.get("convention"):
            console.print(f"    convention: {r['convention']}", highlight=False, soft_wrap=True)


@app.command("policies")
@guarded
def policies_(as_json: JSON = False) -> None:
    """List the grading policies found by name (shipped and the user's)."""
    from batteryloop.grading.policy import available

    rows = available()

    def render(data: list[dict]) -> None:
        table = Table("name", "version", "application", "origin", "rules", "sha256", "title")
        for r in data:
            if "error" in r:
                table.add_row(r["name"], "", "", r["origin"], "", "", f"[red]{r['error']}[/red]")
            else:
                table.add_row(r["name"], r["version"], r["application"], r["origin"],
                              str(r["rules"]), r["sha256"][:12], r["title"])
        console.print(table)

    emit(rows, as_json, render)


@app.command("policy")
@guarded
def policy_(ref: Annotated[str, typer.Argument(help="policy name or path to a .toml file")],
            as_json: JSON = False) -> None:
    """Show (and so validate) one policy: its rules in evaluation order, each with its basis."""
    from batteryloop.grading.policy import load

    emit(load(ref).as_dict(), as_json, _render_policy)


def _render_inspection(d: dict[str, Any]) -> None:
    seen = [k for k, v in d["visual"].items() if v]
    console.print(f"[green]inspected[/green] {d['battery']} (event {d['event_seq']}): "
                  f"findings: {', '.join(seen) if seen else 'none'}", highlight=False)


@app.command("inspect")
@guarded
def inspect(
    ref: str,
    finding: Annotated[Optional[list[str]], typer.Option(
        "--finding", help="a finding seen (swelling, leakage, damage, corrosion, thermal_marks, "
                          "loose_connections); repeatable; the others count as checked, not seen")] = None,
    ocv_v: Annotated[Optional[float], typer.Option("--ocv-v", help="open-circuit voltage")] = None,
    cell_v: Annotated[Optional[list[float]], typer.Option("--cell-v", help="a cell OCV, repeatable")] = None,
    insulation_ohm: Annotated[Optional[float], typer.Option(
        "--insulation-ohm", help="insulation resistance in ohm")] = None,
    insulation_mohm: Annotated[Optional[float], typer.Option(
        "--insulation-mohm", help="insulation resistance in megaohm")] = None,
    insulation_v: Annotated[Optional[float], typer.Option(
        "--insulation-v", help="working voltage for ohm/V (default: nominal)")] = None,
    bms_code: Annotated[Optional[list[str]], typer.Option(
        "--bms-code", help="a BMS fault code read out, repeatable")] = None,
    bms_read: Annotated[bool, typer.Option(
        "--bms-read", help="the BMS was read out (implied by --bms-code)")] = False,
    cell_soh: Annotated[Optional[list[float]], typer.Option(
        "--cell-soh", help="SOH of one cell in %, repeatable")] = None,
    expiry: Annotated[Optional[datetime], typer.Option(
        "--expiry", formats=["%Y-%m-%d"], help="the maker's expiry date")] = None,
    test: Annotated[Optional[str], typer.Option(help="the pulse or capacity test (sha256)")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="the inspecting person")] = None,
    at: Annotated[Optional[datetime], typer.Option("--at", help="when (ISO 8601; default now)")] = None,
    notes: Optional[str] = None,
    actor: ACTOR = None,
    as_json: JSON = False,
) -> None:
    """Record an incoming inspection (and its `inspected` ledger event)."""
    from pydantic import ValidationError

    from batteryloop.grading.inspection import InspectionIn, record

    if insulation_ohm is not None and insulation_mohm is not None:
        fail("give --insulation-ohm or --insulation-mohm, not both")
    ohm = insulation_ohm if insulation_ohm is not None else (
        insulation_mohm * 1e6 if insulation_mohm is not None else None)
    try:
        data = InspectionIn(
            inspector=actor, inspected_by=by, inspected_at=at,
            visual={f: True for f in finding or []}, ocv_v=ocv_v, cell_voltages_v=cell_v,
            insulation_resistance_ohm=ohm, insulation_voltage_v=insulation_v,
            bms_codes=list(bms_code or []) if bms_code or bms_read else None, cell_soh_pct=cell_soh,
            expiry_date=expiry.date() if expiry else None, test=test, notes=notes,
        )
    except ValidationError as exc:
        e = exc.errors()[0]
        fail(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}")
    with unit_of_work() as s:
        out = record(s, ref, data)
    emit(out, as_json, _render_inspection)


@app.command("inspections")
@guarded
def inspections_(ref: str, as_json: JSON = False) -> None:
    """A battery's inspections, oldest first."""
    from batteryloop.grading.inspection import listing

    with unit_of_work() as s:
        rows = listing(s, ref)

    def render(data: list[dict]) -> None:
        table = Table("id", "when", "inspector", "findings", "OCV V", "insulation ohm", "BMS codes")
        for r in data:
            table.add_row(str(r["id"]), r["inspected_at"], (r["inspector"] or {}).get("name", ""),
                          ", ".join(k for k, v in r["visual"].items() if v) or "none",
                          "" if r["ocv_v"] is None else f"{r['ocv_v']:g}",
                          "" if r["insulation_resistance_ohm"] is None else f"{r['insulation_resistance_ohm']:g}",
                          "not read" if r["bms_codes"] is None else ", ".join(r["bms_codes"]) or "none")
        console.print(table)

    emit(rows, as_json, render)


def _parse_value(item: str) -> dict[str, Any]:
    """PARAM=VALUE or PARAM=VALUE:LOWER:UPPER."""
    name, sep, rest = item.partition("=")
    parts = rest.split(":")
    if not sep or len(parts) not in (1, 3):
        raise ValidationFailed(f"'{item}': expected PARAM=VALUE or PARAM=VALUE:LOWER:UPPER",
                               location="--value")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise ValidationFailed(f"'{item}': not a number", location="--value") from None
    value, lower, upper = (numbers * 3)[:3] if len(numbers) == 1 else numbers
    return {"parameter": name.strip(), "value": value, "lower": lower, "upper": upper,
            "method": "supplied on the command line"}


def _health_file(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"not JSON: {exc.msg} (line {exc.lineno})", location=str(path)) from None
    values = data.get("values") if isinstance(data, dict) else data
    if not isinstance(values, list):
        raise ValidationFailed("expected a list of health values or an object with 'values'",
                               location=str(path))
    return values


def _render_grade(d: dict[str, Any]) -> None:
    colour = {"waste": "red", "repurposed": "yellow"}.get(d["route"], "green")
    console.print(f"[{colour}]{d['route']}[/{colour}] grade {d.get('grade') or '-'} "
                  f"(policy {d['policy']['name']} v{d['policy']['version']}, rule "
                  f"{d['decided_by']['id']})", highlight=False)
    for reason in d["reasons"]:
        console.print(f"  - {reason}", highlight=False)
    value = d.get("value") or {}
    if "estimate" in value:
        console.print(f"  value: {value['estimate']['per_unit']:,.2f} {value['currency']} "
                      f"(floor {value['floor']['per_unit']:,.2f}, ceiling "
                      f"{(value.get('ceiling') or {}).get('per_unit', 0):,.2f})", highlight=False)


@app.command("run")
@guarded
def run(
    ref: str,
    policy: POLICY = "ev-reuse",
    value: Annotated[Optional[list[str]], typer.Option(
        "--value", help="a health value PARAM=VALUE[:LOWER:UPPER], e.g. soce=81:78:84; repeatable; "
                        "recorded as a health-assessed event first")] = None,
    health: Annotated[Optional[Path], typer.Option(
        "--health", help="health values as JSON (the output of `health assess --json`)")] = None,
    assess: Annotated[bool, typer.Option(
        "--assess", help="measure health from the battery's stored test first")] = False,
    test: Annotated[Optional[str], typer.Option(help="with --assess: the stored test's sha256")] = None,
    prices: Annotated[Optional[Path], typer.Option(help="prices file (default: shipped)")] = None,
    actor: ACTOR = None,
    as_json: JSON = False,
) -> None:
    """Grade a battery on its inspection and health: append `graded` and move it to 'graded'."""
    from batteryloop.grading.policy import load
    from batteryloop.grading.service import grade
    from batteryloop.grading.value import load_prices

    pol = load(policy)
    given = [_parse_value(v) for v in value or []] + (_health_file(health) if health else [])
    price_table = load_prices(prices) if prices else None
    with unit_of_work() as s:
        out = grade(s, ref, policy=pol, health=given or None, actor=actor, prices=price_table,
                    assess=(test or True) if assess else False)
    emit(out, as_json, _render_grade)


@app.command("show")
@guarded
def show(ref: str, as_json: JSON = False) -> None:
    """The battery's latest grade."""
    from batteryloop.grading.service import latest_grade

    with unit_of_work() as s:
        out = latest_grade(s, ref)
    if out is None:
        fail(f"{ref}: not graded yet")
    emit(out, as_json, _render_grade)


@route_app.command("apply")
@guarded
def route_apply(
    ref: str,
    to: Annotated[Optional[str], typer.Option(help="the route (default: the graded one; 'waste' always)")] = None,
    kind: Annotated[Optional[str], typer.Option(help="register a successor of this kind (reused, repurposed, remanufactured)")] = None,
    code: Annotated[Optional[str], typer.Option(help="the successor's GB/T 34014 code")] = None,
    identifier: Annotated[Optional[list[str]], typer.Option("--id", help="successor SCHEME=VALUE")] = None,
    capacity_ah: Annotated[Optional[float], typer.Option("--capacity-ah")] = None,
    energy_wh: Annotated[Optional[float], typer.Option("--energy-wh")] = None,
    actor: ACTOR = None,
    as_json: JSON = False,
) -> None:
    """Move a graded battery to its route; with --kind, register the second-life battery instead."""
    from batteryloop.grading.service import apply_route
    from batteryloop.registry.schemas import BatteryIn

    successor = None
    if kind or code or identifier:
        successor = BatteryIn(kind=kind, code=code, rated_capacity_ah=capacity_ah,  # type: ignore[arg-type]
                              rated_energy_wh=energy_wh, identifiers=_idents(identifier))
    with unit_of_work() as s:
        out = apply_route(s, ref, actor=actor, route=to, successor=successor)
    emit(out, as_json, lambda d: console.print(
        f"[green]{d['state']}[/green] {d['uid']}"
        + (f" from {len(d['sources'])} source(s)" if d["sources"] else ""), highlight=False))


def _idents(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        scheme, sep, val = item.partition("=")
        if not sep:
            raise ValidationFailed(f"'{item}': expected SCHEME=VALUE", location="--id")
        out[scheme] = val
    return out


@app.command("second-life")
@guarded
def second_life(
    source: Annotated[list[str], typer.Option("--source", help="a graded source battery, repeatable")],
    relation: Annotated[str, typer.Option(help="reused, repurposed or remanufactured")] = "repurposed",
    kind: Annotated[str, typer.Option(help="pack, module or cell")] = "pack",
    code: Optional[str] = None,
    chemistry: Optional[str] = None,
    capacity_ah: Annotated[Optional[float], typer.Option("--capacity-ah")] = None,
    energy_wh: Annotated[Optional[float], typer.Option("--energy-wh")] = None,
    voltage_v: Annotated[Optional[float], typer.Option("--voltage-v")] = None,
    identifier: Annotated[Optional[list[str]], typer.Option(
        "--id", help="SCHEME=VALUE, e.g. second_life=SL-0001, repeatable")] = None,
    actor: ACTOR = None,
    as_json: JSON = False,
) -> None:
    """Register a second-life battery made from graded sources (its own passport, linked to all)."""
    from batteryloop.grading.service import second_life as make
    from batteryloop.registry.schemas import BatteryIn

    spec = BatteryIn(kind=kind, code=code, chemistry=chemistry, rated_capacity_ah=capacity_ah,  # type: ignore[arg-type]
                     rated_energy_wh=energy_wh, nominal_voltage_v=voltage_v,
                     identifiers=_idents(identifier))
    with unit_of_work() as s:
        out = make(s, source, relation, spec, actor=actor)
    emit(out, as_json, lambda d: console.print(
        f"[green]{relation}[/green] {d['uid']} from {len(d['sources'])} source(s)", highlight=False))


def _render_value(d: dict[str, Any]) -> None:
    cur = d["currency"]
    table = Table("", f"per unit ({cur})", f"per remaining kWh ({cur})")
    ceiling = d.get("ceiling") or {}
    for label, part in (("floor (recycling)", d["floor"]), ("ceiling", ceiling),
                        ("route cost", d["route_cost"]), ("estimate", d["estimate"])):
        unit, kwh = part.get("per_unit"), part.get("per_remaining_kwh")
        table.add_row(label, "-" if unit is None else f"{unit:,.2f}", "-" if kwh is None else f"{kwh:,.2f}")
    console.print(table)
    console.print(f"{d['remaining_energy_kwh']:.2f} kWh remaining at the SOH lower bound; "
                  f"{d['estimate']['basis']}", highlight=False)


@app.command("value")
@guarded
def value_(
    ref: Annotated[Optional[str], typer.Argument(help="a graded battery (or give the inputs)")] = None,
    energy_kwh: Annotated[Optional[float], typer.Option("--energy-kwh")] = None,
    soh_lower: Annotated[Optional[float], typer.Option("--soh-lower")] = None,
    chemistry: Optional[str] = None,
    route: Optional[str] = None,
    application: Optional[str] = None,
    prices: Annotated[Optional[Path], typer.Option(help="prices file (default: shipped)")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="override a parameter, NAME=NUMBER (e.g. new_price_usd_per_kwh=130)")] = None,
    as_json: JSON = False,
) -> None:
    """Residual value (floor, ceiling, estimate) of a graded battery, or of given inputs."""
    from batteryloop.grading.service import latest_grade
    from batteryloop.grading.value import load_prices, rated_energy_kwh, residual_value
    from batteryloop.registry.service import Registry

    overrides: dict[str, Any] = {}
    for item in set_ or []:
        name, sep, number = item.partition("=")
        try:
            overrides[name] = float(number)
        except ValueError:
            sep = ""
        if not sep:
            fail(f"--set '{item}': expected NAME=NUMBER")
    if ref:
        with unit_of_work() as s:
            battery = Registry(s).battery(ref)
            decided = latest_grade(s, ref)
            if decided is None:
                fail(f"{ref}: not graded yet (or give --energy-kwh, --soh-lower, --chemistry, --route)")
            energy_kwh = energy_kwh or rated_energy_kwh(battery)
            soh_lower = soh_lower if soh_lower is not None else (decided.get("soh") or {}).get("lower")
            chemistry, route = chemistry or battery.chemistry, route or decided["route"]
            application = application or decided.get("application")
    missing = [n for n, v in (("--energy-kwh", energy_kwh), ("--soh-lower", soh_lower),
                              ("--chemistry", chemistry), ("--route", route)) if v is None]
    if missing:
        fail(f"missing {', '.join(missing)}")
    out = residual_value(rated_energy_kwh=energy_kwh, soh_lower=soh_lower, chemistry=chemistry,  # type: ignore[arg-type]
                         route=route, application=application,  # type: ignore[arg-type]
                         prices=load_prices(prices) if prices else None, overrides=overrides)
    emit(out, as_json, _render_value)


@app.command("certificate")
@guarded
def certificate(
    ref: str,
    pdf: Annotated[Optional[Path], typer.Option(help="write the PDF certificate here")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json-out", help="write the JSON certificate here")] = None,
    base_url: Annotated[Optional[str], typer.Option(
        help="public address for the QR code (default BATTERYLOOP_PUBLIC_URL)")] = None,
    draft: Annotated[bool, typer.Option(
        "--draft", help="a draft: not recorded, so `check-certificate` will not pass it")] = False,
    actor: ACTOR = None,
    as_json: JSON = False,
) -> None:
    """Issue the SOH and grading certificate of a graded battery (JSON and/or PDF) and record it
    (`certificate-issued`, with the files' SHA-256) in the battery's ledger."""
    import orjson

    from batteryloop.grading.certificate import build, issue
    from batteryloop.grading.certificate import pdf as render_pdf

    event = None
    with unit_of_work() as s:
        if draft:
            cert = build(s, ref, base_url=base_url, issued_by=actor)
            document = render_pdf(cert) if pdf else None
        else:
            issued = issue(s, ref, base_url=base_url, actor=actor, with_pdf=bool(pdf))
            cert, document, event = issued["certificate"], issued["pdf"], issued["event"]
    if json_out:
        json_out.write_bytes(orjson.dumps(cert, option=orjson.OPT_INDENT_2))
    if pdf and document is not None:
        pdf.write_bytes(document)
    if as_json or not (pdf or json_out):
        emit(cert, True)  # the certificate itself, so that the output checks as it is
    else:
        what = "draft certificate" if draft else f"certificate (event {event['seq']})"  # type: ignore[index]
        console.print(f"{what} {cert['sha256'][:16]} for {cert['battery']['uid']}: "
                      + ", ".join(str(p) for p in (json_out, pdf) if p), highlight=False)


@app.command("check-certificate")
@guarded
def check_certificate(
    path: Annotated[Path, typer.Argument(help="a certificate file: JSON or PDF")],
    as_json: JSON = False,
) -> None:
    """Check a certificate file against the ledger: issued here, unaltered, and still current?"""
    from batteryloop.grading.certificate import check

    data = path.read_bytes()
    with unit_of_work() as s:
        out = check(s, data)

    def render(d: dict[str, Any]) -> None:
        if d["valid"]:
            i = d["issued"]
            console.print(f"[green]valid[/green]: issued for {d['battery']} (event {i['seq']}, "
                          f"{i['occurred_at']}, by {i['actor'] or '-'})", highlight=False)
            if d["superseded_by"]:
                sup = d["superseded_by"]
                console.print(f"  superseded by a later {sup['type']} (event {sup['seq']}, "
                              f"{sup['occurred_at']})", highlight=False)

    emit(out, as_json, render)
    if not out["valid"]:
        fail(f"{path}: " + "; ".join(out["problems"]))
