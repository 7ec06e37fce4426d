"""Recycling batches: dismantled batteries fed to a route, their outputs, the closed balance.

    dismantle (``dismantled``) -> batch create (route as it will run) -> outputs (measured, or the
    route's model) -> close: the balance must close; then compliance, economics and carbon are
    frozen into the batch, and each battery gets ``recycled`` (its share of what was recovered)
    and its status moves to ``recycled`` (the passport ceases).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import orjson
import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from batteryloop.errors import Conflict, NotFound, ValidationFailed
from batteryloop.recycling import compliance, economics, fractions, mass_balance, routes
from batteryloop.recycling.dismantling import fraction_table
from batteryloop.registry.service import Registry
from batteryloop.store.models import Battery, Dismantling, Organisation, RecyclingBatch, RecyclingOutput

EVENT = "recycled"
STATE = "recycled"
CarbonProvider = Callable[[dict[str, Any]], dict[str, Any]]
_carbon_provider: CarbonProvider | None = None


RecycledHook = Callable[[Session, str, str | None], Any]
_recycled_hook: RecycledHook | None = None


def set_recycled_hook(hook: RecycledHook | None) -> None:
    """What moves a battery to ``recycled`` when its batch closes (session, uid, actor uid).

    Default: ``Registry.change_status``. ``batteryloop.wiring.install`` sets the passport's
    (``passport.service.recycled_in_batch``), which also archives the ceased passport; it runs
    after the batch's figures are frozen."""
    global _recycled_hook
    _recycled_hook = hook


def set_carbon_provider(provider: CarbonProvider | None) -> None:
    """Let a higher floor (carbon) fill the batch's ``carbon`` section; recycling never imports it."""
    global _carbon_provider
    _carbon_provider = provider


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    ref: str = Field(min_length=1, max_length=64, description="the recycler's batch number")
    route: str = Field(description=", ".join(routes.names()))
    batteries: list[str] = Field(min_length=1, description="dismantled batteries (any identifier)")
    overrides: dict[str, float] = Field(default_factory=dict,
                                        description="e.g. {'li.recovered': 0.95, 'energy.electricity': 3}")
    processed_on: date | None = None
    actor: str | None = Field(default=None, description="the recycler (uid or name)")


class OutputIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    stream: str = Field(min_length=1, max_length=200)
    kind: str = Field(description="product | residue | loss")
    constituent: str
    mass_kg: Any


def _batch(session: Session, ref: str) -> RecyclingBatch:
    row = session.scalar(select(RecyclingBatch).where(RecyclingBatch.ref == ref))
    if row is None:
        raise NotFound(f"no recycling batch '{ref}'")
    return row


def create(session: Session, data: BatchIn) -> dict[str, Any]:
    reg = Registry(session)
    if session.scalar(select(RecyclingBatch.id).where(RecyclingBatch.ref == data.ref)):
        raise Conflict(f"recycling batch '{data.ref}' exists")
    route = routes.load(data.route, data.overrides)
    recycler = reg.organisation(data.actor) if data.actor else None
    rows: list[Dismantling] = []
    for n, ref in enumerate(dict.fromkeys(data.batteries)):
        battery = reg.battery(ref)
        d = session.scalar(select(Dismantling).where(Dismantling.battery_id == battery.id))
        if d is None:
            raise ValidationFailed(f"battery '{ref}' has not been dismantled", location=f"batteries[{n}]")
        if d.batch_id is not None:
            other = session.get(RecyclingBatch, d.batch_id)
            raise Conflict(f"battery '{ref}' is already in batch '{other.ref if other else d.batch_id}'")
        rows.append(d)
    batch = RecyclingBatch(
        ref=data.ref, route=route.name, route_spec=orjson.dumps(route.as_dict()).decode(),
        recycler_id=recycler.id if recycler else None, processed_on=data.processed_on,
        status="open", outputs_basis=None, result=None, created_at=datetime.now(UTC),
    )
    session.add(batch)
    session.flush()
    for d in rows:
        d.batch_id = batch.id
    session.flush()
    return show(session, data.ref)


