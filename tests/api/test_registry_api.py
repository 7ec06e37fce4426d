"""The registry over HTTP: every verb, and errors as RFC 9457 problems (never a 500 for bad input).

Each step is taken by the organisation whose step it is, signed in (tests/api/conftest.py); what
anonymous and low-tier callers may read is in test_read_gates.py."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient

from batteryloop.api import create_app
from batteryloop.registry import gbt34014

PROBLEM = "application/problem+json"


@pytest.fixture
def client(db):  # type: ignore[no-untyped-def]
    with TestClient(create_app(db), raise_server_exceptions=False) as c:
        yield c


def _code(n: int, kind: str = "pack") -> str:
    from datetime import date

    return gbt34014.compose("ABC", kind, "LFP", "A1", "1234567", date(2020, 5, 17), f"{n:07d}")


def _orgs(client: TestClient, admin: dict[str, str]) -> None:
    for name, roles in (("Maker", ["manufacturer"]), ("Carco", ["vehicle_maker"]),
                        ("Outlet", ["collection_outlet"]), ("Reuse", ["repurposer"])):
        r = client.post("/api/v1/organisations", json={"name": name, "roles": roles})
        assert r.status_code == 401  # only an admin registers organisations (roles give tiers)
        r = client.post("/api/v1/organisations", json={"name": name, "roles": roles}, headers=admin)
        assert r.status_code == 201, r.text


def test_register_show_history_status_transfer(client: TestClient, admin, member) -> None:  # type: ignore[no-untyped-def]
    _orgs(client, admin)
    maker, carco, msa = member("Maker"), member("Carco"), member("MSA", "auditor", scopes=())
    body = {"code": _code(1), "rated_capacity_ah": 150, "manufacturer": "Maker",
            "identifiers": {"vin": "LGXCE4CB0N0000001"}}
    assert client.post("/api/v1/batteries", json=body).status_code == 401
    r = client.post("/api/v1/batteries", params={"actor": "Carco"}, json=body, headers=maker)
    assert r.status_code == 403  # a caller acts for its own organisation only
    r = client.post("/api/v1/batteries", params={"actor": "Maker"}, json=body, headers=maker)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["kind"] == "pack" and body["chemistry"] == "LFP"
    assert body["manufactured_on"] == "2020-05-17"
    assert body["state"] == "produced" and body["eu_status"] == "original"
    uid = body["uid"]

    # any identifier finds it
    for ref in (uid, _code(1), "LGXCE4CB0N0000001"):
        assert client.get(f"/api/v1/batteries/{ref}").json()["uid"] == uid

    # the vehicle maker may not act on a battery that is not (yet) in its hands
    r = client.post(f"/api/v1/batteries/{uid}/status", json={"to": "in_service"}, headers=carco)
    assert r.status_code == 403 and "'legitimate_interest'" in r.json()["detail"]
    r = client.post(f"/api/v1/batteries/{uid}/transfers", headers=maker,
                    json={"custody_to": "Carco", "responsibility_to": "Carco", "actor": "Maker"})
    assert r.status_code == 201 and r.json()["seq"] == 2
    r = client.post(f"/api/v1/batteries/{uid}/status", json={"to": "in_service", "actor": "Carco"},
                    headers=carco)
    assert r.status_code == 201 and r.json()["seq"] == 3

    shown = client.get(f"/api/v1/batteries/{uid}", headers=carco).json()
    assert shown["state"] == "in_service" and shown["owner"]["name"] == "Carco"
    assert shown["viewer_tier"] == "legitimate_interest" and shown["withheld"] == []
    hist = client.get(f"/api/v1/batteries/{uid}/history", headers=carco).json()
    assert [e["type"] for e in hist] == ["registered", "transferred", "status-changed"]
    assert [e["actor_name"] for e in hist] == ["Maker", "Maker", "Carco"]
    assert hist[1]["prev_hash"] == hist[0]["hash"] and hist[2]["prev_hash"] == hist[1]["hash"]
    assert client.get("/api/v1/verify", headers=carco).status_code == 403
    assert client.get("/api/v1/verify", headers=msa).json()["ok"] is True


def test_illegal_transition_is_a_409_problem_naming_both_states(client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
    maker = member("Maker")
    uid = client.post("/api/v1/batteries", json={"kind": "cell", "manufacturer": "Maker"},
                      headers=maker).json()["uid"]
    r = client.post(f"/api/v1/batteries/{uid}/status", json={"to": "recycled"}, headers=maker)
    assert r.status_code == 409
    assert r.headers["content-type"].startswith(PROBLEM)
    problem = r.json()
    assert problem["status"] == 409 and "'produced'" in problem["detail"] and "'recycled'" in problem["detail"]
    assert len(client.get(f"/api/v1/batteries/{uid}/history", headers=maker).json()) == 1


@pytest.mark.parametrize(
    ("method", "path", "payload", "status"),
    [
        ("get", "/api/v1/batteries/NOPE", None, 404),
        ("post", "/api/v1/batteries", {"code": "ABCPB"}, 422),  # too short a code
        ("post", "/api/v1/batteries", {"kind": "cell", "rated_capacity_ah": -1}, 422),
        ("post", "/api/v1/batteries", {"kind": "tank"}, 422),
        ("post", "/api/v1/batteries", {"kind": "cell", "uid": "urn:uuid:not-a-uuid"}, 422),
        ("post", "/api/v1/batteries", {"kind": "cell", "bogus": 1}, 422),
        ("post", "/api/v1/organisations", {"name": "X", "roles": ["pirate"]}, 422),
        ("post", "/api/v1/organisations", {"name": "X"}, 422),
    ],
)
def test_bad_input_gets_problem_details(client: TestClient, admin, method, path, payload, status) -> None:  # type: ignore[no-untyped-def]
    r = getattr(client, method)(path, headers=admin,
                                **({"json": payload} if payload is not None else {}))
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]


def test_malformed_json_body_is_422_not_500(client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/batteries", content=b"{not json",
                    headers={"content-type": "application/json", **member("Maker")})
    assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM)


def test_bad_code_names_the_position(client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
    code = _code(2)
    bad = code[:3] + "X" + code[4:]
    r = client.post("/api/v1/batteries", json={"code": bad}, headers=member("Maker"))
    assert r.status_code == 422
    assert "position 4" in r.json()["detail"]


def test_pagination_and_filters(client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
    maker = member("Maker")
    for n in range(7):
        r = client.post("/api/v1/batteries", json={"code": _code(100 + n), "manufacturer": "Maker"},
                        headers=maker)
        assert r.status_code == 201, r.text
    client.post("/api/v1/batteries", json={"kind": "cell", "chemistry": "NMC811"}, headers=maker)
    page = client.get("/api/v1/batteries", params={"limit": 3, "offset": 3, "kind": "pack"}).json()
    assert page["total"] == 7 and len(page["items"]) == 3 and page["offset"] == 3
    assert client.get("/api/v1/batteries", params={"chemistry": "NMC811"}).json()["total"] == 1
    assert client.get("/api/v1/batteries", params={"q": _code(103)[-7:]}).json()["total"] == 1
    assert client.get("/api/v1/batteries", params={"limit": 0}).status_code == 422


def test_import_upload_all_or_nothing(client: TestClient, admin, member) -> None:  # type: ignore[no-untyped-def]
    _orgs(client, admin)
    good = f"code,manufacturer\n{_code(201)},Maker\n{_code(202)},Maker\n"
    bad = good + "NOTACODE,Maker\n"
    upload = {"file": ("b.csv", io.BytesIO(bad.encode()))}
    assert client.post("/api/v1/import/batteries", files=upload,
                       headers=member("Maker")).status_code == 403  # an admin's job
    r = client.post("/api/v1/import/batteries", headers=admin,
                    files={"file": ("b.csv", io.BytesIO(bad.encode()))})
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert errors[0]["row"] == 4
    assert client.get("/api/v1/batteries").json()["total"] == 0
    r = client.post("/api/v1/import/batteries", data={"skip_invalid": "true"}, headers=admin,
                    files={"file": ("b.csv", io.BytesIO(bad.encode()))})
    assert r.status_code == 200 and r.json()["written"] == 2 and len(r.json()["rejected"]) == 1
    assert client.get("/api/v1/batteries").json()["total"] == 2


def test_garbage_upload_is_a_clear_422(client: TestClient, admin) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/import/batteries", headers=admin,
                    files={"file": ("x.csv", io.BytesIO(b"\xff\xfe\x00garbage"))})
    assert r.status_code == 422 and "x.csv" in r.json()["detail"]


def test_successor_and_lineage(client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
    maker, reuse = member("Maker"), member("Reuse", "repurposer")
    sources = []
    for _n in range(2):
        uid = client.post("/api/v1/batteries", json={"kind": "module", "manufacturer": "Maker"},
                          headers=maker).json()["uid"]
        for to in ("in_service", "retired", "collected", "tested", "graded"):
            r = client.post(f"/api/v1/batteries/{uid}/status", json={"to": to}, headers=maker)
            assert r.status_code == 201, r.text
        sources.append(uid)
    body = {"sources": sources, "relation": "repurposed", "actor": "Reuse",
            "battery": {"kind": "pack"}}
    assert client.post("/api/v1/successors", json=body, headers=maker).status_code == 403
    r = client.post("/api/v1/successors", json=body, headers=reuse)
    assert r.status_code == 201, r.text
    child = r.json()
    assert child["eu_status"] == "repurposed" and child["responsible"]["name"] == "Reuse"
    assert sorted(s["uid"] for s in child["sources"]) == sorted(sources)
    up = client.get(f"/api/v1/batteries/{sources[0]}/lineage", headers=maker).json()
    assert [s["uid"] for s in up["successors"]] == [child["uid"]]
    assert client.get(f"/api/v1/batteries/{sources[0]}/lineage").status_code == 401


def test_traceability_report_csv(client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
    maker, carco = member("Maker"), member("Carco", "vehicle_maker")
    msa = member("MSA", "auditor", scopes=())
    uid = client.post("/api/v1/batteries", params={"actor": "Maker"}, headers=maker,
                      json={"kind": "pack", "manufacturer": "Maker"}).json()["uid"]
    r = client.post(f"/api/v1/batteries/{uid}/transfers", json={"custody_to": "Carco"},
                    headers=maker)
    assert r.status_code == 201, r.text
    r = client.post(f"/api/v1/batteries/{uid}/status", headers=carco,
                    json={"to": "in_service", "occurred_at": "2020-01-06T10:00:00Z"})
    assert r.status_code == 201, r.text
    # each node reads its own report (the default); another's only at the authority tier
    for who in (carco, msa):
        r = client.get("/api/v1/reports/traceability", headers=who,
                       params={"organisation": "Carco", "format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        lines = r.text.strip().splitlines()
        assert len(lines) == 2 and lines[1].endswith("True")  # reported years after: missed
    own = client.get("/api/v1/reports/traceability", headers=carco).json()
    assert [row["organisation"] for row in own] == ["Carco"]
    assert len(client.get("/api/v1/reports/traceability", headers=msa).json()) == 3
    assert client.get("/api/v1/reports/traceability", params={"organisation": "Carco"},
                      headers=maker).status_code == 403
    assert client.get("/api/v1/reports/traceability").status_code == 401


def test_openapi_lists_the_registry(client: TestClient) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    for p in ("/api/v1/batteries", "/api/v1/batteries/{ref}/history", "/api/v1/verify",
              "/api/v1/import/{kind}", "/api/v1/successors", "/api/v1/reports/traceability"):
        assert p in paths
