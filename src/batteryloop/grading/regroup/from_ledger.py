"""The per-cell numbers regrouping works on, read from each battery's ledger.

    capacity (Ah)         latest ``capacity_soh`` x rated capacity / 100 (value, lower, upper)
    dcir (ohm)            latest ``dc_resistance`` (Annex VII Part A "ohmic resistance")
    ocv (V)               the latest inspection's open-circuit voltage
    self_discharge        latest ``self_discharge`` (%/month)

Capacity is required of every battery. An optional feature is used only when every battery has
it (a feature half the cells lack would group the cells by whether they were measured); asked for
by name, its absence is an error naming the battery. Every value keeps the event it came from, so
a plan and the `regrouped` events rest on the chain. One query per kind of record for the whole
batch, not one per battery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.errors import Conflict, ValidationFailed
from batteryloop.grading.metrics import Measure
from batteryloop.grading.service import EVENT as GRADED
from batteryloop.health.assess import EVENT as HEALTH_EVENT
from batteryloop.registry import ledger
from batteryloop.registry.service import Registry
from batteryloop.store.models import Battery, Event, Inspection, Lineage

CAPACITY_PARAMETER = "capacity_soh"
# optional feature -> the health parameter it comes from (ocv comes from the inspection)
HEALTH_FEATURES = {"dcir": "dc_resistance", "self_discharge": "self_discharge"}
OPTIONAL = ("dcir", "ocv", "self_discharge")
FEATURES = ("capacity", *OPTIONAL)
_CHUNK = 5000


@dataclass
class Cells:
    """The batteries in the order given, their numbers (one row each) and where they came from."""

    batteries: list[Battery]
    refs: list[str]
    frame: pl.DataFrame  # uid, capacity, capacity_lower, capacity_upper, soh, and used features
    evidence: list[list[dict[str, Any]]]  # per battery: the events its numbers rest on
    dropped: dict[str, str] = field(default_factory=dict)  # optional feature -> why it is not used
    grades: list[dict[str, Any] | None] = field(default_factory=list)  # latest `graded` payloads

    @property
    def features(self) -> list[str]:
        return [f for f in FEATURES if f in self.frame.columns]

    def by_uid(self) -> Cells:
        """The same cells in uid order: a plan must not depend on how the batteries were listed."""
        order = sorted(range(len(self.batteries)), key=lambda i: self.batteries[i].uid)
        return Cells([self.batteries[i] for i in order], [self.refs[i] for i in order],
                     self.frame[order], [self.evidence[i] for i in order], dict(self.dropped),
                     [self.grades[i] for i in order] if self.grades else [])

    def name(self, i: int) -> str:
        """How an error names battery ``i``: its uid, and the reference it was given by."""
        uid = self.batteries[i].uid
        return uid if self.refs[i] == uid else f"{uid} ('{self.refs[i]}')"


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def resolve(session: Session, refs: Sequence[str]) -> list[Battery]:
    """The batteries, each once; an unknown or repeated reference is an error naming it."""
    if not refs:
        raise ValidationFailed("no batteries given", location="batteries")
    reg = Registry(session)
    seen: dict[int, str] = {}
    out = []
    for ref in refs:
        battery = reg.battery(str(ref))
        if battery.id in seen:
            raise ValidationFailed(f"battery {battery.uid} is listed twice (as '{seen[battery.id]}' "
                                   f"and '{ref}')", location="batteries")
        seen[battery.id] = str(ref)
        out.append(battery)
    kinds = {b.kind for b in out}
    if not kinds <= {"cell", "module"}:
        odd = next(b for b in out if b.kind not in ("cell", "module"))
        raise ValidationFailed(f"battery {odd.uid} is a {odd.kind}: regrouping puts cells or modules "
                               "into packs", location="batteries")
    if len(kinds) > 1:
        odd = next(b for b in out if b.kind != out[0].kind)
        raise ValidationFailed(f"battery {odd.uid} is a {odd.kind}, battery {out[0].uid} a "
                               f"{out[0].kind}: one pack takes one kind", location="batteries")
    chemistry = out[0].chemistry
    odd = next((b for b in out if b.chemistry != chemistry), None)
    if odd is not None:
        raise ValidationFailed(f"battery {odd.uid} is {odd.chemistry or 'of unknown chemistry'}, "
                               f"battery {out[0].uid} {chemistry or 'of unknown chemistry'}: one "
                               "pack takes one chemistry", location="batteries")
    return out


def check_available(session: Session, cells: Cells) -> None:
    """Refuse batteries gone to recycling or already built into a second-life battery."""
    batteries = cells.batteries
    gone = next((i for i, b in enumerate(batteries) if b.eu_status == "waste"), None)
    if gone is not None:
        raise Conflict(f"battery {cells.name(gone)} is '{batteries[gone].state}' (EU status waste): "
                       "it went the recycling route and cannot be regrouped")
    ids = [b.id for b in batteries]
    for chunk in _chunks(ids):
        row = session.execute(
            select(Lineage.parent_id, Battery.uid).join(Battery, Battery.id == Lineage.child_id)
            .where(Lineage.parent_id.in_(chunk)).limit(1)
        ).first()
        if row is not None:
            used = next(i for i, b in enumerate(batteries) if b.id == row[0])
            raise Conflict(f"battery {cells.name(used)} is already part of second-life battery "
                           f"{row[1]}")


def _latest_health(session: Session, ids: Sequence[int]
                   ) -> tuple[dict[int, dict[str, tuple[Measure, dict]]], dict[int, dict[str, Any]]]:
    """Newest value of each health parameter per battery, with the event it came from; and each
    battery's newest grade (the `graded` payload with its seq)."""
    out: dict[int, dict[str, tuple[Measure, dict]]] = {i: {} for i in ids}
    grades: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(Event.battery_id, Event.seq, Event.type, Event.hash, Event.occurred_at,
                   Event.payload)
            .where(Event.battery_id.in_(chunk), Event.type.in_((HEALTH_EVENT, GRADED)))
            .order_by(Event.battery_id, Event.seq)
        )
        for bid, seq, etype, digest, occurred, payload in rows:
            if etype == GRADED:
                grades[bid] = {"seq": seq, **orjson.loads(payload)}
                continue
            ref = {"type": HEALTH_EVENT, "seq": seq, "hash": digest.hex(),
                   "occurred_at": ledger.iso(occurred)}
            for value in orjson.loads(payload).get("values", []):
                try:
                    out[bid][value["parameter"]] = (Measure.from_health(value), ref)
                except (ValidationFailed, KeyError, TypeError):
                    continue
    return out, grades


