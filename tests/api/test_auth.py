"""Authentication over HTTP: bearer tokens, the OAuth2 password grant, tiers and roles.

Wrong, expired or revoked tokens get 401 and too low a tier gets 403, each as a bare RFC 9457
problem: no attribute data in the body, whatever the endpoint would have shown.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pytest
from argon2 import PasswordHasher, Type
from fastapi import Depends, Request
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from batteryloop.accounts import hashing, service
from batteryloop.accounts.audit import record_read
from batteryloop.accounts.service import Accounts, Principal
from batteryloop.accounts.viewer import Viewer
from batteryloop.api import create_app
from batteryloop.api.auth import require_organisation_role, require_tier, viewer
from batteryloop.api.deps import session
from batteryloop.registry.schemas import OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.settings import get_settings

PROBLEM = "application/problem+json"
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}
SECRET_SOH = 87.123456  # the restricted value: must never be in a 401/403 body
BATTERY = "urn:uuid:00000000-0000-4000-8000-00000000abcd"
PASSWORDS = {"rita": "recycler password 1", "mike": "maker password 123",
             "olga": "officer password 1", "root": "administrator pass"}


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch, tmp_path):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(hashing, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                          parallelism=1, type=Type.ID))
    monkeypatch.setattr(hashing, "_DUMMY", None)
    service.VERIFIED.clear()
    monkeypatch.setenv("BATTERYLOOP_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


DISMANTLER = require_organisation_role("recycler", "dismantler")


def _test_routes(app) -> None:  # type: ignore[no-untyped-def]
    """A passport-like read and a write, as the passport engineer's endpoints will use them."""

    def passport(request: Request, who: Annotated[Viewer, Depends(viewer)],
                 db: Annotated[Session, Depends(session)]) -> dict[str, Any]:
        out: dict[str, Any] = {"uid": BATTERY, "chemistry": "LFP"}
        if who.may_see("legitimate_interest"):
            out["state_of_health"] = SECRET_SOH
            record_read(db, who, BATTERY, ["state_of_health"], request.url.path)
        return out

    def restricted(who: Annotated[Viewer, Depends(require_tier("legitimate_interest"))]) -> dict:
        return {"state_of_health": SECRET_SOH, "viewer": who.user}

    def dismantle(who: Annotated[Principal, Depends(DISMANTLER)]) -> dict:
        return {"ok": True, "actor": who.viewer.organisation}

    app.add_api_route("/api/v1/test/passport", passport, methods=["GET"])
    app.add_api_route("/api/v1/test/restricted", restricted, methods=["GET"])
    app.add_api_route("/api/v1/test/dismantle", dismantle, methods=["POST"])


@pytest.fixture
def client(db):  # type: ignore[no-untyped-def]
    with db.session() as s:
        reg = Registry(s)
        for name, roles in (("Green Loop", ["recycler"]), ("Maker", ["manufacturer"]),
                            ("MSA", ["auditor"]), ("Platform", ["manufacturer"])):
            reg.add_organisation(OrganisationIn(name=name, roles=roles))
        acc = Accounts(s)
        acc.add_user("rita", "Green Loop", ["writer"], PASSWORDS["rita"])
        acc.add_user("mike", "Maker", ["writer"], PASSWORDS["mike"])
        acc.add_user("olga", "MSA", ["reader"], PASSWORDS["olga"])
        acc.add_user("root", "Platform", ["admin"], PASSWORDS["root"])
    app = create_app(db)
    _test_routes(app)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _login(client: TestClient, user: str, password: str | None = None, **form: str) -> str:
    r = client.post("/api/v1/auth/token", data={"grant_type": "password", "username": user,
                                                "password": password or PASSWORDS[user], **form})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _api_token(db, user: str, **kw) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        row, plaintext = Accounts(s).create_token(user, **kw)
        return row.token_id, plaintext


def _bare_problem(r, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert set(body) == PROBLEM_KEYS and body["status"] == status
    for leak in (str(SECRET_SOH), "state_of_health", "chemistry", BATTERY, "LFP"):
        assert leak not in r.text
    return body


def test_anonymous_reads_public_and_is_asked_to_sign_in_for_more(client: TestClient) -> None:
    r = client.get("/api/v1/test/passport")
    assert r.status_code == 200 and "state_of_health" not in r.json()
    body = _bare_problem(client.get("/api/v1/test/restricted"), 401)
    assert body["instance"] == "/api/v1/test/restricted"
    assert client.get("/api/v1/test/restricted").headers["www-authenticate"].startswith("Bearer")
    me = client.get("/api/v1/auth/me").json()
    assert me["authenticated"] is False and me["tier"] == "public"


def test_password_grant_and_bearer_use(client: TestClient) -> None:
    form = {"grant_type": "password", "username": "rita", "password": PASSWORDS["rita"]}
    r = client.post("/api/v1/auth/token", data=form)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] <= 900 and body["scope"] == "write"
    me = client.get("/api/v1/auth/me", headers=_bearer(body["access_token"])).json()
    assert me["user"] == "rita" and me["tier"] == "legitimate_interest" and me["via"] == "password"
    assert me["organisation_roles"] == ["recycler"]
    r = client.get("/api/v1/test/restricted", headers=_bearer(body["access_token"]))
    assert r.status_code == 200 and r.json()["state_of_health"] == SECRET_SOH


