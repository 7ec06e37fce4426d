"""The access matrix: every attribute x every tier, on every read path. An attribute is present
iff the tier may read it (API JSON, web page, Battery Pass export, JSON-LD, search results, the
one-attribute endpoint), and no value of an attribute the tier may not read appears anywhere in
the response body, error bodies included."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from passport_support import (
    TO_GRADED,
    add_orgs,
    dismantle,
    original,
    recycle_in_batch,
    second_life,
    walk,
)

from batteryloop.accounts.viewer import TIERS, Viewer
from batteryloop.api import create_app
from batteryloop.api.routes import passport as passport_api
from batteryloop.passport.attributes import categories, table
from batteryloop.passport.view import SEARCH_FIELDS

_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT")


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def _fingerprints(full: dict[str, Any]) -> dict[str, set[str]]:
    """Per attribute, the strings of its value that no other attribute's value contains."""
    values = {a: _strings(v["value"]) for c in full["categories"].values() for a, v in c.items()}
    out = {}
    for attr_id, strings in values.items():
        others = set().union(*(s for a, s in values.items() if a != attr_id))
        out[attr_id] = {s for s in strings
                        if len(s) >= 12 and not _TIMESTAMP.match(s)
                        and not any(s in o for o in others)}
    return out


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


# what only a dismantled and recycled battery has (the second-life subject is in service)
RECYCLING_ONLY = {"circularity.dismantling_record", "circularity.recovered_materials"}


def _world(database, *, recycle_source: bool = False):  # type: ignore[no-untyped-def]
    """A second-life battery with every attribute (lineage included) but the recycling ones, and
    a client per tier. ``recycle_source``: its source then goes on to waste, is dismantled and
    recycled in a batch, and carries every attribute (its lineage names its successor)."""
    with database.session() as s:
        add_orgs(s)
        source = original(s, "NMC", tag="src")
        walk(s, source, TO_GRADED)
        uid = second_life(s, [source], tag="matrix")
        if recycle_source:
            walk(s, source, ["waste"])
            dismantle(s, source)
            recycle_in_batch(s, [source], "B-ACCESS-MATRIX")
    app = create_app(database)
    tier_box: dict[str, str] = {"tier": "public"}
    # a signed-in reader of each tier (an anonymous one is refused with 401, not 403: see below)
    app.dependency_overrides[passport_api.current_viewer] = lambda: Viewer(
        tier=tier_box["tier"], user="matrix-reader")
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, tier_box, uid, source


@pytest.fixture
def world(db):  # type: ignore[no-untyped-def]
    yield from _world(db)


@pytest.fixture
def sqlite_world(sqlite_db):  # type: ignore[no-untyped-def]
    yield from _world(sqlite_db)


@pytest.fixture
def recycled_world(db):  # type: ignore[no-untyped-def]
    yield from _world(db, recycle_source=True)


def test_every_attribute_for_every_tier_on_every_read_path(world) -> None:  # type: ignore[no-untyped-def]
    client, tier_box, uid, source = world
    tier_box["tier"] = "authority"
    full = client.get(f"/api/v1/passports/{uid}").json()
    present = {a for c in full["categories"].values() for a in c}
    assert present == set(table()) - RECYCLING_ONLY, \
        "the subject must carry every attribute for the test to mean anything"
    prints = _fingerprints(full)
    assert source in prints["general.lineage"] and any("SENT-" in p for p in prints["labels.test_reports"])
    _every_read_path(client, tier_box, uid, present, prints)


def test_a_recycled_passport_for_every_tier_on_every_read_path(recycled_world) -> None:  # type: ignore[no-untyped-def]
    """The archive of a recycled battery carries every attribute, the dismantling record and the
    recovered materials included, and every read path filters it as it filters a live one."""
    client, tier_box, successor, uid = recycled_world
    tier_box["tier"] = "authority"
    full = client.get(f"/api/v1/passports/{uid}").json()
    assert full["ceased"] is True
    present = {a for c in full["categories"].values() for a in c}
    assert present == set(table()), "the subject must carry every attribute for the test to mean anything"
    prints = _fingerprints(full)
    assert "B-ACCESS-MATRIX" in prints["circularity.recovered_materials"]
    assert "module_hardware" in prints["circularity.dismantling_record"]
    assert successor in prints["general.lineage"]
    _every_read_path(client, tier_box, uid, present, prints)
    for attr_id in sorted(RECYCLING_ONLY):  # the one-attribute endpoint, at and below its tier
        for tier in TIERS:
            tier_box["tier"] = tier
            r = client.get(f"/api/v1/passports/{uid}/attributes/{attr_id}")
            assert r.status_code == (200 if Viewer(tier=tier).may_see(table()[attr_id].tier) else 403)
            if r.status_code == 403:
                assert not any(p in r.text for p in prints[attr_id])


