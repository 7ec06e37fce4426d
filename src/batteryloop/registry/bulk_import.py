"""Bulk import of batteries and events from CSV or JSON: every row checked, then all or nothing.

A file with any invalid row writes nothing, and the report names each bad row and field. With
``skip_invalid`` the valid rows are written and the invalid ones go to a reject file with reasons.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.errors import BatteryloopError, ImportRejected, RowProblem, ValidationFailed
from batteryloop.registry import ledger
from batteryloop.registry.identifiers import SCHEMES
from batteryloop.registry.ledger import Draft
from batteryloop.registry.projection import Projection, apply
from batteryloop.registry.schemas import BatteryIn, EventIn
from batteryloop.registry.service import Registry
from batteryloop.store.models import Identifier

Kind = Literal["batteries", "events"]
_ID_COLUMNS = {s for s in SCHEMES if s not in ("passport", "gbt34014")}


@dataclass
class ImportReport:
    path: str
    kind: Kind
    rows: int = 0
    written: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    reject_file: str | None = None


def read_rows(path: Path, data: bytes | None = None) -> tuple[list[dict[str, Any]], int]:
    """Rows of a CSV (header line) or JSON (a list, or an object holding one list) file, and the
    number by which the first row is named in reports (its line for CSV, its index for JSON)."""
    raw = data if data is not None else path.read_bytes()
    name = str(path)
    text = raw.lstrip()
    if text[:1] in (b"[", b"{"):
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValidationFailed(f"not valid JSON ({exc})", location=name) from None
        if isinstance(doc, dict):
            lists = [v for v in doc.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise ValidationFailed("a JSON object must hold exactly one list of rows", location=name)
            doc = lists[0]
        if not all(isinstance(r, dict) for r in doc):
            raise ValidationFailed("every JSON row must be an object", location=name)
        return doc, 1
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"not UTF-8 text (byte {exc.start})", location=name) from None
    reader = csv.DictReader(io.StringIO(decoded))
    if not reader.fieldnames:
        raise ValidationFailed("empty file: no header row", location=name)
    rows = []
    for number, row in enumerate(reader, start=2):
        if None in row:
            raise ValidationFailed("more fields than the header has", location=f"{name}, line {number}")
        rows.append({k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()})
    return rows, 2


def guess_kind(rows: list[dict[str, Any]]) -> Kind:
    return "events" if rows and "type" in rows[0] and "battery" in rows[0] else "batteries"


def _problems(exc: ValidationError, row: int) -> list[RowProblem]:
    return [
        RowProblem(row, ".".join(str(p) for p in err["loc"]) or None, err["msg"])
        for err in exc.errors()
    ]


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v not in ("", None)}


def _battery_in(row: dict[str, Any]) -> BatteryIn:
    row = _clean(row)
    idents = dict(row.pop("identifiers", None) or {})
    for column in list(row):
        if column in _ID_COLUMNS:
            idents[column] = row.pop(column)
    if isinstance(row.get("lenient_code"), str):
        row["lenient_code"] = row["lenient_code"].lower() in ("1", "true", "yes")
    return BatteryIn(**row, identifiers=idents)


def _event_in(row: dict[str, Any]) -> EventIn:
    row = _clean(row)
    payload = row.pop("payload", None) or {}
    if isinstance(payload, str):
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ValidationFailed(f"payload is not JSON ({exc})", location="payload") from None
    for key in ("to", "reason"):
        if key in row:
            payload[key] = row.pop(key)
    for key in ("custody_to", "responsibility_to"):
        if key in row:
            payload[key] = row.pop(key)
    return EventIn(**row, payload=payload)


class Importer:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.registry = Registry(session)

    def run(
        self, path: Path, *, kind: Kind | None = None, skip_invalid: bool = False,
        reject_path: Path | None = None, actor: str | None = None, data: bytes | None = None,
        write_rejects: bool = True,
    ) -> ImportReport:
        rows, first = read_rows(path, data)
        kind = kind or guess_kind(rows)
        report = ImportReport(str(path), kind, rows=len(rows))
        if kind == "batteries":
            good = self._check_batteries(rows, first, report)
        else:
            good = self._check_events(rows, first, report)
        if report.problems and not skip_invalid:
            raise ImportRejected(str(path), report.problems)
        if report.problems and write_rejects:
            report.reject_file = str(
                self._write_rejects(path, rows, first, report.problems, reject_path)
            )
        if kind == "batteries":
            self.registry.register_many([item for _, item in good], actor=actor)
        else:
            ledger.append(self.session, [draft for _, draft in good])
        report.written = len(good)
        return report

    # --- batteries -----------------------------------------------------------------------------
    def _check_batteries(
        self, rows: list[dict[str, Any]], first: int, report: ImportReport
    ) -> list[tuple[int, BatteryIn]]:
        good: list[tuple[int, BatteryIn]] = []
        in_call: dict[str, tuple[str, str]] = {}
        seen: dict[str, int] = {}
        for number, row in enumerate(rows, start=first):
            try:
                item = _battery_in(row)
                # _prepare checks code, parent, organisations and identifiers without writing
                prepared, _, extra = self.registry.prepare(item, dict(in_call))
            except ValidationError as exc:
                report.problems.extend(_problems(exc, number))
                continue
            except BatteryloopError as exc:
                report.problems.append(RowProblem(number, getattr(exc, "location", None), exc.message))
                continue
            keys = [prepared["uid"], prepared["code"], *extra.values()]
            clash = next((k for k in keys if k and k in seen), None)
            if clash:
                report.problems.append(
                    RowProblem(number, None, f"'{clash}' is also on row {seen[clash]} of this file")
                )
                continue
            taken = self._existing([k for k in keys if k])
            if taken:
                report.problems.append(RowProblem(number, None, f"'{taken}' is already registered"))
                continue
            for key in keys:
                if key:
                    seen[key] = number
                    in_call[key] = (prepared["uid"], prepared["kind"])
            if not item.uid:
                item = item.model_copy(update={"uid": prepared["uid"]})
            good.append((number, item))
        return good

    def _existing(self, values: list[str]) -> str | None:
        return self.session.scalar(select(Identifier.value).where(Identifier.value.in_(values)).limit(1))

    # --- events --------------------------------------------------------------------------------
    def _check_events(
        self, rows: list[dict[str, Any]], first: int, report: ImportReport
    ) -> list[tuple[int, Draft]]:
        good: list[tuple[int, Draft]] = []
        projections: dict[int, Projection] = {}
        for number, row in enumerate(rows, start=first):
            try:
                event = _event_in(row)
                draft, projections_after = self._draft(event, projections)
            except ValidationError as exc:
                report.problems.extend(_problems(exc, number))
                continue
            except BatteryloopError as exc:
                report.problems.append(RowProblem(number, getattr(exc, "location", None), exc.message))
                continue
            projections.update(projections_after)
            good.append((number, draft))
        return good

    def _draft(self, event: EventIn, projections: dict[int, Projection]) -> tuple[Draft, dict[int, Projection]]:
        battery = self.registry.battery(event.battery)
        actor = self.registry.organisation(event.actor) if event.actor else None
        current = projections.get(battery.id) or self.registry.projection(battery)
        payload = dict(event.payload)
        if event.type == "status-changed":
            payload.setdefault("from", current.state)
        if event.type == "transferred":
            for key, field_name in (("custody", "custody_to"), ("responsibility", "responsibility_to")):
                if field_name in payload:
                    target = self.registry.organisation(payload.pop(field_name))
                    side = "owner" if key == "custody" else "responsible"
                    payload[key] = {"from": getattr(current, side), "to": target.uid}
        after = apply(current, event.type, payload)
        if event.signature:
            raise ValidationFailed("signed events are imported through the API one by one", location="signature")
        occurred: datetime | None = event.occurred_at
        return Draft(battery.id, event.type, payload, actor.id if actor else None, occurred), {battery.id: after}

    @staticmethod
    def _write_rejects(path: Path, rows: list[dict[str, Any]], first: int,
                       problems: Iterable[RowProblem], reject_path: Path | None) -> Path:
        target = reject_path or path.with_name(path.stem + ".rejects.csv")
        by_row: dict[int, list[str]] = {}
        for problem in problems:
            by_row.setdefault(problem.row, []).append(str(problem))
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with target.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["row", "reasons", *columns])
            for index, row in enumerate(rows):
                number = index + first
                if number in by_row:
                    writer.writerow([number, "; ".join(by_row[number]),
                                     *[_cell(row.get(c)) for c in columns]])
        return target


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()
