"""Short-lived access tokens from the OAuth2 password grant: HS256-signed JWTs (RFC 7519).

Why a signed JWT rather than an opaque token kept hashed: signing in writes nothing (on SQLite
every write takes the one database write lock), and a token is checked by its signature without a
table of sessions to grow and purge. What a JWT cannot do by itself is die early, so the token
carries as little authority as possible and each request re-reads the user: the token names the
user and its ``session_epoch``; a disabled user, or one whose epoch moved on (new password,
``user disable``, sign-out-everywhere), is refused at once, and the tier and roles are taken from
the database, never from the token. Tokens live 15 minutes.

The key is 64 random bytes in ``<data_dir>/secrets/access-token.key``, made on first use with
mode 600 in a mode 700 directory, and refused if others can read it. Deleting the file and
restarting signs everybody out. Several servers over one data directory share it.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from batteryloop.accounts.errors import INVALID_TOKEN, Unauthorized
from batteryloop.settings import get_settings

ALGORITHM = "HS256"
ISSUER = "batteryloop"
AUDIENCE = "batteryloop-api"
LIFETIME = timedelta(minutes=15)
KEY_FILE = Path("secrets") / "access-token.key"
_LEEWAY = timedelta(seconds=5)
_keys: dict[Path, bytes] = {}
_lock = threading.Lock()


def key_path(data_dir: Path | None = None) -> Path:
    return ((data_dir or get_settings().data_dir) / KEY_FILE).resolve()


def signing_key(data_dir: Path | None = None) -> bytes:
    """The server's secret, made on first use (mode 600)."""
    path = key_path(data_dir)
    if path in _keys:
        return _keys[path]
    with _lock:
        if path not in _keys:
            _keys[path] = _load_or_create(path)
    return _keys[path]


def _load_or_create(path: Path) -> bytes:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(secrets.token_bytes(64)).decode() + "\n")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(
            f"{path} is readable by others (mode {mode:o}): run 'chmod 600 {path}' "
            "or delete it to make a new one"
        )
    raw = base64.b64decode(path.read_text().strip())
    if len(raw) < 32:
        raise ValueError(f"{path}: the access-token key is shorter than 32 bytes")
    return raw


@dataclass(frozen=True)
class Claims:
    user_id: int
    epoch: int
    scopes: frozenset[str]
    expires_at: datetime


def issue(user_id: int, epoch: int, scopes: frozenset[str], *, now: datetime | None = None,
          lifetime: timedelta = LIFETIME) -> tuple[str, datetime]:
    """A signed access token and when it expires."""
    now = now or datetime.now(UTC)
    expires = now + lifetime
    claims = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": str(user_id), "ep": epoch,
        "scope": " ".join(sorted(scopes)), "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()), "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(claims, signing_key(), algorithm=ALGORITHM), expires


def decode(token: str) -> Claims:
    """The claims of a valid token; anything else is 401 with one message for every cause."""
    try:
        claims = jwt.decode(
            token, signing_key(), algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
            leeway=_LEEWAY, options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
        return Claims(
            user_id=int(claims["sub"]), epoch=int(claims.get("ep", -1)),
            scopes=frozenset(str(claims.get("scope", "")).split()),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        raise Unauthorized(INVALID_TOKEN, error="invalid_token") from None
