"""Inspections: stored as rows and as `inspected` ledger events; what the grading reads from them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from batteryloop import grading
from batteryloop.errors import ValidationFailed
from batteryloop.grading.inspection import InspectionIn
from batteryloop.grading.service import facts_for
from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.registry.verify import verify


def _pack(s, serial: str = "P-1", **kw):  # type: ignore[no-untyped-def]
    reg = Registry(s)
    if not reg.organisations():
        reg.add_organisation(OrganisationIn(name="Lab", roles=["repurposer"]))
    spec = {"kind": "pack", "chemistry": "NMC", "rated_capacity_ah": 150.0, "nominal_voltage_v": 350.0,
            "rated_energy_wh": 52_500.0, "manufactured_on": date(2019, 3, 1),
            "identifiers": {"serial": serial}} | kw
    return reg.register(BatteryIn(**spec))


def test_inspection_is_a_row_and_a_ledger_event(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        _pack(s)
        out = grading.record_inspection(s, "P-1", InspectionIn(
            inspector="Lab", inspected_by="J. Wu", visual={"corrosion": True}, ocv_v=352.1,
            cell_voltages_v=[3.66, 3.65, 3.61], insulation_resistance_ohm=2.5e6,
            bms_codes=["U0100", " ", "U0100"], cell_soh_pct=[91.0, 89.5],
            expiry_date=date(2031, 1, 1), test="ab" * 32, notes="left rear dent-free"))
    assert out["visual"] == {f: f == "corrosion" for f in grading.VISUAL_FINDINGS}
    assert out["bms_codes"] == ["U0100"] and out["inspector"]["name"] == "Lab"
    with db.session() as s:
        history = Registry(s).history("P-1")
        event = history[-1]
        assert event["type"] == "inspected" and event["seq"] == out["event_seq"]
        assert event["actor_name"] == "Lab" and event["hash"] == out["event_hash"]
        assert event["payload"]["insulation_resistance_ohm"] == 2.5e6
        assert event["payload"]["visual"]["corrosion"] is True
        assert event["payload"]["expiry_date"] == "2031-01-01"
        listed = grading.inspections(s, "P-1")
        assert len(listed) == 1 and listed[0]["cell_soh_pct"] == [91.0, 89.5]
        assert verify(s).ok


def test_what_grading_reads_from_an_inspection(db) -> None:  # type: ignore[no-untyped-def]
    when = datetime(2025, 3, 1, tzinfo=UTC)
    with db.session() as s:
        battery = _pack(s)
        grading.record_inspection(s, "P-1", InspectionIn(
            inspected_at=when - timedelta(days=1), cell_voltages_v=[3.61, 1.95, 3.62],
            insulation_resistance_ohm=35_000.0, bms_codes=[], cell_soh_pct=[91.0, 88.5, 90.0],
            expiry_date=date(2026, 3, 1)))
        facts, rests_on = facts_for(s, battery, when=when)
    m = facts.measures
    assert m["insulation_resistance"].value == pytest.approx(100.0)  # 35 kOhm / 350 V nominal
    assert m["min_cell_voltage"].value == 1.95
    assert m["cell_soh_spread"].value == pytest.approx(2.5)
    assert m["months_to_expiry"].value == pytest.approx(365 / 30.4375, abs=1e-3)
    assert m["calendar_age"].value == pytest.approx(6.0, abs=0.01)  # 2019-03-01 .. 2025-03-01
    assert facts.bms_codes == [] and facts.findings["swelling"] is False
    assert [r["type"] for r in rests_on] == ["inspected"]


def test_insulation_relative_to_the_given_working_voltage(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        battery = _pack(s, nominal_voltage_v=None)
        grading.record_inspection(s, "P-1", InspectionIn(insulation_resistance_ohm=40_000.0))
        facts, _ = facts_for(s, battery)
        assert "insulation_resistance" not in facts.measures  # no voltage to relate it to
        grading.record_inspection(s, "P-1", InspectionIn(insulation_resistance_ohm=40_000.0,
                                                         insulation_voltage_v=400.0))
        facts, _ = facts_for(s, battery)
        assert facts.measures["insulation_resistance"].value == pytest.approx(100.0)


def test_bad_inspections_are_refused(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="unknown finding 'swollen'"):
        InspectionIn(visual={"swollen": True})
    with pytest.raises(ValidationError, match="between 0 and 10 V"):
        InspectionIn(cell_voltages_v=[3.6, 36.0])
    with pytest.raises(ValidationError):
        InspectionIn(insulation_resistance_ohm=-1)
    with db.session() as s:
        _pack(s)
    with db.session() as s, pytest.raises(ValidationFailed, match="in the future"):
        grading.record_inspection(s, "P-1", InspectionIn(
            inspected_at=datetime.now(UTC) + timedelta(days=2)))
