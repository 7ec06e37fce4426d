"""Per-cycle and per-step summaries of a canonical cycling table, with DC internal resistance.

Everything here is columnar (polars ``group_by``/``over`` expressions; no Python loop over rows or
cycles). Input is the canonical table of :func:`batteryloop.cycling.read` (BDF machine names,
current positive while charging); a frame that lacks a required column raises
:class:`batteryloop.errors.ValidationFailed` naming it.

Conventions (all documented column by column in :func:`cycles` and :func:`steps`):

* **Capacity and energy** are summed from per-row increments of the cumulative BDF counters
  (``charging_capacity_ah`` ...), so a cycle's charge capacity equals the tester's own
  ``cycle_charging_capacity_ah`` at the cycle's end. A frame without counters falls back to the
  trapezoidal integral of current over time (and of voltage x charge for energy).
* **Direction of a row** is read from the current: charge where ``I > limit``, discharge where
  ``I < -limit``, with ``limit = 1e-3 * max|I|`` (the rest threshold of
  :mod:`batteryloop.cycling.normalize`).
* **Mean voltage** of a charge (discharge) is energy / capacity, the charge-weighted mean
  ``integral V dQ / integral dQ``, which does not depend on how densely the tester logged.
* **Duration** runs from a cycle's (step's) first row to the next one's first row; the last one
  ends at its own last row. Durations therefore add up to the test's span.
* **Missing values** are NaN in float columns (a cycle with no charge has NaN charge voltages and
  efficiencies; a file without temperature has NaN temperatures; no resistance event gives NaN).

DC internal resistance (:func:`dcir`) has two estimators, both ``R = dV / dI`` against the last
sample of a preceding rest step (the last moment the current is known to be at its rest value):

* ``onset``: at each rest -> load transition, the first load sample whose time after that last rest
  sample lies in ``window_s`` (default 0 to 1 s) and whose current has moved by at least
  ``min_current_fraction`` of the step's full current change. ``dt_second`` in the result says how
  far into the step the sample actually was. The default lower bound is 0, not 10 ms, because
  testers that stamp time in whole seconds (Neware CSV) log the first load sample at the same
  time stamp as the last rest sample; the current check keeps an unswitched sample out. A file
  logged every 60 s (``bdf/batmo_bdf.csv``) has no sample that early, so its onset resistance is
  NaN unless a wider window is asked for.
* ``pulse``: a load step logged over no more than ``pulse_max_s`` (default 30 s) with rest on both
  sides; ``R`` is taken at the pulse's last sample against the rest before it, the way the Hybrid
  Pulse Power Characterization (HPPC) test computes its pulse resistance, ``dV / dI`` from just
  before the pulse to its end (FreedomCAR Battery Test Manual for Power-Assist Hybrid Electric
  Vehicles, DOE/ID-11069, Idaho National Laboratory, October 2003). Pulses programmed inside one
  step (drive profiles) are not split out.

Per cycle, :func:`cycles` reports the median over the cycle's events of each kind.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import polars as pl

from batteryloop.cycling._lazy import collect
from batteryloop.errors import ValidationFailed

#: |I| at or below this fraction of the frame's largest |I| counts as no current (as in normalize).
REST_FRACTION = 1e-3
#: Default time window after the last rest sample in which the onset sample must fall (seconds).
DCIR_WINDOW_S: tuple[float, float] = (0.0, 1.0)
#: Window bounds are compared with this slack (s): time stamps are floats (10800.05 - 10800.0 is
#: 0.04999...), and no tester resolves a microsecond.
TIME_TOLERANCE_S = 1e-6
#: Longest load step (seconds, first to last logged row) that still counts as a pulse.
PULSE_MAX_S = 30.0
#: The onset sample's current change must be at least this fraction of the step's largest change.
MIN_CURRENT_FRACTION = 0.1
#: A resistance event needs a current change of at least this fraction of the frame's largest |I|
#: (keeps near-zero 'load' steps, whose dV/dI is noise over noise, out).
MIN_EVENT_CURRENT_FRACTION = 0.01

SUMMARY_REQUIRED: tuple[str, ...] = ("test_time_second", "voltage_volt", "current_ampere",
                                     "cycle_count")
STEP_REQUIRED: tuple[str, ...] = (*SUMMARY_REQUIRED, "step_count")
_COUNTERS = {
    "_dqc": "charging_capacity_ah",
    "_dqd": "discharging_capacity_ah",
    "_dec": "charging_energy_wh",
    "_ded": "discharging_energy_wh",
}
_NAN = float("nan")


# ----------------------------------------------------------------------------- shared helpers
def require_columns(df: pl.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise :class:`ValidationFailed` naming every required column that is absent or all null."""
    missing = [c for c in columns if c not in df.columns]
    empty = [c for c in columns
             if c in df.columns and df.height and df[c].null_count() == df.height]
    if missing or empty:
        parts = ([f"missing required column(s) {', '.join(missing)}"] if missing else []) + \
                ([f"required column(s) {', '.join(empty)} have no values"] if empty else [])
        bad = missing + empty
        raise ValidationFailed(f"{'; '.join(parts)} (needed by {what})",
                               location=f"column {bad[0]}", details={"columns": bad})


