"""The carbon page over HTTP: the footprints, avoided emissions and claim check it shows are the
carbon stage's figures, its forms take another mix and another claim, bad input is a page naming
the field, and nothing it loads comes from outside the server."""

from __future__ import annotations

import html as htmlmod
import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from batteryloop.api import create_app
from batteryloop.carbon import avoided
from batteryloop.carbon.footprint import STAGES, footprint
from batteryloop.recycling import composition
from batteryloop.store import Database

from .test_pages import _loads


@pytest.fixture
def client(db: Database) -> Iterator[TestClient]:
    """The page needs no records: a migrated, empty database and no one signed in."""
    with TestClient(create_app(db), raise_server_exceptions=False) as c:
        yield c


def _figure(page: str, figure_id: str) -> dict:  # type: ignore[type-arg]
    found = re.search(rf'<script type="application/json" id="{figure_id}">(.*?)</script>', page, re.S)
    assert found, figure_id
    return json.loads(found[1].replace("<\\/", "</"))


def _cells(page: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table class="list" id="{table_id}">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert body, table_id
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body[1], re.S)
    return [[htmlmod.unescape(re.sub(r"<[^>]+>", "", c)).strip()
             for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)] for r in rows]


def test_the_footprint_of_every_chemistry_on_three_mixes_by_stage(client: TestClient) -> None:
    r = client.get("/carbon")
    assert r.status_code == 200
    page = r.text
    assert '<a href="/carbon">Carbon</a>' in page  # in the nav bar
    assert "/static/plotly.min.js" in _loads(page) and "/static/app.js" in _loads(page)
    assert all(u.startswith("/") and not u.startswith("//") for u in _loads(page))
    chemistries = composition.chemistries()
    rows = _cells(page, "footprints")
    # the carbon stage's default mix (CN), then the page's two contrasting ones
    assert [(c[0], c[1]) for c in rows] == [(g, ch) for g in ("CN", "EU", "US") for ch in chemistries]
    fig = _figure(page, "fig-footprint")
    stacked = [t for t in fig["data"] if t["type"] == "bar"]
    assert fig["layout"]["barmode"] == "relative" and len(stacked) == len(STAGES) == 4
    assert fig["data"][-1]["name"] == "net total"
    for i, (grid, chem) in enumerate((g, ch) for g in ("CN", "EU", "US") for ch in chemistries):
        assert fig["data"][0]["x"][0][i] == grid and fig["data"][0]["x"][1][i] == chem
        stages = [t["y"][i] for t in stacked]
        assert sum(stages) == pytest.approx(fig["data"][-1]["y"][i])  # the stages add up
        assert stages[3] < 0  # end of life: the recycling credit
    # the figures are the carbon stage's: NMC811 on the EU mix, every stage
    i = [(g, ch) for g in ("CN", "EU", "US") for ch in chemistries].index(("EU", "NMC811"))
    fp = footprint("NMC811", grid="EU")
    assert [t["y"][i] for t in stacked] == pytest.approx([fp.per_kwh_capacity[s] for s in STAGES])
    row = rows[i]
    assert float(row[7]) == pytest.approx(fp.total, abs=0.05)
    assert float(row[8]) == pytest.approx(fp.cradle_to_gate, abs=0.05)
    # a cleaner mix makes a smaller footprint, chemistry by chemistry
    cn = {ch: fig["data"][-1]["y"][n] for n, ch in enumerate(chemistries)}
    eu = {ch: fig["data"][-1]["y"][len(chemistries) + n] for n, ch in enumerate(chemistries)}
    assert all(eu[ch] < cn[ch] for ch in chemistries)


def test_avoided_emissions_of_recycling_and_reuse(client: TestClient) -> None:
    page = client.get("/carbon").text
    rows = {c[0]: c for c in _cells(page, "avoided-table")}
    assert set(rows) == set(composition.chemistries())
    rec = avoided.recycling_avoided("NMC811", grid="CN")
    reuse = avoided.reuse_avoided("NMC811", grid="CN")
    assert float(rows["NMC811"][2]) == pytest.approx(rec["substitution"]["net_avoided"], abs=0.05)
    assert float(rows["NMC811"][4]) == pytest.approx(rec["cff"]["net_avoided"], abs=0.05)
    assert float(rows["NMC811"][6]) == pytest.approx(reuse["net_avoided"], abs=0.05)
    for c in rows.values():  # the CFF credits (1 - A) of what substitution counts
        assert 0 < float(c[4]) < float(c[2])
    fig = _figure(page, "fig-avoided")
    assert [t["name"] for t in fig["data"]] == ["recycling, substitution (A = 0)",
                                                "recycling, Circular Footprint Formula",
                                                "second life (reuse)"]


def test_the_claim_check_by_default_and_for_another_claim(client: TestClient) -> None:
    page = client.get("/carbon").text
    # 0.19 t at 24 %: 190 / 0.24 = 791.7 kg CO2e/kWh, far above the published 41-109
    assert re.search(r'id="implied">792<', page)
    assert 'data-verdict="inconsistent"' in page
    assert re.search(r'id="published-low">41<', page) and re.search(r'id="published-high">109<', page)
    flags = set(re.findall(r'data-flag="([a-z_]+)"', page))
    assert flags == {"implied_baseline_above_published", "saving_exceeds_footprint",
                     "saving_above_model"}
    fig = _figure(page, "fig-claim")
    implied = next(t for t in fig["data"] if t["name"].startswith("implied"))
    assert implied["x"] == pytest.approx([190 / 0.24, 190 / 0.24])

    # 20 kg at 24 %: 83 kg CO2e/kWh, inside the published ranges, below what the engine saves
    other = client.get("/carbon", params={"saving_t": "0.02", "share_pct": "24"}).text
    assert re.search(r'id="implied">83<', other) and 'data-verdict="consistent"' in other
    assert 'data-flag="' not in other
    assert 'name="saving_t" value="0.02"' in other  # the form keeps what was asked


def test_another_mix_and_bad_input(client: TestClient) -> None:
    page = client.get("/carbon", params={"grid": ["FR", "PL"]}).text
    grids = {c[0] for c in _cells(page, "footprints")}
    assert grids == {"FR", "PL"}
    fr = {c[1]: float(c[7]) for c in _cells(page, "footprints") if c[0] == "FR"}
    pl = {c[1]: float(c[7]) for c in _cells(page, "footprints") if c[0] == "PL"}
    assert all(fr[ch] < pl[ch] for ch in fr)  # 0.056 against 0.662 kg CO2e/kWh
    assert "Avoided emissions (FR electricity)" in page
    cases = [({"grid": "XX"}, 404, "no electricity mix 'XX'"),
             ({"share_pct": "lots"}, 422, "'lots' is not a number"),
             ({"share_pct": "0"}, 422, "above 0 %"),
             ({"saving_t": "-1"}, 422, "above 0 t CO2e per kWh"),
             ({"grid": ["CN", "EU", "US", "FR", "PL"]}, 422, "at most 4")]
    for params, status, message in cases:
        r = client.get("/carbon", params=params)
        assert r.status_code == status, params
        assert message in htmlmod.unescape(r.text), params
