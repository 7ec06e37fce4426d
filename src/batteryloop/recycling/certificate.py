"""Batch recycling certificate: JSON (machine-readable, hashed) and PDF.

It carries the batch, its batteries (with the ledger events their dismantling rests on), the mass
balance, the compliance table (each figure with its numerator, denominator and the target's
source), the economics and a ``carbon`` section that a carbon provider fills when one is set
(``service.set_carbon_provider``); ``sha256`` is over the RFC 8785 canonical JSON of the rest.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

from sqlalchemy.orm import Session

from batteryloop.recycling import service
from batteryloop.registry import canonical

KIND = "batteryloop batch recycling certificate"
VERSION = 1


def _clean(value: Any) -> Any:
    """Floats that canonical JSON can carry (no NaN), rounded to what a scale can tell apart."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def build(session: Session, batch_ref: str, *, carbon: service.CarbonProvider | None = None) -> dict[str, Any]:
    figures = service.evaluate(session, batch_ref, carbon=carbon)
    body = _clean({"kind": KIND, "version": VERSION, **{
        k: figures[k] for k in ("batch", "route", "batteries", "inputs", "outputs", "mass_balance",
                                "compliance", "economics", "consumption", "carbon", "sources")}})
    body["draft"] = figures["batch"]["status"] != "closed"
    body["sha256"] = hashlib.sha256(canonical.dumps(body)).hexdigest()
    return body


def _text(value: Any) -> str:
    s = "" if value is None else str(value)
    return s.encode("latin-1", "replace").decode("latin-1")


def _num(x: Any, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}" if isinstance(x, (int, float)) else _text(x)


def _carbon(carbon: dict[str, Any] | None, p: Any, table: Any) -> list[Any]:
    """The carbon section as the provider shapes it (``carbon.batch``): the batch's emissions line
    by line, what each recovered constituent avoids, the net figures and the factor set's hash."""
    if not carbon:
        return [p("No carbon figures attached.")]
    if "recycling_emissions" not in carbon or "avoided_virgin" not in carbon:
        return [p("; ".join(f"{k}: {_num(v) if isinstance(v, (int, float)) else v}"
                            for k, v in carbon.items()))]
    grid, em, av = carbon.get("grid") or {}, carbon["recycling_emissions"], carbon["avoided_virgin"]
    lines = [["recycling emissions", "kg CO2e"]]
    for group in ("energy", "reagents", "process_co2"):
        lines += [[f"{group.replace('_', ' ')}: {k.replace('_', ' ')}", _num(v, 1)]
                  for k, v in (em.get(group) or {}).items()]
    lines.append(["total", _num(em["total"], 1)])
    avoided = [["recovered", "kg", "replaces", "as kg", "kg CO2e avoided", "A"]]
    avoided += [[m["constituent"], _num(m["recovered_kg"], 3), m["replaces"]
                 + (" (estimate)" if m.get("estimate") else ""), _num(m["material_kg"], 3),
                 _num(m["kg_co2e"], 1), _num(m["A"], 2)] for m in av["materials"]]
    avoided.append(["total", "", "", "", _num(av["total"], 1), ""])
    per_kwh = carbon.get("per_kwh") or {}
    out = [p(f"Electricity {grid.get('code', '-')}: {_num(grid.get('kg_per_kwh'), 3)} kg CO2e/kWh "
             f"({grid.get('source', '-')}). {carbon.get('method', '')}"),
           table(lines, [110, 40]), table(avoided, [25, 25, 45, 25, 30, 15]),
           p(f"Net avoided (substitution): {_num(carbon.get('net_avoided'), 1)} kg CO2e; credited by "
             f"the Circular Footprint Formula: {_num(carbon.get('cff_net_avoided'), 1)} kg CO2e.")]
    if per_kwh:
        out.append(p(f"Per kWh of cells recycled ({_num(per_kwh.get('kwh'), 2)} kWh): emissions "
                     f"{_num(per_kwh.get('emissions'), 2)}, net avoided "
                     f"{_num(per_kwh.get('net_avoided'), 2)} kg CO2e/kWh."))
    out += [p(f"Emission factors: {f.get('file')} sha256 {f.get('sha256')}")
            for f in carbon.get("factors") or []]
    return out