def set_outputs(session: Session, ref: str, outputs: list[OutputIn] | pl.DataFrame) -> dict[str, Any]:
    """Replace the batch's measured outputs (all rows checked before any is written)."""
    batch = _batch(session, ref)
    if batch.status != "open":
        raise Conflict(f"batch '{ref}' is closed")
    if isinstance(outputs, pl.DataFrame):
        table = outputs
    else:
        rows = []
        for n, o in enumerate(outputs):
            try:
                mass = float(o.mass_kg) if o.mass_kg is not None and o.mass_kg != "" else None
            except (TypeError, ValueError, OverflowError):
                raise ValidationFailed(f"{o.mass_kg!r} is not a number",
                                       location=f"outputs row {n + 1}") from None
            rows.append({"stream": o.stream, "kind": o.kind, "constituent": o.constituent,
                         "mass_kg": mass})
        table = pl.DataFrame(rows, schema=mass_balance.OUTPUT_SCHEMA)
    if table.height == 0:
        raise ValidationFailed("no output rows", location="outputs")
    table = mass_balance.check_outputs(table)
    session.execute(delete(RecyclingOutput).where(RecyclingOutput.batch_id == batch.id))
    session.add_all(RecyclingOutput(batch_id=batch.id, **r) for r in table.to_dicts())
    batch.outputs_basis = "measured"
    session.flush()
    return show(session, ref)


def _dismantlings(session: Session, batch: RecyclingBatch) -> list[Dismantling]:
    return list(session.scalars(select(Dismantling).where(Dismantling.batch_id == batch.id)
                                .order_by(Dismantling.id)))


def _sum_by(table: pl.DataFrame, key: str) -> dict[str, float]:
    if table.height == 0:
        return {}
    return dict(table.group_by(key).agg(pl.col("mass_kg").sum()).iter_rows())


