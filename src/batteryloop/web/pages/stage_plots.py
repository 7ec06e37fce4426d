"""Figures of the recycling and plant pages, as plain plotly.js JSON like ``plots`` (drawn in the
browser by the installed plotly package's bundle): the batch mass balance as a Sankey diagram,
element recovery against the targets, and the plant's model-vs-measured panel."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from batteryloop.web.pages.plots import _LAYOUT, _axis, _title

KIND_COLOURS = {"product": "rgba(46, 139, 87, 0.55)", "residue": "rgba(120, 120, 120, 0.45)",
                "loss": "rgba(230, 140, 30, 0.55)", "unaccounted": "rgba(214, 54, 56, 0.7)"}
_NODE_COLOURS = {"input": "#2271b1", "product": "#2e8b57", "residue": "#787878",
                 "loss": "#e68c1e", "unaccounted": "#d63638"}
_SINKS = {"residue": "residues", "loss": "losses"}
MIN_LINK_KG = 1e-9  # a zero-mass stream draws nothing
_BELOW = {"orientation": "h", "x": 0, "y": -0.18, "yanchor": "top"}  # legend under the axes


def mass_balance_sankey(balance: dict[str, Any], streams: list[dict[str, Any]]) -> dict[str, Any]:
    """Inputs per constituent (left) to each product stream, to residues, to losses and, where the
    balance leaves mass unaccounted, to 'unaccounted' (right): the balance table drawn."""
    constituents = [r for r in balance["constituents"] if r["input_kg"] > 0 or r["output_kg"] > 0]
    labels = [f"{r['constituent']} ({r['input_kg']:.3g} kg in)" for r in constituents]
    colours = [_NODE_COLOURS["input"]] * len(labels)
    index = {r["constituent"]: i for i, r in enumerate(constituents)}
    sinks: dict[str, int] = {}

    def sink(name: str, kind: str) -> int:
        if name not in sinks:
            sinks[name] = len(labels)
            labels.append(name)
            colours.append(_NODE_COLOURS[kind])
        return sinks[name]

    flows: dict[tuple[int, int], float] = defaultdict(float)
    kinds: dict[tuple[int, int], str] = {}
    for s in streams:
        if s["constituent"] not in index or not s["mass_kg"] or s["mass_kg"] <= MIN_LINK_KG:
            continue
        target = sink(s["stream"] if s["kind"] == "product" else _SINKS[s["kind"]], s["kind"])
        key = (index[s["constituent"]], target)
        flows[key] += float(s["mass_kg"])
        kinds[key] = s["kind"]
    for r in constituents:
        if r["unaccounted_kg"] > MIN_LINK_KG:
            key = (index[r["constituent"]], sink("unaccounted", "unaccounted"))
            flows[key] += float(r["unaccounted_kg"])
            kinds[key] = "unaccounted"
    keys = list(flows)
    trace = {
        "type": "sankey", "arrangement": "snap", "valueformat": ".3f", "valuesuffix": " kg",
        "node": {"label": labels, "color": colours, "pad": 8, "thickness": 14,
                 "line": {"width": 0}},
        "link": {"source": [k[0] for k in keys], "target": [k[1] for k in keys],
                 "value": [flows[k] for k in keys],
                 "color": [KIND_COLOURS[kinds[k]] for k in keys],
                 "customdata": [kinds[k] for k in keys],
                 "hovertemplate": "%{source.label} → %{target.label}<br>%{value} (%{customdata})"
                                  "<extra></extra>"},
    }
    height = max(480, 30 * max(len(constituents), len(sinks)))
    return {"data": [trace], "layout": {**_LAYOUT, "height": height, "hovermode": "closest",
                                        "title": _title("Mass balance: inputs by constituent to "
                                                        "products, residues and losses")}}


def recovery(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Recovery per element with each regulation's target (in force, else the next) as markers."""
    elements = [r["element"] for r in rows]
    traces: list[dict[str, Any]] = [{
        "type": "bar", "name": "recovered", "x": elements,
        "y": [r["value_pct"] for r in rows], "marker": {"color": "#2e8b57"},
        "hovertemplate": "%{x}: %{y:.2f} %<extra></extra>"}]
    regulations = sorted({t["regulation"] for r in rows for t in r["targets"]})
    symbols = ["line-ew-open", "diamond-open", "x-thin-open", "circle-open"]
    for n, reg in enumerate(regulations):
        ys: list[float | None] = []
        for r in rows:
            t = next((t for t in r["targets"] if t["regulation"] == reg), None)
            judged = (t["in_force"] or t["next"]) if t else None
            ys.append(judged["min_pct"] if judged else None)
        traces.append({"type": "scatter", "mode": "markers", "x": elements, "y": ys,
                       "name": f"{reg} target (in force, else next)",
                       "marker": {"symbol": symbols[n % len(symbols)], "size": 22,
                                  "line": {"width": 3}}})
    title = _title("Recovery per element and targets")
    return {"data": traces, "layout": {**_LAYOUT, "title": title,
                                       "xaxis": _axis("element"),
                                       "yaxis": {**_axis("recovered (% of input)"),
                                                 "range": [0, 105]}}}


def soft_sensor_layout(tags: list[tuple[str, str]]) -> dict[str, Any]:
    """The model-vs-measured figure's layout, one row per (tag, unit) so that each outlet keeps
    its own scale; the traces come from the plant's live JSON (the i-th tag on axes x{i}/y{i})."""
    layout: dict[str, Any] = {
        **_LAYOUT, "height": 140 + 200 * len(tags),
        "title": _title("Measured (mean) against the clean-coil model"),
        "legend": _BELOW, "margin": {**_LAYOUT["margin"], "t": 50, "b": 110},
        "grid": {"rows": len(tags), "columns": 1, "pattern": "independent",
                 "roworder": "top to bottom"}}
    for n, (tag, unit) in enumerate(tags, start=1):
        suffix = "" if n == 1 else str(n)
        layout[f"xaxis{suffix}"] = _axis("plant time" if n == len(tags) else "")
        layout[f"yaxis{suffix}"] = _axis(f"{tag} ({unit})")
    return layout


def residual_layout(unit: str) -> dict[str, Any]:
    return {**_LAYOUT, "title": _title("Residual: measured minus expected"), "legend": _BELOW,
            "margin": {**_LAYOUT["margin"], "t": 50, "b": 110},
            "xaxis": _axis(""), "yaxis": _axis(f"residual ({unit})")}


def trend_layout(tag: str, unit: str) -> dict[str, Any]:
    return {**_LAYOUT, "height": 260, "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
            "title": _title(f"{tag} ({unit})"), "xaxis": _axis(""), "yaxis": _axis(unit),
            "showlegend": False}
