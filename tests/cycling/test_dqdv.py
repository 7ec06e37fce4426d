"""Q(V), dQ/dV and dV/dQ: synthetic curves with known peaks (clean, noisy, flat LFP plateau,
CC-CV) and real tester files (conservation of capacity, finiteness, agreement with the summary)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from batteryloop.cycling import read
from batteryloop.cycling.dqdv import dqdv, dvdq, q_of_v, savgol_derivative, v_of_q
from batteryloop.cycling.normalize import finish
from batteryloop.cycling.schema import CyclerMetadata
from batteryloop.cycling.summary import cycles
from batteryloop.errors import ValidationFailed

#: Peaks of the synthetic cell: (voltage V, capacity Ah, width V) of logistic steps in Q(V).
PEAKS = ((3.45, 0.6, 0.012), (3.68, 1.0, 0.015), (3.95, 0.5, 0.010))
BACKGROUND = 0.4  # Ah/V under the peaks
V_LO, V_HI = 3.0, 4.2
SHIFT = 0.010  # V per cycle: charge peaks move up, discharge peaks down (growing overpotential)


def q_charge(v: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """Charge stored at voltage v: a linear background plus one logistic step per peak, so that
    dQ/dV = background + sum q/(4w) sech^2(...) peaks exactly at V_k + shift."""
    def step(x, vk, w):
        return 1.0 / (1.0 + np.exp(-(x - vk - shift) / w))
    return BACKGROUND * (v - V_LO) + sum(q * (step(v, vk, w) - step(V_LO, vk, w))
                                         for vk, q, w in PEAKS)


def _meta() -> CyclerMetadata:
    return CyclerMetadata("synthetic", "", "synthetic", "synthetic")


def _canonical(t, v, i, c) -> pl.DataFrame:
    part = pl.DataFrame({"test_time_second": np.asarray(t, float), "voltage_volt": np.asarray(v),
                         "current_ampere": np.asarray(i), "cycle_count": np.asarray(c)})
    return finish(part, _meta())


def synthetic(n_cycles: int = 1, noise_v: float = 0.0, n: int = 3000, current: float = 1.0,
              seed: int = 0) -> tuple[pl.DataFrame, float]:
    """CC charge V_LO -> V_HI, 10 min rest, CC discharge back, 10 min rest, per cycle; sampled
    ``n`` times per half cycle (constant current, so evenly in capacity)."""
    rng = np.random.default_rng(seed)
    vf = np.linspace(V_LO - 0.05, V_HI + 0.05, 400001)
    t, v, i, c = [], [], [], []
    now, qtot = 0.0, 0.0
    for k in range(n_cycles):
        for sign in (1.0, -1.0):
            qf = q_charge(vf, sign * SHIFT * k)
            q0, q1 = np.interp([V_LO, V_HI], vf, qf)
            qtot = q1 - q0
            q = np.linspace(0.0, qtot, n + 1)
            vv = np.interp(q0 + q if sign > 0 else q1 - q, qf, vf)
            tt = now + q / current * 3600.0
            rest_t = tt[-1] + 60.0 * np.arange(1, 11)
            t += [tt, rest_t]
            v += [vv, np.full(10, vv[-1])]
            i += [np.full(n + 1, sign * current), np.zeros(10)]
            c += [np.full(n + 11, k + 1)]
            now = rest_t[-1] + 60.0
    v = np.concatenate(v)
    if noise_v:
        v = v + rng.normal(0.0, noise_v, v.size)
    return _canonical(np.concatenate(t), v, np.concatenate(i), np.concatenate(c)), qtot


def lfp(noise_v: float = 0.0, qtot: float = 2.0, current: float = 2.0, n: int = 2000
        ) -> pl.DataFrame:
    """An LFP-like cell with a perfectly flat plateau: 10 % of the capacity from 2.8 to 3.40 V,
    80 % at exactly 3.40 V, the last 10 % up to 3.65 V; charge, rest, discharge."""
    kq, kv = [0.0, 0.1 * qtot, 0.9 * qtot, qtot], [2.8, 3.40, 3.40, 3.65]
    q = np.linspace(0.0, qtot, n + 1)
    tt = q / current * 3600.0
    t = np.concatenate([tt, tt[-1] + 60.0 * np.arange(1, 11), tt[-1] + 660.0 + tt])
    v = np.concatenate([np.interp(q, kq, kv), np.full(10, 3.65), np.interp(qtot - q, kq, kv)])
    if noise_v:
        v = v + np.random.default_rng(1).normal(0.0, noise_v, v.size)
    i = np.concatenate([np.full(n + 1, current), np.zeros(10), np.full(n + 1, -current)])
    return _canonical(t, v, i, np.ones(t.size, dtype=np.int64))


def peaks(r: pl.DataFrame, share: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Voltages and heights of the local maxima of dQ/dV above ``share`` of the highest."""
    r = r.filter(pl.col("dqdv_ah_per_volt").is_not_nan())
    x, y = r["voltage_volt"].to_numpy(), r["dqdv_ah_per_volt"].to_numpy()
    k = np.flatnonzero((y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:]) & (y[1:-1] > share * y.max())) + 1
    return x[k], y[k]


