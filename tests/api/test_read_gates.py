"""Every GET route the application serves, walked as every kind of reader: no value a reader's
Annex XIII tier keeps from it appears in any body it gets, error bodies included.

The subject is a repurposed battery and its source (tests/passport/passport_support.py: every
passport attribute filled, restricted ones with "SENT-" sentinels), with identifiers, an
inspection, a grade, health assessments and a stored tester file. What is restricted is taken
from the data and the Annex XIII table, not from the gates under test: the values of every
passport attribute above the public tier, every string of the battery's ledger (hashes, payloads)
and its identifiers, less what is public anyway (identities, organisations, policies, the public
attributes of every battery).

Readers: anonymous; a signed-in stranger (a vehicle maker with nothing to do with either
battery); a recycler's token capped at the public tier; the maker of the source (its own battery,
not the successor); the vehicle maker that holds the successor; a recycler (legitimate interest);
a market-surveillance authority.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from batteryloop.accounts.service import Accounts
from batteryloop.accounts.viewer import TIERS
from batteryloop.api import create_app
from batteryloop.grading import policy as policies
from batteryloop.passport import view
from batteryloop.passport.attributes import table
from batteryloop.registry.schemas import OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.store.models import Battery, Identifier, Organisation

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "passport"))
from passport_support import TO_GRADED, add_orgs, original, second_life  # noqa: E402

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[T ]")
_HEX = re.compile(r"[0-9a-f]{32}")
SOH_LOWER, SOH_UPPER = "77.0625", "79.1875"
SOURCE_VIN = "SENTV1N0SRC000001"  # ISO 3779 shape: 17 characters, no I, O, Q
CHILD_CODE = "SENT-SL-MATRIX-0001"
LEGIT = "legitimate_interest"


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def _tester_file(folder: Path) -> Path:
    """Two one-hour charge/discharge cycles at 1 A, as a BDF CSV (built, not copied)."""
    t = np.arange(0, 4 * 3600, 10.0)
    phase = (t // 3600).astype(int)
    frac = (t % 3600) / 3600
    df = pl.DataFrame({
        "Test Time / s": t,
        "Voltage / V": np.where(phase % 2 == 0, 3.0 + 1.1 * frac, 4.1 - 1.1 * frac),
        "Current / A": np.where(phase % 2 == 0, 1.0, -1.0),
        "Cycle Count / 1": phase // 2 + 1,
    })
    path = folder / "SENT-matrix-cells.bdf.csv"
    df.write_csv(path)
    return path


@dataclass
class World:
    client: TestClient
    source: str
    child: str
    sha256: str
    headers: dict[str, dict[str, str]]
    # battery uid -> tier -> strings a reader below that tier must never get
    secret: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    def tier(self, role: str, uid: str) -> str:
        """What each reader should read each battery at (the expectation, written out)."""
        if role == "auditor":
            return "authority"
        if role == "recycler" or (role == "maker" and uid == self.source) or (
                role == "holder" and uid == self.child):
            return LEGIT
        return "public"


ROLES = ("anonymous", "stranger", "capped", "maker", "holder", "recycler", "auditor")


def _build(db, tmp: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from batteryloop import grading
    from batteryloop.cycling import storage
    from batteryloop.cycling.ingest import parse
    from batteryloop.grading.inspection import InspectionIn

    with db.session() as s:
        add_orgs(s)
        reg = Registry(s)
        for name, roles in (("MSA", ["auditor"]), ("Stranger", ["vehicle_maker"])):
            reg.add_organisation(OrganisationIn(name=name, roles=roles))
        source = original(s, "NMC", tag="src")
        reg.add_identifier(source, "vin", SOURCE_VIN, actor="Maker")
        for state in TO_GRADED[:3]:
            reg.change_status(source, state, actor="Maker")
        grading.record_inspection(s, source, InspectionIn(
            inspector="Reuse", bms_codes=["SENT-BMS-P0A80"], notes="SENT-inspection-note source"))
        grading.grade(s, source, policy="stationary-storage", actor="Reuse", health=[
            {"parameter": "capacity_soh", "value": 78.125, "lower": float(SOH_LOWER),
             "upper": float(SOH_UPPER)}])
        child = second_life(s, [source], tag="matrix")
        reg.add_identifier(child, "second_life", CHILD_CODE, actor="Reuse")
        reg.transfer(child, custody_to="Carco", actor="Reuse", reason="SENT-handover-note child")
        accounts = Accounts(s)
        users = {"stranger": "Stranger", "capped": "Recycler", "maker": "Maker",
                 "holder": "Carco", "recycler": "Recycler", "auditor": "MSA"}
        headers: dict[str, dict[str, str]] = {"anonymous": {}}
        for role, org in users.items():
            accounts.add_user(f"{role}-reader", org, ["reader"])
            _, token = accounts.create_token(f"{role}-reader",
                                             tier="public" if role == "capped" else None)
            headers[role] = {"Authorization": f"Bearer {token}"}
    df, meta, summary = parse(_tester_file(tmp))
    stored = storage.store(db, df, meta, battery=child, actor="Reuse", summary=summary)
    return {"source": source, "child": child, "sha256": stored.sha256, "headers": headers}


def _secrets(db, source: str, child: str) -> dict[str, dict[str, set[str]]]:  # type: ignore[no-untyped-def]
    """Per battery and tier, the strings only that tier may read, from the data: restricted
    passport attributes, the ledger, the identifiers, less everything public anyway."""
    out: dict[str, dict[str, set[str]]] = {}
    public: set[str] = set()
    with db.session() as s:
        reg = Registry(s)
        for b in s.query(Battery):
            public |= {b.uid, b.code or "", b.kind}
        for o in s.query(Organisation):
            public |= {o.uid, o.name}
        for p in policies.available():
            public |= _strings(policies.load(p["name"]).as_dict())
        for uid in (source, child):
            passport = view.build(s, reg.battery(uid))
            by_tier: dict[str, set[str]] = {t: set() for t in TIERS}
            for attr_id, value in passport.values.items():
                by_tier[table()[attr_id].tier] |= _strings(value.value)
            public |= by_tier["public"]
            # of the ledger: what is this battery's alone (hashes and digests, the sentinels of
            # reports, inspections and hand-overs), not the vocabulary every battery's events share
            ledger = {t for t in _strings(reg.history(uid)) if _HEX.search(t) or "SENT" in t}
            legit = by_tier[LEGIT] | ledger | set(s.scalars(select(Identifier.value).where(
                Identifier.battery_id == reg.battery(uid).id)))
            if uid == source:  # the grade's SOH interval (numbers, written as JSON writes them)
                legit |= {SOH_LOWER, SOH_UPPER}
            out[uid] = {LEGIT: legit, "authority": by_tier["authority"]}
    public |= {a.id for a in table().values()} | {a.label for a in table().values()}
    counts: dict[str, int] = {}
    for uid in out:
        for tier in out[uid]:
            for text in out[uid][tier]:
                counts[text] = counts.get(text, 0) + 1
    for uid in out:
        for tier in out[uid]:
            out[uid][tier] = {
                t for t in out[uid][tier]
                if (len(t) >= 12 or t in (SOH_LOWER, SOH_UPPER))
                and not _TIMESTAMP.match(t) and counts[t] == 1
                and not any(t in p for p in public)
            }
    return out


@pytest.fixture
def world(db, data_dir, tmp_path, monkeypatch) -> Iterator[World]:  # type: ignore[no-untyped-def]
    built = _build(db, tmp_path)
    secret = _secrets(db, built["source"], built["child"])
    with TestClient(create_app(db), raise_server_exceptions=False) as client:
        yield World(client=client, secret=secret, **built)


def _get_routes(client: TestClient) -> list[str]:
    """The path of every GET route the application serves: the API's and the pages' (those not in
    the OpenAPI schema too), however deep the routers are included."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before included routers became contexts: routes are flat
        routes: Any = client.app.routes  # type: ignore[attr-defined]
    else:
        routes = iter_route_contexts(client.app.routes)  # type: ignore[attr-defined]
    return sorted({r.path for r in routes
                   if r.path and "GET" in (getattr(r, "methods", None) or ())})


