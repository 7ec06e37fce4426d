"""Per-cell regrouping features from the real data sets in ``shared/``.

PulseBat (Tao et al., Nature Communications 15, 10154, 2024; ``data/pulse/pulsebat``): one row per
cell with its measured capacity and features of the 5 s pulse test at one state of charge:

* ``ocv``: ``U1``, the rested voltage before the first pulse (V);
* ``dcir``: 5 s direct-current resistance (ohm), the least-squares slope through the origin of the
  end-of-pulse voltage change against the pulse current over the five pulses that ``U1..U21``
  cover. The turning points come in fours per pulse (start, jump, end of pulse, jump back, end of
  rest), in the order +0.5 C, -0.5 C, +1 C, -1 C, +1.5 C of the test procedure (the signs of the
  voltage steps in every file agree with that order), so the end-of-pulse changes are
  ``U3-U1, U7-U5, U11-U9, U15-U13, U19-U17``. The C-rate is taken on the rated capacity ``Qn``;
* ``dcir_ohmic``: the same slope on the instantaneous jumps ``U2-U1, U6-U5, ...`` (ohm);
* ``pulse_01..pulse_20``: ``U(i+1) - U1`` (V), the pulse response relative to the rested voltage.

PulseBat has no self-discharge measurement; a ``self_discharge`` column is used by the clustering
where a caller's table has one. The NMC 2.1 Ah file holds 67 samples of 12 physical cells at
different ageing stages (the data set's README), not 67 cells: ``cell_id`` is the sample,
``physical_cell`` the cell.

deepsort (wshuquan/Deep_sorting_of_reused_batteries, MIT; Cell Reports Physical Science 2025;
``data/sorting/deepsort``): 86 reused cells with features of one charge and their second-life
capacity per cycle. The feature ``capacity`` equals the trajectory's first-cycle capacity, so the
outcomes below use later cycles only.

PulseBat rows come from ``batteryloop.health.datasets.load_pulsebat``; deepsort is read here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from batteryloop.errors import ValidationFailed

PULSEBAT_TYPES = ("LMO_10Ah", "NMC_2.1Ah", "NMC_21Ah", "LFP_35Ah")
# (point before the pulse, point at the end of the pulse, signed current in C) for each pulse
_PULSES = ((0, 2, 0.5), (4, 6, -0.5), (8, 10, 1.0), (12, 14, -1.0), (16, 18, 1.5))
PULSE_FEATURES = tuple(f"pulse_{i:02d}" for i in range(1, 21))


def _shared(shared: str | Path) -> Path:
    path = Path(shared)
    if not path.is_dir():
        raise ValidationFailed(f"not a folder: {path}", location="shared")
    return path


def dcir_from_pulses(u: np.ndarray, rated_capacity: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """5 s and instantaneous resistance (ohm) from PulseBat's ``U1..U21`` (rows = tests)."""
    u = np.asarray(u, dtype=float)
    if u.ndim != 2 or u.shape[1] < 19:
        raise ValidationFailed("expected a table of U1..U21 voltages", location="U1..U21")
    q = np.broadcast_to(np.asarray(rated_capacity, dtype=float), (u.shape[0],))
    current = np.array([c for _, _, c in _PULSES])[None, :] * q[:, None]  # A
    start = [s for s, _, _ in _PULSES]
    end = [e for _, e, _ in _PULSES]
    d_end = u[:, end] - u[:, start]
    d_jump = u[:, [s + 1 for s in start]] - u[:, start]
    denom = (current**2).sum(axis=1)
    return (d_end * current).sum(axis=1) / denom, (d_jump * current).sum(axis=1) / denom


def pulsebat_cells(shared: str | Path, cell_type: str | None = None, soc: float = 50) -> pl.DataFrame:
    """One row per PulseBat sample with capacity, OCV, DCIR and pulse features at ``soc`` %.

    Columns: ``cell_type, material, cell_id`` (the tested sample), ``physical_cell, rated_capacity,
    capacity, soh, ocv, dcir, dcir_ohmic, pulse_01..pulse_20``. ``cell_type`` (one of
    ``PULSEBAT_TYPES``) limits to one file; every cell type is tested at 5..50 % SOC. Rows come
    from ``batteryloop.health.datasets.load_pulsebat`` (validated, cached).
    """
    from batteryloop.health.datasets import load_pulsebat

    if cell_type is not None and cell_type not in PULSEBAT_TYPES:
        raise ValidationFailed(f"unknown cell type {cell_type!r}; one of {PULSEBAT_TYPES}", location="cell_type")
    raw = load_pulsebat(_shared(shared)).filter(pl.col("soc") == float(soc))
    if cell_type is not None:
        raw = raw.filter(pl.col("cell_type") == cell_type)
    if raw.height == 0:
        raise ValidationFailed(f"no PulseBat rows at {soc} % SOC", location="soc")
    raw = raw.sort("cell_type", "number")
    u = raw.select([f"U{i}" for i in range(1, 22)]).to_numpy().astype(float)
    rated = raw["rated_ah"].to_numpy()
    dcir, ohmic = dcir_from_pulses(u, rated)
    pulses = {name: u[:, i + 1] - u[:, 0] for i, name in enumerate(PULSE_FEATURES)}
    return pl.DataFrame(
        {
            "cell_type": raw["cell_type"],
            "material": raw["chemistry"],
            "cell_id": raw["sample_id"],
            "physical_cell": raw["cell_id"],
            "rated_capacity": rated,
            "capacity": raw["capacity_ah"],
            "soh": raw["soh"],
            "ocv": u[:, 0],
            "dcir": dcir,
            "dcir_ohmic": ohmic,
            **pulses,
        }
    )


