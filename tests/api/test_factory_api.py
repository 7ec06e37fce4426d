"""/api/v1/plant: model, KPIs and the daily report over HTTP; bad input is a 422 problem."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from batteryloop.api import create_app

PROBLEM = "application/problem+json"


@pytest.fixture
def client(db) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(create_app(db), raise_server_exceptions=False) as c:
        yield c


def _hours(n: int = 24, stack_at: int | None = None) -> list[dict]:
    start = datetime(2025, 3, 3, 6)
    out = []
    for i in range(n):
        out.append({"time": (start + timedelta(hours=i)).isoformat(), "tags": {
            "nmp.feed": 240.0, "product.flow": 238.0, "product.purity": 99.98,
            "product.water": 140.0, "stack.nmp": 120.0 if i == stack_at else 20.0,
            "stack.flow": 30000.0, "workplace.nmp": 4.0, "power.fans": 75.0,
            "power.chiller": 70.0, "steam.distillation": 90.0, "heat.rotor": 80.0}})
    return out


def test_model_design_point_and_override(client: TestClient) -> None:
    r = client.get("/api/v1/plant/model")
    assert r.status_code == 200, r.text
    assert r.json()["indicators"]["capture_rate"] >= 0.99
    r = client.post("/api/v1/plant/model", json={"conditions": {"oven.exhaust.nmp": 6000},
                                                 "overrides": {"polisher.kind": "none"}})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["conditions"]["oven.exhaust.nmp"] == 6000
    assert 0.88 < d["indicators"]["capture_rate"] < 0.95
    assert max(d["closure"].values()) < 1e-8


def test_kpi_and_report(client: TestClient) -> None:
    r = client.post("/api/v1/plant/kpi", json={"hours": _hours(stack_at=2), "by": "shift"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert [p["shift"] for p in d["periods"]] == ["A", "B", "C"]
    assert d["periods"][0]["recovery_rate"] == pytest.approx(238.0 * 0.9998 / 240.0)
    assert [e["kind"] for e in d["exceedances"]] == ["stack"]
    r = client.post("/api/v1/plant/report", json={"hours": _hours(), "day": "2025-03-03"})
    assert r.status_code == 200 and r.json()["compliant"] is True
    r = client.post("/api/v1/plant/report", json={"hours": _hours(), "day": "2025-03-03",
                                                  "format": "pdf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF")
    r = client.get("/api/v1/plant/limits")
    assert "2009/161/EU" in r.json()["limits"]["workplace_source"]


@pytest.mark.parametrize(("path", "body", "where"), [
    ("/api/v1/plant/model", {"conditions": {"oven.exhaust.flow": -1}}, "oven.exhaust.flow"),
    ("/api/v1/plant/model", {"overrides": {"rotor.nope": 1}}, "rotor.nope"),
    ("/api/v1/plant/kpi", {"hours": [{"time": "2025-03-03T06:00:00", "tags": {"nmp.feed": 1.0}}]},
     "product.flow"),
    ("/api/v1/plant/report", {"hours": _hours(), "day": "2025-05-01"}, "2025-05-01"),
])
def test_bad_input_is_a_problem_naming_the_field(client: TestClient, path, body, where) -> None:
    r = client.post(path, json=body)
    assert r.status_code in (404, 422)
    assert r.headers["content-type"].startswith(PROBLEM)
    assert where in r.json()["detail"]