def _fill(route: str, w: World) -> list[tuple[str, str | None]]:
    """Concrete paths for a route, each with the battery it is about (None: none in particular)."""
    params = re.findall(r"{([^}:]+)(?::[^}]*)?}", route)
    if not params:
        return [(route, None)]
    out = []
    for uid in (w.source, w.child) if "ref" in params else (w.child,):
        values = {"ref": uid, "sha256": w.sha256, "name": "stationary-storage",
                  "attr_id": "general.battery_status", "chemistry": "NMC", "version": "1"}
        path = route
        for p in params:
            path = re.sub(r"{" + p + r"(?::[^}]*)?}", values.get(p, uid), path)
        out.append((path, uid))
    if "attr_id" in params:
        out += [(p.replace("general.battery_status", attr), about) for p, about in out
                for attr in ("labels.test_reports", "performance.remaining_capacity")]
    return out


def _walk(w: World, api: bool) -> list[tuple[str, str, Any]]:
    """(role, path, response) for every GET route of the API (api) or of the pages x reader."""
    seen = []
    for route in _get_routes(w.client):
        if route.startswith("/api/") != api:
            continue
        for path, _ in _fill(route, w):
            for role in ROLES:
                seen.append((role, path, w.client.get(path, headers=w.headers[role])))
    return seen


