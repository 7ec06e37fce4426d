"""The circularity values that come from the recycling stage: how the battery was dismantled and,
once its recycling batch has closed, what was recovered from it.

Both follow ledger events (``dismantled``, ``recycled``): the events say when and by whom, the
recycling stage's records (``recycling.service.battery_summary`` and the batch's frozen figures)
say what. The recovered figures are the battery's share of the batch's products (the ``recycled``
event carries the same kilograms), the batch's recycling efficiency, and the battery's part of the
batch's carbon figures (``carbon.batch.battery_share``). The batch's figures are frozen before the
passport is archived (``recycling.service.close``), so the archive keeps them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from batteryloop.carbon.batch import battery_share
from batteryloop.recycling import service as recycling
from batteryloop.recycling.dismantling import EVENT as DISMANTLED_EVENT
from batteryloop.recycling.service import EVENT as RECYCLED_EVENT
from batteryloop.store.models import Battery

EVENTS = (DISMANTLED_EVENT, RECYCLED_EVENT)
Seen = tuple[str, dict[str, str] | None]  # (occurred_at, actor {uid, name})


def values(session: Session, battery: Battery,
           seen: dict[str, Seen]) -> dict[str, tuple[Any, Seen]]:
    """``{attribute id: (value, (when, by))}`` from the recycling records, given the last
    ``dismantled`` and ``recycled`` events of the battery's ledger (``seen``, by event type)."""
    if DISMANTLED_EVENT not in seen:
        return {}
    summary = recycling.battery_summary(session, battery.uid)
    d = summary["dismantling"]
    record = {
        "dismantled_at": d["dismantled_at"], "dismantler": d["dismantler"],
        "weighed_mass_kg": d["weighed_mass_kg"], "chemistry": d["chemistry"],
        "modules": d["modules"], "cells": d["cells"],
        "fractions": [{k: f[k] for k in ("fraction", "material", "mass_kg") if f[k] is not None}
                      for f in d["fractions"]],
        "fractions_kg": d["fractions_kg"], "unaccounted_kg": d["unaccounted_kg"],
        "ledger_event_seq": d["event_seq"], "notes": d["notes"],
    }
    out: dict[str, tuple[Any, Seen]] = {
        "circularity.dismantling_record": ({k: v for k, v in record.items() if v is not None},
                                           seen[DISMANTLED_EVENT]),
    }
    batch = summary["batch"]
    closed = bool(batch) and batch.get("status") == "closed" and "recovered_kg" in batch
    if RECYCLED_EVENT in seen and closed:
        figures = recycling.evaluate(session, batch["ref"])
        recovered = {
            "batch": batch["ref"], "route": batch["route"],
            "processed_on": figures["batch"].get("processed_on"),
            "recycler": figures["batch"].get("recycler"),
            "outputs_basis": figures["outputs"]["basis"],
            "recovered_kg": batch["recovered_kg"],
            "recovered_share_pct": batch["recovered_share_pct"],
            "batch_recycling_efficiency_pct": batch["recycling_efficiency_pct"],
            "carbon": battery_share(figures, battery.uid),
            "certificate": f"GET /api/v1/recycling/batches/{batch['ref']}/certificate",
        }
        out["circularity.recovered_materials"] = (
            {k: v for k, v in recovered.items() if v is not None}, seen[RECYCLED_EVENT])
    return out
