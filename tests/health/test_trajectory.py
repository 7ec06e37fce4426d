"""Capacity fade, knee and end of life: synthetic curves with known answers, then real cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from batteryloop.errors import ValidationFailed
from batteryloop.health import severson, trajectory


def two_lines(knee_at: int = 600, n: int = 1000, noise: float = 0.0, seed: int = 0
              ) -> pl.DataFrame:
    """Capacity falling slowly, then fast after ``knee_at``, as a tester's per-cycle summary."""
    c = np.arange(1, n + 1)
    q = 1.08 - 2e-5 * c - 4e-4 * np.clip(c - knee_at, 0, None)
    q = q + np.random.default_rng(seed).normal(0, noise, n)
    return pl.DataFrame({"cycle_count": c, "discharge_capacity_ah": q})


def test_knee_of_two_lines_is_where_they_meet() -> None:
    k = trajectory.knee(two_lines(600, noise=0.0005))
    assert k is not None
    assert abs(k.cycle - 600) <= 15
    assert k.slope_before == pytest.approx(-2e-5, abs=1e-5)
    assert k.slope_after == pytest.approx(-4.2e-4, rel=0.1)
    assert k.onset is not None and k.onset <= k.cycle


def test_smooth_knee_of_an_exponential_fade() -> None:
    # Q = Q0 - a exp(c / tau): no corner, but one clear bend; the knee lies where the fade speeds
    # up, between the flat start and the end, and the onset before it.
    c = np.arange(1, 1201)
    q = 1.1 - 0.002 * np.exp(c / 200.0)
    k = trajectory.knee(pl.DataFrame({"cycle": c, "capacity_ah": q}))
    assert k is not None and 700 < k.cycle < 1150
    assert k.onset is not None and k.onset < k.cycle


def test_no_knee_when_fade_slows_down() -> None:
    c = np.arange(1, 801)
    q = 1.1 - 0.004 * np.sqrt(c)  # SEI-like: fastest at first
    assert trajectory.knee(pl.DataFrame({"cycle": c, "capacity_ah": q})) is None


def test_fade_smooths_out_an_anomalous_cycle() -> None:
    df = two_lines(600).with_columns(
        pl.when(pl.col("cycle_count") == 300).then(0.5).otherwise(pl.col("discharge_capacity_ah"))
        .alias("discharge_capacity_ah"))
    f = trajectory.fade(df, nominal_ah=1.1)
    row = f.filter(pl.col("cycle") == 300)
    assert row["capacity_ah"][0] == 0.5
    assert row["capacity_smooth_ah"][0] == pytest.approx(1.08 - 2e-5 * 300, abs=2e-4)
    assert f["relative"][0] == pytest.approx(f["capacity_smooth_ah"][0] / 1.1)
    assert f.filter(pl.col("cycle") == 800)["fade_rate_ah_per_cycle"][0] == pytest.approx(
        -4.2e-4, rel=0.05)


def test_end_of_life_at_threshold() -> None:
    c = np.arange(1, 1001)
    df = pl.DataFrame({"cycle": c, "capacity_ah": 1.1 - 3e-4 * c})  # 0.88 Ah at cycle 733.3
    for smooth in (False, True):
        eol = trajectory.end_of_life(df, nominal_ah=1.1, smooth=smooth)
        assert eol.reached and eol.cycle == 734
        assert eol.threshold_ah == pytest.approx(0.88)
        assert eol.reference == "nominal"
    # 70 % of nominal is reached at cycle 1100: not in this record
    late = trajectory.end_of_life(df, nominal_ah=1.1, threshold=0.7)
    assert not late.reached and late.cycle is None and late.last_cycle == 1000
    # relative to the initial capacity (median of the first 5 cycles: 1.0994 Ah)
    init = trajectory.end_of_life(df, threshold=0.9)
    assert init.reference == "initial"
    assert init.reference_ah == pytest.approx(1.1 - 3e-4 * 3)
    assert init.cycle == int(np.floor((1.1 - 0.9 * init.reference_ah) / 3e-4)) + 1


