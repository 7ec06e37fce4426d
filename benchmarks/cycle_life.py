"""Cycle life and RUL on the Severson cells, beside the published Table 1.

Reproduces the table of Severson et al. (Nature Energy 4, 383, 2019: RMSE in cycles (mean %
error), train / primary test / secondary test) on the paper's split, with every model of
:mod:`batteryloop.health.cycle_life`, and says which cells each figure scores. Then the RUL
intervals of :mod:`batteryloop.health.rul` (coverage measured on the held-out cells at several
k), the knee of :mod:`batteryloop.health.trajectory` against the published Bacon-Watts knees, and
training and prediction times.

    .venv/bin/python benchmarks/cycle_life.py                 # everything (a few minutes)
    .venv/bin/python benchmarks/cycle_life.py --save var/models --json /tmp/cycle_life.json

``BATTERYLOOP_SHARED`` (default ``../shared``) finds the data. Published figures are quoted from
the paper (Table 1) and, for the BatteryML baselines, as given in our brief (best primary 90,
best secondary 149 cycles RMSE); both score all the paper's cells (41 / 43 / 40), we score those
with a label and a usable file (listed below).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

from batteryloop.health import cycle_life as cl
from batteryloop.health import rul, severson, trajectory

ROOT = Path(__file__).resolve().parents[1]


PUBLISHED = [  # Severson et al. 2019, Table 1: (rmse, mape) train / primary / secondary
    ("paper: variance model", (103, 14.1), (138, 14.7), (196, 11.4)),
    ("paper: discharge model", (76, 9.8), (91, 13.0), (173, 8.6)),
    ("paper: full model", (51, 5.6), (118, 14.1), (214, 10.7)),
    ("BatteryML best baselines", None, (90, None), (149, None)),
]


def shared_dir() -> Path:
    return Path(os.environ.get("BATTERYLOOP_SHARED", ROOT.parent / "shared")).resolve()


def fmt(score: tuple[float, float | None] | None, n: int | None = None) -> str:
    if score is None:
        return "-"
    rmse, mape = score
    text = f"{rmse:.0f}" + (f" ({mape:.1f})" if mape is not None and np.isfinite(mape) else "")
    return text + (f" n={n}" if n is not None else "")


def scores_on(pred: pl.DataFrame, cells: set[str] | None = None) -> dict[str, tuple]:
    out = {}
    for s in cl.SETS:
        part = pred.filter(pl.col("set") == s)
        if cells is not None:
            part = part.filter(pl.col("cell").is_in(sorted(cells)))
        out[s] = (*cl.rmse_mape(part["eol"].to_numpy(), part["predicted"].to_numpy()),
                  part.height)
    return out


def row(label: str, sc: dict[str, tuple]) -> str:
    cols = [fmt((sc[s][0], sc[s][1]), sc[s][2]) if sc[s][2] else "-" for s in cl.SETS]
    return f"| {label} | " + " | ".join(cols) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--save", type=Path, default=None, help="save the models here (artifacts)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    shared = shared_dir()
    report: dict = {}

    split = severson.split(shared)
    print("# Cycle life on the Severson cells (Nature Energy 4, 383, 2019)\n")
    print(f"data: {severson.lifecycle_dir(shared)}\n")
    print("## The paper's split and the cells scored\n")
    for s in (*cl.SETS, "dropped"):
        part = split.filter(pl.col("set") == s)
        scored = part.filter(pl.col("scorable"))
        print(f"- {s}: {part.height} positions, {scored.height} scored "
              f"({', '.join(scored['cell'])})")
        if s != "dropped":
            why = part.filter(~pl.col("scorable")).with_columns(
                pl.when(pl.col("eol").is_null()).then(pl.lit("no label"))
                .when(pl.col("n_rows") == 0).then(pl.lit("no file"))
                .when(pl.col("n_rows") < 100).then(pl.format("{} rows", "n_rows"))
                .when(pl.col("sparse")).then(pl.format("sparse file ({} rows, life {})",
                                                        "n_rows", "eol"))
                .otherwise(pl.lit("?")).alias("why"))
            if why.height:
                print("  not scored: " + "; ".join(f"{c} ({w})" for c, w in
                                                    why.select("cell", "why").iter_rows()))
    rows100 = np.array(list(severson.CYCLE_100_ROW.values())) + 1
    print(f"\nrows to cycles: cycle = rank of the kept row. Beep's Q(cycle 100) is found verbatim "
          f"in {rows100.size} files, at rank {rows100.min()}-{rows100.max()} (median "
          f"{np.median(rows100):.0f}): the first 100 kept rows reach about cycle "
          f"{200 - rows100.max()}-{200 - rows100.min()} (median {200 - np.median(rows100):.0f}).")

    # ------------------------------------------------------------------ early prediction
    print("\n## Early prediction: RMSE in cycles (MAPE %), n = cells scored\n")
    print("| model | train | primary test | secondary test |")
    print("| --- | --- | --- | --- |")
    for label, tr, pr, se in PUBLISHED:
        n = ("41", "43", "40")
        cells = [fmt(tr) + (f" n={n[0]}" if tr else ""), fmt(pr) + f" n={n[1]}",
                 fmt(se) + f" n={n[2]}"]
        print(f"| {label} (published, all cells) | " + " | ".join(cells) + " |")

    runs = [
        ("charge", None, 100, "per-cycle charge stats + capacity, CV-chosen"),
        ("charge", "elastic-net", 100, "per-cycle charge stats + capacity, elastic net"),
        ("charge", None, 94, "per-cycle, 94-row window (~cycle 100), CV-chosen"),
        ("capacity", None, 100, "capacity only, CV-chosen"),
        ("paper:variance", "elastic-net", 100, "paper's features (beep): variance, elastic net"),
        ("paper:discharge", "elastic-net", 100, "paper's features (beep): discharge, elastic net"),
        ("paper:full", "elastic-net", 100, "paper's features (beep): full, elastic net"),
        ("paper:all", None, 100, "paper's 20 features (beep), CV-chosen"),
        ("hybrid", None, 100, "hybrid: paper's variance where beep has it, else per-cycle"),
    ]
    results = {}
    for route, model, window, label in runs:
        t0 = time.perf_counter()
        fitted, frame = cl.fit(shared, features=route, model=model, window=window)
        train_s = time.perf_counter() - t0
        ev = cl.evaluate_cycle_life(fitted, shared, frame)
        results[(route, model, window)] = (fitted, ev, train_s)
        print(row(f"{label} [{fitted.name}]", scores_on(ev.predictions)))
        report[f"{route}|{model}|{window}"] = {
            "model": fitted.name, "cv_rmse": fitted.cv_rmse, "train_seconds": train_s,
            "scores": {s: {k: v for k, v in ev.scores[s].items()} for s in cl.SETS}}

    # like with like: the cells that have both the paper's features and a usable file
    paper_cells = set(results[("paper:full", "elastic-net", 100)][1].predictions["cell"])
    per_cycle_cells = set(results[("charge", None, 100)][1].predictions["cell"])
    common = paper_cells & per_cycle_cells
    print(f"\nLike with like, on the {len(common)} cells with both the paper's features and a "
          "usable per-cycle file (models as trained above):\n")
    print("| model | train | primary test | secondary test |")
    print("| --- | --- | --- | --- |")
    for key, label in [(("hybrid", None, 100), "hybrid, CV-chosen"),
                       (("charge", None, 100), "per-cycle, CV-chosen"),
                       (("charge", "elastic-net", 100), "per-cycle, elastic net"),
                       (("paper:variance", "elastic-net", 100), "paper: variance"),
                       (("paper:discharge", "elastic-net", 100), "paper: discharge"),
                       (("paper:full", "elastic-net", 100), "paper: full")]:
        print(row(label, scores_on(results[key][1].predictions, common)))
    pf = severson.paper_features(shared)
    where = pf.frame.join(split, on="cell").group_by("set").agg(
        pl.len().alias("cells"), pl.col("eol").is_not_null().sum().alias("labelled"))
    print("\nThe paper's features (beep) exist for "
          f"{pf.frame.height} cells: " + ", ".join(
              f"{r['set']} {r['cells']} ({r['labelled']} labelled)"
              for r in where.sort("set").iter_rows(named=True))
          + f"; unmatched files: {', '.join(pf.unmatched) or 'none'}")

    fitted, ev, _ = results[("charge", None, 100)]
    print("\nCandidates on the per-cycle features (selection by CV on training cells only; "
          "test columns for information):\n")
    print("| candidate | CV RMSE (train) | primary test | secondary test |")
    print("| --- | --- | --- | --- |")
    for name in cl.CANDIDATES:
        if name == fitted.name:
            other = ev
        else:
            m, fr = cl.fit(shared, features="charge", model=name)
            other = cl.evaluate_cycle_life(m, shared, fr)
        sc = scores_on(other.predictions)
        print(f"| {name}{' (chosen)' if name == fitted.name else ''} | "
              f"{fitted.cv_rmse[name]:.0f} | {fmt(sc['primary_test'][:2])} | "
              f"{fmt(sc['secondary_test'][:2])} |")

    # prediction time
    cells = severson.load_cells(shared, ["b1c0"])
    t0 = time.perf_counter()
    reps = 20
    for _ in range(reps):
        cl.predict_cycle_life(fitted, cells)
    per_cell = (time.perf_counter() - t0) / reps
    print(f"\nTimes: training {results[('charge', None, 100)][2]:.1f} s (selection over "
          f"{len(cl.CANDIDATES)} candidates, 5x3 CV), prediction {1000 * per_cell:.1f} ms per "
          f"cell (features + model, {cells.height} rows).")

    # ----------------------------------------------------------------------------- RUL
    print("\n## Remaining useful life: interval coverage on held-out cells\n")
    for route in ("capacity", "charge"):
        t0 = time.perf_counter()
        model, card = rul.train_rul(shared, route=route)
        train_s = time.perf_counter() - t0
        out = rul.evaluate_rul(model, shared)
        summ = out["summary"]
        cv = {k: round(v) for k, v in model.cv_rmse.items()}
        bands = {e: round(float(q), 3)
                 for e, q in zip(model.band_edges, model.band_quantiles, strict=True)}
        print(f"### route '{route}': {model.name} (CV RMSE {cv}); nominal coverage "
              f"{1 - model.alpha:.0%}; log half-widths by k band "
              f"{bands}\n")
        print("| set | k | samples | cells | coverage | median width | MAE | RMSE |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for s in ("primary_test", "secondary_test"):
            v = summ[s]
            print(f"| {s} | all | {v['n']} | {v['cells']} | {v['coverage']:.3f} | "
                  f"{v['median_width']:.0f} | {v['mae']:.0f} | {v['rmse']:.0f} |")
        for r in out["by_k"].iter_rows(named=True):
            print(f"| {r['set']} | {r['cycle']} | {r['n']} | {r['cells']} | {r['coverage']:.3f} "
                  f"| {r['median_width']:.0f} | {r['mae']:.0f} | {r['rmse']:.0f} |")
        frame = severson.load_cells(shared, ["b1c6"])
        t0 = time.perf_counter()
        for _ in range(reps):
            rul.predict_rul(model, frame, 300)
        pred_s = (time.perf_counter() - t0) / reps
        print(f"\ntraining {train_s:.1f} s, prediction {1000 * pred_s:.1f} ms per call\n")
        report[f"rul|{route}"] = {"model": model.name, "cv_rmse": model.cv_rmse,
                                  "summary": summ, "train_seconds": train_s,
                                  "by_k": out["by_k"].to_dicts()}
        if args.save:
            from batteryloop.health import artifacts
            print(f"saved: {artifacts.save(model, card, args.save)}")

    if args.save:
        for route, model_name, window, _ in runs:
            if window == 100 and model_name is None:
                cl.train_cycle_life(shared, features=route, root=args.save)
                print(f"saved: cycle-life-{route.replace(':', '-')} under {args.save}")

    # ----------------------------------------------------------------------------- knee
    print("## Knee (Bacon-Watts) against the published knees (kneepoint-review)\n")
    rows = severson.load_cells(shared)
    lab = severson.labels(shared)
    good = split.filter(~pl.col("sparse") & pl.col("eol").is_not_null()
                        & (pl.col("n_rows") >= 0.85 * pl.col("eol"))
                        & (pl.col("last_capacity_ah") < 0.95))["cell"].to_list()
    t0 = time.perf_counter()
    found = []
    per_cell = rows.filter(pl.col("cell").is_in(good)).partition_by("cell", as_dict=True)
    for cell, g in per_cell.items():
        k = trajectory.knee(g)
        found.append((cell[0], None if k is None else k.cycle, None if k is None else k.onset))
    knee_s = (time.perf_counter() - t0) / max(len(found), 1)
    kn = pl.DataFrame(found, schema=["cell", "knee", "onset"], orient="row").join(lab, on="cell")
    ratio = (kn["knee"] / kn["BW_point"]).to_numpy()
    onset = (kn["onset"] / kn["BW_onset"]).drop_nulls().to_numpy()
    print(f"{kn.height} cells whose file covers >= 85 % of the life and ends below 0.95 Ah: knee "
          f"found in {kn['knee'].is_not_null().sum()}, before the labelled EOL in "
          f"{(kn['knee'] < kn['eol']).sum()}; our knee (rank) / published BW knee (cycle): "
          f"median {np.median(ratio):.3f}, 10-90 % {np.quantile(ratio, 0.1):.3f}-"
          f"{np.quantile(ratio, 0.9):.3f} (rows are ~0.93-0.95 of cycles); onset ratio median "
          f"{np.median(onset):.3f}. {1000 * knee_s:.0f} ms per cell (knee + onset).")
    report["knee"] = {"cells": kn.height, "ratio_median": float(np.median(ratio))}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
