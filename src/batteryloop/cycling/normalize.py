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

import functools

import polars as pl

from batteryloop.cycling._lazy import collect, collect_with
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
#: Whether test time ever drops, and the largest |I|: the first decisions of ``finish``.
_FIRST_LOOK = ((pl.col("test_time_second").diff() < 0).fill_null(False).any().alias("drops"),
               pl.col("current_ampere").abs().max().alias("max_i"))


# Expressions that depend on nothing but column names are built once per process (@cache), like
# compiled regexes: building polars expressions in Python is a sizeable part of a small file's cost.
@functools.cache
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


def _capacity_increments(df: pl.DataFrame, meta: CyclerMetadata) -> dict[str, pl.Expr]:
    """_inc_* columns from whatever capacity information the file has (none: an empty dict).

    All of them are computed from the reader's own columns, so they form one step; a later source
    of the same column replaces an earlier one, as applying them one after the other would.
    """
    out: dict[str, pl.Expr] = {}
    for helper, (chg, dchg) in (("_capacity_ah", ("_inc_chg_q", "_inc_dchg_q")),
                                 ("_energy_wh", ("_inc_chg_e", "_inc_dchg_e"))):
        if helper not in df.columns:  # one unsigned column: charge and discharge by step_type
            continue
        inc = _increments(helper).abs()
        out[chg] = pl.when(pl.col("step_type") == "charge").then(inc).otherwise(0.0).alias(chg)
        out[dchg] = pl.when(pl.col("step_type") == "discharge").then(inc).otherwise(0.0).alias(dchg)
    if out:
        meta.note("one capacity column split into charge/discharge by step direction")
    if "_dq_ah" in df.columns:
        dq = pl.col("_dq_ah").fill_null(0.0)
        out["_inc_chg_q"] = dq.clip(lower_bound=0).alias("_inc_chg_q")
        out["_inc_dchg_q"] = (-dq).clip(lower_bound=0).alias("_inc_dchg_q")
    pairs = {"charging_capacity_ah": "_inc_chg_q", "discharging_capacity_ah": "_inc_dchg_q",
             "charging_energy_wh": "_inc_chg_e", "discharging_energy_wh": "_inc_dchg_e"}
    for src, dst in pairs.items():
        if src in df.columns and dst not in out and df[src].null_count() < df.height:
            out[dst] = _increments(src).alias(dst)
    return out


def _charging(from_capacity: bool) -> tuple[pl.Expr, pl.Expr, str]:
    """Rows that charge / discharge, judged from where the capacities grow (or step labels)."""
    if from_capacity:
        return pl.col("_inc_chg_q") > 0, pl.col("_inc_dchg_q") > 0, "capacity columns"
    st = pl.col("step_type")
    return st == "charge", st == "discharge", "step types"


def _sign_stats(from_capacity: bool, rest_limit: float) -> list[pl.Expr]:
    """Rows moving current of each sign while charging / discharging (see _fix_current_sign)."""
    i = pl.col("current_ampere")
    moving = i.abs() > rest_limit
    is_chg, is_dchg, _ = _charging(from_capacity)
    return [((i > 0) & is_chg & moving).sum().alias("cp"),
            ((i < 0) & is_chg & moving).sum().alias("cn"),
            ((i > 0) & is_dchg & moving).sum().alias("dp"),
            ((i < 0) & is_dchg & moving).sum().alias("dn")]


def _fix_current_sign(stats: dict, meta: CyclerMetadata, from_capacity: bool) -> pl.Expr | None:
    """Make current charge-positive, judged from ``_sign_stats``: the new current column, or
    None when it stays as it is."""
    i = pl.col("current_ampere")
    is_chg, is_dchg, basis = _charging(from_capacity)
    chg_pos = _share(stats["cp"], stats["cn"])
    dchg_pos = _share(stats["dp"], stats["dn"])
    if chg_pos is None and dchg_pos is None:
        return None
    if (chg_pos is None or chg_pos < 0.1) and (dchg_pos is None or dchg_pos > 0.9):
        meta.note(f"current sign flipped: discharge was positive (judged from {basis})")
        return -i
    if (chg_pos is not None and dchg_pos is not None) and (
        (chg_pos > 0.9 and dchg_pos > 0.9) or (chg_pos < 0.1 and dchg_pos < 0.1)
    ):
        direction = (pl.when(is_chg | (pl.col("step_type") == "charge")).then(1.0)
                     .when(is_dchg | (pl.col("step_type") == "discharge")).then(-1.0)
                     .otherwise(None))
        meta.note(f"current was unsigned (same sign in charge and discharge): sign set from "
                  f"step direction ({basis}), charge positive")
        return (i.abs() * direction).fill_null(i).alias("current_ampere")
    return None


def _share(pos: int, neg: int) -> float | None:
    return None if pos + neg == 0 else pos / (pos + neg)