def pdf(cert: dict[str, Any]) -> bytes:
    """The certificate as an A4 PDF: batch, balance, compliance, economics, carbon."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)

    def p(text: Any) -> Paragraph:
        return Paragraph(_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"), small)

    def table(rows: list[list[Any]], widths: list[float]) -> Table:
        t = Table([[p(c) for c in row] for row in rows], colWidths=[w * mm for w in widths], repeatRows=1)
        t.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                               ("VALIGN", (0, 0), (-1, -1), "TOP"),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4"))]))
        return t

    b, bal, comp, econ = cert["batch"], cert["mass_balance"], cert["compliance"], cert["economics"]
    story: list[Any] = [
        Paragraph(_text(f"Recycling certificate - batch {b['ref']}"
                        + (" (DRAFT: batch not closed)" if cert.get("draft") else "")), styles["Title"]),
        p(f"Route: {cert['route']['name']} - {cert['route']['title']}. Source: {cert['route']['source']}. "
          f"Processed on {b.get('processed_on') or '-'}; recycler "
          f"{(b.get('recycler') or {}).get('name', '-')}; outputs {cert['outputs']['basis']}."),
        Spacer(1, 3 * mm), Paragraph("Batteries", styles["Heading2"]),
        table([["battery", "chemistry", "weighed kg", "dismantled event"]]
              + [[x["code"] or x["uid"], x["chemistry"], _num(x["weighed_mass_kg"], 1),
                  f"seq {x['dismantling_event_seq']}"] for x in cert["batteries"]], [70, 25, 25, 30]),
        Spacer(1, 3 * mm), Paragraph("Mass balance", styles["Heading2"]),
        p(f"{'Closed' if bal['closed'] else 'NOT closed'} within {bal['tolerance_pct']:g} % "
          f"(each constituent within {bal['constituent_tolerance_pct']:g} %)."),
        table([["constituent", "input kg", "products kg", "residues kg", "losses kg", "unaccounted kg"]]
              + [[r["constituent"], _num(r["input_kg"], 3), _num(r["product"], 3), _num(r["residue"], 3),
                  _num(r["loss"], 3), _num(r["unaccounted_kg"], 3)] for r in bal["constituents"]]
              + [["total", _num(bal["total"]["input_kg"], 3), _num(bal["total"]["product"], 3),
                  _num(bal["total"]["residue"], 3), _num(bal["total"]["loss"], 3),
                  _num(bal["total"]["unaccounted_kg"], 3)]], [30, 28, 28, 28, 28, 28]),
    ]
    for flag in bal["flags"]:
        story.append(p(f"FLAG: {flag}"))
    re_ = comp["recycling_efficiency"]
    rows = [["figure", "value %", "inputs", "target (regulation, from)", "met"]]
    figures = [("recycling efficiency", re_["value_pct"], re_["recycled_output_kg"], re_["input_kg"],
                re_["targets"])]
    figures += [(f"{m['element']} recovery", m["value_pct"], m["recovered_kg"], m["input_kg"],
                 m["targets"]) for m in comp["material_recovery"]]
    for name, value, num, den, targets in figures:
        for t in targets:
            for j, later in ((t["in_force"], False), (t["next"], True)):
                if j is None:
                    continue
                rows.append([name, _num(value), f"{_num(num, 3)} / {_num(den, 3)} kg",
                             f"{j['min_pct']:g} % ({t['regulation']}, from {j['applies_from']}"
                             f"{', not yet in force' if later else ''})",
                             "-" if j["met"] is None else ("yes" if j["met"] else "no")])
    story += [Spacer(1, 3 * mm), Paragraph(f"Compliance as of {comp['as_of']}", styles["Heading2"]),
              table(rows, [35, 20, 45, 60, 12])]
    story += [Spacer(1, 3 * mm), Paragraph("Economics", styles["Heading2"]),
              p(f"Revenue {_num(econ['revenue_usd'])} {econ['currency']}, costs {_num(econ['cost_usd'])}, "
                f"margin {_num(econ['margin_usd'])} ({_num(econ['margin_usd_per_t'])} per tonne of input); "
                f"prices: {econ['price_table']} ({econ['as_of']}).")]
    story += [Spacer(1, 3 * mm), Paragraph("Carbon", styles["Heading2"])]
    story += _carbon(cert.get("carbon"), p, table)
    story += [Spacer(1, 4 * mm), p(f"SHA-256 of the JSON certificate: {cert['sha256']}")]
    buffer = io.BytesIO()
    SimpleDocTemplate(buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm,
                      topMargin=15 * mm, bottomMargin=15 * mm,
                      title=f"Recycling certificate {b['ref']}").build(story)
    return buffer.getvalue()
