"""Tester data from the command line: `ingest` exit codes and --json, `cycles`, `export-test`.
Both databases."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from batteryloop.cycling import read, storage


@pytest.fixture
def drop(tmp_path: Path, shared_file) -> Path:  # type: ignore[no-untyped-def]
    folder = tmp_path / "drop"
    folder.mkdir()
    for rel in ("pec/pec.csv", "biologic/GCPL-0.mpr", "maccor/PredictionDiagnostics_000109_tztest.010"):
        shutil.copy(shared_file(f"data/cyclers/{rel}"), folder)
    return folder


def _cell(cli) -> str:  # type: ignore[no-untyped-def]
    code, out, _ = cli("register", "--kind", "cell", "--json")
    assert code == 0
    return json.loads(out)["uid"]


def test_ingest_json_exit_codes_and_idempotence(cli, drop: Path, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    uid = _cell(cli)
    code, out, err = cli("ingest", str(drop), "--battery", uid, "--workers", "1", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True and report["counts"]["stored"] == 3
    assert {f["status"] for f in report["files"]} == {"stored"}
    assert all(f["battery"] == uid and len(f["sha256"]) == 64 for f in report["files"])
    assert len(list((data_dir / "tests").rglob("*.parquet"))) == 3

    code, out, _ = cli("ingest", str(drop), "--battery", uid, "--json")
    assert code == 0 and json.loads(out)["counts"]["already imported"] == 3

    code, out, _ = cli("history", uid, "--json")
    assert [e["type"] for e in json.loads(out)].count("tested") == 3

    # a bad file makes the run fail (exit 1) and is named; the good ones are untouched
    (drop / "broken.mpr").write_bytes(b"BIO-LOGIC MODULAR FILE\x1a" + b"\xff" * 300)
    code, out, err = cli("ingest", str(drop), "--json")
    assert code == 1
    report = json.loads(out)
    rejected = [f for f in report["files"] if f["status"] == "rejected"]
    assert [Path(f["path"]).name for f in rejected] == ["broken.mpr"]
    assert "broken.mpr" in rejected[0]["message"]
    assert len(list((data_dir / "tests").rglob("*.parquet"))) == 3

    # the rich table says the same in words
    code, out, err = cli("ingest", str(drop / "broken.mpr"), str(drop / "pec.csv"))
    assert code == 1 and "already imported" in out and "1 rejected" in out
    assert "broken.mpr" in err


def test_ingest_refuses_unknown_battery_and_engine(cli, drop: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("ingest", str(drop), "--battery", "NOPE")
    assert code == 1 and "no battery 'NOPE'" in err
    code, _, err = cli("ingest", str(drop), "--engine", "spark")
    assert code == 2 and "--engine" in err


def test_ingest_with_the_dask_engine(cli, drop: Path, data_dir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("dask.distributed")
    from batteryloop.cycling import engine_dask

    real = engine_dask.client_for
    monkeypatch.setattr(engine_dask, "client_for",  # threads: fast and small for a test
                        lambda address=None, workers=None, processes=True: real(
                            address, workers=2, processes=False))
    code, out, err = cli("ingest", str(drop), "--engine", "dask", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["engine"] == "dask" and report["counts"]["stored"] == 3
    rows = engine_dask.scan(data_dir).select(pl.len()).collect().item()
    assert rows == sum(f["rows"] for f in report["files"])


def test_export_test_by_hash_prefix(cli, drop: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = drop / "PredictionDiagnostics_000109_tztest.010"
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    assert cli("ingest", str(src))[0] == 0
    original, _ = read(src)

    out = tmp_path / "export.bdf.csv"
    code, printed, err = cli("export-test", sha[:12], "--format", "bdf-csv", "--out", str(out), "--json")
    assert code == 0, err and json.loads(printed)["rows"] == original.height
    back, meta = read(out)
    assert meta.file_format == "bdf_csv" and back.height == original.height
    assert (back["voltage_volt"] - original["voltage_volt"]).abs().max() < 1e-9

    pq = tmp_path / "export.parquet"
    assert cli("export-test", sha, "--format", "parquet", "--out", str(pq))[0] == 0
    df, kv = storage.read_parquet(pq)
    assert df.equals(original) and kv["sha256"] == sha

    code, _, err = cli("export-test", "deadbeefdeadbeef", "--format", "parquet", "--out", str(pq))
    assert code == 1 and "no stored test" in err
    code, _, err = cli("export-test", sha, "--format", "xlsx", "--out", str(pq))
    assert code == 2


def test_cycles_of_a_file_and_of_a_stored_test(cli, drop: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("batteryloop.cycling.summary")
    src = drop / "pec.csv"
    code, out, err = cli("cycles", str(src), "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert rows and "cycle_count" in rows[0]
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    assert cli("ingest", str(src))[0] == 0
    code, out2, _ = cli("cycles", sha, "--json")
    assert code == 0 and json.loads(out2) == rows
    csv = tmp_path / "cycles.csv"
    assert cli("cycles", sha, "--format", "csv", "--out", str(csv))[0] == 0
    assert pl.read_csv(csv).height == len(rows)
    pq = tmp_path / "cycles.parquet"
    assert cli("cycles", str(src), "--format", "parquet", "--out", str(pq))[0] == 0
    assert pl.read_parquet(pq).height == len(rows)
    assert cli("cycles", str(src))[0] == 0
    assert cli("cycles", str(src), "--format", "parquet")[0] == 2


def test_cycles_without_the_summary_module(cli, drop: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(storage, "summarise", lambda df: None)
    code, _, err = cli("cycles", str(drop / "pec.csv"), "--json")
    assert code == 1 and "summary is not available" in err
