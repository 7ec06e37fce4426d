"""Health of a battery in the registry: from its stored tests, or from a pulse test and a trained
model, to a `health-assessed` ledger event.

The event carries every parameter with its interval, the method, the test file's hash (or the
model's version and card hash), so the grade that follows can name exactly what it rested on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from batteryloop.cycling import storage
from batteryloop.cycling.summary import cycles, steps
from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.health import soh
from batteryloop.health.pulse_features import chemistry_family
from batteryloop.registry.service import Registry
from batteryloop.store.models import CyclerTest

EVENT = "health-assessed"
PULSE_METHOD = "pulse-model"


def latest_test(session: Session, battery_id: int) -> CyclerTest:
    row = session.scalar(
        select(CyclerTest).where(CyclerTest.battery_id == battery_id).order_by(CyclerTest.id.desc())
    )
    if row is None:
        raise NotFound("the battery has no stored test: ingest a tester file for it first")
    return row


def assess_from_test(
    session: Session, ref: str, *, test: str | None = None, actor: str | None = None,
    initial_r_ohm: float | None = None, root: Path | None = None,
) -> dict[str, Any]:
    """Measure SOH parameters from a stored test of the battery and record them in its ledger."""
    reg = Registry(session)
    battery = reg.battery(ref)
    if not battery.rated_capacity_ah:
        raise ValidationFailed(
            "the battery has no rated capacity in the registry: SOH needs it", location="rated_capacity_ah"
        )
    row = storage.find(session, test) if test else latest_test(session, battery.id)
    if row.battery_id != battery.id:
        raise ValidationFailed(f"test {row.sha256[:12]} belongs to another battery", location="test")
    df, _ = storage.load(session, row.sha256, root)
    values = soh.from_steps(
        steps(df), rated_ah=battery.rated_capacity_ah, certified_wh=battery.rated_energy_wh,
        when=row.created_at, source=row.sha256,
    )
    if initial_r_ohm:
        r = cycles(df)["dcir_ohm"].drop_nans().drop_nulls()
        if r.len():
            values.append(soh.resistance_increase(float(r.tail(3).mean()), initial_r_ohm,
                                                  when=row.created_at, source=row.sha256))
    payload = {
        "method": "measured", "test": row.sha256, "tester": row.tester,
        "values": [v.as_dict() for v in values],
    }
    appended = reg.append(battery.uid, EVENT, payload, actor=actor)
    return {"battery": battery.uid, "seq": appended.seq, **payload}


def latest_assessment(session: Session, ref: str) -> dict[str, Any] | None:
    """The newest `health-assessed` event of a battery, as recorded."""
    for event in reversed(Registry(session).history(ref)):
        if event["type"] == EVENT:
            return {"seq": event["seq"], "occurred_at": event["occurred_at"], **event["payload"]}
    return None


def assess_pulse(
    session: Session, ref: str, pulse: str | Path | bytes | pl.DataFrame, *,
    artefact: Any = None, actor: str | None = None, when: datetime | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """SOH of a battery from a pulse test, recorded as a `health-assessed` event.

    ``pulse``: a pulse-test CSV (path or uploaded bytes; columns in
    :mod:`batteryloop.health.pulse_input`) or a polars frame of the same columns; chemistry and
    rated capacity come from the battery's record where the file does not give them (and must
    agree with it where it does). ``artefact``: a saved pulse-SOH model (None = the newest under
    the data directory, a version, an artefact folder, or a loaded ``(model, card)`` pair); it
    must exist: nothing is trained here. The event's values: ``capacity_soh`` (%, the model's
    estimate and interval) and ``dc_resistance`` (ohm, measured by the pulses themselves, no
    model). Several tests of the battery (e.g. at several SOCs) give
    one value (:func:`batteryloop.health.model_store.combine`); each test's estimate is kept in the
    event. An estimate outside the model's domain is recorded with its reasons and its widened
    interval, never as a plain value.
    """
    from batteryloop.health import model_store  # sklearn and friends: only when a model is used
    from batteryloop.health import pulse_model as pm
    from batteryloop.health.pulse_input import read_pulse_file

    reg = Registry(session)
    battery = reg.battery(ref)
    model, card = model_store.load_pulse(artefact)
    rated = battery.rated_capacity_ah
    chem = battery.chemistry
    table = read_pulse_file(pulse, chemistry=chem, rated_ah=rated, name=name)
    _agree_with_record(table, battery.uid, chem, rated)
    est = pm.predict_tests(model, voltages=table.voltages, soc=table.soc,
                           chemistry=table.chemistry, rated_ah=table.rated_ah,
                           width_s=table.width_s, currents=table.currents)
    bounds = est.select("value", "lower", "upper").to_numpy()
    if not np.isfinite(bounds).all():
        row = int(table.rows[int(np.argmax(~np.isfinite(bounds).all(axis=1)))])
        raise ValidationFailed(f"model {card.name} {card.version} gives no finite interval for "
                               "this test (too few training cells of its type)",
                               location=f"{table.source} row {row}")
    combined = model_store.combine(est)
    measured = (when or datetime.now(UTC)).isoformat(timespec="seconds")
    unit = soh.parameters()["parameters"]["capacity_soh"]["unit"]
    value = soh.HealthValue(
        parameter="capacity_soh", value=_pct(combined["value"]), lower=_pct(combined["lower"]),
        upper=_pct(combined["upper"]), unit=unit, method=PULSE_METHOD, measured_at=measured,
        source=f"{card.name} {card.version}")
    resistance = soh.dc_resistance(
        _pulse_resistance_ohm(table), when=when, source=table.sha256 or table.source,
        method="pulse test: voltage step at the onset of the +-0.5 C and +-1 C pulses / current, "
               "median over pulses and tests")
    payload = {
        "method": PULSE_METHOD,
        "model": {**model_store.model_ref(card), "card_sha256": card_sha256(card)},
        "test": {"file": table.source, "sha256": table.sha256, "tests": len(table),
                 "soc": [float(v) for v in table.soc]},
        "coverage": float(card.params.get("coverage", model.coverage)),
        "in_domain": combined["in_domain"],
        "ood_reasons": combined["reasons"],
        "values": [value.as_dict(), resistance.as_dict()],
        "estimates": [
            {"row": int(r), "soc": float(s), "cell_type": t, "value": _pct(v), "lower": _pct(lo),
             "upper": _pct(hi), "in_domain": bool(ok), "reasons": list(why)}
            for r, s, t, v, lo, hi, ok, why in zip(
                table.rows, table.soc, est["cell_type"], est["value"], est["lower"],
                est["upper"], est["in_domain"], est["reasons"], strict=True)],
    }
    appended = reg.append(battery.uid, EVENT, payload, actor=actor)
    return {"battery": battery.uid, "seq": appended.seq, "hash": appended.hash.hex(), **payload}


def _pulse_resistance_ohm(table: Any) -> float:
    """DC resistance measured by the pulse test itself (no model): the instant voltage step when
    a pulse starts over its current, r_ohm_k (mOhm.Ah) / rated capacity (Ah), for the four
    pulses of +-0.5 and +-1 C; the median over them and over the tests (SOCs)."""
    from batteryloop.health.pulse_features import FEATURES, feature_matrix

    x = feature_matrix(table.voltages, table.currents, table.width_s)
    cols = [FEATURES.index(f"r_ohm_{k}") for k in range(1, 5)]
    per_test = x[:, cols] / table.rated_ah[:, None] / 1000  # mOhm.Ah / Ah -> ohm
    return float(np.median(per_test))


def _pct(fraction: float) -> float:
    """SOH as a fraction -> % (the unit of capacity_soh), rounded to what a pulse test can tell."""
    return round(100 * float(fraction), 4)


def card_sha256(card: Any) -> str:
    """SHA-256 of a model card as saved (``card.json``: sorted keys, two-space indent)."""
    text = json.dumps(asdict(card), indent=2, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _agree_with_record(table: Any, uid: str, chemistry: str | None, rated: float | None) -> None:
    """A file that names another chemistry or rating than the battery's record is refused: the
    test was likely of another battery."""
    if chemistry and "chemistry" in table.given:
        family = chemistry_family(chemistry)
        wrong = np.flatnonzero(table.chemistry != family)
        if wrong.size:
            i = int(wrong[0])
            raise ValidationFailed(
                f"the file says chemistry {table.chemistry[i]}, the registry {chemistry} for "
                f"battery {uid}", location=f"{table.source} row {int(table.rows[i])}, chemistry")
    if rated and "rated_ah" in table.given:
        from batteryloop.health.pulse_features import config

        tolerance = float(config()["input"]["registry_rated_tolerance"])
        off = np.abs(table.rated_ah - rated) > tolerance * rated
        if off.any():
            i = int(np.argmax(off))
            raise ValidationFailed(
                f"the file says rated capacity {table.rated_ah[i]:g} Ah, the registry {rated:g} "
                f"Ah for battery {uid}", location=f"{table.source} row {int(table.rows[i])}, "
                "rated_ah")
