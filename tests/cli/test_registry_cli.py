"""The registry from the command line: one-line errors, non-zero exits, --json for scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path


from batteryloop.registry import gbt34014


def _code(n: int) -> str:
    return gbt34014.compose("XYZ", "pack", "NMC", "B2", "7654321", date(2019, 11, 3), f"{n:07d}")


def _setup(cli, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    key = tmp_path / "carco.pem"
    assert cli("org", "add", "Maker", "--role", "manufacturer")[0] == 0
    assert cli("org", "add", "Carco", "--role", "vehicle_maker", "--keygen", str(key))[0] == 0
    assert cli("org", "add", "Outlet", "--role", "collection_outlet")[0] == 0
    return key


def test_register_status_transfer_history_verify(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = _setup(cli, tmp_path)
    code, out, _ = cli("register", "--code", _code(1), "--capacity-ah", "60", "--manufacturer", "Maker",
                       "--actor", "Maker", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["chemistry"] == "NMC" and shown["manufactured_on"] == "2019-11-03"
    assert cli("transfer", _code(1), "--custody-to", "Carco", "--responsibility-to", "Carco",
               "--actor", "Maker")[0] == 0
    # signed by Carco with its own key
    assert cli("status", _code(1), "in_service", "--actor", "Carco", "--key", str(key))[0] == 0
    code, out, _ = cli("history", _code(1), "--json")
    events = json.loads(out)
    assert [e["type"] for e in events] == ["registered", "transferred", "status-changed"]
    assert events[2]["signature"] is not None and events[1]["signature"] is None
    code, out, _ = cli("verify", "--json")
    assert code == 0 and json.loads(out)["events"] == 3


def test_verify_takes_and_checks_an_anchor(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _setup(cli, tmp_path)
    cli("register", "--kind", "pack", "--id", "serial=A-1", "--actor", "Maker")
    saved = tmp_path / "anchor.json"
    code, out, _ = cli("verify", "--take-anchor", str(saved), "--json")
    assert code == 0 and json.loads(saved.read_text())["heads"][0][1] == 1
    cli("status", "A-1", "in_service", "--actor", "Carco")
    assert cli("verify", "--anchor", str(saved))[0] == 0
    forged = json.loads(saved.read_text())
    forged["heads"][0][2] = "00" * 32
    saved.write_text(json.dumps(forged))
    code, _, err = cli("verify", "--anchor", str(saved))
    assert code == 1 and "anchor was edited" in err


def test_signing_with_someone_elses_key_is_refused(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = _setup(cli, tmp_path)
    cli("register", "--kind", "pack", "--id", "serial=S-1", "--actor", "Maker")
    code, _, err = cli("status", "S-1", "in_service", "--actor", "Outlet", "--key", str(key))
    assert code == 1 and "signature does not verify" in err
    assert len(json.loads(cli("history", "S-1", "--json")[1])) == 1


def test_errors_are_one_line_and_non_zero(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _setup(cli, tmp_path)
    code, _, err = cli("show", "NO-SUCH-BATTERY")
    assert code == 1 and err.strip().count("\n") == 0 and "no battery 'NO-SUCH-BATTERY'" in err
    code, _, err = cli("register", "--code", "XYZQB")
    assert code == 1 and "expected 24 characters" in err
    cli("register", "--kind", "cell", "--id", "serial=C-1")
    code, _, err = cli("status", "C-1", "recycled")
    assert code == 1 and "'produced'" in err and "'recycled'" in err
    code, _, err = cli("register", "--kind", "cell", "--id", "vin=SHORT")
    assert code == 1 and "not a VIN" in err


def test_import_all_or_nothing_and_skip_invalid(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _setup(cli, tmp_path)
    rows = [{"code": _code(10), "manufacturer": "Maker"}, {"code": _code(11), "manufacturer": "Maker"},
            {"code": _code(12), "manufacturer": "Nobody"}, {"code": _code(10)}]
    path = tmp_path / "packs.json"
    path.write_text(json.dumps(rows))
    code, _, err = cli("import", str(path))
    assert code == 1 and "2 invalid row(s); nothing was written" in err
    assert "row 3" in err and "Nobody" in err and "row 4" in err
    assert cli("show", _code(10))[0] == 1
    rejects = tmp_path / "rejects.csv"
    code, out, _ = cli("import", str(path), "--skip-invalid", "--rejects", str(rejects), "--json")
    assert code == 0 and json.loads(out)[0]["written"] == 2
    lines = rejects.read_text().splitlines()
    assert lines[0].startswith("row,reasons") and len(lines) == 3
    assert cli("show", _code(11))[0] == 0


def test_import_events_csv_follows_the_lifecycle(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _setup(cli, tmp_path)
    cli("register", "--code", _code(20), "--actor", "Maker")
    path = tmp_path / "events.csv"
    path.write_text(
        "battery,type,actor,occurred_at,to,custody_to,payload\n"
        f"{_code(20)},transferred,Maker,2020-01-02T00:00:00Z,,Carco,\n"
        f"{_code(20)},status-changed,Carco,2020-01-20T00:00:00Z,in_service,,\n"
        f"{_code(20)},status-changed,Carco,2024-03-01T00:00:00Z,retired,,\n"
        f"{_code(20)},note,Carco,2024-03-02T00:00:00Z,,,\"{{\"\"text\"\": \"\"swelling seen\"\"}}\"\n"
    )
    code, out, err = cli("import", str(path), "--json")
    assert code == 0, err
    events = json.loads(cli("history", _code(20), "--json")[1])
    assert [e["type"] for e in events] == ["registered", "transferred", "status-changed", "status-changed", "note"]
    assert events[4]["payload"] == {"text": "swelling seen"}
    shown = json.loads(cli("show", _code(20), "--json")[1])
    assert shown["state"] == "retired" and shown["owner"]["name"] == "Carco"
    bad = tmp_path / "bad.csv"
    bad.write_text(f"battery,type,to\n{_code(20)},status-changed,in_service\n{_code(20)},status-changed,recycled\n")
    code, _, err = cli("import", str(bad))
    assert code == 1 and "row 3" in err and "'recycled'" in err
    assert len(json.loads(cli("history", _code(20), "--json")[1])) == 5


def test_export_flags_missed_deadlines(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _setup(cli, tmp_path)
    cli("register", "--kind", "pack", "--id", "serial=P-9", "--actor", "Maker")
    cli("status", "P-9", "in_service", "--actor", "Carco", "--at", "2021-06-01T08:00:00")
    out_file = tmp_path / "report.json"
    assert cli("export", "--organisation", "Carco", "--format", "json", "--out", str(out_file))[0] == 0
    rows = json.loads(out_file.read_text())
    assert len(rows) == 1 and rows[0]["role"] == "vehicle_maker" and rows[0]["missed"] is True
    assert rows[0]["deadline"] == "2021-06-22"  # 15 working days after Tue 1 June 2021


def test_cli_entry_point_runs_as_a_program(tmp_path: Path) -> None:
    env = {"BATTERYLOOP_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    exe = Path(sys.executable).with_name("batteryloop")
    done = subprocess.run([str(exe), "code", "parse", _code(5), "--json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    decoded = json.loads(done.stdout)
    assert decoded["product_type"] == "pack" and decoded["production_date"] == "2019-11-03"
    bad = subprocess.run([str(exe), "show", "nothing"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("error:")