def compute(session: Session, batch: RecyclingBatch, *, carbon: CarbonProvider | None = None,
            price_table: dict[str, Any] | None = None) -> dict[str, Any]:
    """Balance, compliance, economics (and carbon, if a provider is set) of a batch, from its
    records; nothing is written."""
    route = routes.from_dict(orjson.loads(batch.route_spec))
    ds = _dismantlings(session, batch)
    if not ds:
        raise ValidationFailed(f"batch '{batch.ref}' has no dismantled batteries", location="batteries")
    ft = fraction_table(session, [d.id for d in ds])
    chem_of = {r[0]: r[1] for r in ft.select("battery", "chemistry").unique().iter_rows()}
    ct = fractions.constituents(ft)
    totals = ct.group_by("constituent").agg(pl.col("mass_kg").sum())
    measured = list(session.scalars(select(RecyclingOutput).where(RecyclingOutput.batch_id == batch.id)
                                    .order_by(RecyclingOutput.id)))
    if measured:
        outputs = pl.DataFrame([{"stream": o.stream, "kind": o.kind, "constituent": o.constituent,
                                 "mass_kg": o.mass_kg} for o in measured],
                               schema=mass_balance.OUTPUT_SCHEMA)
        basis = "measured"
    else:
        outputs = route.modelled_outputs(totals)
        basis = "modelled"
    bal = mass_balance.balance(totals, outputs)
    input_kg = _sum_by(totals, "constituent")
    products = _sum_by(outputs.filter(pl.col("kind") == "product"), "constituent")
    on = batch.processed_on or datetime.now(UTC).date()
    table = price_table or economics.prices()
    cell_kinds = [k for k in fractions.kinds() if fractions.is_cell_derived(k)]
    cell_kg = float(ft.filter(pl.col("fraction").is_in(cell_kinds))["mass_kg"].sum())
    cathode_in = (ct.filter(pl.col("constituent").is_in(economics.CATHODE_CONSTITUENTS))
                  .with_columns(pl.col("battery").replace_strict(chem_of).alias("chemistry")))
    cathode_total = cathode_in["mass_kg"].sum() or 0.0
    cathode_products = math.fsum(products.get(c, 0.0) for c in economics.CATHODE_CONSTITUENTS)
    cathode_kg = {ch: cathode_products * kg / cathode_total
                  for ch, kg in _sum_by(cathode_in, "chemistry").items()} if cathode_total else {}
    econ = economics.batch(table, route, products_kg=products, input_kg=bal.total["input_kg"],
                           cell_input_kg=cell_kg, cathode_kg=cathode_kg)
    per_battery = (ct.join(totals.rename({"mass_kg": "batch_kg"}), on="constituent")
                   .with_columns((pl.col("mass_kg") / pl.col("batch_kg")).alias("share"))
                   .with_columns(pl.col("constituent").replace_strict(products, default=0.0,
                                                                      return_dtype=pl.Float64)
                                 .mul(pl.col("share")).alias("recovered_kg")))
    batteries = []
    for d in ds:
        b = session.get(Battery, d.battery_id)
        mine = per_battery.filter(pl.col("battery") == b.uid)
        batteries.append({
            "uid": b.uid, "code": b.code, "chemistry": d.chemistry,
            "weighed_mass_kg": d.weighed_mass_kg, "dismantling_event_seq": d.event_seq,
            "input_kg": dict(mine.select("constituent", "mass_kg").iter_rows()),
            "recovered_kg": {k: v for k, v in mine.select("constituent", "recovered_kg").iter_rows() if v > 0},
        })
    recycler = session.get(Organisation, batch.recycler_id) if batch.recycler_id else None
    result: dict[str, Any] = {
        "batch": {"ref": batch.ref, "route": batch.route, "status": batch.status,
                  "processed_on": batch.processed_on.isoformat() if batch.processed_on else None,
                  "recycler": {"uid": recycler.uid, "name": recycler.name} if recycler else None},
        "route": route.as_dict(),
        "inputs": {"fractions": ft.to_dicts(), "cell_derived_kg": cell_kg,
                   "total_kg": bal.total["input_kg"], "constituents_kg": input_kg},
        "outputs": {"basis": basis, "streams": outputs.to_dicts()},
        "mass_balance": bal.as_dict(),
        "compliance": compliance.evaluate(bal.total["input_kg"], math.fsum(products.values()),
                                          input_kg, products, on),
        "economics": econ,
        "consumption": {
            "reagents_kg": {k: v * cell_kg for k, v in route.reagents_kg_per_kg.items()},
            "energy_mj": {k: v * cell_kg for k, v in route.energy_mj_per_kg.items()},
            "water_gal": route.water_gal_per_kg * cell_kg,
            "basis": f"per kg of cell-derived input x {cell_kg:.3f} kg ({route.source})",
        },
        "batteries": batteries,
        "sources": {"composition": "recycling/data/composition.toml",
                    "fractions": "recycling/data/fractions.toml",
                    "targets": "recycling/data/targets.toml", "prices": table["_label"]},
    }
    provider = carbon or _carbon_provider
    result["carbon"] = provider(result) if provider else None
    return result


def show(session: Session, ref: str) -> dict[str, Any]:
    batch = _batch(session, ref)
    if batch.status == "closed" and batch.result:
        return orjson.loads(batch.result)
    return {"batch": {"ref": batch.ref, "route": batch.route, "status": batch.status,
                      "processed_on": batch.processed_on.isoformat() if batch.processed_on else None,
                      "outputs_basis": batch.outputs_basis},
            "batteries": [session.get(Battery, d.battery_id).uid for d in _dismantlings(session, batch)]}


def evaluate(session: Session, ref: str, *, carbon: CarbonProvider | None = None) -> dict[str, Any]:
    """The batch's figures now (closed: as frozen)."""
    batch = _batch(session, ref)
    if batch.status == "closed" and batch.result:
        return orjson.loads(batch.result)
    return compute(session, batch, carbon=carbon)