def _every_read_path(client, tier_box, uid, present, prints) -> None:  # type: ignore[no-untyped-def]
    """Each attribute the subject has is on every read path iff the tier may read it, and none of
    the values it may not read appears in any response body."""
    for tier in TIERS:
        tier_box["tier"] = tier
        viewer = Viewer(tier=tier)
        api = client.get(f"/api/v1/passports/{uid}")
        page = client.get(f"/passport/{uid}")
        bp = client.get(f"/api/v1/passports/{uid}/export")
        ld = client.get(f"/api/v1/passports/{uid}/export", params={"format": "jsonld"})
        found = client.get("/api/v1/passports", params={"q": uid[9:18]})
        found_page = client.get("/passport", params={"q": uid[9:18]})
        for r in (api, page, bp, ld, found, found_page):
            assert r.status_code == 200, r.text
        shown = {a for c in api.json()["categories"].values() for a in c}
        doc, linked = bp.json(), ld.json()
        items = found.json()["items"]
        assert [i["passport"] for i in items] == [uid]
        in_search = {a for c in items[0]["categories"].values() for a in c}
        bodies = {"api": api.text, "page": page.text, "export": bp.text, "jsonld": ld.text,
                  "search": found.text, "search page": found_page.text}

        for attr in table().values():
            if attr.id not in present:
                continue
            allowed = viewer.may_see(attr.tier)
            where = f"{attr.id} at {tier}"
            assert (attr.id in shown) == allowed, f"API JSON: {where}"
            assert (f'data-attribute="{attr.id}"' in page.text) == allowed, f"web page: {where}"
            assert (attr.id in in_search) == (allowed and attr.id in SEARCH_FIELDS), f"search: {where}"
            assert (f'data-attribute="{attr.id}"' in found_page.text) == (
                allowed and attr.id in SEARCH_FIELDS and attr.id != "general.product_identifier"
            ), f"search page: {where}"
            if attr.path:
                aspect = categories()[attr.category]["aspect"]
                assert (_get(doc[aspect], attr.path) is not None) == allowed, f"export: {where}"
                assert (_get(linked.get(aspect, {}), attr.path) is not None) == allowed, f"JSON-LD: {where}"
            if not allowed:
                for name, body in bodies.items():
                    leaked = [p for p in prints[attr.id] if p in body]
                    assert not leaked, f"{where}: {leaked} in the {name}"
        assert ("wasDerivedFrom" in linked) == viewer.may_see("legitimate_interest")
        assert ("criticalRawMaterials" in linked)
        assert bp.json()["exportInfo"]["accessTier"] == tier


def test_one_attribute_answers_403_above_the_tier_with_nothing_of_the_value(sqlite_world) -> None:  # type: ignore[no-untyped-def]
    """Each attribute at its own tier (200) and at every tier below it (403, a bare problem)."""
    client, tier_box, uid, _ = sqlite_world
    tier_box["tier"] = "authority"
    prints = _fingerprints(client.get(f"/api/v1/passports/{uid}").json())
    for attr in table().values():
        if attr.id in RECYCLING_ONLY:  # see test_a_recycled_passport_...
            continue
        for tier in TIERS[: TIERS.index(attr.tier) + 1]:
            tier_box["tier"] = tier
            r = client.get(f"/api/v1/passports/{uid}/attributes/{attr.id}")
            if tier == attr.tier:
                assert r.status_code == 200 and r.json()["attribute"] == attr.id
                continue
            assert r.status_code == 403, (attr.id, tier, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            body = r.json()
            assert set(body) == {"type", "title", "status", "detail", "instance"}
            assert not any(p in r.text for p in prints[attr.id])


def test_forbidden_does_not_depend_on_whether_a_value_exists(db) -> None:  # type: ignore[no-untyped-def]
    """A restricted attribute with and without a value: the same refusal (existence is not
    disclosed), 401 to an anonymous reader (sign in); an empty attribute the tier may read is a
    404."""
    with db.session() as s:
        add_orgs(s)
        full = original(s, "LFP", tag="full")
        from passport_support import register

        bare = register(s, "LFP")
    with TestClient(create_app(db), raise_server_exceptions=False) as client:
        answers = []
        for uid in (full, bare):
            r = client.get(f"/api/v1/passports/{uid}/attributes/labels.test_reports")
            answers.append((r.status_code, r.json()["detail"]))
        assert answers[0] == answers[1] and answers[0][0] == 401
        assert client.get(f"/api/v1/passports/{bare}/attributes/carbon.study").status_code == 404
        assert client.get(f"/api/v1/passports/{bare}/attributes/no.such").status_code == 404


def test_search_refuses_filters_on_attributes_above_the_tier(world) -> None:  # type: ignore[no-untyped-def]
    client, tier_box, _, _ = world
    tier_box["tier"] = "public"
    r = client.get("/api/v1/passports", params={"status": "repurposed"})
    assert r.status_code == 403 and "repurposed" not in json.dumps(r.json()).replace(
        r.json()["instance"], "")
    assert client.get("/passport", params={"q": "x"}).status_code == 200
    assert client.get("/api/v1/passports", params={"category": "ev"}).json()["total"] == 2
    tier_box["tier"] = "legitimate_interest"
    found = client.get("/api/v1/passports", params={"status": "repurposed"}).json()
    assert found["total"] == 2  # the source became repurposed too
    assert client.get("/api/v1/passports", params={"status": "waste"}).json()["total"] == 0
