"""Accounts endpoints: sign in (OAuth2 password grant), users, own API tokens, the audit log.

    POST   /api/v1/auth/token             form: grant_type=password, username, password[, scope]
    GET    /api/v1/auth/me                who the bearer is
    GET    /api/v1/users                  admin or authority tier
    POST   /api/v1/users                  admin
    PATCH  /api/v1/users/{name}           admin: roles, granted tier, disabled, password
    GET    /api/v1/tokens                 own tokens (admin: ?user=NAME)
    POST   /api/v1/tokens                 new token of one's own; needs a password sign-in
    DELETE /api/v1/tokens/{id}            revoke (own; admin: anyone's)
    GET    /api/v1/audit                  authority tier: reads of restricted attributes
    GET    /api/v1/audit/verify           authority tier: re-check the audit hash chain
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from batteryloop.api.pagination import Paged
from batteryloop.accounts import audit
from batteryloop.accounts.errors import Forbidden, Unauthorized
from batteryloop.accounts.service import Accounts, Principal, parse_duration
from batteryloop.accounts.viewer import Tier, Viewer
from batteryloop.api import problems
from batteryloop.api.auth import principal, require_admin, require_tier
from batteryloop.api.deps import Db
from batteryloop.errors import ValidationFailed

router = APIRouter(tags=["accounts"])
Who = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(require_admin)]
Authority = Annotated[Viewer, Depends(require_tier("authority"))]
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UserIn(_In):
    name: str = Field(min_length=1, max_length=100)
    organisation: str = Field(description="uid or exact name")
    roles: list[Literal["admin", "writer", "reader"]] = Field(default_factory=lambda: ["reader"])
    password: str | None = Field(default=None, min_length=1, max_length=1024)


class UserPatch(_In):
    roles: list[Literal["admin", "writer", "reader"]] | None = None
    granted_tier: Tier | None = Field(default=None, description="null withdraws the grant")
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1024)


class TokenIn(_In):
    label: str | None = Field(default=None, max_length=200)
    tier: Tier | None = Field(default=None, description="cap below the user's own tier")
    scopes: list[Literal["write", "admin"]] = Field(default_factory=list)
    expires: str = Field(default="90d", description="30d, 12h, 90m, 2w or 'never'")


# --- sign in --------------------------------------------------------------------------------------
@router.post("/auth/token")
def token(
    db: Db,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1024)],
    grant_type: Annotated[str | None, Form()] = None,
    scope: Annotated[str, Form(max_length=200)] = "",
) -> JSONResponse:
    """OAuth2 password grant: a bearer access token (15 minutes) for a user's password."""
    if grant_type is not None and grant_type != "password":
        raise ValidationFailed("only grant_type=password is supported", location="grant_type")
    body = Accounts(db).access_token(username, password, scope or None)
    return JSONResponse(body, headers=_NO_STORE)


@router.get("/auth/me")
def me(who: Who) -> dict[str, Any]:
    """The caller as the server sees it: tier, organisation, roles, scopes."""
    return {
        "authenticated": who.authenticated, "via": who.via, "tier": who.viewer.tier,
        "organisation": who.viewer.organisation, "user": who.viewer.user,
        "organisation_roles": sorted(who.viewer.roles), "roles": sorted(who.user_roles),
        "scopes": sorted(who.scopes), "token": who.token_id,
    }


# --- users ----------------------------------------------------------------------------------------
@router.get("/users")
def list_users(page: Paged, who: Who, db: Db) -> list[dict[str, Any]]:
    """All users (admins and authority-tier viewers)."""
    if not who.authenticated:
        raise Unauthorized()
    if not (who.may("admin") or who.viewer.may_see("authority")):
        raise Forbidden("this needs the admin role or the 'authority' tier",
                        error="insufficient_scope")
    accounts = Accounts(db)
    return page([accounts.describe_user(u) for u in accounts.users()])


