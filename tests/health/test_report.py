"""Evaluation reports: markdown + self-contained HTML (plotly.js inline, no network), tables and
figures computed from the held-out rows they are given, published figures with their sources."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from batteryloop.health import model_store as ms
from batteryloop.health import report


def _pulse_rows() -> tuple[dict, pl.DataFrame]:
    """Six held-out tests of two types, SOH as fractions; intervals hand-set so that coverage at
    SOC 10 % is 1/2 for type A and 1 for type B."""
    rows = pl.DataFrame({
        "cell_type": ["A", "A", "A", "A", "B", "B"],
        "cell_id": ["A/1", "A/2", "A/1", "A/2", "B/1", "B/1"],
        "soc": [10.0, 10.0, 20.0, 20.0, 10.0, 20.0],
        "fold": [0, 1, 0, 1, 0, 0],
        "soh": [0.80, 0.90, 0.80, 0.90, 0.95, 0.95],
        "predicted": [0.82, 0.85, 0.80, 0.91, 0.95, 0.94],
        "lower": [0.78, 0.82, 0.75, 0.86, 0.90, 0.89],
        "upper": [0.86, 0.88, 0.85, 0.96, 1.00, 0.99],
        "flagged": [False] * 6,
        "sample_id": ["A/1", "A/2", "A/1", "A/2", "B/1", "B/1"],
        "ageing_stage": pl.Series([None] * 6, dtype=pl.Int64),
    })
    scores = {"method": "ridge", "description": "test", "folds": 2, "group_by": "cell_id",
              "nominal_coverage": 0.9, "per_type": {}, "pooled": {}}
    for t in ("A", "B"):
        part = rows.filter(pl.col("cell_type") == t)
        y, p = part["soh"].to_numpy(), part["predicted"].to_numpy()
        scores["per_type"][t] = {"mape_pct": 100 * float(np.mean(np.abs(p - y) / y)),
                                 "rmse_pct": 1.0, "max_ape_pct": 1.0, "rows": part.height,
                                 "cells": part["cell_id"].n_unique(), "coverage": 0.5,
                                 "mean_width": 0.1, "flagged_share": 0.0}
    scores["pooled"] = {**scores["per_type"]["A"], "rows": 6, "cells": 3}
    return scores, rows


def test_report_files_are_self_contained_and_written_whole(tmp_path: Path) -> None:
    scores, rows = _pulse_rows()
    sections = report.pulse_sections(scores, rows)
    paths = report.write_report(tmp_path, "r", "A report", ["intro <b>escaped</b>"], sections)
    html = paths["html"].read_text()
    md = paths["markdown"].read_text()
    assert not re.search(r"<script[^>]+src=", html)          # nothing fetched from a network
    assert html.count("Plotly.newPlot") == len(re.findall(r"id=\"figure-\d+\"", html)) == 3
    assert html.count("plotly.js v") >= 1 and len(html) > 3_000_000  # the library, inline, once
    assert "&lt;b&gt;escaped&lt;/b&gt;" in html and "<b>escaped" not in html
    assert md.startswith("# A report") and "[r.html](r.html)" in md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.md"]  # no temporary left


def test_pulse_figures_and_tables_come_from_the_rows(tmp_path: Path) -> None:
    scores, rows = _pulse_rows()
    accuracy, intervals = report.pulse_sections(scores, rows)[:2]
    table = accuracy.tables[0]
    a = next(r for r in table.rows if r[0] == "A")
    # type A: |0.82-0.80|/0.80, |0.85-0.90|/0.90, 0, |0.91-0.90|/0.90 -> mean 1.6667 %
    assert a[3] == pytest.approx(100 * (0.025 + 0.05 / 0.9 + 0 + 0.01 / 0.9) / 4)
    scatter = accuracy.figures[0]
    assert list(scatter.data[0].x) == pytest.approx([80, 90, 80, 90])  # measured SOH in %
    coverage = intervals.figures[0]
    by_type = {trace.name: (list(trace.x), list(trace.y)) for trace in coverage.data}
    # A at 10 %: 0.80 in [0.78, 0.86] yes, 0.90 in [0.82, 0.88] no -> 0.5; at 20 %: both -> 1
    assert by_type["A"] == ([10.0, 20.0], [0.5, 1.0])
    assert by_type["B"] == ([10.0, 20.0], [1.0, 1.0])
    published = accuracy.tables[1].rows
    assert published[0][1] == "< 6" and published[1][1] == 2.7
    assert all(r[2] for r in published)  # every published figure names its source


def test_cycle_life_table_beside_the_published_figures(tmp_path: Path) -> None:
    from batteryloop.health import cycle_life as cl

    pred = pl.DataFrame({"cell": ["b1c0", "b1c2", "b1c4", "b3c0"],
                         "set": ["primary_test"] * 3 + ["secondary_test"],
                         "position": [0, 2, 4, 84], "eol": [500, 1000, 800, 1000],
                         "predicted": [600.0, 900.0, 800.0, 1100.0]})
    scores = {}
    for s in ("primary_test", "secondary_test"):
        part = pred.filter(pl.col("set") == s)
        rmse, mape = cl.rmse_mape(part["eol"].to_numpy(), part["predicted"].to_numpy())
        scores[s] = {"n": part.height, "rmse_cycles": rmse, "mape_percent": mape}
    traj = pl.DataFrame({"cell": ["b1c0"] * 3, "cycle": [1, 2, 3], "capacity_ah": [1.07, 1.06, 1.05]})
    sections = report.cycle_life_sections(scores, pred, traj, eol_ah=0.88)
    paths = report.write_report(tmp_path, "cl", "Cycle life", [], sections)
    md = paths["markdown"].read_text()
    # sqrt((100^2 + 100^2 + 0) / 3) = 81.65; mean % error (20 + 10 + 0) / 3 = 10
    assert "| this model: primary test | 3 | 81.65 | 10.00 |" in md
    assert "| this model | - | 82 (10.0) n=3 | 100 (10.0) n=1 |" in md
    for row in ("| Severson et al. 2019, variance model | 103 (14.1) n=41 | 138 (14.7) n=43 | "
                "196 (11.4) n=40 |", "| BatteryML best baselines | - | 90 n=43 | 149 n=40 |"):
        assert row in md
    assert "b1c0, b1c2, b1c4" in md  # the cells scored are listed
    traj_fig = sections[-1].figures[0]
    assert traj_fig.data[1].x == (500, 600.0)  # observed and predicted end of life of b1c0


@pytest.mark.shared
def test_the_report_of_a_trained_artefact(pulse_models: Path, shared_dir: Path,
                                          tmp_path: Path) -> None:
    out = ms.evaluate("pulse-soh", data=shared_dir, root=pulse_models, out=tmp_path)
    card = ms.card("pulse-soh", root=pulse_models)
    md = Path(out["report"]["markdown"]).read_text()
    for t, s in card["scores"]["per_type"].items():
        assert f"| {t} | {s['cells']} | {s['rows']} | {s['mape_pct']:.2f} |" in md
    assert card["training_data_sha256"] in md and card["model_sha256"] in md
    # timings of training and prediction are in the report
    assert re.search(r"\| prediction, one test \| [\d.]+ (ms|s) \|", md)
    assert re.search(r"\| training \(with held-out scoring\) \| [\d.]+ (ms|s) \|", md)