# ----------------------------------------------------------------------------- synthetic
@pytest.mark.parametrize("direction", ["charge", "discharge"])
def test_peaks_found_at_known_voltages_in_every_cycle(direction):
    df, _ = synthetic(n_cycles=3)
    r = dqdv(df, direction=direction)
    assert r["cycle_count"].unique().sort().to_list() == [1, 2, 3]
    sign = 1 if direction == "charge" else -1
    for k in range(3):
        at, height = peaks(r.filter(pl.col("cycle_count") == k + 1))
        want = [vk + sign * SHIFT * k for vk, _, _ in PEAKS]
        assert at == pytest.approx(want, abs=0.002), (direction, k)
        # Heights: background + q/(4w), lowered by at most 8 % by the 25-mV smoothing.
        true = [BACKGROUND + q / (4 * w) for _, q, w in PEAKS]
        assert np.all(height <= np.array(true) * 1.01) and np.all(height >= np.array(true) * 0.92)


@pytest.mark.parametrize("noise_v", [0.002, 0.005])
def test_peaks_survive_voltage_noise(noise_v):
    df, qtot = synthetic(noise_v=noise_v, seed=7)
    for direction in ("charge", "discharge"):
        r = dqdv(df, direction=direction)
        at, _ = peaks(r)
        assert len(at) == 3, (noise_v, direction, at)  # no spurious peak above 25 % of the top
        assert at == pytest.approx([vk for vk, _, _ in PEAKS], abs=0.006)
        y = r["dqdv_ah_per_volt"].drop_nans().to_numpy()
        assert np.isfinite(y).all() and y.min() >= 0.0
        assert np.sum(y) * 0.001 == pytest.approx(qtot, rel=0.01)


def test_noise_free_q_of_v_is_the_analytic_curve():
    df, qtot = synthetic()
    grid = np.linspace(2.9, 4.3, 1401)
    q = q_of_v(df, grid, direction="both")
    inside = (grid >= V_LO) & (grid <= V_HI)
    ch = q.filter(pl.col("direction") == "charge")["capacity_ah"].to_numpy()
    dis = q.filter(pl.col("direction") == "discharge")["capacity_ah"].to_numpy()
    assert np.isnan(ch[~inside]).all() and np.isnan(dis[~inside]).all()
    exact = q_charge(grid[inside]) - q_charge(np.array([V_LO]))
    assert ch[inside] == pytest.approx(exact, abs=2e-4 * qtot)
    # Discharge: capacity delivered by the time V has fallen to the grid voltage (plus the first
    # row's increment, the 60-s ramp from the rest sample, delivered at 4.2 V).
    first = 0.5 * 60.0 / 3600.0
    assert dis[inside] == pytest.approx(qtot - exact + first, abs=2e-4 * qtot)
    assert np.all(np.diff(ch[inside]) >= 0) and np.all(np.diff(dis[inside]) <= 0)


