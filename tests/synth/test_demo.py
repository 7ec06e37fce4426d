"""`batteryloop demo --no-serve` on a fresh data directory, as a newcomer runs it: the embedded
database and the data directory appear, every stage of the loop has its records, the ledger
verifies, and a second run adds nothing.

The plant is smaller than the default (40 packs, 64 cells, 8 hours of plant telemetry) so the
test runs in seconds; the steps are the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from batteryloop.store import connect
from batteryloop.store.models import (
    Battery,
    CyclerTest,
    Dismantling,
    Event,
    FactoryAlarm,
    Identifier,
    Lineage,
    PassportRecord,
    RecyclingBatch,
)

pytestmark = pytest.mark.slow
PACKS, CELLS, HOURS = 40, 64, 8


def _batteryloop(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("BATTERYLOOP_DATABASE_URL", "BATTERYLOOP_CONFIG", "BATTERYLOOP_SHARED")}
    env["BATTERYLOOP_DATA_DIR"] = str(data)
    script = Path(sys.executable).with_name("batteryloop")
    command = [str(script)] if script.is_file() else [
        sys.executable, "-c", "from batteryloop.cli.main import app; app()"]
    return subprocess.run([*command, *args], env=env, cwd=data.parent, capture_output=True,
                          text=True, timeout=600)


def _demo(data: Path) -> dict[str, Any]:
    done = _batteryloop(data, "demo", "--no-serve", "--no-models", "--json", "--packs", str(PACKS),
                        "--cells", str(CELLS), "--plant-hours", str(HOURS))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data = tmp_path_factory.mktemp("demo") / "var"
    first = _demo(data)
    db = connect(f"sqlite:///{data / 'batteryloop.sqlite'}", migrate=False)
    second = _demo(data)
    yield {"data": data, "first": first, "second": second, "db": db}
    db.dispose()


def test_creates_the_database_and_the_data_directory(plant: dict[str, Any]) -> None:
    data = plant["data"]
    assert (data / "batteryloop.sqlite").is_file()
    assert list((data / "tests").rglob("*.parquet"))
    assert list((data / "telemetry").rglob("*.parquet"))
    assert len(list((data / "demo" / "intake").glob("INTAKE-*.csv"))) == 3
    assert len(list((data / "demo" / "plant").glob("nmp-1-*.csv"))) == 1
    report = plant["first"]
    assert [s["step"] for s in report["steps"]] == [
        "registry", "passports", "accounts", "intake", "cycling", "grading", "routes",
        "certificates", "cells", "recycling", "plant", "models"]
    assert all(s["seconds"] >= 0 for s in report["steps"])  # each step timed


def test_every_stage_has_records(plant: dict[str, Any]) -> None:
    counts = plant["first"]["counts"]
    events = counts["events"]
    for kind in ("registered", "status-changed", "transferred", "condition-reported", "tested",
                 "inspected", "health-assessed", "graded", "certificate-issued", "lineage-linked",
                 "regrouped", "passport-updated", "dismantled", "recycled"):
        assert events.get(kind, 0) > 0, kind
    with plant["db"].session() as s:
        tests = s.scalar(select(func.count()).select_from(CyclerTest))
        # every retired pack and every cell was tested, each test linked by one `tested` event
        assert tests == events["tested"] and tests >= PACKS * 0.8 + CELLS
        assert events["graded"] == tests and events["inspected"] == tests
        # passports: every pack the maker made, and every second-life product built
        products = s.scalar(select(func.count()).select_from(Identifier)
                            .where(Identifier.scheme == "second_life"))
        assert products > 0
        passports = s.scalar(select(func.count()).select_from(PassportRecord))
        assert passports == PACKS + products  # the maker's, and the repurposer's of each product
        assert s.scalar(select(func.count()).select_from(Lineage)) >= products
        # recycling: a closed batch whose balance closed, its packs recycled
        closed = list(s.scalars(select(RecyclingBatch).where(RecyclingBatch.status == "closed")))
        assert closed
        result = json.loads(closed[0].result)
        assert result["mass_balance"]["closed"] is True
        assert result["carbon"] is not None  # the carbon stage priced the batch
        recycled = s.scalar(select(func.count()).select_from(Battery)
                            .where(Battery.state == "recycled"))
        assert recycled == sum(len(json.loads(b.result)["batteries"]) for b in closed)
        assert s.scalar(select(func.count()).select_from(Dismantling)) >= recycled
        # the plant: an alarm raised by the fault
        alarms = list(s.scalars(select(FactoryAlarm)))
        assert any(a.alarm == "cond2-fouling" for a in alarms)
    plant_step = next(s for s in plant["first"]["steps"] if s["step"] == "plant")["summary"]
    stored = int(plant_step.split(" samples")[0].replace(",", ""))
    assert counts["telemetry_samples"]["nmp-1"] == stored > 0


def test_health_rests_on_the_stored_tests(plant: dict[str, Any]) -> None:
    """Each grade's SOH came from a test whose Parquet file is there, measured by the health
    stage, within what the degradation model can give."""
    with plant["db"].session() as s:
        rows = s.execute(select(Event.battery_id, Event.payload).where(Event.type == "graded"))
        grades = {bid: json.loads(p) for bid, p in rows}
        files = dict(s.execute(select(CyclerTest.sha256, CyclerTest.parquet_path)).all())
    routes = {g["route"] for g in grades.values()}
    assert routes <= {"repurposed", "waste"} and "repurposed" in routes
    for g in grades.values():
        if g["soh"] is None:
            continue
        assert g["soh"]["source"] in files
        assert (plant["data"] / files[g["soh"]["source"]]).is_file()
        assert 30 < g["soh"]["value"] < 110 and g["soh"]["upper"] - g["soh"]["lower"] < 5


def test_the_ledger_verifies(plant: dict[str, Any]) -> None:
    done = _batteryloop(plant["data"], "verify", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["ok"] is True and out["breaches"] == []
    assert out["events"] == sum(plant["first"]["counts"]["events"].values())


def test_a_second_run_adds_nothing(plant: dict[str, Any]) -> None:
    first, second = plant["first"]["counts"], plant["second"]["counts"]
    assert second == first
    summaries = {s["step"]: s["summary"] for s in plant["second"]["steps"]}
    assert summaries["registry"].startswith("demo data already present")
    assert summaries["plant"].startswith("line nmp-1 has telemetry")


def test_demo_accounts_sign_in(plant: dict[str, Any]) -> None:
    from batteryloop.accounts.service import Accounts

    accounts = plant["first"]["accounts"]
    assert {a["name"] for a in accounts} >= {"maker", "carmaker", "repurposer", "recycler",
                                             "auditor", "admin"}
    assert "DEMO CREDENTIALS" in plant["first"]["warning"]
    assert plant["first"]["url"] == "http://127.0.0.1:8000/"
    with plant["db"].session() as s:
        service = Accounts(s)
        for a in accounts:
            user = service.sign_in(a["name"], a["password"])
            assert user.organisation.name == a["organisation"]
        assert service.tier_of(service.user("auditor")) == "authority"
        assert "admin" in {r.role for r in service.user("admin").roles}


def test_the_model_step_says_why_it_trains_nothing(tmp_path: Path) -> None:
    from batteryloop.synth.background import train_models

    assert train_models(tmp_path, None, False)["summary"] == "skipped (--no-models)"
    missing = train_models(tmp_path, tmp_path / "no-such-folder", None)["summary"]
    assert missing.startswith("skipped: no shared data folder")
    assert "batteryloop model train pulse-soh" in missing
    assert not (tmp_path / "models").exists()