def rest_limit(df: pl.DataFrame) -> float:
    """|I| at or below which a row counts as carrying no current (see ``REST_FRACTION``)."""
    return _rest_limit(_top_current(df))


def _top_current(df: pl.DataFrame) -> float:
    """The frame's largest |I| (0 when it has none)."""
    top = df["current_ampere"].abs().max() if df.height else 0.0
    return float(top or 0.0)


def _rest_limit(top: float) -> float:
    return max(top * REST_FRACTION, 1e-12)


def _has_values(df: pl.DataFrame, col: str) -> bool:
    return col in df.columns and df[col].null_count() < df.height


def _counter_increment(col: str) -> pl.Expr:
    """Growth per row of a cumulative counter; a decrease reads as 'reset to zero, then x'."""
    x = pl.col(col).fill_null(strategy="forward").fill_null(0.0)
    prev = x.shift(1)
    return pl.when(prev.is_null() | (x < prev)).then(x).otherwise(x - prev)


def row_increments(df: pl.DataFrame) -> list[pl.Expr]:
    """Expressions for per-row charge/discharge capacity (Ah) and energy (Wh) increments.

    Named ``_dqc``, ``_dqd``, ``_dec``, ``_ded``; all >= 0. From the cumulative BDF counters where
    the frame has them, else from the trapezoidal integral of current over time (the interval
    between two rows belongs to the later row, as in :mod:`batteryloop.cycling.normalize`).
    """
    return list(_row_increments(tuple(c for c in _COUNTERS.values() if _has_values(df, c))))


# Expressions that depend only on which columns a frame has are built once per process: building
# polars expressions in Python is a sizeable part of a small file's cost.
@functools.lru_cache(maxsize=32)
def _row_increments(counters: tuple[str, ...]) -> tuple[pl.Expr, ...]:
    """``row_increments`` for a frame whose counters with values are ``counters``."""
    dt = pl.col("test_time_second").diff().fill_null(0.0).clip(lower_bound=0.0)
    i = pl.col("current_ampere").fill_null(0.0)
    v = pl.col("voltage_volt").fill_null(strategy="forward").fill_null(0.0)
    dq = (i + i.shift(1).fill_null(i)) / 2.0 * dt / 3600.0
    integrated = {"_dqc": dq.clip(lower_bound=0.0), "_dqd": (-dq).clip(lower_bound=0.0)}
    out = {}
    for name, col in _COUNTERS.items():
        if col in counters:
            out[name] = _counter_increment(col)
        elif name in integrated:
            out[name] = integrated[name]
    for name, qname in (("_dec", "_dqc"), ("_ded", "_dqd")):
        if name not in out:  # energy = V x charge increment when the frame has no energy counter
            q = out[qname] if qname in out else integrated[qname]
            out[name] = q * v
    return tuple(e.fill_null(0.0).alias(n) for n, e in out.items())


def _nan(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Float64).fill_null(_NAN)


@functools.cache
def _output(columns: tuple[str, ...], ints: tuple[str, ...], kept: tuple[str, ...]
            ) -> tuple[pl.Expr, ...]:
    """A summary's output columns: ``ints`` as Int64, ``kept`` as they are, the rest as Float64
    with NaN for missing."""
    floats = [c for c in columns if c not in (*ints, *kept)]
    return pl.col(ints).cast(pl.Int64), pl.col(kept), _nan(pl.col(floats))


def _ratio(num: str, den: str) -> pl.Expr:
    return pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den)).otherwise(_NAN)


def _temperature_column(df: pl.DataFrame) -> str | None:
    """The cell temperature when logged, else the ambient one, else None."""
    for col in ("temperature_t1_celsius", "ambient_temperature_celsius"):
        if _has_values(df, col):
            return col
    return None


