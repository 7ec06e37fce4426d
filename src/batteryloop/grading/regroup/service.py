"""Regrouping registered cells into second-life packs, from what their ledgers say.

    plan(session, refs, "14S4P")                 what would be built; writes nothing
    commit(session, refs, "14S4P", actor="Lab")  builds it: one new battery per pack, linked by
                                                 lineage to every source, and a `regrouped` event
                                                 on each source and on each pack
    cluster(session, refs, method="kmeans", target_range=0.25, min_size=56)   consistency groups

Each battery's capacity, DC resistance, OCV and self-discharge come from its ledger
(``from_ledger``); packs are assembled by ``assembly.assemble`` (capacity first, then resistance
balance when every cell has a DC resistance), optionally within consistency groups found by
``consistency.cluster`` first (each group at least one pack's worth of cells). A plan names every
cell's pack, series group and parallel position, each pack's usable capacity (its weakest parallel
group), the upper bound of that capacity and the gap to it, and the events it rests on; its
``sha256`` (RFC 8785 JSON) lets ``commit`` refuse to build anything but the plan a person reviewed.

Sources must have been graded to the relation (``repurposed`` by default), like any second-life
source (``grading.service.second_life``). The new battery's rated capacity is the pack's usable
capacity at the lower bounds of its cells' capacities (what it can be promised to deliver), its
nominal voltage S x the cells' (when they agree).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from batteryloop.errors import Conflict, IllegalTransition, ValidationFailed
from batteryloop.grading.regroup import consistency, from_ledger
from batteryloop.grading.regroup.assembly import assemble, evaluate
from batteryloop.grading.service import second_life
from batteryloop.registry import canonical, ledger
from batteryloop.registry.ledger import Draft
from batteryloop.registry.schemas import BatteryIn
from batteryloop.registry.service import Registry

EVENT = "regrouped"
_LAYOUT = re.compile(r"^\s*(\d{1,5})\s*S\s*(\d{1,5})\s*P\s*$", re.IGNORECASE)
Packing = Literal["window", "stratified"]
Leftover = Literal["weakest", "outliers"]
Basis = Literal["value", "lower"]
Relation = Literal["repurposed", "remanufactured"]


@dataclass(frozen=True)
class Layout:
    """``S`` series groups of ``P`` parallel cells."""

    series: int
    parallel: int

    @classmethod
    def parse(cls, text: str | Layout) -> Layout:
        if isinstance(text, Layout):
            return text
        match = _LAYOUT.match(str(text))
        if not match:
            raise ValidationFailed(f"'{text}' is not a layout like 14S4P", location="layout")
        s, p = int(match[1]), int(match[2])
        if s < 1 or p < 1 or s * p < 2:
            raise ValidationFailed(f"'{text}': a pack needs at least two cells", location="layout")
        return cls(s, p)

    @property
    def cells(self) -> int:
        return self.series * self.parallel

    def __str__(self) -> str:
        return f"{self.series}S{self.parallel}P"


class Clustering(BaseModel):
    """Consistency groups to assemble packs within (each at least one pack's worth of cells)."""

    model_config = ConfigDict(extra="forbid")

    method: consistency.Method = "kmeans"
    n_groups: int | None = Field(default=None, ge=1)
    target_range: float | None = Field(
        default=None, ge=0, description="largest capacity range within a group, Ah")
    features: list[str] | None = Field(
        default=None, description=f"default: those every battery has of {', '.join(from_ledger.FEATURES)}")


def _num(x: float) -> float | None:
    """Nine significant digits (a plan's digest must not hang on the last bits of a sum)."""
    x = float(x)
    return float(f"{x:.9g}") if math.isfinite(x) else None


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical.dumps(body)).hexdigest()


def _check_sources(cells: from_ledger.Cells, relation: str) -> None:
    """Each source graded to ``relation`` and not moved since (or already in that state)."""
    for i, b in enumerate(cells.batteries):
        if b.state == relation:
            continue
        decided = cells.grades[i]
        if decided is None:
            raise Conflict(f"battery {cells.name(i)} has not been graded: grade it before regrouping")
        if decided["route"] != relation:
            policy = (decided.get("policy") or {}).get("name")
            rule = (decided.get("decided_by") or {}).get("id")
            raise Conflict(f"battery {cells.name(i)} was graded '{decided['route']}' (policy "
                           f"{policy}, rule {rule}), not '{relation}'")
        if b.state != "graded":
            raise IllegalTransition(f"battery {cells.name(i)} is '{b.state}', not 'graded'")


