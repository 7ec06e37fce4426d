"""Users, API tokens and signing in: who a request is (a ``Principal``) and what tier it reads at.

A user acts for one organisation. Its tier comes from data: the organisation's roles through
``data/tiers.toml``, raised by an explicit grant. Its own roles say what else it may do:

    reader  reads (every user can)
    writer  acts for its organisation on write endpoints (scope ``write``)
    admin   manages users, grants tiers, revokes anyone's tokens (scope ``admin``)

API tokens look like ``blt_<token id>_<secret>``: the 12-hex-digit id is stored in clear for the
look-up, the secret (``secrets.token_urlsafe(32)``, 256 bits) only as an argon2id hash; the token
is shown once. A token may cap the tier below its user's and narrow the scopes; it never widens
either, and a change of the user's roles, tier or status applies to its tokens at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.accounts import hashing, sessions, tiers
from batteryloop.accounts.errors import INVALID_LOGIN, INVALID_TOKEN, Unauthorized
from batteryloop.accounts.viewer import PUBLIC, Tier, Viewer
from batteryloop.errors import Conflict, NotFound, ValidationFailed
from batteryloop.registry.service import Registry
from batteryloop.store.models import ApiToken, User, UserRole

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "reader": frozenset(),
    "writer": frozenset({"write"}),
    "admin": frozenset({"admin"}),
}
USER_ROLES = tuple(ROLE_SCOPES)
SCOPES = ("write", "admin")
TOKEN_PREFIX = "blt_"
_TOKEN = re.compile(r"^blt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})\Z")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._@+-]{0,99}\Z")
_DURATION = re.compile(r"^(\d{1,5})([mhdw])\Z")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MIN_PASSWORD, MAX_PASSWORD = 12, 1024
DEFAULT_TOKEN_LIFETIME = timedelta(days=90)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the Viewer that read paths filter by, and what else it may do."""

    viewer: Viewer = PUBLIC
    via: Literal["anonymous", "password", "token"] = "anonymous"
    user_id: int | None = None
    user_roles: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)  # write, admin: beyond reading
    token_id: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None

    def may(self, scope: str) -> bool:
        return scope in self.scopes


ANONYMOUS = Principal()


