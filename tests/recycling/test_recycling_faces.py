"""Recycling from the command line and over HTTP: the batch workflow, certificates (JSON and PDF),
and bad input as one-line errors / RFC 9457 problems."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from batteryloop.api import create_app
from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry

API = "/api/v1"
PROBLEM = "application/problem+json"


def _collected_cli(cli, serial: str, chemistry: str, mass: float, kwh: float) -> None:  # type: ignore[no-untyped-def]
    assert cli("register", "--kind", "pack", "--chemistry", chemistry, "--mass-kg", str(mass),
               "--energy-wh", str(kwh * 1000), "--id", f"serial={serial}")[0] == 0
    for state in ("in_service", "retired", "collected"):
        assert cli("status", serial, state)[0] == 0


def test_cli_dismantle_batch_close_certificate(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("org", "add", "Loop Recycling", "--role", "recycler", "--role", "dismantler")[0] == 0
    _collected_cli(cli, "LEAF-A", "LMO", 294, 24)
    _collected_cli(cli, "NMC-A", "NMC111", 253, 26.6)
    code, out, err = cli("recycle", "dismantle", "LEAF-A", "--from-pack", "nissan-leaf-ze0-24kwh",
                         "--actor", "Loop Recycling", "--json")
    assert code == 0, err
    assert json.loads(out)["fractions_kg"] == pytest.approx(294.0)
    assert cli("recycle", "dismantle", "NMC-A", "--from-pack", "ellingsen-nmc-26kwh")[0] == 0
    code, out, err = cli("recycle", "batch", "create", "B-9", "--route", "hydrometallurgical",
                         "--battery", "LEAF-A", "--battery", "NMC-A", "--processed-on", "2028-01-15",
                         "--override", "li.recovered=0.95")
    assert code == 0, err
    code, out, err = cli("recycle", "batch", "close", "B-9", "--actor", "Loop Recycling", "--json")
    assert code == 0, err
    closed = json.loads(out)
    li = next(m for m in closed["compliance"]["material_recovery"] if m["element"] == "li")
    assert li["value_pct"] == pytest.approx(95.0)  # the override, kept with the batch
    assert closed["route"]["overrides"] == {"li.recovered": 0.95}
    pdf = tmp_path / "cert.pdf"
    code, out, err = cli("recycle", "batch", "certificate", "B-9", "--pdf", str(pdf), "--json")
    assert code == 0, err
    cert = json.loads(out)
    assert cert["draft"] is False and len(cert["sha256"]) == 64
    # the carbon section (batteryloop.wiring joins carbon.batch to the batch), redone by hand
    carbon, used = cert["carbon"], cert["consumption"]
    assert carbon["grid"]["code"] == "CN" and carbon["grid"]["kg_per_kwh"] == pytest.approx(0.582)
    assert carbon["recycling_emissions"]["energy"]["electricity"] == pytest.approx(
        used["energy_mj"]["electricity"] / 3.6 * 0.582, rel=1e-5)  # MJ -> kWh x grid factor
    li = next(m for m in carbon["avoided_virgin"]["materials"] if m["constituent"] == "li")
    li_recovered = next(m for m in closed["compliance"]["material_recovery"] if m["element"] == "li")
    assert li["recovered_kg"] == pytest.approx(li_recovered["recovered_kg"], rel=1e-6)
    assert li["replaces"] == "lithium_carbonate"  # the route's lithium product
    assert li["material_kg"] == pytest.approx(li["recovered_kg"] * 73.891 / (2 * 6.94), rel=1e-3)
    assert carbon["net_avoided"] == pytest.approx(
        carbon["avoided_virgin"]["total"] - carbon["recycling_emissions"]["total"], rel=1e-6)
    assert 0 < carbon["cff_net_avoided"] < carbon["net_avoided"]  # (1 - A) of the credit only
    assert carbon["factors"][0]["file"] == "carbon/data/factors.toml"
    assert len(carbon["factors"][0]["sha256"]) == 64
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.read_bytes())).pages)
    assert "batch B-9" in text and "Closed within 2 %" in text and cert["sha256"] in text.replace("\n", "")
    flat = " ".join(text.split())
    assert f"Net avoided (substitution): {carbon['net_avoided']:,.1f} kg CO2e" in flat
    assert carbon["factors"][0]["sha256"] in text.replace("\n", "")
    code, out, _ = cli("recycle", "compliance", "--start", "2028-01-01", "--end", "2028-12-31", "--json")
    assert code == 0 and json.loads(out)["batches"][0]["ref"] == "B-9"


def test_cli_refuses_impossible_weights_in_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    _collected_cli(cli, "LEAF-B", "LMO", 294, 24)
    code, _, err = cli("recycle", "dismantle", "LEAF-B", "--fraction", "housing=-5")
    line = " ".join(err.split())
    assert code == 1 and line.startswith("error:") and "Traceback" not in err
    assert "fractions[0] (housing).mass_kg: '-5' kg is impossible" in line
    code, _, err = cli("recycle", "dismantle", "LEAF-B", "--fraction", "housing=100")
    assert code == 1 and "is in no fraction" in " ".join(err.split())
    code, _, err = cli("recycle", "batch", "create", "B-x", "--route", "hydrometallurgical",
                       "--battery", "LEAF-B")
    assert code == 1 and "has not been dismantled" in " ".join(err.split())


def test_cli_composition_and_reuse(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("recycle", "composition", "NCM811", "--json")
    data = json.loads(out)
    assert code == 0 and data["chemistry"] == "NMC811" and data["kg_per_kwh"]["ni"] > 0.6
    code, out, _ = cli("recycle", "reuse-vs-recycle", "--chemistry", "LFP", "--kwh", "60", "--soh", "80", "--json")
    assert code == 0 and json.loads(out)["published_anchor"]["lfp_profit_gain_pct"] == 58.0


def _token(db, org: str, roles: list[str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A writer of a new organisation and its API token, as headers."""
    from batteryloop.accounts.service import Accounts

    with db.session() as s:
        o = Registry(s).add_organisation(OrganisationIn(name=org, roles=roles))
        accounts = Accounts(s)
        accounts.add_user(f"{org.lower().replace(' ', '-')}-writer", o.uid, ["reader", "writer"])
        _, token = accounts.create_token(f"{org.lower().replace(' ', '-')}-writer", scopes=("write",))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(db, monkeypatch):  # type: ignore[no-untyped-def]
    """Signed in as a writer of a recycler (legitimate-interest tier); rate limit off."""
    from batteryloop.settings import get_settings

    monkeypatch.setenv("BATTERYLOOP_RATE_LIMIT", "")
    get_settings.cache_clear()
    headers = _token(db, "Loop Recycling", ["recycler", "dismantler"])
    with TestClient(create_app(db), raise_server_exceptions=False, headers=headers) as c:
        yield c
    get_settings.cache_clear()


