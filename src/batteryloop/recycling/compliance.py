"""Recycling efficiency, material recovery and recycled content against the law, with inputs.

Targets live in ``data/targets.toml`` keyed by regulation and the date each applies from. Every
figure this module returns carries its numerator, denominator and formula, so a reader can redo it
by hand (the EU methodology: rate = output fractions counted as recycled / input fractions x 100;
what is burned, landfilled or added as reagent does not count).
"""

from __future__ import annotations

import math
from datetime import date
from functools import lru_cache
from typing import Any

from batteryloop.errors import ValidationFailed
from batteryloop.recycling import _data

FILE = "targets.toml"
RECOVERY_ELEMENTS = ("li", "co", "ni", "cu", "mn")
CONTENT_ELEMENTS = ("co", "li", "ni", "pb")


@lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    return _data.load(FILE)


def targets() -> dict[str, list[dict[str, Any]]]:
    """All targets, as the data file states them (dates as ISO strings)."""
    return {kind: [{k: (v.isoformat() if isinstance(v, date) else v) for k, v in t.items()}
                   for t in _raw()[kind]]
            for kind in ("recycling_efficiency", "material_recovery", "recycled_content")}


def _by_regulation(kind: str, on: date) -> list[dict[str, Any]]:
    """Per regulation: the target in force on ``on`` (latest applies_from <= on) and the next."""
    out: dict[str, dict[str, Any]] = {}
    for t in sorted(_raw()[kind], key=lambda t: t["applies_from"]):
        entry = out.setdefault(t["regulation"], {"regulation": t["regulation"], "in_force": None,
                                                 "next": None})
        if t["applies_from"] <= on:
            entry["in_force"] = t
        elif entry["next"] is None:
            entry["next"] = t
    return list(out.values())


def _pct(num: float, den: float) -> float | None:
    return 100.0 * num / den if den > 0 else None


def _judge(value: float | None, target: dict[str, Any] | None, key: str | None = None) -> dict[str, Any] | None:
    if target is None:
        return None
    minimum = target["min_pct"] if key is None else target["min_pct"].get(key)
    if minimum is None:
        return None
    return {"min_pct": minimum, "applies_from": target["applies_from"].isoformat(),
            "source": target["source"], "verified": target.get("verified", False),
            "met": None if value is None else value >= minimum - 1e-9}


def recycling_efficiency(input_kg: float, recycled_kg: float, on: date) -> dict[str, Any]:
    """EU recycling efficiency of lithium-based batteries for a period ending ``on``."""
    value = _pct(recycled_kg, input_kg)
    return {
        "value_pct": value, "recycled_output_kg": recycled_kg, "input_kg": input_kg,
        "formula": "recycled output fractions / input fractions x 100 (battery-derived mass; "
                   "burned, landfilled and added reagent mass excluded)",
        "targets": [{"regulation": r["regulation"], "in_force": _judge(value, r["in_force"]),
                     "next": _judge(value, r["next"])}
                    for r in _by_regulation("recycling_efficiency", on)],
    }


def material_recovery(input_kg: dict[str, float], recovered_kg: dict[str, float],
                      on: date) -> list[dict[str, Any]]:
    """Recovery per element against every regulation's target for a period ending ``on``."""
    regs = _by_regulation("material_recovery", on)
    rows = []
    for el in RECOVERY_ELEMENTS:
        inp, rec = float(input_kg.get(el, 0.0)), float(recovered_kg.get(el, 0.0))
        value = _pct(rec, inp)
        rows.append({
            "element": el, "input_kg": inp, "recovered_kg": rec, "value_pct": value,
            "formula": f"{el} in recovered products / {el} in input x 100",
            "targets": [{"regulation": r["regulation"], "in_force": _judge(value, r["in_force"], el),
                         "next": _judge(value, r["next"], el)} for r in regs],
        })
    return rows


def recycled_content(bom: dict[str, dict[str, float]], on: date) -> dict[str, Any]:
    """Recycled content of a new battery from its bill of materials.

    ``bom`` maps an element to ``{"total_kg": ..., "recycled_kg": ...}`` (recycled: recovered from
    manufacturing waste or post-consumer waste, as Article 8 counts it).
    """
    rows = []
    for el, spec in bom.items():
        where = f"bom.{el}"
        if not isinstance(spec, dict) or "total_kg" not in spec or "recycled_kg" not in spec:
            raise ValidationFailed("expected {total_kg, recycled_kg}", location=where)
        total, recycled = spec["total_kg"], spec["recycled_kg"]
        for name, v in (("total_kg", total), ("recycled_kg", recycled)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValidationFailed(f"{name} {v!r} is missing or impossible", location=where)
        if recycled > total:
            raise ValidationFailed(f"recycled_kg {recycled} exceeds total_kg {total}", location=where)
        rows.append((el.lower(), float(total), float(recycled)))
    regs = _by_regulation("recycled_content", on)
    return {"as_of": on.isoformat(), "elements": [
        {"element": el, "total_kg": total, "recycled_kg": recycled,
         "value_pct": _pct(recycled, total), "formula": f"recycled {el} / total {el} x 100",
         "targets": [{"regulation": r["regulation"],
                      "in_force": _judge(_pct(recycled, total), r["in_force"], el),
                      "next": _judge(_pct(recycled, total), r["next"], el)} for r in regs]}
        for el, total, recycled in rows]}


def evaluate(input_total_kg: float, recycled_total_kg: float, input_kg: dict[str, float],
             recovered_kg: dict[str, float], on: date) -> dict[str, Any]:
    """The compliance table of one batch or period."""
    return {"as_of": on.isoformat(),
            "recycling_efficiency": recycling_efficiency(input_total_kg, recycled_total_kg, on),
            "material_recovery": material_recovery(input_kg, recovered_kg, on)}
