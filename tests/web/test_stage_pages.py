"""The recycling and plant pages over HTTP, on both databases: the figures they show are the
services' figures, each viewer sees what the API would show it and no more, the forms need their
CSRF token and the right writer, and nothing they load comes from outside the server."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import func, select

from batteryloop.accounts.service import Accounts
from batteryloop.api import create_app
from batteryloop.factory import kpi, overview, report
from batteryloop.factory.limits import load_limits
from batteryloop.factory.telemetry.store import TelemetryStore
from batteryloop.recycling import service
from batteryloop.registry.schemas import OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.store.models import Event

from .stages_support import (
    CLOSED, FLAGGED, LINE, OPEN, RECYCLER, add_stage_users, copy_store,
    evaluate_alarms, recycling_batches, simulate_line,
)
from .test_pages import _loads

PASSWORD = "a long enough test password"
DAY = date(2025, 1, 7)  # the simulated production day: 06:00 plant time (UTC+8) from SIM_START
PLANT_UTC_OFFSET_H = 8  # Asia/Shanghai, no daylight saving: the demo line's clock


@pytest.fixture
def stages(site):  # type: ignore[no-untyped-def]
    site.tokens.update(add_stage_users(site.db))
    site.batches = recycling_batches(site.db)
    return site


@pytest.fixture(scope="session")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two simulated hours of the line, made once for every test that reads them."""
    return simulate_line(tmp_path_factory.mktemp("plant") / "telemetry")


@pytest.fixture
def plant(site, data_dir: Path, simulated: Path):  # type: ignore[no-untyped-def]
    site.tokens.update(add_stage_users(site.db))
    site.store = copy_store(simulated, data_dir)
    return site


def _signed_in(site, user: str) -> TestClient:  # type: ignore[no-untyped-def]
    """A browser-like client holding the session cookie of ``user`` (forms need its CSRF token)."""
    with site.db.session() as s:
        Accounts(s).set_password(user, PASSWORD)
    client = TestClient(create_app(site.db), follow_redirects=False)
    form = client.get("/login")
    r = client.post("/login", data={"username": user, "password": PASSWORD,
                                    "csrf_token": _csrf(form.text)})
    assert r.status_code == 303, r.text[-300:]
    return client


def _csrf(html: str, form_id: str | None = None) -> str:
    part = html if form_id is None else html[html.index(f'id="{form_id}"'):]
    found = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', part)
    assert found, "no CSRF token in the form"
    return found[1]


def _events(site) -> int:  # type: ignore[no-untyped-def]
    with site.db.session() as s:
        return s.scalar(select(func.count()).select_from(Event)) or 0


def _figure(html: str, figure_id: str) -> dict:  # type: ignore[type-arg]
    found = re.search(rf'<script type="application/json" id="{figure_id}">(.*?)</script>', html,
                      re.S)
    assert found, figure_id
    return json.loads(found[1].replace("<\\/", "</"))


def _text(html: str) -> str:
    return (html.replace("&#39;", "'").replace("&gt;", ">").replace("&lt;", "<")
            .replace("&amp;", "&"))


# --- recycling: who sees what ---------------------------------------------------------------------
@pytest.mark.parametrize("user, status", [(None, 401), ("nina", 403), ("mia", 200),
                                          ("carl", 200), ("rex", 200)])
