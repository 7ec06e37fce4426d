"""KPIs per hour, shift and day on hand-made frames, against hand-calculated values."""

from __future__ import annotations

from datetime import datetime, time

import polars as pl
import pytest

from batteryloop.errors import ValidationFailed
from batteryloop.factory import kpi
from batteryloop.factory.inventory import factory_periods
from batteryloop.factory.limits import Factors, load_limits, nmp_carbon_fraction

FACTORS = Factors(currency="USD", nmp_price_per_kg=3.0, nmp_co2e_kg_per_kg=6.0,
                  electricity_price_per_kWh=0.1, electricity_co2e_kg_per_kWh=0.5,
                  heat_price_per_kWh=0.04, heat_co2e_kg_per_kWh=0.2, sources={})


def frame(hours: int = 24, start: datetime = datetime(2025, 3, 3, 6), **cols: list) -> pl.DataFrame:
    base = {"nmp.feed": 100.0, "product.flow": 98.0, "product.purity": 99.9, "product.water": 150.0,
            "stack.nmp": 20.0, "stack.flow": 10_000.0, "workplace.nmp": 5.0, "power.fans": 50.0,
            "power.chiller": 30.0, "steam.distillation": 40.0, "heat.rotor": 20.0}
    data = {"time": kpi.hour_starts(start, hours)}
    for tag, v in base.items():
        data[tag] = cols.get(tag, [v] * hours)
    return pl.DataFrame(data)


def test_hourly_kpis_equal_hand_calculation() -> None:
    r = kpi.compute(frame(hours=1), factors=FACTORS)
    h = r.hourly.row(0, named=True)
    recovered = 98.0 * 0.999  # 97.902 kg
    assert h["recovered_kg"] == pytest.approx(recovered)
    assert h["recovery_rate"] == pytest.approx(recovered / 100.0)
    assert h["emitted_kg"] == pytest.approx(20.0 * 10_000 * 1e-6)  # 0.2 kg
    assert h["capture_rate"] == pytest.approx(1 - 0.2 / 100.0)
    assert h["makeup_kg"] == pytest.approx(100.0 - recovered)
    assert h["electricity_kWh"] == 80.0 and h["heat_kWh"] == 60.0
    assert h["energy_kWh_per_kg"] == pytest.approx(140.0 / recovered)
    assert h["cost_saved"] == pytest.approx(recovered * 3.0 - (80 * 0.1 + 60 * 0.04))
    assert h["co2e_avoided_kg"] == pytest.approx(recovered * 6.0 - (80 * 0.5 + 60 * 0.2))
    assert h["purity_wt_pct"] == pytest.approx(99.9) and h["water_ppm"] == pytest.approx(150.0)


def test_periods_take_ratios_of_sums_not_means_of_ratios() -> None:
    # two hours: 100 kg fed / 90 recovered, then 300 fed / 297 recovered (purity 100 %)
    f = frame(hours=2, **{"nmp.feed": [100.0, 300.0], "product.flow": [90.0, 297.0],
                          "product.purity": [100.0, 100.0], "product.water": [300.0, 100.0],
                          "stack.nmp": [10.0, 40.0], "stack.flow": [10_000.0, 30_000.0]})
    r = kpi.compute(f, factors=FACTORS)
    day = r.days.row(0, named=True)
    assert day["recovery_rate"] == pytest.approx(387.0 / 400.0)  # not (0.9 + 0.99) / 2
    assert day["water_ppm"] == pytest.approx((300 * 90 + 100 * 297) / 387.0)  # flow-weighted
    assert day["stack_mean_mg_Nm3"] == pytest.approx((0.1 + 1.2) * 1e6 / 40_000.0)
    assert day["stack_max_mg_Nm3"] == 40.0
    assert day["hours"] == 2 and day["hours_complete"] == 2


def test_shifts_and_production_days_follow_the_pattern() -> None:
    # 04:00 on the 4th still belongs to the night shift C of production day the 3rd
    r = kpi.compute(frame(hours=24), factors=FACTORS)
    assert r.shifts["shift"].to_list() == ["A", "B", "C"]
    assert r.shifts["hours"].to_list() == [8, 8, 8]
    assert r.days.height == 1 and r.days["day"][0].isoformat() == "2025-03-03"
    h = r.hourly.filter(pl.col("time") == datetime(2025, 3, 4, 4))
    assert h["shift"][0] == "C" and h["day"][0].isoformat() == "2025-03-03"
    two = kpi.ShiftPattern.parse("D=07:00,N=19:00")
    r2 = kpi.compute(frame(hours=24, start=datetime(2025, 3, 3, 7)), factors=FACTORS, shifts=two)
    assert r2.shifts["shift"].to_list() == ["D", "N"]
    assert r2.shifts["hours"].to_list() == [12, 12]
    assert two.hours("N") == 12.0