def test_flat_lfp_plateau_gives_a_finite_peak():
    for noise in (0.0, 0.001):
        df = lfp(noise_v=noise)
        for direction in ("charge", "discharge"):
            r = dqdv(df, direction=direction)
            y = r["dqdv_ah_per_volt"].to_numpy()
            x = r["voltage_volt"].to_numpy()
            inside = ~np.isnan(r["capacity_ah"].to_numpy())
            assert not np.isinf(y).any() and np.isfinite(y[inside]).all()
            assert y[inside].min() >= 0.0
            top = np.nanargmax(y)
            assert x[top] == pytest.approx(3.40, abs=0.0015), (noise, direction)
            # Finite: the 1.6 Ah plateau spread over the 25-mV window, not an infinity ...
            assert 50.0 < y[top] < 200.0
            # ... and its area is the plateau's capacity (plus the slopes' share of the window).
            near = inside & (np.abs(x - 3.40) <= 0.0125)
            assert np.sum(y[near]) * 0.001 == pytest.approx(1.6 + 2 * 0.0125 * 0.2 / 0.6 * 2,
                                                            rel=0.02)
            assert np.nansum(y) * 0.001 == pytest.approx(2.0, rel=0.02)
            s = dvdq(df, direction=direction).filter(pl.col("dvdq_volt_per_ah").is_not_nan())
            d, q = s["dvdq_volt_per_ah"].to_numpy(), s["capacity_ah"].to_numpy()
            assert np.isfinite(d).all()
            plateau = (q > 0.3) & (q < 1.7)
            assert np.abs(d[plateau]).max() < (0.01 if noise == 0 else 0.5)
            # The 2.8-3.40 V end: the first 0.2 Ah of a charge, the last of a discharge.
            lo = 0.02 if direction == "charge" else 1.84
            slope = (q > lo) & (q < lo + 0.14)
            assert np.median(d[slope]) == pytest.approx(0.6 / 0.2, rel=0.05 if noise else 1e-6)


def test_cv_tail_is_dropped_from_the_curve():
    # CC charge to 4.2 V, then 30 min at 4.2 V with the current decaying from 1 A to 0.05 A.
    df, qtot = synthetic()
    one = df.filter((pl.col("cycle_count") == 1) & (pl.col("current_ampere") > 0))
    t_end = one["test_time_second"][-1]
    tau = np.arange(1, 181) * 10.0
    i_cv = np.exp(-tau / 600.0)
    part = pl.DataFrame({
        "test_time_second": np.r_[one["test_time_second"].to_numpy(), t_end + tau],
        "voltage_volt": np.r_[one["voltage_volt"].to_numpy(), np.full(tau.size, V_HI)],
        "current_ampere": np.r_[one["current_ampere"].to_numpy(), i_cv],
        "cycle_count": np.ones(one.height + tau.size, dtype=np.int64)})
    cccv = finish(part, _meta())
    q_all = cycles(cccv)["charge_capacity_ah"][0]
    assert q_all - qtot > 0.1
    kept = dqdv(cccv, direction="charge")
    raw = dqdv(cccv, direction="charge", drop_cv=False)
    top_kept = kept.filter(pl.col("voltage_volt") == V_HI)["dqdv_ah_per_volt"][0]
    top_raw = raw.filter(pl.col("voltage_volt") == V_HI)["dqdv_ah_per_volt"][0]
    # The CV hold is a spike at 4.2 V unless dropped (its first row, still at 98.3 % of the CC
    # current, counts as CC and stays).
    assert top_kept < 5.0 and top_raw > 10 * top_kept
    assert raw["capacity_ah"].max() == pytest.approx(q_all, rel=1e-9)
    first_cv_row = 10.0 * (1.0 + np.exp(-10.0 / 600.0)) / 2.0 / 3600.0
    assert kept["capacity_ah"].max() == pytest.approx(qtot + first_cv_row, rel=1e-9)
    assert peaks(kept)[0] == pytest.approx([vk for vk, _, _ in PEAKS], abs=0.002)


