"""Tester data over HTTP: upload, list, metadata, per-cycle JSON; a malformed upload is a 422
problem naming the file (never a 500) and stores nothing. Both databases."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from batteryloop.api import create_app
from batteryloop.settings import get_settings

PROBLEM = "application/problem+json"


@pytest.fixture
def client(db, data_dir: Path, member) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """Signed in as a writer of "Lab", which makes the cells it tests: it reads their tester data
    as its own batteries' (tests/api/conftest.py)."""
    with TestClient(create_app(db), raise_server_exceptions=False,
                    headers=member("Lab", "manufacturer")) as c:
        yield c


@pytest.fixture
def cell(client: TestClient) -> str:
    r = client.post("/api/v1/batteries", json={"kind": "cell", "manufacturer": "Lab"})
    assert r.status_code == 201, r.text
    return r.json()["uid"]


def _upload(client: TestClient, uid: str, name: str, data: bytes, **form: str):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/batteries/{uid}/tests", files={"file": (name, data)}, data=form)


def _tested(client: TestClient, uid: str) -> list[dict]:
    return [e for e in client.get(f"/api/v1/batteries/{uid}/history").json() if e["type"] == "tested"]


def test_upload_list_show_and_reupload(client: TestClient, cell: str, shared_file, data_dir) -> None:  # type: ignore[no-untyped-def]
    raw = shared_file("data/cyclers/maccor/xTESLADIAG_000019_CH70.070").read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    r = _upload(client, cell, "xTESLADIAG_000019_CH70.070", raw, actor="Lab")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["sha256"] == sha and body["tester"] == "Maccor" and body["format"] == "maccor_raw"
    assert body["battery"] == cell and body["already_imported"] is False and body["rows"] > 0
    assert body["source_name"] == "xTESLADIAG_000019_CH70.070"
    assert (data_dir / "tests" / sha[:2] / f"{sha}.parquet").is_file()

    listed = client.get(f"/api/v1/batteries/{cell}/tests").json()
    assert [t["sha256"] for t in listed] == [sha]
    shown = client.get(f"/api/v1/tests/{sha}").json()
    assert shown["metadata"]["tester"] == "Maccor" and shown["metadata"]["channel"] == "70"
    assert shown["metadata"]["source_name"] == "xTESLADIAG_000019_CH70.070"
    events = _tested(client, cell)
    assert len(events) == 1 and events[0]["payload"]["sha256"] == sha
    assert events[0]["payload"]["rows"] == body["rows"]

    again = _upload(client, cell, "renamed.070", raw)
    assert again.status_code == 200 and again.json()["already_imported"] is True
    assert len(_tested(client, cell)) == 1 and len(list((data_dir / "tests").rglob("*"))) == 2



def test_cycles_json(client: TestClient, cell: str, shared_file) -> None:  # type: ignore[no-untyped-def]
    summary = pytest.importorskip("batteryloop.cycling.summary")
    from batteryloop.cycling import read

    path = shared_file("data/cyclers/pec/pec.csv")
    sha = _upload(client, cell, "pec.csv", path.read_bytes()).json()["sha256"]
    r = client.get(f"/api/v1/tests/{sha[:16]}/cycles")
    assert r.status_code == 200, r.text
    rows = r.json()
    expected = summary.cycles(read(path)[0])
    assert [c["cycle_count"] for c in rows] == expected["cycle_count"].to_list()
    assert rows[-1]["discharge_capacity_ah"] == pytest.approx(expected["discharge_capacity_ah"][-1])
    payload = _tested(client, cell)[0]["payload"]
    assert payload["last_discharge_capacity_ah"] == pytest.approx(
        expected.filter(expected["discharge_capacity_ah"] > 0)["discharge_capacity_ah"][-1])


def test_cycles_without_the_summary_module_is_a_501_problem(  # type: ignore[no-untyped-def]
    client: TestClient, cell: str, shared_file, monkeypatch
) -> None:
    from batteryloop.cycling import storage

    monkeypatch.setattr(storage, "summarise", lambda df: None)
    sha = _upload(client, cell, "pec.csv",
                  shared_file("data/cyclers/pec/pec.csv").read_bytes()).json()["sha256"]
    assert "last_discharge_capacity_ah" not in _tested(client, cell)[0]["payload"]
    r = client.get(f"/api/v1/tests/{sha}/cycles")
    assert r.status_code == 501 and r.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    ("name", "make", "says"),
    [
        ("notes.mpr", lambda raw: b"formation log\nOCV 3.41 V, all fine\n" * 30,
         "not a recognised battery-tester file"),
        ("garbage.res", lambda raw: os.urandom(8000), "not a recognised battery-tester file"),
        ("pec_cut.csv", lambda raw: raw[: len(raw) // 2], "cut short"),
        ("empty.csv", lambda raw: b"", "empty"),
    ],
)
def test_malformed_upload_is_a_422_problem_naming_the_file(  # type: ignore[no-untyped-def]
    client: TestClient, cell: str, shared_file, data_dir, name, make, says
) -> None:
    raw = shared_file("data/cyclers/pec/pec.csv").read_bytes()
    r = _upload(client, cell, name, make(raw))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    problem = r.json()
    assert problem["status"] == 422 and problem["location"] == name
    assert name in problem["detail"] and says in problem["detail"]
    assert "batteryloop-upload-" not in problem["detail"]  # no temporary path leaks out
    assert client.get(f"/api/v1/batteries/{cell}/tests").json() == []
    assert _tested(client, cell) == []
    assert not (data_dir / "tests").exists() or not list((data_dir / "tests").rglob("*.parquet"))


def test_errors_are_problems(client: TestClient, cell: str, monkeypatch, shared_file, member) -> None:  # type: ignore[no-untyped-def]
    raw = shared_file("data/cyclers/pec/pec.csv").read_bytes()
    r = _upload(client, "NO-SUCH-BATTERY", "pec.csv", raw)
    assert r.status_code == 404 and r.headers["content-type"].startswith(PROBLEM)
    # a maker reads only its own batteries' tests: a test that does not exist and one it may not
    # read get the same 403; a recycler (legitimate interest) is told it does not exist
    assert client.get("/api/v1/tests/" + "ab" * 32).status_code == 403
    recycler = member("Recycler", "recycler", scopes=())
    assert client.get("/api/v1/tests/" + "ab" * 32, headers=recycler).status_code == 404
    assert client.get("/api/v1/batteries/NOPE/tests").status_code == 404
    r = client.post(f"/api/v1/batteries/{cell}/tests")  # no file part
    assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM)

    monkeypatch.setenv("BATTERYLOOP_MAX_UPLOAD_BYTES", "100000")
    get_settings.cache_clear()
    r = _upload(client, cell, "pec.csv", raw)
    assert r.status_code == 413 and "100,000 bytes" in r.json()["detail"]
    assert client.get(f"/api/v1/batteries/{cell}/tests").json() == []