def test_one_low_cycle_does_not_end_life_when_smoothed() -> None:
    c = np.arange(1, 501)
    q = np.full(500, 1.05)
    q[200] = 0.7
    df = pl.DataFrame({"cycle": c, "capacity_ah": q})
    assert not trajectory.end_of_life(df, nominal_ah=1.1).reached
    assert trajectory.end_of_life(df, nominal_ah=1.1, smooth=False).cycle == 201


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (pl.DataFrame({"cycle": [1, 2, 3], "voltage": [3.3, 3.3, 3.3]}), {}, "discharge capacity"),
        (pl.DataFrame({"capacity_ah": [1.0, 1.0]}), {}, "cycle number"),
        (pl.DataFrame({"cycle": [1, 2], "discharge_capacity_mah": [1070.0, 1069.0]}), {}, "mAh"),
        (pl.DataFrame({"cycle": [1, 2, 3], "capacity_ah": [1070.0, 1069.0, 1068.0]}),
         {"nominal_ah": 1.1}, "mAh"),
        (pl.DataFrame({"cycle": [1, 2, 3], "capacity_ah": [1070.0, 1069.0, 1068.0]}), {}, "mAh"),
        (pl.DataFrame({"cycle": [1], "capacity_ah": [1.0]}), {}, "at least 2"),
        (pl.DataFrame({"cycle": [1, 2], "capacity_ah": ["1.0", "0.9"]}), {}, "numeric"),
        (pl.DataFrame({"cycle": [1, 2], "capacity_ah": [1.0, -0.9]}), {}, "positive"),
    ],
)
def test_bad_input_is_refused_clearly(frame: pl.DataFrame, kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        trajectory.fade(frame, **kwargs)


def test_bad_threshold_and_reference() -> None:
    df = two_lines()
    with pytest.raises(ValidationFailed, match="fraction"):
        trajectory.end_of_life(df, threshold=80)
    with pytest.raises(ValidationFailed, match="nominal_ah"):
        trajectory.end_of_life(df, reference="nominal")


# ------------------------------------------------------------------------------ real cells


@pytest.fixture(scope="module")
def mit(shared_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    split = severson.split(shared_dir)
    good = split.filter(~pl.col("sparse") & pl.col("eol").is_not_null()
                        & (pl.col("n_rows") >= 0.85 * pl.col("eol"))
                        & (pl.col("last_capacity_ah") < 0.95))
    rows = severson.load_cells(shared_dir, good["cell"].to_list())
    return rows, good.join(severson.labels(shared_dir), on=["cell", "eol"])


def test_knee_of_real_cells_lies_before_end_of_life(mit) -> None:  # type: ignore[no-untyped-def]
    rows, good = mit
    assert good.height >= 80
    found = {}
    for key, g in rows.partition_by("cell", as_dict=True).items():
        k = trajectory.knee(g)
        assert k is not None, key
        found[key[0]] = k.cycle
    knees = good.with_columns(pl.col("cell").replace_strict(found).alias("knee"))
    # every knee comes before the cell's end of life (label, and the last row of its file)
    assert (knees["knee"] < knees["eol"]).all()
    assert (knees["knee"] < knees["n_rows"]).all()
    # and agrees with the published Bacon-Watts knees (true cycles; ours are ranks of kept
    # rows, ~0.93-0.95 of cycles): measured median 0.93, all within 0.74-1.0
    ratio = (knees["knee"] / knees["BW_point"]).to_numpy()
    assert 0.88 < np.median(ratio) < 0.97
    assert ratio.min() > 0.65 and ratio.max() < 1.05


def test_end_of_life_of_a_real_cell_matches_its_label(shared_dir: Path) -> None:
    # b2c28 is the one file that runs below 0.88 Ah: first raw row under 0.88 Ah is row 486;
    # its label is cycle 509 (the file keeps ~95 % of the cycles)
    df = severson.load_cells(shared_dir, ["b2c28"])
    raw = trajectory.end_of_life(df, nominal_ah=severson.NOMINAL_AH, smooth=False)
    assert raw.cycle == 486
    label = severson.labels(shared_dir).filter(pl.col("cell") == "b2c28")["eol"][0]
    assert 0.9 * label <= raw.cycle <= label
    smooth = trajectory.end_of_life(df, nominal_ah=severson.NOMINAL_AH)
    assert smooth.cycle is None or smooth.cycle >= raw.cycle


def test_breakpoint_search_equals_brute_force_least_squares() -> None:
    # the prefix-sum normal equations give the same fits as one lstsq per breakpoint (pair)
    rng = np.random.default_rng(1)
    x = np.sort(rng.random(300))
    y = np.sin(3 * x) + rng.normal(0, 0.05, 300)
    cand = x[20:280:7]
    _, _, sse = trajectory._two_lines(x, y, cand)
    brute = [np.linalg.lstsq(np.c_[np.ones_like(x), x, abs(x - t)], y, rcond=None)[1][0]
             for t in cand]
    np.testing.assert_allclose(sse, brute, atol=1e-8)
    a, b = trajectory._three_lines(x, y, cand)
    i, j = np.triu_indices(cand.size, 1)
    brute = [np.linalg.lstsq(np.c_[np.ones_like(x), x, abs(x - cand[p]), abs(x - cand[q])], y,
                             rcond=None)[1][0] for p, q in zip(i, j, strict=True)]
    best = int(np.argmin(brute))
    assert (a, b) == (cand[i[best]], cand[j[best]])
