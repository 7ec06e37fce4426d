"""Input shapes of the registry, shared by the API, the CLI and bulk import.

pydantic checks types and ranges and names the field; the service checks what needs the database.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

Kind = Literal["pack", "module", "cell"]
# Art. 77(6) of Regulation (EU) 2023/1542: preparing for re-use, repurposing and remanufacturing
# each give the battery a new passport linked to its originals (lifecycle.toml, initial states).
SecondLife = Literal["reused", "repurposed", "remanufactured"]
SECOND_LIFE: tuple[str, ...] = ("reused", "repurposed", "remanufactured")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OrganisationIn(_In):
    name: str = Field(min_length=1, max_length=200)
    roles: list[str] = Field(min_length=1)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    public_key: str | None = Field(default=None, description="Ed25519 public key, 64 hex characters")


class BatteryIn(_In):
    code: str | None = Field(default=None, description="GB/T 34014-2017 code")
    uid: str | None = Field(default=None, description="passport identifier; generated if absent")
    kind: Kind | None = Field(default=None, description="taken from the code when absent")
    parent: str | None = Field(default=None, description="the pack or module this is part of")
    chemistry: str | None = Field(default=None, max_length=32)
    rated_capacity_ah: PositiveFloat | None = None
    rated_energy_wh: PositiveFloat | None = None
    nominal_voltage_v: PositiveFloat | None = None
    mass_kg: PositiveFloat | None = None
    manufacturer: str | None = None
    manufactured_on: date | None = None
    manufacturing_place: str | None = Field(default=None, max_length=200)
    owner: str | None = Field(default=None, description="custody holder; default the manufacturer")
    state: str = "produced"
    identifiers: dict[str, str] = Field(default_factory=dict)
    lenient_code: bool = Field(default=False, description="accept real labels with letter serials")


class EventIn(_In):
    battery: str
    type: str
    actor: str | None = None
    occurred_at: datetime | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    signature: str | None = Field(default=None, description="Ed25519 signature, hex")


class StatusIn(_In):
    to: str
    actor: str | None = None
    occurred_at: datetime | None = None
    reason: str | None = None
    signature: str | None = None


class TransferIn(_In):
    custody_to: str | None = None
    responsibility_to: str | None = None
    actor: str | None = None
    occurred_at: datetime | None = None
    reason: str | None = None
    signature: str | None = None


class SuccessorIn(_In):
    """A re-used, repurposed or remanufactured battery: a new identity (so a new passport) made
    from source batteries, linked to all of them (Art. 77(6))."""

    sources: list[str] = Field(min_length=1)
    relation: SecondLife
    battery: BatteryIn
    actor: str | None = None
