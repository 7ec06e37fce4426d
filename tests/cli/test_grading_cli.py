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
                         "--base-url", "https://loop.example")
    assert code == 0, err
    cert = json.loads(js.read_text())
    assert cert["record_url"].startswith("https://loop.example/batteries/urn:uuid:")
    text = " ".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "second-life" in text and cert["sha256"] in " ".join(text.split())
    code, out, _ = cli("grade", "route", "apply", "P-1", "--to", "waste", "--actor", "Lab", "--json")
    assert code == 0 and json.loads(out)["state"] == "waste"
    code, out, _ = cli("history", "P-1", "--json")
    types = [e["type"] for e in json.loads(out)]
    assert types[-6:] == ["inspected", "health-assessed", "status-changed", "graded",
                          "status-changed", "status-changed"]


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
