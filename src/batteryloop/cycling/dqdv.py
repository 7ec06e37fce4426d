"""Capacity on a voltage grid, Q(V), and differential analysis: dQ/dV (incremental capacity) and
dV/dQ (differential voltage), per cycle, for charge and for discharge separately.

Which rows make a curve. In each cycle and direction we take the longest *segment*: a run of
consecutive rows whose current flows in that direction (``I > limit`` for charge, ``I < -limit``
for discharge, ``limit = 1e-3 * max|I|``), so a CC-CC multi-rate charge stays one curve while a
rest or the other direction ends it ("longest" = most capacity). With ``drop_cv=True`` (default)
the constant-voltage tail is dropped: rows within ``cv_tolerance_v`` of the segment's extreme
voltage whose |I| has fallen below 98 % of the largest |I| seen so far in the segment. A CV tail
piles capacity at one voltage, a spike in dQ/dV that says nothing about the electrodes.

Q(V) without inverting a non-monotonic curve. Between two consecutive rows the tester passed the
capacity ``dq`` while the voltage moved from ``V_a`` to ``V_b``; we spread ``dq`` uniformly over
``[min(V_a, V_b), max(V_a, V_b)]`` (a row pair at one voltage puts ``dq`` at that voltage) and
define ``F(V)``, the capacity passed at voltages below ``V``. For a monotonic curve this is exactly
linear interpolation of the measured Q(V); for a noisy or flat (LFP) one it stays monotonic by
construction, needs no sorting, de-duplication or cumulative max, and conserves the capacity:
``F`` runs from 0 to the segment's total. It is the continuous form of counting the capacity
passed in fixed voltage bins, dQ/dV ~ dQ/dV-bin, a common way to compute incremental capacity
(incremental capacity analysis: M. Dubarry, V. Svoboda, R. Hwu, B. Y. Liaw, Electrochem.
Solid-State Lett. 9 (2006) A454). Charge Q(V) is ``F(V)`` (passed at voltages <= V); discharge
Q(V) is the capacity delivered by the time the voltage has fallen to V (at voltages >= V). It is
computed for all cycles at once with ``numpy.bincount`` and cumulative sums on the grid (no loop
over cycles).

Derivatives. dQ/dV is the Savitzky-Golay first derivative of ``F`` on a uniform voltage grid
(A. Savitzky, M. J. E. Golay, Anal. Chem. 36 (1964) 1627-1639): a least-squares polynomial of
degree ``polyorder`` over a window of ``window_v`` (default 0.025 V) around each grid point;
within half a window of the grid's ends the window shrinks symmetrically (a one-sided difference
at the very end point). Because ``F`` is a bounded,
monotonic function of V the result is finite everywhere: a perfectly flat plateau becomes a step
of ``F`` and hence a tall but finite peak of width about ``window_v``, whose area is still the
plateau's capacity. The default ``polyorder=2`` has first-derivative weights proportional to the
offset ``j`` (the quadratic term drops out at the window centre), so the estimate at an interior
point is ``sum_j j * (F(V + j h) - F(V - j h)) / (h * sum j^2)``, never negative for a monotonic
``F``: no ringing below zero next to a plateau. Order 3 or 4 keeps peaks sharper at the price of
such side lobes. dV/dQ (Bloom et al., J. Power Sources 139 (2005) 295-303) is the
Savitzky-Golay derivative of V(Q), V linearly interpolated (``numpy.interp``) on a uniform
capacity grid; Q grows with every logged row, so V(Q) needs no monotonic treatment. The
weights are the closed form ``j / sum j^2`` for order <= 2 and numpy least squares for higher
orders (scipy is not a dependency).

Sign convention: both derivatives are reported positive in both directions, i.e. with respect to
the charge stored in the cell, which rises with voltage. Values outside the voltage (capacity)
range of a cycle's segment are NaN: nothing was measured there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl

from batteryloop.cycling.summary import (
    SUMMARY_REQUIRED,
    require_columns,
    rest_limit,
    row_increments,
)

Direction = Literal["charge", "discharge"]
#: Voltage steps narrower than this (V) are treated as a single voltage (no spreading).
FLAT_V = 1e-6
#: Default Savitzky-Golay window for dQ/dV (V), polynomial order, and grid step (V).
DQDV_WINDOW_V = 0.025
DQDV_GRID_STEP_V = 0.001
POLYORDER = 2
#: Default dV/dQ window as a fraction of the capacity grid's span, and grid size.
DVDQ_WINDOW_FRACTION = 0.02
DVDQ_POINTS = 1000
CV_TOLERANCE_V = 0.002
_CV_CURRENT_SHARE = 0.98


class _Curves:
    """The selected segments of one direction: rows (numpy) plus per-cycle totals and ranges."""

    def __init__(self, cycles: np.ndarray, group: np.ndarray, v: np.ndarray, v_prev: np.ndarray,
                 dq: np.ndarray) -> None:
        self.cycles = cycles            # cycle_count per group, ascending
        self.group = group              # group index per row
        self.v, self.v_prev, self.dq = v, v_prev, dq
        n = len(cycles)
        self.total = np.bincount(group, weights=dq, minlength=n)
        self.v_min = np.full(n, np.inf)
        self.v_max = np.full(n, -np.inf)
        np.minimum.at(self.v_min, group, v)
        np.maximum.at(self.v_max, group, v)

    def below(self, grid: np.ndarray, *, inclusive: bool = True) -> np.ndarray:
        """F[g, j]: capacity group g passed at voltages below grid[j] (see the module docstring);
        capacity passed at exactly grid[j] counts when ``inclusive``."""
        n, m = len(self.cycles), len(grid)
        lo, hi = np.minimum(self.v, self.v_prev), np.maximum(self.v, self.v_prev)
        width = hi - lo
        flat = width < FLAT_V
        base = self.group * (m + 1)
        size = n * (m + 1)

        def acc(index: np.ndarray, weights: np.ndarray) -> np.ndarray:
            out = np.bincount(index, weights=weights, minlength=size).reshape(n, m + 1)
            return np.cumsum(out, axis=1)[:, :m]

        # Uniform spreading: F = sum s * (ramp(V - lo) - ramp(V - hi)), s = dq / width, written as
        # V * A(V) - B(V) with A, B cumulative sums of s and s*x over the breakpoints x below V.
        ramp, lo_r, hi_r = ~flat, lo[~flat], hi[~flat]
        s = self.dq[ramp] / width[ramp]
        i_lo = base[ramp] + np.searchsorted(grid, lo_r, side="right")
        i_hi = base[ramp] + np.searchsorted(grid, hi_r, side="right")
        a = acc(i_lo, s) - acc(i_hi, s)
        b = acc(i_lo, s * lo_r) - acc(i_hi, s * hi_r)
        f = grid[None, :] * a - b
        # Row pairs at one voltage: a step of dq at that voltage.
        side = "left" if inclusive else "right"
        f += acc(base[flat] + np.searchsorted(grid, lo[flat], side=side), self.dq[flat])
        return np.clip(f, 0.0, self.total[:, None])

    def outside(self, grid: np.ndarray) -> np.ndarray:
        return (grid[None, :] < self.v_min[:, None]) | (grid[None, :] > self.v_max[:, None])


def _select(df: pl.DataFrame, direction: Direction, cycles: Sequence[int] | None, drop_cv: bool,
            cv_tolerance_v: float) -> _Curves:
    """The longest same-direction segment of each cycle (see the module docstring)."""
    if direction not in ("charge", "discharge"):
        raise ValueError(f"direction must be 'charge' or 'discharge', got {direction!r}")
    require_columns(df, SUMMARY_REQUIRED, f"{direction} curves")
    lim = rest_limit(df)
    i, v = pl.col("current_ampere"), pl.col("voltage_volt")
    along = (i > lim) if direction == "charge" else (i < -lim)
    dq = "_dqc" if direction == "charge" else "_dqd"
    rows = (df  # increments before selecting cycles: they are differences between rows
            .with_columns(row_increments(df))
            .with_columns(along.fill_null(False).alias("_on"))
            .with_columns(pl.struct("cycle_count", "_on").rle_id().alias("_seg")))
    if cycles is not None:
        rows = rows.filter(pl.col("cycle_count").is_in(list(cycles)))
    rows = (rows
            .filter(pl.col("_on") & v.is_not_null() & v.is_not_nan())
            .select("cycle_count", "_seg", "voltage_volt", "current_ampere",
                    pl.col(dq).alias("_dq")))
    seg_q = pl.col("_dq").sum().over("_seg")
    rows = (rows.with_columns(seg_q.alias("_segq"))
            .filter(pl.col("_seg") == pl.col("_seg").sort_by(pl.col("_segq"), descending=True)
                    .first().over("cycle_count")))
    if drop_cv:
        a = pl.col("current_ampere").abs()
        extreme = v.max() if direction == "charge" else v.min()
        near = (v - extreme.over("_seg")).abs() <= cv_tolerance_v
        decayed = a < _CV_CURRENT_SHARE * a.cum_max().over("_seg")
        rows = rows.filter(~(near & decayed))
    first = pl.col("_seg") != pl.col("_seg").shift(1)
    rows = rows.with_columns(
        pl.when(first.fill_null(True)).then(v).otherwise(v.shift(1)).alias("_vprev"))
    cyc = rows["cycle_count"].to_numpy()
    uniq, group = np.unique(cyc, return_inverse=True)
    return _Curves(uniq, group.astype(np.int64), rows["voltage_volt"].to_numpy(),
                   rows["_vprev"].to_numpy(), rows["_dq"].to_numpy())


def _long(cycles: np.ndarray, axis_name: str, axis: np.ndarray, **values: np.ndarray
          ) -> pl.DataFrame:
    n, m = len(cycles), len(axis)
    return pl.DataFrame({
        "cycle_count": np.repeat(cycles, m).astype(np.int64),
        axis_name: np.tile(axis, n),
        **{k: v.reshape(-1) for k, v in values.items()},
    })


def _grid(grid: Sequence[float] | np.ndarray) -> np.ndarray:
    g = np.asarray(grid, dtype=float)
    if g.ndim != 1 or len(g) < 2 or not np.all(np.diff(g) > 0) or not np.all(np.isfinite(g)):
        raise ValueError("grid must be a finite, strictly increasing 1-D sequence of >= 2 points")
    return g


def _directions(direction: Direction | Literal["both"]) -> tuple[Direction, ...]:
    return ("charge", "discharge") if direction == "both" else (direction,)


def _with_direction(frames: list[tuple[Direction, pl.DataFrame]]) -> pl.DataFrame:
    out = [f.with_columns(pl.lit(d).alias("direction")) for d, f in frames]
    df = pl.concat(out) if out else pl.DataFrame()
    return df.select("cycle_count", "direction", *[c for c in df.columns
                                                    if c not in ("cycle_count", "direction")])


# ----------------------------------------------------------------------------- Q(V)
def q_of_v(df: pl.DataFrame, grid: Sequence[float] | np.ndarray, *,
           direction: Direction | Literal["both"] = "discharge",
           cycles: Sequence[int] | None = None, drop_cv: bool = True,
           cv_tolerance_v: float = CV_TOLERANCE_V) -> pl.DataFrame:
    """Capacity on a fixed voltage grid per cycle: columns ``cycle_count``, ``direction``,
    ``voltage_volt``, ``capacity_ah`` (long format, one row per cycle and grid point).

    Charge: capacity charged by the time the voltage rose to V. Discharge: capacity delivered by
    the time it fell to V. Monotonic in V by construction, NaN outside the segment's voltage range
    (see the module docstring for the segment and the estimator). ``grid`` need not be uniform.
    """
    g = _grid(grid)
    frames = []
    for d in _directions(direction):
        c = _select(df, d, cycles, drop_cv, cv_tolerance_v)
        # charge: passed at voltages <= V; discharge: delivered at voltages >= V
        q = c.below(g) if d == "charge" else c.total[:, None] - c.below(g, inclusive=False)
        q = np.where(c.outside(g), np.nan, q)
        frames.append((d, _long(c.cycles, "voltage_volt", g, capacity_ah=q)))
    return _with_direction(frames)


# ----------------------------------------------------------------------------- Savitzky-Golay
def savgol_derivative(y: np.ndarray, window: int, polyorder: int, delta: float) -> np.ndarray:
    """First derivative along the last axis of ``y`` (uniform spacing ``delta``) by Savitzky-Golay
    least squares over ``window`` points (odd). Within ``window // 2`` points of either end the
    window shrinks symmetrically (order capped at what the points allow; a one-sided difference at
    the very end), so the end values keep the sign guarantee of the interior ones: for order <= 2
    the estimate is ``sum_j j (y[i+j] - y[i-j]) / sum_j j^2``, computed as written, hence exactly
    >= 0 wherever ``y`` is non-decreasing."""
    y = np.asarray(y, dtype=float)
    m = y.shape[-1]
    if m < 2:
        return np.zeros_like(y)
    window = min(window, m if m % 2 else m - 1)
    window -= 1 - window % 2
    k = window // 2
    out = np.empty_like(y)
    out[..., 0] = y[..., 1] - y[..., 0]
    out[..., m - 1] = y[..., m - 1] - y[..., m - 2]
    if k:
        out[..., k:m - k] = _sg_at(y, np.arange(k, m - k), k, polyorder)
    for half in range(1, min(k, (m - 1) // 2 + 1)):  # the shrinking edge windows
        out[..., [half, m - 1 - half]] = _sg_at(y, np.array([half, m - 1 - half]), half, polyorder)
    return out / delta


def _sg_at(y: np.ndarray, pos: np.ndarray, half: int, polyorder: int) -> np.ndarray:
    """Savitzky-Golay first derivative (unit step) at ``pos`` from ``2 * half + 1`` points."""
    order = max(1, min(polyorder, 2 * half))
    if order <= 2:  # weights j / sum(j^2) on the symmetric differences
        norm = half * (half + 1) * (2 * half + 1) / 3.0
        return sum(j * (y[..., pos + j] - y[..., pos - j]) for j in range(1, half + 1)) / norm
    x = np.arange(-half, half + 1, dtype=float)
    w = np.linalg.pinv(np.vander(x, order + 1, increasing=True))[1]
    return sum(w[half + j] * y[..., pos + j] for j in range(-half, half + 1))


def _points(window: float, step: float, polyorder: int) -> int:
    n = round(window / step)
    n += 1 - n % 2  # odd
    return max(n, polyorder + 3 - polyorder % 2)  # smallest odd window that smooths at all


def _uniform(grid: np.ndarray) -> float:
    step = np.diff(grid)
    if not np.allclose(step, step[0], rtol=1e-6, atol=0.0):
        raise ValueError("the grid must be uniform for the Savitzky-Golay derivative")
    return float(step[0])


# ----------------------------------------------------------------------------- dQ/dV
def dqdv(df: pl.DataFrame, grid: Sequence[float] | np.ndarray | None = None, *,
         direction: Direction | Literal["both"] = "discharge",
         window_v: float = DQDV_WINDOW_V, polyorder: int = POLYORDER,
         grid_step_v: float = DQDV_GRID_STEP_V, cycles: Sequence[int] | None = None,
         drop_cv: bool = True, cv_tolerance_v: float = CV_TOLERANCE_V) -> pl.DataFrame:
    """Incremental capacity per cycle: columns ``cycle_count``, ``direction``, ``voltage_volt``,
    ``capacity_ah`` (Q(V) as in :func:`q_of_v`) and ``dqdv_ah_per_volt`` (>= 0 exactly for
    ``polyorder <= 2``; higher orders may ring slightly below 0 beside sharp peaks; NaN outside the
    cycle's voltage range).

    ``grid``: a uniform voltage grid; default: ``grid_step_v`` (1 mV) steps over the selected rows'
    voltage range. Smoothing: Savitzky-Golay, ``window_v`` volts wide (rounded to an odd number of
    grid points, at least ``polyorder + 2``), polynomial order ``polyorder`` (default 2).
    ``cycles`` restricts the result to those cycle numbers.
    """
    frames = []
    for d in _directions(direction):
        c = _select(df, d, cycles, drop_cv, cv_tolerance_v)
        if grid is not None:
            g = _grid(grid)
        elif len(c.cycles):
            lo = np.floor(c.v_min.min() / grid_step_v) * grid_step_v
            hi = np.ceil(c.v_max.max() / grid_step_v) * grid_step_v
            g = lo + grid_step_v * np.arange(round((hi - lo) / grid_step_v) + 1)
            g = g if len(g) >= 2 else np.array([lo, lo + grid_step_v])
        else:
            g = np.array([0.0, grid_step_v])
        step = _uniform(g)
        f = c.below(g)
        out = savgol_derivative(f, _points(window_v, step, polyorder), polyorder, step)
        q = f if d == "charge" else c.total[:, None] - c.below(g, inclusive=False)
        mask = c.outside(g)
        frames.append((d, _long(c.cycles, "voltage_volt", g,
                                capacity_ah=np.where(mask, np.nan, q),
                                dqdv_ah_per_volt=np.where(mask, np.nan, out))))
    return _with_direction(frames)


# ----------------------------------------------------------------------------- dV/dQ
def v_of_q(df: pl.DataFrame, q_grid: Sequence[float] | np.ndarray, *,
           direction: Direction | Literal["both"] = "discharge",
           cycles: Sequence[int] | None = None, drop_cv: bool = True,
           cv_tolerance_v: float = CV_TOLERANCE_V) -> pl.DataFrame:
    """Voltage on a fixed capacity grid per cycle (``cycle_count``, ``direction``,
    ``capacity_ah``, ``voltage_volt``), capacity counted from the segment's start; NaN beyond
    the segment's capacity."""
    g = _grid(q_grid)
    frames = []
    for d in _directions(direction):
        c = _select(df, d, cycles, drop_cv, cv_tolerance_v)
        v = _v_matrix(c, g)
        frames.append((d, _long(c.cycles, "capacity_ah", g,
                                voltage_volt=np.where(_q_outside(c, g), np.nan, v))))
    return _with_direction(frames)


def _v_matrix(c: _Curves, q_grid: np.ndarray) -> np.ndarray:
    """V(Q) per group on ``q_grid``, held constant beyond the measured range (for smoothing)."""
    n, m = len(c.cycles), len(q_grid)
    if n == 0:
        return np.empty((0, m))
    q = np.cumsum(c.dq)
    starts = np.r_[0, np.flatnonzero(np.diff(c.group)) + 1]
    q = q - np.repeat(q[starts] - c.dq[starts], np.diff(np.r_[starts, len(q)]))
    # One abscissa for all groups: group g lives on [g * span, g * span + total_g].
    span = float(c.total.max()) * 2.0 + 1.0
    keep = np.r_[True, (np.diff(q) > 0) | (np.diff(c.group) != 0)]
    x, v, grp = c.group[keep] * span + q[keep], c.v[keep], c.group[keep]
    xq = (np.arange(n)[:, None] * span + q_grid[None, :]).reshape(-1)
    out = np.interp(xq, x, v).reshape(n, m)
    first = np.r_[0, np.flatnonzero(np.diff(grp)) + 1]
    last = np.r_[first[1:] - 1, len(grp) - 1]
    q_first, q_last = x[first] - np.arange(n) * span, x[last] - np.arange(n) * span
    out = np.where(q_grid[None, :] < q_first[:, None], v[first][:, None], out)
    return np.where(q_grid[None, :] > q_last[:, None], v[last][:, None], out)


def _q_outside(c: _Curves, q_grid: np.ndarray) -> np.ndarray:
    return (q_grid[None, :] > c.total[:, None] * (1 + 1e-12)) | (q_grid[None, :] < 0)


def dvdq(df: pl.DataFrame, q_grid: Sequence[float] | np.ndarray | None = None, *,
         direction: Direction | Literal["both"] = "discharge", window_ah: float | None = None,
         polyorder: int = POLYORDER, n_points: int = DVDQ_POINTS,
         cycles: Sequence[int] | None = None, drop_cv: bool = True,
         cv_tolerance_v: float = CV_TOLERANCE_V) -> pl.DataFrame:
    """Differential voltage per cycle: columns ``cycle_count``, ``direction``, ``capacity_ah``
    (from the segment's start), ``voltage_volt`` and ``dvdq_volt_per_ah`` (>= 0 wherever V(Q) is
    monotonic, for ``polyorder <= 2``; NaN beyond the cycle's capacity).

    ``q_grid``: a uniform capacity grid; default ``n_points`` from 0 to the largest segment
    capacity. Smoothing: Savitzky-Golay over ``window_ah`` (default ``DVDQ_WINDOW_FRACTION`` of the
    grid's span), polynomial order ``polyorder``.
    """
    frames = []
    for d in _directions(direction):
        c = _select(df, d, cycles, drop_cv, cv_tolerance_v)
        if q_grid is not None:
            g = _grid(q_grid)
        else:
            top = float(c.total.max()) if len(c.cycles) else 1.0
            g = np.linspace(0.0, top if top > 0 else 1.0, n_points)
        step = _uniform(g)
        w = window_ah if window_ah is not None else DVDQ_WINDOW_FRACTION * (g[-1] - g[0])
        v = _v_matrix(c, g)
        out = savgol_derivative(v, _points(w, step, polyorder), polyorder, step)
        out = out if d == "charge" else -out
        mask = _q_outside(c, g)
        frames.append((d, _long(c.cycles, "capacity_ah", g,
                                voltage_volt=np.where(mask, np.nan, v),
                                dvdq_volt_per_ah=np.where(mask, np.nan, out))))
    return _with_direction(frames)


__all__ = [
    "DQDV_GRID_STEP_V",
    "DQDV_WINDOW_V",
    "DVDQ_POINTS",
    "DVDQ_WINDOW_FRACTION",
    "POLYORDER",
    "dqdv",
    "dvdq",
    "q_of_v",
    "savgol_derivative",
    "v_of_q",
]
