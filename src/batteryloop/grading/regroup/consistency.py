"""Consistency clustering of cells or modules: k-means, Gaussian mixture and plain capacity binning.

Cells are rows of a polars table; the features are its numeric columns, by default those of
``capacity`` (Ah), ``dcir`` (ohm), ``ocv`` (V) and ``self_discharge`` (any unit) that the table has,
plus, where the table has pulse features (``pulse_*`` columns, as ``features.pulsebat_cells`` gives),
their first two principal components, so that a block of twenty correlated pulse voltages weighs
like two features and not twenty. Every feature is standardised (z-score; a constant column
becomes 0) before clustering, and the Davies-Bouldin index is taken in the same space.

* ``binning``: sort by capacity and cut: ``n_groups`` equal-count bins, or, with
  ``target_range``, the fewest consecutive bins whose capacity range is at most ``target_range``
  (greedy from the strongest cell, which is optimal for this one-dimensional covering); with
  ``target_range`` and ``min_size`` together, the consecutive bins of at least ``min_size`` cells
  within the range that cover the most cells (a dynamic programme), the rest unassigned;
* ``kmeans``: scikit-learn ``KMeans`` (10 initialisations);
* ``gmm``: scikit-learn ``GaussianMixture`` (full covariances up to 8 features, diagonal above;
  ``reg_covar`` 1e-3 on the standardised data; 3 initialisations).

With ``target_range``, k-means and GMM are given as many groups as binning needs for that range,
and any group whose capacity range still exceeds it is split by capacity binning, so the range
holds for every method and the comparison is at equal capacity tolerance (the methods then differ
in group count, resistance spread and compactness).

Minimum group size (``min_size``, e.g. ``S*P`` so that every group can fill a pack): the smallest
group under the minimum is merged into the group with the nearest centroid (standardised
feature space) - with ``target_range``, the nearest one it can join without breaking the range -
and this repeats until every group is large enough. Cells of a group that can join none are then
offered one by one to the nearest group they fit in within the range, and those still left form
new groups among themselves where ``min_size`` of them fit the range (the binning programme); the
rest stay unassigned (label -1): not enough similar cells to fill a pack. Labels are renumbered so that
group 0 has the highest mean capacity.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl

from batteryloop.errors import ValidationFailed

Method = Literal["kmeans", "gmm", "binning"]
METHODS: tuple[Method, ...] = ("kmeans", "gmm", "binning")
BASE_FEATURES = ("capacity", "dcir", "ocv", "self_discharge")
PULSE_PREFIX = "pulse_"
PULSE_COMPONENTS = 2


def default_features(cells: pl.DataFrame) -> list[str]:
    """The base features the table has (the pulse block is added by ``feature_matrix``)."""
    return [f for f in BASE_FEATURES if f in cells.columns]


def _column(cells: pl.DataFrame, name: str) -> np.ndarray:
    if name not in cells.columns:
        raise ValidationFailed(f"no column {name!r} in the cell table", location=name)
    try:
        values = cells[name].cast(pl.Float64).to_numpy()
    except Exception as exc:
        raise ValidationFailed(f"not numeric: {exc}", location=name) from exc
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValidationFailed("missing or not a finite number", location=f"{name}[{int(bad[0])}]")
    return values


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    sd = np.where(sd > 1e-12 * np.maximum(np.abs(x).max(axis=0), 1e-300), sd, np.inf)
    return (x - x.mean(axis=0)) / sd


def feature_matrix(cells: pl.DataFrame, features: Sequence[str] | None = None) -> np.ndarray:
    """Standardised feature matrix ``(cells, features)`` used for clustering and scoring.

    ``features=None``: the base features present plus the first two principal components of the
    ``pulse_*`` block when there is one. Named features are used as given (each standardised).
    """
    if cells.height < 2:
        raise ValidationFailed(f"need at least 2 cells, got {cells.height}", location="cells")
    if features is None:
        names = default_features(cells)
        pulse = [c for c in cells.columns if c.startswith(PULSE_PREFIX)]
        if not names and not pulse:
            raise ValidationFailed(
                f"none of the default features {BASE_FEATURES} in the cell table", location="features"
            )
        blocks = [_standardise(np.column_stack([_column(cells, f) for f in names]))] if names else []
        if pulse:
            z = _standardise(np.column_stack([_column(cells, f) for f in pulse]))
            u, sv, _ = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
            k = min(PULSE_COMPONENTS, u.shape[1])
            blocks.append(_standardise(u[:, :k] * sv[:k]))
        return np.column_stack(blocks)
    features = list(features)
    if not features:
        raise ValidationFailed("no features given", location="features")
    return _standardise(np.column_stack([_column(cells, f) for f in features]))


def _greedy_bins(values: np.ndarray, width: float) -> np.ndarray:
    """Bin labels for the fewest bins of range <= width, from the largest value down."""
    order = np.argsort(-values, kind="stable")
    v = values[order]
    labels_sorted = np.empty(v.size, dtype=np.int64)
    start, label = 0, 0
    # a loop over bins (not cells): each bin ends at the first value below its top - width
    while start < v.size:
        end = start + int(np.searchsorted(-v[start:], -(v[start] - width), side="right"))
        labels_sorted[start:end] = label
        start, label = end, label + 1
    labels = np.empty_like(labels_sorted)
    labels[order] = labels_sorted
    return labels


def _segments(values: np.ndarray, width: float, min_size: int) -> np.ndarray:
    """Consecutive bins (in sorted order) of at least ``min_size`` values and range <= ``width``
    that cover as many values as possible (then in the fewest bins); the rest labelled -1.

    Dynamic programme over the sorted values: ``best[i]`` = most values covered among the first
    ``i``; the last bin ``[j, i)`` must fit the range and the size."""
    order = np.argsort(-values, kind="stable")
    v = values[order]
    n = v.size
    best = np.zeros(n + 1, dtype=np.int64)
    bins = np.zeros(n + 1, dtype=np.int64)
    start = np.full(n + 1, -1, dtype=np.int64)
    lo = 0
    for i in range(1, n + 1):  # one step per sorted value, each a vector operation over the window
        while v[lo] - v[i - 1] > width:
            lo += 1
        best[i], bins[i] = best[i - 1], bins[i - 1]
        hi = i - min_size
        if hi >= lo:
            js = np.arange(lo, hi + 1)
            key = (best[js] - js) * (n + 1) - bins[js]  # most covered, then fewest bins
            j = int(js[np.argmax(key)])
            covered = best[j] + i - j
            if covered > best[i] or (covered == best[i] and bins[j] + 1 < bins[i]):
                best[i], bins[i], start[i] = covered, bins[j] + 1, j
    labels_sorted = np.full(n, -1, dtype=np.int64)
    i, label = n, 0
    while i > 0:
        if start[i] < 0:
            i -= 1
            continue
        labels_sorted[start[i] : i] = label
        i, label = int(start[i]), label + 1
    labels = np.empty_like(labels_sorted)
    labels[order] = labels_sorted
    return labels


def _equal_bins(values: np.ndarray, n_groups: int) -> np.ndarray:
    order = np.argsort(-values, kind="stable")
    labels = np.empty(values.size, dtype=np.int64)
    labels[order] = (np.arange(values.size) * n_groups) // values.size
    return labels


def _model_labels(x: np.ndarray, method: str, k: int, seed: int) -> np.ndarray:
    if k == 1:
        return np.zeros(x.shape[0], dtype=np.int64)
    from threadpoolctl import threadpool_limits

    # a few hundred cells: threads cost more than they save (10x slower on a busy 2-core host)
    with threadpool_limits(1 if x.shape[0] < 20_000 else None):
        return _fit_predict(x, method, k, seed)


def _fit_predict(x: np.ndarray, method: str, k: int, seed: int) -> np.ndarray:
    if method == "kmeans":
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x).astype(np.int64)
    from sklearn.mixture import GaussianMixture

    cov = "full" if x.shape[1] <= 8 else "diag"
    model = GaussianMixture(n_components=k, covariance_type=cov, reg_covar=1e-3, n_init=3, random_state=seed)
    return model.fit(x).predict(x).astype(np.int64)


def _split_wide(labels: np.ndarray, caps: np.ndarray, width: float) -> np.ndarray:
    out = labels.copy()
    nxt = labels.max() + 1
    for g in np.unique(labels):
        idx = np.flatnonzero(labels == g)
        if np.ptp(caps[idx]) > width:
            sub = _greedy_bins(caps[idx], width)
            out[idx] = np.where(sub == 0, g, nxt + sub - 1)
            nxt += sub.max()
    return out


def _enforce_min_size(
    labels: np.ndarray, x: np.ndarray, caps: np.ndarray, min_size: int, width: float | None
) -> np.ndarray:
    labels = labels.copy()
    while True:
        groups, sizes = np.unique(labels[labels >= 0], return_counts=True)
        small = groups[sizes < min_size]
        if small.size == 0:
            return labels
        g = small[np.argmin(sizes[sizes < min_size])]
        members = labels == g
        others = groups[groups != g]
        target = -1
        if others.size:
            centre = x[members].mean(axis=0)
            dist = [np.linalg.norm(x[labels == o].mean(axis=0) - centre) for o in others]
            for o in others[np.argsort(dist, kind="stable")]:
                joined = caps[members | (labels == o)]
                if width is None or np.ptp(joined) <= width:
                    target = int(o)
                    break
        labels[members] = target


def _adopt(labels: np.ndarray, x: np.ndarray, caps: np.ndarray, width: float) -> np.ndarray:
    """Give each unassigned cell to the nearest group it fits in without breaking the range."""
    labels = labels.copy()
    groups = np.unique(labels[labels >= 0])
    if groups.size == 0:
        return labels
    centre = np.array([x[labels == g].mean(axis=0) for g in groups])
    hi = np.array([caps[labels == g].max() for g in groups])
    lo = np.array([caps[labels == g].min() for g in groups])
    for i in np.flatnonzero(labels < 0):  # the few cells a size rule left out, not every cell
        fits = np.maximum(hi, caps[i]) - np.minimum(lo, caps[i]) <= width
        if fits.any():
            dist = np.where(fits, np.linalg.norm(centre - x[i], axis=1), np.inf)
            g = int(np.argmin(dist))
            labels[i] = groups[g]
            hi[g], lo[g] = max(hi[g], caps[i]), min(lo[g], caps[i])
    return labels


def _renumber(labels: np.ndarray, caps: np.ndarray) -> np.ndarray:
    out = np.full_like(labels, -1)
    groups = np.unique(labels[labels >= 0])
    means = np.array([caps[labels == g].mean() for g in groups])
    for new, g in enumerate(groups[np.argsort(-means, kind="stable")]):
        out[labels == g] = new
    return out


def cluster(
    cells: pl.DataFrame,
    features: Sequence[str] | None = None,
    method: Method = "kmeans",
    n_groups: int | None = None,
    target_range: float | None = None,
    min_size: int | None = None,
    *,
    capacity: str = "capacity",
    seed: int = 0,
) -> np.ndarray:
    """Group labels per cell (``-1``: unassigned), group 0 the strongest by mean capacity.

    Give ``n_groups`` or ``target_range`` (a capacity range in the capacity column's unit). See the
    module text for the methods, the range rule and ``min_size``.
    """
    if method not in METHODS:
        raise ValidationFailed(f"unknown method {method!r}; one of {METHODS}", location="method")
    if (n_groups is None) == (target_range is None):
        raise ValidationFailed("give exactly one of n_groups and target_range", location="n_groups")
    x = feature_matrix(cells, features)
    caps = _column(cells, capacity)
    n = cells.height
    if n_groups is not None and (
        isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)) or not 1 <= n_groups <= n
    ):
        raise ValidationFailed(f"must be a whole number in 1..{n}, got {n_groups!r}", location="n_groups")
    width = None
    if target_range is not None:
        try:
            width = float(target_range)
        except (TypeError, ValueError):
            width = float("nan")
        if not np.isfinite(width) or width < 0:
            raise ValidationFailed(f"must be a finite number >= 0, got {target_range!r}", location="target_range")
    if min_size is not None and (
        isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 1
    ):
        raise ValidationFailed(f"must be a whole number >= 1, got {min_size!r}", location="min_size")

    if method == "binning" and width is not None and min_size is not None:
        return _renumber(_segments(caps, width, int(min_size)), caps)
    if method == "binning":
        labels = _equal_bins(caps, int(n_groups)) if width is None else _greedy_bins(caps, width)
    else:
        k = int(n_groups) if width is None else int(_greedy_bins(caps, width).max()) + 1
        labels = _model_labels(x, method, min(k, n), seed)
        if width is not None:
            labels = _split_wide(labels, caps, width)
    if min_size is not None:
        labels = _enforce_min_size(labels, x, caps, int(min_size), width)
        if width is not None:
            labels = _adopt(labels, x, caps, width)
            rest = np.flatnonzero(labels < 0)
            if rest.size >= min_size:  # the cells no group could take: new groups among them
                extra = _segments(caps[rest], width, int(min_size))
                labels[rest] = np.where(extra >= 0, labels.max() + 1 + extra, -1)
    return _renumber(labels, caps)


def score(
    cells: pl.DataFrame,
    labels: np.ndarray,
    features: Sequence[str] | None = None,
    *,
    capacity: str = "capacity",
    resistance: str = "dcir",
) -> dict[str, float]:
    """Consistency of a grouping (unassigned cells, label -1, left out).

    ``capacity_range_max`` / ``_mean``: max - min capacity within a group, worst and mean over
    groups; ``capacity_std``: pooled within-group standard deviation
    (sqrt(within sum of squares / (n - groups))); ``dcir_spread_max`` / ``_mean``: max - min
    resistance within a group (NaN without a resistance column); ``davies_bouldin``: on the
    standardised features (lower is more compact and separated; NaN for fewer than 2 groups or
    all-singleton groups); and the group count, sizes and unassigned count.
    """
    labels = np.asarray(labels)
    if labels.shape != (cells.height,):
        raise ValidationFailed(f"{labels.size} labels for {cells.height} cells", location="labels")
    x = feature_matrix(cells, features)
    caps = _column(cells, capacity)
    res = _column(cells, resistance) if resistance in cells.columns else None
    keep = labels >= 0
    lab = labels[keep]
    groups, inverse, sizes = np.unique(lab, return_inverse=True, return_counts=True)
    k = groups.size
    out: dict[str, float] = {
        "n_groups": float(k),
        "n_unassigned": float((~keep).sum()),
        "size_min": float(sizes.min()) if k else np.nan,
        "size_max": float(sizes.max()) if k else np.nan,
    }

    def ranges(v: np.ndarray) -> np.ndarray:
        hi = np.full(k, -np.inf)
        lo = np.full(k, np.inf)
        np.maximum.at(hi, inverse, v)
        np.minimum.at(lo, inverse, v)
        return hi - lo

    c = caps[keep]
    if k:
        r = ranges(c)
        mean = np.bincount(inverse, c, k) / sizes
        ssw = float(((c - mean[inverse]) ** 2).sum())
        out["capacity_range_max"] = float(r.max())
        out["capacity_range_mean"] = float(r.mean())
        out["capacity_std"] = float(np.sqrt(ssw / (c.size - k))) if c.size > k else 0.0
    else:
        out.update(capacity_range_max=np.nan, capacity_range_mean=np.nan, capacity_std=np.nan)
    if res is not None and k:
        rr = ranges(res[keep])
        out["dcir_spread_max"] = float(rr.max())
        out["dcir_spread_mean"] = float(rr.mean())
    else:
        out["dcir_spread_max"] = out["dcir_spread_mean"] = np.nan
    if 2 <= k < lab.size:
        from sklearn.metrics import davies_bouldin_score

        out["davies_bouldin"] = float(davies_bouldin_score(x[keep], lab))
    else:
        out["davies_bouldin"] = np.nan
    return out


def compare(
    cells: pl.DataFrame,
    features: Sequence[str] | None = None,
    n_groups: int | None = None,
    target_range: float | None = None,
    min_size: int | None = None,
    methods: Sequence[Method] = METHODS,
    *,
    capacity: str = "capacity",
    resistance: str = "dcir",
    seed: int = 0,
) -> pl.DataFrame:
    """Run each method with the same settings; one row per method with its scores and seconds
    (scikit-learn is imported before the clock starts)."""
    for module in ("sklearn.cluster", "sklearn.mixture", "threadpoolctl"):
        importlib.import_module(module)

    rows = []
    for method in methods:
        start = time.perf_counter()
        labels = cluster(
            cells, features, method, n_groups, target_range, min_size, capacity=capacity, seed=seed
        )
        seconds = time.perf_counter() - start
        rows.append(
            {"method": method, "seconds": seconds}
            | score(cells, labels, features, capacity=capacity, resistance=resistance)
        )
    return pl.DataFrame(rows)
