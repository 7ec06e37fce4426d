"""SOH and grading certificate of one battery: JSON (machine-readable) and PDF (with a QR code).

Both carry the same content: the battery's identity, its health values with methods and intervals,
the inspection, the policy (name, version, SHA-256), the route and grade with the rule that decided
and every rule's values, the residual value, and the ledger events the certificate rests on (type,
sequence number, hash), so anyone holding it can check it against the battery's chain. The JSON's
``sha256`` is over the RFC 8785 canonical JSON of everything else in it; the PDF prints it.

The QR code encodes the battery's public record: ``{base_url}/batteries/{uid}``.

``build`` only drafts a certificate; ``issue`` is what hands one out: it appends a
`certificate-issued` event to the battery's chain with the JSON's ``sha256`` (and the PDF file's,
when one is rendered), so ``check`` can later tell a holder whether the file in their hands is one
the registry issued, unaltered, and whether a newer grade or certificate has superseded it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.grading import inspection as inspections
from batteryloop.grading.config import record_url
from batteryloop.grading.service import EVENT as GRADED
from batteryloop.health.assess import EVENT as HEALTH_EVENT
from batteryloop.registry import canonical, ledger
from batteryloop.registry.service import Registry
from batteryloop.store.models import Battery, Event

KIND = "batteryloop SOH and grading certificate"
VERSION = 1
ISSUED = "certificate-issued"
UNCERTAINTY = (
    "Each health value is reported as value with the interval value +- k*u (GUM, standard "
    "uncertainties combined in quadrature, k = 2, about 95 % coverage). Grading thresholds are "
    "compared with the bound that is worse for the battery: the lower bound of SOH."
)


def build(session: Session, ref: str, *, base_url: str | None = None,
          issued_at: datetime | None = None, issued_by: str | None = None) -> dict[str, Any]:
    """The certificate of the battery's latest grade, as a dict (the JSON certificate); a draft
    until ``issue`` records it. ``issued_by``: the issuing organisation (uid or name)."""
    reg = Registry(session)
    battery = reg.battery(ref)
    info = reg.describe(battery.uid)
    history = reg.history(battery.uid)
    graded = next((e for e in reversed(history) if e["type"] == GRADED), None)
    if graded is None:
        raise NotFound(f"battery {battery.uid} has not been graded: no certificate to issue")
    g = graded["payload"]
    by_seq = {e["seq"]: e for e in history}
    rests = [dict(r) for r in g.get("rests_on", [])]
    health_values = []
    inspection = None
    for r in rests:
        event = by_seq.get(r["seq"])
        if event is None:
            continue
        if event["type"] == HEALTH_EVENT:
            for v in event["payload"].get("values", []):
                health_values.append({**v, "event_seq": event["seq"],
                                      "assessment_method": event["payload"].get("method")})
        elif event["type"] == inspections.EVENT:
            inspection = {"event_seq": event["seq"], "inspected_at": event["occurred_at"],
                          "inspector": event["actor_name"], **event["payload"]}
    rests.append({"type": GRADED, "seq": graded["seq"], "hash": graded["hash"],
                  "occurred_at": graded["occurred_at"]})
    for event in history[graded["seq"]:]:  # status changes that followed the grade
        if event["type"] == "status-changed":
            rests.append({"type": "status-changed", "seq": event["seq"], "hash": event["hash"],
                          "occurred_at": event["occurred_at"], "to": event["payload"]["to"]})
    cert: dict[str, Any] = {
        "certificate": KIND, "version": VERSION,
        "issued_at": ledger.iso(issued_at or datetime.now(UTC)),
        "record_url": record_url(battery.uid, base_url),
        "battery": {
            k: info[k] for k in ("uid", "code", "kind", "chemistry", "rated_capacity_ah",
                                 "rated_energy_wh", "nominal_voltage_v", "mass_kg", "manufactured_on",
                                 "state", "eu_status", "identifiers")
        } | {"manufacturer": info["manufacturer"]["name"] if info["manufacturer"] else None},
        "health": {"values": health_values, "soh_used": g.get("soh"), "uncertainty": UNCERTAINTY},
        "inspection": inspection,
        "grading": {
            "graded_at": graded["occurred_at"], "graded_by": graded["actor_name"],
            "policy": g["policy"], "route": g["route"], "grade": g.get("grade"),
            "application": g.get("application"), "decided_by": g["decided_by"],
            "reasons": g.get("reasons", []), "rules": g.get("rules", []),
        },
        "value": g.get("value"),
        "rests_on": rests,
        "chain_head": {"seq": info["events"], "hash": info["head_hash"]},
    }
    if issued_by:
        org = reg.organisation(issued_by)
        cert["issued_by"] = {"uid": org.uid, "name": org.name}
    cert["sha256"] = digest(cert)
    return cert


def issue(session: Session, ref: str, *, base_url: str | None = None, actor: str | None = None,
          issued_at: datetime | None = None, with_pdf: bool = False) -> dict[str, Any]:
    """Build the certificate (and its PDF if asked) and record it: a `certificate-issued` event
    with the digests, the grade it certifies and the chain head it was drawn from.

    Returns ``{"certificate": dict, "pdf": bytes | None, "event": dict}``; nothing is recorded if
    the certificate cannot be built (no grade) or the battery's record is closed."""
    when = ledger.utc(issued_at) if issued_at else datetime.now(UTC)
    cert = build(session, ref, base_url=base_url, issued_at=when, issued_by=actor)
    document = pdf(cert) if with_pdf else None
    graded = next(r for r in reversed(cert["rests_on"]) if r["type"] == GRADED)
    payload: dict[str, Any] = {
        "certificate": KIND, "version": VERSION, "sha256": cert["sha256"],
        "issued_at": cert["issued_at"], "record_url": cert["record_url"],
        "graded": {"seq": graded["seq"], "hash": graded["hash"]},
        "route": cert["grading"]["route"], "grade": cert["grading"]["grade"],
        "chain_head": cert["chain_head"],
    }
    if document is not None:
        payload["pdf_sha256"] = hashlib.sha256(document).hexdigest()
    uid = cert["battery"]["uid"]
    appended = Registry(session).append(uid, ISSUED, payload, actor=actor, occurred_at=when)
    return {"certificate": cert, "pdf": document,
            "event": {"battery": uid, "seq": appended.seq, "hash": appended.hash.hex(), **payload}}


