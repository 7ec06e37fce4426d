"""Registry commands: organisations, batteries, events, lineage, verify, import, export.

They read unfiltered: the command line is the operator's own tool on its own database, which it
could read directly anyway. The API and the pages filter every read by the caller's Annex XIII
tier (passport/records.py; README, "Who reads what")."""

from __future__ import annotations

import csv
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import orjson
import typer
from rich.table import Table
from rich.tree import Tree

from batteryloop.cli.common import console, emit, fail, guarded, unit_of_work
from batteryloop.registry import anchor, gbt34014, reporting, signing
from batteryloop.registry.bulk_import import Importer
from batteryloop.registry.schemas import BatteryIn, OrganisationIn, SuccessorIn
from batteryloop.registry.service import Registry
from batteryloop.registry.verify import verify as verify_ledger
from batteryloop.settings import get_settings

JSON = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ACTOR = Annotated[Optional[str], typer.Option("--actor", help="acting organisation (uid or name)")]
KEY = Annotated[
    Optional[Path], typer.Option("--key", help="sign as the actor with this Ed25519 PEM key")
]
WHEN = Annotated[
    Optional[datetime], typer.Option("--at", help="when it happened (ISO 8601; default now, UTC)")
]

org_app = typer.Typer(help="Organisations: makers, vehicle makers, repairers, recyclers...")
code_app = typer.Typer(help="GB/T 34014-2017 battery codes.")


def _key(path: Path | None):  # type: ignore[no-untyped-def]
    return signing.load_private(path) if path else None


# --- organisations -------------------------------------------------------------------------------
@org_app.command("add")
@guarded
def org_add(
    name: str,
    role: Annotated[list[str], typer.Option("--role", help="repeatable; see data/roles.toml")],
    country: Annotated[Optional[str], typer.Option(help="ISO 3166 alpha-2")] = None,
    keygen: Annotated[
        Optional[Path], typer.Option(help="make an Ed25519 key pair, keep the private key here")
    ] = None,
    as_json: JSON = False,
) -> None:
    """Register an organisation."""
    public = None
    if keygen:
        private = signing.generate()
        signing.save_private(private, keygen)
        public = signing.public_bytes(private).hex()
    with unit_of_work() as s:
        org = Registry(s).add_organisation(
            OrganisationIn(name=name, roles=role, country=country, public_key=public)
        )
        out = {"uid": org.uid, "name": org.name, "roles": role, "public_key": public}
    emit(out, as_json, lambda d: console.print(f"[green]registered[/green] {d['name']} {d['uid']}"))


@org_app.command("list")
@guarded
def org_list(as_json: JSON = False) -> None:
    """List organisations."""
    with unit_of_work() as s:
        rows = [
            {"uid": o.uid, "name": o.name, "roles": sorted(r.role for r in o.roles),
             "signs": o.public_key is not None}
            for o in Registry(s).organisations()
        ]

    def render(data: list[dict]) -> None:
        table = Table("name", "roles", "uid", "signs")
        for r in data:
            table.add_row(r["name"], ", ".join(r["roles"]), r["uid"], "yes" if r["signs"] else "")
        console.print(table)

    emit(rows, as_json, render)


# --- codes ---------------------------------------------------------------------------------------
@code_app.command("parse")
@guarded
def code_parse(
    code: str, lenient: Annotated[bool, typer.Option(help="accept real labels")] = False,
    as_json: JSON = False,
) -> None:
    """Decode a GB/T 34014 code, or say which position is wrong."""
    decoded = gbt34014.parse(code, lenient=lenient)
    data = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in decoded.__dict__.items()}
    emit(data, as_json, lambda d: [console.print(f"{k:>16}: {v}") for k, v in d.items()])