def _leaks(w: World, seen: list[tuple[str, str, Any]]) -> tuple[list[str], dict[str, set[str]]]:
    """What each reader got above its tier; and what the readers entitled to them did get."""
    reached: dict[str, set[str]] = {uid: set() for uid in (w.source, w.child)}
    leaks: list[str] = []
    for role, path, r in seen:
        where = f"{role} GET {path} -> {r.status_code}"
        assert r.status_code < 500, where
        if r.status_code in (401, 403) and "json" in r.headers.get("content-type", ""):
            assert set(r.json()) == PROBLEM_KEYS, where
        body = r.text
        for sent in path.split("/"):  # what the caller sent itself (e.g. a test's sha256)
            body = body.replace(sent, "") if len(sent) >= 12 else body
        for uid in (w.source, w.child):
            may = w.tier(role, uid)
            for tier, strings in w.secret[uid].items():
                found = {s for s in strings if s in body}
                if TIERS.index(may) < TIERS.index(tier):
                    if found:
                        leaks.append(f"{where}: {sorted(found)[:3]} of {uid[-12:]} ({tier})")
                elif role in ("auditor", "recycler", "maker", "holder"):
                    reached[uid] |= found
    return leaks, reached


def test_no_reader_gets_a_value_above_its_tier_on_any_api_route(world: World) -> None:
    w = world
    for uid in (w.source, w.child):  # the subject carries something at every tier
        assert len(w.secret[uid][LEGIT]) > 20 and w.secret[uid]["authority"]
    assert SOURCE_VIN in w.secret[w.source][LEGIT] and CHILD_CODE in w.secret[w.child][LEGIT]
    assert w.sha256 in w.secret[w.child][LEGIT]  # the tested event names the stored file
    seen = _walk(w, api=True)
    assert len({path for _, path, _ in seen}) >= 40
    leaks, reached = _leaks(w, seen)
    assert not leaks, f"{len(leaks)} leak(s):\n" + "\n".join(leaks)
    # and the walk did reach those values where the tier allows: the test can fail
    for uid in (w.source, w.child):
        assert len(reached[uid]) > len(w.secret[uid][LEGIT]) // 2


def test_no_reader_gets_a_value_above_its_tier_on_any_page(world: World) -> None:
    """The same for the web pages (not in the OpenAPI schema): every GET route outside /api/."""
    w = world
    seen = _walk(w, api=False)
    assert {"/passport", "/login"} <= {path for _, path, _ in seen}
    leaks, _ = _leaks(w, seen)
    assert not leaks, f"{len(leaks)} leak(s):\n" + "\n".join(leaks)


RECORDS = {  # read paths with no public part: 401 anonymous, 403 signed in below the tier
    "/api/v1/batteries/{ref}/history", "/api/v1/batteries/{ref}/lineage",
    "/api/v1/batteries/{ref}/health", "/api/v1/batteries/{ref}/inspections",
    "/api/v1/batteries/{ref}/grade", "/api/v1/batteries/{ref}/certificate",
    "/api/v1/batteries/{ref}/certificate.pdf", "/api/v1/batteries/{ref}/tests",
}


