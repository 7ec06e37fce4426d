"""Does a grouping keep cells that later age alike together? Checked on the deepsort cells.

For a grouping (labels) and a second-life outcome ``y`` per cell, the within-group spread is the
pooled within-group standard deviation, ``sqrt(sum over groups of sum (y - group mean)^2 /
(n - groups))``. Its permutation baseline shuffles the same labels over the cells (same group
count and sizes), so ``ratio = spread / mean permuted spread`` is 1 for a grouping that knows
nothing about later ageing and falls towards 0 as groups hold cells that age alike; ``p_value`` is
the share of shuffles at least as tight (with the +1 correction).

``deepsort_study`` compares, at several group counts, capacity-only sorting (equal-count bins of
the first-cycle capacity, what a grader with a capacity tester does) with k-means and a Gaussian
mixture on all 115 standardised one-charge features, on the outcomes of ``deepsort_outcomes``
(log cycle life, capacity retention at cycles 100 and 190, fade rate). No outcome is used to form
the groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from batteryloop.errors import ValidationFailed

from .consistency import cluster
from .features import deepsort_cells, deepsort_feature_columns, deepsort_outcomes

OUTCOMES = ("log_cycles", "retention_100", "retention_190", "fade_rate")
GROUPINGS = ("capacity_bins", "kmeans_features", "gmm_features")


def _spreads(labels: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pooled within-group std for each row of ``labels`` (rows, n) with values 0..k-1."""
    rows, n = labels.shape
    k = int(labels.max()) + 1
    flat = (labels + k * np.arange(rows)[:, None]).ravel()
    yy = np.broadcast_to(y, labels.shape).ravel()
    count = np.bincount(flat, minlength=rows * k)
    total = np.bincount(flat, yy, minlength=rows * k)
    groups = (count > 0).reshape(rows, k).sum(axis=1)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    ssw = np.bincount(np.repeat(np.arange(rows), n), (yy - mean[flat]) ** 2, minlength=rows)
    return np.sqrt(ssw / np.maximum(n - groups, 1))


def outcome_spread(
    labels: np.ndarray, y: np.ndarray, n_permutations: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Within-group spread of ``y`` under ``labels`` and against shuffled labels (cells with
    label -1 are left out)."""
    labels = np.asarray(labels)
    y = np.asarray(y, dtype=float)
    if labels.shape != y.shape:
        raise ValidationFailed(f"{labels.size} labels for {y.size} outcomes", location="labels")
    keep = (labels >= 0) & np.isfinite(y)
    _, lab = np.unique(labels[keep], return_inverse=True)
    yk = y[keep]
    spread = float(_spreads(lab[None, :], yk)[0])
    rng = np.random.default_rng(seed)
    shuffled = rng.permuted(np.broadcast_to(lab, (n_permutations, lab.size)), axis=1)
    null = _spreads(shuffled, yk)
    return {
        "spread": spread,
        "null_mean": float(null.mean()),
        "ratio": spread / float(null.mean()),
        "p_value": float((1 + (null <= spread).sum()) / (n_permutations + 1)),
        "groups": float(np.unique(lab).size),
        "size_min": float(np.bincount(lab).min()),
        "size_max": float(np.bincount(lab).max()),
    }


def deepsort_groupings(cells: pl.DataFrame, n_groups: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The groupings compared: capacity bins and feature clusterings, labels per cell."""
    features = deepsort_feature_columns(cells)
    return {
        "capacity_bins": cluster(cells, ["capacity"], "binning", n_groups=n_groups),
        "kmeans_features": cluster(cells, features, "kmeans", n_groups=n_groups, seed=seed),
        "gmm_features": cluster(cells, features, "gmm", n_groups=n_groups, seed=seed),
    }


def deepsort_study(
    shared: str | Path,
    n_groups: Sequence[int] = (4, 6, 8, 10, 12),
    outcomes: Sequence[str] = OUTCOMES,
    n_permutations: int = 2000,
    seed: int = 0,
) -> pl.DataFrame:
    """One row per (group count, grouping, outcome): spread, permutation baseline, ratio, p."""
    cells = deepsort_cells(shared)
    table = cells.join(deepsort_outcomes(shared), on="cell_id", how="inner")
    rows = []
    for k in n_groups:
        for name, labels in deepsort_groupings(table.select(cells.columns), int(k), seed).items():
            for outcome in outcomes:
                stats = outcome_spread(labels, table[outcome].to_numpy(), n_permutations, seed)
                rows.append({"n_groups": int(k), "grouping": name, "outcome": outcome} | stats)
    return pl.DataFrame(rows)