# --- batteries -----------------------------------------------------------------------------------
@guarded
def register(
    kind: Annotated[Optional[str], typer.Option(help="pack, module or cell")] = None,
    code: Annotated[Optional[str], typer.Option(help="GB/T 34014 code")] = None,
    lenient_code: Annotated[bool, typer.Option(help="accept real labels with letter serials")] = False,
    parent: Annotated[Optional[str], typer.Option(help="the pack or module it belongs to")] = None,
    chemistry: Optional[str] = None,
    capacity_ah: Annotated[Optional[float], typer.Option("--capacity-ah")] = None,
    energy_wh: Annotated[Optional[float], typer.Option("--energy-wh")] = None,
    voltage_v: Annotated[Optional[float], typer.Option("--voltage-v")] = None,
    mass_kg: Annotated[Optional[float], typer.Option("--mass-kg")] = None,
    manufacturer: Optional[str] = None,
    made_on: Annotated[Optional[datetime], typer.Option("--made-on", formats=["%Y-%m-%d"])] = None,
    place: Annotated[Optional[str], typer.Option(help="manufacturing place")] = None,
    owner: Optional[str] = None,
    identifier: Annotated[
        Optional[list[str]], typer.Option("--id", help="SCHEME=VALUE, e.g. vin=LGX..., repeatable")
    ] = None,
    actor: ACTOR = None,
    as_json: JSON = False,
) -> None:
    """Register a battery (pack, module or cell) and start its ledger."""
    idents = {}
    for item in identifier or []:
        scheme, sep, value = item.partition("=")
        if not sep:
            fail(f"--id '{item}': expected SCHEME=VALUE")
        idents[scheme] = value
    data = BatteryIn(
        kind=kind, code=code, lenient_code=lenient_code, parent=parent, chemistry=chemistry,
        rated_capacity_ah=capacity_ah, rated_energy_wh=energy_wh, nominal_voltage_v=voltage_v,
        mass_kg=mass_kg, manufacturer=manufacturer,
        manufactured_on=made_on.date() if made_on else None, manufacturing_place=place,
        owner=owner, identifiers=idents,
    )
    with unit_of_work() as s:
        reg = Registry(s)
        out = reg.describe(reg.register(data, actor=actor).uid)
    emit(out, as_json, lambda d: console.print(f"[green]registered[/green] {d['kind']} {d['uid']}"
                                                 + (f" ({d['code']})" if d["code"] else "")))


@guarded
def show(ref: str, as_json: JSON = False) -> None:
    """Show a battery: identity, state, custody, parts and lineage."""
    with unit_of_work() as s:
        data = Registry(s).describe(ref)

    def render(d: dict[str, Any]) -> None:
        table = Table(show_header=False, box=None)
        for key in ("uid", "code", "kind", "chemistry", "rated_capacity_ah", "rated_energy_wh",
                    "nominal_voltage_v", "mass_kg", "manufactured_on", "state", "eu_status", "events"):
            table.add_row(key, str(d[key]) if d[key] is not None else "")
        for key in ("manufacturer", "owner", "responsible"):
            table.add_row(key, d[key]["name"] if d[key] else "")
        table.add_row("parent", d["parent"]["uid"] if d["parent"] else "")
        table.add_row("children", str(len(d["children"])))
        for ident in d["identifiers"]:
            table.add_row(f"id:{ident['scheme']}", ident["value"])
        table.add_row("sources", ", ".join(x["uid"] for x in d["sources"]))
        table.add_row("successors", ", ".join(x["uid"] for x in d["successors"]))
        console.print(table)

    emit(data, as_json, render)


@guarded
def history(ref: str, as_json: JSON = False) -> None:
    """A battery's ledger, oldest first."""
    with unit_of_work() as s:
        events = Registry(s).history(ref)

    def render(rows: list[dict]) -> None:
        table = Table("seq", "type", "actor", "occurred", "payload", "hash", "signed")
        for e in rows:
            table.add_row(str(e["seq"]), e["type"], e["actor_name"] or "", e["occurred_at"],
                          _short(e["payload"]), e["hash"][:12], "yes" if e["signature"] else "")
        console.print(table)

    emit(events, as_json, render)


