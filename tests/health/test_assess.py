"""A battery's stored test becomes a `health-assessed` event with intervals and provenance."""

from __future__ import annotations

import pytest

from batteryloop.cycling import read, storage
from batteryloop.cycling.summary import cycles
from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.health.assess import assess_from_test, latest_assessment
from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.registry.verify import verify


def test_assessment_from_a_real_test_lands_in_the_ledger(db, tmp_path, shared_file) -> None:  # type: ignore[no-untyped-def]
    path = shared_file("data/cyclers/pec/pec.csv")
    df, meta = read(path)
    table = cycles(df)
    with db.session() as s:
        reg = Registry(s)
        reg.add_organisation(OrganisationIn(name="Lab", roles=["repurposer"]))
        rated = float(table["discharge_capacity_ah"].max())
        reg.register(BatteryIn(kind="cell", rated_capacity_ah=rated, identifiers={"serial": "PEC-1"}))
    storage.store(db, df, meta, battery="PEC-1", root=tmp_path)
    with db.session() as s:
        result = assess_from_test(s, "PEC-1", actor="Lab", root=tmp_path)
    values = {v["parameter"]: v for v in result["values"]}
    # independent check: the PEC file keeps one discharge per cycle, so the per-cycle table's
    # last three full discharges must give the same capacity as the step blocks
    full = table.filter(table["discharge_capacity_ah"] > 0.5 * rated).tail(3)
    expected = 100 * full["discharge_capacity_ah"].mean() / rated
    assert values["capacity_soh"]["value"] == pytest.approx(expected)
    assert values["capacity_soh"]["lower"] < expected < values["capacity_soh"]["upper"]
    assert values["capacity_soh"]["source"] == meta.sha256
    with db.session() as s:
        recorded = latest_assessment(s, "PEC-1")
        assert recorded is not None and recorded["test"] == meta.sha256
        assert verify(s).ok


def test_assessment_needs_a_rating_and_a_test(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        reg = Registry(s)
        reg.register(BatteryIn(kind="cell", identifiers={"serial": "NO-RATING"}))
        reg.register(BatteryIn(kind="cell", rated_capacity_ah=2.0, identifiers={"serial": "NO-TEST"}))
    with db.session() as s, pytest.raises(ValidationFailed, match="rated capacity"):
        assess_from_test(s, "NO-RATING")
    with db.session() as s, pytest.raises(NotFound, match="no stored test"):
        assess_from_test(s, "NO-TEST")


def test_health_over_the_api_and_cli(db, tmp_path, shared_file, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import io
    import json

    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from batteryloop.api import create_app
    from batteryloop.cli import common
    from batteryloop.cli.main import app

    monkeypatch.setenv("BATTERYLOOP_DATA_DIR", str(tmp_path))
    from batteryloop.settings import get_settings

    monkeypatch.setenv("BATTERYLOOP_RATE_LIMIT", "")
    get_settings.cache_clear()
    from api.conftest import make_member

    tester = make_member(db, "Cell Test Lab", ("repurposer",))
    with TestClient(create_app(db), headers=tester) as client:
        uid = client.post("/api/v1/batteries", json={"kind": "cell", "rated_capacity_ah": 5.0}).json()["uid"]
        assert client.get(f"/api/v1/batteries/{uid}/health").status_code == 404
        data = shared_file("data/cyclers/maccor/xTESLADIAG_000019_CH70.070").read_bytes()
        r = client.post(f"/api/v1/batteries/{uid}/tests",
                        files={"file": ("xTESLADIAG_000019_CH70.070", io.BytesIO(data))})
        assert r.status_code == 201, r.text
        r = client.post(f"/api/v1/batteries/{uid}/health", json={})
        assert r.status_code == 201, r.text
        soh_api = {v["parameter"]: v["value"] for v in r.json()["values"]}["capacity_soh"]
        # the file ends with a slow (~3.3 A) diagnostic discharge of 3.24 Ah by its own step
        # counters; the faster ~9.4 A discharges before it (2.7-3.05 Ah) must not be averaged in
        assert 100 * 3.2 / 5.0 < soh_api < 100 * 3.3 / 5.0
    monkeypatch.setattr(common, "_db", db)
    out = CliRunner().invoke(app, ["health", "show", uid, "--json"])
    assert out.exit_code == 0, out.stderr
    shown = json.loads(out.stdout)
    assert {v["parameter"]: v["value"] for v in shown["values"]}["capacity_soh"] == pytest.approx(soh_api)
    get_settings.cache_clear()
