"""The stage pages over HTTP, on both databases: what each shows, to whom, and that nothing they
load comes from outside the server."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib.resources import files

import pytest
from sqlalchemy import event, func, select, text

from batteryloop.grading.service import latest_grade
from batteryloop.registry.lifecycle import lifecycle
from batteryloop.registry.schemas import BatteryIn, SuccessorIn
from batteryloop.registry.service import Registry
from batteryloop.store.models import Battery, Event

PAGES = ["/", "/batteries", "/batteries?kind=cell&state=graded", "/intake", "/regroup",
         "/regroup?run=true&chemistry=NMC&series=3&parallel=4", "/passport"]


class _Refs(HTMLParser):
    """Every URL a page makes the browser load: script src, link href, img/iframe src."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "embed") and a.get("src"):
            self.loads.append(a["src"] or "")
        if tag == "link" and a.get("href"):
            self.loads.append(a["href"] or "")


def _loads(html: str) -> list[str]:
    parser = _Refs()
    parser.feed(html)
    return parser.loads


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-uid="([^"]+)"', html)


def _uid_of(site, ref: str) -> str:  # type: ignore[no-untyped-def]
    with site.db.session() as s:
        return Registry(s).battery(ref).uid


def _events(site) -> int:  # type: ignore[no-untyped-def]
    with site.db.session() as s:
        return s.scalar(select(func.count()).select_from(Event)) or 0


# --- every page -----------------------------------------------------------------------------------
@pytest.mark.parametrize("user", [None, "rita"])
def test_pages_load_only_from_this_server(site, user) -> None:  # type: ignore[no-untyped-def]
    uid = _uid_of(site, "SWS-CELL-0001")
    for path in [*PAGES, f"/batteries/{uid}", f"/passport/{uid}"]:
        r = site.get(path, as_user=user)
        assert r.status_code == 200, (path, r.text[:300])
        loads = _loads(r.text)
        assert "/static/app.css" in loads
        external = [u for u in loads if re.match(r"^(https?:)?//", u)]
        assert external == [], (path, external)
    plotted = site.get("/regroup?run=true&chemistry=NMC&series=3&parallel=4", as_user=user)
    if user:  # a page with plots loads plotly.js from the server, the package's own bundle
        assert "/static/plotly.min.js" in _loads(plotted.text)


