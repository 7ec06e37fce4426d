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


@pytest.fixture
def lab_client(db, member):  # type: ignore[no-untyped-def]
    """Signed in as a writer of "Lab", a repurposer: the legitimate-interest tier reads and acts on
    every battery's grading records (tests/api/conftest.py)."""
    with TestClient(create_app(db), raise_server_exceptions=False,
                    headers=member("Lab", "repurposer")) as c:
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


def test_inspect_grade_certificate_route(lab_client: TestClient) -> None:
    assert lab_client.get(f"{API}/organisations/Lab").json()["roles"] == ["repurposer"]
    uid = _collected(lab_client, "P-1")
    r = lab_client.post(f"{API}/batteries/P-1/inspections", json={
        "inspector": "Lab", "visual": {"corrosion": False}, "ocv_v": 330.2,
        "insulation_resistance_ohm": 2e6, "bms_codes": []})
    assert r.status_code == 201, r.text
    assert r.json()["event_seq"] == 5
    assert len(lab_client.get(f"{API}/batteries/P-1/inspections").json()) == 1

    r = lab_client.post(f"{API}/batteries/P-1/grade",
                    json={"policy": "stationary-storage", "health": HEALTH, "actor": "Lab"})
    assert r.status_code == 201, r.text
    g = r.json()
    assert (g["route"], g["grade"], g["decided_by"]["id"]) == ("repurposed", "A", "band-a")
    assert g["soh"]["lower"] == 82.0 and g["value"]["inputs"]["soh_lower"] == 82.0
    assert lab_client.get(f"{API}/batteries/P-1/grade").json()["seq"] == g["seq"]
    assert lab_client.get(f"{API}/batteries/{uid}").json()["state"] == "graded"

    cert = lab_client.get(f"{API}/batteries/P-1/certificate").json()
    assert cert["record_url"] == f"http://testserver/batteries/{uid}"
    assert cert["grading"]["route"] == "repurposed"
    r = lab_client.get(f"{API}/batteries/P-1/certificate.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.headers["x-certificate-sha256"]
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages)
    assert "band-a" in text and "stationary-storage" in text

    r = lab_client.post(f"{API}/batteries/P-1/route", json={"route": "reused"})
    _problem(r, 409)
    r = lab_client.post(f"{API}/batteries/P-1/route", json={"actor": "Lab"})
    assert r.status_code == 201 and r.json()["state"] == "repurposed"


def test_second_life_over_http(lab_client: TestClient) -> None:
    for serial in ("A", "B"):
        _collected(lab_client, serial)
        lab_client.post(f"{API}/batteries/{serial}/inspections", json={"bms_codes": []})
        r = lab_client.post(f"{API}/batteries/{serial}/grade",
                        json={"policy": "stationary-storage", "health": HEALTH})
        assert r.status_code == 201, r.text
    r = lab_client.post(f"{API}/grading/second-life", json={
        "sources": ["A", "B"], "relation": "repurposed",
        "battery": {"kind": "pack", "identifiers": {"second_life": "SL-7"}}})
    assert r.status_code == 201, r.text
    child = r.json()
    assert child["state"] == "repurposed" and len(child["sources"]) == 2
    assert child["chemistry"] == "LFP"


def test_policies_evaluate_and_value(lab_client: TestClient) -> None:
    listed = {p["name"] for p in lab_client.get(f"{API}/grading/policies").json()}
    assert {"ev-reuse", "stationary-storage", "low-speed-vehicle"} <= listed
    shown = lab_client.get(f"{API}/grading/policies/ev-reuse").json()
    assert shown["rules"][0]["kind"] == "safety" and "path" not in shown
    r = lab_client.post(f"{API}/grading/evaluate", json={
        "policy": "ev-reuse", "findings": {"leakage": True}})
    assert r.status_code == 200 and r.json()["decided_by"]["id"] == "safety.leakage"
    r = lab_client.post(f"{API}/grading/evaluate", json={
        "health": [{"parameter": "soce", "value": 81, "lower": 78, "upper": 84},
                   {"parameter": "resistance_increase", "value": 10, "lower": 8, "upper": 12}],
        "bms_codes": [], "values": {"insulation_resistance": 400}})
    assert r.json()["route"] == "repurposed"
    r = lab_client.post(f"{API}/grading/value", json={
        "rated_energy_kwh": 40, "soh_lower": 80, "chemistry": "NMC", "route": "repurposed",
        "application": "stationary"})
    assert r.status_code == 200 and 38 <= r.json()["ceiling"]["per_remaining_kwh"] <= 132


