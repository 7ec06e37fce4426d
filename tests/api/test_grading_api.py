"""Grading over HTTP: the workflow, certificates, stateless evaluation and value, and bad input as
RFC 9457 problems."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from batteryloop.api import create_app

PROBLEM = "application/problem+json"
API = "/api/v1"


@pytest.fixture
def client(db):  # type: ignore[no-untyped-def]
    with TestClient(create_app(db), raise_server_exceptions=False) as c:
        yield c


def _collected(client: TestClient, serial: str) -> str:
    r = client.post(f"{API}/batteries", json={
        "kind": "pack", "chemistry": "LFP", "rated_capacity_ah": 200, "nominal_voltage_v": 320,
        "rated_energy_wh": 64000, "manufactured_on": "2020-06-01", "identifiers": {"serial": serial}})
    assert r.status_code == 201, r.text
    for state in ("in_service", "retired", "collected"):
        assert client.post(f"{API}/batteries/{serial}/status", json={"to": state}).status_code == 201
    return r.json()["uid"]


def _problem(r, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status and body["detail"]
    return body


HEALTH = [{"parameter": "capacity_soh", "value": 84.0, "lower": 82.0, "upper": 86.0,
           "method": "pulse-test model", "source": "model-v1"}]


def test_inspect_grade_certificate_route(client: TestClient) -> None:
    assert client.post(f"{API}/organisations", json={"name": "Lab", "roles": ["repurposer"]}).status_code == 201
    uid = _collected(client, "P-1")
    r = client.post(f"{API}/batteries/P-1/inspections", json={
        "inspector": "Lab", "visual": {"corrosion": False}, "ocv_v": 330.2,
        "insulation_resistance_ohm": 2e6, "bms_codes": []})
    assert r.status_code == 201, r.text
    assert r.json()["event_seq"] == 5
    assert len(client.get(f"{API}/batteries/P-1/inspections").json()) == 1

    r = client.post(f"{API}/batteries/P-1/grade",
                    json={"policy": "stationary-storage", "health": HEALTH, "actor": "Lab"})
    assert r.status_code == 201, r.text
    g = r.json()
    assert (g["route"], g["grade"], g["decided_by"]["id"]) == ("repurposed", "A", "band-a")
    assert g["soh"]["lower"] == 82.0 and g["value"]["inputs"]["soh_lower"] == 82.0
    assert client.get(f"{API}/batteries/P-1/grade").json()["seq"] == g["seq"]
    assert client.get(f"{API}/batteries/{uid}").json()["state"] == "graded"

    cert = client.get(f"{API}/batteries/P-1/certificate").json()
    assert cert["record_url"] == f"http://testserver/batteries/{uid}"
    assert cert["grading"]["route"] == "repurposed"
    r = client.get(f"{API}/batteries/P-1/certificate.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.headers["x-certificate-sha256"]
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages)
    assert "band-a" in text and "stationary-storage" in text

    r = client.post(f"{API}/batteries/P-1/route", json={"route": "reused"})
    _problem(r, 409)
    r = client.post(f"{API}/batteries/P-1/route", json={"actor": "Lab"})
    assert r.status_code == 201 and r.json()["state"] == "repurposed"


def test_second_life_over_http(client: TestClient) -> None:
    for serial in ("A", "B"):
        _collected(client, serial)
        client.post(f"{API}/batteries/{serial}/inspections", json={"bms_codes": []})
        r = client.post(f"{API}/batteries/{serial}/grade",
                        json={"policy": "stationary-storage", "health": HEALTH})
        assert r.status_code == 201, r.text
    r = client.post(f"{API}/grading/second-life", json={
        "sources": ["A", "B"], "relation": "repurposed",
        "battery": {"kind": "pack", "identifiers": {"second_life": "SL-7"}}})
    assert r.status_code == 201, r.text
    child = r.json()
    assert child["state"] == "repurposed" and len(child["sources"]) == 2
    assert child["chemistry"] == "LFP"


def test_policies_evaluate_and_value(client: TestClient) -> None:
    listed = {p["name"] for p in client.get(f"{API}/grading/policies").json()}
    assert {"ev-reuse", "stationary-storage", "low-speed-vehicle"} <= listed
    shown = client.get(f"{API}/grading/policies/ev-reuse").json()
    assert shown["rules"][0]["kind"] == "safety" and "path" not in shown
    r = client.post(f"{API}/grading/evaluate", json={
        "policy": "ev-reuse", "findings": {"leakage": True}})
    assert r.status_code == 200 and r.json()["decided_by"]["id"] == "safety.leakage"
    r = client.post(f"{API}/grading/evaluate", json={
        "health": [{"parameter": "soce", "value": 81, "lower": 78, "upper": 84},
                   {"parameter": "resistance_increase", "value": 10, "lower": 8, "upper": 12}],
        "bms_codes": [], "values": {"insulation_resistance": 400}})
    assert r.json()["route"] == "repurposed"
    r = client.post(f"{API}/grading/value", json={
        "rated_energy_kwh": 40, "soh_lower": 80, "chemistry": "NMC", "route": "repurposed",
        "application": "stationary"})
    assert r.status_code == 200 and 38 <= r.json()["ceiling"]["per_remaining_kwh"] <= 132


def test_bad_input_is_a_problem(client: TestClient) -> None:
    _collected(client, "P-1")
    body = _problem(client.post(f"{API}/batteries/P-1/grade", json={"policy": "nope"}), 404)
    assert "no grading policy 'nope'" in body["detail"]
    _problem(client.get(f"{API}/grading/policies/nope"), 404)
    _problem(client.get(f"{API}/grading/policies/..%2F..%2Fetc"), 404)
    body = _problem(client.post(f"{API}/batteries/P-1/grade", json={}), 422)
    assert body["location"] == "inspection"
    client.post(f"{API}/batteries/P-1/inspections", json={})
    body = _problem(client.post(f"{API}/batteries/P-1/grade", json={}), 422)
    assert body["location"] == "health" and "no health assessment" in body["detail"]
    bad = 'name = "x"\n\n[[rules]]\nid = "r"\nroute = "reused"\nconvention = "c"\nwhen = [{ metric = "sohh", at_least = 1 }]\n'
    body = _problem(client.post(f"{API}/grading/policies/check", json={"toml": bad}), 422)
    assert body["location"] == "policy_toml:7" and "unknown metric 'sohh'" in body["detail"]
    body = _problem(client.post(f"{API}/batteries/P-1/grade",
                                json={"policy_toml": "name = \n", "health": HEALTH}), 422)
    assert body["location"] == "policy_toml:1"
    body = _problem(client.post(f"{API}/batteries/P-1/inspections", json={"visual": {"swollen": True}}), 422)
    assert "unknown finding" in body["detail"]
    body = _problem(client.post(f"{API}/batteries/P-1/grade", json={
        "health": [{"parameter": "soh", "value": 80, "lower": 78, "upper": 82}]}), 422)
    assert "unknown health parameter" in body["detail"]
    _problem(client.post(f"{API}/batteries/P-1/grade", json={
        "health": [{"parameter": "soce", "value": 80, "lower": 81, "upper": 82}]}), 422)
    _problem(client.get(f"{API}/batteries/P-1/certificate"), 404)
    _problem(client.get(f"{API}/batteries/P-1/grade"), 404)