def test_savgol_derivative_is_exact_on_polynomials():
    x = np.linspace(0.0, 1.0, 101)
    y = np.stack([3 * x**2 - x, np.sin(3 * x)])
    d = savgol_derivative(y, 11, 2, 0.01)
    assert d[0][1:-1] == pytest.approx(6 * x[1:-1] - 1, abs=1e-9)  # quadratic: exact
    assert d[0][[0, -1]] == pytest.approx([-1 + 0.03, 5 - 0.03], abs=1e-9)  # one-sided ends
    # sin: the known bias of a quadratic fit, f''' h^2 sum(j^4) / (6 sum(j^2)) = -27 cos(3x) h^2
    # (3k^2 + 3k - 1) / 30 for k = 5 (h = 0.01), here 0.8 % of the derivative.
    xi = x[5:-5]
    bias = -27 * np.cos(3 * xi) * 1e-4 * (3 * 25 + 15 - 1) / 30
    assert d[1][5:-5] == pytest.approx(3 * np.cos(3 * xi) + bias, abs=2e-5)  # next term: 1e-5
    # Monotonic input, order 2: never negative, also at the ends (shrinking windows).
    step = np.stack([np.r_[np.zeros(50), np.ones(51)]])
    assert savgol_derivative(step, 21, 2, 0.01).min() >= 0.0


# ----------------------------------------------------------------------------- real files
def test_batmo_q_of_v_matches_plain_interpolation_and_the_summary(cycler_file):
    df, _ = read(cycler_file("bdf/batmo_bdf.csv"))
    grid = np.arange(2.40, 3.60, 0.001)
    q = q_of_v(df, grid)
    assert q.height == 109 * grid.size
    assert q["cycle_count"].n_unique() == 109
    s = cycles(df)
    for c in (7, 50, 105):
        rows = df.filter((pl.col("cycle_count") == c) & (pl.col("current_ampere") < 0))
        v = rows["voltage_volt"].to_numpy()
        qd = rows["cycle_discharging_capacity_ah"].to_numpy()
        assert np.all(np.diff(v) < 0)  # a clean, monotonic discharge: classic np.interp applies
        want = np.interp(grid, v[::-1], qd[::-1], left=np.nan, right=np.nan)
        got = q.filter(pl.col("cycle_count") == c)["capacity_ah"].to_numpy()
        ok = ~np.isnan(want)
        assert np.isnan(got[~ok & ((grid < v.min()) | (grid > v.max()))]).all()
        assert got[ok] == pytest.approx(want[ok], rel=1e-9, abs=1e-12)
        # At the end-of-discharge voltage Q(V) is the cycle's whole discharge capacity.
        end = q_of_v(df, [v.min(), v.min() + 0.01], cycles=[c])["capacity_ah"][0]
        assert end == pytest.approx(s.filter(pl.col("cycle_count") == c)
                                    ["discharge_capacity_ah"][0], rel=1e-9)


@pytest.mark.parametrize("rel", ["bdf/batmo_bdf.csv", "pec/pec.csv",
                                 "maccor/PreDiag_000229_000229_truncated.034",
                                 "maccor/xTESLADIAG_000019_CH70.070", "neware/neware_uio.csv"])
def test_real_files_finite_nonnegative_and_conserving(cycler_file, rel):
    df, _ = read(cycler_file(rel))
    for direction in ("charge", "discharge"):
        r = dqdv(df, direction=direction)
        inside = r.filter(pl.col("capacity_ah").is_not_nan())
        y = inside["dqdv_ah_per_volt"].to_numpy()
        assert y.size and np.isfinite(y).all() and not r["dqdv_ah_per_volt"].is_infinite().any()
        assert y.min() >= -1e-9
        # The area under dQ/dV is the capacity of the curve (within 1 %; the smoothing spreads a
        # little of it beyond the measured voltage range, where values are NaN).
        area = inside.group_by("cycle_count").agg(
            (pl.col("dqdv_ah_per_volt").sum() * 0.001).alias("area"),
            pl.col("capacity_ah").max().alias("q")).filter(pl.col("q") > 0)
        assert area["area"].to_numpy() == pytest.approx(area["q"].to_numpy(), rel=0.01)
        d = dvdq(df, direction=direction)
        dd = d.filter(pl.col("voltage_volt").is_not_nan())["dvdq_volt_per_ah"].to_numpy()
        assert np.isfinite(dd).all()


