"""Figures for the pages as plain plotly.js JSON (``{"data": [...], "layout": {...}}``), drawn in
the browser by the plotly.js bundle of the installed plotly package (``web/assets``).

Why plain JSON and not plotly's Python figure objects: the page needs only the traces, and
building them from numpy columns is quick; plotly.js does the drawing and the interaction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import polars as pl

_LAYOUT = {"margin": {"l": 60, "r": 20, "t": 70, "b": 50}, "hovermode": "closest",
           "paper_bgcolor": "#fff", "plot_bgcolor": "#fff", "height": 340,
           "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"}}


def _title(text: str) -> dict[str, Any]:
    """A figure's title at the very top, above the legend row."""
    return {"text": text, "y": 0.97, "yanchor": "top"}


def _axis(title: str) -> dict[str, Any]:
    return {"title": {"text": title}, "gridcolor": "#ececec", "zeroline": False}


def _finite(x: np.ndarray) -> list[float | None]:
    """A column for JSON: NaN and infinity (nothing measured) become gaps."""
    x = np.asarray(x, dtype=float)
    return [float(v) if np.isfinite(v) else None for v in x]


def as_json(fig: dict[str, Any]) -> str:
    """JSON safe inside a <script> element (no '</' can close it early)."""
    return orjson.dumps(fig, option=orjson.OPT_SERIALIZE_NUMPY).decode().replace("</", "<\\/")


def capacity_fade(summary: pl.DataFrame, rated_ah: float | None) -> dict[str, Any]:
    """Discharge capacity of each cycle (and its share of the rating, when there is one)."""
    cycle = summary["cycle_count"].to_numpy()
    q = summary["discharge_capacity_ah"].to_numpy()
    traces: list[dict[str, Any]] = [{"type": "scatter", "mode": "lines+markers", "name":
                                     "discharge capacity", "x": cycle.tolist(), "y": _finite(q),
                                     "marker": {"size": 4}}]
    if rated_ah:
        traces.append({"type": "scatter", "mode": "lines", "name": f"rated {rated_ah:g} Ah",
                       "x": [float(cycle.min()), float(cycle.max())] if cycle.size else [],
                       "y": [rated_ah, rated_ah], "line": {"dash": "dot", "color": "#888"}})
    return {"data": traces, "layout": {**_LAYOUT, "title": _title("Capacity fade"),
                                       "xaxis": _axis("cycle"), "yaxis": _axis("capacity (Ah)")}}


def dqdv_curves(curves: pl.DataFrame) -> dict[str, Any]:
    """Incremental capacity, one trace per cycle (``cycling.dqdv.dqdv`` output)."""
    traces = []
    for (cycle,), part in curves.group_by(["cycle_count"], maintain_order=True):
        traces.append({"type": "scatter", "mode": "lines", "name": f"cycle {cycle}",
                       "x": _finite(part["voltage_volt"].to_numpy()),
                       "y": _finite(part["dqdv_ah_per_volt"].to_numpy())})
    return {"data": traces, "layout": {**_LAYOUT, "title": _title("dQ/dV (discharge)"),
                                       "xaxis": _axis("voltage (V)"),
                                       "yaxis": _axis("dQ/dV (Ah/V)")}}


def health_intervals(values: list[dict[str, Any]]) -> dict[str, Any]:
    """Each health parameter's value with its interval as an error bar."""
    names = [v["parameter"] for v in values]
    value = np.array([v["value"] for v in values], dtype=float)
    lower = np.array([v["lower"] for v in values], dtype=float)
    upper = np.array([v["upper"] for v in values], dtype=float)
    return {"data": [{"type": "scatter", "mode": "markers", "x": _finite(value), "y": names,
                      "marker": {"size": 10},
                      "error_x": {"type": "data", "symmetric": False,
                                  "array": _finite(upper - value),
                                  "arrayminus": _finite(value - lower)}}],
            "layout": {**_LAYOUT, "height": max(220, 120 + 40 * len(names)),
                       "title": _title("Health: value and interval"),
                       "xaxis": _axis("value (unit per parameter, see the table)"),
                       "yaxis": {"automargin": True}, "showlegend": False}}


def packs(view: list[dict[str, Any]]) -> dict[str, Any]:
    """Per pack: usable capacity (its weakest group) against the upper bound."""
    names = [f"pack {p['index']}" for p in view]
    return {"data": [{"type": "bar", "name": "usable (weakest group)", "x": names,
                      "y": [p["usable"] for p in view]},
                     {"type": "scatter", "mode": "markers", "name": "upper bound", "x": names,
                      "y": [p["bound"] for p in view],
                      "marker": {"symbol": "line-ew-open", "size": 22, "line": {"width": 3}}}],
            "layout": {**_LAYOUT, "title": _title("Usable capacity and its bound"),
                       "xaxis": _axis(""), "yaxis": _axis("capacity (Ah)")}}


def groups(view: list[dict[str, Any]]) -> dict[str, Any]:
    """Capacity of every series group, one trace per pack: the spread within each pack."""
    traces = [{"type": "scatter", "mode": "lines+markers", "name": f"pack {p['index']}",
               "x": list(range(1, len(p["groups"]) + 1)),
               "y": [g["capacity"] for g in p["groups"]]} for p in view]
    return {"data": traces, "layout": {**_LAYOUT, "title": _title("Series groups"),
                                       "xaxis": _axis("series group"),
                                       "yaxis": _axis("group capacity (Ah)")}}
