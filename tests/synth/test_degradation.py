"""The demo's degradation model: ageing by hand, a knee where the model puts one, and check-ups
that are valid canonical tester data whose capacity and resistance the cycling and health stages
measure back."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from batteryloop.cycling.schema import SCHEMA
from batteryloop.cycling.summary import cycles, steps
from batteryloop.cycling.validate import validate
from batteryloop.errors import ValidationFailed
from batteryloop.health import soh, trajectory
from batteryloop.synth import degradation as dm
from batteryloop.synth import tester

NOISE_V = dm.config()["protocol"]["voltage_noise_v"]


def _checkup(chemistry: str, rated_ah: float, series: int, days: float, seed: int = 3
             ) -> tuple[dm.Condition, pl.DataFrame]:
    chem = dm.chemistry(chemistry)
    rng = np.random.default_rng(seed)
    cond = dm.condition(chem, rated_ah, dm.draw_usage(chem, days, rng), rng, series=series)
    return cond, dm.checkup(cond, rng, start_unix=1.75e9)


# ------------------------------------------------------------------------------------ ageing
def test_capacity_by_hand() -> None:
    nmc = dm.chemistry("NMC811")
    # 1 - k_cal * 365^0.75 - k_cyc * 100^0.5 at 25 C (no knee before 1300 cycles):
    # 1 - 0.00025 * 83.5 - 0.0033 * 10 = 1 - 0.02088 - 0.033 = 0.94612
    assert dm.capacity_fraction(nmc, 365, 100) == pytest.approx(0.94612, abs=1e-4)
    lfp = dm.chemistry("LFP")
    # 1 - 0.0014 * sqrt(1000) - 0.0016 * sqrt(400) = 1 - 0.044272 - 0.032 = 0.923728
    assert dm.capacity_fraction(lfp, 1000, 400) == pytest.approx(0.923728, abs=1e-5)
    # Arrhenius: 35 C against 25 C with Ea = 50 kJ/mol: exp(50000 / 8.3145 * (1/298.15 - 1/308.15))
    assert dm.arrhenius(nmc, 35.0) == pytest.approx(math.exp(50000 / 8.314462618 * (
        1 / 298.15 - 1 / 308.15)), rel=1e-9)
    assert float(dm.arrhenius(nmc, 25.0)) == pytest.approx(1.0)
    # resistance: 1 + r_cal sqrt(days) + r_cyc efc = 1 + 0.003 * 20 + 0.00015 * 400 = 1.12
    assert dm.resistance_factor(nmc, 400, 400) == pytest.approx(1.12, abs=1e-9)


@pytest.mark.parametrize("chemistry", ["LFP", "NMC811"])
def test_capacity_fade_is_monotone_and_resistance_grows(chemistry: str) -> None:
    chem = dm.chemistry(chemistry)
    efc = np.arange(0.0, 6000.0, 5.0)
    for per_day, temp in ((0.2, 15.0), (1.0, 25.0), (2.0, 40.0)):
        q = dm.capacity_fraction(chem, efc / per_day, efc, temp)
        r = dm.resistance_factor(chem, efc / per_day, efc, temp)
        assert q[0] == 1.0 and np.all(np.diff(q) <= 0) and np.all((q >= 0) & (q <= 1))
        assert r[0] == 1.0 and np.all(np.diff(r) >= 0)
    # warmer ages faster
    assert dm.capacity_fraction(chem, 2000, 500, 35.0) < dm.capacity_fraction(chem, 2000, 500, 25.0)


def test_knee_where_the_model_puts_it_and_none_without() -> None:
    nmc = dm.chemistry("NMC")
    efc = np.arange(1.0, 1901.0)
    curve = dm.fade_trajectory(nmc, efc, efc_per_day=1.0, efc_knee=1300.0)
    found = trajectory.knee(curve, capacity="capacity")
    assert found is not None
    # the two-line breakpoint of a quadratic onset lies past the onset, well inside the curve
    assert 1300 < found.cycle < 1805
    assert found.slope_after < 5 * found.slope_before < 0  # the fade steepens several fold
    # slopes by hand: before the knee d(loss)/dN at N = 1000 is
    # 0.75 * 0.00025 * 1000^-0.25 + 0.5 * 0.0033 * 1000^-0.5 = 3.33e-5 + 5.22e-5 = 8.55e-5 per
    # cycle; at N = 1800 the knee adds 2 * 1.2e-6 * 500 = 1.2e-3 per cycle
    q = curve["capacity"].to_numpy()
    assert q[999] - q[1000] == pytest.approx(8.55e-5, rel=0.02)
    assert q[1799] - q[1800] == pytest.approx(1.2e-3 + 0.75 * 0.00025 * 1800 ** -0.25
                                              + 0.5 * 0.0033 * 1800 ** -0.5, rel=0.02)
    no_knee = dm.fade_trajectory(nmc, efc, efc_per_day=1.0, efc_knee=1e9)
    assert trajectory.knee(no_knee, capacity="capacity") is None  # sqrt fade only decelerates


def test_unknown_chemistry_is_named() -> None:
    with pytest.raises(ValidationFailed, match="no chemistry 'LTO'"):
        dm.chemistry("LTO")


# ------------------------------------------------------------------------------------ check-up
@pytest.mark.parametrize(("chemistry", "rated", "series"), [("NMC", 50.0, 1), ("LFP", 300.0, 48),
                                                             ("NMC811", 120.0, 73)])
def test_checkup_is_valid_canonical_data_within_the_limits(chemistry: str, rated: float,
                                                            series: int) -> None:
    cond, df = _checkup(chemistry, rated, series, days=2200)
    chem = cond.chemistry
    assert df.schema == SCHEMA
    report = validate(df, voltage_range=(series * chem.min_voltage_v - 0.5,
                                         series * chem.max_voltage_v + 0.5))
    assert report.ok and report.findings == []
    if series == 1:
        assert validate(df).ok  # a cell passes the single-cell window as it is
    cell_v = df["voltage_volt"].to_numpy() / series
    slack = 5 * NOISE_V  # the tester's noise, five standard deviations
    assert cell_v.min() >= chem.min_voltage_v - slack and cell_v.max() <= chem.max_voltage_v + slack
    t = df["test_time_second"].to_numpy()
    assert np.all(np.diff(t) > 0)
    by_step = df.group_by("step_count", maintain_order=True).agg(
        pl.col("step_id").first(), pl.col("voltage_volt").last(), pl.col("current_ampere").last())
    ends = {row["step_id"]: row for row in by_step.iter_rows(named=True)}
    # capacity discharges end on the lower limit, CC charges on the upper, CV at C/20
    assert ends[7]["voltage_volt"] / series == pytest.approx(chem.min_voltage_v, abs=slack)
    assert ends[4]["voltage_volt"] / series == pytest.approx(chem.max_voltage_v, abs=slack)
    assert ends[5]["current_ampere"] == pytest.approx(0.05 * rated, rel=0.01)
    # per cycle, one full discharge: both cycles' discharge capacities are the battery's capacity
    per_cycle = cycles(df)["discharge_capacity_ah"].to_list()
    assert len(per_cycle) == 2
    assert per_cycle == pytest.approx([cond.capacity_ah] * 2, rel=0.01)
    # current sign: charge positive
    kinds = df.group_by("step_type").agg(pl.col("current_ampere").mean())
    mean = dict(zip(kinds["step_type"].cast(pl.String), kinds["current_ampere"], strict=True))
    assert mean["charge"] > 0 > mean["discharge"] and mean["rest"] == 0


def test_health_measures_back_what_the_model_made() -> None:
    cond, df = _checkup("NMC811", 120.0, 73, days=2600, seed=5)
    values = {v.parameter: v for v in soh.from_steps(steps(df), rated_ah=120.0)}
    capacity = values["capacity_soh"]
    # C/3 between the limits gives the model's capacity less a little left by the IR drop
    assert capacity.value == pytest.approx(100 * cond.soh, abs=0.5)
    assert capacity.lower <= 100 * cond.soh + 0.5 and capacity.upper - capacity.lower < 3.0
    dcir = cycles(df)["dcir_ohm"].drop_nans()
    assert dcir.len() == 1  # one pulse after a rest, in cycle 1
    # onset 1 s into the pulse: R0 plus R1 (1 - exp(-1 / tau)) of the RC branch
    tau = cond.chemistry.polarisation_tau_s
    expected = cond.series * (cond.r0_ohm + cond.r1_ohm * (1 - math.exp(-1 / tau)))
    assert dcir[0] == pytest.approx(expected, rel=0.03)


def test_same_battery_same_curve_and_a_bdf_file_the_readers_take(tmp_path: Path) -> None:
    from batteryloop.cycling.ingest import parse

    subject = tester.Subject(id=1, uid="urn:uuid:x", key="INTAKE-0042", chemistry="NMC",
                             rated_ah=50.0, nominal_voltage_v=3.65, days_in_service=1800.0)
    make = tester.generator()
    cond = tester.condition_of(subject)
    assert cond == tester.condition_of(subject)
    a, meta_a = tester.generate(subject, cond, make, start_unix=1.75e9)
    b, meta_b = tester.generate(subject, cond, make, start_unix=1.75e9)
    assert a.equals(b) and meta_a.sha256 == meta_b.sha256
    path = tester.write_bdf(subject, cond, tmp_path, make, start_unix=1.75e9)
    df, meta, summary = parse(path)
    assert meta.tester.lower().startswith("bdf") or "bdf" in meta.file_format.lower()
    assert df.height == a.height
    assert np.allclose(df["voltage_volt"].to_numpy(), a["voltage_volt"].to_numpy(), atol=1e-9)
    assert np.allclose(df["current_ampere"].to_numpy(), a["current_ampere"].to_numpy(), atol=1e-9)
    assert summary is not None and summary["discharge_capacity_ah"].max() > 0.5 * 50.0


def test_pybamm_is_optional() -> None:
    from batteryloop.synth import pybamm_curves

    if pybamm_curves.available():
        pytest.skip("PyBaMM is installed: see test_pybamm_checkup")
    with pytest.raises(ValidationFailed, match="pip install pybamm"):
        tester.generator(pybamm=True)


def test_pybamm_checkup() -> None:
    pytest.importorskip("pybamm")
    cond, _ = _checkup("NMC", 5.0, 1, days=1500)
    df = tester.generator(pybamm=True)(cond, np.random.default_rng(1), 1.75e9)
    assert df.schema == SCHEMA and validate(df).ok
    values = {v.parameter: v for v in soh.from_steps(steps(df), rated_ah=5.0)}
    assert 40 < values["capacity_soh"].value < 105
