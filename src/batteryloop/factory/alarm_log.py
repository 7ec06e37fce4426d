"""The alarm log of a recovery line: raises, clears and acknowledgements, append-only.

An occurrence is the entry that raised an alarm; its clear and its acknowledgement are later
entries pointing at it. An alarm needs attention while it is raised or not yet acknowledged (a
cleared but unacknowledged alarm still asks an operator to look, as ISA-18.2 has it). State is
read from the entries, so the log is the one record of what happened and who saw it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
from sqlalchemy import and_, select
from sqlalchemy.orm import Session, aliased

from batteryloop.errors import Conflict, NotFound, ValidationFailed
from batteryloop.store.models import FactoryAlarm

RAISED, CLEARED, ACKNOWLEDGED = "raised", "cleared", "acknowledged"


@dataclass(frozen=True)
class Occurrence:
    id: int
    line: str
    alarm: str
    rule: str
    tag: str
    severity: str
    message: str
    raised_at: datetime
    value: float | None
    threshold: float | None
    cleared_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    note: str | None

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "line": self.line, "alarm": self.alarm, "rule": self.rule,
            "tag": self.tag, "severity": self.severity, "message": self.message,
            "raised_at": self.raised_at.isoformat(), "value": self.value,
            "threshold": self.threshold, "active": self.active,
            "cleared_at": self.cleared_at.isoformat() if self.cleared_at else None,
            "acknowledged_at": self.acknowledged_at.isoformat() if self.acknowledged_at else None,
            "acknowledged_by": self.acknowledged_by, "note": self.note,
        }


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class AlarmLog:
    def __init__(self, session: Session) -> None:
        self.session = session

    def record(self, line: str, transitions: pl.DataFrame) -> int:
        """Append raise/clear transitions (alarms.TRANSITION_SCHEMA); returns entries written.

        A clear without an open occurrence (the log was started mid-alarm) is skipped; a raise
        of an alarm that is already open is skipped too, so replaying a window is harmless.
        """
        if transitions.is_empty():
            return 0
        now = datetime.now(UTC)
        open_ = {o.alarm: o for o in self.occurrences(line, active=True)}
        written = 0
        for row in transitions.sort("at").iter_rows(named=True):
            occurrence = open_.get(row["alarm"])
            if row["kind"] == RAISED and occurrence is None:
                entry = FactoryAlarm(
                    line=line, alarm=row["alarm"], rule=row["rule"], tag=row["tag"], kind=RAISED,
                    at=row["at"], recorded_at=now, value=row["value"], threshold=row["limit"],
                    severity=row["severity"], message=row["message"])
                self.session.add(entry)
                self.session.flush()
                open_[row["alarm"]] = self._occurrence(entry, None, None)
                written += 1
            elif row["kind"] == CLEARED and occurrence is not None:
                self.session.add(FactoryAlarm(
                    line=line, alarm=row["alarm"], rule=row["rule"], tag=row["tag"], kind=CLEARED,
                    occurrence_id=occurrence.id, at=row["at"], recorded_at=now,
                    value=row["value"], threshold=row["limit"], severity=row["severity"],
                    message=row["message"]))
                del open_[row["alarm"]]
                written += 1
        self.session.flush()
        return written

    def acknowledge(self, occurrence_id: int, actor: str, note: str | None = None,
                    at: datetime | None = None) -> Occurrence:
        """An operator has seen the alarm. Once per occurrence; the alarm may still be active."""
        if not actor or not actor.strip():
            raise ValidationFailed("say who acknowledges", location="actor")
        raised = self.session.get(FactoryAlarm, occurrence_id)
        if raised is None or raised.kind != RAISED:
            raise NotFound(f"no alarm occurrence {occurrence_id}")
        done = self.session.scalar(select(FactoryAlarm.id).where(
            FactoryAlarm.occurrence_id == occurrence_id, FactoryAlarm.kind == ACKNOWLEDGED))
        if done is not None:
            raise Conflict(f"alarm occurrence {occurrence_id} is already acknowledged")
        self.session.add(FactoryAlarm(
            line=raised.line, alarm=raised.alarm, rule=raised.rule, tag=raised.tag,
            kind=ACKNOWLEDGED, occurrence_id=raised.id, at=_utc(at or datetime.now(UTC)),
            recorded_at=datetime.now(UTC), severity=raised.severity, message=raised.message,
            actor=actor.strip(), note=note))
        self.session.flush()
        return self.get(occurrence_id)

    def get(self, occurrence_id: int) -> Occurrence:
        got = [o for o in self._query(FactoryAlarm.id == occurrence_id)]
        if not got:
            raise NotFound(f"no alarm occurrence {occurrence_id}")
        return got[0]

    def occurrences(self, line: str | None = None, *, active: bool | None = None,
                    unacknowledged: bool | None = None, start: datetime | None = None,
                    end: datetime | None = None, limit: int | None = None) -> list[Occurrence]:
        """Occurrences, newest first, filtered by line, state and raise time."""
        where = []
        if line is not None:
            where.append(FactoryAlarm.line == line)
        if start is not None:
            where.append(FactoryAlarm.at >= _utc(start))
        if end is not None:
            where.append(FactoryAlarm.at < _utc(end))
        got = self._query(*where)
        if active is not None:
            got = [o for o in got if o.active == active]
        if unacknowledged is not None:
            got = [o for o in got if (o.acknowledged_at is None) == unacknowledged]
        return got[:limit] if limit else got

    def attention(self, line: str | None = None) -> list[Occurrence]:
        """What an operator still has to deal with: active, or not yet acknowledged."""
        return [o for o in self.occurrences(line) if o.active or o.acknowledged_at is None]

    def raised_state(self, line: str) -> dict[str, bool]:
        """Alarm -> True for every open occurrence: seeds an AlarmEngine after a restart."""
        return {o.alarm: True for o in self.occurrences(line, active=True)}

    def _query(self, *where: Any) -> list[Occurrence]:
        cleared = aliased(FactoryAlarm)
        acked = aliased(FactoryAlarm)
        stmt = (
            select(FactoryAlarm, cleared.at, acked.at, acked.actor, acked.note)
            .outerjoin(cleared, and_(cleared.occurrence_id == FactoryAlarm.id,
                                     cleared.kind == CLEARED))
            .outerjoin(acked, and_(acked.occurrence_id == FactoryAlarm.id,
                                   acked.kind == ACKNOWLEDGED))
            .where(FactoryAlarm.kind == RAISED, *where)
            .order_by(FactoryAlarm.at.desc(), FactoryAlarm.id.desc())
        )
        out = []
        for entry, cleared_at, acked_at, actor, note in self.session.execute(stmt):
            out.append(self._occurrence(entry, cleared_at, acked_at, actor, note))
        return out

    @staticmethod
    def _occurrence(entry: FactoryAlarm, cleared_at: datetime | None,
                    acked_at: datetime | None, actor: str | None = None,
                    note: str | None = None) -> Occurrence:
        return Occurrence(
            id=entry.id, line=entry.line, alarm=entry.alarm, rule=entry.rule, tag=entry.tag,
            severity=entry.severity, message=entry.message, raised_at=_utc(entry.at),
            value=entry.value, threshold=entry.threshold,
            cleared_at=_utc(cleared_at) if cleared_at else None,
            acknowledged_at=_utc(acked_at) if acked_at else None, acknowledged_by=actor,
            note=note)