def test_batch_pages_show_what_the_api_shows_to_the_same_viewer(stages, user, status) -> None:  # type: ignore[no-untyped-def]
    api = stages.get(f"/api/v1/recycling/batches/{OPEN}", as_user=user)
    assert api.status_code == status
    for path in (f"/recycling/batches/{OPEN}", f"/recycling/batches/{OPEN}/certificate.json",
                 f"/recycling/batches/{OPEN}/certificate.pdf"):
        page = stages.get(path, as_user=user)
        assert page.status_code == status, (path, page.text[-300:])
        if status != 200:
            assert page.headers["content-type"].startswith("text/html")
            assert "LEAF-R1" not in page.text and "mass-balance" not in page.text
    listed = stages.get("/recycling", as_user=user)
    assert listed.status_code == 200
    shown = re.findall(r'<tr data-batch="([^"]+)"', listed.text)
    if status == 200:
        assert sorted(shown) == sorted([OPEN, FLAGGED, CLOSED])
    else:  # below the tier: the list says why and names no batch
        assert shown == [] and 'id="sign-in-notice"' in listed.text
        assert OPEN not in listed.text and 'id="targets"' in listed.text  # the targets are public


def test_recycling_pages_load_only_from_this_server(stages) -> None:  # type: ignore[no-untyped-def]
    for user, paths in ((None, ["/recycling"]),
                        ("carl", ["/recycling", f"/recycling/batches/{OPEN}",
                                  f"/recycling/batches/{FLAGGED}"])):
        for path in paths:
            r = stages.get(path, as_user=user)
            assert r.status_code == 200, (path, r.text[-300:])
            loads = _loads(r.text)
            assert "/static/app.css" in loads
            assert [u for u in loads if re.match(r"^(https?:)?//", u)] == [], path
    batch = stages.get(f"/recycling/batches/{OPEN}", as_user="carl").text
    assert "/static/plotly.min.js" in _loads(batch) and "/static/app.js" in _loads(batch)
    for page in ("/", "/recycling"):  # the nav and the landing page lead to both stages
        html = stages.get(page).text
        assert 'href="/recycling"' in html and 'href="/plant"' in html


# --- recycling: the list --------------------------------------------------------------------------
def test_batch_list_figures_are_the_services(stages) -> None:  # type: ignore[no-untyped-def]
    html = stages.get("/recycling", as_user="carl").text
    # newest processed first
    assert re.findall(r'<tr data-batch="([^"]+)"', html) == [FLAGGED, OPEN, CLOSED]
    with stages.db.session() as s:
        figures = {ref: service.evaluate(s, ref) for ref in (OPEN, FLAGGED, CLOSED)}
    for ref, f in figures.items():
        row = html[html.index(f'<tr data-batch="{ref}"'):]
        row = row[:row.index("</tr>")]
        assert f'data-status="{f["batch"]["status"]}"' in row
        assert f'<td class="input-kg">{f["mass_balance"]["total"]["input_kg"]:.1f}</td>' in row
        eff = f["compliance"]["recycling_efficiency"]["value_pct"]
        assert f"{eff:.2f} %" in row
        assert ("draft" in row) == (ref != CLOSED)
        assert f["route"]["name"] in row and RECYCLER in row
    # the published pack masses: Nissan Leaf ZE0 294 kg + the 26.6 kWh NMC pack 253 kg
    assert figures[OPEN]["mass_balance"]["total"]["input_kg"] == pytest.approx(294 + 253)
    assert '<td class="balance"><span class="badge broken">flags</span>' in \
        html[html.index(f'data-batch="{FLAGGED}"'):]


@pytest.mark.parametrize("query, expected", [
    ({"status": "closed"}, [CLOSED]), ({"status": "open"}, [FLAGGED, OPEN]),
    ({"route": "pyrometallurgical"}, [CLOSED]), ({"start": "2028-03-01"}, [FLAGGED, OPEN]),
    ({"start": "2028-03-01", "end": "2028-03-31"}, [OPEN]), ({"q": "002"}, [FLAGGED]),
])
def test_batch_list_filters(stages, query, expected) -> None:  # type: ignore[no-untyped-def]
    r = stages.get("/recycling", params=query, as_user="carl")
    assert r.status_code == 200
    assert re.findall(r'<tr data-batch="([^"]+)"', r.text) == expected
    assert f'id="total">{len(expected)} batch' in r.text