def test_plotly_is_the_installed_packages_bundle_with_cache_headers(site) -> None:  # type: ignore[no-untyped-def]
    bundled = (files("plotly") / "package_data" / "plotly.min.js").read_bytes()
    r = site.get("/static/plotly.min.js")
    assert r.status_code == 200 and r.content == bundled
    assert r.headers["content-type"].startswith("text/javascript")
    assert "max-age=" in r.headers["cache-control"]
    assert r.headers["content-encoding"] == "gzip"  # the test client accepts gzip
    assert int(r.headers["content-length"]) < len(bundled) / 2
    again = site.client.get("/static/plotly.min.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert site.get("/static/app.js").text.count("Plotly.newPlot") == 1
    assert site.get("/static/../routes.py").status_code == 404
    assert site.get("/static/secret.txt").status_code == 404


# --- the loop -------------------------------------------------------------------------------------
def test_landing_counts_every_lifecycle_state(site) -> None:  # type: ignore[no-untyped-def]
    html = site.get("/", as_user="mia").text  # a repurposer: reads every battery's state
    with site.db.session() as s:
        expected = {state: n for state, n in
                    s.execute(select(Battery.state, func.count()).group_by(Battery.state))}
    shown = dict(re.findall(r'data-state="([a-z_]+)"[^>]*>\s*<div class="n">(\d+)</div>', html))
    assert list(shown) == list(lifecycle().states)  # every state, in the lifecycle's order
    assert {k: int(v) for k, v in shown.items() if int(v)} == expected
    # the seed: PACKS packs and 2 modules each made, GRADED_CELLS cells graded, WAITING collected
    assert int(shown["graded"]) >= 14 and int(shown["collected"]) == 2
    # the state is Annex XIII point 4 information: the public sees how many, not where
    public = site.get("/").text
    assert 'id="sign-in-notice"' in public and 'data-state="' not in public
    assert f"{sum(expected.values())} batteries in the registry" in public


# --- batteries ------------------------------------------------------------------------------------
def test_find_a_battery_by_any_identifier(site) -> None:  # type: ignore[no-untyped-def]
    with site.db.session() as s:
        pack = s.scalars(select(Battery).where(Battery.kind == "pack").order_by(Battery.id)).first()
    assert pack is not None
    by_serial = _rows(site.get("/batteries", params={"q": "SWS-CELL-0007"}).text)
    assert by_serial == [_uid_of(site, "SWS-CELL-0007")]
    assert _rows(site.get("/batteries", params={"q": pack.code}).text) == [pack.uid]
    assert _rows(site.get("/batteries", params={"q": pack.code.lower()}).text) == [pack.uid]
    assert _rows(site.get("/batteries", params={"q": pack.uid[9:22]}).text) == [pack.uid]
    assert "No battery matches" in site.get("/batteries", params={"q": "NO-SUCH-THING"}).text
    # a serial is not public: part of one matches only for a reader who may read serials; the
    # whole of one still finds its battery (as /batteries/{ref} does), without showing it
    assert _rows(site.get("/batteries", params={"q": "SWS-CELL-000"}).text) == []
    assert len(_rows(site.get("/batteries", params={"q": "SWS-CELL-000"}, as_user="mia").text)) == 9
    found = site.get("/batteries", params={"q": "SWS-CELL-0007"}).text
    assert found.count("SWS-CELL-0007") == 1  # the search box's own value, not the row


def test_filters_and_pages(site, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from batteryloop.web.pages import batteries

    r = site.get("/batteries", params={"kind": "cell", "state": "graded"}, as_user="mia")
    assert 'id="total">14 batteries' in r.text and len(_rows(r.text)) == 14
    assert len(_rows(site.get("/batteries", params={"kind": "cell", "state": "collected"},
                              as_user="mia").text)) == 2
    monkeypatch.setattr(batteries, "PAGE_SIZE", 20)
    everything = site.get("/batteries")
    with site.db.session() as s:
        total = s.scalar(select(func.count()).select_from(Battery))
    assert total == 10 + 20 + 16  # packs, their modules, cells
    assert f'id="total">{total} batteries, page 1 of 3' in everything.text
    pages = [_rows(site.get(f"/batteries?page={n}").text) for n in (1, 2, 3)]
    assert [len(p) for p in pages] == [20, 20, 6]
    assert len(set().union(*pages)) == total  # every battery once
    assert 'rel="next" href="/batteries?page=2"' in everything.text
    monkeypatch.setattr(batteries, "PAGE_SIZE", 15)
    assert 'rel="next" href="/batteries?kind=module&amp;page=2"' in \
        site.get("/batteries?kind=module").text  # 20 modules: a filter keeps to its pages
    assert site.get("/batteries", params={"state": "nowhere"}).status_code == 422


def test_grade_filter_and_column_for_members_only(site) -> None:  # type: ignore[no-untyped-def]
    public = site.get("/batteries", params={"grade": "A", "kind": "cell"})
    assert len(_rows(public.text)) == 16  # the filter is not applied for the public...
    assert "<th>grade</th>" not in public.text  # ...nor is any grade shown
    assert 'id="not-applied"' in public.text and "<th>state</th>" not in public.text
    member = site.get("/batteries", params={"grade": "A", "kind": "cell"}, as_user="mia")
    with site.db.session() as s:
        cells = s.scalars(select(Battery.uid).where(Battery.kind == "cell")).all()
        expected = sorted(u for u in cells if (g := latest_grade(s, u)) and g["grade"] == "A")
    assert expected and sorted(_rows(member.text)) == expected
    assert member.text.count('<span class="badge grade">A</span>') == len(expected)


def test_the_list_costs_the_same_queries_for_any_page_size(site, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from batteryloop.web.pages import batteries

    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(site.db.engine, "before_cursor_execute", count)
    try:
        sizes = {}
        for size in (5, 15):  # graded cells with serials on both: the same reads to audit
            monkeypatch.setattr(batteries, "PAGE_SIZE", size)
            statements.clear()
            r = site.get("/batteries", params={"kind": "cell"}, as_user="mia")
            assert len(_rows(r.text)) == size
            sizes[size] = len(statements)
    finally:
        event.remove(site.db.engine, "before_cursor_execute", count)
    assert sizes[5] == sizes[15]


# --- one battery ----------------------------------------------------------------------------------
def test_battery_page_public_and_member(site) -> None:  # type: ignore[no-untyped-def]
    uid = _uid_of(site, "SWS-CELL-0003")
    public = site.get(f"/batteries/{uid}").text
    assert uid in public and 'id="lineage"' in public and 'id="passport"' in public
    assert 'id="ledger"' not in public and 'id="sign-in-notice"' in public
    assert "Custody" not in public and "SWS-CELL-0003" not in public  # the serial is not public
    assert 'id="state"' not in public and 'id="grade"' not in public
    member = site.get(f"/batteries/{uid}", as_user="mia").text
    assert "SWS-CELL-0003" in member and "Custody" in member
    with site.db.session() as s:
        history = Registry(s).history(uid)
        graded = latest_grade(s, uid)
    assert 'data-verified="true"' in member
    assert re.findall(r'<tr data-seq="(\d+)"', member) == [str(e["seq"]) for e in history]
    assert f'data-grade="{graded["grade"]}"' in member and graded["reasons"][0] in \
        member.replace("&#39;", "'").replace("&gt;", ">").replace("&lt;", "<")
    assert 'data-parameter="capacity_soh"' in member and 'id="fig-health"' in member
    assert f"/batteries/{uid}/certificate.pdf" in member


def test_a_broken_chain_shows_broken(site) -> None:  # type: ignore[no-untyped-def]
    if site.db.dialect != "sqlite":
        pytest.skip("tampering is shown once, on SQLite; verify itself is tested on both")
    uid = _uid_of(site, "SWS-CELL-0004")
    with site.db.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER events_no_update"))
        battery_id = conn.execute(select(Battery.id).where(Battery.uid == uid)).scalar_one()
        conn.execute(text("UPDATE events SET payload = replace(payload, :old, :new) "
                          "WHERE battery_id = :b AND seq = 2"),
                     {"old": '"to":"in_service"', "new": '"to":"in_service","x":1', "b": battery_id})
    html = site.get(f"/batteries/{uid}", as_user="mia").text
    assert 'data-verified="false"' in html and "edited" in html
    other = site.get(f"/batteries/{_uid_of(site, 'SWS-CELL-0005')}", as_user="mia").text
    assert 'data-verified="true"' in other  # one battery's breach is not another's


def test_lineage_both_ways(site) -> None:  # type: ignore[no-untyped-def]
    with site.db.session() as s:
        reg = Registry(s)
        a, b = reg.battery("SWS-CELL-0010").uid, reg.battery("SWS-CELL-0011").uid
        child = reg.create_successor(SuccessorIn(
            sources=[a, b], relation="repurposed", actor="Second Wind Storage",
            battery=BatteryIn(kind="module", chemistry="NMC", identifiers={"serial": "SWS-MOD-1"}))).uid
        grandchild = reg.create_successor(SuccessorIn(
            sources=[child], relation="repurposed", actor="Second Wind Storage",
            battery=BatteryIn(kind="pack", chemistry="NMC", identifiers={"serial": "SWS-PACK-1"}))).uid

    def nodes(uid: str, user: str | None = "mia") -> list[str]:
        html = site.get(f"/batteries/{uid}", as_user=user).text
        return re.findall(r'<a href="/batteries/[^"]+" data-uid="([^"]+)">', html)

    assert nodes(child, None) == []  # lineage is Annex XIII 2 information, not public
    assert 'id="lineage-withheld"' in site.get(f"/batteries/{child}").text

    assert sorted(nodes(child)) == sorted([child, a, b, grandchild])
    assert sorted(nodes(a)) == sorted([a, child, grandchild])  # successors, two generations on
    assert sorted(nodes(grandchild)) == sorted([grandchild, child, a, b])  # sources, two back


def test_certificate_downloads_for_members(site) -> None:  # type: ignore[no-untyped-def]
    uid = _uid_of(site, "SWS-CELL-0002")
    pdf = site.get(f"/batteries/{uid}/certificate.pdf", as_user="carl")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    cert = site.get(f"/batteries/{uid}/certificate.json", as_user="carl").json()
    with site.db.session() as s:
        graded = latest_grade(s, uid)
    assert cert["battery"]["uid"] == uid and cert["grading"]["grade"] == graded["grade"]
    assert re.fullmatch(r"[0-9a-f]{64}", pdf.headers["x-certificate-sha256"])
    assert site.get(f"/batteries/{uid}/certificate.pdf").status_code == 401


def test_unknown_battery_is_a_page_not_a_crash(site) -> None:  # type: ignore[no-untyped-def]
    r = site.get("/batteries/NO-SUCH-BATTERY")
    assert r.status_code == 404 and "no battery &#39;NO-SUCH-BATTERY&#39;" in r.text
    assert r.headers["content-type"].startswith("text/html")


# --- regrouping -----------------------------------------------------------------------------------
def test_regroup_plan_is_a_dry_run_of_the_service(site) -> None:  # type: ignore[no-untyped-def]
    from batteryloop.grading.regroup import service

    before = _events(site)
    r = site.get("/regroup", params={"run": "true", "chemistry": "NMC", "state": "graded",
                                     "kind": "cell", "series": 3, "parallel": 4}, as_user="mia")
    assert r.status_code == 200, r.text[-500:]
    assert _events(site) == before  # nothing recorded
    with site.db.session() as s:
        uids = list(s.scalars(select(Battery.uid).where(Battery.kind == "cell",
                                                        Battery.state == "graded")
                              .order_by(Battery.id)))
        plan = service.plan(s, uids, "3S4P")
    assert len(uids) == 14 and plan["summary"]["packs"] == 1  # 14 cells fill one 12-cell pack
    assert plan["sha256"] in r.text
    assert re.findall(r'<tr data-pack="(\d+)">', r.text) == ["1"]
    assert f'{plan["summary"]["gap_max_pct"]:.3f} %' in r.text
    assert 'id="fig-packs"' in r.text and 'id="fig-groups"' in r.text
    two = site.get("/regroup", params={"run": "true", "chemistry": "NMC", "series": 3,
                                       "parallel": 2}, as_user="mia")
    assert re.findall(r'<tr data-pack="(\d+)">', two.text) == ["1", "2"]  # 14 cells, 6 a pack


def test_regroup_needs_sign_in_and_says_why_it_cannot(site) -> None:  # type: ignore[no-untyped-def]
    public = site.get("/regroup", params={"run": "true", "chemistry": "NMC"})
    assert 'id="sign-in-notice"' in public.text and 'id="plan-summary"' not in public.text
    too_big = site.get("/regroup", params={"run": "true", "chemistry": "NMC", "series": 7,
                                           "parallel": 4}, as_user="mia")
    assert too_big.status_code == 422 and "cannot fill one 7S4P pack" in too_big.text
    none = site.get("/regroup", params={"run": "true", "state": "recycled"}, as_user="mia")
    assert none.status_code == 422 and "no battery matching" in none.text
