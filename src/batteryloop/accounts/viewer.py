"""Who is reading: the access tier every read path filters by.

Annex XIII of Regulation (EU) 2023/1542 opens the battery passport in three tiers: information
accessible to the public; to persons with a legitimate interest (repurposers, remanufacturers,
recyclers, independent operators...); and to notified bodies, market surveillance authorities and
the Commission. Every read path receives a Viewer and shows what its tier allows, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Tier = Literal["public", "legitimate_interest", "authority"]
TIERS: tuple[Tier, ...] = ("public", "legitimate_interest", "authority")


@dataclass(frozen=True)
class Viewer:
    tier: Tier = "public"
    organisation: str | None = None  # organisation uid
    user: str | None = None  # user name or token id
    roles: frozenset[str] = field(default_factory=frozenset)

    def may_see(self, attribute_tier: Tier) -> bool:
        return TIERS.index(self.tier) >= TIERS.index(attribute_tier)


PUBLIC = Viewer()