def test_batch_list_refuses_bad_filters_as_a_page(stages) -> None:  # type: ignore[no-untyped-def]
    bad = stages.get("/recycling", params={"status": "burning"}, as_user="carl")
    assert bad.status_code == 422 and "status must be one of open, closed" in bad.text
    backwards = stages.get("/recycling", params={"start": "2028-05-01", "end": "2028-04-01"},
                           as_user="carl")
    assert backwards.status_code == 422 and "ends before it starts" in backwards.text
    assert stages.get("/recycling", params={"start": "31/03/2028"}, as_user="carl").status_code == 422


# --- recycling: one batch -------------------------------------------------------------------------
def test_batch_page_shows_the_services_balance_recovery_and_economics(stages) -> None:  # type: ignore[no-untyped-def]
    html = stages.get(f"/recycling/batches/{OPEN}", as_user="carl").text
    with stages.db.session() as s:
        f = service.evaluate(s, OPEN)
    bal = f["mass_balance"]
    # inputs: every dismantled battery, linked to its page
    for uid in stages.batches[OPEN]:
        assert f'href="/batteries/{uid}"' in html
    assert "LEAF-R1" in html and "NMC-R1" in html
    # the closure table, row by row
    for r in bal["constituents"]:
        row = re.search(rf'<tr data-constituent="{r["constituent"]}"[^>]*>(.*?)</tr>', html, re.S)
        assert row, r["constituent"]
        cells = re.findall(r"<td>([^<]*)</td>", row[1])
        assert cells[1:6] == [f"{r[k]:.3f}" for k in ("input_kg", "product", "residue", "loss",
                                                      "unaccounted_kg")]
    assert bal["closed"] and 'id="balance-badge">closes within 2 %' in html
    # the Sankey carries the same masses: each constituent's links add up to its outputs
    sankey = _figure(html, "fig-sankey")["data"][0]
    assert sankey["type"] == "sankey"
    assert sum(sankey["link"]["value"]) == pytest.approx(bal["total"]["output_kg"])
    assert sum(sankey["link"]["value"]) == pytest.approx(294 + 253)  # closes: all of it
    labels = sankey["node"]["label"]
    for r in bal["constituents"]:
        if r["output_kg"] > 0:
            i = next(n for n, lab in enumerate(labels) if lab.startswith(r["constituent"] + " ("))
            out = sum(v for src, v in zip(sankey["link"]["source"], sankey["link"]["value"],
                                          strict=True) if src == i)
            assert out == pytest.approx(r["output_kg"])
    assert "residues" in labels and "losses" in labels and "unaccounted" not in labels
    # recovery per element against both regulations, each with its inputs
    for m in f["compliance"]["material_recovery"]:
        rows = re.findall(rf'<tr data-figure="{m["element"]}" data-regulation="([^"]+)">(.*?)</tr>',
                          html, re.S)
        assert {reg for reg, _ in rows} == {t["regulation"] for t in m["targets"]}
        for _, row in rows:
            assert f'{m["value_pct"]:.2f} %' in row
            assert f'{m["recovered_kg"]:.3f} kg / {m["input_kg"]:.3f} kg' in row
    li = next(m for m in f["compliance"]["material_recovery"] if m["element"] == "li")
    assert li["value_pct"] == pytest.approx(90.0)  # the hydrometallurgical route's EverBatt default
    eff = f["compliance"]["recycling_efficiency"]
    assert f'{eff["value_pct"]:.2f} %' in re.search(r'id="efficiency">(.*?)</p>', html, re.S)[1]
    assert f'id="margin" data-value="{f["economics"]["margin_usd"]}"' in html
    assert f'id="revenue">{f["economics"]["revenue_usd"]:.2f}</strong>' in html
    assert 'id="fig-recovery"' in html
    # a certificate for the same figures
    cert = stages.get(f"/recycling/batches/{OPEN}/certificate.json", as_user="carl")
    assert cert.status_code == 200 and cert.json()["draft"] is True
    assert cert.json()["mass_balance"]["total"]["input_kg"] == pytest.approx(bal["total"]["input_kg"])
    pdf = stages.get(f"/recycling/batches/{OPEN}/certificate.pdf", as_user="carl")
    assert pdf.content.startswith(b"%PDF") and pdf.headers["x-certificate-sha256"] == cert.json()["sha256"]
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert f"batch {OPEN}" in text