# ----------------------------------------------------------------------------- cycles
CYCLE_COLUMNS: tuple[str, ...] = (
    "cycle_count", "n_rows", "start_time_second", "duration_second",
    "charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh", "discharge_energy_wh",
    "coulombic_efficiency", "energy_efficiency",
    "charge_mean_voltage_volt", "charge_start_voltage_volt", "charge_end_voltage_volt",
    "discharge_mean_voltage_volt", "discharge_start_voltage_volt", "discharge_end_voltage_volt",
    "temperature_min_celsius", "temperature_max_celsius", "temperature_mean_celsius",
    "temperature_source", "dcir_ohm", "dcir_pulse_ohm",
)


def cycles(df: pl.DataFrame, *, dcir_window_s: tuple[float, float] = DCIR_WINDOW_S,
           pulse_max_s: float = PULSE_MAX_S) -> pl.DataFrame:
    """One row per ``cycle_count`` (ascending), columns ``CYCLE_COLUMNS``:

    * ``n_rows``; ``start_time_second`` (first row); ``duration_second`` (to the next cycle's first
      row, the last cycle to its own last row);
    * ``charge_capacity_ah``/``discharge_capacity_ah``/``charge_energy_wh``/``discharge_energy_wh``:
      throughput in the cycle (sum of counter increments; see the module docstring);
    * ``coulombic_efficiency`` = discharge / charge capacity, ``energy_efficiency`` = discharge /
      charge energy, NaN when nothing was charged. Note the tester's cycle definition decides what
      a cycle holds: for a discharge-first half cell the ratio is lithiation over the *next*
      delithiation only if the tester counts cycles that way;
    * ``charge_mean_voltage_volt`` (charge energy / charge capacity), ``charge_start_voltage_volt``
      and ``charge_end_voltage_volt`` (first and last row with charging current); the same for
      discharge;
    * ``temperature_min/max/mean_celsius`` over the cycle's rows from ``temperature_source`` (the
      cell temperature ``temperature_t1_celsius`` when logged, else the ambient one; null when
      neither is), NaN when absent;
    * ``dcir_ohm`` / ``dcir_pulse_ohm``: median onset / pulse resistance of the cycle (see
      :func:`dcir`; ``step_count`` is needed for them, else they are NaN).
    """
    require_columns(df, SUMMARY_REQUIRED, "cycles()")
    if df.height == 0:
        return _empty(CYCLE_COLUMNS)
    top = _top_current(df)
    lim = _rest_limit(top)
    t, v, i = pl.col("test_time_second"), pl.col("voltage_volt"), pl.col("current_ampere")
    chg, dchg = i > lim, i < -lim
    temp = _temperature_column(df)
    temp_aggs = ([pl.col(temp).min().alias("temperature_min_celsius"),
                  pl.col(temp).max().alias("temperature_max_celsius"),
                  pl.col(temp).mean().alias("temperature_mean_celsius")] if temp else
                 [pl.lit(None, pl.Float64).alias(n) for n in ("temperature_min_celsius",
                                                              "temperature_max_celsius",
                                                              "temperature_mean_celsius")])
    g = (df.lazy()
         .with_columns(row_increments(df))
         .group_by("cycle_count")
         .agg(pl.len().alias("n_rows"),
              t.first().alias("start_time_second"), t.last().alias("_end"),
              pl.col("_dqc").sum().alias("charge_capacity_ah"),
              pl.col("_dqd").sum().alias("discharge_capacity_ah"),
              pl.col("_dec").sum().alias("charge_energy_wh"),
              pl.col("_ded").sum().alias("discharge_energy_wh"),
              v.filter(chg).first().alias("charge_start_voltage_volt"),
              v.filter(chg).last().alias("charge_end_voltage_volt"),
              v.filter(dchg).first().alias("discharge_start_voltage_volt"),
              v.filter(dchg).last().alias("discharge_end_voltage_volt"),
              *temp_aggs)
         .sort("cycle_count")
         .with_columns(
             (pl.col("start_time_second").shift(-1).fill_null(pl.col("_end"))
              - pl.col("start_time_second")).alias("duration_second"),
             _ratio("discharge_capacity_ah", "charge_capacity_ah").alias("coulombic_efficiency"),
             _ratio("discharge_energy_wh", "charge_energy_wh").alias("energy_efficiency"),
             _ratio("charge_energy_wh", "charge_capacity_ah").alias("charge_mean_voltage_volt"),
             _ratio("discharge_energy_wh", "discharge_capacity_ah")
             .alias("discharge_mean_voltage_volt"),
             pl.lit(temp, pl.String).alias("temperature_source")))
    has_steps = "step_count" in df.columns and _has_values(df, "step_count")
    if has_steps:
        _check_window(dcir_window_s)
    # A resistance event needs a load step, i.e. a row with |I| above the rest limit: when no
    # row has one (a rest-only file), every step is a rest and there is nothing to look for.
    if has_steps and top > lim:
        ev = _dcir_events(df, top, window_s=dcir_window_s, pulse_max_s=pulse_max_s,
                          min_current_fraction=MIN_CURRENT_FRACTION, min_current_a=None)
        g = g.join(_per_cycle(ev), on="cycle_count", how="left", maintain_order="left")
    else:
        g = g.with_columns(pl.lit(None, pl.Float64).alias("dcir_ohm"),
                           pl.lit(None, pl.Float64).alias("dcir_pulse_ohm"))
    return collect(g.select(_output(CYCLE_COLUMNS, ("cycle_count", "n_rows"),
                                    ("temperature_source",))).select(pl.col(CYCLE_COLUMNS)))