def _collected(db, serial: str) -> str:  # type: ignore[no-untyped-def]
    with db.session() as s:
        reg = Registry(s)
        b = reg.register(BatteryIn(kind="pack", chemistry="NMC111", mass_kg=253, rated_energy_wh=26600))
        reg.add_identifier(b.uid, "serial", serial)
        for state in ("in_service", "retired", "collected"):
            reg.change_status(b.uid, state)
        return b.uid


def test_api_workflow_and_problems(client: TestClient, db) -> None:  # type: ignore[no-untyped-def]
    from batteryloop.recycling import packs

    _collected(db, "NMC-API")
    anonymous = TestClient(client.app, raise_server_exceptions=False)
    assert anonymous.get(f"{API}/recycling/routes").status_code == 200  # reference data: public
    assert anonymous.post(f"{API}/recycling/dismantlings/NMC-API", json={
        "fractions": [{"fraction": "housing", "mass_kg": 1}]}).status_code == 401
    bad = client.post(f"{API}/recycling/dismantlings/NMC-API",
                      json={"fractions": [{"fraction": "housing", "mass_kg": "NaN"}]})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(PROBLEM)
    assert "impossible" in bad.json()["detail"]
    r = client.post(f"{API}/recycling/dismantlings/NMC-API",
                    json={"fractions": packs.expected_fractions("ellingsen-nmc-26kwh")})
    assert r.status_code == 201, r.text
    r = client.post(f"{API}/recycling/batches", json={"ref": "API-1", "route": "direct",
                                                      "batteries": ["NMC-API"], "processed_on": "2030-01-01"})
    assert r.status_code == 201, r.text
    unknown = client.post(f"{API}/recycling/batches", json={"ref": "API-2", "route": "alchemy",
                                                            "batteries": ["NMC-API"]})
    assert unknown.status_code == 404 and "unknown recycling route" in unknown.json()["detail"]
    r = client.put(f"{API}/recycling/batches/API-1/outputs", json={"outputs": [
        {"stream": "cathode", "kind": "product", "constituent": "co", "mass_kg": 1.0}]})
    assert r.status_code == 200
    refused = client.post(f"{API}/recycling/batches/API-1/close", json={})
    assert refused.status_code == 409 and "does not close" in refused.json()["detail"]
    shown = client.get(f"{API}/recycling/batches/API-1").json()
    assert shown["outputs"]["basis"] == "measured" and not shown["mass_balance"]["closed"]
    pdf = client.get(f"{API}/recycling/batches/API-1/certificate.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert "DRAFT" in PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert client.get(f"{API}/recycling/composition/LTO").status_code == 404
    assert client.get(f"{API}/recycling/batteries/NMC-API").json()["batch"]["ref"] == "API-1"