def test_a_balance_that_does_not_close_is_flagged_and_cannot_be_closed(stages) -> None:  # type: ignore[no-untyped-def]
    html = stages.get(f"/recycling/batches/{FLAGGED}", as_user="rex").text
    with stages.db.session() as s:
        f = service.evaluate(s, FLAGGED)
    cu = next(r for r in f["mass_balance"]["constituents"] if r["constituent"] == "cu")
    assert not f["mass_balance"]["closed"] and cu["product"] == 0 and cu["input_kg"] > 1
    assert cu["unaccounted_kg"] == pytest.approx(cu["input_kg"])  # no copper stream measured
    assert 'id="balance-badge">does not close' in html and 'id="outputs-basis">measured' in html
    assert re.search(r'<tr data-constituent="cu" class="flagged"', html)
    flags = re.findall(r'<p class="problem flag">(.*?)</p>', html)
    assert flags == [_html(flag) for flag in f["mass_balance"]["flags"]]
    sankey = _figure(html, "fig-sankey")["data"][0]
    sink = sankey["node"]["label"].index("unaccounted")
    lost = [v for t, v in zip(sankey["link"]["target"], sankey["link"]["value"], strict=True)
            if t == sink]
    assert sum(lost) == pytest.approx(sum(max(r["unaccounted_kg"], 0) for r in
                                          f["mass_balance"]["constituents"]))
    # the recycler may try: refused with the flags, nothing written
    before = _events(stages)
    client = _signed_in(stages, "rex")
    r = client.post(f"/recycling/batches/{FLAGGED}/close", data={"csrf_token": _csrf(
        client.get(f"/recycling/batches/{FLAGGED}").text, "close-form")})
    assert r.status_code == 409 and "the mass balance does not close" in r.text
    assert _events(stages) == before
    with stages.db.session() as s:
        assert service.show(s, FLAGGED)["batch"]["status"] == "open"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        "'", "&#39;").replace('"', "&#34;")


def test_the_recycler_closes_a_batch_with_the_forms_token(stages) -> None:  # type: ignore[no-untyped-def]
    page = f"/recycling/batches/{OPEN}"
    for user in ("carl", "mia", "rita"):  # a reader of the recycler, others' writers: no form
        assert 'id="close-form"' not in stages.get(page, as_user=user).text
    assert stages.post(f"{page}/close", as_user="rita").status_code == 403  # a repurposer
    assert stages.post(f"{page}/close", as_user="carl").status_code == 403  # no write role
    with stages.db.session() as s:  # another recycler's writer: not theirs to close
        Registry(s).add_organisation(OrganisationIn(name="Other Recycling", roles=["recycler"]))
        Accounts(s).add_user("otto", "Other Recycling", roles=("reader", "writer"))
    other = _signed_in(stages, "otto")
    shown = other.get(page).text
    assert 'id="close-form"' not in shown and 'data-status="open"' in shown
    token = _csrf(other.get("/logout").text)  # the session's token, as any of its forms has it
    refused = other.post(f"{page}/close", data={"csrf_token": token})
    assert refused.status_code == 403 and "Circular Metals Recycling" in _text(refused.text)
    client = _signed_in(stages, "rex")
    form = client.get(page).text
    assert 'id="close-form"' in form
    before = _events(stages)
    stale = client.post(f"{page}/close", data={"csrf_token": "0" * 64})
    assert stale.status_code == 403 and _events(stages) == before
    done = client.post(f"{page}/close", data={"csrf_token": _csrf(form, "close-form")})
    assert done.status_code == 303 and done.headers["location"] == page
    with stages.db.session() as s:
        reg = Registry(s)
        recycler = reg.organisation(RECYCLER).uid
        for uid in stages.batches[OPEN]:
            history = reg.history(uid)
            recycled = [e for e in history if e["type"] == "recycled"]
            assert len(recycled) == 1 and recycled[0]["payload"]["batch"] == OPEN
            assert recycled[0]["actor"] == recycler  # for the signed-in writer's organisation
            assert reg.battery(uid).state == "recycled"
        assert service.show(s, OPEN)["batch"]["status"] == "closed"
    assert _events(stages) > before
    after = client.get(page).text
    assert 'data-status="closed"' in after and 'id="close-form"' not in after
    again = client.post(f"{page}/close", data={"csrf_token": _csrf(form, "close-form")})
    assert again.status_code == 409  # closed once
    listed = stages.get("/recycling", params={"status": "closed"}, as_user="carl").text
    assert re.findall(r'<tr data-batch="([^"]+)"', listed) == [OPEN, CLOSED]