def test_records_with_no_public_part_answer_401_or_403_by_reader(world: World) -> None:
    w = world
    for template in RECORDS:
        for uid in (w.source, w.child):
            path = template.replace("{ref}", uid)
            for role in ROLES:
                r = w.client.get(path, headers=w.headers[role])
                allowed = w.tier(role, uid) != "public"
                expected = {True: {200, 404}, False: {401 if role == "anonymous" else 403}}[allowed]
                assert r.status_code in expected, (role, path, r.status_code, r.text[:200])
    # a stored test: the same for a test that exists and one that does not, below the tier
    for role, status in (("anonymous", 401), ("stranger", 403), ("maker", 403)):
        for sha in (w.sha256, "ab" * 32, w.sha256[:10]):
            r = w.client.get(f"/api/v1/tests/{sha}", headers=w.headers[role])
            assert r.status_code == status and set(r.json()) == PROBLEM_KEYS, (role, sha)
    for role in ("holder", "recycler", "auditor"):
        assert w.client.get(f"/api/v1/tests/{w.sha256}/cycles",
                            headers=w.headers[role]).status_code == 200
    # the ledger's integrity report and anchor, and others' traceability reports: authority
    for path in ("/api/v1/verify", "/api/v1/anchor"):
        assert w.client.get(path).status_code == 401
        for role in ("stranger", "maker", "recycler"):
            assert w.client.get(path, headers=w.headers[role]).status_code == 403
        assert w.client.get(path, headers=w.headers["auditor"]).status_code == 200


PUBLIC_FIELDS = {  # what the public passport shows of a battery's registry record (Annex XIII 1)
    "uid", "code", "kind", "chemistry", "rated_capacity_ah", "rated_energy_wh",
    "nominal_voltage_v", "mass_kg", "manufacturer", "manufactured_on", "manufacturing_place",
    "read_only", "responsible",
}


def test_the_registry_record_shows_each_reader_its_fields(world: World) -> None:
    w = world
    anonymous = w.client.get(f"/api/v1/batteries/{w.child}").json()
    assert set(anonymous) - {"viewer_tier", "withheld"} == PUBLIC_FIELDS
    assert anonymous["viewer_tier"] == "public" and anonymous["responsible"]["name"] == "Reuse"
    assert set(anonymous["withheld"]) == {"state", "eu_status", "owner", "parent", "children",
                                          "identifiers", "sources", "successors", "events",
                                          "head_hash"}
    # the same battery found by its second-life code, still by anyone who holds that code
    assert w.client.get(f"/api/v1/batteries/{CHILD_CODE}").json()["uid"] == w.child
    holder = w.client.get(f"/api/v1/batteries/{w.child}", headers=w.headers["holder"]).json()
    assert holder["viewer_tier"] == LEGIT and holder["owner"]["name"] == "Carco"
    assert holder["state"] == "in_service" and holder["eu_status"] == "repurposed"
    assert {"scheme": "second_life", "value": CHILD_CODE} in holder["identifiers"]
    assert [s["uid"] for s in holder["sources"]] == [w.source] and holder["withheld"] == []
    maker = w.client.get(f"/api/v1/batteries/{w.child}", headers=w.headers["maker"]).json()
    assert maker["viewer_tier"] == "public" and "owner" not in maker  # not the maker's battery
    # the list: per battery, at the reader's tier for that battery
    items = {i["uid"]: i for i in w.client.get(
        "/api/v1/batteries", headers=w.headers["maker"]).json()["items"]}
    assert items[w.source]["state"] == "repurposed" and "state" not in items[w.child]
    assert all(set(i) == {"uid", "code", "kind", "chemistry"}
               for i in w.client.get("/api/v1/batteries").json()["items"])


def test_filters_and_searches_disclose_only_what_the_reader_may_read(world: World) -> None:
    w = world

    def total(role: str, **params: str) -> int | None:
        r = w.client.get("/api/v1/batteries", params=params, headers=w.headers[role])
        return r.json()["total"] if r.status_code == 200 else r.status_code

    # the state is point 4 information: below the tier a filter on it counts one's own batteries
    assert total("anonymous", state="in_service") == 401
    assert total("stranger", state="in_service") == 0  # it holds none
    assert total("recycler", state="in_service") == 1 and total("recycler", state="repurposed") == 1
    assert total("holder", state="in_service") == 1 and total("holder", state="repurposed") == 0
    assert total("maker", state="repurposed") == 1 and total("maker", state="in_service") == 0
    # a search by part of an identifier matches only identifiers the reader may read
    assert total("anonymous", q="SENTV1N0") == 0 and total("stranger", q="SENTV1N0") == 0
    assert total("maker", q="SENTV1N0") == 1 and total("holder", q="SENTV1N0") == 0
    assert total("recycler", q="SENTV1N0") == 1 and total("recycler", q="SL-MATRIX") == 1
    assert total("anonymous", q=w.child[9:20]) == 1  # the passport id itself is public
    assert total("anonymous", chemistry="NMC") == 1 == total("anonymous", chemistry="LFP")


