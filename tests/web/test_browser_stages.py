"""The recycling and plant journeys in a real browser (Debian's Chromium, headless, driven by
Playwright) against the app served by uvicorn, as ``test_browser.py`` runs the others:

    open a recycling batch: the mass balance drawn as a Sankey diagram, the flags of one that
    does not close, and the recycler closing one        (a recycler's writer, signed in)
    the plant: simulated telemetry in the store, the trend charts drawn and following new data,
    the model panel, an alarm acknowledged                (an operator, signed in)

Screenshots go to ``tests/web/artifacts/`` (or ``$BATTERYLOOP_ARTIFACTS``), numbered after
``test_browser.py``'s.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from .stages_support import (
    CLOSED, FLAGGED, OPEN, SIM_HOURS, SIM_START, add_stage_users, evaluate_alarms,
    more_of_the_line, recycling_batches, simulate_line,
)
from .test_browser import PASSWORD, Server, _page, server  # noqa: F401 - the server fixture

pytestmark = pytest.mark.slow
TREND_TAGS = ["stack.nmp", "cond2.outlet.temp", "oven.exhaust.nmp", "workplace.nmp"]  # overview.toml


@pytest.fixture(scope="module")
def stages(server: Server) -> Path:  # noqa: F811 - the imported fixture
    """The browser plant with recycling batches, a recycler's writer and two simulated hours of
    the NMP line in its telemetry store, the alarm rules evaluated over them."""
    from batteryloop.settings import get_settings

    add_stage_users(server.db, password=PASSWORD)
    recycling_batches(server.db)
    root = simulate_line(get_settings().data_dir / "telemetry")
    evaluate_alarms(server.db, root)
    return root


def test_open_a_batch_and_see_its_mass_balance(browser, server, stages, shot) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from playwright.sync_api import expect

    page = _page(browser, server, "rex")
    page.goto("/")
    page.click("nav >> text=Recycling")
    rows = page.locator("#batches tbody tr[data-batch]")
    expect(rows).to_have_count(3)
    expect(page.locator(f'tr[data-batch="{FLAGGED}"] td.balance .badge')).to_have_text("flags")
    shot(page, "10-recycling-batches")
    page.click(f'tr[data-batch="{OPEN}"] a')
    sankey = page.locator('.plot[data-figure="fig-sankey"]')
    expect(sankey).to_have_attribute("data-drawn", "true")
    figure = json.loads(page.locator("#fig-sankey").text_content() or "{}")
    nodes = len(figure["data"][0]["node"]["label"])
    expect(sankey.locator("g.sankey-node")).to_have_count(nodes)  # every node drawn by plotly.js
    assert sankey.locator("path.sankey-link").count() == len(figure["data"][0]["link"]["value"])
    expect(page.locator('.plot[data-figure="fig-recovery"]')).to_have_attribute("data-drawn", "true")
    expect(page.locator("#balance-badge")).to_contain_text("closes within 2 %")
    page.locator("#inputs a[href^='/batteries/']").first.wait_for()
    shot(page, "11-recycling-batch-sankey")

    page.goto(f"/recycling/batches/{FLAGGED}")
    expect(page.locator("#balance-badge")).to_have_text("does not close")
    expect(page.locator("p.flag").first).to_contain_text("batch: in 253.000 kg")  # the NMC pack
    expect(page.locator("p.flag", has_text="cu: in")).to_have_count(1)
    expect(page.locator('tr[data-constituent="cu"]')).to_have_class("flagged")
    expect(page.locator('.plot[data-figure="fig-sankey"] g.sankey-node',
                        has_text="unaccounted")).to_have_count(1)
    shot(page, "12-recycling-batch-flagged")

    page.goto(f"/recycling/batches/{OPEN}")
    page.click("#close-form button")
    expect(page.locator("#batch-status")).to_have_attribute("data-status", "closed")
    expect(page.locator("#close-form")).to_have_count(0)
    expect(page.locator("th", has_text="recovered (kg)")).to_have_count(1)
    shot(page, "13-recycling-batch-closed")
    pdf = page.request.get(page.locator("#certificate-pdf").get_attribute("href") or "")
    assert pdf.ok and pdf.body().startswith(b"%PDF")
    assert page.evaluate("document.querySelectorAll('script[src^=\"http\"]').length") == 0
    page.context.close()
    reader = _page(browser, server, "carl")  # a reader of the recycler: no close button
    reader.goto(f"/recycling/batches/{FLAGGED}")
    expect(reader.locator("#mass-balance")).to_be_visible()
    expect(reader.locator("#close-form")).to_have_count(0)
    reader.context.close()
    public = _page(browser, server)
    public.goto(f"/recycling/batches/{CLOSED}")
    expect(public.locator(".problem")).to_contain_text("legitimate-interest tier")
    public.context.close()


def test_plant_trends_follow_the_store_and_an_alarm_is_acknowledged(browser, server, stages, shot) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from playwright.sync_api import expect

    page = _page(browser, server, "rita")
    page.goto("/plant")
    live = page.locator("#live")
    expect(live).to_have_attribute("data-end", "2025-01-07 07:59:50")  # the newest sample
    for tag in TREND_TAGS:
        chart = page.locator(f'.trend[data-tag="{tag}"]')
        expect(chart).to_have_attribute("data-drawn", "true")
        expect(chart.locator("svg.main-svg").first).to_be_visible()
        assert int(chart.get_attribute("data-points") or 0) > 0
    for panel in ("#model-plot", "#residual-plot"):
        expect(page.locator(panel)).to_have_attribute("data-drawn", "true")
    expect(page.locator("#day-kpis .tile")).to_have_count(9)
    expect(page.locator("#attention tr[data-alarm]")).to_have_count(2)
    shot(page, "14-plant-live")

    # new samples arrive: the charts follow without a reload (they poll every few seconds)
    more_of_the_line(stages, SIM_START + timedelta(hours=SIM_HOURS), minutes=10)
    expect(live).to_have_attribute("data-end", "2025-01-07 08:09:50")

    row = page.locator('#attention tr[data-alarm="stuck:cond1.outlet.temp"]')
    expect(row).to_have_attribute("data-acknowledged", "false")
    row.locator("input[name=note]").fill("transmitter reset")
    row.locator("button", has_text="Acknowledge").click()
    page.wait_for_url(re.compile(r".*/plant\?line=demo#alarm-\d+$"))
    row = page.locator('#attention tr[data-alarm="stuck:cond1.outlet.temp"]')
    expect(row).to_have_attribute("data-acknowledged", "true")
    expect(row).to_contain_text("rita (")
    expect(row).to_contain_text("transmitter reset")
    expect(page.locator('#attention tr[data-acknowledged="false"] button')).to_have_count(1)
    expect(page.locator('.trend[data-tag="stack.nmp"]')).to_have_attribute("data-drawn", "true")
    expect(page.locator("#residual-plot")).to_have_attribute("data-drawn", "true")
    shot(page, "15-plant-alarm-acknowledged")
    report = page.request.get(page.locator("#report-pdf").get_attribute("href") or "")
    assert report.ok and report.body().startswith(b"%PDF")
    page.context.close()

    public = _page(browser, server)
    public.goto("/plant")
    expect(public.locator("#sign-in-notice")).to_be_visible()
    expect(public.locator("#live")).to_have_count(0)
    expect(public.locator("#stack-limit")).to_have_text("82.5")  # 50 mg C/Nm3 as NMP
    shot(public, "16-plant-public")
    public.context.close()