def test_closed_batch_shows_the_frozen_figures_and_recovered_mass(stages) -> None:  # type: ignore[no-untyped-def]
    html = stages.get(f"/recycling/batches/{CLOSED}", as_user="carl").text
    with stages.db.session() as s:
        f = service.evaluate(s, CLOSED)
    assert f["batch"]["status"] == "closed" and 'data-status="closed"' in html
    assert "A draft" not in html and "<th>recovered (kg)</th>" in html
    for el, kg in f["batteries"][0]["recovered_kg"].items():
        assert f"{el} {kg:.2f}" in html
    assert stages.get(f"/recycling/batches/{CLOSED}/certificate.json",
                      as_user="carl").json()["draft"] is False


def test_unknown_batch_is_a_page(stages) -> None:  # type: ignore[no-untyped-def]
    r = stages.get("/recycling/batches/NO-SUCH-BATCH", as_user="carl")
    assert r.status_code == 404 and "no recycling batch &#39;NO-SUCH-BATCH&#39;" in r.text
    assert r.headers["content-type"].startswith("text/html")


# --- the plant ------------------------------------------------------------------------------------
def _hourly(root: Path) -> pl.DataFrame:
    """Hourly means computed apart from the page: the store's UTC hour windows, moved to plant
    time (a whole-hour offset, so the windows are the same hours)."""
    means = TelemetryStore(root).resample(LINE, every="1h")
    return (means.pivot(on="tag", index="ts", values="mean")
            .with_columns(time=pl.col("ts").dt.replace_time_zone(None)
                          + pl.duration(hours=PLANT_UTC_OFFSET_H)).drop("ts").sort("time"))


def test_plant_page_for_the_public_shows_the_limits_only(plant) -> None:  # type: ignore[no-untyped-def]
    r = plant.get("/plant")
    assert r.status_code == 200 and 'id="sign-in-notice"' in r.text
    for hidden in ('id="kpis"', 'id="live-config"', 'id="alarms"', "/static/plotly.min.js"):
        assert hidden not in r.text
    # GB 30484-2013: 50 mg/Nm3 of NMHC as carbon; NMP (C5H9NO) is 60.58 % carbon by mass
    carbon = 5 * 12.011 / (5 * 12.011 + 9 * 1.008 + 14.007 + 15.999)
    assert load_limits().stack_mg_Nm3 == pytest.approx(50 / carbon, rel=1e-3)
    assert f'id="stack-limit">{50 / carbon:.1f}</strong>' in r.text
    assert "2009/161/EU" in r.text  # the workplace limit's source
    api = plant.get(f"/api/v1/plant/lines/{LINE}/series")
    assert api.status_code == 401
    for path in (f"/plant/live.json?line={LINE}", f"/plant/report/{DAY}.pdf?line={LINE}"):
        assert plant.get(path).status_code == 401


