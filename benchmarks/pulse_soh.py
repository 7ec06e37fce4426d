"""Pulse-test SOH on PulseBat, whole cells held out, beside the published figures.

For every method of :mod:`batteryloop.health.pulse_model`: MAPE per cell type and pooled over
every held-out pulse test (5-fold, folds over the physical cell, the same folds for every method),
RMSE, the measured coverage of the nominal 90 % intervals on the held-out cells, and the share of
held-out tests flagged out of domain. Beside them: Tao et al. (Nature Communications 15, 10154,
2024), MAPE under 6 %, and a plain ridge regression with whole cells held out, about 2.7 % pooled
over the four types (figure as quoted in our brief; our own ``ridge_raw`` is that baseline run on
our splits). Then the same with folds over the sample id (the README's ID: the NMC 2.1 Ah samples
of one cell may then sit in train and test), the out-of-domain checks (each type held out whole,
SOC outside the trained range, a wrong rating), and training and prediction times.

    .venv/bin/python benchmarks/pulse_soh.py                      # everything (a few minutes)
    .venv/bin/python benchmarks/pulse_soh.py --methods ridge_raw ridge ensemble --no-ood
    .venv/bin/python benchmarks/pulse_soh.py --save var/models --json /tmp/pulse_soh.json

``BATTERYLOOP_SHARED`` (default ``../shared``) finds the data (``data/pulse/pulsebat``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

from batteryloop.health import pulse_model as pm
from batteryloop.health.datasets import load_pulsebat
from batteryloop.health.pulse_features import PulseTest

ROOT = Path(__file__).resolve().parents[1]
TYPES = ["LFP_35Ah", "LMO_10Ah", "NMC_2.1Ah", "NMC_21Ah"]


def shared_dir() -> Path:
    return Path(os.environ.get("BATTERYLOOP_SHARED", ROOT.parent / "shared")).resolve()


def table(reports: dict[str, dict], *, with_intervals: bool = True) -> None:
    head = ["method", *TYPES, "pooled MAPE", "pooled RMSE"]
    if with_intervals:
        head += ["coverage (90 %)", "flagged", "fit s/fold"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] * len(head)) + "|")
    for name, r in reports.items():
        cells = [f"{r['per_type'][t]['mape_pct']:.2f}" if t in r["per_type"] else "-"
                 for t in TYPES]
        line = [name, *cells, f"**{r['pooled']['mape_pct']:.2f}**",
                f"{r['pooled']['rmse_pct']:.2f}"]
        if with_intervals:
            cov = " / ".join(f"{r['per_type'][t]['coverage']:.2f}" for t in TYPES
                             if t in r["per_type"])
            line += [f"{r['pooled']['coverage']:.3f} ({cov})",
                     f"{100 * r['pooled']['flagged_share']:.1f} %",
                     f"{r['fit_seconds_per_fold']:.2f}"]
        print("| " + " | ".join(line) + " |")
    pad = ["-"] * (3 if with_intervals else 0)
    print("| Tao et al. 2024 (published) | " + " | ".join(["< 6"] * 4) + " | < 6 | - | "
          + " | ".join(pad) + (" |" if pad else "|"))
    print("| plain ridge, cells held out (quoted) | - | - | - | - | ~2.7 | - | "
          + " | ".join(pad) + (" |" if pad else "|"))


def rmse_table(reports: dict[str, dict]) -> None:
    print("| method | " + " | ".join(TYPES) + " | pooled |")
    print("|" + "|".join(["---"] * (len(TYPES) + 2)) + "|")
    for name, r in reports.items():
        print(f"| {name} | " + " | ".join(f"{r['per_type'][t]['rmse_pct']:.2f}" for t in TYPES)
              + f" | {r['pooled']['rmse_pct']:.2f} |")


def ood_table(ood: dict) -> None:
    print("| case | tests | flagged | MAPE | coverage | mean width (SOH) |")
    print("|---|---|---|---|---|---|")
    for section, label in (("held_out_type", "type never trained on: "),
                           ("soc_outside", "SOC 5 or 50 % (trained 10-45 %): "),
                           ("wrong_type", "declared wrong rating: ")):
        for key, s in ood[section].items():
            print(f"| {label}{key} | {s['rows']} | {100 * s['flagged_share']:.1f} % | "
                  f"{s['mape_pct']:.1f} | {s['coverage']:.3f} | {s['mean_width']:.3f} |")


def timings(shared: Path, frame: pl.DataFrame, method: str, report: dict,
            save: Path | None, repeat: int) -> dict:
    started = time.perf_counter()
    load_pulsebat(shared)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    model, card = pm.train(shared, method=method, scores=report, root=save)
    train_s = time.perf_counter() - started
    rows = frame.sample(n=min(repeat, frame.height), seed=0).to_dicts()
    tests = [PulseTest.from_row(r) for r in rows]
    per_test, validate = [], []
    for r, t in zip(rows, tests, strict=True):
        a = time.perf_counter()
        PulseTest.from_row(r)
        validate.append(time.perf_counter() - a)
        a = time.perf_counter()
        pm.predict(model, t)
        per_test.append(time.perf_counter() - a)
    started = time.perf_counter()
    pm.predict_frame(model, frame)
    batch_s = time.perf_counter() - started
    return {
        "load_cached_s": load_s, "train_s": train_s,
        "validate_ms_median": 1000 * statistics.median(validate),
        "predict_ms_median": 1000 * statistics.median(per_test),
        "predict_ms_p99": 1000 * float(np.quantile(per_test, 0.99)),
        "batch_us_per_test": 1e6 * batch_s / frame.height,
        "model_version": model.version, "training_data_sha256": card.training_data_sha256,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", nargs="+", default=list(pm.METHODS), choices=list(pm.METHODS))
    ap.add_argument("--final", default=pm.DEFAULT_METHOD, choices=list(pm.METHODS),
                    help="the method to time, to check out of domain and to save")
    ap.add_argument("--no-ood", action="store_true", help="skip the out-of-domain checks")
    ap.add_argument("--no-sample-grouping", action="store_true",
                    help="skip the table with folds over the sample id")
    ap.add_argument("--repeat", type=int, default=200, help="single predictions to time")
    ap.add_argument("--save", type=Path, default=None, help="save the final model here")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    shared = shared_dir()
    frame = load_pulsebat(shared)
    out: dict = {"machine": f"{platform.processor() or platform.machine()}, "
                            f"{os.cpu_count()} CPUs, Python {platform.python_version()}"}

    print("# Pulse-test SOH on PulseBat (Tao et al., Nat. Commun. 15, 10154, 2024)\n")
    counts = frame.group_by("cell_type").agg(
        pl.col("cell_id").n_unique().alias("cells"), pl.col("sample_id").n_unique().alias("samples"),
        pl.len().alias("tests")).sort("cell_type")
    print("data: " + "; ".join(f"{r['cell_type']} {r['cells']} cells / {r['samples']} samples / "
                               f"{r['tests']} tests" for r in counts.to_dicts()))
    print("SOC 5..50 % in steps of 5; MAPE and RMSE in % of SOH, over every held-out test.\n")

    print("## MAPE (%), 5 folds over the physical cell (cell_id)\n")
    reports = {}
    for m in args.methods:
        started = time.perf_counter()
        reports[m] = pm.evaluate(frame, m)
        reports[m]["evaluate_seconds"] = time.perf_counter() - started
    table(reports)
    print("\n## RMSE (% SOH), same folds\n")
    rmse_table(reports)
    out["by_cell"] = reports

    if not args.no_sample_grouping:
        print("\n## MAPE (%), 5 folds over the sample id (README grouping)\n")
        by_sample = {m: pm.evaluate(frame, m, group_by="sample_id")
                     for m in args.methods if m in ("ridge_raw", "ridge_raw_cv", "ridge", args.final)}
        table(by_sample)
        out["by_sample"] = by_sample

    if not args.no_ood:
        print(f"\n## Out of domain ({args.final}): flagged share and interval coverage\n")
        started = time.perf_counter()
        out["ood"] = pm.evaluate_ood(frame, args.final)
        ood_table(out["ood"])
        print(f"\n(out-of-domain checks: {time.perf_counter() - started:.0f} s)")

    final = reports.get(args.final) or pm.evaluate(frame, args.final)
    print(f"\n## Time ({args.final}; {out['machine']})\n")
    t = timings(shared, frame, args.final, final, args.save, args.repeat)
    out["timings"] = t
    print(f"- load (cached Parquet): {t['load_cached_s'] * 1000:.0f} ms for {frame.height} tests")
    print(f"- train on all {frame.height} tests (fit + inner 5-fold calibration + type-agnostic "
          f"fallback): {t['train_s']:.1f} s")
    print(f"- one PulseTest: validate + features {t['validate_ms_median']:.2f} ms, predict "
          f"{t['predict_ms_median']:.2f} ms median ({t['predict_ms_p99']:.2f} ms p99)")
    print(f"- batch: {t['batch_us_per_test']:.0f} us per test")
    print("- evaluate (5 folds) per method: " + ", ".join(
        f"{m} {r['evaluate_seconds']:.1f} s" for m, r in reports.items()))
    if args.save:
        print(f"- saved: {args.save / pm.NAME / t['model_version']} (training data SHA-256 "
              f"{t['training_data_sha256'][:16]}...)")
    if args.json:
        args.json.write_text(json.dumps(pm.json_ready(out), indent=2))
        print(f"\njson: {args.json}")


if __name__ == "__main__":
    main()
