"""Early prediction of cycle life (cycles to 80 % of nominal) from the first 100 cycles.

As in Severson et al. (Nature Energy 4, 383, 2019), models regress the logarithm of cycle life
on early-life features; the split is the paper's (training = odd positions
1..81, primary test = even positions and 83, secondary test = batch 3; see
:mod:`batteryloop.health.severson`). Feature routes (``features=``):

* ``"charge"``: per-cycle capacity and charge-curve statistics of the first 100 cycles
  (:mod:`batteryloop.health.severson_features`), for cells without voltage curves (the ``mit/``
  files);
* ``"capacity"``: the capacity features alone (a tester's per-cycle summary);
* ``"paper:variance"``, ``"paper:discharge"``, ``"paper:full"``, ``"paper:all"``: the paper's
  own features (beep, from the voltage curves), for the cells that have them;
* ``"hybrid"``: every cell with a usable per-cycle file; where the paper's log variance of
  Q100(V) - Q10(V) exists (beep features, 64 files), a small linear model on it and the per-cycle
  capacity features predicts; elsewhere the per-cycle model does. The linear model's features
  are chosen by CV on the training cells that have the variance (:data:`HYBRID_PAPER_SETS`).

Candidate models, chosen by cross-validation on the training cells only (5-fold, repeated 3
times, RMSE in cycles): elastic net (the paper's model), ridge on the k best features (k and the
penalty by inner CV), gradient boosting, extra trees and a Gaussian process (RBF + white noise: a
stationary kernel, which falls back to the mean far from the training cells; a linear term in
the kernel extrapolated batch 3 to thousands of cycles). Predictions are
clipped to [0.5, 1.5] x the range of training lives: a linear model extrapolating far outside
the cells it has seen returns thousands of cycles for a cell whose features lie off the training
cloud (batch 3), and a bound that wide only acts on such cases.

Labels are the observed lives of ``severson_eol.csv``. Scored cells: labelled, with a file of at
least 100 rows that is not sparse (:func:`batteryloop.health.severson.split`).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import SelectKBest, f_regression
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, WhiteKernel
from sklearn.gaussian_process.kernels import ConstantKernel as Constant
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNetCV, RidgeCV
from sklearn.model_selection import GridSearchCV, KFold, RepeatedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from batteryloop.errors import ValidationFailed
from batteryloop.health import artifacts, severson
from batteryloop.health import severson_features as sf

FEATURE_ROUTES: tuple[str, ...] = ("charge", "capacity", *(f"paper:{m}" for m in
                                                           (*severson.PAPER_MODELS, "all")),
                                   "hybrid")
#: The paper's feature the hybrid route keys on (log10 variance of Q100(V) - Q10(V), beep's name).
HYBRID_KEY = "abs_variance_discharge_capacity_difference_cycles_2:100"
#: Feature sets of the hybrid route's linear model for cells with the paper's variance: the
#: variance alone (the paper's variance model), with the capacity at cycle 2 (the core of its
#: discharge model), or with every per-cycle capacity feature (ridge).
HYBRID_PAPER_SETS: dict[str, tuple[str, ...]] = {
    "variance": (HYBRID_KEY,),
    "variance + capacity at cycle 2": (HYBRID_KEY, "q_cycle2"),
    "variance + capacity features": (HYBRID_KEY, "q_cycle2", "q_max_minus_cycle2", "q_last",
                                     "q_delta", "q_slope_2_n", "q_intercept_2_n",
                                     "q_slope_last10", "q_intercept_last10", "q_noise"),
}
CANDIDATES: tuple[str, ...] = ("elastic-net", "ridge-select", "gradient-boosting", "extra-trees",
                               "gaussian-process")
SETS: tuple[str, ...] = ("train", "primary_test", "secondary_test")
CLIP = (0.5, 1.5)


def _finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.where(np.isfinite(x), x, np.nan)


def _prep() -> list[Any]:
    return [FunctionTransformer(_finite), SimpleImputer(strategy="median"), StandardScaler()]


def candidate(name: str, seed: int = 0) -> BaseEstimator:
    """An unfitted candidate regressor (input: features; target: log cycle life)."""
    inner = KFold(5, shuffle=True, random_state=seed)
    if name == "elastic-net":
        return make_pipeline(*_prep(), ElasticNetCV(
            l1_ratio=[0.1, 0.5, 0.9, 0.99, 1.0], cv=inner, max_iter=200_000))
    if name == "ridge-select":
        pipe = Pipeline([("finite", FunctionTransformer(_finite)),
                         ("impute", SimpleImputer(strategy="median")),
                         ("scale", StandardScaler()),
                         ("select", SelectKBest(f_regression)),
                         ("ridge", RidgeCV(alphas=np.logspace(-2, 3, 11)))])
        return _KGrid(pipe, inner)
    if name == "gradient-boosting":
        return make_pipeline(FunctionTransformer(_finite), SimpleImputer(strategy="median"),
                             GradientBoostingRegressor(n_estimators=300, max_depth=2,
                                                       learning_rate=0.05, subsample=0.8,
                                                       random_state=seed))
    if name == "extra-trees":
        return make_pipeline(FunctionTransformer(_finite), SimpleImputer(strategy="median"),
                             ExtraTreesRegressor(n_estimators=400, min_samples_leaf=2,
                                                 max_features=0.5, random_state=seed, n_jobs=1))
    if name == "gaussian-process":
        kernel = Constant(1.0) * RBF(10.0) + WhiteKernel(0.1)
        return make_pipeline(*_prep(), GaussianProcessRegressor(
            kernel, normalize_y=True, random_state=seed))
    raise ValidationFailed(f"unknown model '{name}'; choose from {CANDIDATES}", location="model")


class _KGrid(BaseEstimator, RegressorMixin):
    """Ridge on the k best features (univariate F-test): k by inner CV, the penalty by the
    efficient leave-one-out of RidgeCV."""

    def __init__(self, pipe: Pipeline, cv: Any) -> None:
        self.pipe = pipe
        self.cv = cv

    def fit(self, X: np.ndarray, y: np.ndarray) -> _KGrid:
        ks = sorted({k for k in (3, 8, 21) if k < X.shape[1]} | {X.shape[1]})
        grid = {"select__k": ks}
        self.search_ = GridSearchCV(clone(self.pipe), grid, cv=self.cv,
                                    scoring="neg_mean_squared_error").fit(X, y)
        self.best_params_ = self.search_.best_params_
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.search_.predict(X)


class _Hybrid(BaseEstimator, RegressorMixin):
    """Routes each cell by the features it has: ``paper`` (on the columns ``paper_cols``) where
    column ``key`` is finite, ``per_cycle`` (on ``cycle_cols``) elsewhere."""

    def __init__(self, per_cycle: Any, paper: Any, key: int, paper_cols: list[int],
                 cycle_cols: list[int]) -> None:
        self.per_cycle = per_cycle
        self.paper = paper
        self.key = key
        self.paper_cols = paper_cols
        self.cycle_cols = cycle_cols

    def fit(self, X: np.ndarray, y: np.ndarray) -> _Hybrid:
        has = np.isfinite(X[:, self.key])
        self.per_cycle_ = _fit_quietly(clone(self.per_cycle), X[:, self.cycle_cols], y)
        self.paper_ = _fit_quietly(clone(self.paper), X[has][:, self.paper_cols], y[has])
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        has = np.isfinite(X[:, self.key])
        out = np.empty(len(X))
        if (~has).any():
            out[~has] = self.per_cycle_.predict(X[~has][:, self.cycle_cols])
        if has.any():
            out[has] = self.paper_.predict(X[has][:, self.paper_cols])
        return out


def _linear(cols: tuple[str, ...]) -> BaseEstimator:
    """Ordinary least squares for one or two features, ridge (penalty by LOO) for more."""
    from sklearn.linear_model import LinearRegression

    last = LinearRegression() if len(cols) <= 2 else RidgeCV(alphas=np.logspace(-2, 3, 11))
    return make_pipeline(*_prep(), last)


@dataclass
class CycleLifeModel:
    """A fitted early-prediction model and what it needs to be applied."""

    estimator: Any
    name: str  # the chosen candidate
    route: str  # feature route
    features: list[str]
    window: int
    nominal_ah: float
    life_range: tuple[float, float]  # training lives (cycles), for the clip
    training_cells: list[str]
    cv_rmse: dict[str, float] = field(default_factory=dict)  # every candidate's CV RMSE
    fit_seconds: float = 0.0

    def predict_features(self, X: np.ndarray) -> np.ndarray:
        lo, hi = self.life_range
        raw = np.exp(self.estimator.predict(X))
        return np.clip(raw, CLIP[0] * lo, CLIP[1] * hi)


def rmse_mape(true: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    true, pred = np.asarray(true, float), np.asarray(pred, float)
    if true.size == 0:
        return math.nan, math.nan
    return (float(np.sqrt(np.mean((true - pred) ** 2))),
            float(100 * np.mean(np.abs(true - pred) / true)))


# --------------------------------------------------------------------------- design matrices


def design(shared: str | Path, route: str = "charge", *, window: int = sf.DEFAULT_WINDOW
           ) -> tuple[pl.DataFrame, list[str]]:
    """Features of every scorable cell, with ``cell, set, position, eol``; and the feature names."""
    if route not in FEATURE_ROUTES:
        raise ValidationFailed(f"features must be one of {FEATURE_ROUTES}, got {route!r}",
                               location="features")
    split = severson.split(shared, min_rows=window)
    if route.startswith("paper:"):
        pf = severson.paper_features(shared).frame
        which = route.split(":", 1)[1]
        names = ([c for c in pf.columns if c not in ("cell", "source", "match", "beep_y")]
                 if which == "all" else list(severson.PAPER_MODELS[which]))
        frame = pf.select("cell", *names).join(
            split.filter(pl.col("eol").is_not_null() & (pl.col("set") != "dropped")),
            on="cell")
        return frame.sort("position"), names
    cells = split.filter(pl.col("scorable") & (pl.col("set") != "dropped"))["cell"].to_list()
    rows = severson.load_cells(shared, cells)
    per_cycle = "charge" if route == "hybrid" else route
    feats = sf.early_features(rows, per_cycle, window=window)
    names = sf.feature_names(per_cycle, window)
    if route == "hybrid":
        pf = severson.paper_features(shared).frame.select("cell", HYBRID_KEY)
        feats = feats.join(pf, on="cell", how="left")
        names = [*names, HYBRID_KEY]
    return feats.join(split, on="cell").sort("position"), names


def _xy(frame: pl.DataFrame, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return (frame.select(names).to_numpy().astype(float),
            np.log(frame["eol"].to_numpy().astype(float)))


# ------------------------------------------------------------------------------- training


def _fit_quietly(est: BaseEstimator, X: np.ndarray, y: np.ndarray) -> BaseEstimator:
    # GP noise levels at their bound and coordinate descent stopping early are expected on
    # 20-40 cells; the CV scores say what matters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def select(X: np.ndarray, y: np.ndarray, names: tuple[str, ...] = CANDIDATES, *,
           seed: int = 0, repeats: int = 3) -> dict[str, float]:
    """Cross-validated RMSE (cycles) of each candidate on the training cells (5-fold CV,
    ``repeats`` times)."""
    folds = list(RepeatedKFold(n_splits=5, n_repeats=repeats, random_state=seed).split(X))
    life = np.exp(y)
    out = {}
    for name in names:
        sq, n = 0.0, 0
        for tr, te in folds:
            est = _fit_quietly(candidate(name, seed), X[tr], y[tr])
            lo, hi = life[tr].min(), life[tr].max()
            pred = np.clip(np.exp(est.predict(X[te])), CLIP[0] * lo, CLIP[1] * hi)
            sq += float(np.sum((pred - life[te]) ** 2))
            n += te.size
        out[name] = math.sqrt(sq / n)
    return out


def fit(shared: str | Path, *, features: str = "charge", model: str | None = None,
        window: int = sf.DEFAULT_WINDOW, candidates: tuple[str, ...] = CANDIDATES,
        seed: int = 0, repeats: int = 3) -> tuple[CycleLifeModel, pl.DataFrame]:
    """Fit on the training cells; ``model=None`` picks the candidate with the lowest CV RMSE.
    Returns the model and the design frame (every scorable cell)."""
    frame, names = design(shared, features, window=window)
    train = frame.filter(pl.col("set") == "train")
    if train.height < 10:
        raise ValidationFailed(f"only {train.height} training cells with features '{features}'",
                               location="features")
    X, y = _xy(train, names)
    start = time.perf_counter()
    if features == "hybrid":
        est, chosen, cv = _fit_hybrid(X, y, names, model=model, candidates=candidates,
                                      seed=seed, repeats=repeats)
    else:
        cv = select(X, y, (model,) if model else candidates, seed=seed, repeats=repeats)
        chosen = model or min(cv, key=cv.__getitem__)
        est = _fit_quietly(candidate(chosen, seed), X, y)
    life = np.exp(y)
    fitted = CycleLifeModel(
        estimator=est, name=chosen, route=features, features=names, window=window,
        nominal_ah=severson.NOMINAL_AH, life_range=(float(life.min()), float(life.max())),
        training_cells=train["cell"].to_list(), cv_rmse=cv,
        fit_seconds=time.perf_counter() - start)
    return fitted, frame


def _cv_rmse(make: Any, X: np.ndarray, y: np.ndarray, *, seed: int, repeats: int) -> float:
    """Repeated 5-fold CV RMSE (cycles) of the estimator ``make()`` makes, with the clip."""
    life = np.exp(y)
    sq, n = 0.0, 0
    for tr, te in RepeatedKFold(n_splits=5, n_repeats=repeats, random_state=seed).split(X):
        est = _fit_quietly(make(), X[tr], y[tr])
        lo, hi = life[tr].min(), life[tr].max()
        pred = np.clip(np.exp(est.predict(X[te])), CLIP[0] * lo, CLIP[1] * hi)
        sq += float(np.sum((pred - life[te]) ** 2))
        n += te.size
    return math.sqrt(sq / n)


def _fit_hybrid(X: np.ndarray, y: np.ndarray, names: list[str], *, model: str | None,
                candidates: tuple[str, ...], seed: int, repeats: int
                ) -> tuple[_Hybrid, str, dict[str, float]]:
    """The per-cycle candidate chosen by CV on every training cell, the paper-feature set by CV
    on the training cells that have the variance (at least 10 needed)."""
    key = names.index(HYBRID_KEY)
    cycle_cols = [i for i, n in enumerate(names) if n != HYBRID_KEY]
    cv = {f"per-cycle: {k}": v for k, v in select(
        X[:, cycle_cols], y, (model,) if model else candidates, seed=seed,
        repeats=repeats).items()}
    chosen_cycle = model or min(cv, key=cv.__getitem__).split(": ", 1)[1]
    has = np.isfinite(X[:, key])
    if has.sum() < 10:
        raise ValidationFailed(f"only {int(has.sum())} training cells have the paper's "
                               "variance feature (need 10)", location="features")
    paper_cv = {}
    for label, cols in HYBRID_PAPER_SETS.items():
        idx = [names.index(c) for c in cols]
        paper_cv[label] = _cv_rmse(lambda cols=cols: _linear(cols), X[has][:, idx], y[has],
                                   seed=seed, repeats=max(repeats, 5))
    best = min(paper_cv, key=paper_cv.__getitem__)
    cv |= {f"with variance ({int(has.sum())} cells): {k}": v for k, v in paper_cv.items()}
    cols = HYBRID_PAPER_SETS[best]
    est = _Hybrid(candidate(chosen_cycle, seed), _linear(cols), key,
                  [names.index(c) for c in cols], cycle_cols).fit(X, y)
    return est, f"hybrid: {best} (linear), else per-cycle {chosen_cycle}", cv


@dataclass
class Evaluation:
    scores: dict[str, dict[str, Any]]  # set -> n, rmse, mape, cells
    predictions: pl.DataFrame  # cell, set, position, eol, predicted


def evaluate_cycle_life(model: CycleLifeModel, shared: str | Path,
                        frame: pl.DataFrame | None = None) -> Evaluation:
    """RMSE (cycles) and MAPE (%) on train / primary test / secondary test, and the cells scored."""
    if frame is None:
        frame, _ = design(shared, model.route, window=model.window)
    X = frame.select(model.features).to_numpy().astype(float)
    pred = frame.select("cell", "set", "position", "eol").with_columns(
        pl.Series("predicted", model.predict_features(X)))
    if model.route == "hybrid":  # which of the two models scored each cell
        pred = pred.with_columns(pl.Series("submodel", np.where(
            np.isfinite(X[:, model.features.index(HYBRID_KEY)]), "paper's variance",
            "per-cycle")))
    scores = {}
    for name in SETS:
        part = pred.filter(pl.col("set") == name)
        rmse, mape = rmse_mape(part["eol"].to_numpy(), part["predicted"].to_numpy())
        scores[name] = {"n": part.height, "rmse_cycles": rmse, "mape_percent": mape,
                        "cells": part["cell"].to_list()}
    return Evaluation(scores, pred)


def train_cycle_life(shared: str | Path, *, features: str = "charge", model: str | None = None,
                     window: int = sf.DEFAULT_WINDOW, root: str | Path | None = None,
                     seed: int = 0, repeats: int = 3
                     ) -> tuple[CycleLifeModel, artifacts.ModelCard]:
    """Train on the paper's training cells, score on its test sets, and (with ``root``) save the
    model and its card via :func:`batteryloop.health.artifacts.save`. ``model=None`` chooses
    among :data:`CANDIDATES` by CV on the training cells (``repeats`` x 5-fold)."""
    fitted, frame = fit(shared, features=features, model=model, window=window, seed=seed,
                        repeats=repeats)
    ev = evaluate_cycle_life(fitted, shared, frame)
    files = severson.training_files(shared)
    card = artifacts.ModelCard(
        name=f"cycle-life-{features.replace(':', '-')}",
        kind=f"early cycle-life prediction, {fitted.name} on log(cycles to 80 % of nominal) "
             f"from the first {window} cycles",
        features=fitted.features,
        target="cycle life: cycles to 0.88 Ah (80 % of nominal 1.1 Ah), severson_eol.csv",
        training_data_sha256=artifacts.data_sha256(files),
        training_files=[str(p.relative_to(severson.lifecycle_dir(shared))) for p in files],
        scores={
            "cv_rmse_cycles_train": fitted.cv_rmse,
            **{s: {k: v for k, v in ev.scores[s].items()} for s in ("primary_test",
                                                                      "secondary_test")},
            "split": "Severson et al. 2019: train = odd positions 1..81, primary test = even "
                     "positions 0..82 and 83, secondary test = batch 3; scored cells listed",
        },
        params={"model": fitted.name, "route": features, "window": window, "seed": seed,
                "cv_repeats": repeats,
                "clip": list(CLIP), "life_range": list(fitted.life_range),
                "training_cells": fitted.training_cells},
    )
    if root is not None:
        artifacts.save(fitted, card, Path(root))
    return fitted, card


def predict_cycle_life(model: CycleLifeModel, per_cycle_frame: pl.DataFrame) -> float:
    """Predicted cycle life of one cell from its per-cycle frame (at least ``model.window``
    cycles; cycle, capacity in Ah and, for the charge route, the 16 statistics). For a
    ``paper:*`` model the frame is one row of the paper's features."""
    if model.route.startswith("paper:"):
        missing = [c for c in model.features if c not in per_cycle_frame.columns]
        if missing:
            raise ValidationFailed(f"missing feature column(s) {missing}",
                                   location=", ".join(missing))
        X = per_cycle_frame.select(model.features).to_numpy().astype(float)
        return float(model.predict_features(X)[0])
    per_cycle = "charge" if model.route == "hybrid" else model.route
    feats = sf.early_features(per_cycle_frame, per_cycle, window=model.window,
                              nominal_ah=model.nominal_ah)
    if model.route == "hybrid":  # the paper's variance when the frame carries it
        given = (per_cycle_frame[HYBRID_KEY].drop_nulls() if HYBRID_KEY in
                 per_cycle_frame.columns else pl.Series([], dtype=pl.Float64))
        feats = feats.with_columns(pl.lit(float(given[0]) if len(given) else None,
                                          dtype=pl.Float64).alias(HYBRID_KEY))
    if feats.height != 1:
        raise ValidationFailed(f"the frame holds {feats.height} cells; pass one",
                               location="cell")
    X = feats.select(model.features).to_numpy().astype(float)
    return float(model.predict_features(X)[0])