def test_an_empty_store_says_how_to_start_the_simulator(site) -> None:  # type: ignore[no-untyped-def]
    r = site.get("/plant", as_user="mia")
    assert r.status_code == 200 and 'id="no-telemetry"' in r.text
    assert "batteryloop plant simulate --line demo" in r.text
    live = site.get("/plant/live.json", params={"line": LINE}, as_user="mia")
    assert live.status_code == 404 and live.headers["content-type"].startswith(
        "application/problem+json")


def test_plant_kpis_are_the_kpi_services(plant) -> None:  # type: ignore[no-untyped-def]
    r = plant.get("/plant", as_user="mia")
    assert r.status_code == 200, r.text[-500:]
    html = r.text
    assert f"KPIs of production day {DAY}" in html
    expected = kpi.compute(_hourly(plant.store), limits=load_limits(),
                           shifts=kpi.ShiftPattern())
    day = expected.days.filter(pl.col("day") == DAY).row(0, named=True)
    assert day["hours"] == 2 and day["hours_complete"] == 2  # 06:00 and 07:00
    tiles = dict(re.findall(r'data-kpi="([a-zA-Z0-9_]+)"><div class="n">([^<]*)</div>', html))
    assert tiles["recovery_rate"] == f"{100 * day['recovery_rate']:.2f} %"
    assert tiles["purity_wt_pct"] == f"{day['purity_wt_pct']:.3f} %"
    assert tiles["water_ppm"] == f"{day['water_ppm']:.0f} ppm"
    assert tiles["stack_mean_mg_Nm3"] == f"{day['stack_mean_mg_Nm3']:.1f}"
    assert tiles["energy_kWh_per_kg"] == f"{day['energy_kWh_per_kg']:.3f}"
    assert tiles["cost_saved"] == f"{day['cost_saved']:.0f} {expected.factors.currency}"
    assert tiles["co2e_avoided_kg"] == f"{day['co2e_avoided_kg']:.0f} kg"
    # a line recovering nearly all of its NMP, well under the stack limit
    assert 0.95 < day["recovery_rate"] <= 1.0 and day["stack_mean_mg_Nm3"] < load_limits().stack_mg_Nm3
    # recovered = product flow x purity, fed = the feed: the hourly sums by hand
    hours = _hourly(plant.store)
    recovered = float((hours["product.flow"] * hours["product.purity"] / 100).sum())
    assert day["recovered_kg"] == pytest.approx(recovered)
    assert f"{recovered:.1f} kg recovered of {float(hours['nmp.feed'].sum()):.1f} kg" in html
    assert re.findall(r'<tr data-shift="([A-Z])">', html) == ["A"]
    assert re.findall(r'<tr data-hour="(\d\d:\d\d)">', html) == ["06:00", "07:00"]
    assert f'/plant/report/{DAY}.pdf?line={LINE}' in html


def test_daily_report_is_the_report_service(plant) -> None:  # type: ignore[no-untyped-def]
    got = plant.get(f"/plant/report/{DAY}.json", params={"line": LINE}, as_user="mia")
    assert got.status_code == 200, got.text[-300:]
    expected = report.daily(kpi.compute(_hourly(plant.store)), DAY)
    for key, value in expected["day_kpis"].items():
        assert got.json()["day_kpis"][key] == pytest.approx(value), key
    assert got.json()["day"] == DAY.isoformat() and got.json()["compliant"] == expected["compliant"]
    pdf = plant.get(f"/plant/report/{DAY}.pdf", params={"line": LINE}, as_user="mia")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert f"daily report {DAY}" in text
    none = plant.get("/plant/report/2025-02-01.pdf", params={"line": LINE}, as_user="mia")
    assert none.status_code == 404 and "no complete hour" in none.text
    assert plant.get("/plant/report/2025-13-01.pdf", params={"line": LINE},
                     as_user="mia").status_code == 422


