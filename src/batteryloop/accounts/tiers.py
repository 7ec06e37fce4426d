"""Access tiers from data: organisation roles -> tier (``data/tiers.toml``), grants, own batteries.

The mapping is this project's reading of Article 77(2) and Annex XIII of Regulation (EU)
2023/1542; the file says why and can be changed without touching code.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import replace
from functools import cache
from importlib.resources import files
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.accounts.viewer import TIERS, Tier, Viewer
from batteryloop.errors import ValidationFailed
from batteryloop.store.models import Battery, Organisation


@cache
def config() -> dict[str, Any]:
    text = (files("batteryloop.accounts") / "data" / "tiers.toml").read_text("utf-8")
    data = tomllib.loads(text)
    if tuple(data["order"]) != TIERS:
        raise RuntimeError(f"tiers.toml: order {data['order']} differs from the Viewer's {TIERS}")
    for role, tier in data["organisation_roles"].items():
        if tier not in TIERS:
            raise RuntimeError(f"tiers.toml: role '{role}' maps to unknown tier '{tier}'")
    if data["own_batteries"]["tier"] not in TIERS:
        raise RuntimeError("tiers.toml: own_batteries.tier is not a tier")
    return data


def check_tier(value: str) -> Tier:
    if value not in TIERS:
        raise ValidationFailed(
            f"unknown tier '{value}' (known: {', '.join(TIERS)})", location="tier"
        )
    return cast(Tier, value)


def rank(tier: str) -> int:
    return TIERS.index(cast(Tier, tier))


def highest(*tiers: str | None) -> Tier:
    present = [t for t in tiers if t]
    return cast(Tier, max(present, key=rank)) if present else "public"


def lowest(*tiers: str | None) -> Tier:
    present = [t for t in tiers if t]
    return cast(Tier, min(present, key=rank)) if present else "public"


def tier_for_roles(roles: Iterable[str]) -> Tier:
    """The tier an organisation's roles give: the highest of them; unknown roles give public."""
    mapping = config()["organisation_roles"]
    return highest(*(mapping.get(role) for role in roles))


def user_tier(organisation_roles: Iterable[str], granted: str | None) -> Tier:
    """The roles' tier raised by an explicit grant (a grant never lowers it)."""
    return highest(tier_for_roles(organisation_roles), granted)


def own_battery_tier() -> Tier:
    return cast(Tier, config()["own_batteries"]["tier"])


def viewer_for_battery(session: Session, viewer: Viewer, battery: Battery) -> Viewer:
    """The viewer as it reads this battery: raised to the own-batteries tier when its organisation
    is the battery's manufacturer, custody holder or responsible operator; else unchanged."""
    if viewer.organisation is None:
        return viewer
    floor = own_battery_tier()
    if rank(viewer.tier) >= rank(floor):
        return viewer
    org_id = session.scalar(select(Organisation.id).where(Organisation.uid == viewer.organisation))
    if org_id is not None and org_id in (
        battery.manufacturer_id, battery.owner_id, battery.responsible_id
    ):
        return replace(viewer, tier=floor)
    return viewer
