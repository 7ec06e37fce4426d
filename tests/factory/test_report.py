"""Daily report: the JSON content and the PDF's text."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import polars as pl
import pytest
from pypdf import PdfReader

from batteryloop.errors import NotFound
from batteryloop.factory import kpi, report


def _frame(hours: int = 48) -> pl.DataFrame:
    stack = [20.0] * hours
    stack[30] = 95.0  # day two, 12:00: above the stack limit
    return pl.DataFrame({
        "time": kpi.hour_starts(datetime(2025, 3, 3, 6), hours),
        "nmp.feed": [240.0] * hours, "product.flow": [238.0] * hours,
        "product.purity": [99.98] * hours, "product.water": [140.0] * hours,
        "stack.nmp": stack, "stack.flow": [30_000.0] * hours, "workplace.nmp": [4.0] * hours,
        "power.fans": [75.0] * hours, "power.chiller": [70.0] * hours,
        "steam.distillation": [90.0] * hours, "heat.rotor": [80.0] * hours})


@pytest.fixture(scope="module")
def result() -> kpi.KpiResult:
    return kpi.compute(_frame())


def test_daily_json_carries_the_day_and_its_own_exceedances(result) -> None:
    first = report.daily(result, date(2025, 3, 3), line="Line 1",
                         generated_at=datetime(2025, 3, 5, tzinfo=UTC))
    second = report.daily(result, date(2025, 3, 4), line="Line 1")
    assert first["day"] == "2025-03-03" and first["report"] == report.KIND
    assert first["compliant"] is True and first["exceedances"] == []
    assert second["compliant"] is False
    assert [e["period"] for e in second["exceedances"]] == ["2025-03-04T12:00:00"]
    k = first["day_kpis"]
    assert k["fed_kg"] == pytest.approx(24 * 240.0)
    assert k["recovered_kg"] == pytest.approx(24 * 238.0 * 0.9998)
    assert k["recovery_rate"] == pytest.approx(238.0 * 0.9998 / 240.0)
    assert [s["shift"] for s in first["shifts"]] == ["A", "B", "C"]
    assert len(first["hourly"]) == 24
    assert "2009/161/EU" in first["limits"]["workplace_source"]
    assert first["generated_at"].startswith("2025-03-05")


def test_missing_day_is_not_found(result) -> None:
    with pytest.raises(NotFound):
        report.daily(result, date(2025, 4, 1))


def test_pdf_shows_kpis_limits_and_exceedances(result) -> None:
    pdf = report.daily_pdf(report.daily(result, date(2025, 3, 4), line="Line 1"))
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "daily report 2025-03-04" in text
    assert "1 exceedance" in text
    assert "2025-03-04T12:00:00" in text
    assert "Recovery rate" in text and "99.15 %" in text
    assert "GB 30484-2013" in text and "2009/161/EU" in text