def _integrate(meta: CyclerMetadata) -> list[pl.Expr]:
    """Capacities and energies from current and voltage when the file has none (trapezoid in time)."""
    dt = pl.col("test_time_second").diff().fill_null(0.0).clip(lower_bound=0)
    i = pl.col("current_ampere").fill_null(0.0)
    i_mid = (i + i.shift(1).fill_null(i)) / 2
    dq = i_mid * dt / 3600.0
    de = dq * pl.col("voltage_volt").fill_null(strategy="forward").fill_null(0.0)
    meta.note("capacities integrated from current x time (file has no capacity columns)")
    return [dq.clip(lower_bound=0).alias("_inc_chg_q"), (-dq).clip(lower_bound=0).alias("_inc_dchg_q"),
            de.clip(lower_bound=0).alias("_inc_chg_e"), (-de).clip(lower_bound=0).alias("_inc_dchg_e")]


def _energy_from_voltage(meta: CyclerMetadata) -> list[pl.Expr]:
    v = pl.col("voltage_volt").fill_null(strategy="forward").fill_null(0.0)
    meta.note("energies integrated as voltage x capacity increments (file has no energy columns)")
    return [(pl.col("_inc_chg_q") * v).alias("_inc_chg_e"),
            (pl.col("_inc_dchg_q") * v).alias("_inc_dchg_e")]


def _labels() -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """Enum literals: the labels never exist as one string per row."""
    return tuple(pl.lit(x, dtype=StepType) for x in ("charge", "discharge", "rest"))


@functools.cache
def _step_types_from_capacity() -> pl.Expr:
    """Label each step run charge/discharge/rest from its capacity growth."""
    run = pl.col("_run")
    chg, dchg, rest = _labels()
    qc, qd = pl.col("_inc_chg_q").sum().over(run), pl.col("_inc_dchg_q").sum().over(run)
    label = pl.when((qc > qd) & (qc > 0)).then(chg).when(qd > 0).then(dchg).otherwise(rest)
    return pl.coalesce(pl.col("step_type"), label).alias("step_type")


def _step_types_from_current(rest_limit: float) -> pl.Expr:
    """Label each step run charge/discharge/rest from its mean current."""
    mean_i = pl.col("current_ampere").mean().over("_run")
    chg, dchg, rest = _labels()
    label = pl.when(mean_i > rest_limit).then(chg).when(mean_i < -rest_limit).then(dchg) \
        .otherwise(rest)
    return pl.coalesce(pl.col("step_type"), label).alias("step_type")


@functools.cache
def _first_direction() -> pl.Expr:
    """The file's first active step type (charge or discharge), as text; null when none."""
    st = pl.col("step_type")
    return st.filter(st.is_in(["charge", "discharge"])).first().cast(pl.String)


def _cycles(first: str | None, n_back: int | None, meta: CyclerMetadata) -> list[pl.Expr]:
    """The final cycle_count: derived from step types when the file has none (``first`` is the
    first active direction), else filled and, with ``n_back`` decreases, unwrapped."""
    if n_back is None:
        # Convention: a cycle is the file's first active direction followed by the other one; a
        # new cycle starts when that first direction comes back (charge-first cells count from a
        # charge, discharge-first half cells from a discharge, as the testers do).
        if first is None:
            meta.note("cycle_count set to 1: no charge or discharge in the file")
            return [pl.lit(1, dtype=pl.Int64).alias("cycle_count")]
        st = pl.col("step_type")
        last = pl.when(st.is_in(["charge", "discharge"])).then(st).fill_null(strategy="forward")
        new = (last == first) & (last.shift(1) != first)
        meta.note(f"cycle_count derived: a new cycle starts at each {first} that follows the "
                  "other direction")
        return [(new.fill_null(False).cum_sum() + 1).cast(pl.Int64).alias("cycle_count")]
    filled = _filled_cycles()
    if not n_back:
        return [filled]
    prev = filled.shift(1)
    back = filled.diff() < 0
    offset = pl.when(back).then(prev - filled + 1).otherwise(0).cum_sum()
    meta.note(f"cycle counter went backwards {n_back} time(s): unwrapped to keep "
              "cycle_count monotonic")
    return [(filled + offset.fill_null(0)).alias("cycle_count")]


@functools.cache
def _filled_cycles() -> pl.Expr:
    return (pl.col("cycle_count").fill_null(strategy="forward").fill_null(strategy="backward")
            .cast(pl.Int64))


