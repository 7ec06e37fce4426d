"""Rapid SOH from one pulse test: models per cell type and pooled, scored with whole cells held out,
with conformal intervals and out-of-domain flags.

**Data.** PulseBat (Tao et al., Nature Communications 15, 10154, 2024): four cell types, each cell
pulse-tested at SOC 5..50 %, SOH = measured / rated capacity. One row = one pulse test at one SOC;
an estimate uses only that row (the SOC the cell arrives with).

**Features** (:mod:`pulse_features`) are *referenced to the fleet at the same SOC*: per cell type,
the mean and spread of every feature over the training cells at each tested SOC (interpolated
linearly between SOCs) turn a test into deviations from a typical cell at its SOC
(:class:`SocReference`). A faded cell sits higher on its OCV curve at a given nominal SOC and
polarises more; the deviations say by how much, whatever the SOC.

**Methods** (:data:`METHODS`): ``ridge_raw`` (plain ridge on U1..U21 and SOC, per type: the usual
baseline), ``ridge`` (per type, referenced features and their products with SOC, alpha chosen by
an inner cell-grouped CV), ``kernel`` (per type, RBF kernel ridge), ``hgb`` (per type, gradient
boosting), ``ridge_pooled`` and ``hgb_pooled`` (one model over every type: referenced features +
type one-hot), ``ensemble`` (mean of ``ridge`` and ``hgb_pooled``; the default).

**Scoring.** Whole cells are held out: folds are drawn over ``cell_id`` (the physical cell; the
NMC 2.1 Ah file holds 12 cells at 5-6 ageing stages each, so grouping by sample id would put the
same cell in train and test), balanced per type, identical for every method.

**Intervals.** Split-conformal on out-of-fold residuals: inside :func:`fit`, an inner
cell-grouped CV gives each training row a residual from a model that never saw its cell; the
half-width for a type is the ceil((n+1) x coverage)-th smallest absolute residual of that type.
:func:`evaluate` measures the coverage on held-out cells cross-conformally: the tests of a fold get
the width computed from the other folds' out-of-fold residuals only, never from their own.

**Out of domain** (never a silent point estimate; every reason is listed in the estimate):

* chemistry not trained, or rated capacity not within 10 % of a trained class of that chemistry:
  the estimate comes from a type-agnostic model (SOC, OCV as a position in the chemistry's voltage
  window, capacity-normalised resistances); its half-width is the largest per-type 90 % quantile
  of leave-one-type-out residuals (measured on the training types), and at least
  ``widen_factor`` x the widest in-domain half-width;
* SOC outside the type's trained range, pulse width or currents other than trained, or features
  far from the training cells (squared Mahalanobis distance of the referenced features, Ledoit-Wolf
  covariance, above the 99.5 % quantile of the distances of *held-out* training cells): the
  interval is the type's half-width x ``widen_factor`` (3, ``data/pulse_cells.toml``) around the
  estimate, stretched to hold at least the central 90 % of the type's training SOH (an estimate
  outside the domain is worth no more than knowing the type). :func:`evaluate_ood` measures the
  flags and the coverage of these intervals.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.covariance import LedoitWolf
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from batteryloop.errors import ValidationFailed
from batteryloop.health import artifacts
from batteryloop.health.datasets import load_pulsebat, pulsebat_files
from batteryloop.health.pulse_features import (
    FEATURES,
    PulseTest,
    cell_types,
    config,
    feature_matrix,
    transfer_matrix,
)

NAME = "pulse-soh"
DEFAULT_METHOD = "ensemble"
NOMINAL_COVERAGE = 0.90
FOLDS = 5
#: Published figures on PulseBat, for comparison (MAPE, %).
PUBLISHED = {
    "tao2024_mape_upper": 6.0,   # Tao et al. 2024: MAPE under 6 % (generative model, random SOC)
    "ridge_cells_held_out_pooled": 2.7,  # plain ridge, whole cells held out, pooled over 4 types
}
RIDGE_ALPHAS = np.logspace(-3, 3, 13)
HGB_PARAMS = {"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 15,
              "min_samples_leaf": 10, "random_state": 0}


# ---------------------------------------------------------------------------------------------
# Data as arrays
# ---------------------------------------------------------------------------------------------

@dataclass
class PulseData:
    """Pulse tests as arrays: type, chemistry, rating, SOC, voltages, features, target, groups."""

    cell_type: np.ndarray
    chemistry: np.ndarray
    rated_ah: np.ndarray
    soc: np.ndarray
    voltages: np.ndarray
    currents: np.ndarray
    width_s: np.ndarray
    x: np.ndarray
    y: np.ndarray | None = None
    group: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.soc)

    def take(self, idx: np.ndarray) -> PulseData:
        return PulseData(**{k: (None if v is None else v[idx]) for k, v in self.__dict__.items()})

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, group_by: str = "cell_id") -> PulseData:
        types = cell_types()
        unknown = sorted(set(frame["cell_type"].unique()) - set(types))
        if unknown:
            raise ValidationFailed(f"cell type(s) {', '.join(unknown)} not in pulse_cells.toml",
                                   location="cell_type")
        ctype = frame["cell_type"].to_numpy().astype(object)
        u = frame.select([f"U{i}" for i in range(1, 22)]).to_numpy().astype(float)
        currents = np.array([types[t]["currents_c"] for t in ctype], dtype=float)
        width = frame["pulse_width_s"].to_numpy().astype(float)
        return cls(
            cell_type=ctype, chemistry=frame["chemistry"].to_numpy().astype(object),
            rated_ah=frame["rated_ah"].to_numpy().astype(float),
            soc=frame["soc"].to_numpy().astype(float), voltages=u, currents=currents,
            width_s=width, x=feature_matrix(u, currents, width),
            y=frame["soh"].to_numpy().astype(float) if "soh" in frame.columns else None,
            group=frame[group_by].to_numpy().astype(object) if group_by in frame.columns else None,
        )

    @classmethod
    def from_test(cls, test: PulseTest, cell_type: str | None) -> PulseData:
        return cls(
            cell_type=np.array([cell_type], dtype=object),
            chemistry=np.array([test.chemistry], dtype=object),
            rated_ah=np.array([test.rated_ah]), soc=np.array([float(test.soc)]),
            voltages=np.array([test.voltages], dtype=float),
            currents=np.array([test.currents_c], dtype=float),
            width_s=np.array([test.pulse_width_s]),
            x=np.array([[test.features[f] for f in FEATURES]]),
        )


def cell_folds(groups: Sequence[str], strata: Sequence[str], k: int = FOLDS) -> np.ndarray:
    """Fold (0..k-1) of each row: all rows of a group share a fold; within each stratum (cell
    type) the groups are ordered by SHA-256 of their id and dealt round-robin, so the folds are
    balanced per type, reproducible, and the same for every method."""
    groups = np.asarray(groups, dtype=object)
    strata = np.asarray(strata, dtype=object)
    fold_of: dict[str, int] = {}
    for stratum in sorted(set(strata)):
        members = sorted(set(groups[strata == stratum]),
                         key=lambda g: hashlib.sha256(str(g).encode()).hexdigest())
        for i, g in enumerate(members):
            fold_of[g] = i % k
    return np.array([fold_of[g] for g in groups])


# ---------------------------------------------------------------------------------------------
# Features referenced to the fleet at the same SOC
# ---------------------------------------------------------------------------------------------

class SocReference:
    """Per-SOC mean and standard deviation of each feature over training cells of one type,
    linearly interpolated in SOC (held constant beyond the trained SOCs)."""

    def __init__(self, soc: np.ndarray, x: np.ndarray, min_rows: int = 5) -> None:
        levels, counts = np.unique(soc, return_counts=True)
        levels = levels[counts >= min_rows]
        if len(levels) == 0:
            levels = np.array([float(np.mean(soc))])
            self.mean = x.mean(axis=0, keepdims=True)
            self.std = x.std(axis=0, keepdims=True)
        else:
            self.mean = np.array([x[soc == s].mean(axis=0) for s in levels])
            self.std = np.array([x[soc == s].std(axis=0) for s in levels])
        self.levels = levels
        self.std = np.maximum(self.std, 1e-9 + 1e-6 * np.abs(self.mean))

    def transform(self, soc: np.ndarray, x: np.ndarray) -> np.ndarray:
        if len(self.levels) == 1:
            return (x - self.mean[0]) / self.std[0]
        mu = np.column_stack([np.interp(soc, self.levels, self.mean[:, j])
                              for j in range(x.shape[1])])
        sd = np.column_stack([np.interp(soc, self.levels, self.std[:, j])
                              for j in range(x.shape[1])])
        return (x - mu) / sd


def _soc_scaled(soc: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """SOC mapped to -1..1 over the trained range, and held there beyond it: a model never
    extrapolates its SOC terms (such a test is flagged out of domain anyway)."""
    half = max((hi - lo) / 2, 1.0)
    return np.clip((soc - (lo + hi) / 2) / half, -1.0, 1.0)


def _ridge_alpha(design: np.ndarray, y: np.ndarray, groups: np.ndarray, strata: np.ndarray,
                 k: int = FOLDS) -> float:
    """Ridge penalty by an inner cell-grouped CV (never by leave-one-row-out: rows of one cell are
    alike, and LOO would pick too small a penalty)."""
    folds = cell_folds(groups, strata, k)
    if len(set(folds)) < 2:
        return 1.0
    errors = np.zeros(len(RIDGE_ALPHAS))
    for f in set(folds):
        tr, te = folds != f, folds == f
        scaler = StandardScaler().fit(design[tr])
        a, b = scaler.transform(design[tr]), scaler.transform(design[te])
        ym = y[tr].mean()
        # One eigendecomposition of the Gram matrix serves every alpha.
        lam, vec = np.linalg.eigh(a.T @ a)
        vty = vec.T @ (a.T @ (y[tr] - ym))
        for i, alpha in enumerate(RIDGE_ALPHAS):
            coef = vec @ (vty / (np.maximum(lam, 0) + alpha))
            errors[i] += np.sum((b @ coef + ym - y[te]) ** 2)
    return float(RIDGE_ALPHAS[int(np.argmin(errors))])


# ---------------------------------------------------------------------------------------------
# Learners: fit(PulseData) -> self; predict(PulseData) -> np.ndarray (NaN for unknown types)
# ---------------------------------------------------------------------------------------------

class _HGB:
    """Gradient boosting run on one OpenMP thread: on a shared, busy machine its multi-threaded
    barriers cost up to 50x (measured: 1.5 s on one thread, 85 s on two at load 12)."""

    def __init__(self) -> None:
        self.model = HistGradientBoostingRegressor(**HGB_PARAMS)

    def fit(self, x: np.ndarray, y: np.ndarray) -> _HGB:
        with threadpool_limits(1, user_api="openmp"):
            self.model.fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        with threadpool_limits(1, user_api="openmp"):
            return self.model.predict(x)


class _TypeLearner:
    """Base of the learners fitted on the rows of one cell type."""

    def fit(self, d: PulseData) -> _TypeLearner:
        raise NotImplementedError

    def predict(self, d: PulseData) -> np.ndarray:
        raise NotImplementedError


class _RawRidge(_TypeLearner):
    """The plain baseline: standardised U1..U21 and SOC, ridge with alpha = 1, or (``tuned``)
    with alpha chosen by an inner cell-grouped CV."""

    def __init__(self, tuned: bool = False) -> None:
        self.tuned = tuned

    def fit(self, d: PulseData) -> _RawRidge:
        self.soc_lo, self.soc_hi = float(d.soc.min()), float(d.soc.max())
        design = np.column_stack([d.voltages, d.soc])
        self.alpha = _ridge_alpha(design, d.y, d.group, d.cell_type) if self.tuned else 1.0
        self.scaler = StandardScaler().fit(design)
        self.model = Ridge(alpha=self.alpha).fit(self.scaler.transform(design), d.y)
        return self

    def predict(self, d: PulseData) -> np.ndarray:
        soc = np.clip(d.soc, self.soc_lo, self.soc_hi)
        return self.model.predict(self.scaler.transform(np.column_stack([d.voltages, soc])))


class _RefBase(_TypeLearner):
    def _reference(self, d: PulseData) -> None:
        self.ref = SocReference(d.soc, d.x)
        self.soc_lo, self.soc_hi = float(d.soc.min()), float(d.soc.max())

    def _z(self, d: PulseData) -> tuple[np.ndarray, np.ndarray]:
        s = _soc_scaled(d.soc, self.soc_lo, self.soc_hi)
        return s, self.ref.transform(d.soc, d.x)


class _RefRidge(_RefBase):
    """Ridge on the SOC-referenced features, the SOC, and their products with the SOC."""

    def _design(self, d: PulseData) -> np.ndarray:
        s, z = self._z(d)
        return np.column_stack([s, s**2, z, z * s[:, None]])

    def fit(self, d: PulseData) -> _RefRidge:
        self._reference(d)
        design = self._design(d)
        self.alpha = _ridge_alpha(design, d.y, d.group, d.cell_type)
        self.scaler = StandardScaler().fit(design)
        self.model = Ridge(alpha=self.alpha).fit(self.scaler.transform(design), d.y)
        return self

    def predict(self, d: PulseData) -> np.ndarray:
        return self.model.predict(self.scaler.transform(self._design(d)))


class _RefKernel(_RefBase):
    """RBF kernel ridge on the SOC and the referenced features (gamma = 1 / (2 x dimensions),
    alpha = 0.01, target centred): fixed settings, not tuned on the test cells."""

    def fit(self, d: PulseData) -> _RefKernel:
        self._reference(d)
        s, z = self._z(d)
        design = np.column_stack([s, z])
        self.ym = float(d.y.mean())
        self.model = KernelRidge(alpha=0.01, kernel="rbf", gamma=0.5 / design.shape[1]).fit(
            design, d.y - self.ym)
        return self

    def predict(self, d: PulseData) -> np.ndarray:
        s, z = self._z(d)
        return self.model.predict(np.column_stack([s, z])) + self.ym


class _RefHGB(_RefBase):
    """Gradient boosting on the SOC and the referenced features, one type."""

    def fit(self, d: PulseData) -> _RefHGB:
        self._reference(d)
        s, z = self._z(d)
        self.model = _HGB().fit(np.column_stack([s, z]), d.y)
        return self

    def predict(self, d: PulseData) -> np.ndarray:
        s, z = self._z(d)
        return self.model.predict(np.column_stack([s, z]))


class _PerType:
    """One learner per cell type."""

    def __init__(self, make: Callable[[], _TypeLearner]) -> None:
        self.make = make
        self.models: dict[str, _TypeLearner] = {}

    def fit(self, d: PulseData) -> _PerType:
        self.models = {t: self.make().fit(d.take(d.cell_type == t))
                       for t in sorted(set(d.cell_type))}
        return self

    def predict(self, d: PulseData) -> np.ndarray:
        out = np.full(len(d), np.nan)
        for t, model in self.models.items():
            rows = d.cell_type == t
            if rows.any():
                out[rows] = model.predict(d.take(rows))
        return out


class _Pooled:
    """One model over every type: per-type referenced features, SOC, and a type one-hot."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def _design(self, d: PulseData) -> tuple[np.ndarray, np.ndarray]:
        z = np.zeros_like(d.x)
        known = np.zeros(len(d), dtype=bool)
        for t, ref in self.refs.items():
            rows = d.cell_type == t
            if rows.any():
                z[rows] = ref.transform(d.soc[rows], d.x[rows])
                known |= rows
        onehot = np.column_stack([(d.cell_type == t).astype(float) for t in self.types])
        s = np.zeros(len(d))
        for t, (lo, hi) in self.soc_range.items():
            rows = d.cell_type == t
            s[rows] = np.clip(d.soc[rows], lo, hi) / 100
        if self.kind == "ridge":
            return np.column_stack([onehot, onehot * s[:, None], z, z * s[:, None]]), known
        return np.column_stack([s, z, onehot]), known

    def fit(self, d: PulseData) -> _Pooled:
        self.types = sorted(set(d.cell_type))
        self.refs = {t: SocReference(d.soc[d.cell_type == t], d.x[d.cell_type == t])
                     for t in self.types}
        self.soc_range = {t: (float(d.soc[d.cell_type == t].min()),
                              float(d.soc[d.cell_type == t].max())) for t in self.types}
        design, _ = self._design(d)
        if self.kind == "ridge":
            self.alpha = _ridge_alpha(design, d.y, d.group, d.cell_type)
            self.scaler = StandardScaler().fit(design)
            self.model = Ridge(alpha=self.alpha).fit(self.scaler.transform(design), d.y)
        else:
            self.model = _HGB().fit(design, d.y)
        return self

    def predict(self, d: PulseData) -> np.ndarray:
        design, known = self._design(d)
        if self.kind == "ridge":
            design = self.scaler.transform(design)
        out = np.full(len(d), np.nan)
        if known.any():
            out[known] = self.model.predict(design[known])
        return out


