"""The lifecycle state machine over EU passport statuses and China traceability nodes.

States and transitions come from ``data/lifecycle.toml``; this module only answers questions about
them, so a deployment can change the graph without touching code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from batteryloop.errors import IllegalTransition, ValidationFailed
from batteryloop.registry.facts import load

EU_STATUSES = ("original", "repurposed", "re-used", "remanufactured", "waste")


@dataclass(frozen=True)
class State:
    name: str
    next: tuple[str, ...]
    node: str
    eu_status: str | None = None
    read_only: bool = False


@dataclass(frozen=True)
class Lifecycle:
    states: dict[str, State]
    initial: tuple[str, ...]

    def state(self, name: str) -> State:
        try:
            return self.states[name]
        except KeyError:
            known = ", ".join(self.states)
            raise ValidationFailed(f"unknown lifecycle state '{name}' (known: {known})") from None

    def check(self, current: str, target: str) -> None:
        """Refuse a transition the graph does not allow, naming both states."""
        self.state(target)
        here = self.state(current)
        if here.read_only:
            raise IllegalTransition(
                f"cannot move from '{current}' to '{target}': '{current}' is final, "
                "the passport has ceased and the record is read-only"
            )
        if target not in here.next:
            allowed = ", ".join(here.next) or "none"
            raise IllegalTransition(
                f"cannot move from '{current}' to '{target}' (allowed from '{current}': {allowed})"
            )

    def check_initial(self, state: str) -> None:
        self.state(state)
        if state not in self.initial:
            raise IllegalTransition(
                f"a battery cannot start its record in '{state}' "
                f"(a record starts in one of: {', '.join(self.initial)})"
            )

    def eu_status_after(self, current_eu: str | None, target: str) -> str:
        return self.state(target).eu_status or current_eu or "original"


@cache
def lifecycle() -> Lifecycle:
    raw = load("lifecycle")
    states = {
        name: State(
            name=name,
            next=tuple(spec.get("next", ())),
            node=spec["node"],
            eu_status=spec.get("eu_status"),
            read_only=bool(spec.get("read_only", False)),
        )
        for name, spec in raw["states"].items()
    }
    for state in states.values():
        for target in state.next:
            if target not in states:
                raise ValueError(f"lifecycle.toml: '{state.name}' leads to unknown '{target}'")
        if state.eu_status and state.eu_status not in EU_STATUSES:
            raise ValueError(f"lifecycle.toml: '{state.name}' has unknown eu_status")
    return Lifecycle(states=states, initial=tuple(raw["initial"]))