@functools.lru_cache(maxsize=64)
def _typed(present: frozenset[str]) -> tuple[pl.Expr, ...]:
    """The columns every step needs, typed (missing ones all null); ``present``: the reader's."""
    def col(n: str) -> pl.Expr:
        return pl.col(n) if n in present else pl.lit(None, dtype=COLUMNS[n])

    out = [col(n).cast(t).alias(n) for n, t in (
        ("test_time_second", pl.Float64), ("voltage_volt", pl.Float64),
        ("current_ampere", pl.Float64), ("step_type", StepType))]
    out += [col(n).cast(pl.Int64, strict=False).alias(n) for n in ("step_id", "cycle_count")]
    if "unix_time_second" not in present:
        out.append(col("unix_time_second").alias("unix_time_second"))
    return tuple(out)


@functools.cache
def _counted() -> tuple[pl.Expr, ...]:
    """step_count and the cumulative (test and cycle) counters from the increments."""
    inc_of = {"charging_capacity_ah": "_inc_chg_q", "discharging_capacity_ah": "_inc_dchg_q",
              "charging_energy_wh": "_inc_chg_e", "discharging_energy_wh": "_inc_dchg_e"}
    out = [(pl.struct(pl.col("step_id").fill_null(strategy="forward"), "step_type", "cycle_count")
            .rle_id() + 1).cast(pl.Int64).alias("step_count")]
    out += [pl.col(inc_of[test]).cum_sum().alias(test) for test, _ in _CAP_PAIRS]
    out += [pl.col(inc_of[test]).cum_sum().over("cycle_count").alias(cyc)
            for test, cyc in _CAP_PAIRS]
    return tuple(out)


@functools.lru_cache(maxsize=64)
def _canonical(have: frozenset[str]) -> tuple[pl.Expr, ...]:
    """The canonical columns in order and type; those not in ``have`` all null."""
    return tuple((pl.col(n) if n in have else pl.lit(None, dtype=t)).cast(t).alias(n)
                 for n, t in COLUMNS.items())


def finish(df: pl.DataFrame, meta: CyclerMetadata) -> pl.DataFrame:
    """Normalise a reader's partial frame into the canonical schema (see module docstring).

    The steps run in three batched polars calls; the decisions between them (is there a time
    reset, which way is the current signed, ...) come from aggregates computed in the same call.
    """
    # 1. the columns every step needs, typed; whether time resets and the largest current
    df, first = collect_with(df.lazy().with_columns(_typed(frozenset(df.columns))), _FIRST_LOOK)
    if first["drops"]:
        df = _unwrap_time(df, meta)
    rest_limit = max(float(first["max_i"] or 0.0) * REST_FRACTION, 1e-9)
    no_cycles = df["cycle_count"].null_count() == df.height
    no_unix = df["unix_time_second"].null_count() == df.height

    # 2. increments, provisional cycle numbers, step runs and (with capacities) step types; the
    #    figures that decide the current's sign and how to number cycles
    incs = _capacity_increments(df, meta)
    has_capacity = "_inc_chg_q" in incs and "_inc_dchg_q" in incs
    lf = df.lazy().with_columns(*incs.values(),
                                pl.col("cycle_count").fill_null(strategy="forward"))
    if has_capacity:
        lf = lf.with_columns(_step_runs(df, rest_limit).alias("_run")) \
               .with_columns(_step_types_from_capacity())
    by_capacity = "_inc_chg_q" in incs  # the basis for judging the current's sign
    stats = _sign_stats(by_capacity, rest_limit)
    if not no_cycles:
        stats.append((_filled_cycles().diff() < 0).sum().alias("n_back"))
    elif has_capacity:  # step types are final: the first direction too
        stats.append(_first_direction().alias("first"))
    df, stats = collect_with(lf, stats)

    # 3. current sign, (without capacities) integrated capacities and step types, cycles, step
    #    counts, cumulative counters, the canonical columns
    lf = df.lazy()
    sign = _fix_current_sign(stats, meta, by_capacity)
    if sign is not None:
        lf = lf.with_columns(sign)
    if not has_capacity:
        lf = lf.with_columns(_integrate(meta))
        lf = lf.with_columns(_step_runs(df, rest_limit).alias("_run")) \
               .with_columns(_step_types_from_current(rest_limit))
        if no_cycles:  # numbering cycles needs the final step types
            done, more = collect_with(lf, [_first_direction().alias("first")])
            lf, stats["first"] = done.lazy(), more["first"]
    elif "_inc_chg_e" not in incs:
        lf = lf.with_columns(_energy_from_voltage(meta))
    lf = lf.with_columns(_cycles(stats.get("first"), stats.get("n_back"), meta))
    last = list(_counted())
    if no_unix and meta.start_time_unix is not None:
        last.append((pl.col("test_time_second") + meta.start_time_unix).alias("unix_time_second"))
        meta.note("unix time = start time from the file header + test time")
    have = frozenset(df.columns) | {e.meta.output_name() for e in last}
    return collect(lf.with_columns(last).select(_canonical(have)))


__all__ = ["STEP_TYPES", "finish"]
