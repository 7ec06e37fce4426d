"""Remaining useful life at any point of life, with a prediction interval.

From a cell's history up to cycle ``k``, predict the cycles left until its capacity falls to the
end-of-life threshold (80 % of nominal, 0.88 Ah for the MIT cells: the labels of
``severson_eol.csv``), with an interval.

* **Features at k** (causal: only rows with cycle <= k): the cycle ``k``; the capacity now (rolling
  median of the last 11 cycles) and its fade from the first cycles (median of cycles 2-11); the
  margin to the threshold; the slopes of the (5-cycle median-filtered) capacity over the last 20,
  50 and 100 cycles, the change of the 50-cycle slope from 50 cycles earlier (curvature: the knee
  shows here), and the linear extrapolation of the margin at the 50-cycle slope; for the
  ``charge`` route also each charge statistic's change from cycles 2-11 to the last 11 cycles.
  All cells and all k are featurised in one columnar pass (rolling expressions ``over`` cells).
* **Target**: ``log(EOL - k)``; the prediction is ``exp`` of the model's output.
* **Interval**: cross-conformal by cell (Vovk, "Cross-conformal predictors", Annals of Mathematics
  and Artificial Intelligence 74, 9-28, 2015; in the CV+ form of Barber et al., "Predictive
  inference with the jackknife+", Annals of Statistics 49, 486-507, 2021, simplified to a shared
  score quantile): out-of-fold absolute log residuals of the training cells (5 folds grouped by
  cell), each cell weighted equally, give the quantile ``q`` at level ``(1 - alpha)(1 + 1/n)``;
  the interval is ``[exp(y - q), exp(y + q)]`` (multiplicative, so it narrows as the end nears).
  Quantiles are taken per band of k (Mondrian conformal prediction; Vovk, Gammerman and Shafer,
  Algorithmic Learning in a Random World, 2005) where the band holds enough training cells.
  Exchangeability of cells is the assumption behind the coverage; batch 3 was run months later
  with other protocols, so its coverage is measured, not promised.

For the MIT files, ``cycle`` is the rank of the kept row (see :mod:`batteryloop.health.severson`),
and cycles left are counted on that scale: ``EOL - k`` with the labelled EOL. The files hold
about 93-95 % of a cell's cycles, so a rank-k row is about cycle 1.06 k.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline

from batteryloop.errors import ValidationFailed
from batteryloop.health import artifacts, severson
from batteryloop.health import severson_features as sf
from batteryloop.health.cycle_life import _prep
from batteryloop.health.trajectory import CYCLE_COLUMNS

THRESHOLD = 0.8
MIN_HISTORY = 100
GRID_STEP = 20
EVAL_K: tuple[int, ...] = (100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500)
#: Bands of k for the Mondrian quantiles (lower edges).
K_BANDS: tuple[int, ...] = (100, 300, 600, 1000)
MIN_BAND_CELLS = 8
CANDIDATES: tuple[str, ...] = ("gradient-boosting", "ridge")
ROUTES: tuple[str, ...] = ("capacity", "charge")


def _rolling_slope(y: str, w: int) -> pl.Expr:
    x = pl.col("cycle").cast(pl.Float64)
    yy = pl.col(y)
    mx = x.rolling_mean(w).over("cell")
    my = yy.rolling_mean(w).over("cell")
    mxy = (x * yy).rolling_mean(w).over("cell")
    mxx = (x * x).rolling_mean(w).over("cell")
    return (mxy - mx * my) / (mxx - mx * mx)


def feature_names(route: str) -> list[str]:
    base = ["k", "q_now", "fade", "margin_ah", "slope_20", "slope_50", "slope_100",
            "curvature_50", "log_cycles_to_threshold_linear", "q_max_minus_now"]
    if route == "charge":
        base += [f"{s} | change" for s in severson.CHARGE_STATISTICS]
    return base


def history_features(frame: pl.DataFrame, route: str = "capacity", *,
                     nominal_ah: float = severson.NOMINAL_AH, threshold: float = THRESHOLD
                     ) -> pl.DataFrame:
    """Features at every cycle of every cell (``cell``, ``cycle`` and :func:`feature_names`),
    each from that cell's rows up to that cycle only."""
    df = sf.normalise(frame, route, nominal_ah=nominal_ah)
    limit = threshold * nominal_ah
    c, q = pl.col("cycle"), pl.col("capacity_ah")
    early = (c >= 2) & (c <= 11)
    df = df.with_columns(
        q.rolling_median(5, min_samples=1).over("cell").alias("_qm"),
        q.rolling_median(11, min_samples=1).over("cell").alias("q_now"),
        q.filter(early).median().over("cell").alias("_q0"),
        q.cum_max().over("cell").alias("_qmax"),
    )
    df = df.with_columns(
        c.cast(pl.Float64).alias("k"),
        (1 - pl.col("q_now") / pl.col("_q0")).alias("fade"),
        (pl.col("q_now") - limit).alias("margin_ah"),
        _rolling_slope("_qm", 20).alias("slope_20"),
        _rolling_slope("_qm", 50).alias("slope_50"),
        _rolling_slope("_qm", 100).alias("slope_100"),
        (pl.col("_qmax") - pl.col("q_now")).alias("q_max_minus_now"),
    )
    df = df.with_columns(
        (pl.col("slope_50") - pl.col("slope_50").shift(50).over("cell")).alias("curvature_50"),
        (pl.col("margin_ah").clip(lower_bound=1e-4)
         / (-pl.col("slope_50")).clip(lower_bound=1e-6)).clip(upper_bound=1e5).log()
        .alias("log_cycles_to_threshold_linear"),
    )
    if route == "charge":
        df = df.with_columns(
            (pl.col(s).rolling_median(11, min_samples=1).over("cell")
             - pl.col(s).filter(early).median().over("cell")).alias(f"{s} | change")
            for s in severson.CHARGE_STATISTICS)
    return df.select("cell", "cycle", *feature_names(route))


