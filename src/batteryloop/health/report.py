"""Evaluation reports of the health models: a markdown file (tables, for reading and diffing) and
a self-contained HTML file (the same tables and interactive plotly figures) per artefact.

The HTML embeds plotly.js from the installed ``plotly`` package once, so a report opens offline
and years later without a CDN. Every figure shows held-out data only (cells the model never saw
in training), except where a caption says "training cells (in-sample)". Published figures come
from ``data/published.toml`` with their sources.
"""

from __future__ import annotations

import html
import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

SET_LABELS = {"train": "training cells (in-sample)", "primary_test": "primary test",
              "secondary_test": "secondary test"}


@cache
def published() -> dict[str, Any]:
    """``data/published.toml``: the figures of the literature the models are compared with."""
    return tomllib.loads((files("batteryloop.health") / "data" / "published.toml").read_text())


@dataclass
class Table:
    header: list[str]
    rows: list[list[Any]]
    caption: str | None = None


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Any] = field(default_factory=list)  # plotly figures


def _cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return "-" if not math.isfinite(float(value)) else f"{float(value):.{digits}f}"
    return str(value)


def _markdown(title: str, intro: list[str], sections: Sequence[Section], html_name: str) -> str:
    out = [f"# {title}", "", *[p + "\n" for p in intro],
           f"Interactive figures: [{html_name}]({html_name}) (self-contained, opens offline).", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        out += [p + "\n" for p in s.text]
        for t in s.tables:
            if t.caption:
                out += [f"*{t.caption}*", ""]
            out.append("| " + " | ".join(t.header) + " |")
            out.append("|" + "|".join(["---"] * len(t.header)) + "|")
            out += ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |"
                    for row in t.rows]
            out.append("")
        if s.figures:
            out += [f"({len(s.figures)} figure(s) in the HTML report.)", ""]
    return "\n".join(out)