# --------------------------------------------------------------------------------------------
# deepsort
# --------------------------------------------------------------------------------------------

DEEPSORT_BASIC = (
    "capacity",
    "voltage",
    "internal_resistance",
    "coulombic_efficiency",
    "energy_efficiency",
    "ica_1",
    "ica_2",
)


@lru_cache(maxsize=2)
def _deepsort_features(path: Path) -> pl.DataFrame:
    frame = pl.read_csv(path)
    frame = frame.drop([c for c in frame.columns if c == "" or c.startswith("Unnamed")])
    return frame.with_columns(pl.col("bat_num").cast(pl.Int64).alias("cell_id")).drop("bat_num")


def deepsort_cells(shared: str | Path) -> pl.DataFrame:
    """The 86 reused cells' one-charge features (``cell_id`` = the data set's ``bat_num``)."""
    path = _shared(shared) / "data" / "sorting" / "deepsort" / "features.csv"
    if not path.is_file():
        raise ValidationFailed("deepsort features not found", location=str(path))
    return _deepsort_features(path)


def deepsort_feature_columns(cells: pl.DataFrame) -> list[str]:
    """Every one-charge feature column (the 108 ``feature_*`` and the 7 named ones)."""
    return [c for c in cells.columns if c != "cell_id"]


@lru_cache(maxsize=2)
def _deepsort_trajectories(path: Path) -> pl.DataFrame:
    frame = pl.read_csv(path)
    return frame.select(
        pl.col("bat_num").cast(pl.Int64).alias("cell_id"),
        pl.col("cycle").cast(pl.Float64),
        pl.col("capacity").cast(pl.Float64),
    ).sort("cell_id", "cycle")


def deepsort_trajectories(shared: str | Path) -> pl.DataFrame:
    """Second-life capacity per cycle: ``cell_id, cycle, capacity`` (Ah)."""
    path = _shared(shared) / "data" / "sorting" / "deepsort" / "capacity_trajectories.csv"
    if not path.is_file():
        raise ValidationFailed("deepsort trajectories not found", location=str(path))
    return _deepsort_trajectories(path)


def deepsort_outcomes(shared: str | Path, at_cycles: tuple[int, ...] = (100, 190)) -> pl.DataFrame:
    """Second-life outcomes per cell, none of them from the first (feature) cycle.

    * ``cycles``: length of the trajectory (every trajectory ends near 1.19 Ah, about 63 % of
      the first cycle's 1.89 Ah, so this is the cycle life to that end point), and
      ``log_cycles`` its natural log (lives run from 196 to 1,916 cycles, a skewed spread);
    * ``retention_<n>``: capacity at cycle ``n`` over the first cycle's (every cell has at least
      196 cycles, so n <= 196 exists for all);
    * ``fade_rate``: (first - last capacity) / cycles, Ah per cycle.
    """
    traj = deepsort_trajectories(shared)
    aggs = [
        pl.len().alias("cycles"),
        pl.col("capacity").first().alias("_q0"),
        pl.col("capacity").last().alias("_qend"),
    ]
    aggs += [
        (pl.col("capacity").filter(pl.col("cycle") == float(n)).first()).alias(f"_q{n}") for n in at_cycles
    ]
    out = traj.group_by("cell_id", maintain_order=True).agg(aggs)
    out = out.with_columns(
        pl.col("cycles").cast(pl.Float64).log().alias("log_cycles"),
        ((pl.col("_q0") - pl.col("_qend")) / pl.col("cycles")).alias("fade_rate"),
        *[(pl.col(f"_q{n}") / pl.col("_q0")).alias(f"retention_{n}") for n in at_cycles],
    )
    return out.drop([c for c in out.columns if c.startswith("_")])
