"""Accounts commands: users, API tokens, the audit log of restricted reads.

    batteryloop user add NAME --org ORG [--role admin|writer|reader ...] [--password-stdin]
    batteryloop user list | grant NAME --tier T | password NAME | disable NAME | enable NAME
    batteryloop token create --user NAME [--tier T] [--scope write] [--expires 30d] [--label L]
    batteryloop token list [--user NAME] | token revoke ID
    batteryloop audit [--battery REF] [--verify] [--json]

The command line is the operator's: it needs the database, not a sign-in, and is how the first
admin is made.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from batteryloop.accounts import audit as audit_log
from batteryloop.accounts.service import Accounts, parse_duration
from batteryloop.cli.common import console, emit, err, fail, guarded, unit_of_work
from batteryloop.errors import NotFound
from batteryloop.registry.service import Registry

JSON = Annotated[bool, typer.Option("--json", help="machine-readable output")]

user_app = typer.Typer(help="Users: people and services acting for an organisation.")
token_app = typer.Typer(help="API tokens (bearer blt_<id>_<secret>), shown once, kept hashed.")


def register(app: typer.Typer) -> None:
    """Add the user and token groups and the audit command to the main command."""
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")
    app.command("audit")(audit)


def _read_password() -> str:
    """One line from standard input, without its line ending."""
    line = sys.stdin.readline()
    if not line:
        fail("--password-stdin: nothing on standard input")
    return line.rstrip("\r\n")


def _user_line(d: dict[str, Any]) -> str:
    grant = f", granted {d['granted_tier']}" if d["granted_tier"] else ""
    off = " [red]disabled[/red]" if d["disabled_at"] else ""
    return (f"{d['name']} ({d['organisation']['name']}; roles {', '.join(d['roles'])}; "
            f"tier {d['tier']}{grant}){off}")


# --- users -------------------------------------------------------------------------------------
@user_app.command("add")
@guarded
def user_add(
    name: str,
    org: Annotated[str, typer.Option("--org", help="organisation (uid or name)")],
    role: Annotated[
        list[str] | None, typer.Option("--role", help="admin, writer or reader; repeatable")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
    as_json: JSON = False,
) -> None:
    """Add a user; without --password-stdin it signs in with API tokens only."""
    password = _read_password() if password_stdin else None
    with unit_of_work() as s:
        accounts = Accounts(s)
        data = accounts.describe_user(accounts.add_user(name, org, role or ["reader"], password))
    emit(data, as_json, lambda d: console.print(f"[green]added[/green] {_user_line(d)}",
                                                highlight=False))


@user_app.command("list")
@guarded
def user_list(as_json: JSON = False) -> None:
    """List users with their organisation, roles and tier."""
    with unit_of_work() as s:
        accounts = Accounts(s)
        rows = [accounts.describe_user(u) for u in accounts.users()]

    def render(data: list[dict[str, Any]]) -> None:
        table = Table("name", "organisation", "roles", "tier", "granted", "password", "status")
        for d in data:
            table.add_row(d["name"], d["organisation"]["name"], ", ".join(d["roles"]), d["tier"],
                          d["granted_tier"] or "", "yes" if d["has_password"] else "",
                          "disabled" if d["disabled_at"] else "active")
        console.print(table)

    emit(rows, as_json, render)


@user_app.command("grant")
@guarded
def user_grant(
    name: str,
    tier: Annotated[
        str | None, typer.Option(help="public, legitimate_interest or authority")
    ] = None,
    withdraw: Annotated[bool, typer.Option("--withdraw", help="remove the explicit grant")] = False,
    as_json: JSON = False,
) -> None:
    """Grant a user an access tier above its organisation's (e.g. authority for market
    surveillance), or withdraw the grant."""
    if (tier is None) == (not withdraw):
        fail("give either --tier TIER or --withdraw")
    with unit_of_work() as s:
        accounts = Accounts(s)
        user = accounts.grant_tier(name, None if withdraw else tier, by="cli")
        data = accounts.describe_user(user)
    emit(data, as_json, lambda d: console.print(f"[green]granted[/green] {_user_line(d)}",
                                                highlight=False))


@user_app.command("password")
@guarded
def user_password(name: str, as_json: JSON = False) -> None:
    """Set a user's password from standard input; signs the user out everywhere."""
    password = _read_password()
    with unit_of_work() as s:
        accounts = Accounts(s)
        data = accounts.describe_user(accounts.set_password(name, password))
    emit(data, as_json, lambda d: console.print(f"[green]password set[/green] for {d['name']}"))


@user_app.command("disable")
@guarded
def user_disable(name: str, as_json: JSON = False) -> None:
    """Stop a user: no sign-in, no token of it works."""
    with unit_of_work() as s:
        accounts = Accounts(s)
        data = accounts.describe_user(accounts.disable(name))
    emit(data, as_json, lambda d: console.print(f"[yellow]disabled[/yellow] {d['name']}"))


