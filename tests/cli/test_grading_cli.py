"""Grading from the command line: the workflow with --json, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

from pypdf import PdfReader



def _collected(cli, serial: str) -> None:  # type: ignore[no-untyped-def]
    assert cli("register", "--kind", "pack", "--chemistry", "NMC", "--capacity-ah", "150",
               "--energy-wh", "52500", "--voltage-v", "350", "--id", f"serial={serial}")[0] == 0
    for state in ("in_service", "retired", "collected"):
        assert cli("status", serial, state)[0] == 0


def _one_line_error(result: tuple[int, str, str], *fragments: str) -> str:
    code, _, err = result
    assert code == 1
    line = " ".join(err.split())
    assert line.startswith("error:") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def test_inspect_grade_show_value_certificate_route(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("org", "add", "Lab", "--role", "repurposer")[0] == 0
    _collected(cli, "P-1")
    code, out, err = cli("grade", "inspect", "P-1", "--actor", "Lab", "--insulation-mohm", "2.5",
                         "--cell-v", "3.61", "--cell-v", "3.60", "--bms-read", "--by", "J. Wu", "--json")
    assert code == 0, err
    inspected = json.loads(out)
    assert inspected["insulation_resistance_ohm"] == 2.5e6 and inspected["bms_codes"] == []
    code, out, err = cli("grade", "run", "P-1", "--policy", "ev-reuse", "--value", "soce=81:78:84",
                         "--value", "resistance_increase=20:15:25", "--actor", "Lab", "--json")
    assert code == 0, err
    graded = json.loads(out)
    assert graded["route"] == "repurposed" and graded["decided_by"]["id"] == "second-life"
    assert graded["soh"]["lower"] == 78.0
    code, out, _ = cli("grade", "show", "P-1")
    assert code == 0 and "repurposed" in out and "second-life" in out
    code, out, _ = cli("grade", "value", "P-1", "--json")
    assert code == 0 and json.loads(out)["inputs"]["soh_lower"] == 78.0
    code, out, _ = cli("grade", "value", "--energy-kwh", "40", "--soh-lower", "80", "--chemistry",
                       "LFP", "--route", "repurposed", "--application", "stationary",
                       "--set", "new_price_usd_per_kwh=130", "--json")
    assert code == 0 and json.loads(out)["ceiling"]["new_price_per_kwh"] == 130.0
    pdf, js = tmp_path / "cert.pdf", tmp_path / "cert.json"
    code, out, err = cli("grade", "certificate", "P-1", "--pdf", str(pdf), "--json-out", str(js),
                         "--base-url", "https://loop.example", "--actor", "Lab")
    assert code == 0, err
    cert = json.loads(js.read_text())
    assert cert["record_url"].startswith("https://loop.example/batteries/urn:uuid:")
    assert cert["issued_by"]["name"] == "Lab"
    text = " ".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "second-life" in text and cert["sha256"] in " ".join(text.split())
    for path in (js, pdf):  # both files check against the ledger
        code, out, err = cli("grade", "check-certificate", str(path), "--json")
        assert code == 0, err
        assert json.loads(out)["valid"] and json.loads(out)["issued"]["actor"] == "Lab"
    code, out, _ = cli("grade", "route", "apply", "P-1", "--to", "waste", "--actor", "Lab", "--json")
    assert code == 0 and json.loads(out)["state"] == "waste"
    code, out, _ = cli("history", "P-1", "--json")
    events = json.loads(out)
    assert [e["type"] for e in events][-7:] == [
        "inspected", "health-assessed", "status-changed", "graded", "status-changed",
        "certificate-issued", "status-changed"]
    issued = events[-2]["payload"]
    assert issued["sha256"] == cert["sha256"] and len(issued["pdf_sha256"]) == 64
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({**cert, "grading": {**cert["grading"], "grade": "A"}}))
    _one_line_error(cli("grade", "check-certificate", str(tampered)),
                    "does not match its sha256", "never issued here")


def test_second_life_from_the_command_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    health = tmp_path / "health.json"
    health.write_text(json.dumps({"values": [
        {"parameter": "capacity_soh", "value": 77.0, "lower": 75.0, "upper": 79.0, "unit": "%",
         "method": "full discharge", "measured_at": "2025-01-01T00:00:00"}]}))
    for serial in ("A", "B"):
        _collected(cli, serial)
        assert cli("grade", "inspect", serial, "--bms-read")[0] == 0
        code, _, err = cli("grade", "run", serial, "--policy", "stationary-storage", "--health", str(health))
        assert code == 0, err
    code, out, err = cli("grade", "second-life", "--source", "A", "--source", "B", "--kind", "pack",
                         "--id", "second_life=SL-1", "--json")
    assert code == 0, err
    child = json.loads(out)
    assert child["state"] == "repurposed" and len(child["sources"]) == 2


def test_policies_listing_and_user_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("grade", "policies", "--json")
    assert code == 0 and {"ev-reuse", "stationary-storage"} <= {p["name"] for p in json.loads(out)}
    code, out, _ = cli("grade", "policy", "ev-reuse")
    assert code == 0 and "eu-remanufacturing" in out
    mine = tmp_path / "mine.toml"
    mine.write_text('name = "mine"\n[[rules]]\nid = "all"\nroute = "repurposed"\nconvention = "x"\n'
                    'when = [{ metric = "soh", at_least = 0 }]\n')
    code, out, _ = cli("grade", "policy", str(mine), "--json")
    assert code == 0 and json.loads(out)["origin"] == "file"


def test_bad_input_is_one_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _collected(cli, "P-1")
    _one_line_error(cli("grade", "run", "P-1", "--policy", "nope"), "no grading policy 'nope'")
    _one_line_error(cli("grade", "run", "P-1"), "no inspection recorded")
    assert cli("grade", "inspect", "P-1")[0] == 0
    _one_line_error(cli("grade", "run", "P-1"), "health:", "no health assessment")
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "broken"\n\n[[rules]]\nid = "r"\nroute = "reused"\nconvention = "c"\n'
                      'when = [{ metric = "soh", at_leest = 80 }]\n')
    _one_line_error(cli("grade", "run", "P-1", "--policy", str(broken)),
                    f"{broken}:7:", "unknown condition key 'at_leest'")
    broken.write_text('name = "broken"\nrules = [\n')
    _one_line_error(cli("grade", "policy", str(broken)), f"{broken}:2:", "end of the file")
    _one_line_error(cli("grade", "run", "P-1", "--value", "soce=81:84"), "PARAM=VALUE")
    _one_line_error(cli("grade", "run", "P-1", "--value", "soce=81:84:90"), "does not contain")
    _one_line_error(cli("grade", "inspect", "P-1", "--finding", "swollen"), "unknown finding")
    _one_line_error(cli("grade", "certificate", "P-1"), "has not been graded")
    _one_line_error(cli("grade", "show", "P-1"), "not graded yet")
    _one_line_error(cli("grade", "run", "NOPE", "--value", "soce=90"), "no battery 'NOPE'")


def _graded_cells(db, sohs: dict[str, float]) -> None:  # type: ignore[no-untyped-def]
    """Graded LFP cells, set up through the services (the commands under test come after)."""
    from batteryloop import grading
    from batteryloop.grading.inspection import InspectionIn
    from batteryloop.registry.schemas import BatteryIn
    from batteryloop.registry.service import Registry

    with db.session() as s:
        reg = Registry(s)
        for serial, soh in sohs.items():
            b = reg.register(BatteryIn(kind="cell", chemistry="LFP", rated_capacity_ah=10,
                                       nominal_voltage_v=3.2, identifiers={"serial": serial}))
            for state in ("in_service", "retired", "collected"):
                reg.change_status(b.uid, state)
            grading.record_inspection(s, serial, InspectionIn(ocv_v=3.3, bms_codes=[]))
            grading.grade(s, serial, policy="stationary-storage", health=[{
                "parameter": "capacity_soh", "value": soh, "lower": soh - 1, "upper": soh + 1}])


def test_regroup_plan_then_build_and_cluster(cli, db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("org", "add", "Lab", "--role", "repurposer")[0] == 0
    _graded_cells(db, {"A": 80.0, "B": 82.0, "C": 90.0, "D": 92.0, "E": 70.0})
    refs = tmp_path / "cells.txt"
    refs.write_text("# the batch\nA\nB\nC  # strong\nD\n")
    code, out, err = cli("grade", "regroup", "E", "--refs-file", str(refs), "--layout", "2s2p",
                         "--dry-run", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["summary"]["packs"] == 1 and plan["packs"][0]["usable_capacity_ah"] == 17.2
    assert len(plan["leftover"]) == 1
    code, out, _ = cli("grade", "regroup", "E", "--refs-file", str(refs), "--layout", "2S2P", "--dry-run")
    assert code == 0 and "plan (nothing written)" in out and "17.200" in out
    code, out, _ = cli("history", "A", "--json")
    assert json.loads(out)[-1]["type"] == "status-changed"  # the dry run wrote nothing
    code, out, err = cli("grade", "regroup", "A", "B", "C", "D", "E", "--layout", "2S2P",
                         "--plan", plan["sha256"], "--id-prefix", "SL", "--actor", "Lab", "--json")
    assert code == 0, err
    built = json.loads(out)["built"]
    assert len(built) == 1 and built[0]["sources"] == 4
    code, out, _ = cli("history", "A", "--json")
    last = json.loads(out)[-1]
    assert last["type"] == "regrouped" and last["payload"]["pack"] == built[0]["uid"]
    code, out, _ = cli("lineage", "SL-1", "--json")
    assert code == 0 and len(json.loads(out)["sources"]) == 4
    code, out, err = cli("grade", "cluster", "E", "--method", "binning", "--target-range", "0.5",
                         "--json")
    _one_line_error((code, out, err), "clustering needs at least 2 batteries")
    _graded_cells(db, {"F": 71.0, "G": 85.0, "H": 85.2})
    code, out, err = cli("grade", "cluster", "E", "F", "G", "H", "--method", "binning",
                         "--target-range", "1.0", "--json")
    assert code == 0, err
    found = json.loads(out)
    assert [g["size"] for g in found["groups"]] == [2, 2]
    code, out, _ = cli("grade", "cluster", "E", "F", "G", "H", "--groups", "2")
    assert code == 0 and "kmeans: 2 group(s) of 4 batteries" in out


def test_regroup_bad_input_is_one_line(cli, db) -> None:  # type: ignore[no-untyped-def]
    _graded_cells(db, {"A": 80.0, "B": 82.0, "W": 50.0})
    _one_line_error(cli("grade", "regroup", "A", "B", "--layout", "2S2P"),
                    "2 batteries cannot fill one 2S2P pack (4 cells)")
    _one_line_error(cli("grade", "regroup", "A", "B", "W", "--layout", "3S1P"),
                    "was graded 'waste'", "urn:uuid:")
    _one_line_error(cli("grade", "regroup", "A", "B", "--layout", "fourteen"), "not a layout")
    _one_line_error(cli("grade", "regroup", "--layout", "2S1P"), "name the batteries")
    _one_line_error(cli("grade", "regroup", "A", "B", "--layout", "2S1P", "--cluster", "dbscan"),
                    "--cluster: Input should be 'kmeans', 'gmm' or 'binning'")
    _one_line_error(cli("grade", "regroup", "A", "B", "--layout", "2S1P", "--plan", "0" * 64),
                    "records changed since")
    _one_line_error(cli("grade", "cluster", "A", "B", "--feature", "dcir", "--groups", "1"),
                    "no dcir recorded")
