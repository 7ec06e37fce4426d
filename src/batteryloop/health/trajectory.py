"""Capacity trajectory of a cell: fade per cycle, knee, end of life.

Input is a per-cycle frame: one row per cycle with a cycle number and the discharge capacity in
Ah. Column names are found among the usual ones (``cycle``/``cycle_count``/``cycle_index`` and
``capacity_ah``/``discharge_capacity_ah``/``capacity``/``discharge_capacity``), so the rows of
the MIT cells (:mod:`batteryloop.health.severson`) and the per-cycle summaries of our own tester
files (:func:`batteryloop.cycling.summary.cycles`: ``cycle_count``, ``discharge_capacity_ah``)
both work. Everything is columnar (polars expressions, numpy arrays); there is no Python loop over
cycles.

Methods and conventions:

* **Smoothing**: a centred rolling median (rejects single anomalous cycles: a skipped discharge, a
  reference cycle) followed by a centred rolling mean over the same window (default 11 cycles).
* **Knee point**: the breakpoint of the Bacon-Watts model, two straight lines meeting at ``x1``:
  ``Q = a0 + a1 (x - x1) + a2 (x - x1) tanh((x - x1) / g)`` with ``g -> 0`` (D. W. Bacon and
  D. G. Watts, "Estimating the transition between two intersecting straight lines", Biometrika
  58, 525-534, 1971), the way Fermin-Cueto et al. locate the knee of capacity fade curves ("knee-
  point" and "knee-onset", Energy and AI 1, 100006, 2020). ``x1`` is found by exhaustive search
  over a grid of cycles with the linear coefficients solved in closed form for every candidate
  at once (normal equations assembled from prefix sums, solved in one batch), so the global
  optimum on the grid is found, not a local one.
  The **knee onset** is the first breakpoint of the three-line ("double Bacon-Watts") fit, found
  the same way over pairs of breakpoints. A curve whose second line is not steeper than the first
  has no knee (``None``).
* **End of life**: the first cycle whose capacity is below ``threshold`` x a reference capacity.
  The default, 80 % of the nominal (rated) capacity, is a convention (it is the one Severson et
  al. used, 0.88 Ah for their 1.1 Ah cells), not a law: both the threshold and the reference
  (nominal or the cell's initial capacity) are parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from batteryloop.errors import ValidationFailed

CYCLE_COLUMNS: tuple[str, ...] = ("cycle", "cycle_count", "cycle_index", "cycle_number")
CAPACITY_COLUMNS: tuple[str, ...] = ("capacity_ah", "discharge_capacity_ah", "capacity",
                                     "discharge_capacity", "qd")
#: A capacity this many times the nominal one is not Ah (mAh, or the wrong rating).
UNIT_FACTOR = 1.5
#: Without a nominal capacity, a median above this is taken for mAh (no single cell near it).
MAX_PLAUSIBLE_AH = 1000.0
DEFAULT_WINDOW = 11
#: Points the breakpoint searches run on (the smoothed curve is resampled onto this many cycles).
GRID_POINTS = 400
ONSET_GRID = 150


def _find(frame: pl.DataFrame, given: str | None, candidates: Sequence[str], what: str) -> str:
    if given is not None:
        if given not in frame.columns:
            raise ValidationFailed(f"column '{given}' ({what}) is missing; columns are "
                                   f"{frame.columns}", location=given)
        return given
    lower = {c.lower(): c for c in frame.columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    if what == "discharge capacity" and any("mah" in c.lower() for c in frame.columns):
        raise ValidationFailed(
            f"capacity is given in mAh ({[c for c in frame.columns if 'mah' in c.lower()]}); "
            "convert it to Ah (divide by 1000)", location="capacity")
    raise ValidationFailed(
        f"no {what} column: expected one of {list(candidates)}, got {frame.columns}",
        location=what)


def per_cycle(frame: pl.DataFrame, *, cycle: str | None = None, capacity: str | None = None,
              nominal_ah: float | None = None, min_cycles: int = 2) -> pl.DataFrame:
    """The frame reduced to ``cycle`` (Int64, ascending, unique) and ``capacity_ah`` (Float64).

    Raises :class:`ValidationFailed` for a missing column, non-numeric values, fewer than
    ``min_cycles`` cycles, non-positive capacities, or capacities that are not Ah (above
    ``UNIT_FACTOR`` x ``nominal_ah``, or above ``MAX_PLAUSIBLE_AH`` without a nominal).
    Rows with a missing cycle or capacity are dropped; a repeated cycle keeps its last row.
    """
    if not isinstance(frame, pl.DataFrame):
        raise ValidationFailed(f"expected a polars DataFrame, got {type(frame).__name__}")
    c = _find(frame, cycle, CYCLE_COLUMNS, "cycle number")
    q = _find(frame, capacity, CAPACITY_COLUMNS, "discharge capacity")
    for name in (c, q):
        if not frame.schema[name].is_numeric():
            raise ValidationFailed(f"column '{name}' must be numeric, got {frame.schema[name]}",
                                   location=name)
    df = (frame.select(pl.col(c).cast(pl.Float64).alias("cycle"),
                       pl.col(q).cast(pl.Float64).alias("capacity_ah"))
          .drop_nulls().drop_nans()
          .unique("cycle", keep="last").sort("cycle")
          .with_columns(pl.col("cycle").round(0).cast(pl.Int64)))
    if df.height < min_cycles:
        raise ValidationFailed(f"{df.height} cycle(s) with a capacity; at least {min_cycles} "
                               "are needed", location=q)
    if df["capacity_ah"].min() <= 0:
        raise ValidationFailed("discharge capacity must be positive (Ah, as a magnitude)",
                               location=q)
    check_units(df["capacity_ah"], nominal_ah, location=q)
    return df


def check_units(capacity_ah: pl.Series, nominal_ah: float | None, *, location: str) -> None:
    median = float(capacity_ah.median())  # type: ignore[arg-type]
    if nominal_ah is not None:
        if not nominal_ah > 0:
            raise ValidationFailed(f"nominal capacity must be positive, got {nominal_ah}",
                                   location="nominal_ah")
        if median > UNIT_FACTOR * nominal_ah:
            raise ValidationFailed(
                f"median capacity {median:g} is {median / nominal_ah:.0f}x the nominal "
                f"{nominal_ah:g} Ah: wrong units (mAh instead of Ah?) or wrong rating",
                location=location)
    elif median > MAX_PLAUSIBLE_AH:
        raise ValidationFailed(
            f"median capacity {median:g} Ah is implausible for a cell: wrong units (mAh instead "
            "of Ah?)", location=location)


def _smooth_expr(col: str, window: int) -> pl.Expr:
    return (pl.col(col).rolling_median(window, center=True, min_samples=1)
            .rolling_mean(window, center=True, min_samples=1))


def fade(frame: pl.DataFrame, *, window: int = DEFAULT_WINDOW, nominal_ah: float | None = None,
         cycle: str | None = None, capacity: str | None = None) -> pl.DataFrame:
    """Capacity fade per cycle.

    Columns: ``cycle``, ``capacity_ah`` (as measured), ``capacity_smooth_ah`` (rolling median then
    mean over ``window`` cycles, centred), ``relative`` (smoothed capacity / reference: the nominal
    capacity when given, else the cell's initial capacity, the median of its first 5 cycles),
    ``fade_rate_ah_per_cycle`` (central difference of the smoothed capacity; negative while fading).
    """
    df = per_cycle(frame, cycle=cycle, capacity=capacity, nominal_ah=nominal_ah)
    ref = nominal_ah if nominal_ah is not None else float(df["capacity_ah"].head(5).median())
    s = pl.col("capacity_smooth_ah")
    dc = pl.col("cycle").shift(-1) - pl.col("cycle").shift(1)
    return (df.with_columns(_smooth_expr("capacity_ah", window).alias("capacity_smooth_ah"))
            .with_columns(
                (s / ref).alias("relative"),
                ((s.shift(-1) - s.shift(1)) / dc)
                .fill_null(strategy="forward").fill_null(strategy="backward")
                .fill_null(0.0).alias("fade_rate_ah_per_cycle")))


# ----------------------------------------------------------------------------------- knee


@dataclass(frozen=True)
class Knee:
    cycle: float  # knee point: breakpoint of the two-line Bacon-Watts fit
    capacity_ah: float  # smoothed capacity there
    onset: float | None  # knee onset: first breakpoint of the three-line fit
    slope_before: float  # Ah per cycle, left line
    slope_after: float  # Ah per cycle, right line
    rmse_ah: float  # of the two-line fit on the smoothed curve
    method: str = "bacon-watts"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resample(x: np.ndarray, y: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    if x.size <= points:
        return x, y
    grid = np.linspace(x[0], x[-1], points)
    return grid, np.interp(grid, x, y)


class _Sums:
    """Prefix sums of a sorted curve, so that every least-squares fit of piecewise-linear
    (hinge) bases over all candidate breakpoints costs O(n + candidates): the Gram matrices
    are assembled from range sums instead of from design matrices."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        z = np.zeros(1)
        self.x, self.y, self.n = x, y, x.size
        self.c = np.arange(x.size + 1, dtype=float)
        self.s1 = np.concatenate([z, np.cumsum(x)])
        self.s2 = np.concatenate([z, np.cumsum(x * x)])
        self.y0 = np.concatenate([z, np.cumsum(y)])
        self.y1 = np.concatenate([z, np.cumsum(x * y)])
        self.yy = float(y @ y)

    def cut(self, t: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.x, t, side="left")

    def _range(self, arr: np.ndarray, lo: np.ndarray | int, hi: np.ndarray | int) -> np.ndarray:
        return arr[hi] - arr[lo]

    def hinge(self, t: np.ndarray) -> dict[str, np.ndarray]:
        """Sums of |x - t|, x |x - t|, (x - t)^2 and y |x - t| for every t."""
        s, n = self.cut(t), self.n
        cl, cr = self._range(self.c, 0, s), self._range(self.c, s, n)
        s1l, s1r = self._range(self.s1, 0, s), self._range(self.s1, s, n)
        s2l, s2r = self._range(self.s2, 0, s), self._range(self.s2, s, n)
        y0l, y0r = self._range(self.y0, 0, s), self._range(self.y0, s, n)
        y1l, y1r = self._range(self.y1, 0, s), self._range(self.y1, s, n)
        return {
            "a": (t * cl - s1l) + (s1r - t * cr),
            "xa": (t * s1l - s2l) + (s2r - t * s1r),
            "aa": self.s2[n] - 2 * t * self.s1[n] + t * t * n,
            "ya": (t * y0l - y1l) + (y1r - t * y0r),
        }

    def cross(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Sum of |x - a| |x - b| for a < b: f = ab - (a + b) x + x^2 over all points, minus
        twice f over the points between a and b (where the product changes sign)."""
        sa, sb, n = self.cut(a), self.cut(b), self.n

        def f(lo: np.ndarray | int, hi: np.ndarray | int) -> np.ndarray:
            return (a * b * self._range(self.c, lo, hi) - (a + b) * self._range(self.s1, lo, hi)
                    + self._range(self.s2, lo, hi))

        return f(0, n) - 2 * f(sa, sb)

    def fit(self, gram: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Coefficients and residual sum of squares of many normal equations at once."""
        p = gram.shape[-1]
        coef = np.linalg.solve(gram + 1e-12 * np.eye(p), rhs[..., None])[..., 0]
        sse = self.yy - np.einsum("ki,ki->k", coef, rhs)
        return coef, np.maximum(sse, 0.0)


def _two_lines(x: np.ndarray, y: np.ndarray, candidates: np.ndarray
               ) -> tuple[int, np.ndarray, np.ndarray]:
    """Bacon-Watts with g -> 0 over the candidate breakpoints t; basis [1, x, |x - t|], so the
    slopes are c1 - c2 before t and c1 + c2 after it."""
    s = _Sums(x, y)
    h = s.hinge(candidates)
    k = candidates.size
    n, s1, s2 = float(s.n), s.s1[-1], s.s2[-1]
    gram = np.empty((k, 3, 3))
    gram[:, 0, 0], gram[:, 0, 1], gram[:, 1, 1] = n, s1, s2
    gram[:, 0, 2] = gram[:, 2, 0] = h["a"]
    gram[:, 1, 2] = gram[:, 2, 1] = h["xa"]
    gram[:, 1, 0] = s1
    gram[:, 2, 2] = h["aa"]
    rhs = np.stack([np.full(k, s.y0[-1]), np.full(k, s.y1[-1]), h["ya"]], axis=1)
    coef, sse = s.fit(gram, rhs)
    best = int(np.argmin(sse))
    return best, coef[best], sse


def _three_lines(x: np.ndarray, y: np.ndarray, candidates: np.ndarray) -> tuple[float, float]:
    """Continuous three-segment fit (double Bacon-Watts, g -> 0) over all pairs a < b of
    candidate breakpoints; basis [1, x, |x - a|, |x - b|]."""
    i, j = np.triu_indices(candidates.size, k=1)
    a, b = candidates[i], candidates[j]
    s = _Sums(x, y)
    ha, hb = s.hinge(a), s.hinge(b)
    m = a.size
    gram = np.empty((m, 4, 4))
    gram[:, 0, 0], gram[:, 0, 1], gram[:, 1, 1] = float(s.n), s.s1[-1], s.s2[-1]
    gram[:, 0, 2], gram[:, 0, 3] = ha["a"], hb["a"]
    gram[:, 1, 2], gram[:, 1, 3] = ha["xa"], hb["xa"]
    gram[:, 2, 2], gram[:, 3, 3] = ha["aa"], hb["aa"]
    gram[:, 2, 3] = s.cross(a, b)
    upper = np.triu_indices(4, k=1)
    gram[:, upper[1], upper[0]] = gram[:, upper[0], upper[1]]
    rhs = np.stack([np.full(m, s.y0[-1]), np.full(m, s.y1[-1]), ha["ya"], hb["ya"]], axis=1)
    _, sse = s.fit(gram, rhs)
    best = int(np.argmin(sse))
    return float(a[best]), float(b[best])


def knee(frame: pl.DataFrame, *, window: int = DEFAULT_WINDOW, until_cycle: float | None = None,
         onset: bool = True, margin: float = 0.05, cycle: str | None = None,
         capacity: str | None = None, nominal_ah: float | None = None) -> Knee | None:
    """Knee point (and onset) of the smoothed capacity curve; ``None`` when there is no knee.

    The fit runs on cycles up to ``until_cycle`` (all by default; Fermin-Cueto et al. fit up to the
    end of life) and the breakpoint is searched in the inner ``1 - 2 * margin`` of that span.
    A knee needs the line after it to fall faster than the line before it.
    """
    df = fade(frame, window=window, nominal_ah=nominal_ah, cycle=cycle, capacity=capacity)
    if until_cycle is not None:
        df = df.filter(pl.col("cycle") <= until_cycle)
    if df.height < 10:
        raise ValidationFailed(f"{df.height} cycles: a knee needs at least 10", location="cycle")
    x_raw = df["cycle"].to_numpy().astype(float)
    y_raw = df["capacity_smooth_ah"].to_numpy()
    x_raw, y_raw = _resample(x_raw, y_raw, GRID_POINTS)
    x0, span = x_raw[0], x_raw[-1] - x_raw[0]
    scale = float(np.ptp(y_raw)) or 1.0
    x = (x_raw - x0) / span
    y = (y_raw - y_raw.mean()) / scale
    inner = (x >= margin) & (x <= 1 - margin)
    if inner.sum() < 3:
        return None
    candidates = x[inner]
    best, coef, sse = _two_lines(x, y, candidates)
    left, right = coef[1] - coef[2], coef[1] + coef[2]
    if not right < left:  # no steepening: no knee
        return None
    x1 = float(candidates[best])
    onset_cycle = None
    if onset:
        pick = np.unique(np.linspace(0, candidates.size - 1, min(ONSET_GRID, candidates.size))
                         .round().astype(int))
        a, _ = _three_lines(x, y, candidates[pick])
        onset_cycle = float(x0 + a * span) if a < x1 else None
    cycle_at = float(x0 + x1 * span)
    return Knee(
        cycle=cycle_at,
        capacity_ah=float(np.interp(cycle_at, x_raw, y_raw)),
        onset=onset_cycle,
        slope_before=float(left * scale / span),
        slope_after=float(right * scale / span),
        rmse_ah=float(np.sqrt(sse[best] / x.size) * scale),
    )


# ----------------------------------------------------------------------------- end of life


@dataclass(frozen=True)
class EndOfLife:
    cycle: int | None  # first cycle below the threshold; None if not reached
    reached: bool
    threshold: float  # fraction of the reference
    threshold_ah: float
    reference: Literal["nominal", "initial"]
    reference_ah: float
    last_cycle: int
    last_capacity_ah: float  # smoothed (or raw, with smooth=False), at the last cycle

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def end_of_life(frame: pl.DataFrame, *, threshold: float = 0.8, nominal_ah: float | None = None,
                reference: Literal["nominal", "initial"] | None = None, smooth: bool = True,
                window: int = 5, cycle: str | None = None,
                capacity: str | None = None) -> EndOfLife:
    """First cycle whose capacity falls below ``threshold`` x the reference capacity.

    ``reference`` is ``"nominal"`` (needs ``nominal_ah``; the default when it is given) or
    ``"initial"`` (median of the first 5 cycles; the default without a nominal). With
    ``smooth=True`` the capacity is first smoothed (rolling median then mean over ``window``), so
    one anomalous low cycle does not end a cell's life; ``smooth=False`` takes the raw values (the
    definition behind the Severson labels).
    """
    if not 0 < threshold < 1:
        raise ValidationFailed(f"threshold is a fraction in (0, 1), got {threshold}",
                               location="threshold")
    df = per_cycle(frame, cycle=cycle, capacity=capacity, nominal_ah=nominal_ah)
    reference = reference or ("nominal" if nominal_ah is not None else "initial")
    if reference == "nominal":
        if nominal_ah is None:
            raise ValidationFailed("reference='nominal' needs nominal_ah", location="nominal_ah")
        ref = float(nominal_ah)
    elif reference == "initial":
        ref = float(df["capacity_ah"].head(5).median())  # type: ignore[arg-type]
    else:
        raise ValidationFailed(f"reference must be 'nominal' or 'initial', got {reference!r}",
                               location="reference")
    col = _smooth_expr("capacity_ah", window) if smooth else pl.col("capacity_ah")
    df = df.with_columns(col.alias("_q"))
    limit = threshold * ref
    below = df.filter(pl.col("_q") < limit)
    first = int(below["cycle"][0]) if below.height else None
    return EndOfLife(cycle=first, reached=first is not None, threshold=threshold,
                     threshold_ah=limit, reference=reference, reference_ah=ref,
                     last_cycle=int(df["cycle"][-1]), last_capacity_ah=float(df["_q"][-1]))
