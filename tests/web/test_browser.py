"""The main journeys in a real browser: Debian's Chromium, headless, driven by Playwright, against
the app served by uvicorn on a free local port over a seeded SQLite database.

    find a battery by an identifier            (public: what is public of it)
    upload a tester file and get a grade       (a repurposer's writer, signed in at /login)
    plan a regrouping                          (a repurposer's reader)
    view a passport as the public and as a recycler

Each page is kept as a screenshot under ``tests/web/artifacts/`` (or ``$BATTERYLOOP_ARTIFACTS``),
for a person to look at what the test saw.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from batteryloop.store import Database, connect

from .browser_support import TIMEOUT_MS, running
from .conftest import USERS, seed_plant

PASSWORD = "a long enough test password"
PEC = "data/cyclers/pec/pec.csv"

pytestmark = pytest.mark.slow


@dataclass
class Server:
    url: str
    db: Database

    def uid(self, ref: str) -> str:
        from batteryloop.registry.service import Registry

        with self.db.session() as s:
            return Registry(s).battery(ref).uid


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from argon2 import PasswordHasher, Type

    from batteryloop.accounts import hashing
    from batteryloop.accounts.service import Accounts
    from batteryloop.api import create_app
    from batteryloop.settings import get_settings

    folder = tmp_path_factory.mktemp("browser")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BATTERYLOOP_DATA_DIR", str(folder / "data"))
        mp.setattr(hashing, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                     parallelism=1, type=Type.ID))
        mp.setattr(hashing, "_DUMMY", None)
        get_settings.cache_clear()
        db = connect(f"sqlite:///{folder / 'batteryloop.sqlite'}")
        seed_plant(db, packs=6, graded=30, waiting=2)
        with db.session() as s:
            for name in USERS:
                Accounts(s).set_password(name, PASSWORD)
        with running(create_app(db)) as url:
            try:
                yield Server(url, db)
            finally:
                db.dispose()
                get_settings.cache_clear()


def _page(browser, server: Server, user: str | None = None):  # type: ignore[no-untyped-def]
    """A fresh browser context (no cookies), signed in at /login as ``user`` if given."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    if user:
        page.goto("/login")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", PASSWORD)
        page.click("form.login button")
        page.wait_for_url(re.compile(r".*/passport$"))
        assert page.locator("nav .who .user").inner_text() == user
    return page


def test_find_a_battery_by_its_identifier(browser, server, shot) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = _page(browser, server)
    page.goto("/")
    expect(page.locator("#sign-in-notice")).to_be_visible()  # where batteries are is not public
    expect(page.locator("#states .tile")).to_have_count(0)
    shot(page, "01-landing")
    page.click("nav >> text=Batteries")
    page.fill("input[name=q]", "SWS-CELL-0007")
    page.click("form.filters button")
    rows = page.locator("#batteries tbody tr[data-uid]")
    expect(rows).to_have_count(1)
    expect(page.locator("#total")).to_have_text("1 battery")
    shot(page, "02-batteries-found")
    rows.first.locator("a").click()
    expect(page.locator("#identity")).to_contain_text(server.uid("SWS-CELL-0007"))
    expect(page.locator("#identity")).not_to_contain_text("SWS-CELL-0007")  # a serial: withheld
    expect(page.locator("#sign-in-notice")).to_be_visible()  # the ledger is not public
    expect(page.locator("#ledger")).to_have_count(0)
    shot(page, "03-battery-public")
    page.context.close()


def test_upload_a_tester_file_and_get_a_grade(browser, server, shared_file, shot) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = _page(browser, server, "rita")
    page.goto("/intake?battery=INTAKE-0001")
    form = page.locator("#intake-test")
    form.locator("input[name=file]").set_input_files(str(shared_file(PEC)))
    form.locator("select[name=policy]").select_option("stationary-storage")
    form.locator("input[name=ocv_v]").fill("3.62")
    form.locator("input[name=insulation_mohm]").fill("20")
    shot(page, "04-intake-form")
    form.locator("button[type=submit]").click()
    expect(page.locator("#decision [data-grade]")).to_have_attribute("data-grade", "A")
    expect(page.locator("#decision [data-route]")).to_have_text("repurposed")
    soh = float(page.locator('#health tr[data-parameter="capacity_soh"] td').nth(1).inner_text())
    assert 85 < soh < 92  # about 44.4 Ah of the 50 Ah rating (tests/web/test_intake_page.py)
    shot(page, "05-intake-graded")
    page.click("text=The battery's page")
    expect(page.locator("#chain-badge")).to_have_attribute("data-verified", "true")
    for figure in ("fig-fade", "fig-dqdv", "fig-health"):  # drawn by plotly.js in the browser
        expect(page.locator(f'.plot[data-figure="{figure}"]')).to_have_attribute("data-drawn", "true")
        expect(page.locator(f'.plot[data-figure="{figure}"] svg.main-svg').first).to_be_visible()
    shot(page, "06-battery-member")
    page.context.close()


def test_plan_a_regrouping(browser, server, shot) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = _page(browser, server, "mia")
    page.goto("/regroup")
    form = page.locator("#regroup-form")
    form.locator("select[name=chemistry]").select_option("NMC")
    form.locator("input[name=series]").fill("7")
    form.locator("input[name=parallel]").fill("4")
    form.locator("button[type=submit]").click()
    expect(page.locator("#plan-summary h2")).to_contain_text("7S4P: 1 pack(s)")
    expect(page.locator("#packs tr[data-pack]")).to_have_count(1)
    for figure in ("fig-packs", "fig-groups"):
        expect(page.locator(f'.plot[data-figure="{figure}"]')).to_have_attribute("data-drawn", "true")
    page.locator("#packs details summary").first.click()
    shot(page, "07-regroup-plan")
    page.context.close()


def test_a_passport_as_the_public_and_as_a_recycler(browser, server, shot) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    uid = server.uid("SWS-CELL-0002")
    public = _page(browser, server)
    public.goto(f"/passport/{uid}")
    tiers = set(public.locator("tr[data-tier]").evaluate_all("rs => rs.map(r => r.dataset.tier)"))
    assert tiers == {"public"}
    expect(public.locator("footer .tier")).to_have_text("public")
    shot(public, "08-passport-public")
    public.context.close()
    recycler = _page(browser, server, "carl")
    recycler.goto(f"/passport/{uid}")
    tiers = set(recycler.locator("tr[data-tier]").evaluate_all("rs => rs.map(r => r.dataset.tier)"))
    assert tiers == {"public", "legitimate_interest"}
    expect(recycler.locator('tr[data-attribute="performance.remaining_capacity"]')).to_have_count(1)
    expect(recycler.locator("footer .tier")).to_have_text("legitimate interest")
    shot(recycler, "09-passport-recycler")
    recycler.goto("/")  # a recycler reads where every battery is in its life
    expect(recycler.locator("#states .tile")).to_have_count(13)
    recycler.context.close()
