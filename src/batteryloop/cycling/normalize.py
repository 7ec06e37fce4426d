"""Turn a reader's partial table into the canonical one, columnar only (no Python loop per row).

A reader hands over whatever canonical columns its file has, already in SI units, plus optional
helper columns:

* ``_capacity_ah`` / ``_energy_wh``: one unsigned capacity (energy) column for both directions,
  as Maccor and Novonix export it; split into charge and discharge by ``step_type``.
* ``_dq_ah``: signed charge increments per row (BioLogic ``dq``).

Every change made to the numbers is written to ``meta.normalisations``. Capacities are rebuilt
from per-row increments, so it does not matter whether the tester reset its counters per step,
per cycle or never: a decrease of a counter is read as a reset to zero.
"""

from __future__ import annotations

import polars as pl

from batteryloop.cycling.schema import COLUMNS, STEP_TYPES, CyclerMetadata, StepType

#: A time drop counts as a tester reset (and is unwrapped) when the time after it is below this
#: fraction of the time before it; other drops are left alone and reported by validation.
RESET_FRACTION = 0.05
#: At most this many resets are unwrapped; more drops than that means shuffled rows, not resets.
MAX_RESETS = 20
#: |I| below this fraction of the file's largest |I| counts as rest.
REST_FRACTION = 1e-3
_CAP_PAIRS = (
    ("charging_capacity_ah", "cycle_charging_capacity_ah"),
    ("discharging_capacity_ah", "cycle_discharging_capacity_ah"),
    ("charging_energy_wh", "cycle_charging_energy_wh"),
    ("discharging_energy_wh", "cycle_discharging_energy_wh"),
)


def _increments(col: str) -> pl.Expr:
    """Per-row growth of a counter that may reset to zero: a decrease means 'reset, then x'."""
    x = pl.col(col).fill_null(strategy="forward").fill_null(0.0)
    prev = x.shift(1)
    return pl.when(prev.is_null() | (x < prev)).then(x).otherwise(x - prev)


def _unwrap_time(df: pl.DataFrame, meta: CyclerMetadata) -> pl.DataFrame:
    t = df["test_time_second"]
    drops = (t.diff() < 0).fill_null(False)
    if not drops.any():
        return df
    prev = t.shift(1)
    is_reset = drops & (t < RESET_FRACTION * prev)
    n_reset = int(is_reset.sum())
    if n_reset == 0 or n_reset > MAX_RESETS or int(drops.sum()) != n_reset:
        return df  # shuffled or otherwise disordered rows: validation reports them
    offset = pl.when(is_reset).then(prev).otherwise(0.0).cum_sum()
    rows = is_reset.arg_true().to_list()
    meta.note(f"test time reset at table row(s) {rows[:5]}{'...' if len(rows) > 5 else ''} "
              f"unwrapped into monotonic test time ({n_reset} reset(s))")
    return df.with_columns((pl.col("test_time_second") + df.select(offset).to_series())
                           .alias("test_time_second"))