class _Mean:
    """The mean of several learners' estimates."""

    def __init__(self, members: list[Any]) -> None:
        self.members = members

    def fit(self, d: PulseData) -> _Mean:
        for m in self.members:
            m.fit(d)
        return self

    def predict(self, d: PulseData) -> np.ndarray:
        return np.mean([m.predict(d) for m in self.members], axis=0)


#: Method name -> (factory, one-line description).
METHODS: dict[str, tuple[Callable[[], Any], str]] = {
    "ridge_raw": (lambda: _PerType(_RawRidge),
                  "per type: ridge (alpha 1) on standardised U1..U21 and SOC (baseline)"),
    "ridge_raw_cv": (lambda: _PerType(partial(_RawRidge, tuned=True)),
                     "per type: ridge on standardised U1..U21 and SOC, alpha by grouped CV"),
    "ridge": (lambda: _PerType(_RefRidge),
              "per type: ridge on SOC-referenced features x SOC, alpha by grouped CV"),
    "kernel": (lambda: _PerType(_RefKernel), "per type: RBF kernel ridge, referenced features"),
    "hgb": (lambda: _PerType(_RefHGB), "per type: gradient boosting, referenced features"),
    "ridge_pooled": (lambda: _Pooled("ridge"),
                     "pooled: ridge, referenced features + type one-hot (shared slopes)"),
    "hgb_pooled": (lambda: _Pooled("hgb"),
                   "pooled: gradient boosting, referenced features + type one-hot"),
    "ensemble": (lambda: _Mean([_PerType(_RefRidge), _Pooled("hgb")]),
                 "mean of per-type ridge and pooled gradient boosting"),
}


