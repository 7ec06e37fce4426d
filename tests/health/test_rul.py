"""Remaining useful life with intervals: coverage measured on held-out cells, causality of the
features, bad input. Bounds sit around what benchmarks/cycle_life.py measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from batteryloop.errors import ValidationFailed
from batteryloop.health import artifacts, rul, severson


@pytest.fixture(scope="module")
def model(shared_dir: Path) -> rul.RulModel:
    fitted, _ = rul.train_rul(shared_dir, route="capacity", model="gradient-boosting")
    return fitted


@pytest.fixture(scope="module")
def held_out(model: rul.RulModel, shared_dir: Path) -> dict:
    return rul.evaluate_rul(model, shared_dir)


def test_coverage_on_held_out_cells_is_near_nominal(model, held_out) -> None:  # type: ignore[no-untyped-def]
    assert model.alpha == 0.1
    summ = held_out["summary"]
    pri, sec = summ["primary_test"], summ["secondary_test"]
    assert (pri["cells"], sec["cells"]) == (39, 21)
    assert not set(held_out["rows"]["cell"]) & set(model.training_cells)
    # measured: primary 0.917 of 205 (cell, k) pairs, secondary 0.863 of 146; nominal 0.90
    assert 0.84 <= pri["coverage"] <= 0.97
    assert 0.78 <= sec["coverage"] <= 0.97
    # and the intervals say something: median width well under the lives involved
    assert pri["median_width"] < 500 and sec["median_width"] < 600
    # every k of the grid is scored, each cell at each k its record reaches
    ks = set(held_out["by_k"]["cycle"])
    assert {100, 200, 300, 400, 500, 600, 800} <= ks


def test_intervals_narrow_towards_the_end(held_out) -> None:  # type: ignore[no-untyped-def]
    rows = held_out["rows"].with_columns((pl.col("width") / pl.col("eol")).alias("rel"))
    early = rows.filter(pl.col("cycle") == 100)["rel"].median()
    late = rows.filter(pl.col("rul") < 150)["rel"].median()
    assert late < early


def test_predict_rul_for_one_cell(model: rul.RulModel, held_out, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    frame = severson.load_cells(shared_dir, ["b1c6"])  # primary test cell, life 636
    est, lo, hi = rul.predict_rul(model, frame, 300)
    assert lo <= est <= hi
    row = held_out["rows"].filter(pl.col("cell") == "b1c6", pl.col("cycle") == 300)
    assert est == pytest.approx(row["predicted"][0])
    assert (lo, hi) == pytest.approx((row["lower"][0], row["upper"][0]))
    # a tester's per-cycle summary (cycle_count, discharge_capacity_ah) gives the same answer
    tester = frame.select(pl.col("cycle").alias("cycle_count"),
                          pl.col("capacity_ah").alias("discharge_capacity_ah"))
    assert rul.predict_rul(model, tester, 300) == pytest.approx((est, lo, hi))


def test_features_are_causal(shared_dir: Path) -> None:
    """Features at cycle k from the whole record equal those from the record cut at k."""
    frame = severson.load_cells(shared_dir, ["b2c5"])
    full = rul.history_features(frame, "charge")
    for k in (100, 250, 400):
        cut = rul.history_features(frame.filter(pl.col("cycle") <= k), "charge")
        a = full.filter(pl.col("cycle") == k).drop("cell").to_numpy()
        b = cut.filter(pl.col("cycle") == k).drop("cell").to_numpy()
        np.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True)


def test_saved_with_its_card(model: rul.RulModel, shared_dir: Path, tmp_path: Path) -> None:
    fitted, card = rul.train_rul(shared_dir, route="capacity", model="ridge")
    artifacts.save(fitted, card, tmp_path)
    loaded, back = artifacts.load(tmp_path, "rul-capacity")
    assert back.features == rul.feature_names("capacity")
    assert 0 < back.scores["primary_test"]["coverage"] <= 1
    assert back.scores["nominal_coverage"] == pytest.approx(0.9)
    frame = severson.load_cells(shared_dir, ["b1c6"])
    assert rul.predict_rul(loaded, frame, 200) == rul.predict_rul(fitted, frame, 200)


def test_bad_input(model: rul.RulModel) -> None:
    c = np.arange(1, 301)
    frame = pl.DataFrame({"cycle": c, "capacity_ah": 1.07 - 1e-4 * c})
    with pytest.raises(ValidationFailed, match="at least 100 cycles"):
        rul.predict_rul(model, frame, 50)
    with pytest.raises(ValidationFailed, match="stops at cycle 300"):
        rul.predict_rul(model, frame, 500)
    with pytest.raises(ValidationFailed, match="mAh"):
        rul.predict_rul(model, frame.with_columns(pl.col("capacity_ah") * 1000), 200)
    with pytest.raises(ValidationFailed, match="capacity_ah"):
        rul.predict_rul(model, frame.drop("capacity_ah"), 200)
    with pytest.raises(ValidationFailed, match="no cycle column"):
        rul.predict_rul(model, frame.drop("cycle"), 200)
    with pytest.raises(ValidationFailed, match="alpha"):
        rul.train_rul(Path("."), alpha=1.5)
