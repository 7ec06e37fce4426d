"""Early-life features of a cell from its first cycles, for cycle-life prediction.

Two routes (see :mod:`batteryloop.health.cycle_life`):

* **per-cycle** (this module): features of the per-cycle trajectory over the first ``window``
  cycles, for data without voltage curves. Capacity features follow the paper's discharge-capacity
  features (Severson et al., Nature Energy 4, 383, 2019: capacity at cycle 2, max minus cycle 2,
  slope and intercept of the linear fit over cycles 2-100 and 91-100) plus the change from
  cycles 8-12 to the last 10 cycles and the cycle-to-cycle noise. Each of the 16 charge-curve
  statistics contributes its early level (median of cycles 2-6), its change (median of the last 10
  cycles minus that of cycles 8-12: the analogue of the paper's Q100 - Q10), its linear trend over
  cycles 10-``window`` and its cycle-to-cycle noise (log10 std of the residual about a 5-cycle
  rolling median). ``capacity`` keeps only the capacity features (what a tester's per-cycle
  summary has).
* **paper**: the paper's own features, computed by beep from the voltage curves
  (:func:`batteryloop.health.severson.paper_features`).

Windows are in cycle numbers (``cycle`` <= ``window``): for the MIT files, ranks of kept cycles
(see :mod:`batteryloop.health.severson`). All cells are featurised at once (one polars
``group_by``), with no Python loop over cells or cycles.
"""

from __future__ import annotations

import polars as pl

from batteryloop.errors import ValidationFailed
from batteryloop.health.severson import CHARGE_STATISTICS, NOMINAL_AH
from batteryloop.health.trajectory import CAPACITY_COLUMNS, CYCLE_COLUMNS, check_units

ROUTES: tuple[str, ...] = ("charge", "capacity")
DEFAULT_WINDOW = 100
#: Fewest cycles a window needs below which the features are meaningless.
MIN_WINDOW = 20

_c = pl.col("cycle").cast(pl.Float64)


def _in(lo: float, hi: float) -> pl.Expr:
    return (pl.col("cycle") >= lo) & (pl.col("cycle") <= hi)


def _slope(y: pl.Expr, mask: pl.Expr) -> pl.Expr:
    x, v = _c.filter(mask), y.filter(mask)
    return ((x - x.mean()) * (v - v.mean())).sum() / ((x - x.mean()) ** 2).sum()


def _intercept(y: pl.Expr, mask: pl.Expr) -> pl.Expr:
    return y.filter(mask).mean() - _slope(y, mask) * _c.filter(mask).mean()


def _noise(y: pl.Expr, mask: pl.Expr) -> pl.Expr:
    v = y.filter(mask)
    return (v - v.rolling_median(5, center=True, min_samples=1)).std().log10()


def _capacity_exprs(n: int) -> list[pl.Expr]:
    q = pl.col("capacity_ah")
    q2 = q.filter(pl.col("cycle") >= 2).first()
    return [
        q2.alias("q_cycle2"),
        (q.filter(_in(1, n)).max() - q2).alias("q_max_minus_cycle2"),
        q.filter(_in(n - 4, n)).median().alias("q_last"),
        (q.filter(_in(n - 9, n)).median() - q.filter(_in(8, 12)).median()).alias("q_delta"),
        _slope(q, _in(2, n)).alias("q_slope_2_n"),
        _intercept(q, _in(2, n)).alias("q_intercept_2_n"),
        _slope(q, _in(n - 9, n)).alias("q_slope_last10"),
        _intercept(q, _in(n - 9, n)).alias("q_intercept_last10"),
        _noise(q, _in(2, n)).alias("q_noise"),
    ]


def _charge_exprs(n: int) -> list[pl.Expr]:
    out: list[pl.Expr] = []
    for name in CHARGE_STATISTICS:
        x = pl.col(name)
        out += [
            x.filter(_in(2, 6)).median().alias(f"{name} | early"),
            (x.filter(_in(n - 9, n)).median() - x.filter(_in(8, 12)).median())
            .alias(f"{name} | delta"),
            _slope(x, _in(10, n)).alias(f"{name} | slope"),
            _noise(x, _in(2, n)).alias(f"{name} | noise"),
        ]
    return out


