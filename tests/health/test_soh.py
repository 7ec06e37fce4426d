"""SOH parameters: definitions, GUM uncertainty, and the obvious physics on a real fading cell."""

from __future__ import annotations

import math

import polars as pl
import pytest

from batteryloop.errors import ValidationFailed
from batteryloop.health import soh


def _summary(caps: list[float], energy_per_ah: float = 3.6) -> pl.DataFrame:
    return pl.DataFrame({
        "cycle_count": list(range(1, len(caps) + 1)),
        "discharge_capacity_ah": caps,
        "discharge_energy_wh": [c * energy_per_ah for c in caps],
        "charge_energy_wh": [c * energy_per_ah / 0.95 for c in caps],
        "dcir_ohm": [0.0021] * len(caps),
    })


def test_capacity_soh_value_and_interval() -> None:
    v = soh.capacity_soh(40.0, 50.0, spread_ah=0.3)
    assert v.value == pytest.approx(80.0)
    u = 100 * math.hypot(0.005 * 40.0, 0.3) / 50.0  # 0.5 % tester + spread, in quadrature
    assert v.upper - v.value == pytest.approx(2 * u) and v.value - v.lower == pytest.approx(2 * u)
    assert v.unit == "%" and v.method


def test_from_cycles_uses_the_last_full_cycles() -> None:
    values = {v.parameter: v for v in soh.from_cycles(
        _summary([50.0, 49.0, 0.1, 45.0, 44.0, 43.0]), rated_ah=50.0, certified_wh=180.0,
        initial_r_ohm=0.0015)}
    assert values["capacity_soh"].value == pytest.approx(88.0)  # mean(45, 44, 43) / 50
    assert values["soce"].value == pytest.approx(100 * 44.0 * 3.6 / 180.0)
    assert values["round_trip_efficiency"].value == pytest.approx(95.0)
    assert values["resistance_increase"].value == pytest.approx(40.0)


def test_power_capability_ohmic_model() -> None:
    assert soh.power_capability(3.7, 2.8, 0.002).value == pytest.approx(2.8 * 0.9 / 0.002)
    with pytest.raises(ValidationFailed, match="below the OCV"):
        soh.power_capability(3.0, 3.2, 0.002)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: soh.capacity_soh(45000.0, 50.0), "mAh"),
        (lambda: soh.capacity_soh(-1.0, 50.0), "positive"),
        (lambda: soh.capacity_soh(float("nan"), 50.0), "positive"),
        (lambda: soh.round_trip_efficiency(120.0, 100.0), "swapped"),
        (lambda: soh.from_cycles(pl.DataFrame({"cycle_count": [1]}), rated_ah=1.0), "lacks"),
        (lambda: soh.from_cycles(_summary([0.01]), rated_ah=50.0), "no cycle"),
    ],
)
def test_bad_input_is_named(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationFailed, match=match):
        call()


def test_real_cell_loses_health(shared_file) -> None:  # type: ignore[no-untyped-def]
    """Severson cell b1c0 (1.1 Ah LFP, ended near 0.88 Ah): SOH falls from ~100 % towards 80 %."""
    raw = pl.read_csv(shared_file("data/lifecycle/mit/2017-05-12/2017-05-12_battery-1.csv"))
    table = raw.select(pl.col("capacity").alias("discharge_capacity_ah"))
    early = soh.from_cycles(table.head(20), rated_ah=1.1)[0]
    late = soh.from_cycles(table, rated_ah=1.1)[0]
    assert 95.0 <= early.value <= 101.0
    assert 75.0 <= late.value <= 88.0
    assert late.upper < early.lower
