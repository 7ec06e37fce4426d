"""Daily report of the NMP recovery unit: JSON (machine-readable) and PDF (for the shift log).

Both carry the same content: the production day's KPIs and each shift's, the limits they are
checked against (with their sources) and every exceedance, the energy used, the cost saved and
CO2e avoided (with the factors and whether each was verified), and the data coverage.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from batteryloop.errors import NotFound
from batteryloop.factory.kpi import KpiResult

KIND = "batteryloop NMP recovery daily report"
VERSION = 1

_DAY_FIELDS = ("hours", "hours_complete", "fed_kg", "recovered_kg", "makeup_kg", "emitted_kg",
               "recovery_rate", "capture_rate", "purity_wt_pct", "water_ppm", "stack_mean_mg_Nm3",
               "stack_max_mg_Nm3", "stack_exceeded_hours", "workplace_twa_mg_m3",
               "workplace_short_term_exceeded_hours", "electricity_kWh", "heat_kWh",
               "energy_kWh_per_kg", "electricity_kWh_per_kg", "heat_kWh_per_kg", "gross_saving",
               "energy_cost", "cost_saved", "co2e_virgin_avoided_kg", "co2e_energy_kg",
               "co2e_avoided_kg")


def _clean(v: Any) -> Any:
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, datetime | date):
        return v.isoformat()
    return v


def daily(result: KpiResult, day: date, *, line: str = "",
          generated_at: datetime | None = None) -> dict[str, Any]:
    """The report of one production day as a dict (the JSON report)."""
    d = result.days.filter(pl.col("day") == day)
    if d.is_empty():
        raise NotFound(f"no data for production day {day.isoformat()}")
    row = d.row(0, named=True)
    shifts = result.shifts.filter(pl.col("day") == day)
    shift_rows = [{k: _clean(v) for k, v in r.items() if k in _DAY_FIELDS + ("shift", "start",
                                                                          "workplace_twa_exceeded")}
                  for r in shifts.iter_rows(named=True)]
    hourly = result.hourly.filter(pl.col("day") == day).select(
        "time", "shift", "stack.nmp", "workplace.nmp", "recovery_rate", "product.purity",
        "product.water", "electricity_kWh", "heat_kWh")
    periods = {r["start"] for r in shift_rows} | {f"{day.isoformat()} shift {r['shift']}"
                                                  for r in shift_rows}
    hours = {h.isoformat() for h in hourly["time"]}
    exceed = [e for e in result.exceedances if e["period"] in hours or e["period"] in periods]
    f = result.factors
    return {
        "report": KIND, "version": VERSION, "line": line, "day": day.isoformat(),
        "generated_at": (generated_at or datetime.now(UTC)).isoformat(),
        "day_kpis": {k: _clean(row.get(k)) for k in _DAY_FIELDS},
        "shifts": shift_rows,
        "hourly": [{k: _clean(v) for k, v in r.items()} for r in hourly.iter_rows(named=True)],
        "limits": result.limits.as_dict(),
        "exceedances": exceed,
        "compliant": not exceed,
        "factors": {"currency": f.currency, "nmp_price_per_kg": f.nmp_price_per_kg,
                    "nmp_co2e_kg_per_kg": f.nmp_co2e_kg_per_kg,
                    "electricity_price_per_kWh": f.electricity_price_per_kWh,
                    "electricity_co2e_kg_per_kWh": f.electricity_co2e_kg_per_kWh,
                    "heat_price_per_kWh": f.heat_price_per_kWh,
                    "heat_co2e_kg_per_kWh": f.heat_co2e_kg_per_kWh, "sources": f.sources},
        "notes": list(result.notes),
    }


def _fmt(v: Any, digits: int = 1, pct: bool = False) -> str:
    if v is None:
        return "-"
    if pct:
        return f"{100 * v:.{digits}f} %"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def daily_pdf(report: dict[str, Any]) -> bytes:
    """The same report as a PDF (A4): KPIs, shifts, limit checks, energy, cost and CO2e."""
    from reportlab.graphics.charts.lineplots import LinePlot
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7.5, leading=9)
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm,
                            topMargin=15 * mm, bottomMargin=15 * mm,
                            title=f"NMP recovery daily report {report['day']}")
    k = report["day_kpis"]
    cur = report["factors"]["currency"]
    grid = TableStyle([("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                       ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
                       ("FONTSIZE", (0, 0), (-1, -1), 8)])
    story: list[Any] = [
        Paragraph(f"NMP recovery unit - daily report {report['day']}", styles["Title"]),
        Paragraph(f"{report['line']} &nbsp; generated {report['generated_at']}", small),
        Spacer(1, 4 * mm),
        Paragraph("Limit check: " + ("compliant" if report["compliant"] else
                                     f"{len(report['exceedances'])} exceedance(s)"),
                  styles["Heading2"]),
    ]
    kpi_rows = [["KPI", "day"],
                ["NMP fed (kg)", _fmt(k["fed_kg"])],
                ["NMP recovered (kg)", _fmt(k["recovered_kg"])],
                ["Recovery rate", _fmt(k["recovery_rate"], 2, pct=True)],
                ["Capture rate", _fmt(k["capture_rate"], 2, pct=True)],
                ["Virgin NMP make-up (kg)", _fmt(k["makeup_kg"])],
                ["NMP emitted (kg)", _fmt(k["emitted_kg"], 2)],
                ["Product purity (wt%)", _fmt(k["purity_wt_pct"], 3)],
                ["Product water (ppm)", _fmt(k["water_ppm"], 0)],
                ["Stack NMP mean / max (mg/Nm3)",
                 f"{_fmt(k['stack_mean_mg_Nm3'])} / {_fmt(k['stack_max_mg_Nm3'])}"],
                ["Electricity (kWh)", _fmt(k["electricity_kWh"], 0)],
                ["Heat (kWh)", _fmt(k["heat_kWh"], 0)],
                ["Energy per kg recovered (kWh/kg)", _fmt(k["energy_kWh_per_kg"], 3)],
                [f"Cost saved ({cur})", _fmt(k["cost_saved"], 0)],
                ["CO2e avoided (kg)", _fmt(k["co2e_avoided_kg"], 0)],
                ["Hours (complete / all)", f"{k['hours_complete']} / {k['hours']}"]]
    story += [Table(kpi_rows, colWidths=[80 * mm, 50 * mm], style=grid), Spacer(1, 4 * mm)]
    shift_rows = [["shift", "recovery", "purity wt%", "water ppm", "stack mean", "workplace TWA",
                   "kWh/kg", f"saved {cur}", "CO2e kg"]]
    for s in report["shifts"]:
        shift_rows.append([s["shift"], _fmt(s["recovery_rate"], 2, pct=True),
                           _fmt(s["purity_wt_pct"], 3), _fmt(s["water_ppm"], 0),
                           _fmt(s["stack_mean_mg_Nm3"]), _fmt(s["workplace_twa_mg_m3"]),
                           _fmt(s["energy_kWh_per_kg"], 3), _fmt(s["cost_saved"], 0),
                           _fmt(s["co2e_avoided_kg"], 0)])
    story += [Paragraph("Shifts", styles["Heading2"]), Table(shift_rows, style=grid),
              Spacer(1, 4 * mm)]

    lim = report["limits"]
    hourly = [h for h in report["hourly"] if h["stack.nmp"] is not None]
    if hourly:
        d = Drawing(170 * mm, 55 * mm)
        plot = LinePlot()
        plot.x, plot.y, plot.width, plot.height = 30, 20, 170 * mm - 45, 55 * mm - 35
        pts = [(i, h["stack.nmp"]) for i, h in enumerate(hourly)]
        top = max(max(p[1] for p in pts), lim["stack_mg_Nm3"]) * 1.15
        plot.data = [pts, [(0, lim["stack_mg_Nm3"]), (len(pts) - 1, lim["stack_mg_Nm3"])]]
        plot.lines[0].strokeColor = colors.darkblue
        plot.lines[1].strokeColor = colors.red
        plot.yValueAxis.valueMin, plot.yValueAxis.valueMax = 0, top
        plot.xValueAxis.valueMin, plot.xValueAxis.valueMax = 0, max(len(pts) - 1, 1)
        d.add(plot)
        d.add(String(30, 55 * mm - 10, "Stack NMP, hourly mean (mg/Nm3); red: limit", fontSize=8))
        story += [d, Spacer(1, 3 * mm)]

    story.append(Paragraph("Limits", styles["Heading2"]))
    story.append(Paragraph(
        f"Stack ({lim['stack_name']}): {lim['stack_limit_as_stated']} mg/Nm3 as "
        f"{lim['stack_basis']} = {lim['stack_mg_Nm3']:.1f} mg/Nm3 NMP, hourly mean. "
        f"Source: {lim['stack_source']}", small))
    story.append(Paragraph(
        f"Workplace ({lim['workplace_name']}): 8-h TWA {lim['workplace_twa_mg_m3']} mg/m3, "
        f"short-term {lim['workplace_short_term_mg_m3']} mg/m3. Source: {lim['workplace_source']}",
        small))
    if report["exceedances"]:
        rows = [["kind", "period", "value", "limit", "averaging"]]
        for e in report["exceedances"]:
            value = e.get("value_mg_Nm3", e.get("value_mg_m3"))
            limit = e.get("limit_mg_Nm3", e.get("limit_mg_m3"))
            rows.append([e["kind"], e["period"], _fmt(value), _fmt(limit), e["averaging"]])
        story += [Spacer(1, 2 * mm), Table(rows, style=grid)]
    story.append(Paragraph("Factors", styles["Heading2"]))
    f = report["factors"]
    story.append(Paragraph(
        f"Virgin NMP {f['nmp_price_per_kg']} {cur}/kg and {f['nmp_co2e_kg_per_kg']} kg CO2e/kg; "
        f"electricity {f['electricity_price_per_kWh']} {cur}/kWh and "
        f"{f['electricity_co2e_kg_per_kWh']} kg CO2e/kWh; heat {f['heat_price_per_kWh']} {cur}/kWh "
        f"and {f['heat_co2e_kg_per_kWh']:.3f} kg CO2e/kWh.", small))
    for key, src in f["sources"].items():
        story.append(Paragraph(f"{key}: {src}", small))
    for note in report["notes"]:
        story.append(Paragraph(f"Note: {note}", small))
    doc.build(story)
    return buf.getvalue()