def test_limit_exceedances_are_flagged() -> None:
    limits = load_limits()
    stack = [20.0] * 24
    stack[3] = 90.0  # above 50 mg C/m3 = 82.5 mg NMP/m3
    stack[4] = 80.0  # below
    work = [5.0] * 24
    work[10] = 85.0  # hourly mean above the 80 mg/m3 short-term limit
    work[16:24] = [45.0] * 8  # shift C averages 45 > 40 mg/m3 TWA
    r = kpi.compute(frame(**{"stack.nmp": stack, "workplace.nmp": work}), limits=limits,
                    factors=FACTORS)
    kinds = sorted((e["kind"], e["period"]) for e in r.exceedances)
    assert kinds == [("stack", "2025-03-03T09:00:00"),
                     ("workplace-short-term", "2025-03-03T16:00:00"),
                     ("workplace-twa", "2025-03-03 shift C")]
    assert r.days["stack_exceeded_hours"][0] == 1
    assert limits.stack_mg_Nm3 == pytest.approx(50.0 / nmp_carbon_fraction())
    assert nmp_carbon_fraction() == pytest.approx(5 * 12.011 / 99.13, rel=1e-3)


def test_twa_of_a_12_hour_shift_is_scaled_to_8_hours() -> None:
    work = [30.0] * 24  # 30 mg/m3 over 12 h = 45 mg/m3 as an 8-h TWA
    r = kpi.compute(frame(start=datetime(2025, 3, 3, 7), **{"workplace.nmp": work}),
                    factors=FACTORS, shifts=kpi.ShiftPattern((("D", time(7)), ("N", time(19)))))
    assert r.shifts["workplace_twa_mg_m3"].to_list() == pytest.approx([45.0, 45.0])
    assert r.shifts["workplace_twa_exceeded"].to_list() == [True, True]


def test_missing_value_leaves_the_hour_out_and_says_so() -> None:
    feed = [100.0] * 24
    feed[5] = None
    r = kpi.compute(frame(**{"nmp.feed": feed}), factors=FACTORS)
    day = r.days.row(0, named=True)
    assert day["hours"] == 24 and day["hours_complete"] == 23
    assert day["fed_kg"] == pytest.approx(2300.0)
    assert r.notes and "1 hour" in r.notes[0]


def test_inventory_inputs_per_period() -> None:
    r = kpi.compute(frame(), factors=FACTORS)
    (day,) = factory_periods(r, "day")
    assert day.start == datetime(2025, 3, 3, 6) and day.end == datetime(2025, 3, 4, 6)
    assert day.electricity_kWh == pytest.approx(24 * 80.0)
    assert day.heat_kWh == pytest.approx(24 * 60.0)
    assert day.nmp_fed_kg == pytest.approx(2400.0)
    assert day.nmp_makeup_kg == pytest.approx(day.nmp_fed_kg - day.nmp_recovered_kg)
    assert day.nmp_emitted_kg == pytest.approx(24 * 0.2)
    shifts = factory_periods(r, "shift")
    assert [s.label for s in shifts] == ["2025-03-03 A", "2025-03-03 B", "2025-03-03 C"]
    assert shifts[2].start == datetime(2025, 3, 3, 22) and shifts[2].end == datetime(2025, 3, 4, 6)
    assert sum(s.electricity_kWh for s in shifts) == pytest.approx(day.electricity_kWh)
    assert len(factory_periods(r, "hour")) == 24


def test_electric_rotor_heater_counts_as_electricity() -> None:
    r = kpi.compute(frame(hours=1), factors=FACTORS, rotor_heater_energy="electricity")
    h = r.hourly.row(0, named=True)
    assert h["electricity_kWh"] == 100.0 and h["heat_kWh"] == 40.0


@pytest.mark.parametrize(("mutate", "location"), [
    (lambda f: f.drop("stack.flow"), "stack.flow"),
    (lambda f: f.drop("time"), "time"),
    (lambda f: f.with_columns(pl.Series("nmp.feed", [100.0, 100.0, -5.0] + [100.0] * 21)),
     "nmp.feed[2]"),
    (lambda f: f.with_columns(pl.Series("product.purity", [99.9] * 23 + [120.0])),
     "product.purity[23]"),
    (lambda f: pl.concat([f, f.head(1)]), "time[24]"),
])
def test_bad_frames_name_the_field(mutate, location) -> None:
    with pytest.raises(ValidationFailed) as err:
        kpi.compute(mutate(frame()), factors=FACTORS)
    assert err.value.location == location
