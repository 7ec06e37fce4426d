"""`batteryloop plant`: model, KPIs and the daily report from the command line."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from pypdf import PdfReader


@pytest.fixture()
def plant():  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from batteryloop.cli.main import app

    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["plant", *args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return run


def _hourly_csv(path: Path, hours: int = 24) -> Path:
    from batteryloop.factory.kpi import hour_starts

    stack = [20.0] * hours
    stack[2] = 120.0
    pl.DataFrame({
        "time": hour_starts(datetime(2025, 3, 3, 6), hours).dt.strftime("%Y-%m-%dT%H:%M:%S"),
        "nmp.feed": [240.0] * hours, "product.flow": [238.0] * hours,
        "product.purity": [99.98] * hours, "product.water": [140.0] * hours,
        "stack.nmp": stack, "stack.flow": [30_000.0] * hours, "workplace.nmp": [4.0] * hours,
        "power.fans": [75.0] * hours, "power.chiller": [70.0] * hours,
        "steam.distillation": [90.0] * hours, "heat.rotor": [80.0] * hours,
    }).write_csv(path)
    return path


def test_model_with_overrides_and_tags(plant) -> None:  # type: ignore[no-untyped-def]
    code, out, err = plant("model", "--set", "polisher.kind=none", "--tag",
                           "oven.exhaust.nmp=6000", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["conditions"]["oven.exhaust.nmp"] == 6000.0
    assert d["tags"]["stack.nmp"] == d["tags"]["cond.outlet.nmp"]  # no polisher
    assert all(v < 1e-8 for v in d["closure"].values())
    code, out, err = plant("model", "--json")
    assert code == 0, err
    assert json.loads(out)["indicators"]["capture_rate"] >= 0.99


def test_kpi_and_report(plant, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv = _hourly_csv(tmp_path / "hours.csv")
    code, out, err = plant("kpi", str(csv), "--by", "shift", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert [p["period"] for p in d["periods"]] == ["2025-03-03 A", "2025-03-03 B", "2025-03-03 C"]
    assert d["periods"][0]["recovery_rate"] == pytest.approx(238.0 * 0.9998 / 240.0)
    assert [e["period"] for e in d["exceedances"]] == ["2025-03-03T08:00:00"]
    pdf = tmp_path / "day.pdf"
    code, out, err = plant("report", str(csv), "--day", "2025-03-03", "--pdf", str(pdf), "--json")
    assert code == 0, err
    assert json.loads(out)["compliant"] is False
    assert "2025-03-03" in PdfReader(str(pdf)).pages[0].extract_text()


@pytest.mark.parametrize(("args", "fragment"), [
    (("model", "--tag", "oven.exhaust.flow=-5"), "oven.exhaust.flow"),
    (("model", "--set", "rotor.adsorption_efficiency=2"), "rotor.adsorption_efficiency"),
    (("model", "--tag", "oven.exhaust.flow"), "--tag"),
    (("kpi", "missing.csv"), "missing.csv"),
    (("report", "missing.csv", "--day", "03/03/2025"), "--day"),
])
def test_bad_input_is_one_line_naming_the_field(plant, args, fragment) -> None:  # type: ignore[no-untyped-def]
    code, _, err = plant(*args)
    line = " ".join(err.split())
    assert code == 1 and line.startswith("error:") and "Traceback" not in err
    assert fragment in line


def test_the_plant_hours_feed_the_ghg_inventory(tmp_path: Path) -> None:
    """KPIs -> the day's inventory period -> ISO 14064 lines: the energy and NMP are the plant's."""
    from typer.testing import CliRunner

    from batteryloop.cli.main import app

    csv = _hourly_csv(tmp_path / "hours.csv")
    r = CliRunner().invoke(app, ["carbon", "inventory", "--plant-hours", str(csv), "--grid", "CN",
                                 "--json"])
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["period"] == "2025-03-03"
    lines = [line for c in d["categories"].values() for line in c["lines"]]
    electricity = next(x for x in lines if x["source"].startswith("electricity, location-based"))
    assert electricity["activity"] == pytest.approx((75.0 + 70.0) * 24)  # fans + chiller, kW x h
    assert electricity["kg_co2e"] == pytest.approx(electricity["activity"] * electricity["factor"])
    heat = next(x for x in lines if x["source"].startswith("purchased heat"))
    assert heat["activity"] == pytest.approx((90.0 + 80.0) * 24)  # reboiler + rotor heater
    r = CliRunner().invoke(app, ["carbon", "inventory", "--plant-hours", str(csv), "--day",
                                 "2025-03-09"])
    assert r.exit_code != 0 and "2025-03-09" in r.stderr + r.stdout