def test_a_wrong_password_gets_401_without_saying_which_part_was_wrong(client: TestClient) -> None:
    answers = []
    for user, password in (("rita", "not her password"), ("nobody", PASSWORDS["rita"]),
                           ("RITA", "recycler password 2")):
        r = client.post("/api/v1/auth/token",
                        data={"grant_type": "password", "username": user, "password": password})
        body = _bare_problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
        answers.append((body["title"], body["detail"]))
    assert len(set(answers)) == 1
    assert "password" not in answers[0][1].split(" or ")[0]  # "invalid user name or password"
    r = client.post("/api/v1/auth/token", data={"grant_type": "client_credentials",
                                                "username": "rita", "password": "x"})
    assert r.status_code == 422


def _bad_credentials(db, case: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    token_id, token = _api_token(db, "rita", expires=timedelta(days=1))
    headers = _bearer(token)
    if case == "wrong-secret":
        headers = _bearer(token[:-3] + ("xyz" if not token.endswith("xyz") else "abc"))
    elif case == "unknown-id":
        headers = _bearer("blt_ffffffffffff_" + token.split("_", 2)[2])
    elif case == "garbage":
        headers = _bearer("eyJhbGciOi.not.a.jwt")
    elif case == "basic":
        headers = {"Authorization": "Basic cml0YTpwYXNz"}
    elif case == "forged-jwt":
        import jwt

        headers = _bearer(jwt.encode({"sub": "1", "iss": "batteryloop", "aud": "batteryloop-api",
                                      "exp": 9999999999, "iat": 1}, "x" * 32, algorithm="HS256"))
    elif case == "expired":
        with db.session() as s:
            Accounts(s).token(token_id).expires_at = datetime.now(UTC) - timedelta(seconds=1)
    elif case == "revoked":
        with db.session() as s:
            Accounts(s).revoke_token(token_id)
    elif case == "disabled-user":
        with db.session() as s:
            Accounts(s).disable("rita")
    return headers


def test_bad_tokens_get_401_with_no_data(client: TestClient, db) -> None:  # type: ignore[no-untyped-def]
    _, good = _api_token(db, "rita")
    assert client.get("/api/v1/test/restricted", headers=_bearer(good)).status_code == 200
    access = _login(client, "rita")
    for case in ("wrong-secret", "unknown-id", "garbage", "basic", "forged-jwt", "expired",
                 "revoked", "disabled-user"):
        headers = _bad_credentials(db, case)
        # even a path that serves anonymous readers refuses a bad credential, never downgrades it
        for path in ("/api/v1/test/restricted", "/api/v1/test/passport", "/api/v1/auth/me"):
            r = client.get(path, headers=headers)
            _bare_problem(r, 401)
            assert r.headers["www-authenticate"].startswith('Bearer realm="batteryloop"'), case
    # disabling the user also voids its signed access token
    _bare_problem(client.get("/api/v1/test/restricted", headers=_bearer(access)), 401)


def test_too_low_a_tier_gets_403_with_no_data(client: TestClient, db) -> None:  # type: ignore[no-untyped-def]
    maker = _login(client, "mike")
    body = _bare_problem(client.get("/api/v1/test/restricted", headers=_bearer(maker)), 403)
    assert "legitimate_interest" in body["detail"]
    r = client.get("/api/v1/test/passport", headers=_bearer(maker))
    assert r.status_code == 200 and "state_of_health" not in r.json()
    # a token capped at public is public, whatever its user's tier
    _, capped = _api_token(db, "rita", tier="public")
    _bare_problem(client.get("/api/v1/test/restricted", headers=_bearer(capped)), 403)
    # the audit log needs authority
    rita = _login(client, "rita")
    _bare_problem(client.get("/api/v1/audit", headers=_bearer(rita)), 403)
    _bare_problem(client.get("/api/v1/audit"), 401)


def test_write_endpoints_need_role_and_scope(client: TestClient, db) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/test/dismantle", headers=_bearer(_login(client, "rita")))
    assert r.status_code == 200 and r.json()["ok"] is True
    for other in ("mike", "olga"):  # a maker's writer; an auditor's reader
        r = client.post("/api/v1/test/dismantle", headers=_bearer(_login(client, other)))
        _bare_problem(r, 403)
    _, read_only = _api_token(db, "rita")
    _bare_problem(client.post("/api/v1/test/dismantle", headers=_bearer(read_only)), 403)
    _, writer = _api_token(db, "rita", scopes=["write"])
    assert client.post("/api/v1/test/dismantle", headers=_bearer(writer)).status_code == 200
    _bare_problem(client.post("/api/v1/test/dismantle"), 401)


def test_reads_of_restricted_attributes_are_audited(client: TestClient) -> None:
    rita, olga = _login(client, "rita"), _login(client, "olga")
    assert client.get("/api/v1/test/passport", headers=_bearer(rita)).json()["state_of_health"]
    client.get("/api/v1/test/passport")  # public: nothing restricted shown, nothing logged
    client.get("/api/v1/test/passport", headers=_bearer(_login(client, "mike")))
    log = client.get("/api/v1/audit", headers=_bearer(olga)).json()
    assert log["total"] == 1
    entry = log["items"][0]
    assert entry["user"] == "rita" and entry["tier"] == "legitimate_interest"
    assert entry["battery"] == BATTERY and entry["attributes"] == ["state_of_health"]
    assert entry["path"] == "/api/v1/test/passport"
    assert client.get("/api/v1/audit", params={"battery": BATTERY},
                      headers=_bearer(olga)).json()["total"] == 1
    verified = client.get("/api/v1/audit/verify", headers=_bearer(olga)).json()
    assert verified["ok"] is True and verified["entries"] == 1


def test_own_tokens_over_the_api(client: TestClient) -> None:
    rita = _login(client, "rita")
    r = client.post("/api/v1/tokens", headers=_bearer(rita),
                    json={"label": "scanner", "expires": "30d", "scopes": ["write"]})
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    created = r.json()
    token, token_id = created["token"], created["id"]
    assert token.startswith(f"blt_{token_id}_") and created["state"] == "active"
    listed = client.get("/api/v1/tokens", headers=_bearer(rita)).json()
    assert [t["id"] for t in listed] == [token_id] and token not in str(listed)
    me = client.get("/api/v1/auth/me", headers=_bearer(token)).json()
    assert me["via"] == "token" and me["token"] == token_id and me["scopes"] == ["write"]
    # a token cannot mint tokens, nor exceed its user's tier
    _bare_problem(client.post("/api/v1/tokens", json={}, headers=_bearer(token)), 403)
    r = client.post("/api/v1/tokens", json={"tier": "authority"}, headers=_bearer(rita))
    assert r.status_code == 422
    # someone else cannot revoke it; its owner can
    mike = _login(client, "mike")
    _bare_problem(client.delete(f"/api/v1/tokens/{token_id}", headers=_bearer(mike)), 403)
    _bare_problem(client.get("/api/v1/tokens", params={"user": "rita"}, headers=_bearer(mike)), 403)
    r = client.delete(f"/api/v1/tokens/{token_id}", headers=_bearer(rita))
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    _bare_problem(client.get("/api/v1/auth/me", headers=_bearer(token)), 401)


def test_users_and_grants_over_the_api(client: TestClient) -> None:
    root, olga, rita = _login(client, "root"), _login(client, "olga"), _login(client, "rita")
    _bare_problem(client.get("/api/v1/users", headers=_bearer(rita)), 403)
    _bare_problem(client.get("/api/v1/users"), 401)
    users = client.get("/api/v1/users", headers=_bearer(olga)).json()  # authority may list
    assert {u["name"] for u in users} == set(PASSWORDS)
    assert "password" not in str(users).replace("has_password", "")
    _bare_problem(client.post("/api/v1/users", json={"name": "x", "organisation": "Maker"},
                              headers=_bearer(olga)), 403)  # but only an admin changes them
    r = client.post("/api/v1/users", headers=_bearer(root), json={
        "name": "inspector", "organisation": "Maker", "password": "inspector password"})
    assert r.status_code == 201 and r.json()["tier"] == "public"
    inspector = _login(client, "inspector", "inspector password")
    _bare_problem(client.get("/api/v1/audit", headers=_bearer(inspector)), 403)
    r = client.patch("/api/v1/users/inspector", json={"granted_tier": "authority"},
                     headers=_bearer(root))
    assert r.status_code == 200 and r.json()["tier"] == "authority"
    assert r.json()["granted_by"] == "root"
    # the tier is read per request: the same access token now reads the audit log
    assert client.get("/api/v1/audit", headers=_bearer(inspector)).status_code == 200
    r = client.patch("/api/v1/users/inspector", json={"disabled": True}, headers=_bearer(root))
    assert r.json()["disabled_at"] is not None
    _bare_problem(client.get("/api/v1/audit", headers=_bearer(inspector)), 401)


def test_openapi_documents_the_bearer_scheme(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