def test_live_json_is_the_newest_window_of_the_store(plant, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    r = plant.get("/plant/live.json", params={"line": LINE, "tag": ["stack.nmp", "workplace.nmp"],
                                              "minutes": 10}, as_user="mia")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()["trends"]
    assert body["end"] == "2025-01-07 07:59:50"  # the last 10 s sample, plant time
    stack = body["tags"]["stack.nmp"]
    assert len(stack["x"]) == 60  # 10 minutes of a 10 s instrument
    assert len(body["tags"]["workplace.nmp"]["x"]) == 10  # and of a once-a-minute one
    stored = TelemetryStore(plant.store).query(LINE, ["stack.nmp"])["value"].tail(60).to_list()
    assert stack["y"] == pytest.approx(stored)
    assert {lim["rule"] for lim in stack["limits"]} == {"stack-nmp-hourly"}
    assert stack["limits"][0]["value"] == pytest.approx(load_limits().stack_mg_Nm3)
    assert r.json()["model"] is None
    # two hours of a 10 s tag are 720 points, as many as the page takes whole (overview.toml)
    whole = plant.get("/plant/live.json", params={"line": LINE, "tag": "stack.nmp",
                                                  "minutes": 1440}, as_user="mia").json()["trends"]
    assert whole["every_s"] is None and len(whole["tags"]["stack.nmp"]["x"]) == 720
    # more than that come as means over equal slices: 1440 minutes / 100 points = 864 s each
    fewer = dataclasses.replace(overview.settings(), max_points=100)
    monkeypatch.setattr(overview, "settings", lambda: fewer)
    sliced = plant.get("/plant/live.json", params={"line": LINE, "tag": "stack.nmp",
                                                   "minutes": 1440}, as_user="mia").json()["trends"]
    means = sliced["tags"]["stack.nmp"]["y"]
    assert sliced["every_s"] == 864 and 8 <= len(means) <= 10  # two hours in 864 s slices
    everything = TelemetryStore(plant.store).query(LINE, ["stack.nmp"])["value"]
    assert min(means) >= everything.min() and max(means) <= everything.max()
    bad = plant.get("/plant/live.json", params={"line": LINE, "tag": "no.such.tag"}, as_user="mia")
    assert bad.status_code == 422 and "unknown tag" in bad.json()["detail"]
    assert plant.get("/plant/live.json", params={"line": LINE, "minutes": 99_999},
                     as_user="mia").status_code == 422
    assert plant.get("/plant/live.json", params={"line": "other"}, as_user="mia").status_code == 404


def test_the_model_panel_sees_condenser_2_fouling(plant) -> None:  # type: ignore[no-untyped-def]
    body = plant.get("/plant/live.json", params={"line": LINE, "model": "true"},
                     as_user="mia").json()["model"]
    cond1, cond2 = body["tags"]["cond1.outlet.temp"], body["tags"]["cond2.outlet.temp"]
    assert cond2["rule"]["id"] == "cond2-fouling" and cond2["average_s"] == 900
    assert len(cond2["x"]) == 120  # two hours on the soft sensor's 1-minute grid
    # the coil fouls from 30 minutes on: at the end it runs warmer than the clean coil by more
    # than the alarm's band, while it sat on the model before the fault
    assert cond2["residual"][-1] > cond2["rule"]["above"]
    early = [r for r in cond2["residual"][15:25] if r is not None]
    assert early and max(abs(r) for r in early) < cond2["rule"]["above"]
    assert all(abs(m - e - r) < 1e-9 for m, e, r in zip(cond2["measured"], cond2["expected"],
                                                         cond2["residual"], strict=True)
               if None not in (m, e, r))
    assert cond1["rule"] is None and cond1["expected"][-1] is not None


def test_alarms_are_listed_and_acknowledged_by_an_operator(plant) -> None:  # type: ignore[no-untyped-def]
    raised = evaluate_alarms(plant.db, plant.store)
    assert "stuck:cond1.outlet.temp" in raised and "cond2-fouling" in raised
    html = plant.get("/plant", as_user="mia").text
    listed = re.findall(r'<tr id="alarm-(\d+)" data-alarm="([^"]+)" data-acknowledged="false">',
                        html)
    assert sorted(a for _, a in listed) == sorted(raised)
    assert "Acknowledge</button>" not in html  # a reader sees them, does not acknowledge
    occurrence = dict((a, i) for i, a in listed)["stuck:cond1.outlet.temp"]
    assert plant.post(f"/plant/alarms/{occurrence}/ack", as_user="mia").status_code == 403
    client = _signed_in(plant, "rita")
    page = client.get("/plant").text
    assert page.count("Acknowledge</button>") == len(raised)
    stale = client.post(f"/plant/alarms/{occurrence}/ack", data={"note": "x", "csrf_token": "1" * 64})
    assert stale.status_code == 403
    done = client.post(f"/plant/alarms/{occurrence}/ack",
                       data={"note": "transmitter reset", "csrf_token": _csrf(page, "alarms")})
    assert done.status_code == 303 and done.headers["location"].endswith(f"#alarm-{occurrence}")
    alarms = {a["alarm"]: a for a in plant.get(f"/api/v1/plant/lines/{LINE}/alarms",
                                               as_user="mia").json()}
    acked = alarms["stuck:cond1.outlet.temp"]
    assert acked["note"] == "transmitter reset" and acked["acknowledged_by"].startswith("rita (")
    after = client.get("/plant").text
    assert f'<tr id="alarm-{occurrence}" data-alarm="stuck:cond1.outlet.temp" ' \
           f'data-acknowledged="true">' in after  # still active: still needs attention
    again = client.post(f"/plant/alarms/{occurrence}/ack", data={"csrf_token": _csrf(after, "alarms")})
    assert again.status_code == 409 and "already acknowledged" in again.text
    assert client.post("/plant/alarms/999999/ack",
                       data={"csrf_token": _csrf(after, "alarms")}).status_code == 404


def test_an_operator_evaluates_the_rules_from_the_page(plant) -> None:  # type: ignore[no-untyped-def]
    html = plant.get("/plant", as_user="mia").text
    assert "Nothing needs attention." in html and 'id="evaluate-form"' not in html
    client = _signed_in(plant, "rita")
    page = client.get("/plant").text
    r = client.post("/plant/alarms/evaluate", data={"line": LINE, "minutes": 120,
                                                   "csrf_token": _csrf(page, "evaluate-form")})
    assert r.status_code == 303, r.text[-300:]
    after = client.get("/plant").text
    shown = set(re.findall(r'data-alarm="([^"]+)"', after))
    assert {"stuck:cond1.outlet.temp", "cond2-fouling"} <= shown


def test_plant_pages_load_only_from_this_server(plant) -> None:  # type: ignore[no-untyped-def]
    r = plant.get("/plant", as_user="mia")
    loads = _loads(r.text)
    assert "/static/plotly.min.js" in loads and "/static/app.css" in loads
    assert [u for u in loads if re.match(r"^(https?:)?//", u)] == []
    config = json.loads(re.search(r'<script type="application/json" id="live-config">(.*?)</script>',
                                  r.text, re.S)[1])
    assert config["url"] == "/plant/live.json" and config["line"] == LINE
    assert config["tags"] == ["stack.nmp", "cond2.outlet.temp", "oven.exhaust.nmp", "workplace.nmp"]
    assert re.findall(r'<div class="plot trend" data-tag="([^"]+)">', r.text) == config["tags"]
    assert plant.get("/plant", params={"tag": "bogus"}, as_user="mia").status_code == 422
    assert plant.get("/plant", params={"line": "other"}, as_user="mia").status_code == 404
