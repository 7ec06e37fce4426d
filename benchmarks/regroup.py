"""Pack assembly at scale: 10,000 second-life cells into 14S4P packs (56 cells; 178 packs, 32 left).

The cells are drawn from real ones: PulseBat's LMO 10 Ah retired cells (Tao et al., Nature
Communications 15, 10154, 2024; ``shared/data/pulse/pulsebat``, 95 cells). Each of the 10,000 is a
real cell picked at random (with replacement), keeping its measured capacity ``Q`` and its 5 s
DCIR, which is dU/dI of the pulse test at 50 % SOC (``batteryloop.grading.regroup.features``: the
least-squares slope of the end-of-pulse voltage change against the +-0.5, +-1, +1.5 C pulse
currents), each with a small jitter so that no two cells are equal: capacity x (1 + N(0, 0.5 %)),
resistance x (1 + N(0, 2 %)); seed fixed (``--seed``, default 2024).

Methods, side by side:

* ``ours``: ``assemble`` - sort by capacity and cut into windows of 56 (the 32 weakest cells left
  over), then per pack a differencing start, the exchange search for the weakest group, and the
  resistance balance that may not lower the usable capacity;
* ``ours, slack 0.01 %``: the same, with the resistance balance allowed to give up 0.01 % of the
  pack's usable capacity (``capacity_slack=1e-4``): the trade-off;
* ``ours, R blocks of 4 packs``: capacity windows of 4 packs, each cut into packs by resistance
  (``resistance_blocks=4``): packs a little wider in capacity, narrower in resistance;
* ``ours, stratified packs``: the same search, but packs dealt out in a snake (alike packs, each
  mixed) instead of capacity windows;
* ``random``: a random split into packs and groups, filled in order;
* ``k-means then fill``: k-means (``--kmeans-groups``, default 10) on standardised capacity and
  DCIR, clusters ordered by centroid capacity, cells taken cluster by cluster (in input order within
  a cluster) into packs and their series groups in order;
* ``k-means then our grouping``: the k-means packs, groups then optimised by ``regroup_packs``.

Figures per method: wall time (best of ``--repeat``), the gap of each pack's usable capacity
(weakest parallel group) to its upper bound (``pack_upper_bound``: total / S made to respect P
cells per group), mean / worst / best over packs, the packs' usable capacity in total and its
worst pack, the spread of the parallel groups' resistance within a pack ((max - min) / mean, %)
and the capacity range of the cells within a pack (homogeneity).

    .venv/bin/python benchmarks/regroup.py                 # ~10 s
    .venv/bin/python benchmarks/regroup.py --cells 20000 --repeat 5 --json /tmp/regroup.json

``BATTERYLOOP_SHARED`` (default ``../shared``) finds the data.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from batteryloop.grading.regroup.assembly import assemble, evaluate, regroup_packs
from batteryloop.grading.regroup.features import pulsebat_cells


def draw(shared: Path, n: int, seed: int, cell_type: str) -> tuple[np.ndarray, np.ndarray]:
    real = pulsebat_cells(shared, cell_type)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, real.height, n)
    caps = real["capacity"].to_numpy()[pick] * (1 + 0.005 * rng.standard_normal(n))
    res = real["dcir"].to_numpy()[pick] * (1 + 0.02 * rng.standard_normal(n))
    return caps, res


def kmeans_then_fill(caps: np.ndarray, res: np.ndarray, s: int, p: int, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    z = np.column_stack([caps, res])
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(z)
    centre = np.array([caps[labels == g].mean() for g in range(k)])
    rank = np.argsort(np.argsort(-centre))
    order = np.lexsort((np.arange(caps.size), rank[labels]))  # cluster by cluster, input order
    m = caps.size // (s * p)
    return order[: m * s * p].reshape(m, s, p)


def timed(fn, repeat: int):  # type: ignore[no-untyped-def]
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--series", type=int, default=14)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kmeans-groups", type=int, default=10)
    ap.add_argument("--cell-type", default="LMO_10Ah")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    shared = Path(os.environ.get("BATTERYLOOP_SHARED", REPO.parent / "shared"))
    s, p = args.series, args.parallel

    caps, res = draw(shared, args.cells, args.seed, args.cell_type)
    importlib.import_module("sklearn.cluster")  # imported before the clock starts

    runs = {
        "ours": lambda: assemble(caps, res, s, p),
        "ours, slack 0.01 %": lambda: assemble(caps, res, s, p, capacity_slack=1e-4),
        "ours, R blocks of 4 packs": lambda: assemble(caps, res, s, p, resistance_blocks=4),
        "ours, stratified packs": lambda: assemble(caps, res, s, p, packing="stratified"),
        "random": lambda: assemble(caps, res, s, p, packing="random", balance=False, seed=args.seed),
        "k-means then fill": lambda: evaluate(
            kmeans_then_fill(caps, res, s, p, args.kmeans_groups, args.seed), caps, res
        ),
        "k-means then our grouping": lambda: regroup_packs(
            kmeans_then_fill(caps, res, s, p, args.kmeans_groups, args.seed).reshape(-1, s * p),
            caps, res, s, p,
        ),
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.cells} cells ({args.cell_type} PulseBat, resampled with jitter, seed {args.seed}) into "
        f"{s}S{p}P packs; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f}; best of {args.repeat}"
    )
    header = (
        f"{'method':28} {'time s':>7} {'gap mean %':>11} {'gap worst %':>11} {'gap best %':>10} "
        f"{'usable Ah':>10} {'worst pack':>10} {'R spread %':>10} {'R worst %':>9} {'cap range':>9}"
    )
    print(header)
    print("-" * len(header))
    results = {}
    bound_total = None
    for name, fn in runs.items():
        a, seconds = timed(fn, args.repeat)
        sm = a.summary()
        bound_total = caps[a.cells].sum() / s if name == "ours" else bound_total
        results[name] = {"seconds": seconds} | sm
        print(
            f"{name:28} {seconds:7.3f} {sm['gap_mean_pct']:11.4f} {sm['gap_max_pct']:11.4f} "
            f"{sm['gap_min_pct']:10.5f} {sm['usable_total']:10.2f} {sm['usable_min']:10.3f} "
            f"{sm['resistance_spread_mean_pct']:10.2f} {sm['resistance_spread_max_pct']:9.2f} "
            f"{sm['capacity_range_mean']:9.3f}"
        )
    ours = results["ours"]
    ok_gap = ours["gap_max_pct"] <= 0.5
    ok_time = ours["seconds"] < 10.0
    print(
        f"\nours: every pack within {ours['gap_max_pct']:.4f} % of its bound (target 0.5 %: "
        f"{'met' if ok_gap else 'MISSED'}), in {ours['seconds']:.3f} s (target 10 s: "
        f"{'met' if ok_time else 'MISSED'}); usable {ours['usable_total']:.2f} Ah of the "
        f"{ours['upper_bound_total']:.2f} Ah the bounds allow (sum of total / S: {bound_total:.2f} Ah); "
        f"{int(ours['n_leftover'])} cells left over."
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if ok_gap and ok_time else 1


if __name__ == "__main__":
    raise SystemExit(main())