def _learner(method: str) -> Any:
    if method not in METHODS:
        raise ValidationFailed(f"unknown method '{method}' (have: {', '.join(METHODS)})",
                               location="method")
    return METHODS[method][0]()


# ---------------------------------------------------------------------------------------------
# Domain: distance of a test from the training cells of its type
# ---------------------------------------------------------------------------------------------

class _Distance:
    """Squared Mahalanobis distance of the SOC-referenced features (Ledoit-Wolf covariance)."""

    def __init__(self, d: PulseData) -> None:
        self.ref = SocReference(d.soc, d.x)
        z = self.ref.transform(d.soc, d.x)
        if len(z) < 3:  # too few tests to say what is far: no distance flag
            self.center, self.precision = np.zeros(z.shape[1]), np.zeros((z.shape[1],) * 2)
            return
        lw = LedoitWolf().fit(z)
        self.center, self.precision = lw.location_, lw.precision_

    def __call__(self, d: PulseData) -> np.ndarray:
        z = self.ref.transform(d.soc, d.x) - self.center
        return np.einsum("ij,jk,ik->i", z, self.precision, z)


def conformal_quantile(residuals: np.ndarray, coverage: float) -> float:
    """The split-conformal half-width: the ceil((n+1) coverage)-th smallest |residual|
    (infinite when n is too small for the coverage asked)."""
    r = np.sort(np.abs(np.asarray(residuals, dtype=float)))
    n = len(r)
    rank = math.ceil((n + 1) * coverage)
    return float(r[rank - 1]) if 0 < rank <= n else math.inf


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------