def test_bad_input_is_a_problem(lab_client: TestClient) -> None:
    _collected(lab_client, "P-1")
    body = _problem(lab_client.post(f"{API}/batteries/P-1/grade", json={"policy": "nope"}), 404)
    assert "no grading policy 'nope'" in body["detail"]
    _problem(lab_client.get(f"{API}/grading/policies/nope"), 404)
    _problem(lab_client.get(f"{API}/grading/policies/..%2F..%2Fetc"), 404)
    body = _problem(lab_client.post(f"{API}/batteries/P-1/grade", json={}), 422)
    assert body["location"] == "inspection"
    lab_client.post(f"{API}/batteries/P-1/inspections", json={})
    body = _problem(lab_client.post(f"{API}/batteries/P-1/grade", json={}), 422)
    assert body["location"] == "health" and "no health assessment" in body["detail"]
    bad = 'name = "x"\n\n[[rules]]\nid = "r"\nroute = "reused"\nconvention = "c"\nwhen = [{ metric = "sohh", at_least = 1 }]\n'
    body = _problem(lab_client.post(f"{API}/grading/policies/check", json={"toml": bad}), 422)
    assert body["location"] == "policy_toml:7" and "unknown metric 'sohh'" in body["detail"]
    body = _problem(lab_client.post(f"{API}/batteries/P-1/grade",
                                json={"policy_toml": "name = \n", "health": HEALTH}), 422)
    assert body["location"] == "policy_toml:1"
    body = _problem(lab_client.post(f"{API}/batteries/P-1/inspections", json={"visual": {"swollen": True}}), 422)
    assert "unknown finding" in body["detail"]
    body = _problem(lab_client.post(f"{API}/batteries/P-1/grade", json={
        "health": [{"parameter": "soh", "value": 80, "lower": 78, "upper": 82}]}), 422)
    assert "unknown health parameter" in body["detail"]
    _problem(lab_client.post(f"{API}/batteries/P-1/grade", json={
        "health": [{"parameter": "soce", "value": 80, "lower": 81, "upper": 82}]}), 422)
    _problem(lab_client.get(f"{API}/batteries/P-1/certificate"), 404)
    _problem(lab_client.get(f"{API}/batteries/P-1/grade"), 404)



