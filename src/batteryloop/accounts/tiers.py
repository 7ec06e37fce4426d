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

from batteryloop.accounts.errors import Forbidden, Unauthorized
from batteryloop.accounts.viewer import TIERS, Tier, Viewer
from batteryloop.errors import BatteryloopError, ValidationFailed
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


def refusal(viewer: Viewer, tier: str, what: str) -> BatteryloopError:
    """The error for a reader whose tier does not reach ``tier``: 401 to an anonymous reader (sign
    in first), 403 to a signed-in one. The message names what and the tier needed, never data."""
    if viewer.user is None:
        return Unauthorized(f"{what} needs a signed-in reader of the '{tier}' access tier")
    return Forbidden(f"{what} needs the '{tier}' access tier", error="insufficient_scope")


def organisation_id(session: Session, viewer: Viewer) -> int | None:
    """The row id of the viewer's organisation (None: anonymous, or not in this registry)."""
    if viewer.organisation is None:
        return None
    return session.scalar(select(Organisation.id).where(Organisation.uid == viewer.organisation))


def raised_for(viewer: Viewer, battery: Battery, org_id: int | None) -> Viewer:
    """``viewer_for_battery`` with the organisation's row id already looked up (for lists)."""
    floor = own_battery_tier()
    if org_id is None or rank(viewer.tier) >= rank(floor):
        return viewer
    if org_id in (battery.manufacturer_id, battery.owner_id, battery.responsible_id):
        return replace(viewer, tier=floor)
    return viewer


def viewer_for_battery(session: Session, viewer: Viewer, battery: Battery) -> Viewer:
    """The viewer as it reads this battery: raised to the own-batteries tier when its organisation
    is the battery's manufacturer, custody holder or responsible operator; else unchanged."""
    if viewer.organisation is None or rank(viewer.tier) >= rank(own_battery_tier()):
        return viewer
    return raised_for(viewer, battery, organisation_id(session, viewer))
