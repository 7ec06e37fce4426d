"""The tables of the registry. Every stage's records hang off ``batteries``.

Hashes and signatures are stored as raw bytes (32 and 64) to keep the ledger table small; the event
payload is stored as its RFC 8785 canonical JSON text so the bytes that were hashed are the bytes kept.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL needs BIGINT for a large ledger.
BigId = BigInteger().with_variant(Integer, "sqlite")
UTCDateTime = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    country: Mapped[str | None] = mapped_column(String(2))
    # Raw 32-byte Ed25519 public key; events signed by this organisation are checked against it.
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    roles: Mapped[list[OrganisationRole]] = relationship(
        back_populates="organisation", cascade="all, delete-orphan", lazy="selectin"
    )


class OrganisationRole(Base):
    __tablename__ = "organisation_roles"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)

    organisation: Mapped[Organisation] = relationship(back_populates="roles")


class Battery(Base):
    __tablename__ = "batteries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True)  # passport identifier (urn:uuid:)
    code: Mapped[str | None] = mapped_column(String(32), unique=True)  # GB/T 34014 code
    kind: Mapped[str] = mapped_column(String(8))  # pack | module | cell
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("batteries.id"), index=True)
    chemistry: Mapped[str | None] = mapped_column(String(32))
    rated_capacity_ah: Mapped[float | None] = mapped_column(Float)
    rated_energy_wh: Mapped[float | None] = mapped_column(Float)
    nominal_voltage_v: Mapped[float | None] = mapped_column(Float)
    mass_kg: Mapped[float | None] = mapped_column(Float)
    manufacturer_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    manufactured_on: Mapped[date | None] = mapped_column(Date)
    manufacturing_place: Mapped[str | None] = mapped_column(String(200))
    # Projection of the ledger, kept for fast queries; `verify` re-derives it from the events.
    state: Mapped[str] = mapped_column(String(24), index=True)
    eu_status: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    responsible_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    head_seq: Mapped[int] = mapped_column(Integer, default=0)
    head_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Identifier(Base):
    """Any other name a battery goes by: VIN link, OEM part number, second-life product code."""

    __tablename__ = "identifiers"
    __table_args__ = (UniqueConstraint("scheme", "value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    battery_id: Mapped[int] = mapped_column(ForeignKey("batteries.id"), index=True)
    scheme: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(200), index=True)


class Event(Base):
    """One link of a battery's hash chain. Rows are only ever inserted."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("battery_id", "seq", name="uq_events_battery_seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    battery_id: Mapped[int] = mapped_column(ForeignKey("batteries.id"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(48))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    signature: Mapped[bytes | None] = mapped_column(LargeBinary(64))


class Lineage(Base):
    """A second-life battery made from source batteries (many-to-many, both ways)."""

    __tablename__ = "lineage"

    child_id: Mapped[int] = mapped_column(ForeignKey("batteries.id"), primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("batteries.id"), primary_key=True)
    relation: Mapped[str] = mapped_column(String(24))  # repurposed | remanufactured | ...


Index("ix_lineage_parent", Lineage.parent_id)
Index("ix_events_actor", Event.actor_id)


class CyclerTest(Base):
    """One tester file, stored once as Parquet (content-addressed by the file's SHA-256).

    ``parquet_path`` is relative to the data directory, so the directory can move. The full
    metadata (channel, cell id, normalisations, findings) lives in the Parquet file's key-value
    metadata; this row is what queries need.
    """

    __tablename__ = "cycler_tests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    battery_id: Mapped[int | None] = mapped_column(ForeignKey("batteries.id"), index=True)
    source_name: Mapped[str] = mapped_column(String(255))
    tester: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(32))
    rows: Mapped[int] = mapped_column(BigInteger)
    cycles: Mapped[int] = mapped_column(Integer)
    parquet_path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- accounts: users, API tokens, the audit log of restricted reads -------------------------------


