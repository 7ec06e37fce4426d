"""Alarms over stored telemetry: evaluate the rules on a line's samples and keep the alarm log.

The one service the faces (CLI, API) call: it reads what the rules need from the Parquet store
(the window plus each rule's lookback), seeds the engine with the alarms the log has open, and
appends the raise and clear transitions to the log. Run it over history (a day imported from the
historian) or every few seconds behind a live ingester (``watch``); both give the same log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
from sqlalchemy.orm import Session

from batteryloop.errors import ValidationFailed
from batteryloop.factory.alarm_log import AlarmLog
from batteryloop.factory.alarms import AlarmEngine, Expected, RuleSet, load_rules
from batteryloop.factory.tags import load_tags
from batteryloop.factory.telemetry.store import TelemetryStore


@dataclass(frozen=True)
class Evaluation:
    line: str
    start: datetime
    end: datetime
    samples: int
    transitions: pl.DataFrame
    recorded: int

    def as_dict(self) -> dict[str, object]:
        return {
            "line": self.line, "start": self.start.isoformat(), "end": self.end.isoformat(),
            "samples": self.samples, "recorded": self.recorded,
            "transitions": [
                {**row, "at": row["at"].isoformat()}
                for row in self.transitions.to_dicts()
            ],
        }


def default_expected() -> Expected:
    """The unit model as the soft sensor (imported here: the model loads property tables)."""
    from batteryloop.factory.soft_sensor import model_expected

    return model_expected()


def evaluate(session: Session, store: TelemetryStore, line: str, start: datetime,
             end: datetime, *, rules: RuleSet | None = None,
             expected: Expected | None = None) -> Evaluation:
    """Evaluate the rules on ``line`` for grid points in (start, end] and log the transitions."""
    log = AlarmLog(session)
    samples, transitions = detect(store, line, start, end, active=log.raised_state(line),
                                  rules=rules, expected=expected)
    recorded = log.record(line, transitions)
    return Evaluation(line, start, end, samples, transitions, recorded)


def detect(store: TelemetryStore, line: str, start: datetime, end: datetime, *,
           active: dict[str, bool] | None = None, rules: RuleSet | None = None,
           expected: Expected | None = None) -> tuple[int, pl.DataFrame]:
    """The samples read and the raise/clear transitions of the rules on ``line`` for grid points
    in (start, end], given the alarms ``active`` before ``start``. Reads the store only, so it can
    run away from the database (a worker process); ``evaluate`` logs what it finds."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationFailed("give times with a UTC offset", location="start/end")
    if end <= start:
        raise ValidationFailed("end must be after start", location="end")
    rules = rules or load_rules(tags=load_tags())
    engine = AlarmEngine(rules, expected if expected is not None else default_expected(),
                         active=dict(active or {}))
    data = store.query(line, start=start - rules.lookback(),
                       end=end + timedelta(microseconds=1))
    since = min(data["ts"].min(), start) if data.height else start  # type: ignore[type-var]
    return data.height, engine.evaluate(data, start, end, since=since)


def watch(sessions: Callable[[], object], store: TelemetryStore, line: str, *,
          every: float = 10.0, rules: RuleSet | None = None, expected: Expected | None = None,
          stop: Callable[[], bool] = lambda: False,
          report: Callable[[Evaluation], None] = lambda e: None) -> None:
    """Evaluate the newest window every ``every`` seconds until ``stop()``; each evaluation is its
    own unit of work (``sessions()`` gives a context manager yielding a Session)."""
    rules = rules or load_rules(tags=load_tags())
    expected = expected if expected is not None else default_expected()
    last = datetime.now(UTC)
    while not stop():
        time.sleep(every)
        now = datetime.now(UTC)
        with sessions() as session:  # type: ignore[attr-defined]
            report(evaluate(session, store, line, last, now, rules=rules, expected=expected))
        last = now
