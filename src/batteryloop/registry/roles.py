"""Organisation roles and their reporting deadlines (``data/roles.toml``)."""

from __future__ import annotations

from functools import cache

from batteryloop.errors import ValidationFailed
from batteryloop.registry.facts import load


@cache
def roles() -> dict[str, dict]:
    return load("roles")["roles"]


def check_role(role: str) -> str:
    if role not in roles():
        raise ValidationFailed(f"unknown organisation role '{role}' (known: {', '.join(roles())})")
    return role


def deadline_working_days(role: str) -> int | None:
    return roles()[role].get("deadline_working_days")
