"""The fast-charging LFP/graphite cells of Severson et al. and the paper's train/test split.

Source: K. A. Severson, P. M. Attia, N. Jin, et al., "Data-driven prediction of battery cycle life
before capacity degradation", Nature Energy 4, 383-391 (2019); data of MIT, Stanford and the Toyota
Research Institute (data.matr.io). What the shared folder holds (``shared/data/lifecycle``):

* ``mit/<batch>/<batch>_battery-N.csv``: one row per kept cycle (16 charge-curve statistics and
  the discharge ``capacity`` in Ah, nominal 1.1 Ah), as preprocessed by wang-fujin/PINN4SOH.
  ``battery-N`` is the paper's cell ``bXc(N-1)``; batches ``2017-05-12``, ``2017-06-30`` and
  ``2018-04-12`` are the paper's batches 1, 2 and 3.
* ``severson_eol.csv``: observed cycle life (cycles to 80 % of 1.1 Ah) of 116 cells by id, with
  knee estimates (valentinsulzer/kneepoint-review). Labels come from here, never from the rows.
* ``severson_features/``: the paper's 20 "full model" features of 64 files computed by beep.

**How rows are matched to cycles.** The files carry no cycle number, and the preprocessing dropped
anomalous cycles. We number the kept rows 1, 2, 3, ... (``cycle`` = rank of the kept cycle) and say
so. Measured against beep's discharge capacity at cycle 100, which appears verbatim (to 1e-7 Ah) in
the rows of 56 cells: cycle 100 is the 80th to 97th kept row (median 94th), so the first 100 kept
rows run to about cycle 103-120 (median 106). :data:`CYCLE_100_ROW` lists those rows (0-based);
``benchmarks/cycle_life.py`` also reports the early-prediction scores with a 94-row window.

**The paper's split** (from its published code, as described in the shared README): drop b1c8,
b1c10, b1c12, b1c13, b1c22 (never reached 80 %); b2c7, b2c8, b2c9, b2c15, b2c16 are continuations
of b1c0-b1c4 (not cells of their own); drop b3c2, b3c23, b3c32, b3c37, b3c42, b3c43 (noisy).
The remaining 41 + 43 + 40 cells, ordered by batch then cell number, take positions 0-123:
training = odd positions 1..81, primary test = even positions 0..82 and 83, secondary test =
batch 3.
Not every position can be scored here: some cells have no label, no file, or a file shorter than
the early-prediction window; :func:`split` says which, cell by cell.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from batteryloop.errors import NotFound, ValidationFailed

NOMINAL_AH = 1.1
#: Folder name -> the paper's batch number.
BATCHES: dict[str, int] = {"2017-05-12": 1, "2017-06-30": 2, "2018-04-12": 3}
CELLS_PER_BATCH: dict[int, int] = {1: 46, 2: 48, 3: 46}
DROPPED: dict[str, str] = {
    **{c: "never reached 80 % (paper)" for c in ("b1c8", "b1c10", "b1c12", "b1c13", "b1c22")},
    **{c: "continuation of a batch-1 cell (paper)"
       for c in ("b2c7", "b2c8", "b2c9", "b2c15", "b2c16")},
    **{c: "noisy channel (paper)" for c in ("b3c2", "b3c23", "b3c32", "b3c37", "b3c42", "b3c43")},
}
#: batch-2 continuation -> the batch-1 cell it continues (paper's code).
CONTINUATIONS: dict[str, str] = {"b2c7": "b1c0", "b2c8": "b1c1", "b2c9": "b1c2",
                                 "b2c15": "b1c3", "b2c16": "b1c4"}
#: A file is *sparse* when it reaches the end of its record (last capacity below
#: ``SPARSE_END_AH``) with fewer rows than ``SPARSE_RATIO`` x the labelled life: its rows are then
#: samples spread over the whole life (b3c8: 101 rows for 829 cycles, fading 1.068 -> 0.966 Ah),
#: so its first rows are not the first cycles. Normal files hold 0.84-1.0 of the life (most
#: 0.92-0.95, as they stop near 0.92 Ah); sparse ones 0.06-0.67. Sparse cells are not scored.
SPARSE_RATIO = 0.75
SPARSE_END_AH = 0.95
#: The 16 charge-curve statistics of the ``mit/`` files (PINN4SOH's names).
CHARGE_STATISTICS: tuple[str, ...] = (
    "voltage mean", "voltage std", "voltage kurtosis", "voltage skewness", "CC Q",
    "CC charge time", "voltage slope", "voltage entropy", "current mean", "current std",
    "current kurtosis", "current skewness", "CV Q", "CV charge time", "current slope",
    "current entropy",
)

#: beep feature file (batch_protocol_channel) -> cell id, and how the match was made:
#: "q100@r": beep's discharge capacity at cycle 100 equals the value in row r (0-based) of that
#: cell's file to 1e-7 Ah (checked by tests/health/test_cycle_life.py);
#: "life": no file for the cell; beep's batch-3 cycle life y equals the label + 1, as it does for
#: every batch-3 cell matched by value; "order": the value matches in a file with heavy drops,
#: and the cell's place in the paper's ordering (files sorted by name) agrees.
#: Two batch-3 files (channels 47 and 48) match no cell and are left out.
PAPER_FEATURE_CELLS: dict[str, tuple[str, str]] = {
    "2017-05-12_3_6C-80per_3_6C_CH1": ("b1c0", "q100@79"),
    "2017-05-12_3_6C-80per_3_6C_CH2": ("b1c1", "q100@84"),
    "2017-05-12_3_6C-80per_3_6C_CH3": ("b1c2", "q100@91"),
    "2017-05-12_4C-80per_4C_CH5": ("b1c3", "q100@91"),
    "2017-05-12_4C-80per_4C_CH6": ("b1c4", "q100@89"),
    "2017-05-12_4_4C-80per_4_4C_CH7": ("b1c5", "q100@91"),
    "2017-05-12_4_8C-80per_4_8C_CH10": ("b1c6", "q100@88"),
    "2017-05-12_4_8C-80per_4_8C_CH9": ("b1c7", "q100@90"),
    "2017-05-12_5_4C-40per_3_6C_CH19": ("b1c8", "q100@84"),
    "2017-05-12_5_4C-40per_3_6C_CH20": ("b1c9", "q100@93"),
    "2017-05-12_5_4C-50per_3C_CH13": ("b1c10", "q100@89"),
    "2017-05-12_5_4C-50per_3C_CH14": ("b1c11", "q100@91"),
    "2017-05-12_5_4C-50per_3_6C_CH21": ("b1c12", "q100@89"),
    "2017-05-12_5_4C-50per_3_6C_CH22": ("b1c13", "q100@86"),
    "2017-05-12_5_4C-60per_3C_CH15": ("b1c14", "q100@92"),
    "2017-05-12_5_4C-60per_3C_CH16": ("b1c15", "q100@90"),
    "2017-05-12_5_4C-60per_3_6C_CH23": ("b1c16", "q100@94"),
    "2017-05-12_5_4C-60per_3_6C_CH24": ("b1c17", "q100@94"),
    "2017-05-12_5_4C-70per_3C_CH17": ("b1c18", "q100@87"),
    "2017-05-12_5_4C-70per_3C_CH18": ("b1c19", "q100@95"),
    "2017-05-12_5_4C-80per_5_4C_CH11": ("b1c20", "q100@93"),
    "2017-05-12_5_4C-80per_5_4C_CH12": ("b1c21", "q100@93"),
    "2017-05-12_6C-30per_3_6C_CH31": ("b1c22", "q100@89"),
    "2017-05-12_6C-30per_3_6C_CH32": ("b1c23", "q100@86"),
    "2017-05-12_6C-40per_3C_CH25": ("b1c24", "q100@92"),
    "2017-05-12_6C-40per_3C_CH26": ("b1c25", "q100@95"),
    "2017-05-12_6C-40per_3_6C_CH33": ("b1c26", "q100@94"),
    "2017-05-12_6C-40per_3_6C_CH34": ("b1c27", "q100@90"),
    "2017-05-12_6C-50per_3C_CH27": ("b1c28", "q100@94"),
    "2017-05-12_6C-50per_3C_CH28": ("b1c29", "q100@92"),
    "2017-05-12_6C-50per_3_6C_CH35": ("b1c30", "q100@96"),
    "2017-05-12_6C-50per_3_6C_CH36": ("b1c31", "q100@94"),
    "2017-05-12_7C-40per_3C_CH37": ("b1c36", "q100@96"),
    "2017-05-12_7C-40per_3C_CH38": ("b1c37", "q100@96"),
    "2017-05-12_8C-25per_3_6C_CH46": ("b1c43", "q100@92"),
    "2017-06-30_1C-4per_6C_CH9": ("b2c0", "q100@96"),
    "2017-06-30_2C-10per_6C_CH10": ("b2c1", "q100@96"),
    "2017-06-30_2C-2per_5C_CH11": ("b2c2", "q100@96"),
    "2017-06-30_2C-7per_5_5C_CH12": ("b2c3", "q100@93"),
    "2017-06-30_4C-40per_6C_CH29": ("b2c13", "order"),
    "2017-06-30_4_4C-8per_4_85C_CH20": ("b2c20", "q100@96"),
    "2017-06-30_4_65C-69per_6C_CH23": ("b2c23", "q100@96"),
    "2017-06-30_4_9C-27per_4_75C_CH24": ("b2c27", "q100@96"),
    "2017-06-30_5_2C-50per_4_25C_CH33": ("b2c32", "q100@96"),
    "2017-06-30_5_2C-58per_4C_CH34": ("b2c33", "q100@96"),
    "2017-06-30_6C-40per_4C_CH45": ("b2c44", "q100@94"),
    "2017-06-30_6C-4per_4_75C_CH46": ("b2c45", "q100@96"),
    "2017-06-30_6C-60per_3C_CH48": ("b2c47", "q100@94"),
    "2018-04-12_batch8_CH20": ("b3c11", "q100@95"),
    "2018-04-12_batch8_CH22": ("b3c13", "q100@87"),
    "2018-04-12_batch8_CH23": ("b3c14", "q100@96"),
    "2018-04-12_batch8_CH24": ("b3c15", "q100@96"),
    "2018-04-12_batch8_CH25": ("b3c16", "life"),
    "2018-04-12_batch8_CH30": ("b3c21", "q100@94"),
    "2018-04-12_batch8_CH36": ("b3c26", "q100@91"),
    "2018-04-12_batch8_CH37": ("b3c27", "life"),
    "2018-04-12_batch8_CH38": ("b3c28", "q100@94"),
    "2018-04-12_batch8_CH39": ("b3c29", "q100@96"),
    "2018-04-12_batch8_CH40": ("b3c31", "life"),
    "2018-04-12_batch8_CH41": ("b3c32", "order"),
    "2018-04-12_batch8_CH46": ("b3c37", "q100@87"),
}
#: Row (0-based) at which cycle 100 sits, for the cells matched by value above.
CYCLE_100_ROW: dict[str, int] = {
    cell: int(how.split("@")[1]) for cell, how in PAPER_FEATURE_CELLS.values()
    if how.startswith("q100@")
}
#: The paper's model features (Severson et al., Table 1) by beep's names.
PAPER_MODELS: dict[str, tuple[str, ...]] = {
    "variance": ("abs_variance_discharge_capacity_difference_cycles_2:100",),
    "discharge": (
        "abs_min_discharge_capacity_difference_cycles_2:100",
        "abs_variance_discharge_capacity_difference_cycles_2:100",
        "abs_skew_discharge_capacity_difference_cycles_2:100",
        "abs_kurtosis_discharge_capacity_difference_cycles_2:100",
        "discharge_capacity_cycle_2",
        "max_discharge_capacity_difference",
    ),
    "full": (
        "abs_min_discharge_capacity_difference_cycles_2:100",
        "abs_variance_discharge_capacity_difference_cycles_2:100",
        "slope_discharge_capacity_cycle_number_2:100",
        "intercept_discharge_capacity_cycle_number_2:100",
        "discharge_capacity_cycle_2",
        "charge_time_cycles_1:5",
        "integrated_time_temperature_cycles_1:100",
        "min_internal_resistance_cycles_2:100",
        "internal_resistance_difference_cycles_2:100",
    ),
}

_FILE = re.compile(r"(\d{4}-\d{2}-\d{2})_battery-(\d+)\.csv$")


def lifecycle_dir(shared: str | Path) -> Path:
    """``shared/data/lifecycle`` (``shared`` may also be that folder itself)."""
    root = Path(shared)
    for candidate in (root / "data" / "lifecycle", root):
        if (candidate / "severson_eol.csv").is_file():
            return candidate
    raise NotFound(f"no Severson data under {root} (expected data/lifecycle/severson_eol.csv)")


def cell_id(batch: int, number: int) -> str:
    return f"b{batch}c{number}"


def cell_files(shared: str | Path) -> dict[str, Path]:
    """Cell id -> its per-cycle file (``battery-N`` is cell ``c(N-1)``)."""
    root = lifecycle_dir(shared) / "mit"
    out: dict[str, Path] = {}
    for path in sorted(root.glob("*/*.csv")):
        m = _FILE.search(path.name)
        if m and m.group(1) in BATCHES:
            out[cell_id(BATCHES[m.group(1)], int(m.group(2)) - 1)] = path
    if not out:
        raise NotFound(f"no per-cycle files under {root}")
    return out


def training_files(shared: str | Path) -> list[Path]:
    """Every file the models here read: for the data hash of a model card."""
    base = lifecycle_dir(shared)
    return [*cell_files(shared).values(), base / "severson_eol.csv",
            *sorted((base / "severson_features").glob("*.json"))]


def load_cells(shared: str | Path, cells: list[str] | None = None) -> pl.DataFrame:
    """All per-cycle rows, long: ``cell, batch, cycle`` (rank of the kept row, from 1), the 16
    charge statistics and ``capacity_ah``."""
    files = cell_files(shared)
    wanted = files if cells is None else {c: files[c] for c in cells if c in files}
    frames = [
        pl.read_csv(path).with_row_index("cycle", offset=1).with_columns(
            pl.lit(cell).alias("cell"), pl.lit(int(cell[1])).alias("batch"))
        for cell, path in wanted.items()
    ]
    if not frames:
        raise NotFound("none of the asked cells has a per-cycle file")
    df = pl.concat(frames, how="vertical_relaxed").rename({"capacity": "capacity_ah"})
    return df.select("cell", "batch", pl.col("cycle").cast(pl.Int64), *CHARGE_STATISTICS,
                     "capacity_ah")


def labels(shared: str | Path) -> pl.DataFrame:
    """``cell, eol`` (observed cycles to 0.88 Ah) and the kneepoint-review knee estimates."""
    df = pl.read_csv(lifecycle_dir(shared) / "severson_eol.csv")
    return df.rename({"Cell": "cell", "EOL": "eol"}).with_columns(pl.col("eol").cast(pl.Int64))


def split(shared: str | Path | None = None, *, min_rows: int = 100) -> pl.DataFrame:
    """The paper's split, one row per cell of the three batches.

    Columns: ``cell, batch, number, position`` (0-123; null for dropped cells), ``set`` (train,
    primary_test, secondary_test, dropped), ``reason`` (why dropped), and when ``shared`` is given
    ``eol`` (label or null), ``n_rows`` (rows of its file, 0 without one), ``first_capacity_ah``,
    ``last_capacity_ah``, ``sparse`` (see :data:`SPARSE_RATIO`) and ``scorable`` (a label, at least
    ``min_rows`` rows, not sparse).
    """
    ids = pl.DataFrame(
        [(b, n) for b, count in CELLS_PER_BATCH.items() for n in range(count)],
        schema={"batch": pl.Int64, "number": pl.Int64}, orient="row",
    ).with_columns(pl.format("b{}c{}", "batch", "number").alias("cell"))
    drops = pl.DataFrame({"cell": list(DROPPED), "reason": list(DROPPED.values())})
    df = ids.join(drops, on="cell", how="left").sort("batch", "number")
    kept = pl.col("reason").is_null()
    df = df.with_columns(
        pl.when(kept).then(kept.cast(pl.Int64).cum_sum() - 1).otherwise(None).alias("position"))
    pos = pl.col("position")
    df = df.with_columns(
        pl.when(~kept).then(pl.lit("dropped"))
        .when(pos >= 84).then(pl.lit("secondary_test"))
        .when((pos % 2 == 0) | (pos == 83)).then(pl.lit("primary_test"))
        .otherwise(pl.lit("train")).alias("set"))
    df = df.select("cell", "batch", "number", "position", "set", "reason")
    if shared is None:
        return df
    files = file_summary(shared)
    df = (df.join(labels(shared).select("cell", "eol"), on="cell", how="left")
          .join(files, on="cell", how="left")
          .with_columns(pl.col("n_rows").fill_null(0)))
    ratio = pl.col("n_rows") / pl.col("eol")
    df = df.with_columns(
        ((ratio < SPARSE_RATIO) & (pl.col("last_capacity_ah") < SPARSE_END_AH))
        .fill_null(False).alias("sparse"))
    return df.with_columns(
        (pl.col("eol").is_not_null() & (pl.col("n_rows") >= min_rows) & ~pl.col("sparse"))
        .alias("scorable"))


def file_summary(shared: str | Path) -> pl.DataFrame:
    """Per file: ``cell, n_rows, first_capacity_ah, last_capacity_ah``."""
    return (load_cells(shared).group_by("cell")
            .agg(pl.len().cast(pl.Int64).alias("n_rows"),
                 pl.col("capacity_ah").first().alias("first_capacity_ah"),
                 pl.col("capacity_ah").last().alias("last_capacity_ah")))


@dataclass(frozen=True)
class PaperFeatures:
    frame: pl.DataFrame  # cell, source file, match, y (beep's life) and the 20 features
    unmatched: list[str]  # feature files that match no cell


def paper_features(shared: str | Path) -> PaperFeatures:
    """The paper's 20 features (beep) by cell; duplicate files of one cell must agree."""
    folder = lifecycle_dir(shared) / "severson_features"
    rows, unmatched = [], []
    for path in sorted(folder.glob("*_full_model_features.json")):
        stem = path.name.split("__", 1)[1].removesuffix("_full_model_features.json")
        doc = json.loads(path.read_text())
        y = doc["y"]["capacity_0.8"][0] if isinstance(doc["y"], dict) else doc["y"]
        if stem not in PAPER_FEATURE_CELLS:
            unmatched.append(path.name)
            continue
        cell, how = PAPER_FEATURE_CELLS[stem]
        rows.append({"cell": cell, "source": stem, "match": how, "beep_y": int(y),
                     **{k: float(v[0]) for k, v in doc["X"].items()}})
    if not rows:
        raise NotFound(f"no beep feature files under {folder}")
    df = pl.DataFrame(rows)
    features = [c for c in df.columns if c not in ("cell", "source", "match", "beep_y")]
    spread = df.group_by("cell").agg(
        pl.max_horizontal([(pl.col(c).max() - pl.col(c).min()).abs() for c in features]).alias("d"))
    bad = spread.filter(pl.col("d") > 1e-9)["cell"].to_list()
    if bad:
        raise ValidationFailed(f"feature files of one cell disagree: {bad}", location=str(folder))
    return PaperFeatures(df.unique("cell", keep="first", maintain_order=True), unmatched)