def feature_names(route: str, window: int = DEFAULT_WINDOW) -> list[str]:
    exprs = _capacity_exprs(window) + (_charge_exprs(window) if route == "charge" else [])
    return [e.meta.output_name() for e in exprs]


def normalise(frame: pl.DataFrame, route: str, *, nominal_ah: float = NOMINAL_AH
              ) -> pl.DataFrame:
    """Validate a per-cycle frame and give it the names used here: ``cell`` (a constant when the
    frame has none), ``cycle``, ``capacity_ah`` and, for the charge route, the 16 statistics."""
    if route not in ROUTES:
        raise ValidationFailed(f"route must be one of {ROUTES}, got {route!r}", location="route")
    if not isinstance(frame, pl.DataFrame):
        raise ValidationFailed(f"expected a polars DataFrame, got {type(frame).__name__}")
    lower = {c.lower(): c for c in frame.columns}
    cyc = next((lower[c] for c in CYCLE_COLUMNS if c in lower), None)
    cap = next((lower[c] for c in CAPACITY_COLUMNS if c in lower), None)
    missing = [what for what, col in (("cycle", cyc), ("capacity_ah", cap)) if col is None]
    if cap is None and any("mah" in c.lower() for c in frame.columns):
        raise ValidationFailed("capacity is given in mAh; convert it to Ah (divide by 1000)",
                               location="capacity")
    if route == "charge":
        missing += [c for c in CHARGE_STATISTICS if c not in frame.columns]
    if missing:
        hint = (" (a frame with only cycle and capacity needs a model trained with "
                "features='capacity')" if route == "charge" and cyc and cap else "")
        raise ValidationFailed(f"missing column(s) {missing}{hint}", location=", ".join(missing))
    keep = [pl.col(cyc).cast(pl.Int64).alias("cycle"),
            pl.col(cap).cast(pl.Float64).alias("capacity_ah")]
    if route == "charge":
        keep += [pl.col(c).cast(pl.Float64) for c in CHARGE_STATISTICS]
    cell = pl.col("cell").cast(pl.String) if "cell" in frame.columns else pl.lit("cell")
    df = frame.select(cell.alias("cell"), *keep).drop_nulls(["cycle", "capacity_ah"])
    if df.height == 0:
        raise ValidationFailed("no row with both a cycle number and a capacity",
                               location="capacity_ah")
    check_units(df["capacity_ah"], nominal_ah, location="capacity_ah")
    return df.sort("cell", "cycle")


def early_features(frame: pl.DataFrame, route: str = "charge", *,
                   window: int = DEFAULT_WINDOW, nominal_ah: float = NOMINAL_AH,
                   require_window: bool = True) -> pl.DataFrame:
    """One row per cell: ``cell``, ``last_cycle`` and the route's features over cycles
    1..``window``. A cell whose record stops before cycle ``window`` raises
    :class:`ValidationFailed` (``require_window=False`` returns it with ``complete`` false)."""
    if window < MIN_WINDOW:
        raise ValidationFailed(f"window of {window} cycles is too short (at least {MIN_WINDOW})",
                               location="window")
    df = normalise(frame, route, nominal_ah=nominal_ah)
    exprs = _capacity_exprs(window) + (_charge_exprs(window) if route == "charge" else [])
    feats = (df.filter(pl.col("cycle") <= window)
             .group_by("cell", maintain_order=True)
             .agg(pl.len().alias("n_cycles"), *exprs))
    out = (df.group_by("cell", maintain_order=True)
           .agg(pl.col("cycle").filter(pl.col("cycle") <= window).max().alias("last_cycle"),
                (pl.col("cycle").max() >= window).alias("complete"))
           .join(feats, on="cell", how="left"))
    short = out.filter(~pl.col("complete"))
    if require_window and short.height:
        worst = short.sort("last_cycle", nulls_last=False).row(0, named=True)
        where = (f"stops at cycle {worst['last_cycle']}" if worst["last_cycle"] is not None
                 else f"has no cycle up to {window}")
        raise ValidationFailed(
            f"early prediction needs the first {window} cycles; cell '{worst['cell']}' {where} "
            f"({short.height} cell(s) too short)", location="cycle")
    return out