def _issued_ref(event: dict[str, Any]) -> dict[str, Any]:
    return {"seq": event["seq"], "hash": event["hash"], "occurred_at": event["occurred_at"],
            "actor": event["actor_name"], "sha256": event["payload"].get("sha256"),
            "pdf_sha256": event["payload"].get("pdf_sha256")}


def _superseded(history: list[dict[str, Any]], issued: dict[str, Any]) -> dict[str, Any] | None:
    """The first grade or certificate recorded after ``issued``, if any."""
    for event in history[issued["seq"]:]:
        if event["type"] in (GRADED, ISSUED):
            return {"type": event["type"], "seq": event["seq"], "hash": event["hash"],
                    "occurred_at": event["occurred_at"]}
    return None


def _check_json(session: Session, cert: Mapping[str, Any]) -> dict[str, Any]:
    if cert.get("certificate") != KIND or not isinstance(cert.get("battery"), Mapping):
        raise ValidationFailed(f"not a {KIND} (no 'certificate' kind or 'battery')",
                               location="certificate")
    try:
        computed = digest(dict(cert))
    except (TypeError, ValueError) as exc:  # e.g. a lone surrogate: no canonical JSON exists
        raise ValidationFailed(f"not canonical JSON: {exc}", location="certificate") from None
    uid = cert["battery"].get("uid")
    out: dict[str, Any] = {"valid": False, "format": "json", "sha256": computed, "battery": uid,
                           "issued": None, "superseded_by": None, "problems": []}
    problems: list[str] = out["problems"]
    if cert.get("sha256") != computed:
        problems.append(f"the content does not match its sha256 {cert.get('sha256')!r} "
                        f"(it hashes to {computed}): altered after it was drawn")
    try:
        battery = Registry(session).battery(str(uid))
    except NotFound:
        problems.append(f"battery {uid!r} is not in this registry")
        return out
    history = Registry(session).history(battery.uid)
    by_seq = {e["seq"]: e for e in history}
    cited = cert.get("rests_on")
    for r in cited if isinstance(cited, list) else [cited]:
        event = by_seq.get(r.get("seq")) if isinstance(r, Mapping) else None
        if event is None or event["hash"] != r.get("hash") or event["type"] != r.get("type"):
            problems.append(f"event {r.get('seq') if isinstance(r, Mapping) else r!r} of battery "
                            f"{battery.uid} is not in its chain as the certificate cites it")
    issued = next((e for e in history if e["type"] == ISSUED
                   and e["payload"].get("sha256") == computed), None)
    if issued is None:
        problems.append(f"no {ISSUED} event of battery {battery.uid} records sha256 {computed}: "
                        "this certificate was never issued here (a draft, or altered)")
    else:
        out["issued"] = _issued_ref(issued)
        out["superseded_by"] = _superseded(history, issued)
    out["valid"] = not problems
    return out