# ----------------------------------------------------------------------------- steps
STEP_COLUMNS: tuple[str, ...] = (
    "cycle_count", "step_count", "step_id", "step_type", "n_rows",
    "start_time_second", "duration_second", "start_voltage_volt", "end_voltage_volt",
    "min_voltage_volt", "max_voltage_volt", "mean_current_ampere",
    "charge_capacity_ah", "discharge_capacity_ah", "capacity_ah",
    "charge_energy_wh", "discharge_energy_wh", "energy_wh",
)


def steps(df: pl.DataFrame) -> pl.DataFrame:
    """One row per ``step_count`` (ascending), columns ``STEP_COLUMNS``.

    ``duration_second`` runs to the next step's first row (the last step to its own last row);
    ``mean_current_ampere`` is the time-weighted mean (trapezoidal integral of current within the
    step over its logged span; the plain mean for a one-row step); ``capacity_ah``/``energy_wh``
    are the step's throughput, charge plus discharge (a clean step has one of the two at zero).
    ``step_id``/``step_type`` are null when the frame has none.
    """
    require_columns(df, STEP_REQUIRED, "steps()")
    if df.height == 0:
        return _empty(STEP_COLUMNS)
    t, v, i, s = (pl.col(c) for c in ("test_time_second", "voltage_volt", "current_ampere",
                                      "step_count"))
    first = (s != s.shift(1)).fill_null(True)
    idt = pl.when(first).then(0.0).otherwise((i + i.shift(1)) / 2.0 * t.diff()).fill_null(0.0)
    extra = [pl.col(c).first().alias(c) if c in df.columns else pl.lit(None).alias(c)
             for c in ("step_id", "step_type")]
    g = (df.lazy()
         .with_columns(*row_increments(df), idt.alias("_idt"))
         .group_by("step_count")
         .agg(pl.col("cycle_count").first(), *extra, pl.len().alias("n_rows"),
              t.first().alias("start_time_second"), t.last().alias("_end"),
              v.first().alias("start_voltage_volt"), v.last().alias("end_voltage_volt"),
              v.min().alias("min_voltage_volt"), v.max().alias("max_voltage_volt"),
              i.mean().alias("_imean"), pl.col("_idt").sum().alias("_charge_as"),
              pl.col("_dqc").sum().alias("charge_capacity_ah"),
              pl.col("_dqd").sum().alias("discharge_capacity_ah"),
              pl.col("_dec").sum().alias("charge_energy_wh"),
              pl.col("_ded").sum().alias("discharge_energy_wh"))
         .sort("step_count")
         .with_columns(
             (pl.col("start_time_second").shift(-1).fill_null(pl.col("_end"))
              - pl.col("start_time_second")).alias("duration_second"),
             pl.when(pl.col("_end") > pl.col("start_time_second"))
             .then(pl.col("_charge_as") / (pl.col("_end") - pl.col("start_time_second")))
             .otherwise(pl.col("_imean")).alias("mean_current_ampere"),
             (pl.col("charge_capacity_ah") + pl.col("discharge_capacity_ah")).alias("capacity_ah"),
             (pl.col("charge_energy_wh") + pl.col("discharge_energy_wh")).alias("energy_wh")))
    return collect(g.select(_output(STEP_COLUMNS, ("cycle_count", "step_count", "n_rows", "step_id"),
                                    ("step_type",))).select(pl.col(STEP_COLUMNS)))