def test_restricted_reads_are_in_the_audit_log_and_public_ones_are_not(world: World) -> None:
    w = world
    w.client.get(f"/api/v1/batteries/{w.source}/history")  # refused: nothing to record
    w.client.get(f"/api/v1/batteries/{w.source}")  # public fields only: nothing to record
    w.client.get(f"/api/v1/batteries/{w.source}/history", headers=w.headers["maker"])
    w.client.get(f"/api/v1/batteries/{w.child}", headers=w.headers["holder"])
    w.client.get(f"/api/v1/tests/{w.sha256}", headers=w.headers["recycler"])
    log = w.client.get("/api/v1/audit", headers=w.headers["auditor"],
                       params={"limit": 1000}).json()["items"]
    seen = {(e["user"], e["battery"], a) for e in log for a in e["attributes"]}
    assert ("maker-reader", w.source, "registry.history") in seen
    assert ("holder-reader", w.child, "general.battery_status") in seen
    assert ("holder-reader", w.child, "registry.owner") in seen
    assert ("recycler-reader", w.child, "cycling.tests") in seen
    assert not any(e["user"] is None for e in log)


BAD = ("wrong secret", "unknown id", "garbage", "not bearer", "expired", "revoked")


def _bad_headers(db, case: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        accounts = Accounts(s)
        row, token = accounts.create_token("recycler-reader", expires=timedelta(days=1))
        if case == "expired":
            row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        elif case == "revoked":
            accounts.revoke_token(row.token_id)
    return {
        "wrong secret": {"Authorization": f"Bearer {token[:-3]}abc"},
        "unknown id": {"Authorization": "Bearer blt_ffffffffffff_" + token.split("_", 2)[2]},
        "garbage": {"Authorization": "Bearer not-a-token"},
        "not bearer": {"Authorization": "Basic cmVjeWNsZXI6cGFzcw=="},
    }.get(case, {"Authorization": f"Bearer {token}"})


def test_wrong_expired_or_revoked_tokens_get_401_on_every_get_route(world: World, db) -> None:  # type: ignore[no-untyped-def]
    """A bad credential is refused (401, a bare problem), never read as anonymous; a route that
    serves only what everyone may read answers it as it answers anyone, and nothing more."""
    w = world
    targets = [path for route in _get_routes(w.client) for path, _ in _fill(route, w)[:1]]
    anonymous = {p: w.client.get(p) for p in targets}
    gated = 0
    for case in BAD:
        headers = _bad_headers(db, case)
        for path in targets:
            r = w.client.get(path, headers=headers)
            if r.status_code == 401:
                assert set(r.json()) == PROBLEM_KEYS, (case, path)
                assert r.headers["www-authenticate"].startswith('Bearer realm="batteryloop"')
                gated += 1
            else:  # a route that takes no credentials: exactly what anonymous gets
                assert (r.status_code, r.content) == (anonymous[path].status_code,
                                                      anonymous[path].content), (case, path)
                assert "{ref}" not in path and w.child not in path, (case, path)
    assert gated >= len(BAD) * 25


def test_every_field_of_the_registry_record_has_a_tier(sqlite_db) -> None:  # type: ignore[no-untyped-def]
    """A field the registry adds to its record is withheld below the authority tier until
    records.toml says who may read it; today every field is named there, each with its basis."""
    from batteryloop.passport import records

    with sqlite_db.session() as s:
        add_orgs(s)
        uid = original(s, "LFP", tag="fields")
        described = Registry(s).describe(uid)
        brief = Registry.brief(Registry(s).battery(uid))
    rules = records.field_rules()
    assert set(described) <= set(rules) and set(brief) <= set(rules)
    for name, rule in rules.items():
        assert rule.basis and rule.reading in ("regulation", "project"), name
        if rule.attribute:
            assert rule.tier == table()[rule.attribute].tier, name
    assert records.field_tier("a-field-nobody-named") == "authority"
    assert records.field_tier("state") == table()["general.battery_status"].tier == LEGIT