def _check_pdf(session: Session, data: bytes) -> dict[str, Any]:
    computed = hashlib.sha256(data).hexdigest()
    out: dict[str, Any] = {"valid": False, "format": "pdf", "sha256": computed, "battery": None,
                           "issued": None, "superseded_by": None, "problems": []}
    rows = session.execute(  # the digest is in the canonical payload text: a narrow scan
        select(Event.battery_id, Event.seq, Event.payload)
        .where(Event.type == ISSUED, Event.payload.contains(computed))
    )
    found = next(((bid, seq) for bid, seq, payload in rows
                  if orjson.loads(payload).get("pdf_sha256") == computed), None)
    if found is None:
        out["problems"].append(f"no {ISSUED} event records a PDF with sha256 {computed}: "
                               "this file is not one the registry issued (or it was altered)")
        return out
    uid = session.scalar(select(Battery.uid).where(Battery.id == found[0]))
    history = Registry(session).history(str(uid))
    issued = history[found[1] - 1]
    out.update(battery=uid, issued=_issued_ref(issued), superseded_by=_superseded(history, issued),
               valid=True)
    return out


def check(session: Session, document: bytes | Mapping[str, Any]) -> dict[str, Any]:
    """Check a certificate against the ledger: a JSON certificate (dict, or its bytes) must hash
    to its own ``sha256``, cite events that are in the battery's chain, and have been issued; a
    PDF file's bytes must be those recorded when it was issued. Reads only."""
    if isinstance(document, Mapping):
        return _check_json(session, document)
    if not isinstance(document, bytes | bytearray):
        raise ValidationFailed("expected a certificate as JSON or PDF bytes", location="certificate")
    data = bytes(document)
    if data.startswith(b"%PDF"):
        return _check_pdf(session, data)
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"neither a PDF nor JSON: {exc}", location="certificate") from None
    if not isinstance(parsed, dict):
        raise ValidationFailed("a JSON certificate is an object", location="certificate")
    return _check_json(session, parsed)


def digest(cert: dict[str, Any]) -> str:
    body = {k: v for k, v in cert.items() if k != "sha256"}
    return hashlib.sha256(canonical.dumps(body)).hexdigest()


# --- PDF ---------------------------------------------------------------------------------------
def qr_image(url: str):  # type: ignore[no-untyped-def]
    """The QR code of a URL as a PIL image (error correction M, 4 px modules, 4-module border)."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=4, border=4)
    code.add_data(url)
    code.make(fit=True)
    return code.make_image(fill_color="black", back_color="white").get_image().convert("L")


def qr_matrix(url: str) -> list[list[bool]]:
    """The QR code's modules (with border), to check a rendered code against."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=1, border=4)
    code.add_data(url)
    code.make(fit=True)
    return code.get_matrix()


def _text(value: Any) -> str:
    """Latin-1 safe text for the PDF's standard fonts."""
    s = "" if value is None else str(value)
    for a, b in (("\u2265", ">="), ("\u2264", "<="), ("\u03a9", "ohm"), ("\u2013", "-"),
                 ("\u2014", "-"), ("\u2019", "'")):
        s = s.replace(a, b)
    return s.encode("latin-1", "replace").decode("latin-1")


