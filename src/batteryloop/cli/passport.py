"""Passport commands: create, update, show (by tier), export, import, QR, condition reports, and
the end of life (waste, recycled). Reads go through the same tier filter as the API and the web
page; ``--as`` picks the tier to read at (this command line has the database at hand, so it is
the operator choosing a view, not a credential)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from batteryloop.accounts.viewer import TIERS, Viewer
from batteryloop.cli.common import console, emit, fail, guarded, unit_of_work
from batteryloop.passport import export, importer, jsonld, qr, service, view
from batteryloop.passport.attributes import categories
from batteryloop.settings import get_settings

app = typer.Typer(help="EU battery passport: Annex XIII tiers, Battery Pass v1.2 export, QR.",
                  no_args_is_help=True)

AsTier = Annotated[str, typer.Option("--as", help="read at this tier: " + ", ".join(TIERS))]
Actor = Annotated[str | None, typer.Option(help="acting organisation (uid or name)")]
ValuesFile = Annotated[Path | None, typer.Option(help="JSON or TOML: attribute id -> value")]
ValuesSet = Annotated[list[str] | None, typer.Option("--set", help="ID=VALUE (JSON value)")]
Json = Annotated[bool, typer.Option("--json")]


def _viewer(tier: str) -> Viewer:
    if tier not in TIERS:
        fail(f"unknown tier '{tier}' (known: {', '.join(TIERS)})")
    return Viewer(tier=tier)  # type: ignore[arg-type]


def _load(path: Path) -> dict[str, Any]:
    text = path.read_text("utf-8")
    data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    if not isinstance(data, dict):
        fail(f"{path}: expected an object of attribute id -> value")
    return data


def _value(text: str) -> Any:
    """A --set value: JSON if it parses (numbers, objects, lists), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pairs(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--set takes ID=VALUE, got '{item}'")
        out[key.strip()] = _value(value)
    return out


def _render(shown: dict[str, Any]) -> None:
    console.print(f"[bold]{shown['passport']}[/bold] ({shown['kind']}) read at the "
                  f"{shown['viewer_tier']} tier" + ("  [red]ceased, archived[/red]" if shown["ceased"] else ""))
    for cat, attrs in shown["categories"].items():
        table = Table("attribute", "value", "tier", "source", title=categories()[cat]["title"],
                      title_justify="left")
        for attr_id, a in attrs.items():
            value = a["value"] if isinstance(a["value"], str) else json.dumps(a["value"])
            table.add_row(attr_id, value, a["tier"], a["source"])
        console.print(table)
    if shown["withheld"]:
        console.print("withheld (higher tiers): " + ", ".join(f"{n} {t}" for t, n in shown["withheld"].items()))



def _values(file: Path | None, pairs: list[str] | None) -> dict:
    """Attribute values from a file, overridden by --set pairs."""
    return {**(_load(file) if file else {}), **_pairs(pairs or [])}


@app.command("create")
@guarded
def create(
    ref: str,
    file: ValuesFile = None,
    set_: ValuesSet = None,
    actor: Actor = None, as_json: Json = False,
) -> None:
    """Start the maker's passport record of a registered battery."""
    values = _values(file, set_)
    with unit_of_work() as s:
        result = service.create(s, ref, values, actor=actor)
    emit(result, as_json, lambda r: console.print(f"passport {r['passport']} v{r['version']}: "
                                                  f"{len(r['attributes'])} attribute(s)"))


@app.command("update")
@guarded
def update(
    ref: str,
    file: ValuesFile = None,
    set_: ValuesSet = None,
    unset: Annotated[list[str] | None, typer.Option(help="attribute id to remove")] = None,
    actor: Actor = None, as_json: Json = False,
) -> None:
    """Set or remove static attributes (refused once the passport has ceased)."""
    values = _values(file, set_)
    with unit_of_work() as s:
        result = service.update(s, ref, values, unset=unset or [], actor=actor)
    emit(result, as_json, lambda r: console.print(f"passport {r['passport']} v{r['version']}: "
                                                  f"{', '.join(r['attributes'])}"))


@app.command("show")
@guarded
def show(ref: str, tier: AsTier = "public", as_json: Json = False) -> None:
    """The passport as a reader of that tier sees it."""
    with unit_of_work() as s:
        shown = view.read(s, ref, _viewer(tier), path=f"cli:passport show {ref}").as_dict()
    emit(shown, as_json, _render)


@app.command("search")
@guarded
def search(
    q: Annotated[str | None, typer.Argument(help="passport id or battery code, or part")] = None,
    category: str | None = None, chemistry: str | None = None,
    status: str | None = None, tier: AsTier = "public", limit: int = 50,
) -> None:
    """Passports matching identifiers and filters, as a reader of that tier sees them (JSON)."""
    with unit_of_work() as s:
        result = view.search(s, _viewer(tier), q=q, category=category, chemistry=chemistry,
                             status=status, limit=limit, path="cli:passport search")
    emit({**result, "items": [i.as_dict() for i in result["items"]]}, True)


@app.command("export")
@guarded
def export_(
    ref: str,
    fmt: Annotated[str, typer.Option("--format", help="batterypass | jsonld")] = "batterypass",
    tier: AsTier = "public",
    out: Annotated[Path | None, typer.Option(help="write here instead of stdout")] = None,
    check: Annotated[bool, typer.Option(help="fail unless it validates against the schemas")] = False,
) -> None:
    """Battery Pass v1.2 JSON (or JSON-LD) of the passport at that tier."""
    if fmt not in ("batterypass", "jsonld"):
        fail(f"unknown format '{fmt}' (batterypass or jsonld)")
    with unit_of_work() as s:
        shown = view.read(s, ref, _viewer(tier), path=f"cli:passport export {ref}")
    document = export.document(shown)
    if check:
        errors = export.check(shown, document)
        for e in errors[:20]:
            typer.echo(f"  {e['aspect']}/{e['path']}: {e['message']}", err=True)
        if errors:
            fail(f"{len(errors)} schema error(s) against Battery Pass v1.2")
    data = jsonld.jsonld(shown) if fmt == "jsonld" else document
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if out:
        out.write_text(text, "utf-8")
        console.print(f"wrote {out}")
    else:
        typer.echo(text, nl=False)


@app.command("import")
@guarded
def import_(
    file: Path,
    actor: Actor = None,
    kind: Annotated[str, typer.Option(help="pack, module or cell, for a battery new here")] = "pack",
    as_json: Json = False,
) -> None:
    """Import a passport from Battery Pass v1.2 JSON (all of it, or nothing)."""
    document = json.loads(file.read_text("utf-8"))
    with unit_of_work() as s:
        result = importer.import_document(s, document, actor=actor, kind=kind)
    emit(result, as_json, lambda r: console.print(
        f"{'registered and imported' if r['created'] else 'imported'} {r['passport']}: "
        f"{len(r['static'])} static, {len(r['reported'])} reported"
        + "".join(f"\n  warning: {w}" for w in r["warnings"])))


@app.command("qr")
@guarded
def qr_(
    ref: str,
    out: Annotated[Path, typer.Option(help="file.svg or file.png")],
    base_url: Annotated[str | None, typer.Option(help="public site (default: host and port "
                                                         "from the settings)")] = None,
) -> None:
    """The QR code that resolves to the battery's public passport page."""
    settings = get_settings()
    base = base_url or f"http://{settings.host}:{settings.port}"
    with unit_of_work() as s:
        uid = view.read(s, ref, _viewer("public"), path=f"cli:passport qr {ref}", only=()).uid
    url = qr.page_url(base, uid)
    out.write_bytes(qr.png(url) if out.suffix.lower() == ".png" else qr.svg(url))
    console.print(f"{out}: {url}")


@app.command("condition")
@guarded
def condition(
    ref: str,
    file: ValuesFile = None,
    set_: ValuesSet = None,
    actor: Actor = None, as_json: Json = False,
) -> None:
    """Report values from use (counters, SOC, temperatures, negative events) to the ledger."""
    values = _values(file, set_)
    with unit_of_work() as s:
        result = service.report_condition(s, ref, values, actor=actor)
    emit(result, as_json, lambda r: console.print(f"event {r['seq']}: {', '.join(r['attributes'])}"))


@app.command("waste")
@guarded
def waste(ref: str, operator: Annotated[str, typer.Option(help="waste management operator")],
          actor: Actor = None, reason: str | None = None, as_json: Json = False) -> None:
    """The battery becomes waste: its passport stays, responsibility moves to the operator."""
    with unit_of_work() as s:
        result = service.to_waste(s, ref, operator, actor=actor, reason=reason)
    emit(result, as_json, lambda r: console.print(f"{r['passport']}: waste, responsible {r['responsible']}"))


@app.command("recycle")
@guarded
def recycle(ref: str, actor: Actor = None, as_json: Json = False) -> None:
    """The battery is recycled: its passport ceases and is archived read-only."""
    with unit_of_work() as s:
        result = service.recycle(s, ref, actor=actor)
    emit(result, as_json, lambda r: console.print(f"{r['passport']}: ceased, archived {r['archived_at']}"))


@app.command("contact")
@guarded
def contact(
    organisation: str,
    street: Annotated[str | None, typer.Option(help="street address")] = None,
    postal_code: str | None = None, country: str | None = None,
    email: str | None = None, web: str | None = None, as_json: Json = False,
) -> None:
    """The postal address, e-mail and web address a passport shows for an operator."""
    fields = {"streetAddress": street, "postalCode": postal_code, "addressCountry": country,
              "emailAddress": email, "webAddress": web}
    with unit_of_work() as s:
        result = service.set_contact(s, organisation, {k: v for k, v in fields.items() if v})
    emit(result, as_json, lambda r: console.print(f"contact of {r['name']} set"))


@app.command("attributes")
@guarded
def attributes(as_json: Json = False) -> None:
    """The attribute table: Battery Pass path, Annex XIII tier and basis, source."""
    rows = service.attribute_table()

    def render(items: list[dict[str, Any]]) -> None:
        table = Table("id", "tier", "basis", "source", "Battery Pass path")
        for r in items:
            table.add_row(r["id"], r["tier"], r["basis"] + (" *" if r["reading"] == "project" else ""),
                          r["source"], r["path"] or "-")
        console.print(table)
        console.print("* this project's reading where the Regulation is silent or unclear")

    emit(rows, as_json, render)