def _html(title: str, intro: list[str], sections: Sequence[Section]) -> str:
    import plotly.offline

    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
        "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
        "caption{caption-side:top;text-align:left;font-style:italic;padding:4px 0}"
        ".fig{margin:1em 0}</style>",
        # plotly.js from the installed package, once: the report needs no network
        f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script>",
        f"</head><body><h1>{html.escape(title)}</h1>",
        *[f"<p>{html.escape(p)}</p>" for p in intro],
    ]
    n = 0
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        parts += [f"<p>{html.escape(p)}</p>" for p in s.text]
        for t in s.tables:
            parts.append("<table>")
            if t.caption:
                parts.append(f"<caption>{html.escape(t.caption)}</caption>")
            parts.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in t.header) + "</tr>")
            for row in t.rows:
                parts.append("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row)
                             + "</tr>")
            parts.append("</table>")
        for fig in s.figures:
            n += 1
            parts.append("<div class='fig'>" + fig.to_html(
                full_html=False, include_plotlyjs=False, div_id=f"figure-{n}",
                config={"displaylogo": False}) + "</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out_dir: Path, stem: str, title: str, intro: list[str],
                 sections: Sequence[Section]) -> dict[str, Path]:
    """Write ``<stem>.md`` and ``<stem>.html`` under ``out_dir``; returns both paths. Each file is
    written to a temporary name and renamed, so a reader never sees half a report."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / f"{stem}.md", "html": out_dir / f"{stem}.html"}
    texts = {"markdown": _markdown(title, intro, sections, paths["html"].name),
             "html": _html(title, intro, sections)}
    for key, path in paths.items():
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(texts[key], encoding="utf-8")
        tmp.replace(path)
    return paths


# ------------------------------------------------------------------------- shared sections


def card_section(card: dict[str, Any], timings: dict[str, float]) -> Section:
    """What was evaluated (name, version, hashes) and how long training and prediction took."""
    params = card.get("params", {})
    rows = [
        ["name", card["name"]], ["version", card["version"]], ["what", card["kind"]],
        ["target", card["target"]], ["features", f"{len(card['features'])}"],
        ["training data SHA-256", card["training_data_sha256"]],
        ["training files", f"{len(card['training_files'])}"],
        ["model file SHA-256", card["model_sha256"]],
        ["created", card["created_at"]],
        ["libraries", ", ".join(f"{k} {v}" for k, v in sorted(card.get("libraries", {}).items()))],
    ]
    for key in ("method", "model", "route", "window", "coverage", "alpha"):
        if key in params:
            rows.append([key, params[key]])
    time_rows = [[label, f"{value:.3g} s" if value >= 0.1 else f"{1000 * value:.3g} ms"]
                 for label, value in timings.items() if value is not None]
    return Section("The artefact", tables=[
        Table(["field", "value"], rows),
        Table(["timing", "value"], time_rows,
              caption="measured on this machine while writing the report"),
    ])


def _identity(lo: float, hi: float) -> dict[str, Any]:
    return {"type": "line", "x0": lo, "y0": lo, "x1": hi, "y1": hi,
            "line": {"color": "#888", "dash": "dash"}}


# ------------------------------------------------------------------------- pulse-test SOH


def pulse_sections(report: dict[str, Any], rows: pl.DataFrame) -> list[Section]:
    """Held-out accuracy of a pulse-SOH configuration (cross-validation over whole cells)."""
    import plotly.graph_objects as go

    pub = published()["pulse_soh"]
    types = sorted(report["per_type"])
    table = Table(
        ["cell type", "cells", "tests", "MAPE %", "RMSE (SOH %)", "max APE %",
         f"coverage (nominal {report['nominal_coverage']:.0%})", "mean width (SOH points)",
         "flagged out of domain %"],
        [_pulse_row(t, report["per_type"][t]) for t in types]
        + [_pulse_row("pooled", report["pooled"])],
        caption=f"{report['folds']}-fold cross-validation over {report['group_by']}: every test "
                "of a cell (all its SOCs and ageing stages) is scored by a model that never saw "
                "that cell",
    )
    lit = Table(["source", "pooled MAPE %", "what"], [
        [pub["tao2024"]["label"], f"< {pub['tao2024']['mape_pct_upper']:g}",
         pub["tao2024"]["source"]],
        [pub["ridge_pooled"]["label"], pub["ridge_pooled"]["mape_pct"],
         pub["ridge_pooled"]["source"]],
        [f"this model ({report['method']})", report["pooled"]["mape_pct"],
         report.get("description", "")],
    ], caption="beside published figures")

    scatter = go.Figure()
    resid = go.Figure()
    for t in types:
        part = rows.filter(pl.col("cell_type") == t)
        scatter.add_trace(go.Scattergl(
            x=100 * part["soh"].to_numpy(), y=100 * part["predicted"].to_numpy(), mode="markers",
            name=t, marker={"size": 4, "opacity": 0.6},
            text=[f"{c} SOC {s:g} %" for c, s in zip(part["cell_id"], part["soc"], strict=True)]))
        resid.add_trace(go.Box(x=part["soc"].to_numpy(),
                               y=100 * (part["predicted"] - part["soh"]).to_numpy(),
                               name=t, boxpoints=False))
    lo = 100 * float(min(rows["soh"].min(), rows["predicted"].min()))
    hi = 100 * float(max(rows["soh"].max(), rows["predicted"].max()))
    scatter.update_layout(title="Predicted against measured SOH, held-out cells",
                          xaxis_title="measured SOH (%)", yaxis_title="predicted SOH (%)",
                          shapes=[_identity(lo, hi)], height=560)
    resid.update_layout(title="Residuals (predicted - measured, SOH points) by SOC at the test",
                        xaxis_title="SOC at the test (%)", yaxis_title="residual (SOH points)",
                        boxmode="group", height=460)

    cover = rows.with_columns(((pl.col("soh") >= pl.col("lower")) & (pl.col("soh") <= pl.col("upper")))
                              .alias("covered"))
    by = cover.group_by("cell_type", "soc").agg(pl.col("covered").mean()).sort("cell_type", "soc")
    cov_fig = go.Figure()
    for t in types:
        part = by.filter(pl.col("cell_type") == t)
        cov_fig.add_trace(go.Scatter(x=part["soc"].to_numpy(), y=part["covered"].to_numpy(),
                                     mode="lines+markers", name=t))
    cov_fig.add_hline(y=report["nominal_coverage"], line_dash="dash", line_color="#888",
                      annotation_text="nominal")
    cov_fig.update_layout(title="Interval coverage on held-out cells, by SOC",
                          xaxis_title="SOC at the test (%)", yaxis_title="share of tests covered",
                          yaxis_range=[0.5, 1.0], height=420)

    sections = [
        Section("Accuracy with whole cells held out", tables=[table, lit],
                figures=[scatter, resid]),
        Section("Intervals", text=[
            "Split-conformal intervals, cross-conformal in evaluation: the tests of a fold get the "
            "half-width computed from the out-of-fold residuals of the other folds only."],
            figures=[cov_fig]),
    ]
    staged = rows.filter(pl.col("ageing_stage").is_not_null()) if "ageing_stage" in rows.columns \
        else rows.clear()
    if staged.height:
        traj = (staged.group_by("cell_id", "ageing_stage")
                .agg(pl.col("soh").mean(), pl.col("predicted").mean(),
                     pl.col("lower").mean(), pl.col("upper").mean())
                .sort("cell_id", "ageing_stage"))
        fig = go.Figure()
        for i, cell in enumerate(traj["cell_id"].unique(maintain_order=True)):
            part = traj.filter(pl.col("cell_id") == cell)
            color = f"hsl({(37 * i) % 360},60%,45%)"
            fig.add_trace(go.Scatter(x=part["ageing_stage"].to_numpy(),
                                     y=100 * part["soh"].to_numpy(), mode="lines+markers",
                                     name=f"{cell} measured", line={"color": color}))
            fig.add_trace(go.Scatter(
                x=part["ageing_stage"].to_numpy(), y=100 * part["predicted"].to_numpy(),
                mode="markers", name=f"{cell} predicted", marker={"color": color, "symbol": "x"},
                error_y={"type": "data", "symmetric": False,
                         "array": 100 * (part["upper"] - part["predicted"]).to_numpy(),
                         "arrayminus": 100 * (part["predicted"] - part["lower"]).to_numpy()}))
        fig.update_layout(title="Capacity trajectories of the laboratory-aged cells (NMC 2.1 Ah): "
                                "measured SOH and held-out predictions (mean over SOC) per ageing "
                                "stage", xaxis_title="ageing stage (the sample id's suffix)",
                          yaxis_title="SOH (%)", height=560)
        sections.append(Section("Capacity trajectories", figures=[fig]))
    return sections


def _pulse_row(label: str, s: dict[str, Any]) -> list[Any]:
    def pct(v: float | None) -> float | None:
        return None if v is None else 100 * v

    cov = s.get("coverage")
    return [label, s.get("cells"), s["rows"], s["mape_pct"], s["rmse_pct"], s["max_ape_pct"],
            None if cov is None else f"{cov:.3f}", pct(s.get("mean_width")),
            pct(s.get("flagged_share"))]


# ------------------------------------------------------------------------- cycle life


def cycle_life_sections(scores: dict[str, dict[str, Any]], predictions: pl.DataFrame,
                        trajectories: pl.DataFrame | None, *, eol_ah: float,
                        cv_rmse: dict[str, float] | None = None) -> list[Section]:
    """Scores on the paper's split beside Severson et al. Table 1 and BatteryML; predicted
    against observed; residuals; capacity trajectories of the test cells."""
    import plotly.graph_objects as go

    pub = published()["cycle_life"]
    rows = []
    for s in ("train", "primary_test", "secondary_test"):
        sc = scores.get(s)
        if sc:
            rows.append([f"this model: {SET_LABELS[s]}", sc["n"], sc["rmse_cycles"],
                         sc["mape_percent"]])
    comp = Table(["set", "cells scored", "RMSE (cycles)", "mean % error"], rows,
                 caption="this model on the paper's split (only cells with a label and a usable "
                         "file are scored; listed below)")
    pub_rows = []
    for entry in pub.values():
        pub_rows.append([entry["label"],
                         *[_pub(entry, s) for s in ("train", "primary_test", "secondary_test")],
                         entry["source"]])
    ours = ["this model"] + [
        (f"{scores[s]['rmse_cycles']:.0f} ({scores[s]['mape_percent']:.1f}) n={scores[s]['n']}"
         if scores.get(s) and scores[s]["n"] else "-")
        for s in ("train", "primary_test", "secondary_test")] + ["training column in-sample"]
    lit = Table(["model", "train", "primary test", "secondary test", "source"],
                [*pub_rows, ours],
                caption="RMSE in cycles (mean % error), n = cells; published figures score all "
                        "41 / 43 / 40 cells of the paper")
    tables = [comp, lit]
    if cv_rmse:
        tables.append(Table(["candidate", "CV RMSE on training cells (cycles)"],
                            [[k, v] for k, v in sorted(cv_rmse.items(), key=lambda kv: kv[1])],
                            caption="model selection: 5-fold CV on the training cells only"))
    if "submodel" in predictions.columns:
        from batteryloop.health.cycle_life import rmse_mape

        sub_rows = []
        for s in ("primary_test", "secondary_test"):
            for sub in sorted(set(predictions["submodel"])):
                part = predictions.filter((pl.col("set") == s) & (pl.col("submodel") == sub))
                if part.height:
                    rmse, mape = rmse_mape(part["eol"].to_numpy(), part["predicted"].to_numpy())
                    sub_rows.append([SET_LABELS[s], sub, part.height, rmse, mape,
                                     ", ".join(part["cell"].to_list())])
        tables.append(Table(["set", "scored by", "cells", "RMSE (cycles)", "mean % error",
                             "which"], sub_rows,
                            caption="hybrid route: cells with the paper's Q100(V) - Q10(V) "
                                    "variance (beep features) are scored by the linear model on "
                                    "it, the others by the per-cycle model"))
    scored = Table(["set", "cells"], [
        [SET_LABELS[s], ", ".join(predictions.filter(pl.col("set") == s)["cell"].to_list())]
        for s in ("train", "primary_test", "secondary_test")])

    scatter, resid = go.Figure(), go.Figure()
    for s in ("train", "primary_test", "secondary_test"):
        part = predictions.filter(pl.col("set") == s)
        if not part.height:
            continue
        marker = {"size": 8, "opacity": 0.45 if s == "train" else 0.9}
        scatter.add_trace(go.Scatter(x=part["eol"].to_numpy(), y=part["predicted"].to_numpy(),
                                     mode="markers", name=SET_LABELS[s], marker=marker,
                                     text=part["cell"].to_list()))
        resid.add_trace(go.Scatter(x=part["eol"].to_numpy(),
                                   y=(part["predicted"] - part["eol"]).to_numpy(),
                                   mode="markers", name=SET_LABELS[s], marker=marker,
                                   text=part["cell"].to_list()))
    lo = float(min(predictions["eol"].min(), predictions["predicted"].min())) * 0.9
    hi = float(max(predictions["eol"].max(), predictions["predicted"].max())) * 1.1
    scatter.update_layout(title="Predicted against observed cycle life",
                          xaxis={"title": "observed cycle life", "type": "log"},
                          yaxis={"title": "predicted cycle life", "type": "log"},
                          shapes=[{**_identity(lo, hi), "xref": "x", "yref": "y"}], height=560)
    resid.add_hline(y=0, line_dash="dash", line_color="#888")
    resid.update_layout(title="Residuals (predicted - observed)", xaxis_title="observed cycle life",
                        yaxis_title="residual (cycles)", height=440)
    sections = [Section("Cycle life on the paper's split", tables=tables,
                        figures=[scatter, resid]),
                Section("Cells scored", tables=[scored])]
    if trajectories is not None and trajectories.height:
        figs = []
        for s in ("primary_test", "secondary_test"):
            cells = predictions.filter(pl.col("set") == s)
            if not cells.height:
                continue
            fig = go.Figure()
            for i, r in enumerate(cells.iter_rows(named=True)):
                part = trajectories.filter(pl.col("cell") == r["cell"])
                color = f"hsl({(29 * i) % 360},55%,45%)"
                fig.add_trace(go.Scattergl(x=part["cycle"].to_numpy(),
                                           y=part["capacity_ah"].to_numpy(), mode="lines",
                                           name=r["cell"], line={"color": color, "width": 1},
                                           legendgroup=r["cell"]))
                fig.add_trace(go.Scatter(
                    x=[r["eol"], r["predicted"]], y=[eol_ah, eol_ah], mode="markers",
                    marker={"color": color, "symbol": ["circle", "x"], "size": 8},
                    name=f"{r['cell']} EOL observed / predicted", legendgroup=r["cell"],
                    showlegend=False))
            fig.add_hline(y=eol_ah, line_dash="dash", line_color="#888",
                          annotation_text=f"end of life {eol_ah:g} Ah")
            fig.update_layout(
                title=f"Capacity trajectories, {SET_LABELS[s]}: discharge capacity per kept "
                      "cycle; circle = observed, cross = predicted end of life",
                xaxis_title="cycle (rank of the kept row)", yaxis_title="discharge capacity (Ah)",
                yaxis_range=[0.8, 1.12], height=560)
            figs.append(fig)
        sections.append(Section("Capacity trajectories", figures=figs))
    return sections


def _pub(entry: dict[str, Any], s: str) -> str:
    v = entry.get(s)
    if not v:
        return "-"
    mape = v.get("mape_percent")
    return f"{v['rmse_cycles']:g}" + (f" ({mape:g})" if mape is not None else "") + f" n={v['n']}"


# ------------------------------------------------------------------------- RUL


def rul_sections(summary: dict[str, Any], rows: pl.DataFrame, by_k: pl.DataFrame
                 ) -> list[Section]:
    """Coverage, width and error of the RUL intervals on held-out cells, by k."""
    import plotly.graph_objects as go

    nominal = summary.get("nominal_coverage")
    table = Table(["set", "samples", "cells", "coverage", "median width (cycles)", "MAE", "RMSE"],
                  [[SET_LABELS.get(s, s), v["n"], v["cells"], v["coverage"], v["median_width"],
                    v["mae"], v["rmse"]] for s, v in sorted(summary.items())
                   if isinstance(v, dict)],
                  caption=f"nominal coverage {nominal:.0%}" if nominal else None)
    scatter = go.Figure()
    for s in ("primary_test", "secondary_test"):
        part = rows.filter(pl.col("set") == s)
        if not part.height:
            continue
        scatter.add_trace(go.Scatter(
            x=part["rul"].to_numpy(), y=part["predicted"].to_numpy(), mode="markers",
            name=SET_LABELS[s], marker={"size": 6, "opacity": 0.7},
            text=[f"{c} at k={k}" for c, k in zip(part["cell"], part["cycle"], strict=True)],
            error_y={"type": "data", "symmetric": False,
                     "array": (part["upper"] - part["predicted"]).to_numpy(),
                     "arrayminus": (part["predicted"] - part["lower"]).to_numpy(),
                     "thickness": 0.6}))
    hi = float(max(rows["rul"].max(), rows["predicted"].max())) * 1.05
    scatter.update_layout(title="Remaining useful life: predicted (with interval) against observed",
                          xaxis_title="observed RUL (cycles)", yaxis_title="predicted RUL (cycles)",
                          shapes=[_identity(0, hi)], height=560)
    cov = go.Figure()
    for s in ("primary_test", "secondary_test"):
        part = by_k.filter(pl.col("set") == s)
        cov.add_trace(go.Scatter(x=part["cycle"].to_numpy(), y=part["coverage"].to_numpy(),
                                 mode="lines+markers", name=SET_LABELS[s]))
    if nominal:
        cov.add_hline(y=nominal, line_dash="dash", line_color="#888", annotation_text="nominal")
    cov.update_layout(title="Interval coverage by cycle k of the prediction",
                      xaxis_title="k (cycles of history)", yaxis_title="coverage",
                      yaxis_range=[0, 1.05], height=420)
    k_table = Table(["set", "k", "samples", "cells", "coverage", "median width", "MAE", "RMSE"],
                    [[SET_LABELS.get(r["set"], r["set"]), r["cycle"], r["n"], r["cells"],
                      r["coverage"], r["median_width"], r["mae"], r["rmse"]]
                     for r in by_k.iter_rows(named=True)])
    return [Section("Remaining useful life on held-out cells", tables=[table],
                    figures=[scatter, cov]),
            Section("By k", tables=[k_table])]


__all__ = ["Section", "Table", "card_section", "cycle_life_sections", "published",
           "pulse_sections", "rul_sections", "write_report"]