# ----------------------------------------------------------------------------- resistance
DCIR_COLUMNS: tuple[str, ...] = (
    "cycle_count", "step_count", "kind", "step_type", "time_second", "dt_second",
    "voltage_before_volt", "current_before_ampere", "voltage_volt", "current_ampere",
    "resistance_ohm",
)


def dcir(df: pl.DataFrame, *, window_s: tuple[float, float] = DCIR_WINDOW_S,
         pulse_max_s: float = PULSE_MAX_S,
         min_current_fraction: float = MIN_CURRENT_FRACTION,
         min_current_a: float | None = None) -> pl.DataFrame:
    """DC internal resistance events, one row per estimate (see the module docstring).

    Columns ``DCIR_COLUMNS``: ``kind`` is ``"onset"`` or ``"pulse"``; ``time_second`` is the test
    time of the sample used, ``dt_second`` its distance from the last rest sample (so the window
    actually used is visible); ``resistance_ohm = (voltage_volt - voltage_before_volt) /
    (current_ampere - current_before_ampere)``. A rest step is one typed ``rest`` or whose current
    never exceeds the rest limit; every other step is a load step. An event needs a current change
    of at least ``min_current_a`` (default: ``MIN_EVENT_CURRENT_FRACTION`` of the frame's largest
    |I|). A pulse is a load step whose logged span (first to last row) is at most ``pulse_max_s``
    and that has rest steps on both sides.
    """
    require_columns(df, STEP_REQUIRED, "dcir()")
    _check_window(window_s)
    if df.height == 0:
        return _empty(DCIR_COLUMNS)
    return collect(_dcir_events(df, _top_current(df), window_s=window_s, pulse_max_s=pulse_max_s,
                                min_current_fraction=min_current_fraction,
                                min_current_a=min_current_a))


def _check_window(window_s: tuple[float, float]) -> None:
    lo, hi = window_s
    if not 0.0 <= lo <= hi:
        raise ValueError(f"window_s must satisfy 0 <= start <= end, got {window_s}")


