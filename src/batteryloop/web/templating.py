"""The one Jinja environment of the pages, with the small formatting helpers every template uses.

Why one: the passport pages and the stage pages share the layout (base.html, the nav bar), so the
helpers the layout calls must be in the environment whichever page renders it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates

TEMPLATES = Path(__file__).parent / "templates"


def _reader(request: Request) -> dict[str, Any]:
    """The signed-in reader for the nav bar, as the request's authentication left it."""
    return {"me": getattr(request.state, "principal", None)}


templates = Jinja2Templates(directory=str(TEMPLATES), context_processors=[_reader])

_TIER_LABELS = {"public": "public", "legitimate_interest": "legitimate interest",
                "authority": "notified bodies, market surveillance and the Commission"}


def number(value: Any) -> str:
    """Ten significant digits at most; anything not a finite number as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return str(value)
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def fixed(value: Any, digits: int = 2) -> str:
    """A measured value for a table: fixed decimals, an em dash for missing or NaN."""
    if value is None or isinstance(value, bool):
        return "—"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{x:.{digits}f}" if math.isfinite(x) else "—"


def short_uid(uid: str | None) -> str:
    """The first block of a passport id, enough to tell batteries apart on a page."""
    if not uid:
        return ""
    return uid.removeprefix("urn:uuid:").split("-")[0]


def tier_label(tier: str) -> str:
    return _TIER_LABELS.get(tier, tier)


templates.env.globals.update(number=number, fixed=fixed, short_uid=short_uid,
                             tier_label=tier_label)