def _latest_ocv(session: Session, ids: Sequence[int]) -> dict[int, tuple[float, dict]]:
    out: dict[int, tuple[float, dict]] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(Inspection.battery_id, Inspection.ocv_v, Inspection.event_seq)
            .where(Inspection.battery_id.in_(chunk))
            .order_by(Inspection.battery_id, Inspection.inspected_at, Inspection.id)
        )
        latest = {bid: (ocv, seq) for bid, ocv, seq in rows}  # the last row per battery wins
        for bid, (ocv, seq) in latest.items():
            if ocv is not None:
                out[bid] = (float(ocv), {"type": "inspected", "seq": seq})
    return out


def read(session: Session, refs: Sequence[str], *, features: Sequence[str] | None = None) -> Cells:
    """The batteries' numbers from their ledgers (see the module text); ``features`` names the
    optional ones that must be there (default: those every battery has). Batteries gone to
    recycling or already in a second-life battery are refused (``check_available``)."""
    wanted = list(features) if features is not None else None
    for f in wanted or []:
        if f not in FEATURES:
            raise ValidationFailed(f"unknown feature '{f}' (known: {', '.join(FEATURES)})",
                                   location="features")
    batteries = resolve(session, refs)
    names = Cells(batteries, [str(r) for r in refs], pl.DataFrame(), [])
    check_available(session, names)  # before the numbers: a recycled cell is named as such
    ids = [b.id for b in batteries]
    health, grades = _latest_health(session, ids)
    ocv = _latest_ocv(session, ids)
    n = len(batteries)
    cap = np.empty((n, 3))
    soh = np.empty(n)
    evidence: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for i, b in enumerate(batteries):
        found = health[b.id].get(CAPACITY_PARAMETER)
        if found is None:
            raise ValidationFailed(f"battery {names.name(i)} has no {CAPACITY_PARAMETER} in its "
                                   "health-assessed events: assess its health first",
                                   location="batteries")
        if not b.rated_capacity_ah:
            raise ValidationFailed(f"battery {names.name(i)} has no rated capacity in the registry: "
                                   f"its capacity is {CAPACITY_PARAMETER} x rated capacity",
                                   location="batteries")
        m, ref = found
        cap[i] = (m.value, m.lower, m.upper)
        soh[i] = m.value
        evidence[i].append({**ref, "parameter": CAPACITY_PARAMETER})
    rated = np.array([b.rated_capacity_ah for b in batteries], dtype=float)
    cap = cap * rated[:, None] / 100.0
    bad = np.flatnonzero(cap[:, 0] <= 0)
    if bad.size:
        raise ValidationFailed(f"battery {names.name(int(bad[0]))} has a capacity SOH of "
                               f"{soh[bad[0]]:g} %: nothing to regroup", location="batteries")
    columns: dict[str, Any] = {
        "uid": [b.uid for b in batteries], "capacity": cap[:, 0], "capacity_lower": cap[:, 1],
        "capacity_upper": cap[:, 2], "soh": soh,
    }
    dropped: dict[str, str] = {}
    for feature in OPTIONAL:
        if feature == "ocv":
            got = [ocv.get(b.id) for b in batteries]
        else:
            parameter = HEALTH_FEATURES[feature]
            got = [health[b.id].get(parameter) for b in batteries]
            got = [(g[0].value, {**g[1], "parameter": parameter}) if g else None for g in got]
        missing = [i for i, g in enumerate(got) if g is None]
        if missing:
            if wanted is not None and feature in wanted:
                raise ValidationFailed(f"battery {names.name(missing[0])} has no {feature} recorded "
                                       f"({len(missing)} of {n} batteries lack it)",
                                       location="features")
            if len(missing) < n:
                dropped[feature] = (f"missing for {len(missing)} of {n} batteries (first: "
                                    f"{batteries[missing[0]].uid})")
            continue
        if wanted is not None and feature not in wanted:
            continue
        columns[feature] = np.array([g[0] for g in got], dtype=float)
        for i, g in enumerate(got):
            evidence[i].append(g[1])
    return Cells(batteries, [str(r) for r in refs], pl.DataFrame(columns), evidence, dropped,
                 [grades.get(b.id) for b in batteries])
