"""Plant telemetry over HTTP: tags and rules open, series and alarms for signed-in callers, the
alarm log evaluated and acknowledged by a writer, bad input as RFC 9457 problems."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from batteryloop.api import create_app
from batteryloop.factory.simulator import Fault, Simulator
from batteryloop.factory.telemetry.intake import Intake
from batteryloop.factory.telemetry.store import TelemetryStore

API = "/api/v1/plant"
START = datetime(2025, 1, 6, 5, 0, tzinfo=UTC)


@pytest.fixture
def line(data_dir) -> str:  # type: ignore[no-untyped-def]
    """90 simulated minutes of line "l1" in the data directory; cond1's outlet sticks at 30."""
    sim = Simulator("l1", start=START, seed=2, faults=[
        Fault("stuck", timedelta(minutes=30)),
        Fault("bad-messages", timedelta(0), size=0.01)])
    intake = Intake(TelemetryStore())
    for frame in sim.frames(timedelta(minutes=90)):
        intake.messages(*sim.messages(frame)[:2])
    return "l1"


def test_tags_and_rules_are_open(db) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app(db), raise_server_exceptions=False) as c:
        tags = c.get(f"{API}/tags").json()
        assert len(tags) == 23
        assert {"tag": "stack.nmp", "unit": "mg/Nm3"}.items() <= next(
            t for t in tags if t["tag"] == "stack.nmp").items()
        rules = {r["id"]: r for r in c.get(f"{API}/alarm-rules").json()}
        assert rules["workplace-nmp-8h"]["above"] == 40.0 and rules["workplace-nmp-8h"]["source"]
        r = c.get(f"{API}/lines")
        assert r.status_code == 401 and r.headers["content-type"].startswith(
            "application/problem+json")


def test_series_quarantine_alarms_and_ack(db, member, line: str) -> None:  # type: ignore[no-untyped-def]
    reader = member("Plant", "manufacturer", scopes=())
    writer = member("Plant", "manufacturer")
    with TestClient(create_app(db), raise_server_exceptions=False) as c:
        assert c.get(f"{API}/lines", headers=reader).json() == ["l1"]
        r = c.get(f"{API}/lines/l1/series", headers=reader, params={
            "tag": "stack.flow", "every": "1h",
            "start": START.isoformat(), "end": (START + timedelta(hours=2)).isoformat()})
        body = r.json()
        assert r.status_code == 200 and body["rows"] == 2
        assert body["data"]["count"][0] + body["data"]["count"][1] <= 540
        assert c.get(f"{API}/lines/nope/series", headers=reader).status_code == 404
        naive = c.get(f"{API}/lines/l1/series", headers=reader,
                      params={"start": "2025-01-06T05:00:00"})
        assert naive.status_code == 422 and "offset" in naive.json()["detail"]

        q = c.get(f"{API}/lines/l1/quarantine", headers=reader, params={"limit": 5}).json()
        assert q["total"] == sum(q["counts"].values()) > 0 and len(q["latest"]) == 5

        window = {"start": START.isoformat(), "end": (START + timedelta(minutes=90)).isoformat()}
        assert c.post(f"{API}/lines/l1/alarms/evaluate", json=window,
                      headers=reader).status_code == 403
        done = c.post(f"{API}/lines/l1/alarms/evaluate", json=window, headers=writer).json()
        raised = [t["alarm"] for t in done["transitions"] if t["kind"] == "raised"]
        assert raised == ["stuck:cond1.outlet.temp"] and done["recorded"] == 1

        alarms = c.get(f"{API}/lines/l1/alarms", headers=reader).json()
        assert [a["alarm"] for a in alarms] == ["stuck:cond1.outlet.temp"]
        ack = c.post(f"{API}/alarms/{alarms[0]['id']}/ack", json={"note": "transmitter reset"},
                     headers=writer)
        assert ack.status_code == 200 and "plant" in ack.json()["acknowledged_by"]
        again = c.post(f"{API}/alarms/{alarms[0]['id']}/ack", json={}, headers=writer)
        assert again.status_code == 409
        assert c.post(f"{API}/alarms/999999/ack", json={}, headers=writer).status_code == 404
        still = c.get(f"{API}/lines/l1/alarms", headers=reader, params={"state": "active"}).json()
        assert still[0]["acknowledged_at"] and still[0]["active"]