def parse_duration(text: str | None) -> timedelta | None:
    """'30d', '12h', '90m', '2w' -> timedelta; 'never' -> None (no expiry)."""
    if text is None:
        return DEFAULT_TOKEN_LIFETIME
    text = text.strip().lower()
    if text == "never":
        return None
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValidationFailed(
            f"'{text}' is not a duration like 30d, 12h, 90m, 2w or 'never'", location="expires"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    out = frozenset(s for s in scopes if s)
    unknown = sorted(out - set(SCOPES))
    if unknown:
        raise ValidationFailed(
            f"unknown scope(s) {', '.join(unknown)} (known: {', '.join(SCOPES)})", location="scope"
        )
    return out


def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _iso(dt: datetime | None) -> str | None:
    value = _utc(dt)
    return value.isoformat().replace("+00:00", "Z") if value else None


class _VerifiedCache:
    """Token ids whose secret argon2 already accepted, with a SHA-256 of that secret, in memory
    only: a token used again costs a dictionary look-up, not an argon2 run. Keyed by the stored
    hash too, so a changed row never matches. Revocation and expiry are read from the row on every
    request regardless."""

    def __init__(self, size: int = 4096) -> None:
        self._items: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def matches(self, token_id: str, stored: str, secret: str) -> bool:
        with self._lock:
            digest = self._items.get((token_id, stored))
            if digest is not None:
                self._items.move_to_end((token_id, stored))
        return digest is not None and hmac.compare_digest(
            digest, hashlib.sha256(secret.encode()).digest()
        )

    def add(self, token_id: str, stored: str, secret: str) -> None:
        with self._lock:
            self._items[(token_id, stored)] = hashlib.sha256(secret.encode()).digest()
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


VERIFIED = _VerifiedCache()


class Accounts:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- users ---------------------------------------------------------------------------------
    def add_user(
        self, name: str, organisation: str, roles: Iterable[str] = ("reader",),
        password: str | None = None,
    ) -> User:
        name = self._check_name(name)
        role_list = list(dict.fromkeys(roles)) or ["reader"]
        for role in role_list:
            if role not in ROLE_SCOPES:
                raise ValidationFailed(
                    f"unknown user role '{role}' (known: {', '.join(USER_ROLES)})", location="role"
                )
        org = Registry(self.session).organisation(organisation)
        if self.session.scalar(select(User.id).where(User.name == name)):
            raise Conflict(f"a user named '{name}' already exists")
        user = User(
            name=name, organisation_id=org.id, organisation=org,
            password_hash=hashing.hash_secret(self._check_password(password)) if password else None,
            session_epoch=0, created_at=datetime.now(UTC),
            roles=[UserRole(role=r) for r in role_list],
        )
        self.session.add(user)
        self.session.flush()
        return user

    def user(self, name: str) -> User:
        user = self.session.scalar(select(User).where(User.name == name.strip().lower()))
        if user is None:
            raise NotFound(f"no user '{name}'")
        return user

    def users(self) -> list[User]:
        return list(self.session.scalars(select(User).order_by(User.name)))

    def set_password(self, name: str, password: str) -> User:
        """A new password; every access token signed before it stops working."""
        user = self.user(name)
        user.password_hash = hashing.hash_secret(self._check_password(password))
        user.session_epoch += 1
        self.session.flush()
        return user

    def grant_tier(self, name: str, tier: str | None, *, by: str) -> User:
        """An explicit tier (e.g. authority for a market-surveillance officer); None withdraws
        it."""
        user = self.user(name)
        user.granted_tier = tiers.check_tier(tier) if tier else None
        user.granted_by = by if tier else None
        user.granted_at = datetime.now(UTC) if tier else None
        self.session.flush()
        return user

    def set_roles(self, name: str, roles: Iterable[str]) -> User:
        user = self.user(name)
        wanted = list(dict.fromkeys(roles))
        for role in wanted:
            if role not in ROLE_SCOPES:
                raise ValidationFailed(f"unknown user role '{role}'", location="role")
        user.roles = [r for r in user.roles if r.role in wanted]
        have = {r.role for r in user.roles}
        user.roles.extend(UserRole(role=r) for r in wanted if r not in have)
        self.session.flush()
        return user

    def disable(self, name: str) -> User:
        """The user can no longer sign in; its access tokens and API tokens stop working."""
        user = self.user(name)
        if user.disabled_at is None:
            user.disabled_at = datetime.now(UTC)
            user.session_epoch += 1
        self.session.flush()
        return user

    def enable(self, name: str) -> User:
        user = self.user(name)
        user.disabled_at = None
        self.session.flush()
        return user

    def tier_of(self, user: User) -> Tier:
        return tiers.user_tier((r.role for r in user.organisation.roles), user.granted_tier)

    def describe_user(self, user: User) -> dict[str, Any]:
        """Everything about a user except its password hash."""
        org_roles = sorted(r.role for r in user.organisation.roles)
        return {
            "name": user.name,
            "organisation": {"uid": user.organisation.uid, "name": user.organisation.name},
            "organisation_roles": org_roles,
            "roles": sorted(r.role for r in user.roles),
            "tier": self.tier_of(user),
            "tier_from_roles": tiers.tier_for_roles(org_roles),
            "granted_tier": user.granted_tier,
            "granted_by": user.granted_by,
            "granted_at": _iso(user.granted_at),
            "has_password": user.password_hash is not None,
            "disabled_at": _iso(user.disabled_at),
            "created_at": _iso(user.created_at),
        }

    # --- principals ----------------------------------------------------------------------------
    def principal(
        self, user: User, *, via: Literal["password", "token"], requested: frozenset[str] | None,
        tier_cap: str | None = None, token_id: str | None = None,
    ) -> Principal:
        org_roles = frozenset(r.role for r in user.organisation.roles)
        user_roles = frozenset(r.role for r in user.roles)
        allowed = frozenset().union(*(ROLE_SCOPES.get(r, frozenset()) for r in user_roles))
        tier = self.tier_of(user)
        if tier_cap:
            tier = tiers.lowest(tier, tier_cap)
        return Principal(
            viewer=Viewer(tier=tier, organisation=user.organisation.uid, user=user.name,
                          roles=org_roles),
            via=via, user_id=user.id, user_roles=user_roles,
            scopes=allowed if requested is None else allowed & requested, token_id=token_id,
        )

    def sign_in(self, name: str, password: str) -> User:
        """The user whose password this is; one answer for an unknown user, a wrong password, a
        user without a password and a disabled user, after the same argon2 work."""
        user = self.session.scalar(select(User).where(User.name == name.strip().lower()))
        stored = user.password_hash if user is not None else None
        ok = hashing.verify_secret(stored, password)
        if not ok or user is None or user.disabled_at is not None:
            raise Unauthorized(INVALID_LOGIN, error="invalid_grant")
        if user.password_hash and hashing.needs_rehash(user.password_hash):
            user.password_hash = hashing.hash_secret(password)
            self.session.flush()
        return user

    def access_token(self, name: str, password: str, scope: str | None = None) -> dict[str, Any]:
        """OAuth2 password grant (RFC 6749 4.3): a short-lived bearer token for a password."""
        requested = check_scopes(scope.split()) if scope else None
        user = self.sign_in(name, password)
        granted = self.principal(user, via="password", requested=requested)
        token, expires = sessions.issue(user.id, user.session_epoch, granted.scopes)
        return {
            "access_token": token, "token_type": "bearer",
            "expires_in": int((expires - datetime.now(UTC)).total_seconds()),
            "scope": " ".join(sorted(granted.scopes)),
            "tier": granted.viewer.tier,
        }

    def authenticate(self, bearer: str, *, now: datetime | None = None) -> Principal:
        """The principal behind a bearer token (an API token or a signed access token), or 401."""
        if bearer.startswith(TOKEN_PREFIX):
            return self._api_token(bearer, now or datetime.now(UTC))
        claims = sessions.decode(bearer)
        user = self.session.get(User, claims.user_id)
        if user is None or user.disabled_at is not None or user.session_epoch != claims.epoch:
            raise Unauthorized(INVALID_TOKEN, error="invalid_token")
        return self.principal(user, via="password", requested=claims.scopes)

    # --- API tokens ----------------------------------------------------------------------------
    def create_token(
        self, user_name: str, *, tier: str | None = None, scopes: Iterable[str] = (),
        expires: timedelta | None = DEFAULT_TOKEN_LIFETIME, label: str | None = None,
    ) -> tuple[ApiToken, str]:
        """A new API token and its plaintext, which exists only in this return value."""
        user = self.user(user_name)
        if user.disabled_at is not None:
            raise Conflict(f"user '{user.name}' is disabled")
        wanted = check_scopes(scopes)
        allowed = frozenset().union(*(ROLE_SCOPES.get(r.role, frozenset()) for r in user.roles))
        if wanted - allowed:
            raise ValidationFailed(
                f"user '{user.name}' has no role that allows scope(s) "
                f"{', '.join(sorted(wanted - allowed))}", location="scope",
            )
        if tier is not None:
            tiers.check_tier(tier)
            if tiers.rank(tier) > tiers.rank(self.tier_of(user)):
                raise ValidationFailed(
                    f"a token cannot read at a higher tier ('{tier}') than its user "
                    f"('{self.tier_of(user)}')", location="tier",
                )
        if label is not None and len(label) > 200:
            raise ValidationFailed("at most 200 characters", location="label")
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        row = ApiToken(
            token_id=token_id, user_id=user.id, label=label,
            secret_hash=hashing.hash_secret(secret), tier=tier, scopes=" ".join(sorted(wanted)),
            created_at=now, expires_at=now + expires if expires is not None else None,
        )
        self.session.add(row)
        self.session.flush()
        return row, f"{TOKEN_PREFIX}{token_id}_{secret}"

    def token(self, token_id: str) -> ApiToken:
        token_id = token_id.strip()
        match = _TOKEN.match(token_id)  # a whole token given by mistake: take its id only
        row = self.session.scalar(
            select(ApiToken).where(ApiToken.token_id == (match.group(1) if match else token_id))
        )
        if row is None:
            raise NotFound(f"no API token '{token_id[:16]}'")
        return row

    def tokens(self, user_name: str | None = None) -> list[ApiToken]:
        stmt = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
        if user_name is not None:
            stmt = stmt.where(ApiToken.user_id == self.user(user_name).id)
        return list(self.session.scalars(stmt))

    def revoke_token(self, token_id: str) -> ApiToken:
        row = self.token(token_id)
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
            self.session.flush()
        return row

    def describe_token(self, row: ApiToken, *, now: datetime | None = None) -> dict[str, Any]:
        """A token's record; never its secret or hash."""
        now = now or datetime.now(UTC)
        expires = _utc(row.expires_at)
        state = (
            "revoked" if row.revoked_at is not None
            else "expired" if expires is not None and expires <= now
            else "active"
        )
        owner = self.session.get(User, row.user_id)
        return {
            "id": row.token_id, "user": owner.name if owner else None, "label": row.label,
            "tier": row.tier, "scopes": row.scopes.split(), "state": state,
            "created_at": _iso(row.created_at), "expires_at": _iso(row.expires_at),
            "revoked_at": _iso(row.revoked_at),
        }

    def _api_token(self, bearer: str, now: datetime) -> Principal:
        match = _TOKEN.match(bearer)
        if match is None:
            raise Unauthorized(INVALID_TOKEN, error="invalid_token")
        token_id, secret = match.groups()
        row = self.session.scalar(select(ApiToken).where(ApiToken.token_id == token_id))
        if row is not None and VERIFIED.matches(token_id, row.secret_hash, secret):
            ok = True
        else:
            ok = hashing.verify_secret(row.secret_hash if row else None, secret)
            if ok and row is not None:
                VERIFIED.add(token_id, row.secret_hash, secret)
        if not ok or row is None or row.revoked_at is not None:
            raise Unauthorized(INVALID_TOKEN, error="invalid_token")
        expires = _utc(row.expires_at)
        if expires is not None and expires <= now:
            raise Unauthorized(INVALID_TOKEN, error="invalid_token")
        user = self.session.get(User, row.user_id)
        if user is None or user.disabled_at is not None:
            raise Unauthorized(INVALID_TOKEN, error="invalid_token")
        return self.principal(
            user, via="token", requested=frozenset(row.scopes.split()), tier_cap=row.tier,
            token_id=token_id,
        )

    # --- checks --------------------------------------------------------------------------------
    @staticmethod
    def _check_name(name: str) -> str:
        name = name.strip().lower()
        if not _NAME.match(name):
            raise ValidationFailed(
                "a user name is 1 to 100 of a-z, 0-9 and . _ @ + - (starting with a letter or "
                "digit)", location="name",
            )
        return name

    @staticmethod
    def _check_password(password: str | None) -> str:
        if password is None or not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
            raise ValidationFailed(
                f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters", location="password"
            )
        return password