class User(Base):
    """A person (or a service) acting for one organisation.

    ``password_hash`` is an argon2id PHC string, never the password; a user without one signs in
    with API tokens only. The access tier comes from the organisation's roles
    (``accounts/data/tiers.toml``) raised by ``granted_tier``, an explicit grant by an admin.
    Raising ``session_epoch`` (new password, disabling) voids every access token issued before;
    a disabled user (``disabled_at`` set) can neither sign in nor use any token.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    granted_tier: Mapped[str | None] = mapped_column(String(24))
    granted_by: Mapped[str | None] = mapped_column(String(100))
    granted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    organisation: Mapped[Organisation] = relationship(lazy="joined")
    roles: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )


class UserRole(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)  # admin | writer | reader

    user: Mapped[User] = relationship(back_populates="roles")


class ApiToken(Base):
    """A long-lived bearer token ``blt_<token_id>_<secret>``: only the id is stored in clear, the
    secret as an argon2id hash. ``tier`` caps the user's tier; ``scopes`` (space-separated) narrow
    what the user's roles allow."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    label: Mapped[str | None] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(255))
    tier: Mapped[str | None] = mapped_column(String(24))
    scopes: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """One read of restricted passport attributes: who, what, when. Rows are only ever inserted
    (the database refuses UPDATE and DELETE) and each is hash-chained to the one before."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    organisation: Mapped[str | None] = mapped_column(String(64))  # organisation uid
    user_name: Mapped[str | None] = mapped_column(String(100))
    tier: Mapped[str] = mapped_column(String(24))
    battery: Mapped[str] = mapped_column(String(64), index=True)  # passport identifier
    attributes: Mapped[str] = mapped_column(Text)  # canonical JSON list
    path: Mapped[str] = mapped_column(String(500))
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class Inspection(Base):
    """One incoming inspection of a battery (grading): what was seen and measured, by whom.

    Visual findings, BMS codes, cell voltages and cell SOH are JSON text; the same record is in
    the battery's ledger as an ``inspected`` event (``event_seq``), so the chain vouches for it.
    """

    __tablename__ = "inspections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    battery_id: Mapped[int] = mapped_column(ForeignKey("batteries.id"), index=True)
    inspector_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    inspected_by: Mapped[str | None] = mapped_column(String(200))  # the person
    inspected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    visual: Mapped[str] = mapped_column(Text)  # {"swelling": false, ...}
    ocv_v: Mapped[float | None] = mapped_column(Float)
    cell_voltages_v: Mapped[str | None] = mapped_column(Text)  # [3.61, 3.60, ...]
    insulation_resistance_ohm: Mapped[float | None] = mapped_column(Float)
    insulation_voltage_v: Mapped[float | None] = mapped_column(Float)
    bms_codes: Mapped[str | None] = mapped_column(Text)  # ["P0A7F", ...]; NULL: not read out
    cell_soh_pct: Mapped[str | None] = mapped_column(Text)  # [91.2, 90.4, ...]
    expiry_date: Mapped[date | None] = mapped_column(Date)  # the maker's, from label or datasheet
    test_ref: Mapped[str | None] = mapped_column(String(200))  # pulse or capacity test (sha256)
    notes: Mapped[str | None] = mapped_column(Text)
    event_seq: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PassportRecord(Base):
    """The static attributes of a battery's passport, as set by its maker (or the operator now
    responsible for it), and the archive of a passport that has ceased (after recycling).

    ``attributes`` is RFC 8785 canonical JSON: ``{attribute id: {value, updated_at, by}}``; the
    dynamic attributes are not here, they come from the ledger. ``archived`` is the full passport
    as it stood when it ceased, kept read-only.
    """

    __tablename__ = "passports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    battery_id: Mapped[int] = mapped_column(ForeignKey("batteries.id"), unique=True)
    attributes: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of `attributes`, also in the ledger
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    archived: Mapped[str | None] = mapped_column(Text)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PassportContact(Base):
    """An economic operator's contact details as the passport shows them (manufacturer and
    responsible operator): postal address, e-mail, web address, as canonical JSON."""

    __tablename__ = "passport_contacts"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    contact: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RecyclingBatch(Base):
    """A recycler's batch: dismantled batteries fed to one process route, and what came out.

    ``route_spec`` is the route exactly as it ran (canonical JSON: recoveries, reagents, energy,
    overrides and the data file's SHA-256); ``result`` the balance, compliance and economics frozen
    when the batch was closed.
    """

    __tablename__ = "recycling_batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)  # the recycler's batch number
    route: Mapped[str] = mapped_column(String(32))
    route_spec: Mapped[str] = mapped_column(Text)
    recycler_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    processed_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12))  # open | closed
    outputs_basis: Mapped[str | None] = mapped_column(String(12))  # measured | modelled
    result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Dismantling(Base):
    """One battery taken apart and its fractions weighed (the ``dismantled`` ledger event)."""

    __tablename__ = "dismantlings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    battery_id: Mapped[int] = mapped_column(ForeignKey("batteries.id"), unique=True)
    dismantler_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    dismantled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    weighed_mass_kg: Mapped[float] = mapped_column(Float)
    chemistry: Mapped[str] = mapped_column(String(32))
    modules: Mapped[int | None] = mapped_column(Integer)
    cells: Mapped[int | None] = mapped_column(Integer)
    event_seq: Mapped[int] = mapped_column(Integer)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("recycling_batches.id"), index=True)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DismantledFraction(Base):
    """One weighed fraction of a dismantling (black mass, foils, casings, housing...)."""

    __tablename__ = "dismantled_fractions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dismantling_id: Mapped[int] = mapped_column(ForeignKey("dismantlings.id"), index=True)
    fraction: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(8))  # pack | module | cell
    material: Mapped[str | None] = mapped_column(String(32))  # NULL: make-up from the chemistry
    mass_kg: Mapped[float] = mapped_column(Float)


class RecyclingOutput(Base):
    """An output stream of a batch, per constituent: product, residue or loss, in kg."""

    __tablename__ = "recycling_outputs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("recycling_batches.id"), index=True)
    stream: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(12))  # product | residue | loss
    constituent: Mapped[str] = mapped_column(String(32))
    mass_kg: Mapped[float] = mapped_column(Float)


class FactoryAlarm(Base):
    """One entry of a recovery line's alarm log: an alarm raised, cleared or acknowledged.

    Rows are only ever inserted (the database refuses UPDATE and DELETE); an alarm's state is read
    from its entries. ``occurrence_id`` ties a clear or an acknowledgement to the entry that
    raised the alarm, and each occurrence is cleared and acknowledged at most once. ``at`` is the
    time in the data (the grid point where the rule changed state), ``recorded_at`` the wall clock.
    """

    __tablename__ = "factory_alarms"
    __table_args__ = (
        UniqueConstraint("occurrence_id", "kind", name="uq_factory_alarms_occurrence_kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    line: Mapped[str] = mapped_column(String(64))
    alarm: Mapped[str] = mapped_column(String(200))  # rule id, or "rule id:tag"
    rule: Mapped[str] = mapped_column(String(64))
    tag: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # raised | cleared | acknowledged
    occurrence_id: Mapped[int | None] = mapped_column(ForeignKey("factory_alarms.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(12))
    message: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)


Index("ix_factory_alarms_line_alarm", FactoryAlarm.line, FactoryAlarm.alarm)
Index("ix_factory_alarms_line_at", FactoryAlarm.line, FactoryAlarm.at)
