"""Plant telemetry endpoints: tags, series, quarantine, alarms and their acknowledgement.

The tag list and the alarm rules are open (they are configuration); a plant's measurements,
quarantine and alarms need a signed-in caller; evaluating the rules into the alarm log and
acknowledging an alarm need a writer, who is recorded as the one who acknowledged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from batteryloop.api.pagination import Paged
from batteryloop.accounts.errors import Unauthorized
from batteryloop.accounts.service import Principal
from batteryloop.api import auth
from batteryloop.api.deps import Db
from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.factory import monitor
from batteryloop.factory.alarm_log import AlarmLog
from batteryloop.factory.alarms import load_rules
from batteryloop.factory.tags import load_tags
from batteryloop.factory.telemetry import quarantine
from batteryloop.factory.telemetry.store import TelemetryStore

router = APIRouter(prefix="/plant", tags=["plant"])
Writer = Annotated[Principal, Depends(auth.require_writer)]
MAX_POINTS = 200_000


def signed_in(who: Annotated[Principal, Depends(auth.principal)]) -> Principal:
    if not who.authenticated:
        raise Unauthorized("this needs a signed-in caller: send 'Authorization: Bearer <token>'")
    return who


Reader = Annotated[Principal, Depends(signed_in)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvaluateIn(_In):
    start: datetime = Field(description="RFC 3339 with offset; grid points after it")
    end: datetime = Field(description="RFC 3339 with offset; grid points up to it")


class AckIn(_In):
    note: str | None = Field(default=None, max_length=2000)


def _aware(moment: datetime | None, name: str) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        raise ValidationFailed("needs a UTC offset", location=name)
    return moment


def _known_line(store: TelemetryStore, line: str) -> None:
    if line not in store.lines():
        raise NotFound(f"no telemetry for line '{line}'")


def _iso(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
            for r in rows]


@router.get("/tags")
def get_tags(page: Paged) -> list[dict[str, Any]]:
    """Every instrument's tag: unit, plausible range, location."""
    return page([t.as_dict() for t in load_tags().values()])


@router.get("/alarm-rules")
def get_alarm_rules(page: Paged) -> list[dict[str, Any]]:
    """The alarm rules, each with the source or convention of its limit."""
    return page([r.as_dict() for r in load_rules(tags=load_tags())])


@router.get("/lines")
def get_lines(page: Paged, _: Reader) -> list[str]:
    """Lines with stored telemetry."""
    return page(TelemetryStore().lines())


@router.get("/lines/{line}/series")
def get_series(
    line: Annotated[str, PathParam(max_length=64)], _: Reader,
    tag: Annotated[list[str] | None, Query(description="repeatable; all tags when absent")] = None,
    start: datetime | None = None, end: datetime | None = None,
    every: Annotated[str | None, Query(pattern=r"^\d+(s|m|h|d)$",
                                       description="window for mean/min/max, e.g. 1h")] = None,
) -> dict[str, Any]:
    """Samples (ts, tag, value) with start <= ts < end, or window statistics with ``every``."""
    store = TelemetryStore()
    _known_line(store, line)
    t0, t1 = _aware(start, "start"), _aware(end, "end")
    frame = store.resample(line, tag, t0, t1, every=every) if every else store.query(
        line, tag, t0, t1)
    if frame.height > MAX_POINTS:
        raise ValidationFailed(f"{frame.height:,} points: narrow the range or ask for window "
                               "means with 'every'", location="every")
    return {"line": line, "columns": frame.columns, "rows": frame.height,
            "data": {c: (frame[c].dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ").to_list()
                         if c == "ts" else frame[c].to_list()) for c in frame.columns}}


@router.get("/lines/{line}/quarantine")
def get_quarantine(line: str, _: Reader, start: datetime | None = None,
                   end: datetime | None = None,
                   limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> dict[str, Any]:
    """Quarantined records: counts per reason and the latest ones (raw payload in base64)."""
    store = TelemetryStore()
    _known_line(store, line)
    kept = store.quarantined(line, _aware(start, "start"), _aware(end, "end"))
    latest = kept.tail(limit).with_columns(pl.col("raw").bin.encode("base64")).rename(
        {"raw": "raw_base64"})
    return {"line": line, "counts": quarantine.counts(kept), "total": kept.height,
            "latest": _iso(latest.to_dicts())}


@router.get("/lines/{line}/alarms")
def get_alarms(page: Paged, line: str, session: Db, _: Reader,
               state: Literal["attention", "active", "all"] = "attention",
               start: datetime | None = None, end: datetime | None = None) -> list[dict[str, Any]]:
    """Alarm occurrences, newest first: needing attention (active or unacknowledged), active,
    or all raised between start and end."""
    log = AlarmLog(session)
    if state == "attention":
        found = log.attention(line)
    else:
        found = log.occurrences(line, active=True if state == "active" else None,
                                start=_aware(start, "start"), end=_aware(end, "end"))
    return page([o.as_dict() for o in found])


@router.post("/lines/{line}/alarms/evaluate")
def post_evaluate(line: str, body: EvaluateIn, session: Db, _: Writer) -> dict[str, Any]:
    """Evaluate the alarm rules over stored data and append the changes to the alarm log."""
    store = TelemetryStore()
    _known_line(store, line)
    _aware(body.start, "start")
    _aware(body.end, "end")
    return monitor.evaluate(session, store, line, body.start, body.end).as_dict()


@router.post("/alarms/{occurrence}/ack")
def post_ack(occurrence: Annotated[int, PathParam(ge=1, le=2**63 - 1)], body: AckIn,
             session: Db, who: Writer) -> dict[str, Any]:
    """Acknowledge an alarm occurrence; the caller is recorded as the one who did."""
    actor = f"{who.viewer.user or 'user'} ({who.viewer.organisation})"
    return AlarmLog(session).acknowledge(occurrence, actor, body.note).as_dict()