@user_app.command("enable")
@guarded
def user_enable(name: str, as_json: JSON = False) -> None:
    """Let a disabled user sign in again (its earlier access tokens stay void)."""
    with unit_of_work() as s:
        accounts = Accounts(s)
        data = accounts.describe_user(accounts.enable(name))
    emit(data, as_json, lambda d: console.print(f"[green]enabled[/green] {d['name']}"))


# --- tokens ------------------------------------------------------------------------------------
@token_app.command("create")
@guarded
def token_create(
    user: Annotated[str, typer.Option("--user", help="the user the token acts as")],
    tier: Annotated[str | None, typer.Option(help="cap below the user's own tier")] = None,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="write or admin; repeatable")
    ] = None,
    expires: Annotated[str, typer.Option(help="30d, 12h, 90m, 2w or never")] = "90d",
    label: Annotated[str | None, typer.Option(help="what the token is for")] = None,
    as_json: JSON = False,
) -> None:
    """Create an API token and print it once: it cannot be shown again."""
    lifetime = parse_duration(expires)
    with unit_of_work() as s:
        accounts = Accounts(s)
        row, plaintext = accounts.create_token(user, tier=tier, scopes=scope or [],
                                               expires=lifetime, label=label)
        data = {**accounts.describe_token(row), "token": plaintext}

    def render(d: dict[str, Any]) -> None:
        err.print(f"token {d['id']} for {d['user']} (tier {d['tier'] or 'of the user'}, expires "
                  f"{d['expires_at'] or 'never'}); it is shown only this once:", highlight=False)
        sys.stdout.write(d["token"] + "\n")

    emit(data, as_json, render)


@token_app.command("list")
@guarded
def token_list(
    user: Annotated[str | None, typer.Option("--user", help="only this user's")] = None,
    as_json: JSON = False,
) -> None:
    """List API tokens (ids and state; never the secrets)."""
    with unit_of_work() as s:
        accounts = Accounts(s)
        rows = [accounts.describe_token(t) for t in accounts.tokens(user)]

    def render(data: list[dict[str, Any]]) -> None:
        table = Table("id", "user", "label", "tier", "scopes", "state", "expires")
        for d in data:
            table.add_row(d["id"], d["user"] or "", d["label"] or "", d["tier"] or "",
                          " ".join(d["scopes"]), d["state"], d["expires_at"] or "never")
        console.print(table)

    emit(rows, as_json, render)


@token_app.command("revoke")
@guarded
def token_revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JSON = False
) -> None:
    """Revoke an API token at once."""
    with unit_of_work() as s:
        accounts = Accounts(s)
        data = accounts.describe_token(accounts.revoke_token(token_id))
    emit(data, as_json,
         lambda d: console.print(f"[yellow]revoked[/yellow] {d['id']} of {d['user']}"))


# --- audit -------------------------------------------------------------------------------------
@guarded
def audit(
    battery: Annotated[
        str | None, typer.Option(help="one battery (passport id, code or other identifier)")
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="re-check the hash chain; exit 1 if broken")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="newest entries to show")] = 100,
    as_json: JSON = False,
) -> None:
    """Who read which restricted passport attributes, when; --verify re-checks the chain."""
    with unit_of_work() as s:
        if verify:
            report = audit_log.verify_audit(s)
            data: dict[str, Any] = report.as_dict()
        else:
            uid = None
            if battery is not None:
                try:
                    uid = Registry(s).battery(battery).uid
                except NotFound:
                    uid = battery  # a battery the registry no longer resolves may still be logged
            items, total = audit_log.entries(s, battery=uid, limit=limit)
            data = {"items": items, "total": total}

    if verify:
        def render_verify(d: dict[str, Any]) -> None:
            for b in d["breaches"]:
                console.print(f"[red]{b['kind']}[/red] {b['message']}", highlight=False)
            mark = "[green]ok[/green]" if d["ok"] else f"[red]{len(d['breaches'])} breach(es)[/red]"
            console.print(f"{mark}: {d['entries']:,} audit entries; head {d['head'] or '-'}")

        emit(data, as_json, render_verify)
        if not data["ok"]:
            raise typer.Exit(1)
        return

    def render(d: dict[str, Any]) -> None:
        table = Table("seq", "at", "user", "organisation", "tier", "battery", "attributes", "path")
        for e in d["items"]:
            table.add_row(str(e["seq"]), e["at"], e["user"] or "", e["organisation"] or "",
                          e["tier"], e["battery"], ", ".join(e["attributes"]), e["path"])
        console.print(table)
        console.print(f"{len(d['items'])} of {d['total']} entries")

    emit(data, as_json, render)