def test_lfp_cell_from_pec_peaks_on_its_plateau(cycler_file):
    # SAFT VL..Fe (LFP) at C/25, the file's test regime is a dQ/dV test.
    df, _ = read(cycler_file("pec/pec.csv"))
    for direction, sign in (("charge", 1), ("discharge", -1)):
        r = dqdv(df, direction=direction, cycles=[1])
        at, height = peaks(r, share=0.5)
        rows = df.filter((pl.col("cycle_count") == 1) & (sign * pl.col("current_ampere") > 0.1))
        median_v = float(rows["voltage_volt"].median())
        main = at[np.argmax(height)]
        assert abs(main - median_v) < 0.03, (direction, main, median_v)
        assert 3.2 < main < 3.45
        assert 100.0 < height.max() < 2000.0  # tall (a 44 Ah cell on a flat plateau), finite
    # Charge peaks sit above discharge peaks (hysteresis + overpotential).
    top = {d: peaks(dqdv(df, direction=d, cycles=[1]), share=0.5) for d in ("charge", "discharge")}
    assert top["charge"][0][np.argmax(top["charge"][1])] > \
        top["discharge"][0][np.argmax(top["discharge"][1])]


def test_selecting_cycles_does_not_change_them(cycler_file):
    df, _ = read(cycler_file("bdf/batmo_bdf.csv"))
    grid = np.arange(2.50, 3.60, 0.001)
    for direction in ("charge", "discharge"):
        alone = dqdv(df, grid, direction=direction, cycles=[50, 107])
        every = dqdv(df, grid, direction=direction).filter(pl.col("cycle_count").is_in([50, 107]))
        assert alone.equals(every)
        assert alone["capacity_ah"].max() < 0.16


def test_v_of_q_and_dvdq_on_batmo(cycler_file):
    df, _ = read(cycler_file("bdf/batmo_bdf.csv"))
    s = cycles(df).filter(pl.col("cycle_count") == 50)
    grid = np.linspace(0.0, 0.13, 131)
    v = v_of_q(df, grid, cycles=[50])["voltage_volt"].to_numpy()
    rows = df.filter((pl.col("cycle_count") == 50) & (pl.col("current_ampere") < 0))
    assert v[0] == pytest.approx(rows["voltage_volt"][0])
    assert np.all(np.diff(v) <= 0)
    d = dvdq(df, cycles=[50]).filter(pl.col("voltage_volt").is_not_nan())
    q, dv = d["capacity_ah"].to_numpy(), d["dvdq_volt_per_ah"].to_numpy()
    assert q.max() == pytest.approx(s["discharge_capacity_ah"][0], rel=1e-2)
    # The area under dV/dQ is the voltage swept: start minus end of the discharge.
    swept = rows["voltage_volt"][0] - rows["voltage_volt"][-1]
    assert np.trapezoid(dv, q) == pytest.approx(swept, rel=0.03)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("fn", [lambda d: q_of_v(d, [3.0, 3.1]), dqdv, dvdq,
                                lambda d: v_of_q(d, [0.0, 0.1])])
def test_missing_column_raises_validation_failed(fn):
    df, _ = synthetic(n=200)
    with pytest.raises(ValidationFailed, match="voltage_volt"):
        fn(df.drop("voltage_volt"))


def test_bad_arguments():
    df, _ = synthetic(n=200)
    with pytest.raises(ValueError, match="direction"):
        dqdv(df, direction="up")
    with pytest.raises(ValueError, match="uniform"):
        dqdv(df, grid=[3.0, 3.1, 3.3])
    with pytest.raises(ValueError, match="increasing"):
        q_of_v(df, [3.2, 3.1])
    both = dqdv(df, direction="both")
    assert set(both["direction"].unique()) == {"charge", "discharge"}
