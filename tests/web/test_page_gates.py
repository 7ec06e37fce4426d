"""The pages' read gates, beyond anonymous and the loop's organisations: a signed-in vehicle maker
that has nothing to do with the plant's batteries reads them at the public tier, and its own
battery at the own-batteries tier (passport/data/records.toml, as the API reads them); writes need
a writer that may read what it writes; a page never loads another battery's records."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sqlalchemy import func, select

from batteryloop.accounts.service import Accounts
from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.store.models import AuditEntry, Battery, Event

STRANGER = "Stranger Motors"
OWN_SERIAL = "SAM-CELL-0001"


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-uid="([^"]+)"', html)


@pytest.fixture
def sam(site) -> str:  # type: ignore[no-untyped-def]
    """A writer of a vehicle maker (public tier) that made one collected cell of its own."""
    with site.db.session() as s:
        reg = Registry(s)
        org = reg.add_organisation(OrganisationIn(name=STRANGER, roles=["vehicle_maker"])).uid
        cell = reg.register(BatteryIn(kind="cell", chemistry="NMC", rated_capacity_ah=50.0,
                                      manufacturer=org, identifiers={"serial": OWN_SERIAL}),
                            actor=org)
        for state in ("in_service", "retired", "collected"):
            reg.change_status(cell.uid, state, actor=org)
        accounts = Accounts(s)
        accounts.add_user("sam", STRANGER, roles=["reader", "writer"])
        site.tokens["sam"] = accounts.create_token("sam", scopes=["write"])[1]
    return "sam"


def _uid(site, ref: str) -> str:  # type: ignore[no-untyped-def]
    with site.db.session() as s:
        return Registry(s).battery(ref).uid


def _events(site) -> int:  # type: ignore[no-untyped-def]
    with site.db.session() as s:
        return s.scalar(select(func.count()).select_from(Event)) or 0


def test_a_stranger_counts_filters_and_finds_only_its_own_batteries(site, sam) -> None:  # type: ignore[no-untyped-def]
    own = _uid(site, OWN_SERIAL)
    landing = site.get("/", as_user=sam).text
    counts = dict(re.findall(r'data-state="([a-z_]+)"[^>]*>\s*<div class="n">(\d+)</div>', landing))
    assert {k: int(v) for k, v in counts.items() if int(v)} == {"collected": 1}
    assert "1 of them your organisation's" in landing
    # a filter on the state counts its own batteries only (the API's GET /batteries?state=)
    assert _rows(site.get("/batteries", params={"state": "graded"}, as_user=sam).text) == []
    assert _rows(site.get("/batteries", params={"state": "collected"}, as_user=sam).text) == [own]
    # and a grade filter, its own graded batteries (none): no grade of another is shown
    graded = site.get("/batteries", params={"grade": "A", "kind": "cell"}, as_user=sam).text
    assert _rows(graded) == [] and 'class="badge grade"' not in graded
    everything = site.get("/batteries", params={"kind": "cell"}, as_user=sam).text
    assert 'class="badge grade"' not in everything and "SWS-CELL-" not in everything
    assert OWN_SERIAL in everything  # its own cell by its serial
    # a search by part of a serial matches its own serials only
    assert _rows(site.get("/batteries", params={"q": "SWS-CELL-00"}, as_user=sam).text) == []
    assert _rows(site.get("/batteries", params={"q": "SAM-CELL"}, as_user=sam).text) == [own]


def test_a_stranger_reads_another_battery_at_the_public_tier(site, sam) -> None:  # type: ignore[no-untyped-def]
    uid = _uid(site, "SWS-CELL-0003")
    page = site.get(f"/batteries/{uid}", as_user=sam).text
    for section in ('id="ledger"', 'id="tests"', 'id="health-section"', 'id="grade"',
                    'id="state"', "Custody", "SWS-CELL-0003", "certificate.pdf"):
        assert section not in page, section
    assert 'id="sign-in-notice"' in page and "you read this battery at the public tier" in page
    assert 'id="lineage-withheld"' in page
    for suffix in ("certificate.json", "certificate.pdf"):
        assert site.get(f"/batteries/{uid}/{suffix}", as_user=sam).status_code == 403
        assert site.get(f"/batteries/{uid}/{suffix}").status_code == 401
    own = site.get(f"/batteries/{_uid(site, OWN_SERIAL)}", as_user=sam).text
    assert 'id="ledger"' in own and OWN_SERIAL in own and 'id="state"' in own


def test_regroup_and_intake_offer_a_stranger_only_its_own_cells(site, sam) -> None:  # type: ignore[no-untyped-def]
    plan = site.get("/regroup", params={"run": "true", "chemistry": "NMC", "series": 3,
                                        "parallel": 4}, as_user=sam)
    assert plan.status_code == 422 and "no battery matching" in plan.text  # none of its is graded
    assert 'id="own-only"' in site.get("/regroup", as_user=sam).text
    form = site.get("/intake", as_user=sam).text
    assert "INTAKE-0001" not in form and OWN_SERIAL in form
    assert "INTAKE-0001" in site.get("/intake", as_user="rita").text
    assert "INTAKE-0001" not in site.get("/intake").text
    before = _events(site)
    r = site.post("/intake/pulse", as_user=sam, data={
        "battery": "INTAKE-0001", "voltages": " ".join(["3.6"] * 21), "soc": "50",
        "policy": "stationary-storage"})
    assert r.status_code == 403 and "legitimate_interest" in r.text
    assert _events(site) == before


def _tester_file(folder: Path) -> Path:
    """Two one-hour charge/discharge cycles at 1 A, as a BDF CSV (built, not copied)."""
    t = np.arange(0, 4 * 3600, 10.0)
    phase = (t // 3600).astype(int)
    frac = (t % 3600) / 3600
    path = folder / "h10-cells.bdf.csv"
    pl.DataFrame({
        "Test Time / s": t,
        "Voltage / V": np.where(phase % 2 == 0, 3.0 + 1.1 * frac, 4.1 - 1.1 * frac),
        "Current / A": np.where(phase % 2 == 0, 1.0, -1.0),
        "Cycle Count / 1": phase // 2 + 1,
    }).write_csv(path)
    return path


def test_a_battery_page_plots_only_its_own_tests(site, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from batteryloop.cycling import storage
    from batteryloop.cycling.ingest import parse

    df, meta, summary = parse(_tester_file(tmp_path))
    stored = storage.store(site.db, df, meta, battery="SWS-CELL-0001",
                           actor="Second Wind Storage", summary=summary)
    own, other = _uid(site, "SWS-CELL-0001"), _uid(site, "SWS-CELL-0002")
    shown = site.get(f"/batteries/{own}", params={"test": stored.sha256[:12]}, as_user="mia")
    assert shown.status_code == 200 and 'id="fig-fade"' in shown.text
    with site.db.session() as s:
        audited = s.scalar(select(func.count()).select_from(AuditEntry))
    refused = site.get(f"/batteries/{other}", params={"test": stored.sha256}, as_user="mia")
    assert refused.status_code == 404 and 'id="fig-fade"' not in refused.text
    with site.db.session() as s:  # a page refused as a whole records no read
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == audited


def test_reads_a_page_shows_are_audited(site) -> None:  # type: ignore[no-untyped-def]
    uid = _uid(site, "SWS-CELL-0003")
    site.get(f"/batteries/{uid}")  # public fields only: nothing to record
    site.get(f"/batteries/{uid}", as_user="mia")
    r = site.get("/regroup", params={"run": "true", "chemistry": "NMC", "series": 3,
                                     "parallel": 4}, as_user="mia")
    assert r.status_code == 200
    with site.db.session() as s:
        rows = s.execute(select(AuditEntry.user_name, AuditEntry.battery, AuditEntry.path,
                                AuditEntry.attributes)).all()
        cells = set(s.scalars(select(Battery.uid).where(Battery.kind == "cell",
                                                        Battery.state == "graded")))
    assert not any(user is None for user, *_ in rows)
    page = {a for user, b, path, attrs in rows if b == uid and path == f"/batteries/{uid}"
            for a in re.findall(r'"([^"]+)"', attrs)}
    assert {"registry.history", "health.assessment", "grading.grade", "cycling.tests",
            "general.lineage"} <= page
    planned = {b for user, b, path, attrs in rows
               if path == "/regroup" and "grading.grade" in attrs and "health.assessment" in attrs}
    assert planned == cells and len(cells) == 14