def close(session: Session, ref: str, *, actor: str | None = None,
          carbon: CarbonProvider | None = None) -> dict[str, Any]:
    """Close a batch whose balance closes: freeze its figures, append ``recycled`` to each battery
    and move it to ``recycled``. A balance that does not close is refused with its flags."""
    batch = _batch(session, ref)
    if batch.status != "open":
        raise Conflict(f"batch '{ref}' is already closed")
    result = compute(session, batch, carbon=carbon)
    if not result["mass_balance"]["closed"]:
        raise Conflict(f"batch '{ref}': the mass balance does not close: "
                       + "; ".join(result["mass_balance"]["flags"]),
                       details={"flags": result["mass_balance"]["flags"]})
    reg = Registry(session)
    who = reg.organisation(actor).uid if actor else None
    # frozen first, in the same unit of work: what the hook archives (the passport) already reads
    # the closed batch's figures; a failure below rolls all of it back
    batch.status = "closed"
    batch.closed_at = datetime.now(UTC)
    result["batch"]["status"] = "closed"
    result["batch"]["closed_at"] = batch.closed_at.isoformat()
    batch.result = orjson.dumps(result).decode()
    session.flush()
    for b in result["batteries"]:
        payload = {"batch": batch.ref, "route": batch.route,
                   "outputs_basis": result["outputs"]["basis"],
                   "recovered_kg": {k: round(v, 6) for k, v in b["recovered_kg"].items()}}
        reg.append(b["uid"], EVENT, payload, actor=who)
        if _recycled_hook is not None:
            _recycled_hook(session, b["uid"], who)
        else:
            reg.change_status(b["uid"], STATE, actor=who, reason=f"recycled in batch {batch.ref}")
    session.flush()
    return result


def period(session: Session, start: date, end: date) -> dict[str, Any]:
    """Compliance over the closed batches processed in [start, end], judged at ``end``."""
    if end < start:
        raise ValidationFailed("the period ends before it starts", location="end")
    rows = list(session.scalars(select(RecyclingBatch).where(
        RecyclingBatch.status == "closed", RecyclingBatch.processed_on >= start,
        RecyclingBatch.processed_on <= end).order_by(RecyclingBatch.processed_on, RecyclingBatch.id)))
    input_kg: dict[str, float] = {}
    products: dict[str, float] = {}
    batches = []
    for b in rows:
        res = orjson.loads(b.result)
        for r in res["mass_balance"]["constituents"]:
            input_kg[r["constituent"]] = input_kg.get(r["constituent"], 0.0) + r["input_kg"]
            products[r["constituent"]] = products.get(r["constituent"], 0.0) + r["product"]
        batches.append({"ref": b.ref, "route": b.route, "processed_on": b.processed_on.isoformat(),
                        "input_kg": res["mass_balance"]["total"]["input_kg"],
                        "recycled_kg": res["compliance"]["recycling_efficiency"]["recycled_output_kg"]})
    total_in = math.fsum(input_kg.values())
    return {"period": {"start": start.isoformat(), "end": end.isoformat()}, "batches": batches,
            "compliance": compliance.evaluate(total_in, math.fsum(products.values()), input_kg,
                                              products, end)}


def battery_summary(session: Session, ref: str) -> dict[str, Any]:
    """What recycling knows of one battery, for the passport's circularity section: its
    dismantling and, once its batch has closed, what was recovered from it."""
    from batteryloop.recycling import dismantling

    d = dismantling.for_battery(session, ref)
    out: dict[str, Any] = {"dismantling": dismantling.as_dict(session, d), "batch": None}
    if d.batch_id is not None:
        batch = session.get(RecyclingBatch, d.batch_id)
        entry: dict[str, Any] = {"ref": batch.ref, "route": batch.route, "status": batch.status}
        if batch.result:
            res = orjson.loads(batch.result)
            uid = out["dismantling"]["battery"]["uid"]
            mine = next((b for b in res["batteries"] if b["uid"] == uid), None)
            if mine:
                entry["recovered_kg"] = mine["recovered_kg"]
                entry["recovered_share_pct"] = {
                    k: 100 * v / mine["input_kg"][k] for k, v in mine["recovered_kg"].items()
                    if mine["input_kg"].get(k)}
            entry["recycling_efficiency_pct"] = res["compliance"]["recycling_efficiency"]["value_pct"]
            entry["carbon"] = res.get("carbon")
        out["batch"] = entry
    return out