def _short(payload: dict) -> str:
    text = ", ".join(f"{k}={v}" for k, v in payload.items() if not isinstance(v, (dict, list)))
    return text[:60] + ("..." if len(text) > 60 else "")


@guarded
def status(
    ref: str, to: str, actor: ACTOR = None, reason: Optional[str] = None, at: WHEN = None,
    key: KEY = None, as_json: JSON = False,
) -> None:
    """Move a battery to another lifecycle state (see data/lifecycle.toml)."""
    with unit_of_work() as s:
        r = Registry(s).change_status(ref, to, actor=actor, reason=reason, occurred_at=at, key=_key(key))
    emit({"seq": r.seq, "hash": r.hash.hex()}, as_json,
         lambda d: console.print(f"[green]{ref}[/green] -> {to} (event {d['seq']})"))


@guarded
def transfer(
    ref: str,
    custody_to: Annotated[Optional[str], typer.Option(help="who now holds it")] = None,
    responsibility_to: Annotated[Optional[str], typer.Option(help="who is now accountable")] = None,
    actor: ACTOR = None, reason: Optional[str] = None, at: WHEN = None, key: KEY = None,
    as_json: JSON = False,
) -> None:
    """Transfer custody and/or responsibility to another organisation."""
    with unit_of_work() as s:
        r = Registry(s).transfer(ref, custody_to=custody_to, responsibility_to=responsibility_to,
                                 actor=actor, reason=reason, occurred_at=at, key=_key(key))
    emit({"seq": r.seq, "hash": r.hash.hex()}, as_json,
         lambda d: console.print(f"[green]transferred[/green] {ref} (event {d['seq']})"))


@guarded
def successor(
    source: Annotated[list[str], typer.Option("--source", help="a source battery, repeatable")],
    relation: Annotated[str, typer.Option(help="reused, repurposed or remanufactured")],
    kind: Annotated[str, typer.Option(help="pack, module or cell")] = "pack",
    code: Optional[str] = None,
    chemistry: Optional[str] = None,
    capacity_ah: Annotated[Optional[float], typer.Option("--capacity-ah")] = None,
    energy_wh: Annotated[Optional[float], typer.Option("--energy-wh")] = None,
    identifier: Annotated[Optional[list[str]], typer.Option("--id", help="SCHEME=VALUE")] = None,
    actor: ACTOR = None, as_json: JSON = False,
) -> None:
    """Register a re-used, repurposed or remanufactured battery made from source batteries: a new
    passport linked to all of them (Art. 77(6))."""
    idents = dict(i.partition("=")[::2] for i in identifier or [])
    data = SuccessorIn(
        sources=source, relation=relation, actor=actor,  # type: ignore[arg-type]
        battery=BatteryIn(kind=kind, code=code, chemistry=chemistry, rated_capacity_ah=capacity_ah,  # type: ignore[arg-type]
                          rated_energy_wh=energy_wh, identifiers=idents),
    )
    with unit_of_work() as s:
        reg = Registry(s)
        out = reg.describe(reg.create_successor(data).uid)
    emit(out, as_json, lambda d: console.print(
        f"[green]{relation}[/green] {d['uid']} from {len(d['sources'])} source(s)"))


@guarded
def lineage(ref: str, depth: int = 10, as_json: JSON = False) -> None:
    """What a battery was made from and what was made from it, across generations."""
    with unit_of_work() as s:
        data = Registry(s).lineage(ref, depth=depth)

    def render(d: dict) -> None:
        tree = Tree(f"[bold]{d['uid']}[/bold] {d['kind']} {d['state']} ({d['eu_status']})")
        for label, key in (("made from", "sources"), ("made into", "successors")):
            branch = tree.add(label)

            def add(node: Tree, items: list[dict], key: str = key) -> None:
                for item in items:
                    child = node.add(f"{item['uid']} {item['kind']} {item['state']} [{item['relation']}]")
                    add(child, item.get(key, []))

            add(branch, d[key])
        console.print(tree)

    emit(data, as_json, render)