def _graded_cells(db, sohs: dict[str, float], *, dcir: bool = True) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Cells of the Lab (maker and holder), inspected, assessed and graded for storage."""
    from batteryloop import grading
    from batteryloop.grading.inspection import InspectionIn
    from batteryloop.registry.schemas import BatteryIn
    from batteryloop.registry.service import Registry

    out = {}
    with db.session() as s:
        reg = Registry(s)
        for serial, soh in sohs.items():
            b = reg.register(BatteryIn(kind="cell", chemistry="LFP", rated_capacity_ah=10,
                                       nominal_voltage_v=3.2, manufacturer="Lab",
                                       identifiers={"serial": serial}), actor="Lab")
            for state in ("in_service", "retired", "collected"):
                reg.change_status(b.uid, state)
            grading.record_inspection(s, serial, InspectionIn(inspector="Lab", bms_codes=[]))
            values = [{"parameter": "capacity_soh", "value": soh, "lower": soh - 1, "upper": soh + 1}]
            if dcir:
                values.append({"parameter": "dc_resistance", "value": 0.01, "lower": 0.009,
                               "upper": 0.011})
            grading.grade(s, serial, policy="stationary-storage", health=values, actor="Lab")
            out[serial] = b.uid
    return out


def _events(db, ref: str) -> list[dict]:  # type: ignore[no-untyped-def]
    from batteryloop.registry.service import Registry

    with db.session() as s:
        return Registry(s).history(ref)


def test_regroup_plan_commit_and_cluster_over_http(client: TestClient, db, member) -> None:  # type: ignore[no-untyped-def]
    lab = member("Lab", "repurposer")
    sohs = {"A": 80.0, "B": 82.0, "C": 90.0, "D": 92.0, "E": 70.0}
    uid = _graded_cells(db, sohs)
    body = {"batteries": list(sohs), "layout": "2S2P"}
    _problem(client.post(f"{API}/regroup/plan", json=body), 401)  # a battery's grade: signed in
    r = client.post(f"{API}/regroup/plan", json=body, headers=lab)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["packs"][0]["usable_capacity_ah"] == pytest.approx(17.2)
    assert plan["leftover"] == [uid["E"]] and plan["features"]["used"] == ["capacity", "dcir"]
    _problem(client.post(f"{API}/regroup/commit", json=body), 401)
    r = client.post(f"{API}/regroup/commit", headers=lab, json={
        **body, "plan_sha256": plan["sha256"], "identifier_prefix": "SL"})
    assert r.status_code == 201, r.text
    built = r.json()["built"][0]
    events = _events(db, "A")
    assert events[-1]["type"] == "regrouped" and events[-1]["payload"]["pack"] == built["uid"]
    assert events[-1]["actor_name"] == "Lab"
    pack = _events(db, "SL-1")
    assert pack[-1]["type"] == "regrouped" and pack[-1]["payload"]["sources"] == 4
    more = _graded_cells(db, {"F": 71.0, "G": 85.0})
    r = client.post(f"{API}/regroup/cluster", headers=lab, json={
        "batteries": ["E", *more.values()], "method": "binning", "target_range": 1.0})
    assert r.status_code == 200, r.text
    assert [g["size"] for g in r.json()["groups"]] == [1, 2]


def test_regroup_bad_input_is_a_problem(client: TestClient, db, member) -> None:  # type: ignore[no-untyped-def]
    lab = member("Lab", "repurposer")
    _graded_cells(db, {"A": 80.0, "B": 82.0, "W": 50.0})

    def post(path: str, body: dict) -> object:
        return client.post(f"{API}/regroup/{path}", json=body, headers=lab)

    body = _problem(post("plan", {"batteries": ["A", "B"], "layout": "2S2P"}), 422)
    assert "2 batteries cannot fill one 2S2P pack" in body["detail"] and body["location"] == "batteries"
    body = _problem(post("commit", {"batteries": ["A", "B", "W"], "layout": "3S1P"}), 409)
    assert "was graded 'waste'" in body["detail"]
    _problem(post("plan", {"batteries": ["A", "NOPE"], "layout": "2S1P"}), 404)
    _problem(post("plan", {"batteries": ["A", "B"], "layout": "2x1"}), 422)
    _problem(post("plan", {"batteries": [], "layout": "2S1P"}), 422)
    _problem(post("commit", {"batteries": ["A", "B"], "layout": "2S1P", "plan_sha256": "0" * 64}), 409)
    _problem(post("cluster", {"batteries": ["A", "B"], "method": "dbscan"}), 422)
    _problem(post("cluster", {"batteries": ["A", "B"], "method": "kmeans"}), 422)
    assert _events(db, "A")[-1]["type"] == "status-changed"  # nothing written


def test_certificates_issued_and_checked_over_http(client: TestClient, db, member) -> None:  # type: ignore[no-untyped-def]
    import base64

    lab = member("Lab", "repurposer")
    _graded_cells(db, {"A": 85.0})
    draft = client.get(f"{API}/batteries/A/certificate", headers=lab).json()
    r = client.post(f"{API}/certificates/check", json={"certificate": draft})
    assert r.status_code == 200 and not r.json()["valid"]  # a draft was never issued
    _problem(client.post(f"{API}/batteries/A/certificate"), 401)
    r = client.post(f"{API}/batteries/A/certificate", headers=lab)
    assert r.status_code == 201, r.text
    cert = r.json()
    assert cert["issued_by"]["name"] == "Lab"
    r = client.post(f"{API}/certificates/check", json={"certificate": cert})  # anyone may check
    assert r.status_code == 200 and r.json()["valid"], r.text
    r = client.post(f"{API}/batteries/A/certificate.pdf", headers=lab)
    assert r.status_code == 201 and r.headers["content-type"] == "application/pdf"
    assert r.headers["x-certificate-event"]
    pdf64 = base64.b64encode(r.content).decode()
    r = client.post(f"{API}/certificates/check", json={"pdf_base64": pdf64})
    assert r.status_code == 200 and r.json()["valid"] and r.json()["issued"]["actor"] == "Lab"
    assert [e["type"] for e in _events(db, "A")][-2:] == ["certificate-issued", "certificate-issued"]
    _problem(client.post(f"{API}/certificates/check", json={}), 422)
    _problem(client.post(f"{API}/certificates/check", json={"pdf_base64": "not base64!"}), 422)
    _problem(client.post(f"{API}/certificates/check", json={"certificate": {"x": 1}}), 422)
    _problem(client.post(f"{API}/batteries/NOPE/certificate", headers=lab), 404)