def _candidate(name: str, seed: int = 0) -> Any:
    if name == "gradient-boosting":
        return GradientBoostingRegressor(n_estimators=200, learning_rate=0.05, max_depth=3,
                                         min_samples_leaf=20, subsample=0.8, random_state=seed)
    if name == "ridge":
        return make_pipeline(*_prep(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    raise ValidationFailed(f"unknown RUL model '{name}'; choose from {CANDIDATES}",
                           location="model")


@dataclass
class RulModel:
    estimator: Any
    name: str
    route: str
    features: list[str]
    alpha: float
    band_edges: list[int]  # lower edges of the k bands
    band_quantiles: list[float]  # log-scale half-width per band
    nominal_ah: float
    threshold: float
    training_cells: list[str]
    cv_rmse: dict[str, float] = field(default_factory=dict)
    fit_seconds: float = 0.0

    def half_width(self, k: np.ndarray) -> np.ndarray:
        band = np.searchsorted(np.asarray(self.band_edges), k, side="right") - 1
        return np.asarray(self.band_quantiles)[np.clip(band, 0, len(self.band_quantiles) - 1)]

    def predict_features(self, X: np.ndarray, k: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = self.estimator.predict(X)
        h = self.half_width(np.asarray(k, float))
        return np.exp(y), np.exp(y - h), np.exp(y + h)


def samples(shared: str | Path, route: str, sets: tuple[str, ...], *, step: int = GRID_STEP,
            ks: tuple[int, ...] | None = None) -> pl.DataFrame:
    """Feature rows of the scorable cells of ``sets`` at k = 100, 100 + step, ... (or at ``ks``),
    with ``eol`` and ``rul`` (= eol - k)."""
    split = severson.split(shared).filter(pl.col("scorable") & pl.col("set").is_in(sets))
    hist = history_features(severson.load_cells(shared, split["cell"].to_list()), route)
    k = pl.col("cycle")
    pick = k.is_in(list(ks)) if ks else ((k >= MIN_HISTORY) & ((k - MIN_HISTORY) % step == 0))
    return (hist.filter(pick).join(split.select("cell", "set", "eol"), on="cell")
            .with_columns((pl.col("eol") - pl.col("cycle")).alias("rul"))
            .filter(pl.col("rul") > 0))


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, level: float) -> float:
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = np.cumsum(w) / w.sum()
    idx = int(np.searchsorted(cum, min(level, 1.0), side="left"))
    return float(v[min(idx, v.size - 1)]) if level < 1 else float(v[-1])


def _quantiles(k: np.ndarray, score: np.ndarray, cells: np.ndarray, alpha: float
               ) -> tuple[list[int], list[float]]:
    """Per-band conformal quantiles of the scores, every cell weighing 1 in its band; a band with
    fewer than MIN_BAND_CELLS cells is merged into the band below it."""
    edges: list[int] = []
    for lo in K_BANDS:
        mask = k >= lo
        if len(np.unique(cells[mask])) >= MIN_BAND_CELLS or not edges:
            edges.append(lo)
    out = []
    for i, lo in enumerate(edges):
        hi = edges[i + 1] if i + 1 < len(edges) else np.inf
        mask = (k >= lo) & (k < hi)
        _, inverse, counts = np.unique(cells[mask], return_inverse=True, return_counts=True)
        n = counts.size
        weights = 1.0 / counts[inverse]
        out.append(_weighted_quantile(score[mask], weights, (1 - alpha) * (1 + 1 / n)))
    return edges, out


def train_rul(shared: str | Path, *, route: str = "capacity", model: str | None = None,
              alpha: float = 0.1, root: str | Path | None = None, seed: int = 0
              ) -> tuple[RulModel, artifacts.ModelCard]:
    """Fit on the training cells of the paper's split; interval from cross-conformal scores."""
    if not 0 < alpha < 1:
        raise ValidationFailed(f"alpha must be in (0, 1), got {alpha}", location="alpha")
    start = time.perf_counter()
    train = samples(shared, route, ("train",))
    names = feature_names(route)
    X = train.select(names).to_numpy().astype(float)
    y = np.log(train["rul"].to_numpy().astype(float))
    k = train["cycle"].to_numpy().astype(float)
    cells = train["cell"].to_numpy()
    folds = list(GroupKFold(n_splits=5).split(X, y, cells))
    oof: dict[str, np.ndarray] = {}
    cv = {}
    for name in ((model,) if model else CANDIDATES):
        pred = np.empty_like(y)
        for tr, te in folds:
            pred[te] = _candidate(name, seed).fit(X[tr], y[tr]).predict(X[te])
        oof[name] = pred
        cv[name] = float(np.sqrt(np.mean((np.exp(pred) - np.exp(y)) ** 2)))
    chosen = model or min(cv, key=cv.__getitem__)
    edges, qs = _quantiles(k, np.abs(y - oof[chosen]), cells, alpha)
    est = _candidate(chosen, seed).fit(X, y)
    fitted = RulModel(estimator=est, name=chosen, route=route, features=names, alpha=alpha,
                      band_edges=edges, band_quantiles=qs, nominal_ah=severson.NOMINAL_AH,
                      threshold=THRESHOLD, training_cells=sorted(set(cells.tolist())),
                      cv_rmse=cv, fit_seconds=time.perf_counter() - start)
    ev = evaluate_rul(fitted, shared)
    files = severson.training_files(shared)
    card = artifacts.ModelCard(
        name=f"rul-{route}",
        kind=f"remaining useful life at cycle k, {chosen} on log(EOL - k), cross-conformal "
             f"interval at {100 * (1 - alpha):.0f} %",
        features=names,
        target="cycles left to 0.88 Ah (80 % of nominal 1.1 Ah), severson_eol.csv minus k",
        training_data_sha256=artifacts.data_sha256(files),
        training_files=[str(p.relative_to(severson.lifecycle_dir(shared))) for p in files],
        scores={"cv_rmse_cycles_train": cv, **ev["summary"]},
        params={"model": chosen, "route": route, "alpha": alpha, "band_edges": edges,
                "band_log_half_widths": qs, "training_cells": fitted.training_cells,
                "eval_k": list(EVAL_K)},
    )
    if root is not None:
        artifacts.save(fitted, card, Path(root))
    return fitted, card


def evaluate_rul(model: RulModel, shared: str | Path,
                 sets: tuple[str, ...] = ("primary_test", "secondary_test"),
                 ks: tuple[int, ...] = EVAL_K) -> dict[str, Any]:
    """Coverage, width and error of the intervals on held-out cells at the given k (each cell at
    each k its record reaches). ``summary`` per set; ``by_k`` and ``rows`` for detail."""
    test = samples(shared, model.route, sets, ks=ks)
    X = test.select(model.features).to_numpy().astype(float)
    k = test["cycle"].to_numpy().astype(float)
    pred, lo, hi = model.predict_features(X, k)
    rows = test.select("cell", "set", "cycle", "eol", "rul").with_columns(
        pl.Series("predicted", pred), pl.Series("lower", lo), pl.Series("upper", hi)
    ).with_columns(
        ((pl.col("rul") >= pl.col("lower")) & (pl.col("rul") <= pl.col("upper"))).alias("covered"),
        (pl.col("upper") - pl.col("lower")).alias("width"),
        (pl.col("predicted") - pl.col("rul")).abs().alias("abs_error"))
    agg = [pl.len().alias("n"), pl.col("cell").n_unique().alias("cells"),
           pl.col("covered").mean().alias("coverage"),
           pl.col("width").median().alias("median_width"),
           pl.col("abs_error").mean().alias("mae"),
           (pl.col("abs_error") ** 2).mean().sqrt().alias("rmse")]
    summary = {r["set"]: {k2: v for k2, v in r.items() if k2 != "set"}
               for r in rows.group_by("set").agg(agg).iter_rows(named=True)}
    summary["nominal_coverage"] = 1 - model.alpha  # type: ignore[assignment]
    by_k = rows.group_by("set", "cycle").agg(agg).sort("set", "cycle")
    return {"summary": summary, "by_k": by_k, "rows": rows}


def predict_rul(model: RulModel, per_cycle_frame: pl.DataFrame, k: int
                ) -> tuple[float, float, float]:
    """Cycles left after cycle ``k`` of one cell, from its rows up to ``k``: (estimate, lower,
    upper) at the model's coverage ``1 - alpha``."""
    if k < MIN_HISTORY:
        raise ValidationFailed(f"RUL needs at least {MIN_HISTORY} cycles of history; k = {k}",
                               location="k")
    hist = history_features(per_cycle_frame.filter(_cycle_le(per_cycle_frame, k)), model.route,
                            nominal_ah=model.nominal_ah, threshold=model.threshold)
    if hist["cell"].n_unique() != 1:
        raise ValidationFailed(f"the frame holds {hist['cell'].n_unique()} cells; pass one",
                               location="cell")
    last = hist.tail(1)
    if int(last["cycle"][0]) < k - GRID_STEP:
        raise ValidationFailed(f"the history stops at cycle {int(last['cycle'][0])}, before k = "
                               f"{k}", location="k")
    X = last.select(model.features).to_numpy().astype(float)
    pred, lo, hi = model.predict_features(X, np.array([float(k)]))
    return float(pred[0]), float(lo[0]), float(hi[0])


def _cycle_le(frame: pl.DataFrame, k: int) -> pl.Expr:
    lower = {c.lower(): c for c in frame.columns}
    col = next((lower[c] for c in CYCLE_COLUMNS if c in lower), None)
    if col is None:
        raise ValidationFailed(f"no cycle column (one of {list(CYCLE_COLUMNS)}) in "
                               f"{frame.columns}", location="cycle")
    return pl.col(col) <= k


__all__ = ["RulModel", "evaluate_rul", "history_features", "predict_rul", "train_rul"]