@guarded
def verify(
    anchor_file: Annotated[
        Optional[Path], typer.Option("--anchor", help="also check against an anchor taken earlier")
    ] = None,
    take: Annotated[
        Optional[Path], typer.Option("--take-anchor", help="write an anchor of every head here")
    ] = None,
    as_json: JSON = False,
) -> None:
    """Re-check every hash chain; exit 1 naming the first broken event of each battery."""
    with unit_of_work() as s:
        report = verify_ledger(s)
        if anchor_file:
            try:
                saved = orjson.loads(anchor_file.read_bytes())
            except orjson.JSONDecodeError as exc:
                fail(f"{anchor_file}: not JSON ({exc})")
            report.breaches.extend(anchor.check(s, saved))
        if take:
            take.write_bytes(orjson.dumps(anchor.take(s)))
    data = {
        "ok": report.ok, "batteries": report.batteries, "events": report.events,
        "events_per_second": round(report.events_per_second),
        "breaches": [b.__dict__ for b in report.breaches],
    }

    def render(d: dict) -> None:
        for b in d["breaches"]:
            console.print(f"[red]{b['kind']}[/red] {b['message']}", highlight=False)
        mark = "[green]ok[/green]" if d["ok"] else f"[red]{len(d['breaches'])} broken chain(s)[/red]"
        console.print(f"{mark}: {d['events']:,} events over {d['batteries']:,} batteries "
                      f"({d['events_per_second']:,} events/s)")

    emit(data, as_json, render)
    if not report.ok:
        raise typer.Exit(1)


@guarded
def import_(
    paths: Annotated[list[Path], typer.Argument(help="CSV or JSON files", exists=True, dir_okay=False)],
    kind: Annotated[Optional[str], typer.Option(help="batteries or events (default: guessed)")] = None,
    skip_invalid: Annotated[bool, typer.Option(help="write valid rows, reject the rest")] = False,
    rejects: Annotated[Optional[Path], typer.Option(help="reject file (default FILE.rejects.csv)")] = None,
    actor: ACTOR = None, as_json: JSON = False,
) -> None:
    """Import batteries or events; a file with any invalid row writes nothing (see --skip-invalid)."""
    results = []
    for path in paths:
        with unit_of_work() as s:
            report = Importer(s).run(path, kind=kind, skip_invalid=skip_invalid,  # type: ignore[arg-type]
                                     reject_path=rejects, actor=actor)
        results.append({"file": str(path), "kind": report.kind, "rows": report.rows,
                        "written": report.written, "rejected": len(report.problems),
                        "reject_file": report.reject_file})
    emit(results, as_json, lambda rows: [console.print(
        f"{r['file']}: {r['written']} of {r['rows']} {r['kind']} written"
        + (f", {r['rejected']} rejected -> {r['reject_file']}" if r["rejected"] else ""))
        for r in rows])


@guarded
def export(
    organisation: Annotated[Optional[str], typer.Option(help="one node (uid or name); default all")] = None,
    since: Annotated[Optional[datetime], typer.Option(help="events that occurred from")] = None,
    until: Annotated[Optional[datetime], typer.Option(help="... up to (exclusive)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    out: Annotated[Optional[Path], typer.Option(help="file (default stdout)")] = None,
) -> None:
    """Traceability report per node, with missed reporting deadlines flagged."""
    if fmt not in ("csv", "json"):
        fail(f"--format must be csv or json, not '{fmt}'", 2)
    with unit_of_work() as s:
        rows = reporting.as_dicts(reporting.traceability_report(
            s, organisation=organisation, since=since, until=until, holidays=get_settings().holidays))
    stream = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
    try:
        if fmt == "json":
            stream.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            writer = csv.DictWriter(stream, fieldnames=list(reporting.ReportRow.__dataclass_fields__))
            writer.writeheader()
            writer.writerows(rows)
    finally:
        if out:
            stream.close()
    missed = sum(r["missed"] for r in rows)
    if out:
        console.print(f"{len(rows)} events, {missed} reported late -> {out}")
