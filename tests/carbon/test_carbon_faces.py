"""The carbon CLI and API: JSON output, and bad input as one-line errors / RFC 9457 problems."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from batteryloop.api import create_app
from batteryloop.cli.main import app

API = "/api/v1/carbon"
runner = CliRunner()


def _cli(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr if r.stderr_bytes is not None else ""


def test_cli_footprint_json_and_table() -> None:
    code, out, _ = _cli("carbon", "footprint", "NMC811", "--grid", "EU", "--json")
    assert code == 0, out
    d = json.loads(out)
    assert d["grid"]["code"] == "EU" and d["chemistry"] == "NMC811"
    assert set(d["per_kwh_capacity"]) == {"raw_material_acquisition", "main_production", "distribution",
                                          "end_of_life", "total"}
    code, out, _ = _cli("carbon", "footprint", "LFP")
    assert code == 0 and "end of life and recycling" in out


def test_cli_claim_avoided_inventory_grids() -> None:
    code, out, _ = _cli("carbon", "claim", "--json")
    assert code == 0 and json.loads(out)["verdict"] == "inconsistent"
    code, out, _ = _cli("carbon", "avoided", "LFP", "--json")
    assert code == 0 and json.loads(out)["reuse"]["net_avoided"] > 0
    code, out, _ = _cli("carbon", "inventory", "--electricity-kwh", "1000", "--grid", "FR",
                        "--fuel", "natural_gas=2 GJ", "--gas", "SF6=0.01", "--json")
    assert code == 0, out
    s = json.loads(out)["scopes"]
    assert s["scope_2_location_based"] == pytest.approx(56.0)
    assert s["scope_1"] == pytest.approx(2000 * 0.0561571 + 0.01 * 25200)
    code, out, _ = _cli("carbon", "grids", "--json")
    assert code == 0 and any(g["name"] == "CN" for g in json.loads(out))


def test_cli_inventory_from_a_period_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    period = tmp_path / "day.json"
    period.write_text(json.dumps({"label": "day 1", "electricity_kWh": 100.0, "nmp_makeup_kg": 2.0}))
    code, out, _ = _cli("carbon", "inventory", "--period", str(period), "--grid", "CN", "--json")
    assert code == 0, out
    d = json.loads(out)
    assert d["period"] == "day 1" and d["scopes"]["scope_2_location_based"] == pytest.approx(58.2)


@pytest.mark.parametrize("args, message", [
    (("carbon", "footprint", "NMC811", "--recycled", "nickel"), "--recycled"),
    (("carbon", "footprint", "unobtainium"), "unknown chemistry"),
    (("carbon", "claim", "--share", "24"), "share"),
    (("carbon", "inventory", "--fuel", "diesel"), "--fuel"),
    (("carbon", "inventory", "--period", "/nonexistent.json"), "no such file"),
])
def test_cli_bad_input_is_one_line(args: tuple, message: str) -> None:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 1
    assert message in r.output


@pytest.fixture
def client(sqlite_db):  # type: ignore[no-untyped-def]
    with TestClient(create_app(sqlite_db), raise_server_exceptions=False) as c:
        yield c


def test_api_footprint_avoided_claim_inventory(client: TestClient) -> None:
    r = client.post(f"{API}/footprint", json={"chemistry": "NMC811", "grid": "FR",
                                             "recycled_content": {"nickel_sulfate": 0.16},
                                             "service": {"pack_kwh": 80}})
    assert r.status_code == 200, r.text
    assert r.json()["service_life"]["pack_kwh"] == 80
    assert client.get(f"{API}/footprint/LFP", params={"grid": "0.1"}).json()["grid"]["kg_per_kwh"] == 0.1
    r = client.post(f"{API}/avoided", json={"chemistry": "LFP", "reuse": {"soh_at_reuse": 0.7}})
    assert r.status_code == 200 and r.json()["reuse"]["parameters"]["soh_at_reuse"] == 0.7
    r = client.get(f"{API}/claim")
    assert r.status_code == 200 and r.json()["implied_baseline_kg_per_kwh"] == pytest.approx(791.6667, rel=1e-4)
    r = client.post(f"{API}/inventory", json={"period": {"electricity_kwh": 1000}, "grid": "SE"})
    assert r.status_code == 200 and r.json()["scopes"]["scope_2_location_based"] == pytest.approx(41.0)
    assert len(client.get(f"{API}/grids").json()) >= 10
    assert "ivl2019" in client.get(f"{API}/published").json()["studies"]


@pytest.mark.parametrize("method, path, body, status", [
    ("post", "/footprint", {"chemistry": "NMC811", "grid": "Atlantis"}, 404),
    ("post", "/footprint", {"chemistry": "NMC811", "recycled_content": {"nickel_sulfate": 2}}, 422),
    ("post", "/footprint", {"chemistry": "NMC811", "colour": "green"}, 422),
    ("post", "/inventory", {"fuels": [{"fuel": "diesel", "amount": 1, "unit": "barrel"}]}, 422),
    ("post", "/inventory", {"period": {"electricity_kwh": -1}}, 422),
    ("get", "/claim?share=24", None, 422),
    ("get", "/claim?low=61", None, 422),
])
def test_api_bad_input_is_a_problem(client: TestClient, method: str, path: str, body: dict | None,
                                    status: int) -> None:
    r = client.post(API + path, json=body) if method == "post" else client.get(API + path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"]