@dataclass
class TypeDomain:
    """What one trained cell type covers, and its interval half-width."""

    cell_type: str
    chemistry: str
    rated_ah: float
    soc_min: float
    soc_max: float
    pulse_width_s: float
    currents_c: tuple[float, ...]
    half_width: float
    prior_low: float
    prior_high: float
    distance_threshold: float
    cells: int
    rows: int

    def bounds(self, value: float, out_of_domain: bool, widen: float) -> tuple[float, float]:
        """The interval around ``value``: the conformal half-width in domain; out of domain,
        ``widen`` x that half-width and never narrower than the SOH range of the type's
        training cells (the central ``coverage`` share), whatever the features say."""
        if not out_of_domain:
            return max(0.0, value - self.half_width), value + self.half_width
        half = widen * self.half_width
        return max(0.0, min(value - half, self.prior_low)), max(value + half, self.prior_high)


@dataclass
class PulseSohModel:
    """A trained pulse-test SOH model: the learner, per-type domains and intervals, the
    type-agnostic fallback for types never trained on."""

    method: str
    coverage: float
    learner: Any
    domains: dict[str, TypeDomain]
    distances: dict[str, _Distance]
    transfer: Any | None = None
    transfer_half_width: float = math.inf
    widen_factor: float = 3.0
    rated_tolerance: float = 0.10
    training_data_sha256: str = ""
    version: str = "unsaved"


@dataclass(frozen=True)
class SohEstimate:
    """An SOH estimate (fraction of rated capacity) with its interval and provenance.
    ``in_domain`` False means the test lies outside what the model was trained on: ``reasons``
    says why, and the interval is widened accordingly."""

    value: float
    lower: float
    upper: float
    coverage: float
    method: str
    model_version: str
    in_domain: bool
    reasons: tuple[str, ...] = ()
    cell_type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _transfer_learner() -> _HGB:
    return _HGB()