def modelled_pack(chemistry: str, rated_energy_kwh: float, *, route: str = "hydrometallurgical",
                  price_table: dict[str, Any] | None = None) -> dict[str, Any]:
    """Recycle-now figures for a pack known only by chemistry and energy (no records): cells from
    the reference cell's kg per kWh, pack parts from the chemistry's pack breakdown, the route's
    modelled outputs and the economics."""
    from batteryloop.recycling import composition

    chem = composition.canonical(chemistry)
    shares = composition.pack_breakdown(chem)
    cells_kg = rated_energy_kwh * composition.cell_mass_per_kwh(chem)
    pack_kg = cells_kg / shares["cells"]
    names = {"modules": "module_hardware", "housing": "housing", "bms": "bms", "wiring": "wiring",
             "thermal": "thermal"}
    kinds = fractions.kinds()
    rows = [{"battery": "pack", "chemistry": chem, "fraction": "cells", "material": None,
             "mass_kg": cells_kg}]
    rows += [{"battery": "pack", "chemistry": chem, "fraction": f, "material": kinds[f]["default_material"],
              "mass_kg": pack_kg * shares[part]} for part, f in names.items() if shares[part] > 0]
    ft = pl.DataFrame(rows, schema={"battery": pl.String, "chemistry": pl.String, "fraction": pl.String,
                                    "material": pl.String, "mass_kg": pl.Float64})
    r = routes.load(route)
    totals = fractions.constituents(ft).group_by("constituent").agg(pl.col("mass_kg").sum())
    outputs = r.modelled_outputs(totals)
    products = _sum_by(outputs.filter(pl.col("kind") == "product"), "constituent")
    cathode = math.fsum(products.get(c, 0.0) for c in economics.CATHODE_CONSTITUENTS)
    econ = economics.batch(price_table or economics.prices(), r, products_kg=products,
                           input_kg=pack_kg, cell_input_kg=cells_kg, cathode_kg={chem: cathode})
    return {"chemistry": chem, "rated_energy_kwh": rated_energy_kwh, "pack_kg": pack_kg,
            "cells_kg": cells_kg, "route": r.name, "products_kg": products, "economics": econ}


def reuse_vs_recycle(chemistry: str, rated_energy_kwh: float, soh_pct: float, *,
                     route: str = "hydrometallurgical",
                     price_table: dict[str, Any] | None = None) -> dict[str, Any]:
    """Reuse-then-recycle against recycle-now for one battery of this chemistry, energy and SOH."""
    table = price_table or economics.prices()
    if isinstance(rated_energy_kwh, bool) or not isinstance(rated_energy_kwh, (int, float)) \
            or not math.isfinite(rated_energy_kwh) or rated_energy_kwh <= 0:
        raise ValidationFailed(f"{rated_energy_kwh!r} is impossible", location="rated_energy_kwh")
    now = modelled_pack(chemistry, rated_energy_kwh, route=route, price_table=table)
    out = economics.reuse_vs_recycle(table, rated_energy_kwh=rated_energy_kwh, soh_pct=soh_pct,
                                     recycle_now_margin_usd=now["economics"]["margin_usd"])
    out["chemistry"] = now["chemistry"]
    out["recycle_now"]["route"] = route
    out["recycle_now"]["pack_kg"] = now["pack_kg"]
    return out
