"""Signing in on the pages (web/signin.py): /login sets an HttpOnly, SameSite=Lax session cookie
(Secure over https); the passport page then shows the reader's tier; the JSON API never takes
the cookie; forms carry a CSRF token; /logout ends the session; a stale cookie reads as anonymous
and is dropped; an open redirect through ?next= is not possible."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from batteryloop.accounts import sessions
from batteryloop.accounts.service import Accounts
from batteryloop.api import create_app
from batteryloop.store import Database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "passport"))
from passport_support import add_orgs, original  # noqa: E402

PASSWORD = "recycler password 1"
RESTRICTED = 'data-attribute="general.battery_status"'
PUBLIC = 'data-attribute="general.battery_category"'


@pytest.fixture
def site(db: Database, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple]:
    monkeypatch.setenv("BATTERYLOOP_RATE_LIMIT", "")
    with db.session() as s:
        add_orgs(s)
        uid = original(s, "LFP", tag="web")
        Accounts(s).add_user("rita", "Recycler", ["reader", "writer"], PASSWORD)
    yield db, uid


def _client(db: Database, https: bool = False) -> TestClient:
    return TestClient(create_app(db), raise_server_exceptions=False, follow_redirects=False,
                      base_url="https://testserver" if https else "http://testserver")


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', html)
    assert found, "the form carries a CSRF token"
    return found.group(1)


def _cookie_header(r, name: str) -> str:  # type: ignore[no-untyped-def]
    headers = [h for h in r.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(headers) == 1, r.headers.get_list("set-cookie")
    return headers[0]


def _sign_in(client: TestClient, user: str = "rita", password: str = PASSWORD,
             next_: str = "/passport"):  # type: ignore[no-untyped-def]
    form = client.get("/login")
    assert form.status_code == 200
    return client.post("/login", data={"username": user, "password": password, "next": next_,
                                        "csrf_token": _csrf(form.text)})


def test_sign_in_sets_a_protected_session_cookie_and_shows_more(site) -> None:  # type: ignore[no-untyped-def]
    db, uid = site
    with _client(db) as client:
        anonymous = client.get(f"/passport/{uid}")
        assert PUBLIC in anonymous.text and RESTRICTED not in anonymous.text
        r = _sign_in(client, next_=f"/passport/{uid}")
        assert r.status_code == 303 and r.headers["location"] == f"/passport/{uid}"
        cookie = _cookie_header(r, "batteryloop_session").lower()
        for flag in ("httponly", "samesite=lax", "path=/", "max-age=900"):
            assert flag in cookie, cookie
        assert "secure" not in cookie  # plain http: a Secure cookie would never come back
        page = client.get(f"/passport/{uid}")
        assert RESTRICTED in page.text and "legitimate interest" in page.text
        assert "rita" in page.text and 'href="/logout"' in page.text
        # the JSON API takes bearer tokens only: the browser's cookie reads nothing more there
        api = client.get(f"/api/v1/passports/{uid}").json()
        assert api["viewer_tier"] == "public"
        assert client.get("/api/v1/auth/me").json()["authenticated"] is False
        assert client.get(f"/api/v1/batteries/{uid}/history").status_code == 401


def test_over_https_the_cookies_are_secure(site) -> None:  # type: ignore[no-untyped-def]
    db, uid = site
    with _client(db, https=True) as client:
        form = client.get("/login")
        assert "secure" in _cookie_header(form, "batteryloop_csrf").lower()
        r = client.post("/login", data={"username": "rita", "password": PASSWORD,
                                        "csrf_token": _csrf(form.text)})
        assert r.status_code == 303 and "secure" in _cookie_header(r, "batteryloop_session").lower()
        assert RESTRICTED in client.get(f"/passport/{uid}").text


def test_wrong_password_and_forms_without_their_token_are_refused(site) -> None:  # type: ignore[no-untyped-def]
    db, uid = site
    with _client(db) as client:
        answers = []
        for user, password in (("rita", "not her password"), ("nobody", PASSWORD)):
            r = _sign_in(client, user, password)
            assert r.status_code == 401 and "batteryloop_session" not in r.headers.get("set-cookie", "")
            answers.append(re.search(r'role="alert">([^<]+)<', r.text).group(1))  # type: ignore[union-attr]
        assert answers[0] == answers[1] == "invalid user name or password"
        form = client.get("/login")
        data = {"username": "rita", "password": PASSWORD}
        good = _csrf(form.text)
        altered = good[:-1] + ("1" if good[-1] == "0" else "0")  # one hex digit off, never equal
        for token in (None, "0" * 64, altered):
            r = client.post("/login", data=data | ({"csrf_token": token} if token else {}))
            assert r.status_code == 403 and "batteryloop_session" not in str(r.headers)
    # another site's page posting the same form: it has neither this browser's cookie nor token
    with _client(db) as other_site, _client(db) as victim:
        token = _csrf(other_site.get("/login").text)
        r = victim.post("/login", data={**data, "csrf_token": token})
        assert r.status_code == 403
        assert RESTRICTED not in victim.get(f"/passport/{uid}").text


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example",
                                    "javascript:alert(1)"])
def test_next_never_leaves_the_site(site, target: str) -> None:  # type: ignore[no-untyped-def]
    db, _ = site
    with _client(db) as client:
        r = _sign_in(client, next_=target)
        assert r.status_code == 303 and r.headers["location"] == "/passport"


def test_sign_out_needs_the_form_token_and_ends_the_session(site) -> None:  # type: ignore[no-untyped-def]
    db, uid = site
    with _client(db) as client:
        _sign_in(client)
        confirm = client.get("/logout")
        assert confirm.status_code == 200 and 'action="/logout"' in confirm.text
        assert RESTRICTED in client.get(f"/passport/{uid}").text  # a GET changed nothing
        assert client.post("/logout", data={}).status_code == 403
        r = client.post("/logout", data={"csrf_token": _csrf(confirm.text)})
        assert r.status_code == 303
        assert "max-age=0" in _cookie_header(r, "batteryloop_session").lower()
        page = client.get(f"/passport/{uid}")
        assert RESTRICTED not in page.text and 'href="/login"' in page.text


def _forged_session(db: Database, *, issued: datetime, user: str = "rita") -> str:
    with db.session() as s:
        found = Accounts(s).user(user)
        return sessions.issue(found.id, found.session_epoch, frozenset({"write"}), now=issued)[0]


def test_a_stale_session_reads_as_anonymous_and_is_dropped(site) -> None:  # type: ignore[no-untyped-def]
    db, uid = site
    expired = _forged_session(db, issued=datetime.now(UTC) - timedelta(hours=1))
    with _client(db) as client:
        client.cookies.set("batteryloop_session", expired)
        r = client.get(f"/passport/{uid}")
        assert r.status_code == 200 and RESTRICTED not in r.text
        assert "max-age=0" in _cookie_header(r, "batteryloop_session").lower()
    # signing out everywhere (the user disabled, or a new password) voids a live session too
    live = _forged_session(db, issued=datetime.now(UTC))
    with db.session() as s:
        Accounts(s).set_password("rita", "a brand new password")
    with _client(db) as client:
        client.cookies.set("batteryloop_session", live)
        assert RESTRICTED not in client.get(f"/passport/{uid}").text


def test_a_session_in_use_is_renewed(site) -> None:  # type: ignore[no-untyped-def]
    db, uid = site
    ageing = _forged_session(db, issued=datetime.now(UTC) - sessions.LIFETIME * 0.75)
    fresh = _forged_session(db, issued=datetime.now(UTC))
    with _client(db) as client:
        client.cookies.set("batteryloop_session", fresh)
        r = client.get(f"/passport/{uid}")
        assert RESTRICTED in r.text and "batteryloop_session" not in r.headers.get("set-cookie", "")
        client.cookies.set("batteryloop_session", ageing)
        r = client.get(f"/passport/{uid}")
        assert RESTRICTED in r.text
        renewed = _cookie_header(r, "batteryloop_session").split(";")[0].split("=", 1)[1]
        assert renewed != ageing
        claims = sessions.decode(renewed)
        assert claims.expires_at - datetime.now(UTC) > sessions.LIFETIME * 0.9


def test_a_bearer_token_still_signs_in_a_page_and_a_bad_one_is_refused(site) -> None:  # type: ignore[no-untyped-def]
    db, uid = site
    with db.session() as s:
        _, token = Accounts(s).create_token("rita")
    with _client(db) as client:
        assert RESTRICTED in client.get(f"/passport/{uid}",
                                        headers={"Authorization": f"Bearer {token}"}).text
        r = client.get(f"/passport/{uid}", headers={"Authorization": f"Bearer {token}x"})
        assert r.status_code == 401 and set(r.json()) == {"type", "title", "status", "detail",
                                                          "instance"}


def test_a_form_stays_valid_across_a_renewed_session(site) -> None:  # type: ignore[no-untyped-def]
    """The CSRF token binds the user's session, not one cookie value: the sign-out form of a page
    served with an ageing cookie (renewed on that very response) still works; another user's does
    not."""
    db, _ = site
    ageing = _forged_session(db, issued=datetime.now(UTC) - sessions.LIFETIME * 0.75)
    with _client(db) as client:
        client.cookies.set("batteryloop_session", ageing)
        confirm = client.get("/logout")
        assert "batteryloop_session" in confirm.headers.get("set-cookie", "")  # renewed
        client.cookies.set("batteryloop_session",
                           _cookie_header(confirm, "batteryloop_session").split(";")[0].split("=", 1)[1])
        with db.session() as s:
            Accounts(s).add_user("mallory", "Carco", ["reader"])
        other = _forged_session(db, issued=datetime.now(UTC), user="mallory")
        with _client(db) as attacker:
            attacker.cookies.set("batteryloop_session", other)
            foreign = _csrf(attacker.get("/logout").text)
        assert client.post("/logout", data={"csrf_token": foreign}).status_code == 403
        assert client.post("/logout", data={"csrf_token": _csrf(confirm.text)}).status_code == 303