def _positive_feature(cells: from_ledger.Cells, feature: str) -> np.ndarray | None:
    if feature not in cells.frame.columns:
        return None
    values = cells.frame[feature].to_numpy()
    bad = np.flatnonzero(~(values > 0))
    if bad.size:
        raise ValidationFailed(f"battery {cells.name(int(bad[0]))} has a {feature} of "
                               f"{values[bad[0]]:g}: it must be positive", location="batteries")
    return values


def _too_few(n: int, layout: Layout) -> ValidationFailed:
    return ValidationFailed(f"{n} batteries cannot fill one {layout} pack ({layout.cells} cells)",
                            location="batteries")


def _assign(cells: from_ledger.Cells, layout: Layout, caps: np.ndarray, res: np.ndarray | None,
            clustering: Clustering | None, packing: str, leftover: str, seed: int,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(packs, S, P) cell indices, the cluster label of each pack (-1: none), and each cell's
    cluster label (-1: unassigned or no clustering)."""
    n = caps.size
    labels = np.full(n, -1, dtype=np.int64)
    if clustering is None:
        a = assemble(caps, res, layout.series, layout.parallel, packing=packing,  # type: ignore[arg-type]
                     leftover=leftover, seed=seed)  # type: ignore[arg-type]
        return a.cells, np.full(a.n_packs, -1, dtype=np.int64), labels
    if (clustering.n_groups is None) == (clustering.target_range is None):
        raise ValidationFailed("give exactly one of n_groups and target_range", location="clustering")
    labels = consistency.cluster(
        cells.frame, clustering.features, clustering.method, clustering.n_groups,
        clustering.target_range, min_size=layout.cells, seed=seed)
    blocks, pack_labels = [], []
    for g in np.unique(labels[labels >= 0]):
        idx = np.flatnonzero(labels == g)
        if idx.size < layout.cells:
            continue
        a = assemble(caps[idx], None if res is None else res[idx], layout.series, layout.parallel,
                     packing=packing, leftover=leftover, seed=seed)  # type: ignore[arg-type]
        blocks.append(idx[a.cells])
        pack_labels += [int(g)] * a.n_packs
    if not blocks:
        raise ValidationFailed(f"no consistency group holds the {layout.cells} cells of one {layout} "
                               "pack: widen target_range or ask for fewer groups",
                               location="clustering")
    return np.concatenate(blocks), np.array(pack_labels, dtype=np.int64), labels


def _nominal_voltage(cells: from_ledger.Cells) -> float | None:
    volts = {b.nominal_voltage_v for b in cells.batteries}
    return volts.pop() if len(volts) == 1 and None not in volts else None


def plan(
    session: Session, batteries: Sequence[str], layout: str | Layout, *,
    clustering: Clustering | None = None, packing: Packing = "window", leftover: Leftover = "weakest",
    capacity_basis: Basis = "value", relation: Relation = "repurposed", seed: int = 0,
) -> dict[str, Any]:
    """What ``commit`` would build from these batteries; reads only.

    ``capacity_basis`` picks the capacity the packs are balanced on: the point value (default) or
    the lower bound; the usable capacity at the lower bounds is reported either way."""
    lay = Layout.parse(layout)
    if capacity_basis not in ("value", "lower"):
        raise ValidationFailed(f"unknown capacity basis {capacity_basis!r}", location="capacity_basis")
    if relation not in ("repurposed", "remanufactured"):
        raise ValidationFailed("relation must be 'repurposed' or 'remanufactured'", location="relation")
    if len(batteries) < lay.cells:
        raise _too_few(len(batteries), lay)
    cells = from_ledger.read(session, batteries).by_uid()
    _check_sources(cells, relation)
    caps = cells.frame["capacity" if capacity_basis == "value" else "capacity_lower"].to_numpy()
    bad = np.flatnonzero(~(caps > 0))
    if bad.size:
        raise ValidationFailed(f"battery {cells.name(int(bad[0]))} has a capacity lower bound of 0 Ah",
                               location="batteries")
    res = _positive_feature(cells, "dcir")
    packs, pack_labels, labels = _assign(cells, lay, caps, res, clustering, packing, leftover, seed)
    a = evaluate(packs, caps, res)
    # the same groups at the lower bounds of the cells' capacities: what each pack can promise
    usable_lower = cells.frame["capacity_lower"].to_numpy()[packs].sum(axis=2).min(axis=1)
    volts = _nominal_voltage(cells)
    uids = [b.uid for b in cells.batteries]
    pack_of, group_of = a.pack_of, a.group_of
    position = np.full(caps.size, -1, dtype=np.int64)
    position[packs] = np.arange(lay.parallel)[None, None, :]
    out_packs = []
    for k in range(a.n_packs):
        usable_low = float(usable_lower[k])
        out_packs.append({
            "index": k + 1,
            "cluster": int(pack_labels[k]) if pack_labels[k] >= 0 else None,
            "usable_capacity_ah": _num(a.usable[k]),
            "usable_capacity_lower_ah": _num(usable_low),
            "upper_bound_ah": _num(a.upper_bound[k]),
            "gap_pct": _num(a.gap_pct[k]),
            "resistance_spread_pct": _num(a.resistance_spread_pct[k]),
            "capacity_range_ah": _num(a.capacity_range[k]),
            "nominal_voltage_v": _num(lay.series * volts) if volts else None,
            "energy_lower_wh": _num(usable_low * lay.series * volts) if volts else None,
            "groups": [[uids[i] for i in group] for group in packs[k].tolist()],
        })
    cell_rows = []
    for i, uid in enumerate(uids):
        row: dict[str, Any] = {
            "uid": uid,
            "capacity_ah": _num(cells.frame["capacity"][i]),
            "capacity_lower_ah": _num(cells.frame["capacity_lower"][i]),
            "pack": int(pack_of[i]) + 1 if pack_of[i] >= 0 else None,
            "group": int(group_of[i]) + 1 if group_of[i] >= 0 else None,
            "position": int(position[i]) + 1 if position[i] >= 0 else None,
            "cluster": int(labels[i]) if labels[i] >= 0 else None,
            "rests_on": cells.evidence[i],
        }
        if res is not None:
            row["dcir_ohm"] = _num(res[i])
        cell_rows.append(row)
    body: dict[str, Any] = {
        "layout": str(lay), "series": lay.series, "parallel": lay.parallel,
        "relation": relation, "kind": cells.batteries[0].kind,
        "chemistry": cells.batteries[0].chemistry,
        "method": {
            "assembly": "capacity windows, differencing start and exchange search, then "
                        "resistance balance (grading/regroup/assembly.py)",
            "packing": packing, "leftover": leftover, "capacity_basis": capacity_basis,
            "resistance_balance": res is not None, "seed": seed,
            "clustering": clustering.model_dump() if clustering else None,
        },
        "features": {"used": cells.features, "dropped": cells.dropped},
        "batteries": len(uids),
        "summary": {
            "packs": a.n_packs, "cells_in_packs": a.n_packs * lay.cells,
            "leftover": int((pack_of < 0).sum()),
            "usable_capacity_ah": _num(a.usable.sum()),
            "usable_capacity_lower_ah": _num(usable_lower.sum()),
            "upper_bound_ah": _num(a.upper_bound.sum()),
            "gap_mean_pct": _num(a.gap_pct.mean()), "gap_max_pct": _num(a.gap_pct.max()),
        },
        "packs": out_packs,
        "leftover": [uids[i] for i in np.flatnonzero(pack_of < 0)],
        "cells": cell_rows,
    }
    sha = _digest(body)  # over the plan, not over how the batteries were named
    for row, ref in zip(body["cells"], cells.refs, strict=True):
        row["ref"] = ref
    return {**body, "sha256": sha}


def commit(
    session: Session, batteries: Sequence[str], layout: str | Layout, *,
    clustering: Clustering | None = None, packing: Packing = "window", leftover: Leftover = "weakest",
    capacity_basis: Basis = "value", relation: Relation = "repurposed", seed: int = 0,
    kind: Literal["pack", "module"] = "pack", identifier_prefix: str | None = None,
    plan_sha256: str | None = None, actor: str | None = None,
) -> dict[str, Any]:
    """Carry out the plan: per pack, a new battery linked to all its sources (which move to
    ``relation``), then a `regrouped` event on every source and on the pack. ``plan_sha256``: the
    plan reviewed; if the batteries' records changed since, nothing is written (Conflict).
    ``identifier_prefix`` gives pack ``k`` the second-life identifier ``{prefix}-{k}``."""
    p = plan(session, batteries, layout, clustering=clustering, packing=packing, leftover=leftover,
             capacity_basis=capacity_basis, relation=relation, seed=seed)
    if plan_sha256 is not None and plan_sha256 != p["sha256"]:
        raise Conflict(f"the plan is now {p['sha256']}, not the {plan_sha256} given: the batteries' "
                       "records changed since it was drawn; review the new plan")
    if kind not in ("pack", "module"):
        raise ValidationFailed("kind must be 'pack' or 'module'", location="kind")
    reg = Registry(session)
    actor_id = reg.organisation(actor).id if actor else None
    ids = {b.uid: b.id for b in from_ledger.resolve(session, [c["uid"] for c in p["cells"]])}
    by_uid = {c["uid"]: c for c in p["cells"]}
    built = []
    for pack in p["packs"]:
        members = [uid for group in pack["groups"] for uid in group]
        volts = pack["nominal_voltage_v"]
        rated = pack["usable_capacity_lower_ah"]
        spec = BatteryIn(
            kind=kind, chemistry=p["chemistry"],
            rated_capacity_ah=rated if rated and rated > 0 else None,
            nominal_voltage_v=volts,
            rated_energy_wh=pack["energy_lower_wh"] if rated and rated > 0 and volts else None,
            identifiers={"second_life": f"{identifier_prefix}-{pack['index']}"} if identifier_prefix
            else {},
        )
        child = second_life(session, members, relation, spec, actor=actor)
        common = {
            "plan": p["sha256"], "layout": p["layout"], "method": p["method"],
            "usable_capacity_ah": pack["usable_capacity_ah"],
            "usable_capacity_lower_ah": pack["usable_capacity_lower_ah"],
            "upper_bound_ah": pack["upper_bound_ah"], "gap_pct": pack["gap_pct"],
            "cluster": pack["cluster"],
        }
        drafts = [
            Draft(ids[uid], EVENT, {
                **common, "pack": child["uid"], "pack_index": pack["index"],
                "group": by_uid[uid]["group"], "position": by_uid[uid]["position"],
                "capacity_ah": by_uid[uid]["capacity_ah"],
            }, actor_id)
            for uid in members
        ]
        drafts.append(Draft(reg.battery(child["uid"]).id, EVENT, {
            **common, "sources": len(members), "groups": pack["groups"],
            "resistance_spread_pct": pack["resistance_spread_pct"],
            "capacity_range_ah": pack["capacity_range_ah"], "features": p["features"]["used"],
        }, actor_id))
        appended = ledger.append(session, drafts)
        built.append({"index": pack["index"], "uid": child["uid"], "identifiers": child["identifiers"],
                      "sources": len(members), "rated_capacity_ah": child["rated_capacity_ah"],
                      "nominal_voltage_v": child["nominal_voltage_v"],
                      "usable_capacity_ah": pack["usable_capacity_ah"], "gap_pct": pack["gap_pct"],
                      "event": {"seq": appended[-1].seq, "hash": appended[-1].hash.hex()}})
    return {"plan": p, "built": built}


def cluster(
    session: Session, batteries: Sequence[str], *, method: consistency.Method = "kmeans",
    n_groups: int | None = None, target_range: float | None = None, min_size: int | None = None,
    features: Sequence[str] | None = None, seed: int = 0,
) -> dict[str, Any]:
    """Consistency groups of the batteries from their ledgers' numbers, with the grouping's
    scores (``consistency.score``); reads only. Batteries gone to recycling or already built
    into a second-life battery are refused, as in ``plan``."""
    cells = from_ledger.read(session, batteries, features=features)
    if len(cells.batteries) < 2:
        raise ValidationFailed("clustering needs at least 2 batteries", location="batteries")
    used = list(features) if features is not None else None
    labels = consistency.cluster(cells.frame, used, method, n_groups, target_range, min_size,
                                 seed=seed)
    scores = consistency.score(cells.frame, labels, used)
    caps = cells.frame["capacity"].to_numpy()
    uids = [b.uid for b in cells.batteries]
    groups = []
    for g in np.unique(labels[labels >= 0]):
        idx = np.flatnonzero(labels == g)
        groups.append({"group": int(g), "size": int(idx.size),
                       "capacity_mean_ah": _num(caps[idx].mean()),
                       "capacity_range_ah": _num(np.ptp(caps[idx])),
                       "batteries": [uids[i] for i in idx]})
    return {
        "method": method, "n_groups": n_groups, "target_range": target_range, "min_size": min_size,
        "features": {"used": used or cells.features, "dropped": cells.dropped},
        "batteries": len(uids),
        "score": {k: _num(v) for k, v in scores.items()},
        "groups": groups,
        "unassigned": [uids[i] for i in np.flatnonzero(labels < 0)],
        "cells": [{"uid": uid, "ref": cells.refs[i], "group": int(labels[i]) if labels[i] >= 0 else None}
                  for i, uid in enumerate(uids)],
    }