@router.post("/users", status_code=status.HTTP_201_CREATED)
def add_user(body: UserIn, who: Admin, db: Db) -> dict[str, Any]:
    accounts = Accounts(db)
    return accounts.describe_user(
        accounts.add_user(body.name, body.organisation, body.roles, body.password)
    )


@router.patch("/users/{name}")
def change_user(name: str, body: UserPatch, who: Admin, db: Db) -> dict[str, Any]:
    """Roles, an explicit tier grant (e.g. authority for market surveillance), disable, password."""
    accounts = Accounts(db)
    user = accounts.user(name)
    given = body.model_fields_set
    if "roles" in given and body.roles is not None:
        accounts.set_roles(user.name, body.roles)
    if "granted_tier" in given:
        accounts.grant_tier(user.name, body.granted_tier, by=who.viewer.user or "admin")
    if "password" in given and body.password is not None:
        accounts.set_password(user.name, body.password)
    if "disabled" in given and body.disabled is not None:
        (accounts.disable if body.disabled else accounts.enable)(user.name)
    return accounts.describe_user(user)


# --- tokens ---------------------------------------------------------------------------------------
def _signed_in(who: Principal) -> str:
    if not who.authenticated or who.viewer.user is None:
        raise Unauthorized()
    return who.viewer.user


@router.get("/tokens")
def list_tokens(page: Paged,
    who: Who, db: Db, user: Annotated[str | None, Query(description="admin only")] = None,
) -> list[dict[str, Any]]:
    """The caller's API tokens (never their secrets)."""
    name = _signed_in(who)
    if user is not None and user.lower() != name and not who.may("admin"):
        raise Forbidden("only an admin lists other users' tokens", error="insufficient_scope")
    accounts = Accounts(db)
    return page([accounts.describe_token(t) for t in accounts.tokens(user or name)])


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def create_token(body: TokenIn, who: Who, db: Db, response: Response) -> dict[str, Any]:
    """A new API token for the caller, shown once. Needs a password sign-in: an API token cannot
    mint more of itself."""
    name = _signed_in(who)
    if who.via != "password":
        raise Forbidden("API tokens are created from a password sign-in, not with another token",
                        error="insufficient_scope")
    accounts = Accounts(db)
    row, plaintext = accounts.create_token(
        name, tier=body.tier, scopes=body.scopes, expires=parse_duration(body.expires),
        label=body.label,
    )
    response.headers.update(_NO_STORE)
    return {**accounts.describe_token(row), "token": plaintext}


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: str, who: Who, db: Db) -> dict[str, Any]:
    _signed_in(who)
    accounts = Accounts(db)
    row = accounts.token(token_id)
    if row.user_id != who.user_id and not who.may("admin"):
        raise Forbidden("only an admin revokes other users' tokens", error="insufficient_scope")
    return accounts.describe_token(accounts.revoke_token(row.token_id))


# --- audit log ------------------------------------------------------------------------------------
@router.get("/audit")
def audit_log(
    viewer: Authority, db: Db,
    battery: Annotated[str | None, Query(description="passport identifier (urn:uuid:...)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    """Reads of restricted passport attributes, newest first (authority tier)."""
    items, total = audit.entries(db, battery=battery, limit=limit, offset=offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/audit/verify")
def audit_verify(viewer: Authority, db: Db) -> dict[str, Any]:
    """Recompute the audit log's hash chain (authority tier)."""
    return audit.verify_audit(db).as_dict()


# --- wiring ---------------------------------------------------------------------------------------
def install(app: FastAPI) -> None:
    """The routes under /api/v1, and 401/403 problems that carry the RFC 6750 challenge."""

    @app.exception_handler(Unauthorized)
    async def _unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
        response = problems.problem(401, exc.title, exc.message, request.url.path)
        response.headers["WWW-Authenticate"] = exc.challenge
        response.headers.update(_NO_STORE)
        return response

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        response = problems.problem(403, exc.title, exc.message, request.url.path)
        if exc.error:
            challenge = f'Bearer realm="batteryloop", error="{exc.error}"'
            response.headers["WWW-Authenticate"] = challenge
        return response

    app.include_router(router, prefix="/api/v1")
