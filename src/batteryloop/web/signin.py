"""Signing in on the web pages: ``/login`` (user name and password -> a session cookie),
``/logout``, and the CSRF token every POST form of the pages carries.

The cookie ``batteryloop_session`` holds a short-lived access token (``accounts/sessions.py``, the
JWT the OAuth2 password grant gives): HttpOnly (no script reads it), SameSite=Lax (a cross-site
form post does not carry it), Secure when the page is served over https, Path=/. Only the pages
read it, never the JSON API (``api/auth.py``), which takes bearer tokens alone. It is renewed while
the reader keeps reading and lapses ``sessions.LIFETIME`` after the last page; ``/logout`` deletes
it. The tier and roles are read from the database on every request, as for any token.

CSRF: besides SameSite=Lax, each form carries ``csrf_token``, an HMAC-SHA256 under the server's
key of the signed-in session (its user and session epoch, so a renewed cookie keeps the forms
already on screen valid, and signing out everywhere voids them) or, before signing in, of a random
pre-session cookie ``batteryloop_csrf`` (the sign-in form itself, against login CSRF). A POST whose token does not match is refused (403)
before it does anything; a request that authenticates with a bearer header (not something a
browser adds by itself) needs none. Stage pages with forms depend on ``require_csrf`` and put
``{{ csrf_token(request) }}`` in a hidden ``csrf_token`` field.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from batteryloop.accounts import sessions
from batteryloop.accounts.errors import INVALID_LOGIN, Forbidden, Unauthorized
from batteryloop.accounts.service import ANONYMOUS, Accounts, Principal
from batteryloop.api import auth
from batteryloop.web.templating import templates

SESSION_COOKIE = auth.SESSION_COOKIE
CSRF_COOKIE = "batteryloop_csrf"
CSRF_FIELD = "csrf_token"
HOME = "/passport"
STALE_FORM = "the form's security token is missing or stale: reload the page and send it again"

router = APIRouter(include_in_schema=False)


# --- CSRF tokens --------------------------------------------------------------------------------
def _mac(kind: str, value: str) -> str:
    key = sessions.signing_key()
    return hmac.new(key, f"csrf|{kind}|{value}".encode(), hashlib.sha256).hexdigest()


def _session(token: str | None) -> str | None:
    """What a form token binds a live session to: its user and session epoch."""
    if not token:
        return None
    try:
        claims = sessions.decode(token)
    except Unauthorized:
        return None
    return f"{claims.user_id}.{claims.epoch}"


def csrf_token(request: Request) -> str:
    """The token a form on this page carries: bound to the signed-in session when there is one,
    else to a pre-session cookie (made now, and set on the response, if the browser has none)."""
    if not getattr(request.state, "stale_session", False):
        session = _session(request.cookies.get(SESSION_COOKIE))
        if session:
            return _mac("session", session)
    pre = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf_cookie", None)
    if not pre:
        pre = secrets.token_urlsafe(32)
        request.state.new_csrf_cookie = pre
    return _mac("pre", pre)


def _expected(request: Request) -> list[str]:
    out = []
    if session := _session(request.cookies.get(SESSION_COOKIE)):
        out.append(_mac("session", session))
    if pre := request.cookies.get(CSRF_COOKIE):
        out.append(_mac("pre", pre))
    return out


async def require_csrf(request: Request) -> None:
    """For every POST form of the pages: the form's ``csrf_token`` must match this browser's."""
    if request.headers.get("authorization"):
        return  # a bearer credential is sent on purpose, never by a cross-site form
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not any(hmac.compare_digest(sent, e)
                                            for e in _expected(request)):
        raise Forbidden(STALE_FORM)


templates.env.globals["csrf_token"] = csrf_token


# --- cookies set on the way out -----------------------------------------------------------------
def _cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")


def _forget(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="lax",
                           secure=request.url.scheme == "https")


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]


class SessionCookies:
    """Adds what the request's authentication decided to the response of a page: the renewed
    session cookie, the deletion of a stale one, a new pre-session CSRF cookie."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(auth.API_PREFIX):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_cookies(message: Any) -> None:
            if message["type"] == "http.response.start":
                carrier = Response()
                request = Request(scope)
                if state.get("renewed_session"):
                    _cookie(request, carrier, SESSION_COOKIE, state["renewed_session"],
                            int(sessions.LIFETIME.total_seconds()))
                elif state.get("stale_session") and not state.get("session_set"):
                    _forget(request, carrier, SESSION_COOKIE)
                if state.get("new_csrf_cookie") and not state.get("csrf_set"):
                    _cookie(request, carrier, CSRF_COOKIE, state["new_csrf_cookie"],
                            int(sessions.LIFETIME.total_seconds()) * 4)
                extra = [(k, v) for k, v in carrier.raw_headers if k == b"set-cookie"]
                if extra:
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cookies)


# --- pages ----------------------------------------------------------------------------------------
def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no protocol-relative //)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return HOME
    return target


def _page(request: Request, name: str, context: dict[str, Any], status_code: int = 200
          ) -> HTMLResponse:
    who = auth.authenticate(request)
    return templates.TemplateResponse(
        request, name, {"viewer_tier": who.viewer.tier, "who": who, **context},
        status_code=status_code)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _page(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse, response_model=None,
             dependencies=[Depends(require_csrf)])
def login(
    request: Request,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    """Check the password and hand the browser a session cookie; the same answer for every kind
    of wrong credential (``accounts.service.Accounts.sign_in``)."""
    target = _safe_next(next)
    try:
        with request.app.state.db.session() as s:
            accounts = Accounts(s)
            user = accounts.sign_in(username, password)
            granted = accounts.principal(user, via="password", requested=None)
            token, _ = sessions.issue(user.id, user.session_epoch, granted.scopes)
    except Unauthorized:
        request.state.principal = ANONYMOUS
        return _page(request, "login.html", {"next": target, "error": INVALID_LOGIN,
                                             "username": username}, status_code=401)
    response = RedirectResponse(target, status_code=303)
    _cookie(request, response, SESSION_COOKIE, token, int(sessions.LIFETIME.total_seconds()))
    _forget(request, response, CSRF_COOKIE)
    request.state.session_set = request.state.csrf_set = True
    return response


@router.get("/logout", response_class=HTMLResponse)
def logout_page(request: Request) -> HTMLResponse:
    """A button, not a link that signs out: a GET must change nothing."""
    return _page(request, "logout.html", {})


@router.post("/logout", response_model=None, dependencies=[Depends(require_csrf)])
def logout(request: Request) -> Response:
    response = RedirectResponse(HOME, status_code=303)
    _forget(request, response, SESSION_COOKIE)
    request.state.session_set = True
    return response


def signed_in(request: Request) -> Principal:
    """The reader of a page (bearer header or session cookie), anonymous if neither."""
    return auth.authenticate(request)


def login_url(request: Request) -> str:
    return "/login?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query
                                                      else ""), safe="/")


templates.env.globals["login_url"] = login_url


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.add_middleware(SessionCookies)
