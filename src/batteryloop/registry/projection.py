"""What a battery's events add up to: its state, passport status, owner and responsible operator.

The same fold runs when an event is appended (to refuse what the lifecycle forbids) and in
``verify`` (to prove the ``batteries`` row still says what its chain says).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from batteryloop.errors import ReadOnly, ValidationFailed
from batteryloop.registry.lifecycle import lifecycle


@dataclass(frozen=True)
class Projection:
    state: str | None = None
    eu_status: str | None = None
    owner: str | None = None  # organisation uid holding custody
    responsible: str | None = None  # organisation uid of the responsible economic operator


EMPTY = Projection()


def apply(current: Projection, event_type: str, payload: dict[str, Any]) -> Projection:
    """The projection after one more event, or an error saying why the event is not allowed."""
    cycle = lifecycle()
    if current.state is None:
        if event_type != "registered":
            raise ValidationFailed(f"the first event of a battery must be 'registered', not '{event_type}'")
        state = payload.get("state", "produced")
        cycle.check_initial(state)
        return Projection(
            state=state,
            eu_status=cycle.eu_status_after(None, state),
            owner=payload.get("owner"),
            responsible=payload.get("responsible", payload.get("owner")),
        )
    if cycle.state(current.state).read_only:
        raise ReadOnly(
            f"the battery is '{current.state}': its passport has ceased and its record is read-only"
        )
    if event_type == "registered":
        raise ValidationFailed("the battery is already registered")
    if event_type == "status-changed":
        source, target = payload.get("from"), payload.get("to")
        if source != current.state:
            raise ValidationFailed(
                f"status change says from '{source}' but the battery is '{current.state}'"
            )
        cycle.check(current.state, target)
        return replace(current, state=target, eu_status=cycle.eu_status_after(current.eu_status, target))
    if event_type == "transferred":
        custody, responsibility = payload.get("custody"), payload.get("responsibility")
        if not custody and not responsibility:
            raise ValidationFailed("a transfer needs 'custody' and/or 'responsibility' (an organisation)")
        return replace(
            current,
            owner=custody["to"] if custody else current.owner,
            responsible=responsibility["to"] if responsibility else current.responsible,
        )
    return current