def _num(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, (int, float)):
        return f"{x:,.{digits}f}"
    return _text(x)


def pdf(cert: dict[str, Any]) -> bytes:
    """The certificate as a PDF: one or two A4 pages, tables and the QR code to the record."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    head = styles["Heading2"]

    def p(text: Any, style=small) -> Paragraph:  # type: ignore[no-untyped-def]
        return Paragraph(_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
                         style)

    def table(rows: list[list[Any]], widths: list[float], header: bool = True) -> Table:
        t = Table([[c if isinstance(c, Paragraph) else p(c) for c in row] for row in rows],
                  colWidths=widths, repeatRows=1 if header else 0)
        style = [("GRID", (0, 0), (-1, -1), 0.25, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP")]
        if header:
            style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")))
        t.setStyle(TableStyle(style))
        return t

    b, g, h = cert["battery"], cert["grading"], cert["health"]
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm,
                            topMargin=15 * mm, bottomMargin=15 * mm,
                            title=f"SOH and grading certificate {b['uid']}", author="batteryloop")
    width = A4[0] - 30 * mm
    png = io.BytesIO()
    qr_image(cert["record_url"]).save(png, format="PNG")
    png.seek(0)
    qr = Image(png, width=38 * mm, height=38 * mm)
    ident = [
        ["Battery", b["uid"]], ["Code (GB/T 34014)", b["code"] or "-"],
        ["Kind / chemistry", f"{b['kind']} / {b['chemistry'] or '-'}"],
        ["Rated", (f"{_num(b['rated_capacity_ah'], 1)} Ah, {_num(b['rated_energy_wh'], 0)} Wh, "
                   f"{_num(b['nominal_voltage_v'], 1)} V")],
        ["Manufacturer", f"{b['manufacturer'] or '-'}, made {b['manufactured_on'] or '-'}"],
        ["State / EU status", f"{b['state']} / {b['eu_status']}"],
        ["Record", cert["record_url"]],
    ]
    top = Table([[table(ident, [40 * mm, width - 40 * mm - 42 * mm], header=False), qr]],
                colWidths=[width - 42 * mm, 42 * mm])
    top.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story: list[Any] = [
        Paragraph("SOH and grading certificate", styles["Title"]),
        p(f"Issued {cert['issued_at']} - certificate SHA-256 {cert['sha256']}"),
        Spacer(1, 4 * mm), top, Spacer(1, 3 * mm),
    ]
    decided = g["decided_by"]
    soh = h.get("soh_used") or {}
    story += [
        Paragraph("Decision", head),
        table([
            ["Route", "Grade", "Application", "Decided by", "SOH used (lower bound)"],
            [g["route"], g.get("grade") or "-", g.get("application") or "-",
             f"rule {decided['id']} ({decided.get('kind')})",
             f"{_num(soh.get('lower'))} {soh.get('unit', '')} ({soh.get('parameter', '-')}; "
             f"point {_num(soh.get('value'))})" if soh else "-"],
        ], [24 * mm, 16 * mm, 24 * mm, 50 * mm, width - 114 * mm]),
        Spacer(1, 2 * mm),
        p(f"Policy {g['policy']['name']} v{g['policy']['version']} ({g['policy'].get('origin')}), "
          f"SHA-256 {g['policy']['sha256']}; graded {g['graded_at']} by {g.get('graded_by') or '-'}."),
    ]
    for reason in g.get("reasons", []):
        story.append(p(f"- {reason}"))
    if decided.get("source") or decided.get("convention"):
        story.append(p(f"Basis of the deciding rule: {decided.get('source') or ''} "
                       f"{('Convention: ' + decided['convention']) if decided.get('convention') else ''}"))
    story += [Paragraph("Health values", head)]
    rows = [["Parameter", "Value", "Interval", "Unit", "Method", "Measured", "Event"]]
    for v in h["values"]:
        rows.append([v["parameter"], _num(v["value"]), f"{_num(v['lower'])} .. {_num(v['upper'])}",
                     v.get("unit", ""), v.get("method", ""), v.get("measured_at") or "-",
                     str(v["event_seq"])])
    story += [table(rows, [34 * mm, 16 * mm, 26 * mm, 14 * mm, 44 * mm, 30 * mm, width - 164 * mm]),
              Spacer(1, 1 * mm), p(h["uncertainty"])]
    ins = cert.get("inspection")
    if ins:
        seen = [k for k, v in (ins.get("visual") or {}).items() if v]
        person = f" ({ins['inspected_by']})" if ins.get("inspected_by") else ""
        story += [Paragraph("Inspection", head), table([
            ["Inspected", f"{ins['inspected_at']} by {ins.get('inspector') or '-'}{person}"],
            ["Visual findings", ", ".join(seen) if seen else "none"],
            ["OCV", f"{_num(ins.get('ocv_v'), 3)} V"],
            ["Insulation", f"{_num(ins.get('insulation_resistance_ohm'), 0)} ohm"
                           + (f" at {_num(ins.get('insulation_voltage_v'), 0)} V"
                              if ins.get("insulation_voltage_v") else "")],
            ["BMS codes", ", ".join(ins["bms_codes"]) if ins.get("bms_codes") else
             ("none" if ins.get("bms_codes") is not None else "not read")],
            ["Expiry date", ins.get("expiry_date") or "-"],
        ], [40 * mm, width - 40 * mm], header=False)]
    story += [Paragraph("Rules evaluated (in order)", head)]
    rows = [["Rule", "Kind", "Route", "Result", "Values"]]
    for r in g.get("rules", []):
        rows.append([r["id"] + (" (decided)" if r.get("decided") else ""), r["kind"], r["route"],
                     r["result"], "; ".join(c["text"] for c in r["conditions"])])
    story.append(table(rows, [38 * mm, 14 * mm, 26 * mm, 20 * mm, width - 98 * mm]))
    value = cert.get("value") or {}
    if value and "estimate" in value:
        ceiling = value.get("ceiling") or {}
        cur = value.get("currency", "USD")
        story += [Paragraph("Residual value (priced at the lower bound of SOH)", head), table([
            ["", "per unit", f"per remaining kWh ({_num(value['remaining_energy_kwh'], 2)} kWh)"],
            ["Floor (recycling value)", f"{_num(value['floor']['per_unit'])} {cur}",
             f"{_num(value['floor']['per_remaining_kwh'])} {cur}"],
            ["Ceiling (new-equivalent x energy x life)", f"{_num(ceiling.get('per_unit'))} {cur}",
             f"{_num(ceiling.get('per_remaining_kwh'))} {cur}"],
            ["Route cost", f"{_num(value['route_cost']['per_unit'])} {cur}",
             f"{_num(value['route_cost']['per_remaining_kwh'])} {cur}"],
            ["Estimate", f"{_num(value['estimate']['per_unit'])} {cur}",
             f"{_num(value['estimate']['per_remaining_kwh'])} {cur}"],
        ], [70 * mm, 40 * mm, width - 110 * mm]),
            p(f"{value['estimate']['basis']}; prices as of {value.get('as_of')}, "
              f"table SHA-256 {value['prices']['sha256']}.")]
    elif value.get("skipped"):
        story += [Paragraph("Residual value", head), p(f"not priced: {value['skipped']}")]
    story += [Paragraph("Ledger events this certificate rests on", head)]
    rows = [["Seq", "Type", "Occurred", "SHA-256"]]
    for r in cert["rests_on"]:
        rows.append([str(r["seq"]), r["type"] + (f" -> {r['to']}" if r.get("to") else ""),
                     r["occurred_at"], r["hash"]])
    story += [table(rows, [8 * mm, 30 * mm, 34 * mm, width - 72 * mm]),
              Spacer(1, 2 * mm),
              p(f"Chain head when issued: event {cert['chain_head']['seq']}, "
                f"{cert['chain_head']['hash']}. Verify with `batteryloop verify`.")]
    doc.build(story)
    return buffer.getvalue()
