"""Every CLI command can answer in JSON for scripts, except the few whose output is a file or a server."""

from __future__ import annotations

from typing import Any

import typer.main

from batteryloop.cli.main import app

# Commands whose product is not a report (a server, or a file written where the user said), and
# "passport search", whose output is always JSON.
NO_JSON = {"serve", "demo", "export", "passport export", "passport qr", "passport search"}


def _leaves(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    if hasattr(command, "commands"):
        return [leaf for name, sub in command.commands.items() for leaf in _leaves(sub, (*path, name))]
    return [(" ".join(path), command)]


def test_every_command_has_json_output() -> None:
    leaves = _leaves(typer.main.get_command(app))
    assert len(leaves) > 40
    missing = [name for name, cmd in leaves
               if name not in NO_JSON
               and "--json" not in {o for p in cmd.params for o in getattr(p, "opts", [])}]
    assert not missing, f"commands without --json: {missing}"


def test_init_reports_the_database_as_json(cli) -> None:  # type: ignore[no-untyped-def]
    import json

    code, out, _ = cli("init", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["dialect"] in {"sqlite", "postgresql"} and "://" in data["database"]
