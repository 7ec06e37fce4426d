"""The registry over HTTP: every verb, and errors as RFC 9457 problems (never a 500 for bad input)."""

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


def _orgs(client: TestClient) -> None:
    for name, roles in (("Maker", ["manufacturer"]), ("Carco", ["vehicle_maker"]),
                        ("Outlet", ["collection_outlet"]), ("Reuse", ["repurposer"])):
        r = client.post("/api/v1/organisations", json={"name": name, "roles": roles})
        assert r.status_code == 201, r.text


def test_register_show_history_status_transfer(client: TestClient) -> None:
    _orgs(client)
    r = client.post("/api/v1/batteries", params={"actor": "Maker"},
                    json={"code": _code(1), "rated_capacity_ah": 150, "manufacturer": "Maker",
                          "identifiers": {"vin": "LGXCE4CB0N0000001"}})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["kind"] == "pack" and body["chemistry"] == "LFP"
    assert body["manufactured_on"] == "2020-05-17"
    assert body["state"] == "produced" and body["eu_status"] == "original"
    uid = body["uid"]

    # any identifier finds it
    for ref in (uid, _code(1), "LGXCE4CB0N0000001"):
        assert client.get(f"/api/v1/batteries/{ref}").json()["uid"] == uid

    r = client.post(f"/api/v1/batteries/{uid}/transfers",
                    json={"custody_to": "Carco", "responsibility_to": "Carco", "actor": "Maker"})
    assert r.status_code == 201 and r.json()["seq"] == 2
    r = client.post(f"/api/v1/batteries/{uid}/status", json={"to": "in_service", "actor": "Carco"})
    assert r.status_code == 201 and r.json()["seq"] == 3

    shown = client.get(f"/api/v1/batteries/{uid}").json()
    assert shown["state"] == "in_service" and shown["owner"]["name"] == "Carco"
    hist = client.get(f"/api/v1/batteries/{uid}/history").json()
    assert [e["type"] for e in hist] == ["registered", "transferred", "status-changed"]
    assert hist[1]["prev_hash"] == hist[0]["hash"] and hist[2]["prev_hash"] == hist[1]["hash"]
    assert client.get("/api/v1/verify").json()["ok"] is True


def test_illegal_transition_is_a_409_problem_naming_both_states(client: TestClient) -> None:
    _orgs(client)
    uid = client.post("/api/v1/batteries", json={"kind": "cell"}).json()["uid"]
    r = client.post(f"/api/v1/batteries/{uid}/status", json={"to": "recycled"})
    assert r.status_code == 409
    assert r.headers["content-type"].startswith(PROBLEM)
    problem = r.json()
    assert problem["status"] == 409 and "'produced'" in problem["detail"] and "'recycled'" in problem["detail"]
    assert len(client.get(f"/api/v1/batteries/{uid}/history").json()) == 1


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
def test_bad_input_gets_problem_details(client: TestClient, method, path, payload, status) -> None:  # type: ignore[no-untyped-def]
    r = getattr(client, method)(path, **({"json": payload} if payload is not None else {}))
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]


def test_malformed_json_body_is_422_not_500(client: TestClient) -> None:
    r = client.post("/api/v1/batteries", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM)


def test_bad_code_names_the_position(client: TestClient) -> None:
    code = _code(2)
    bad = code[:3] + "X" + code[4:]
    r = client.post("/api/v1/batteries", json={"code": bad})
    assert r.status_code == 422
    assert "position 4" in r.json()["detail"]


def test_pagination_and_filters(client: TestClient) -> None:
    _orgs(client)
    for n in range(7):
        client.post("/api/v1/batteries", json={"code": _code(100 + n), "manufacturer": "Maker"})
    client.post("/api/v1/batteries", json={"kind": "cell", "chemistry": "NMC811"})
    page = client.get("/api/v1/batteries", params={"limit": 3, "offset": 3, "kind": "pack"}).json()
    assert page["total"] == 7 and len(page["items"]) == 3 and page["offset"] == 3
    assert client.get("/api/v1/batteries", params={"chemistry": "NMC811"}).json()["total"] == 1
    assert client.get("/api/v1/batteries", params={"q": _code(103)[-7:]}).json()["total"] == 1
    assert client.get("/api/v1/batteries", params={"limit": 0}).status_code == 422


def test_import_upload_all_or_nothing(client: TestClient) -> None:
    _orgs(client)
    good = f"code,manufacturer\n{_code(201)},Maker\n{_code(202)},Maker\n"
    bad = good + "NOTACODE,Maker\n"
    r = client.post("/api/v1/import/batteries", files={"file": ("b.csv", io.BytesIO(bad.encode()))})
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert errors[0]["row"] == 4
    assert client.get("/api/v1/batteries").json()["total"] == 0
    r = client.post("/api/v1/import/batteries", data={"skip_invalid": "true"},
                    files={"file": ("b.csv", io.BytesIO(bad.encode()))})
    assert r.status_code == 200 and r.json()["written"] == 2 and len(r.json()["rejected"]) == 1
    assert client.get("/api/v1/batteries").json()["total"] == 2


def test_garbage_upload_is_a_clear_422(client: TestClient) -> None:
    r = client.post("/api/v1/import/batteries", files={"file": ("x.csv", io.BytesIO(b"\xff\xfe\x00garbage"))})
    assert r.status_code == 422 and "x.csv" in r.json()["detail"]


def test_successor_and_lineage(client: TestClient) -> None:
    _orgs(client)
    sources = []
    for _n in range(2):
        uid = client.post("/api/v1/batteries", json={"kind": "module"}).json()["uid"]
        for to in ("in_service", "retired", "collected", "tested", "graded"):
            assert client.post(f"/api/v1/batteries/{uid}/status", json={"to": to}).status_code == 201
        sources.append(uid)
    r = client.post("/api/v1/successors", json={"sources": sources, "relation": "repurposed",
                                                "actor": "Reuse", "battery": {"kind": "pack"}})
    assert r.status_code == 201, r.text
    child = r.json()
    assert child["eu_status"] == "repurposed" and child["responsible"]["name"] == "Reuse"
    assert sorted(s["uid"] for s in child["sources"]) == sorted(sources)
    up = client.get(f"/api/v1/batteries/{sources[0]}/lineage").json()
    assert [s["uid"] for s in up["successors"]] == [child["uid"]]


def test_traceability_report_csv(client: TestClient) -> None:
    _orgs(client)
    uid = client.post("/api/v1/batteries", params={"actor": "Maker"}, json={"kind": "pack"}).json()["uid"]
    client.post(f"/api/v1/batteries/{uid}/status",
                json={"to": "in_service", "actor": "Carco", "occurred_at": "2020-01-06T10:00:00Z"})
    r = client.get("/api/v1/reports/traceability", params={"organisation": "Carco", "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.strip().splitlines()
    assert len(lines) == 2 and lines[1].endswith("True")  # reported years after: missed


def test_openapi_lists_the_registry(client: TestClient) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    for p in ("/api/v1/batteries", "/api/v1/batteries/{ref}/history", "/api/v1/verify",
              "/api/v1/import/{kind}", "/api/v1/successors", "/api/v1/reports/traceability"):
        assert p in paths
