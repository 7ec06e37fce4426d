"""What `batteryloop demo` prints: each step's time as it ends, what the plant holds, where to
open it and the demo accounts (with a warning that they are demo credentials)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from batteryloop.cli.common import console

WARNING = ("DEMO CREDENTIALS: these passwords are published with batteryloop. Use them on this "
           "machine only; never on a server others can reach.")


def echo_step(step: Any) -> None:
    console.print(f"[bold]{step.name:<13}[/bold] {step.seconds:6.1f} s "
                  f"(cpu {step.cpu_seconds:5.1f} s)  {step.summary}",
                  highlight=False, soft_wrap=True)


def access(host: str, port: int) -> dict[str, Any]:
    """The URL and the demo accounts, for the output (and its JSON)."""
    from batteryloop.synth.users import accounts

    return {"url": f"http://{host}:{port}/", "api_docs": f"http://{host}:{port}/api/v1/docs",
            "accounts": [{k: a[k] for k in ("name", "password", "organisation", "role")}
                         for a in accounts()],
            "warning": WARNING}


def render(d: dict[str, Any]) -> None:
    console.print(f"demo plant ready in {d['seconds']:.1f} s", highlight=False)
    c = d["counts"]
    states = ", ".join(f"{k} {v}" for k, v in sorted(c["batteries"].items()))
    console.print(f"batteries by state: {states}", highlight=False, soft_wrap=True)
    events = ", ".join(f"{k} {v}" for k, v in sorted(c["events"].items()))
    console.print(f"ledger events: {events}", highlight=False, soft_wrap=True)
    table = Table(title="demo accounts")
    for name in ("user", "password"):
        table.add_column(name, no_wrap=True)
    table.add_column("organisation")
    table.add_column("acts as")
    for a in d["accounts"]:
        table.add_row(a["name"], a["password"], a["organisation"], a["role"])
    console.print(table)
    console.print(f"[bold red]{d['warning']}[/bold red]", soft_wrap=True)
    console.print(f"open {d['url']} (sign in at {d['url']}login; API docs {d['api_docs']})",
                  highlight=False)
