"""The carbon page in a real browser (Debian's Chromium, headless, driven by Playwright) against
the app served by uvicorn on a free local port: the three figures drawn by plotly.js, another
electricity mix, and another claim checked. The page is public and reads no records, so the
database is a migrated, empty SQLite file.

Each page is kept as a screenshot under ``tests/web/artifacts/`` (or ``$BATTERYLOOP_ARTIFACTS``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batteryloop.store import connect

from .browser_support import TIMEOUT_MS, running

FIGURES = ("fig-footprint", "fig-avoided", "fig-claim")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from batteryloop.api import create_app
    from batteryloop.settings import get_settings

    folder = tmp_path_factory.mktemp("browser-carbon")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BATTERYLOOP_DATA_DIR", str(folder / "data"))
        get_settings.cache_clear()
        db = connect(f"sqlite:///{folder / 'batteryloop.sqlite'}")
        with running(create_app(db)) as url:
            try:
                yield url
            finally:
                db.dispose()
                get_settings.cache_clear()


def _drawn(page) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    for figure in FIGURES:  # drawn by plotly.js in the browser
        expect(page.locator(f'.plot[data-figure="{figure}"]')).to_have_attribute("data-drawn", "true")
        expect(page.locator(f'.plot[data-figure="{figure}"] svg.main-svg').first).to_be_visible()


def test_footprints_avoided_emissions_and_a_claim_checked(browser, server, shot) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto("/")
    page.click("nav >> text=Carbon")
    expect(page.locator("h1")).to_have_text("Carbon")
    _drawn(page)
    # 7 chemistries on the default mixes (CN, then EU and US): 21 stacked bars of 4 stages
    expect(page.locator("#footprints tbody tr")).to_have_count(21)
    expect(page.locator('.plot[data-figure="fig-footprint"] g.trace.bars')).to_have_count(4)
    expect(page.locator("#implied")).to_have_text("792")
    expect(page.locator("[data-verdict]")).to_have_attribute("data-verdict", "inconsistent")
    shot(page, "carbon-01-default")

    # another mix: France and Poland only
    form = page.locator("#grid-form")
    for code in ("CN", "EU", "US"):
        form.locator(f'input[name=grid][value="{code}"]').uncheck()
    for code in ("FR", "PL"):
        form.locator(f'input[name=grid][value="{code}"]').check()
    form.locator("button[type=submit]").click()
    expect(page.locator("#footprints tbody tr")).to_have_count(14)
    expect(page.locator('#footprints tbody tr[data-grid="FR"]')).to_have_count(7)
    _drawn(page)
    shot(page, "carbon-02-france-poland")

    # another claim: 20 kg CO2e per kWh at 24 % (an 83 kg/kWh footprint): consistent
    claim = page.locator("#claim-form")
    claim.locator("input[name=saving_t]").fill("0.02")
    claim.locator("input[name=share_pct]").fill("24")
    claim.locator("button[type=submit]").click()
    expect(page.locator("#implied")).to_have_text("83")
    expect(page.locator("[data-verdict]")).to_have_attribute("data-verdict", "consistent")
    expect(page.locator('#footprints tbody tr[data-grid="PL"]')).to_have_count(7)  # mix kept
    _drawn(page)
    page.locator("#claim").scroll_into_view_if_needed()
    shot(page, "carbon-03-claim-consistent")
    context.close()