def _dcir_events(df: pl.DataFrame, top: float, *, window_s: tuple[float, float],
                 pulse_max_s: float, min_current_fraction: float,
                 min_current_a: float | None) -> pl.LazyFrame:
    """The events of :func:`dcir` as one lazy query (``top``: the frame's largest |I|)."""
    lo, hi = window_s
    lim = _rest_limit(top)
    min_di = max(lim, MIN_EVENT_CURRENT_FRACTION * top if min_current_a is None else min_current_a)
    t, v, i, s = (pl.col(c) for c in ("test_time_second", "voltage_volt", "current_ampere",
                                      "step_count"))
    rest = (i.abs() <= lim).all().over("step_count")
    if _has_values(df, "step_type"):
        rest = rest | (pl.col("step_type") == "rest").fill_null(False)
    first = (s != s.shift(1)).fill_null(True)

    def at_step_start(e: pl.Expr) -> pl.Expr:  # the previous row's value, spread over the step
        return pl.when(first).then(e.shift(1)).otherwise(None).fill_null(strategy="forward")

    stype = pl.col("step_type") if "step_type" in df.columns else pl.lit(None, pl.String)
    rows = df.lazy().select("cycle_count", "step_count", t, v, i, stype.alias("step_type"),
                            rest.alias("_rest"))
    rows = rows.with_columns(
        at_step_start(t).alias("_t0"), at_step_start(v).alias("_v0"),
        at_step_start(i).alias("_i0"), at_step_start(pl.col("_rest")).alias("_prev_rest"))
    di = (i - pl.col("_i0")).abs()
    elapsed = t - pl.col("_t0")
    slack = TIME_TOLERANCE_S
    onset_ok = (~pl.col("_rest") & pl.col("_prev_rest").fill_null(False)
                & elapsed.is_between(lo - slack, hi + slack) & (di >= min_di)
                & (di >= min_current_fraction * di.max().over("step_count")))
    per_step = (rows
                .with_columns(elapsed.alias("_dt"), onset_ok.alias("_ok"))
                .group_by("step_count")
                .agg(pl.col("cycle_count").first(), pl.col("step_type").first(),
                     pl.col("_rest").first(), pl.col("_prev_rest").first().fill_null(False),
                     pl.col("_t0").first(), pl.col("_v0").first(), pl.col("_i0").first(),
                     t.first().alias("_t_first"), t.last().alias("_t_last"),
                     v.last().alias("_v_last"), i.last().alias("_i_last"),
                     pl.col("_dt").filter(pl.col("_ok")).first().alias("_on_dt"),
                     t.filter(pl.col("_ok")).first().alias("_on_t"),
                     v.filter(pl.col("_ok")).first().alias("_on_v"),
                     i.filter(pl.col("_ok")).first().alias("_on_i"))
                .sort("step_count")
                .with_columns(pl.col("_rest").shift(-1).fill_null(False).alias("_next_rest"))
                .cache())  # read twice below (onsets, pulses), computed once
    base = [pl.col("cycle_count"), pl.col("step_count")]
    before = [pl.col("_v0").alias("voltage_before_volt"),
              pl.col("_i0").alias("current_before_ampere")]
    onsets = per_step.filter(pl.col("_on_v").is_not_null()).select(
        *base, pl.lit("onset").alias("kind"), pl.col("step_type").cast(pl.String),
        pl.col("_on_t").alias("time_second"), pl.col("_on_dt").alias("dt_second"), *before,
        pl.col("_on_v").alias("voltage_volt"), pl.col("_on_i").alias("current_ampere"))
    pulse = (~pl.col("_rest") & pl.col("_prev_rest") & pl.col("_next_rest")
             & ((pl.col("_t_last") - pl.col("_t_first")) <= pulse_max_s + TIME_TOLERANCE_S)
             & ((pl.col("_i_last") - pl.col("_i0")).abs() >= min_di))
    pulses = per_step.filter(pulse).select(
        *base, pl.lit("pulse").alias("kind"), pl.col("step_type").cast(pl.String),
        pl.col("_t_last").alias("time_second"),
        (pl.col("_t_last") - pl.col("_t0")).alias("dt_second"), *before,
        pl.col("_v_last").alias("voltage_volt"), pl.col("_i_last").alias("current_ampere"))
    out = pl.concat([onsets, pulses]).sort("step_count", "kind")
    return out.with_columns(
        ((pl.col("voltage_volt") - pl.col("voltage_before_volt"))
         / (pl.col("current_ampere") - pl.col("current_before_ampere"))).alias("resistance_ohm"),
        pl.col("cycle_count").cast(pl.Int64), pl.col("step_count").cast(pl.Int64),
    ).select(DCIR_COLUMNS)


def dcir_per_cycle(df: pl.DataFrame, *, window_s: tuple[float, float] = DCIR_WINDOW_S,
                   pulse_max_s: float = PULSE_MAX_S,
                   min_current_fraction: float = MIN_CURRENT_FRACTION,
                   min_current_a: float | None = None) -> pl.DataFrame:
    """``cycle_count``, ``dcir_ohm`` (median onset R), ``dcir_pulse_ohm`` (median pulse R), and
    the event counts ``n_dcir``/``n_dcir_pulse``; one row per cycle that has any event."""
    ev = dcir(df, window_s=window_s, pulse_max_s=pulse_max_s,
              min_current_fraction=min_current_fraction, min_current_a=min_current_a)
    return collect(_per_cycle(ev.lazy()))


def _per_cycle(ev: pl.LazyFrame) -> pl.LazyFrame:
    r, kind = pl.col("resistance_ohm"), pl.col("kind")
    return (ev.group_by("cycle_count")
            .agg(r.filter(kind == "onset").median().alias("dcir_ohm"),
                 r.filter(kind == "pulse").median().alias("dcir_pulse_ohm"),
                 (kind == "onset").sum().cast(pl.Int64).alias("n_dcir"),
                 (kind == "pulse").sum().cast(pl.Int64).alias("n_dcir_pulse"))
            .sort("cycle_count"))


def _empty(columns: tuple[str, ...]) -> pl.DataFrame:
    ints = {"cycle_count", "step_count", "n_rows", "step_id"}
    strs = {"kind", "temperature_source"}
    schema = {c: (pl.Int64 if c in ints else pl.String if c in strs or c == "step_type"
                  else pl.Float64) for c in columns}
    return pl.DataFrame(schema=schema)


__all__ = [
    "CYCLE_COLUMNS",
    "DCIR_COLUMNS",
    "DCIR_WINDOW_S",
    "PULSE_MAX_S",
    "STEP_COLUMNS",
    "cycles",
    "dcir",
    "dcir_per_cycle",
    "require_columns",
    "rest_limit",
    "row_increments",
    "steps",
]
