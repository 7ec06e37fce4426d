"""Intake over the page: a real tester file becomes a test, an inspection, a health estimate and a
grade; a bad file or a caller who may not write leaves nothing behind."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from batteryloop.cycling import read
from batteryloop.cycling.summary import cycles
from batteryloop.grading.service import latest_grade
from batteryloop.registry.service import Registry
from batteryloop.store.models import CyclerTest, Event, Inspection

PEC = "data/cyclers/pec/pec.csv"
RATED_AH = 50.0  # the demo intake cells (synth.cells)


def _counts(site) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with site.db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) or 0  # type: ignore[return-value]
                     for t in (Event, CyclerTest, Inspection))


def _upload(site, path, battery="INTAKE-0001", user="rita", name=None, **form):  # type: ignore[no-untyped-def]
    data = {"battery": battery, "policy": "stationary-storage", "ocv_v": "3.62",
            "insulation_mohm": "20", "bms_read": "1", **form}
    with open(path, "rb") as fh:
        return site.post("/intake/test", as_user=user, data=data,
                         files={"file": (name or path.name, fh)})


def test_a_tester_file_is_graded(site, shared_file) -> None:  # type: ignore[no-untyped-def]
    path = shared_file(PEC)
    r = _upload(site, path)
    assert r.status_code == 200, r.text[-800:]
    # expected by hand from the file: the PEC cell's last full discharges over the 50 Ah rating
    # (the file keeps one discharge per cycle, so the per-cycle table gives the same blocks)
    table = cycles(read(path)[0])
    full = table.filter(table["discharge_capacity_ah"] > 0.5 * table["discharge_capacity_ah"].max())
    expected_soh = 100 * float(full.tail(3)["discharge_capacity_ah"].mean()) / RATED_AH
    shown = re.search(r'data-parameter="capacity_soh"><td>capacity soh</td><td>([\d.]+)</td>',
                      r.text)
    assert shown and float(shown[1]) == pytest.approx(expected_soh, abs=0.005)
    assert 80 < expected_soh < 95  # band A of stationary storage: lower bound >= 80 %
    assert 'data-grade="A"' in r.text and 'data-route="repurposed"' in r.text
    assert "read as <strong>pec</strong>" in r.text.lower()
    with site.db.session() as s:
        uid = Registry(s).battery("INTAKE-0001").uid
        history = [e["type"] for e in Registry(s).history(uid)]
        graded = latest_grade(s, uid)
        org = Registry(s).organisation("Second Wind Storage").uid
    assert graded is not None and graded["grade"] == "A"
    assert history[-6:] == ["tested", "inspected", "health-assessed", "status-changed", "graded",
                            "status-changed"]
    assert graded["actor"] == "Second Wind Storage"
    page = site.get(f"/batteries/{uid}", as_user="rita").text
    assert 'id="fig-fade"' in page and 'id="fig-dqdv"' in page and 'data-verified="true"' in page
    assert org  # the writer's organisation acted


def test_a_file_no_reader_knows_writes_nothing(site, tmp_path) -> None:  # type: ignore[no-untyped-def]
    junk = tmp_path / "notes.csv"
    junk.write_text("when,what\n2024-01-01,looked fine\n")
    before = _counts(site)
    r = _upload(site, junk)
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert "notes.csv" in r.text and "not a recognised battery-tester file" in r.text
    assert str(tmp_path) not in r.text and "batteryloop-intake-" not in r.text
    assert _counts(site) == before


def test_a_file_without_a_full_discharge_writes_nothing(site, shared_file) -> None:  # type: ignore[no-untyped-def]
    path = shared_file("data/cyclers/bdf/batmo_bdf.csv")
    before = _counts(site)
    r = _upload(site, path, battery="INTAKE-0002")
    assert r.status_code == 422, r.text[-500:]
    assert "batmo_bdf.csv" in r.text
    assert _counts(site) == before


# anonymous: refused for the missing form token first (a browser's form carries one), 403
@pytest.mark.parametrize(("user", "status"), [(None, 403), ("mia", 403), ("carl", 403)])
def test_intake_needs_a_writer(site, tmp_path, user, status) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "x.csv"
    f.write_text("a\n1\n")
    before = _counts(site)
    r = _upload(site, f, user=user)
    assert r.status_code == status and _counts(site) == before
    form = site.get("/intake", as_user=user).text
    assert 'id="sign-in-notice"' in form and "disabled" in form


def test_a_battery_that_cannot_be_graded_is_refused_first(site, shared_file) -> None:  # type: ignore[no-untyped-def]
    before = _counts(site)
    r = _upload(site, shared_file(PEC), battery=_pack_in_service(site))
    assert r.status_code == 409  # an illegal lifecycle transition, as the API answers
    assert "intake grades batteries that are collected, tested, graded" in r.text
    assert _counts(site) == before


def _pack_in_service(site) -> str:  # type: ignore[no-untyped-def]
    from batteryloop.store.models import Battery

    with site.db.session() as s:
        return s.scalars(select(Battery.uid).where(Battery.state == "in_service")).first()


def test_a_pulse_test_is_graded_on_its_interval(site, shared_dir, data_dir) -> None:  # type: ignore[no-untyped-def]
    from batteryloop.health import pulse
    from batteryloop.registry.schemas import BatteryIn

    model_root = data_dir / "models"
    pulse.train(shared_dir, root=model_root, types=["NMC_21Ah"], scores={})
    data = pulse.load_pulsebat(shared_dir)
    frame = data.filter(data["cell_type"] == "NMC_21Ah")
    row = frame.row(0, named=True)
    volts = [row[c] for c in frame.columns if re.fullmatch(r"U\d+", c)]
    assert len(volts) == 21
    with site.db.session() as s:
        reg = Registry(s)
        cell = reg.register(BatteryIn(kind="cell", chemistry="NMC", rated_capacity_ah=21.0,
                                      identifiers={"serial": "PULSE-1"}))
        for state in ("in_service", "retired", "collected"):
            reg.change_status(cell.uid, state)
    model, _ = pulse.load(model_root)
    estimate = pulse.predict(model, pulse.PulseTest(voltages=tuple(volts), soc=row["soc"],
                                                    rated_ah=21.0, chemistry="NMC"))
    r = site.post("/intake/pulse", as_user="rita", data={
        "battery": "PULSE-1", "voltages": " ".join(str(v) for v in volts), "soc": str(row["soc"]),
        "policy": "stationary-storage"})
    assert r.status_code == 200, r.text[-800:]
    with site.db.session() as s:
        graded = latest_grade(s, "PULSE-1")
    assert graded is not None
    assert graded["soh"]["value"] == pytest.approx(100 * estimate.value)
    assert graded["soh"]["lower"] == pytest.approx(100 * estimate.lower)
    assert f"SOH {100 * estimate.value:.2f} %" in r.text
