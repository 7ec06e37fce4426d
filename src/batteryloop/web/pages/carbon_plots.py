"""Figures of the carbon page, as plain plotly.js JSON like ``plots`` (drawn in the browser by the
installed plotly package's bundle): the footprint per kWh by life-cycle stage for each chemistry
and electricity mix (stacked, the end-of-life credit below zero), avoided emissions of recycling
and reuse per chemistry, and a saving claim's implied footprint against the published ranges."""

from __future__ import annotations

from typing import Any

from batteryloop.web.pages.plots import _LAYOUT, _axis, _title

STAGE_COLOURS = {"raw_material_acquisition": "#2271b1", "main_production": "#72aee6",
                 "distribution": "#dba617", "end_of_life": "#2e8b57"}
_BELOW = {"orientation": "h", "x": 0, "y": -0.22, "yanchor": "top"}  # legend under the axes


def footprint_by_stage(rows: list[dict[str, Any]], stage_names: dict[str, str]) -> dict[str, Any]:
    """One stacked bar per (grid, chemistry): each Annex II stage per kWh of capacity, the
    end-of-life stage (a credit) below zero, and the net total as a marker."""
    x = [[r["grid"] for r in rows], [r["chemistry"] for r in rows]]  # grid, then chemistry
    traces: list[dict[str, Any]] = [
        {"type": "bar", "name": name, "x": x, "y": [r["per_kwh_capacity"][stage] for r in rows],
         "marker": {"color": STAGE_COLOURS.get(stage)},
         "hovertemplate": f"{name}: %{{y:.1f}} kg CO2e/kWh<extra>%{{x}}</extra>"}
        for stage, name in stage_names.items()]
    traces.append({"type": "scatter", "mode": "markers", "name": "net total", "x": x,
                   "y": [r["per_kwh_capacity"]["total"] for r in rows],
                   "marker": {"symbol": "diamond", "size": 9, "color": "#1d2327"},
                   "hovertemplate": "net %{y:.1f} kg CO2e/kWh<extra>%{x}</extra>"})
    return {"data": traces, "layout": {
        **_LAYOUT, "barmode": "relative", "height": 480,
        "margin": {**_LAYOUT["margin"], "t": 90, "b": 110},
        "title": _title("Footprint per kWh of capacity by life-cycle stage"),
        "xaxis": {"type": "multicategory", "gridcolor": "#ececec"},
        "yaxis": _axis("kg CO2e per kWh")}}


def avoided(rows: list[dict[str, Any]], grid: str) -> dict[str, Any]:
    """Net avoided emissions per kWh of each chemistry: recycling counted two ways, and reuse."""
    x = [r["chemistry"] for r in rows]
    series = (("recycling, substitution (A = 0)", "substitution", "#2e8b57"),
              ("recycling, Circular Footprint Formula", "cff", "#72aee6"),
              ("second life (reuse)", "reuse", "#dba617"))
    traces = [{"type": "bar", "name": name, "x": x, "y": [r[key] for r in rows],
               "marker": {"color": colour},
               "hovertemplate": f"{name}: %{{y:.1f}} kg CO2e/kWh<extra>%{{x}}</extra>"}
              for name, key, colour in series]
    return {"data": traces, "layout": {
        **_LAYOUT, "barmode": "group", "height": 380, "legend": _BELOW,
        "title": _title(f"Net avoided emissions per kWh ({grid} electricity)"),
        "xaxis": _axis("chemistry"), "yaxis": _axis("kg CO2e per kWh avoided")}}


def claim(check: dict[str, Any]) -> dict[str, Any]:
    """Each published cradle-to-gate range as a bar from low to high, with the footprint the
    claim implies and the saving it claims as vertical lines."""
    studies = check["published"]["studies"]
    labels = [s["label"] for s in studies]
    implied = check["implied_baseline_kg_per_kwh"]
    saving = check["claim"]["saving_kg_per_kwh"]
    ends = [labels[0], labels[-1]] if labels else []
    traces: list[dict[str, Any]] = [
        {"type": "bar", "orientation": "h", "name": "published range", "y": labels,
         "x": [s["high"] - s["low"] for s in studies], "base": [s["low"] for s in studies],
         "marker": {"color": "#72aee6"},
         "customdata": [[s["low"], s["high"], s["scope"]] for s in studies],
         "hovertemplate": "%{customdata[0]:.0f}-%{customdata[1]:.0f} kg CO2e/kWh "
                          "(%{customdata[2]})<extra>%{y}</extra>"},
        {"type": "scatter", "mode": "lines", "name": f"implied footprint {implied:.0f}",
         "x": [implied, implied], "y": ends, "line": {"color": "#d63638", "width": 3},
         "hovertemplate": f"implied by the claim: {implied:.0f} kg CO2e/kWh<extra></extra>"},
        {"type": "scatter", "mode": "lines", "name": f"claimed saving {saving:.0f}",
         "x": [saving, saving], "y": ends, "line": {"color": "#e68c1e", "width": 2, "dash": "dash"},
         "hovertemplate": f"claimed saving: {saving:.0f} kg CO2e/kWh<extra></extra>"},
    ]
    return {"data": traces, "layout": {
        **_LAYOUT, "height": max(300, 160 + 36 * len(labels)),
        "margin": {**_LAYOUT["margin"], "l": 300, "t": 90},
        "title": _title("The claim's implied footprint against published footprints"),
        "xaxis": {**_axis("kg CO2e per kWh"), "rangemode": "tozero"},
        "yaxis": {"automargin": True, "autorange": "reversed"}}}
