"""Demo accounts, one per role of the loop, with known passwords (``data/demo.toml``).

DEMO CREDENTIALS: anyone who has read the file or the demo's output can sign in with them. They
exist so a newcomer can sign in as each party; a reachable deployment must not have them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.accounts.service import Accounts
from batteryloop.store.models import User


def accounts() -> list[dict[str, Any]]:
    from batteryloop.synth.pipeline import config

    return [dict(a) for a in config()["accounts"]]


def ensure(session: Session) -> list[dict[str, Any]]:
    """Create the demo accounts that do not exist yet; returns those created."""
    service = Accounts(session)
    made = []
    have = set(session.scalars(select(User.name)))
    for account in accounts():
        if account["name"] in have:
            continue
        service.add_user(account["name"], account["organisation"], roles=account["roles"],
                         password=account["password"])
        made.append(account)
    return made
