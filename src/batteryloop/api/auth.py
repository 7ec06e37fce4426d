"""FastAPI dependencies for who is calling: the Viewer, tier checks, organisation-role checks.

    viewer                         Depends(viewer) -> Viewer; anonymous is the public Viewer
    principal                      Depends(principal) -> Principal (Viewer + user, scopes, via)
    require_tier(tier)             Depends(require_tier("authority")) -> Viewer, or 401/403
    require_organisation_role(*r)  Depends(require_organisation_role("recycler")) -> Principal
    require_admin                  Depends(require_admin) -> Principal
    require_writer                 a signed-in writer of any organisation -> Principal
    acting_organisation(s, who, named)  the caller's organisation uid; 403 if ``named`` is another

A bearer token (``Authorization: Bearer ...``) is an API token ``blt_...`` or an access token from
``POST /api/v1/auth/token``. The web pages (any path outside ``/api/``) also take the access token
a browser holds in the ``batteryloop_session`` cookie (set by ``/login``, ``web/signin.py``); the
JSON API never does, so no cross-site form or script riding on a browser's cookie can act or read
through it. A session cookie that no longer holds (expired, signed out everywhere) reads as
anonymous: the page then offers to sign in again.

A bearer token that is malformed, unknown, wrong, expired or revoked is a 401 problem with
``WWW-Authenticate: Bearer`` and nothing else in the body: the endpoint never runs. No token at
all is the public Viewer; an endpoint that needs more answers 401 to it (sign in) and 403 to a
signed-in caller whose tier, role or scope falls short.

The credentials are checked in a short unit of work of their own, finished before the endpoint
runs; the endpoint's own session (``deps.session``) is untouched, and what it records (e.g.
``accounts.audit.record_read``) commits or rolls back with its response.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from batteryloop.accounts import sessions, tiers
from batteryloop.accounts.errors import Forbidden, Unauthorized
from batteryloop.accounts.service import ANONYMOUS, TOKEN_PREFIX, Accounts, Principal
from batteryloop.accounts.viewer import Tier, Viewer
from batteryloop.registry.service import Registry

TOKEN_URL = "/api/v1/auth/token"
# Only documents the scheme in OpenAPI (the "Authorize" button); the header is read below.
bearer_scheme = OAuth2PasswordBearer(
    tokenUrl=TOKEN_URL, auto_error=False, scheme_name="bearer",
    description="An access token from the password grant, or an API token blt_<id>_<secret>.",
)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > 4096:
        raise Unauthorized("the Authorization header must be 'Bearer <token>'",
                           error="invalid_request")
    return value


SESSION_COOKIE = "batteryloop_session"  # api/guards.py keys the rate limit by it too
API_PREFIX = "/api/"


def session_cookie(request: Request) -> str | None:
    """The access token of a web page's session cookie; never on the JSON API."""
    if request.url.path.startswith(API_PREFIX):
        return None
    value = request.cookies.get(SESSION_COOKIE)
    if not value or len(value) > 4096 or value.startswith(TOKEN_PREFIX):
        return None
    return value


def _from_cookie(request: Request, token: str) -> Principal:
    """The signed-in reader of a session cookie, or anonymous if it no longer holds. A cookie past
    half its life is renewed on the way out (``request.state.renewed_session``), so a reader who
    keeps reading stays signed in and one who leaves is signed out after ``sessions.LIFETIME``."""
    try:
        claims = sessions.decode(token)
        with request.app.state.db.session() as s:
            found = Accounts(s).authenticate(token)
    except Unauthorized:
        request.state.stale_session = True
        return ANONYMOUS
    if claims.expires_at - datetime.now(UTC) < sessions.LIFETIME / 2 and found.user_id is not None:
        renewed, _ = sessions.issue(found.user_id, claims.epoch, claims.scopes)
        request.state.renewed_session = renewed
    return found


def authenticate(request: Request) -> Principal:
    """The caller of this request, checked once and kept on ``request.state``."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = _bearer(request)
    if token is not None:
        with request.app.state.db.session() as s:
            found = Accounts(s).authenticate(token)
    elif (cookie := session_cookie(request)) is not None:
        found = _from_cookie(request, cookie)
    else:
        found = ANONYMOUS
    request.state.principal = found
    return found


def principal(request: Request, _token: str | None = Depends(bearer_scheme)) -> Principal:
    return authenticate(request)


def viewer(request: Request, _token: str | None = Depends(bearer_scheme)) -> Viewer:
    """The Viewer every read path filters by; anonymous callers get the public Viewer."""
    return authenticate(request).viewer


def _need_login(who: Principal) -> None:
    if not who.authenticated:
        raise Unauthorized("this needs a signed-in caller: send 'Authorization: Bearer <token>'")


def require_tier(tier: Tier) -> Callable[..., Viewer]:
    """A dependency that admits viewers of at least ``tier`` and returns the Viewer."""
    tiers.check_tier(tier)

    def check(request: Request, _token: str | None = Depends(bearer_scheme)) -> Viewer:
        who = authenticate(request)
        if who.viewer.may_see(tier):
            return who.viewer
        _need_login(who)
        raise Forbidden(f"this needs the '{tier}' access tier", error="insufficient_scope")

    check.__name__ = f"require_tier_{tier}"
    return check


def require_scope(scope: str) -> Callable[..., Principal]:
    def check(request: Request, _token: str | None = Depends(bearer_scheme)) -> Principal:
        who = authenticate(request)
        _need_login(who)
        if not who.may(scope):
            raise Forbidden(f"this needs the '{scope}' scope (user role and token)",
                            error="insufficient_scope")
        return who

    check.__name__ = f"require_scope_{scope}"
    return check


def require_organisation_role(*roles: str) -> Callable[..., Principal]:
    """For write endpoints: a signed-in caller with the ``write`` scope (user role ``writer``, and
    a token that carries it) acting for an organisation that has one of ``roles`` (any role when
    none are named). Returns the Principal; its ``viewer.organisation`` is the acting
    organisation's uid."""
    wanted = frozenset(roles)

    def check(request: Request, _token: str | None = Depends(bearer_scheme)) -> Principal:
        who = authenticate(request)
        _need_login(who)
        if not who.may("write"):
            raise Forbidden("this needs the 'write' scope (user role writer, and a token with it)",
                            error="insufficient_scope")
        if wanted and not (wanted & who.viewer.roles):
            raise Forbidden(
                "this needs an organisation with the role " + " or ".join(sorted(wanted)),
                error="insufficient_scope",
            )
        return who

    check.__name__ = "require_organisation_role_" + "_".join(sorted(wanted))
    return check


require_admin = require_scope("admin")
require_writer = require_organisation_role()


def acting_organisation(session: Session, who: Principal, named: str | None) -> str:
    """The organisation a write acts for: the signed-in caller's. A body or form that names
    another organisation (uid or name) is refused: a caller acts for its own organisation only."""
    own = who.viewer.organisation
    if own is None:
        raise Forbidden("this needs a user acting for an organisation", error="insufficient_scope")
    if named is not None and named.strip() and named.strip() != own:
        if Registry(session).organisation(named.strip()).uid != own:
            raise Forbidden(f"you act for your own organisation, not '{named}'",
                            error="insufficient_scope")
    return own
