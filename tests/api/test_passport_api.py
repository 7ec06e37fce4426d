"""The passport over HTTP with real credentials: create, update, show by tier, export, import,
QR, condition reports; tokens that are wrong, expired or of too low a tier get 401/403 bare
problems with no passport data in the body."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type
from fastapi.testclient import TestClient

from batteryloop.accounts import hashing
from batteryloop.accounts import service as accounts_service
from batteryloop.accounts.service import Accounts
from batteryloop.api import create_app
from batteryloop.settings import get_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "passport"))
from passport_support import (
    add_orgs,
    assess,
    condition_values,
    register,
    static_values,
    walk,
)

PROBLEM = "application/problem+json"
SECRETS = ("SENT-", "lastUpdate", "131.25", "Original", "batteryCondition")


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch, tmp_path):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(hashing, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                          parallelism=1, type=Type.ID))
    monkeypatch.setattr(hashing, "_DUMMY", None)
    accounts_service.VERIFIED.clear()
    monkeypatch.setenv("BATTERYLOOP_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def site(db):  # type: ignore[no-untyped-def]
    """Organisations with users and tokens; a registered battery with no passport record yet."""
    with db.session() as s:
        add_orgs(s)
        s.flush()
        from batteryloop.registry.schemas import OrganisationIn
        from batteryloop.registry.service import Registry

        Registry(s).add_organisation(OrganisationIn(name="MSA", roles=["auditor"]))
        uid = register(s, "NMC")
        acc = Accounts(s)
        acc.add_user("mike", "Maker", ["writer"])
        acc.add_user("rita", "Recycler", ["writer"])
        acc.add_user("olga", "MSA", ["reader"])
        acc.add_user("carl", "Carco", ["reader"])
        tokens = {}
        for user in ("mike", "rita", "olga", "carl"):
            scopes = ["write"] if user in ("mike", "rita") else []
            row, plain = acc.create_token(user, scopes=scopes, expires=timedelta(days=1))
            tokens[user] = (row.token_id, plain)
    with TestClient(create_app(db), raise_server_exceptions=False) as client:
        yield client, uid, tokens


def _h(tokens, user: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {tokens[user][1]}"}


def _bare(r, status: int) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert set(r.json()) == {"type", "title", "status", "detail", "instance"}
    for secret in SECRETS:
        assert secret not in r.text, secret


def _populate(client: TestClient, uid: str, tokens) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/passports", json={"battery": uid, "attributes": static_values("api", "NMC")},
                    headers=_h(tokens, "mike"))
    assert r.status_code == 201, r.text
    r = client.post(f"/api/v1/passports/{uid}/condition", json={"values": condition_values("api")},
                    headers=_h(tokens, "mike"))
    assert r.status_code == 201, r.text


def test_create_update_show_by_tier_export_import(site, db) -> None:  # type: ignore[no-untyped-def]
    client, uid, tokens = site
    _populate(client, uid, tokens)
    with db.session() as s:
        walk(s, uid, ["in_service"])
        assess(s, uid)
    r = client.patch(f"/api/v1/passports/{uid}", json={"set": {"carbon.performance_class": "A"},
                                                       "unset": ["due_diligence.indices"]},
                     headers=_h(tokens, "mike"))
    assert r.status_code == 200 and r.json()["version"] == 2

    anonymous = client.get(f"/api/v1/passports/{uid}").json()
    carl = client.get(f"/api/v1/passports/{uid}", headers=_h(tokens, "carl")).json()  # public tier
    rita = client.get(f"/api/v1/passports/{uid}", headers=_h(tokens, "rita")).json()  # recycler
    olga = client.get(f"/api/v1/passports/{uid}", headers=_h(tokens, "olga")).json()  # authority
    mike = client.get(f"/api/v1/passports/{uid}", headers=_h(tokens, "mike")).json()  # own battery
    assert [x["viewer_tier"] for x in (anonymous, carl, rita, olga, mike)] == [
        "public", "public", "legitimate_interest", "authority", "legitimate_interest"]
    assert anonymous["categories"]["carbon_footprint"]["carbon.performance_class"]["value"] == "A"
    assert "due_diligence.indices" not in anonymous["categories"]["due_diligence"]
    assert "general.battery_status" not in anonymous["categories"]["general"]
    assert rita["categories"]["general"]["general.battery_status"]["value"] == "original"
    assert "labels.test_reports" not in rita["categories"]["labels"]
    assert "labels.test_reports" in olga["categories"]["labels"]
    soh = rita["categories"]["performance"]["performance.remaining_capacity"]
    assert soh["measurement"]["parameter"] == "capacity_soh" and soh["by"]["name"] == "Maker"

    # restricted reads are in the audit log (the anonymous and public ones have nothing to record)
    audit = client.get("/api/v1/audit", params={"battery": uid}, headers=_h(tokens, "olga")).json()
    readers = {(e["user"], e["tier"]) for e in audit["items"]}
    assert readers == {("rita", "legitimate_interest"), ("olga", "authority"),
                       ("mike", "legitimate_interest")}
    olga_read = next(e for e in audit["items"] if e["user"] == "olga")
    assert "labels.test_reports" in olga_read["attributes"]
    assert "carbon.performance_class" not in olga_read["attributes"]  # public: not audited

    checked = client.get(f"/api/v1/passports/{uid}/export", params={"check": "true"},
                         headers=_h(tokens, "olga"))
    assert checked.status_code == 200, checked.text
    doc = checked.json()
    assert doc["Labels"]["resultOfTestReport"].endswith("SENT-test-report.pdf")
    ld = client.get(f"/api/v1/passports/{uid}/export", params={"format": "jsonld"})
    assert ld.headers["content-type"].startswith("application/ld+json") and ld.json()["@id"] == uid

    # import of the same JSON (an update here: the registry knows the battery)
    doc["CarbonFootprint"]["carbonFootprintPerformanceClass"] = "C"
    r = client.post("/api/v1/passports/import", json=doc, headers=_h(tokens, "mike"))
    assert r.status_code == 201 and not r.json()["created"], r.text
    assert client.get(f"/api/v1/passports/{uid}/attributes/carbon.performance_class").json()["value"] == "C"
    r = client.post("/api/v1/passports/import", json={"Nonsense": {}}, headers=_h(tokens, "mike"))
    assert r.status_code == 422

    assert client.get("/api/v1/passport-attributes").json()[0]["id"] == "general.product_identifier"


def test_bad_values_and_unknown_batteries_are_problems(site) -> None:  # type: ignore[no-untyped-def]
    client, uid, tokens = site
    r = client.post("/api/v1/passports", json={"battery": uid, "attributes": {"carbon.study": 5}},
                    headers=_h(tokens, "mike"))
    assert r.status_code == 422 and "carbon.study" in r.json()["detail"]
    r = client.post("/api/v1/passports", json={"battery": uid, "attributes": {"no.such": 1}},
                    headers=_h(tokens, "mike"))
    assert r.status_code == 404
    assert client.get("/api/v1/passports/urn:uuid:00000000-0000-4000-8000-000000000000").status_code == 404
    page = client.get("/passport/NOPE")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    r = client.post(f"/api/v1/passports/{uid}/condition",
                    json={"values": {"performance.state_of_charge": "full"}}, headers=_h(tokens, "mike"))
    assert r.status_code == 422


def test_wrong_expired_or_low_tier_tokens_get_401_or_403_with_no_data(site, db) -> None:  # type: ignore[no-untyped-def]
    client, uid, tokens = site
    _populate(client, uid, tokens)
    token = tokens["rita"][1]
    with db.session() as s:
        _, expiring = Accounts(s).create_token("rita", expires=timedelta(days=1))
        Accounts(s).token(expiring.split("_")[1]).expires_at = datetime.now(UTC) - timedelta(seconds=1)
    bad = {
        "wrong secret": {"Authorization": f"Bearer {token[:-3]}abc"},
        "unknown id": {"Authorization": "Bearer blt_ffffffffffff_" + token.split("_", 2)[2]},
        "garbage": {"Authorization": "Bearer not-a-token"},
        "not bearer": {"Authorization": "Basic cml0YTpwYXNz"},
        "expired": {"Authorization": f"Bearer {expiring}"},
    }
    reads = [f"/api/v1/passports/{uid}", f"/api/v1/passports/{uid}/export",
             f"/api/v1/passports/{uid}/attributes/general.battery_status", "/api/v1/passports",
             f"/passport/{uid}", f"/api/v1/passports/{uid}/qr"]
    for headers in bad.values():
        for path in reads:
            _bare(client.get(path, headers=headers), 401)
        _bare(client.patch(f"/api/v1/passports/{uid}", json={"set": {"carbon.performance_class": "A"}},
                           headers=headers), 401)
    # the right token, too low a tier for what is asked
    for path, params in ((f"/api/v1/passports/{uid}/attributes/general.battery_status", None),
                         (f"/api/v1/passports/{uid}/attributes/labels.test_reports", None),
                         ("/api/v1/passports", {"status": "original"})):
        _bare(client.get(path, params=params, headers=_h(tokens, "carl")), 403)
    _bare(client.get(f"/api/v1/passports/{uid}/attributes/labels.test_reports",
                     headers=_h(tokens, "rita")), 403)
    # writes: anonymous 401; a reader 403; a writer of another organisation 403
    _bare(client.patch(f"/api/v1/passports/{uid}", json={"set": {"carbon.performance_class": "A"}}), 401)
    for user in ("olga", "rita"):
        _bare(client.patch(f"/api/v1/passports/{uid}", json={"set": {"carbon.performance_class": "A"}},
                           headers=_h(tokens, user)), 403)
    _bare(client.post(f"/api/v1/passports/{uid}/condition",
                      json={"values": {"performance.state_of_charge": 5}}, headers=_h(tokens, "rita")), 403)


def test_end_of_life_over_http(site, db) -> None:  # type: ignore[no-untyped-def]
    client, uid, tokens = site
    _populate(client, uid, tokens)
    with db.session() as s:
        walk(s, uid, ["in_service"])
    r = client.post(f"/api/v1/passports/{uid}/waste", json={"waste_operator": "Recycler"},
                    headers=_h(tokens, "mike"))
    assert r.status_code == 201, r.text
    # responsibility moved: the recycler now acts on the passport, the maker still may
    r = client.post(f"/api/v1/passports/{uid}/recycle", json={}, headers=_h(tokens, "rita"))
    assert r.status_code == 201 and r.json()["ceased"]
    r = client.post(f"/api/v1/passports/{uid}/condition", json={"values": {"performance.state_of_charge": 5}},
                    headers=_h(tokens, "rita"))
    assert r.status_code == 409 and "read-only" in r.json()["detail"]
    shown = client.get(f"/api/v1/passports/{uid}").json()
    assert shown["ceased"] and shown["archived_at"]
    r = client.put("/api/v1/organisations/Maker/passport-contact", json={"postalCode": "1"},
                   headers=_h(tokens, "rita"))
    assert r.status_code == 403
    r = client.put("/api/v1/organisations/Recycler/passport-contact",
                   json={"streetAddress": "Kai 3", "postalCode": "20457", "addressCountry": "DE"},
                   headers=_h(tokens, "rita"))
    assert r.status_code == 200 and r.json()["postalCode"] == "20457"
