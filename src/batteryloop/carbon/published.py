"""Published footprints (``data/published.toml``) and how a figure compares with them."""

from __future__ import annotations

from typing import Any

from batteryloop.carbon import _data
from batteryloop.errors import NotFound

FILE = "published.toml"


def studies() -> dict[str, dict[str, Any]]:
    return {k: dict(v) for k, v in _data.load(FILE)["study"].items()}


def study(key: str) -> dict[str, Any]:
    try:
        return studies()[key]
    except KeyError:
        raise NotFound(f"no published study '{key}' (known: {', '.join(studies())})") from None


def claim_defaults() -> dict[str, Any]:
    return dict(_data.load(FILE)["claim"])


def family(chemistry: str) -> str:
    """'NMC811' -> 'NMC' (NCA and LFP stay as they are)."""
    c = chemistry.upper()
    return "NMC" if c.startswith(("NMC", "NCM")) else c


def range_for(key: str, chemistry: str | None) -> tuple[float, float]:
    """A study's range for a chemistry: its per-chemistry value(s) when it gives them, else its
    overall range."""
    s = study(key)
    values = s.get("values", {})
    if chemistry:
        for name in (chemistry.upper(), family(chemistry)):
            v = values.get(name)
            if isinstance(v, list):
                return float(v[0]), float(v[1])
            if isinstance(v, (int, float)):
                return float(v), float(v)
    return float(s["low"]), float(s["high"])


def applies(s: dict[str, Any], chemistry: str) -> bool:
    chem = [c.upper() for c in s["chemistry"]]
    return "ANY" in chem or chemistry.upper() in chem or family(chemistry) in chem


def compare(chemistry: str, *, pack: float, cell: float) -> list[dict[str, Any]]:
    """Each applicable study's range beside this engine's cradle-to-gate figure of the same scope."""
    out = []
    for key, s in studies().items():
        if not applies(s, chemistry):
            continue
        low, high = range_for(key, chemistry)
        value = pack if s["scope"] == "pack" else cell
        out.append({"study": key, "label": s["label"], "scope": s["scope"], "grid": s.get("grid"),
                    "low": low, "high": high, "value": value, "inside": low <= value <= high,
                    "verified": bool(s.get("verified", False)), "source": s["source"]})
    return out