def _transfer_design(d: PulseData) -> np.ndarray:
    return transfer_matrix(d.x, d.soc, list(d.chemistry))


def _out_of_fold(data: PulseData, method: str, folds: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """Each row's estimate and squared distance from a learner and a domain model fitted
    without its cell's fold; also the mean fit time per fold."""
    oof = np.full(len(data), np.nan)
    dist = np.full(len(data), np.nan)
    spent = 0.0
    for f in sorted(set(folds)):
        tr, te = folds != f, folds == f
        if not tr.any():
            continue
        train_part, test_part = data.take(tr), data.take(te)
        started = time.perf_counter()
        oof[te] = _learner(method).fit(train_part).predict(test_part)
        spent += time.perf_counter() - started
        at = np.flatnonzero(te)
        for t in set(test_part.cell_type):
            rows_tr, rows_te = train_part.cell_type == t, test_part.cell_type == t
            if rows_tr.sum() > 2:
                dist[at[rows_te]] = _Distance(train_part.take(rows_tr))(test_part.take(rows_te))
    return oof, dist, spent / max(len(set(folds)), 1)


def _domains(data: PulseData, oof: np.ndarray, dist: np.ndarray, coverage: float,
             use: np.ndarray | None = None) -> dict[str, TypeDomain]:
    """Per-type domain and interval half-width from out-of-fold residuals and distances of the
    rows in ``use`` (all rows by default)."""
    use = np.ones(len(data), dtype=bool) if use is None else use
    quantile = config()["domain"]["distance_quantile"]
    spec = cell_types()
    out = {}
    for t in sorted(set(data.cell_type[use])):
        rows = (data.cell_type == t) & use
        resid = data.y[rows] - oof[rows]
        resid = resid[np.isfinite(resid)]
        dd = dist[rows]
        dd = dd[np.isfinite(dd)]
        out[t] = TypeDomain(
            cell_type=t, chemistry=str(data.chemistry[rows][0]),
            rated_ah=float(data.rated_ah[rows][0]),
            soc_min=float(data.soc[rows].min()), soc_max=float(data.soc[rows].max()),
            pulse_width_s=float(np.median(data.width_s[rows])),
            currents_c=tuple(float(c) for c in spec[t]["currents_c"]),
            half_width=conformal_quantile(resid, coverage),
            prior_low=float(np.quantile(data.y[rows], (1 - coverage) / 2)),
            prior_high=float(np.quantile(data.y[rows], (1 + coverage) / 2)),
            distance_threshold=float(np.quantile(dd, quantile)) if len(dd) else math.inf,
            cells=len(set(data.group[rows])), rows=int(rows.sum()),
        )
    return out


def fit(data: PulseData, method: str = DEFAULT_METHOD, *, coverage: float = NOMINAL_COVERAGE,
        k: int = FOLDS, transfer: bool = True) -> PulseSohModel:
    """Fit ``method`` on ``data``; calibrate its intervals and domain on the held-out cells of an
    inner ``k``-fold cell-grouped CV (split-conformal on out-of-fold residuals). ``transfer``
    also fits the type-agnostic fallback and measures its leave-one-type-out half-width."""
    if data.y is None or data.group is None:
        raise ValidationFailed("training data needs SOH and cell ids", location="data")
    dom = config()["domain"]
    oof, dist, _ = _out_of_fold(data, method, cell_folds(data.group, data.cell_type, k))
    learner = _learner(method).fit(data)
    distances = {t: _Distance(data.take(data.cell_type == t)) for t in sorted(set(data.cell_type))}
    model = PulseSohModel(method=method, coverage=coverage, learner=learner,
                          domains=_domains(data, oof, dist, coverage), distances=distances,
                          widen_factor=float(dom["widen_factor"]),
                          rated_tolerance=float(dom["rated_tolerance"]))
    if transfer:
        model.transfer, model.transfer_half_width = _fit_transfer(data, coverage)
    return model


def _fit_transfer(data: PulseData, coverage: float) -> tuple[Any, float]:
    types = sorted(set(data.cell_type))
    design = _transfer_design(data)
    widths = []
    if len(types) >= 2:
        for t in types:
            rows = data.cell_type == t
            m = _transfer_learner().fit(design[~rows], data.y[~rows])
            widths.append(conformal_quantile(data.y[rows] - m.predict(design[rows]), coverage))
    width = max(widths) if widths else math.inf
    return _transfer_learner().fit(design, data.y), width


# ---------------------------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------------------------

def _match(model: PulseSohModel, chemistry: str, rated_ah: float) -> tuple[str | None, list[str]]:
    same_chem = [dm for dm in model.domains.values() if dm.chemistry == chemistry]
    if not same_chem:
        trained = sorted({dm.chemistry for dm in model.domains.values()})
        return None, [f"chemistry {chemistry} was not trained on (trained: {', '.join(trained)})"]
    for dm in same_chem:
        if abs(rated_ah - dm.rated_ah) <= model.rated_tolerance * dm.rated_ah:
            return dm.cell_type, []
    classes = ", ".join(f"{dm.rated_ah:g}" for dm in same_chem)
    why = (f"rated capacity {rated_ah:g} Ah is outside the trained {chemistry} classes "
           f"({classes} Ah, +-{100 * model.rated_tolerance:g} %)")
    return None, [why]


def _estimate_rows(model: PulseSohModel, d: PulseData, reasons: list[list[str]]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Point estimate, lower and upper bound and in-domain flag of rows whose ``cell_type`` is a
    trained type or None (unmatched: type-agnostic fallback); ``reasons`` is filled in place."""
    n = len(d)
    value = np.full(n, np.nan)
    lower = np.full(n, np.nan)
    upper = np.full(n, np.nan)
    known = np.array([t in model.domains for t in d.cell_type])
    if known.any():
        part = d.take(known)
        value[known] = model.learner.predict(part)
        idx = np.flatnonzero(known)
        for t in set(part.cell_type):
            dm = model.domains[t]
            rows = part.cell_type == t
            dist = model.distances[t](part.take(rows))
            for j, i in enumerate(idx[rows]):
                why = reasons[i]
                soc = d.soc[i]
                if not dm.soc_min - 1e-9 <= soc <= dm.soc_max + 1e-9:
                    why.append(f"SOC {soc:g} % is outside the trained range "
                               f"{dm.soc_min:g}-{dm.soc_max:g} % for {t}")
                if abs(d.width_s[i] - dm.pulse_width_s) > 1e-6:
                    why.append(f"pulse width {d.width_s[i]:g} s differs from the trained "
                               f"{dm.pulse_width_s:g} s")
                if not np.allclose(d.currents[i], dm.currents_c):
                    why.append(f"pulse currents {tuple(d.currents[i])} C differ from the trained "
                               f"{dm.currents_c} C")
                if dist[j] > dm.distance_threshold:
                    why.append(f"features far from the training cells of {t} (squared "
                               f"Mahalanobis distance {dist[j]:.0f} > {dm.distance_threshold:.0f})")
                lower[i], upper[i] = dm.bounds(value[i], bool(why), model.widen_factor)
    unknown = ~known
    if unknown.any():
        if model.transfer is None:
            raise ValidationFailed("the test's cell type was not trained on and this model has "
                                   "no type-agnostic fallback: " + "; ".join(
                                       reasons[int(np.flatnonzero(unknown)[0])]),
                                   location="cell_type")
        value[unknown] = model.transfer.predict(_transfer_design(d.take(unknown)))
        widest = max(dm.half_width for dm in model.domains.values())
        half = max(model.transfer_half_width, model.widen_factor * widest)
        lower[unknown] = np.maximum(0.0, value[unknown] - half)
        upper[unknown] = value[unknown] + half
    in_domain = np.array([not r for r in reasons])
    return value, lower, upper, in_domain


def predict(model: PulseSohModel, test: PulseTest) -> SohEstimate:
    """SOH of one pulse test, with its interval; out-of-domain tests are flagged, never silent."""
    if not isinstance(test, PulseTest):
        raise ValidationFailed(f"expected a PulseTest, got {type(test).__name__}", location="test")
    cell_type, why = _match(model, test.chemistry, test.rated_ah)
    reasons = [list(why)]
    value, lower, upper, in_domain = _estimate_rows(model, PulseData.from_test(test, cell_type),
                                                    reasons)
    method = model.method if cell_type else "type-agnostic gradient boosting (fallback)"
    return SohEstimate(value=float(value[0]), lower=float(lower[0]), upper=float(upper[0]),
                       coverage=model.coverage,
                       method=method, model_version=model.version, in_domain=bool(in_domain[0]),
                       reasons=tuple(reasons[0]), cell_type=cell_type)


def predict_frame(model: PulseSohModel, frame: pl.DataFrame, *,
                  as_type: tuple[str, float] | None = None) -> pl.DataFrame:
    """Estimates for every row of a :func:`load_pulsebat`-shaped frame: value, lower, upper,
    in_domain, reasons. ``as_type`` = (chemistry, rated Ah) presents every row as that type
    (to test the domain checks)."""
    data = PulseData.from_frame(frame)
    n = len(data)
    if as_type is not None:
        data.chemistry = np.array([as_type[0]] * n, dtype=object)
        data.rated_ah = np.full(n, float(as_type[1]))
    matches = {}
    reasons: list[list[str]] = []
    types = np.empty(n, dtype=object)
    for i in range(n):
        key = (data.chemistry[i], float(data.rated_ah[i]))
        if key not in matches:
            matches[key] = _match(model, *key)
        types[i], why = matches[key]
        reasons.append(list(why))
    data.cell_type = types
    value, lower, upper, in_domain = _estimate_rows(model, data, reasons)
    return pl.DataFrame({
        "value": value, "lower": lower, "upper": upper,
        "in_domain": in_domain, "reasons": ["; ".join(r) for r in reasons],
    })


def predict_tests(model: PulseSohModel, *, voltages: np.ndarray, soc: np.ndarray,
                  chemistry: Sequence[str], rated_ah: np.ndarray, width_s: np.ndarray,
                  currents: np.ndarray) -> pl.DataFrame:
    """Estimates for validated tests given as arrays (e.g. a
    :class:`batteryloop.health.pulse_input.PulseTable`): ``cell_type`` (the matched trained type
    or null), ``value``, ``lower``, ``upper``, ``in_domain``, ``reasons`` (a list per test)."""
    u = np.atleast_2d(np.asarray(voltages, dtype=float))
    n = u.shape[0]
    chem = np.asarray(chemistry, dtype=object)
    rated = np.asarray(rated_ah, dtype=float)
    types = np.empty(n, dtype=object)
    reasons: list[list[str]] = [[] for _ in range(n)]
    for key in {(c, float(r)) for c, r in zip(chem, rated, strict=True)}:
        matched, why = _match(model, *key)
        for i in np.flatnonzero((chem == key[0]) & (rated == key[1])):
            types[i] = matched
            reasons[i].extend(why)
    width = np.broadcast_to(np.asarray(width_s, dtype=float), (n,)).copy()
    cur = np.broadcast_to(np.asarray(currents, dtype=float), (n, np.shape(currents)[-1])).copy()
    data = PulseData(cell_type=types, chemistry=chem, rated_ah=rated,
                     soc=np.asarray(soc, dtype=float), voltages=u, currents=cur, width_s=width,
                     x=feature_matrix(u, cur, width))
    value, lower, upper, in_domain = _estimate_rows(model, data, reasons)
    return pl.DataFrame({
        "cell_type": pl.Series(list(types), dtype=pl.String), "value": value, "lower": lower,
        "upper": upper, "in_domain": in_domain,
        "reasons": pl.Series(reasons, dtype=pl.List(pl.String)),
    })


# ---------------------------------------------------------------------------------------------
# Evaluation with whole cells held out
# ---------------------------------------------------------------------------------------------

def _scores(y: np.ndarray, p: np.ndarray, lo: np.ndarray | None = None,
            hi: np.ndarray | None = None, flagged: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mape_pct": float(100 * np.mean(np.abs(p - y) / y)),
        "rmse_pct": float(100 * np.sqrt(np.mean((p - y) ** 2))),
        "max_ape_pct": float(100 * np.max(np.abs(p - y) / y)),
        "rows": len(y),
    }
    if groups is not None:
        out["cells"] = len(set(groups))
    if lo is not None and hi is not None:
        out["coverage"] = float(np.mean((y >= lo) & (y <= hi)))
        out["mean_width"] = float(np.mean(hi - lo))
    if flagged is not None:
        out["flagged_share"] = float(np.mean(flagged))
    return out


def evaluate(frame: pl.DataFrame, method: str = DEFAULT_METHOD, *, k: int = FOLDS,
             group_by: str = "cell_id", coverage: float = NOMINAL_COVERAGE) -> dict[str, Any]:
    """Scores of ``method`` on cells it never saw: ``k`` folds over ``group_by`` (every SOC of a
    cell in the same fold), balanced per type, the same folds for every method. MAPE and RMSE (SOH
    in %) per type and pooled over every held-out test; the measured coverage of the intervals and
    the share of held-out tests flagged out of domain.

    Intervals are cross-conformal: the tests of fold f get the half-width and the distance
    threshold computed from the out-of-fold residuals and distances of the *other* folds only, so
    no test ever sets its own width; the deployed model does the same with an inner CV."""
    report, _ = evaluate_rows(frame, method, k=k, group_by=group_by, coverage=coverage)
    return report


def evaluate_rows(frame: pl.DataFrame, method: str = DEFAULT_METHOD, *, k: int = FOLDS,
                  group_by: str = "cell_id", coverage: float = NOMINAL_COVERAGE
                  ) -> tuple[dict[str, Any], pl.DataFrame]:
    """:func:`evaluate`, and every held-out test as a row (for plots: predicted against
    observed, residuals, interval coverage): ``cell_type, cell_id, soc, fold, soh, predicted,
    lower, upper, flagged``."""
    data = PulseData.from_frame(frame, group_by=group_by)
    folds = cell_folds(data.group, data.cell_type, k)
    oof, dist, fit_seconds = _out_of_fold(data, method, folds)
    lo = np.full(len(data), np.nan)
    hi = np.full(len(data), np.nan)
    flagged = np.zeros(len(data), dtype=bool)
    widen = float(config()["domain"]["widen_factor"])
    for f in range(k):
        te = folds == f
        domains = _domains(data, oof, dist, coverage, use=~te)
        for i in np.flatnonzero(te):
            dm = domains[data.cell_type[i]]
            out = (not dm.soc_min <= data.soc[i] <= dm.soc_max
                   or dist[i] > dm.distance_threshold)
            lo[i], hi[i] = dm.bounds(oof[i], out, widen)
            flagged[i] = out
    report: dict[str, Any] = {
        "method": method, "description": METHODS[method][1], "folds": k, "group_by": group_by,
        "nominal_coverage": coverage, "fit_seconds_per_fold": fit_seconds, "per_type": {},
    }
    for t in sorted(set(data.cell_type)):
        rows = data.cell_type == t
        report["per_type"][t] = _scores(data.y[rows], oof[rows], lo[rows], hi[rows],
                                        flagged[rows], data.group[rows])
    report["pooled"] = _scores(data.y, oof, lo, hi, flagged, data.group)
    report["published"] = dict(PUBLISHED)
    rows_frame = pl.DataFrame({
        "cell_type": data.cell_type.astype(str), "cell_id": data.group.astype(str),
        "soc": data.soc, "fold": folds, "soh": data.y, "predicted": oof, "lower": lo,
        "upper": hi, "flagged": flagged,
    })
    return report, rows_frame


def evaluate_ood(frame: pl.DataFrame, method: str = DEFAULT_METHOD, *,
                 coverage: float = NOMINAL_COVERAGE, k: int = FOLDS) -> dict[str, Any]:
    """How the domain checks behave, measured: (1) each type held out whole (trained on the
    others): share flagged, MAPE and coverage of the widened interval; (2) SOC beyond the trained
    range (trained on SOC 10-45 %, scored on held-out cells at 5 and 50 %); (3) tests presented
    as another type of the same chemistry (NMC 2.1 Ah as 21 Ah and back, a wrong rating)."""
    data_all = PulseData.from_frame(frame)
    out: dict[str, Any] = {"held_out_type": {}, "soc_outside": {}, "wrong_type": {}}
    types = sorted(set(data_all.cell_type))
    for t in types:
        rest = frame.filter(pl.col("cell_type") != t)
        model = fit(PulseData.from_frame(rest), method, coverage=coverage, k=k)
        est = predict_frame(model, frame.filter(pl.col("cell_type") == t))
        y = frame.filter(pl.col("cell_type") == t)["soh"].to_numpy()
        out["held_out_type"][t] = _scores(y, est["value"].to_numpy(), est["lower"].to_numpy(),
                                          est["upper"].to_numpy(), ~est["in_domain"].to_numpy())
    folds = cell_folds(data_all.group, data_all.cell_type, k)
    frame_f = frame.with_columns(pl.Series("_fold", folds))
    parts = []
    for f in range(k):
        train = frame_f.filter((pl.col("_fold") != f) & pl.col("soc").is_between(10, 45))
        test = frame_f.filter((pl.col("_fold") == f) & pl.col("soc").is_in([5.0, 50.0]))
        model = fit(PulseData.from_frame(train), method, coverage=coverage, k=k, transfer=False)
        parts.append(pl.concat([test.select("cell_type", "soh"), predict_frame(model, test)],
                               how="horizontal"))
    est = pl.concat(parts)
    for t in types + [None]:
        e = est if t is None else est.filter(pl.col("cell_type") == t)
        out["soc_outside"][t or "pooled"] = _scores(
            e["soh"].to_numpy(), e["value"].to_numpy(), e["lower"].to_numpy(),
            e["upper"].to_numpy(), ~e["in_domain"].to_numpy())
    model = fit(data_all, method, coverage=coverage, k=k, transfer=False)
    for src, as_type in (("NMC_2.1Ah", ("NMC", 21.0)), ("NMC_21Ah", ("NMC", 2.1))):
        if src not in types:
            continue
        part = frame.filter(pl.col("cell_type") == src)
        est = predict_frame(model, part, as_type=as_type)
        out["wrong_type"][f"{src} as NMC {as_type[1]:g} Ah"] = _scores(
            part["soh"].to_numpy(), est["value"].to_numpy(), est["lower"].to_numpy(),
            est["upper"].to_numpy(), ~est["in_domain"].to_numpy())
    return out


# ---------------------------------------------------------------------------------------------
# Training on the shared data, saving and loading
# ---------------------------------------------------------------------------------------------

def json_ready(value: Any) -> Any:
    """``value`` with NumPy scalars made plain and non-finite floats made None (JSON-safe)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return json_ready(value.item())
    return value


def train(shared: Path, *, method: str = DEFAULT_METHOD, coverage: float = NOMINAL_COVERAGE,
          root: Path | None = None, scores: dict[str, Any] | None = None,
          types: Sequence[str] | None = None) -> tuple[PulseSohModel, artifacts.ModelCard]:
    """Train on PulseBat (all types, or ``types``) and describe the model in a card: training
    data SHA-256, features, held-out scores (from :func:`evaluate` unless ``scores`` is given).
    With ``root``, the model and card are saved there (:func:`artifacts.save`)."""
    frame = load_pulsebat(Path(shared))
    paths = pulsebat_files(Path(shared))
    if types is not None:
        frame = frame.filter(pl.col("cell_type").is_in(list(types)))
        wanted = {cell_types()[t]["file"] for t in types}
        paths = [p for p in paths if p.name in wanted]
    data = PulseData.from_frame(frame)
    started = time.perf_counter()
    model = fit(data, method, coverage=coverage)
    fit_seconds = time.perf_counter() - started
    model.training_data_sha256 = artifacts.data_sha256(paths)
    if scores is None:
        scores = evaluate(frame, method, coverage=coverage)
    card = artifacts.ModelCard(
        name=NAME,
        kind="SOH (Q/Qn) from one 5 s pulse test at the arrival SOC; " + METHODS[method][1],
        features=[*FEATURES, "soc", "cell_type"],
        target="soh = measured capacity / rated capacity (fraction)",
        training_data_sha256=model.training_data_sha256,
        training_files=[p.name for p in paths],
        scores=json_ready(scores),
        params=json_ready({
            "method": method, "coverage": coverage, "folds": FOLDS, "group_by": "cell_id",
            "hgb": HGB_PARAMS, "widen_factor": model.widen_factor,
            "rated_tolerance": model.rated_tolerance,
            "transfer_half_width": model.transfer_half_width,
            "fit_seconds": fit_seconds,
            "protocol_config_sha256": hashlib.sha256(
                (files("batteryloop.health") / "data" / "pulse_cells.toml").read_bytes()
            ).hexdigest(),
            "domains": {t: asdict(dm) for t, dm in model.domains.items()},
        }),
    )
    if root is not None:
        artifacts.save(model, card, Path(root))
        model.version = card.version
    return model, card


def load(root: Path, version: str | None = None) -> tuple[PulseSohModel, artifacts.ModelCard]:
    """A saved pulse-SOH model (newest by default), its file checked against its card."""
    model, card = artifacts.load(Path(root), NAME, version)
    if not isinstance(model, PulseSohModel):
        raise ValidationFailed(f"{NAME} {card.version} is not a PulseSohModel", location=str(root))
    model.version = card.version
    return model, card


__all__ = [
    "METHODS", "NAME", "PUBLISHED", "PulseData", "PulseSohModel", "PulseTest", "SocReference",
    "SohEstimate", "TypeDomain", "cell_folds", "conformal_quantile", "evaluate", "evaluate_ood",
    "evaluate_rows", "predict_tests",
    "fit", "load", "predict", "predict_frame", "train",
]