def _ensure(df: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    missing = [n for n in names if n not in df.columns]
    return df.with_columns([pl.lit(None, dtype=COLUMNS[n]).alias(n) for n in missing])


def _step_runs(df: pl.DataFrame, rest_limit: float) -> pl.Expr:
    """Run id over consecutive rows of one step: from step_id/cycle when known, else current sign."""
    if df["step_id"].null_count() < df.height:
        keys = [pl.col("step_id").fill_null(strategy="forward"), pl.col("cycle_count")]
        if df["step_type"].null_count() < df.height:
            keys.append(pl.col("step_type"))
        return pl.struct(keys).rle_id()
    sign = (pl.when(pl.col("current_ampere") > rest_limit).then(1)
            .when(pl.col("current_ampere") < -rest_limit).then(-1).otherwise(0))
    return sign.rle_id()


def _split_single(df: pl.DataFrame, meta: CyclerMetadata) -> pl.DataFrame:
    """One unsigned capacity/energy column -> charge and discharge increments by step_type."""
    out = []
    for helper, (chg, dchg) in (("_capacity_ah", ("_inc_chg_q", "_inc_dchg_q")),
                                 ("_energy_wh", ("_inc_chg_e", "_inc_dchg_e"))):
        if helper not in df.columns:
            continue
        inc = _increments(helper).abs()
        out += [pl.when(pl.col("step_type") == "charge").then(inc).otherwise(0.0).alias(chg),
                pl.when(pl.col("step_type") == "discharge").then(inc).otherwise(0.0).alias(dchg)]
    if out:
        meta.note("one capacity column split into charge/discharge by step direction")
    return df.with_columns(out)


def _capacity_increments(df: pl.DataFrame, meta: CyclerMetadata) -> tuple[pl.DataFrame, bool]:
    """Add _inc_* columns from whatever capacity information the file has; True if it had any."""
    if "_capacity_ah" in df.columns or "_energy_wh" in df.columns:
        df = _split_single(df, meta)
    if "_dq_ah" in df.columns:
        dq = pl.col("_dq_ah").fill_null(0.0)
        df = df.with_columns(dq.clip(lower_bound=0).alias("_inc_chg_q"),
                             (-dq).clip(lower_bound=0).alias("_inc_dchg_q"))
    pairs = {"charging_capacity_ah": "_inc_chg_q", "discharging_capacity_ah": "_inc_dchg_q",
             "charging_energy_wh": "_inc_chg_e", "discharging_energy_wh": "_inc_dchg_e"}
    exprs = [_increments(src).alias(dst) for src, dst in pairs.items()
             if src in df.columns and dst not in df.columns and df[src].null_count() < df.height]
    df = df.with_columns(exprs)
    return df, "_inc_chg_q" in df.columns and "_inc_dchg_q" in df.columns


def _fix_current_sign(df: pl.DataFrame, meta: CyclerMetadata, rest_limit: float) -> pl.DataFrame:
    """Make current charge-positive, judged from where the capacities grow (or step labels)."""
    i = pl.col("current_ampere")
    moving = i.abs() > rest_limit
    if "_inc_chg_q" in df.columns:
        is_chg, is_dchg = pl.col("_inc_chg_q") > 0, pl.col("_inc_dchg_q") > 0
        basis = "capacity columns"
    else:
        is_chg, is_dchg = pl.col("step_type") == "charge", pl.col("step_type") == "discharge"
        basis = "step types"
    stats = df.select(
        ((i > 0) & is_chg & moving).sum().alias("cp"), ((i < 0) & is_chg & moving).sum().alias("cn"),
        ((i > 0) & is_dchg & moving).sum().alias("dp"), ((i < 0) & is_dchg & moving).sum().alias("dn"),
    ).row(0, named=True)
    chg_pos = _share(stats["cp"], stats["cn"])
    dchg_pos = _share(stats["dp"], stats["dn"])
    if chg_pos is None and dchg_pos is None:
        return df
    if (chg_pos is None or chg_pos < 0.1) and (dchg_pos is None or dchg_pos > 0.9):
        meta.note(f"current sign flipped: discharge was positive (judged from {basis})")
        return df.with_columns(-i)
    if (chg_pos is not None and dchg_pos is not None) and (
        (chg_pos > 0.9 and dchg_pos > 0.9) or (chg_pos < 0.1 and dchg_pos < 0.1)
    ):
        direction = (pl.when(is_chg | (pl.col("step_type") == "charge")).then(1.0)
                     .when(is_dchg | (pl.col("step_type") == "discharge")).then(-1.0)
                     .otherwise(None))
        meta.note(f"current was unsigned (same sign in charge and discharge): sign set from "
                  f"step direction ({basis}), charge positive")
        return df.with_columns((i.abs() * direction).fill_null(i).alias("current_ampere"))
    return df


def _share(pos: int, neg: int) -> float | None:
    return None if pos + neg == 0 else pos / (pos + neg)


def _integrate(df: pl.DataFrame, meta: CyclerMetadata) -> pl.DataFrame:
    """Capacities and energies from current and voltage when the file has none (trapezoid in time)."""
    dt = pl.col("test_time_second").diff().fill_null(0.0).clip(lower_bound=0)
    i = pl.col("current_ampere").fill_null(0.0)
    i_mid = (i + i.shift(1).fill_null(i)) / 2
    dq = i_mid * dt / 3600.0
    de = dq * pl.col("voltage_volt").fill_null(strategy="forward").fill_null(0.0)
    meta.note("capacities integrated from current x time (file has no capacity columns)")
    return df.with_columns(dq.clip(lower_bound=0).alias("_inc_chg_q"),
                           (-dq).clip(lower_bound=0).alias("_inc_dchg_q"),
                           de.clip(lower_bound=0).alias("_inc_chg_e"),
                           (-de).clip(lower_bound=0).alias("_inc_dchg_e"))


def _energy_from_voltage(df: pl.DataFrame, meta: CyclerMetadata) -> pl.DataFrame:
    if "_inc_chg_e" in df.columns:
        return df
    v = pl.col("voltage_volt").fill_null(strategy="forward").fill_null(0.0)
    meta.note("energies integrated as voltage x capacity increments (file has no energy columns)")
    return df.with_columns((pl.col("_inc_chg_q") * v).alias("_inc_chg_e"),
                           (pl.col("_inc_dchg_q") * v).alias("_inc_dchg_e"))


def _step_types(df: pl.DataFrame, rest_limit: float, from_capacity: bool) -> pl.DataFrame:
    """Label each step run charge/discharge/rest from its capacity growth, else its current."""
    run = pl.col("_run")
    if from_capacity:
        qc, qd = pl.col("_inc_chg_q").sum().over(run), pl.col("_inc_dchg_q").sum().over(run)
        label = (pl.when((qc > qd) & (qc > 0)).then(pl.lit("charge"))
                 .when(qd > 0).then(pl.lit("discharge")).otherwise(pl.lit("rest")))
    else:
        mean_i = pl.col("current_ampere").mean().over(run)
        label = (pl.when(mean_i > rest_limit).then(pl.lit("charge"))
                 .when(mean_i < -rest_limit).then(pl.lit("discharge")).otherwise(pl.lit("rest")))
    return df.with_columns(pl.coalesce(pl.col("step_type"), label.cast(StepType)).alias("step_type"))


def _cycles(df: pl.DataFrame, meta: CyclerMetadata) -> pl.DataFrame:
    c = df["cycle_count"]
    if c.null_count() == df.height:
        # Convention: a cycle is the file's first active direction followed by the other one; a
        # new cycle starts when that first direction comes back (charge-first cells count from a
        # charge, discharge-first half cells from a discharge, as the testers do).
        st = pl.col("step_type")
        active = pl.when(st.is_in(["charge", "discharge"])).then(st.cast(pl.String))
        first = df.select(active.drop_nulls().first()).item()
        if first is None:
            meta.note("cycle_count set to 1: no charge or discharge in the file")
            return df.with_columns(pl.lit(1, dtype=pl.Int64).alias("cycle_count"))
        last = active.fill_null(strategy="forward")
        new = (last == first) & (last.shift(1) != first)
        meta.note(f"cycle_count derived: a new cycle starts at each {first} that follows the "
                  "other direction")
        return df.with_columns((new.fill_null(False).cum_sum() + 1).cast(pl.Int64).alias("cycle_count"))
    filled = pl.col("cycle_count").fill_null(strategy="forward").fill_null(strategy="backward")
    df = df.with_columns(filled.cast(pl.Int64))
    d = df["cycle_count"].diff()
    if (d < 0).any():
        prev = pl.col("cycle_count").shift(1)
        back = pl.col("cycle_count").diff() < 0
        offset = pl.when(back).then(prev - pl.col("cycle_count") + 1).otherwise(0).cum_sum()
        meta.note(f"cycle counter went backwards {int((d < 0).sum())} time(s): unwrapped to keep "
                  "cycle_count monotonic")
        df = df.with_columns((pl.col("cycle_count") + offset.fill_null(0)).alias("cycle_count"))
    return df


def finish(df: pl.DataFrame, meta: CyclerMetadata) -> pl.DataFrame:
    """Normalise a reader's partial frame into the canonical schema (see module docstring)."""
    df = _ensure(df, ["test_time_second", "voltage_volt", "current_ampere", "step_type",
                      "step_id", "cycle_count", "unix_time_second"])
    df = df.with_columns(
        pl.col("test_time_second", "voltage_volt", "current_ampere").cast(pl.Float64),
        pl.col("step_id").cast(pl.Int64, strict=False),
        pl.col("step_type").cast(StepType),
    )
    df = _unwrap_time(df, meta)
    df = df.with_columns(pl.col("cycle_count").cast(pl.Int64, strict=False))
    max_i = df["current_ampere"].abs().max()
    rest_limit = max(float(max_i or 0.0) * REST_FRACTION, 1e-9)

    df, has_capacity = _capacity_increments(df, meta)
    provisional_cycles = pl.col("cycle_count").fill_null(strategy="forward")
    df = df.with_columns(provisional_cycles.alias("cycle_count"))
    df = df.with_columns(_step_runs(df, rest_limit).alias("_run"))
    if has_capacity:
        df = _step_types(df, rest_limit, from_capacity=True)
    df = _fix_current_sign(df, meta, rest_limit)
    if not has_capacity:
        df = _integrate(df, meta)
        df = df.with_columns(_step_runs(df, rest_limit).alias("_run"))
        df = _step_types(df, rest_limit, from_capacity=False)
    df = _energy_from_voltage(df, meta)
    df = _cycles(df, meta)
    df = df.with_columns(
        (pl.struct(pl.col("step_id").fill_null(strategy="forward"), "step_type", "cycle_count")
         .rle_id() + 1).cast(pl.Int64).alias("step_count"))
    incs = {"charging_capacity_ah": "_inc_chg_q", "discharging_capacity_ah": "_inc_dchg_q",
            "charging_energy_wh": "_inc_chg_e", "discharging_energy_wh": "_inc_dchg_e"}
    df = df.with_columns(
        [pl.col(incs[test]).cum_sum().alias(test) for test, _ in _CAP_PAIRS]
        + [pl.col(incs[test]).cum_sum().over("cycle_count").alias(cyc) for test, cyc in _CAP_PAIRS]
    )
    if df["unix_time_second"].null_count() == df.height and meta.start_time_unix is not None:
        df = df.with_columns((pl.col("test_time_second") + meta.start_time_unix).alias("unix_time_second"))
        meta.note("unix time = start time from the file header + test time")
    df = _ensure(df, list(COLUMNS))
    return df.select([pl.col(n).cast(t) for n, t in COLUMNS.items()])


__all__ = ["STEP_TYPES", "finish"]
