"""Certificates: the JSON content and its digest, the PDF's text and its QR code."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import date

import pytest
from pypdf import PdfReader

from batteryloop import grading
from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.grading.certificate import digest, qr_matrix
from batteryloop.grading.inspection import InspectionIn
from batteryloop.health.soh import HealthValue
from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry

BASE = "https://loop.example.org"


def _graded(db) -> str:  # type: ignore[no-untyped-def]
    with db.session() as s:
        reg = Registry(s)
        reg.add_organisation(OrganisationIn(name="Maker", roles=["manufacturer"]))
        reg.add_organisation(OrganisationIn(name="Lab", roles=["repurposer"]))
        b = reg.register(BatteryIn(kind="pack", chemistry="NMC", rated_capacity_ah=150.0,
                                   nominal_voltage_v=350.0, rated_energy_wh=52_500.0,
                                   manufacturer="Maker", manufactured_on=date(2019, 3, 1),
                                   identifiers={"serial": "P-1"}))
        for state in ("in_service", "retired", "collected"):
            reg.change_status(b.uid, state)
        grading.record_inspection(s, "P-1", InspectionIn(
            inspector="Lab", inspected_by="J. Wu", insulation_resistance_ohm=5e6, bms_codes=[]))
        grading.grade(s, "P-1", policy="ev-reuse", actor="Lab", health=[
            HealthValue("soce", 81.0, 78.0, 84.0, "%", "pulse-test model", "2025-01-01", "model-v1"),
            HealthValue("resistance_increase", 20.0, 15.0, 25.0, "%", "DCIR", "2025-01-01")])
        return b.uid


def test_json_certificate_contents(db) -> None:  # type: ignore[no-untyped-def]
    uid = _graded(db)
    with db.session() as s:
        cert = grading.build_certificate(s, "P-1", base_url=BASE + "/")
        history = Registry(s).history(uid)
    assert cert["record_url"] == f"{BASE}/batteries/{uid}"
    assert cert["battery"]["uid"] == uid and cert["battery"]["manufacturer"] == "Maker"
    values = {v["parameter"]: v for v in cert["health"]["values"]}
    assert values["soce"]["lower"] == 78.0 and values["soce"]["method"] == "pulse-test model"
    assert values["soce"]["source"] == "model-v1"
    assert "k = 2" in cert["health"]["uncertainty"]
    assert cert["health"]["soh_used"]["lower"] == 78.0
    g = cert["grading"]
    assert (g["route"], g["grade"], g["decided_by"]["id"]) == ("repurposed", "B", "second-life")
    assert g["policy"]["name"] == "ev-reuse" and g["graded_by"] == "Lab"
    assert any("lower bound 78 % < 80 %" in r for r in g["reasons"])
    assert cert["inspection"]["inspected_by"] == "J. Wu"
    assert cert["value"]["estimate"]["per_unit"] > 0
    by_seq = {e["seq"]: e for e in history}
    assert [r["type"] for r in cert["rests_on"]] == ["inspected", "health-assessed", "graded",
                                                     "status-changed"]
    for ref in cert["rests_on"]:  # every hash is the chain's
        assert by_seq[ref["seq"]]["hash"] == ref["hash"]
    assert cert["rests_on"][-1]["to"] == "graded"
    assert cert["sha256"] == digest(cert)
    tampered = {**cert, "grading": {**g, "route": "reused"}}
    assert digest(tampered) != cert["sha256"]


def _qr_text(image) -> str | None:  # type: ignore[no-untyped-def]
    try:
        import zxingcpp
    except ImportError:
        return None
    found = zxingcpp.read_barcodes(image)
    return found[0].text if found else ""


def _matrix_of(image, size: int) -> list[list[bool]]:  # type: ignore[no-untyped-def]
    """Sample a rendered QR code (with its 4-module border) back to modules."""
    gray = image.convert("L")
    step = gray.width / size
    return [[gray.getpixel((int((x + 0.5) * step), int((y + 0.5) * step))) < 128
             for x in range(size)] for y in range(size)]


def test_pdf_certificate_text_and_qr_code(db) -> None:  # type: ignore[no-untyped-def]
    uid = _graded(db)
    with db.session() as s:
        cert = grading.build_certificate(s, uid, base_url=BASE)
    data = grading.certificate_pdf(cert)
    assert data.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(data))
    text = " ".join(page.extract_text() for page in reader.pages)
    flat = " ".join(text.split())
    for expected in ("SOH and grading certificate", "repurposed", "second-life", "ev-reuse",
                     cert["sha256"], cert["grading"]["policy"]["sha256"], "78.00",
                     "pulse-test model", "Ledger events this certificate rests on"):
        assert expected in flat, expected
    joined = "".join(text.split())  # a table cell may wrap a long hash
    for ref in cert["rests_on"]:
        assert ref["hash"] in joined
    assert uid.split(":")[-1][:8] in flat
    images = [img for page in reader.pages for img in page.images]
    assert len(images) == 1
    url = f"{BASE}/batteries/{uid}"
    decoded = _qr_text(images[0].image)
    if decoded is not None:
        assert decoded == url
    # without a decoder too: the rendered modules are exactly those of the URL's QR code
    expected = qr_matrix(url)
    assert _matrix_of(images[0].image, len(expected)) == expected


def test_no_certificate_before_a_grade(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        Registry(s).register(BatteryIn(kind="pack", identifiers={"serial": "X"}))
    with db.session() as s, pytest.raises(NotFound, match="has not been graded"):
        grading.build_certificate(s, "X")


def test_base_url_from_the_environment(db, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    uid = _graded(db)
    monkeypatch.setenv("BATTERYLOOP_PUBLIC_URL", "https://passport.example.com/")
    with db.session() as s:
        assert grading.build_certificate(s, uid)["record_url"] == f"https://passport.example.com/batteries/{uid}"


def test_issued_certificates_check_against_the_ledger(db) -> None:  # type: ignore[no-untyped-def]
    uid = _graded(db)
    with db.session() as s:
        issued = grading.issue_certificate(s, "P-1", base_url=BASE, actor="Lab", with_pdf=True)
    cert, document, event = issued["certificate"], issued["pdf"], issued["event"]
    assert cert["issued_by"]["name"] == "Lab" and cert["sha256"] == digest(cert)
    with db.session() as s:
        last = Registry(s).history(uid)[-1]
    assert last["type"] == "certificate-issued" and last["seq"] == event["seq"]
    assert last["payload"]["sha256"] == cert["sha256"]
    assert last["payload"]["pdf_sha256"] == hashlib.sha256(document).hexdigest()
    assert last["occurred_at"] == cert["issued_at"] and last["actor_name"] == "Lab"
    # the certificate was drawn from the chain as it stood just before its own event
    assert cert["chain_head"]["seq"] == event["seq"] - 1
    assert last["payload"]["graded"]["seq"] == next(
        r["seq"] for r in cert["rests_on"] if r["type"] == "graded")

    with db.session() as s:
        for held in (cert, json.dumps(cert).encode(), document):
            out = grading.check_certificate(s, held)
            assert out["valid"] and out["battery"] == uid and not out["problems"], out
            assert out["issued"]["seq"] == event["seq"] and out["superseded_by"] is None
        altered = grading.check_certificate(s, {**cert, "value": None})
        assert not altered["valid"]
        assert "does not match its sha256" in altered["problems"][0]
        assert "never issued here" in altered["problems"][-1]
        # a consistent forgery (digest recomputed) is still not in the ledger
        forged = {**cert, "grading": {**cert["grading"], "grade": "A"}}
        forged["sha256"] = digest(forged)
        out = grading.check_certificate(s, forged)
        assert not out["valid"] and out["problems"] == [
            f"no certificate-issued event of battery {uid} records sha256 {forged['sha256']}: "
            "this certificate was never issued here (a draft, or altered)"]
        draft = grading.build_certificate(s, uid, base_url=BASE)
        assert not grading.check_certificate(s, draft)["valid"]
        pdf_out = grading.check_certificate(s, document[:-10] + b"%%EOF\n\n\n\n")
        assert not pdf_out["valid"] and "not one the registry issued" in pdf_out["problems"][0]

    with db.session() as s:  # a later grade supersedes the certificate; it stays genuine
        grading.grade(s, uid, policy="stationary-storage", actor="Lab")
        later = Registry(s).history(uid)[-1]
        out = grading.check_certificate(s, cert)
        assert out["valid"] and out["superseded_by"]["type"] == "graded"
        assert out["superseded_by"]["seq"] == later["seq"]


def test_checking_rejects_what_is_not_a_certificate(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        with pytest.raises(ValidationFailed, match="neither a PDF nor JSON"):
            grading.check_certificate(s, b"hello")
        with pytest.raises(ValidationFailed, match="not a batteryloop SOH and grading certificate"):
            grading.check_certificate(s, {"a": 1})
        out = grading.check_certificate(s, {"certificate": "batteryloop SOH and grading certificate",
                                            "battery": {"uid": "urn:uuid:nope"}})
        assert not out["valid"] and "not in this registry" in out["problems"][-1]
