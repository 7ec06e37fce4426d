"""Export: Battery Pass v1.2 JSON that validates against the consortium's schemas (read in place
from ../shared, UTF-16 with BOM), for several chemistries and statuses and at every tier; the
schemas' quirks met as documented; JSON-LD that a JSON-LD processor reads; import of the same JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from passport_support import (
    FOOTPRINT,
    TO_GRADED,
    add_orgs,
    dismantle,
    original,
    recycle_in_batch,
    second_life,
    static_values,
    walk,
)

from batteryloop.accounts.viewer import TIERS, Viewer
from batteryloop.passport import export, importer, jsonld, schemas, service, view
from batteryloop.passport.attributes import categories, table
from batteryloop.store import Database

AUTHORITY = Viewer(tier="authority")


@pytest.fixture(autouse=True)
def _schemas(shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Battery Pass schemas from ../shared (BATTERYLOOP_SHARED), as the platform reads them."""
    from batteryloop.settings import get_settings

    monkeypatch.setenv("BATTERYLOOP_SHARED", str(shared_dir))
    get_settings.cache_clear()
    schemas.load.cache_clear()
    if not schemas.available():
        from shared_data import need

        need(f"Battery Pass schemas missing in {schemas.schemas_dir()}")
    yield
    get_settings.cache_clear()
    schemas.load.cache_clear()


def _battery(db: Database, chemistry: str, status: str) -> str:
    with db.session() as s:
        add_orgs(s)
        if status == "original":
            return original(s, chemistry)
        if status == "repurposed":
            source = original(s, chemistry, tag="first-life")
            walk(s, source, TO_GRADED)
            return second_life(s, [source], chemistry=chemistry)
        uid = original(s, chemistry)
        if status == "recycled":  # dismantled, recycled in a closed batch: the passport archived
            walk(s, uid, ["retired", "collected"])
            dismantle(s, uid)
            recycle_in_batch(s, [uid], f"B-EXPORT-{chemistry}")
            return uid
        service.to_waste(s, uid, "Waste Co", actor="Maker")
        return uid


def test_the_schema_files_are_utf16_with_a_bom_and_decode(shared_dir: Path) -> None:
    folder = shared_dir / "schemas" / "batterypass-1.2"
    raw = (folder / "Circularity-1.2.0.schema.json").read_bytes()
    assert raw[:2] == b"\xff\xfe"
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    for meta in categories().values():
        text = schemas.decode((folder / meta["schema"]).read_bytes())
        assert json.loads(text)["$schema"].startswith("http://json-schema.org/draft-04/schema")


@pytest.mark.parametrize("status", ["original", "repurposed", "waste", "recycled"])
@pytest.mark.parametrize("chemistry", ["LFP", "NMC", "LMO"])
def test_exports_validate_for_chemistries_and_statuses(sqlite_db: Database, chemistry: str,
                                                       status: str) -> None:
    uid = _battery(sqlite_db, chemistry, status)
    with sqlite_db.session() as s:
        for tier in TIERS:
            shown = view.read(s, uid, Viewer(tier=tier), path="test")
            doc = export.document(shown)
            assert export.check(shown, doc) == [], tier
        general = doc["GeneralProductInformation"]
    assert general["batteryStatus"] == {"original": "Original", "repurposed": "Repurposed",
                                        "waste": "Waste", "recycled": "Waste"}[status]
    assert doc["MaterialComposition"]["batteryChemistry"]["shortName"] == chemistry
    if status == "waste":
        assert general["operatorInformation"]["contactName"] == "Waste Co"
    if status == "recycled":  # the archive; what recycling recovered is outside the v1.2 model
        assert doc["exportInfo"]["ceased"] is True and doc["exportInfo"]["archivedAt"]
        assert "circularity.recovered_materials" in shown.values
        assert "computed" not in doc["exportInfo"]  # the maker's footprint was declared


def test_a_computed_footprint_validates_and_is_never_imported_as_declared(
        sqlite_db: Database, tmp_path: Path) -> None:
    """A recycled pack whose maker declared no footprint: the computed one fills the v1.2
    CarbonFootprint aspect, validates at every tier, is listed as computed in exportInfo, and an
    import leaves it out (it would otherwise become the maker's declaration)."""
    with sqlite_db.session() as s:
        add_orgs(s)
        uid = original(s, "NMC", tag="computed")
        service.update(s, uid, {}, unset=list(FOOTPRINT), actor="Maker")
        walk(s, uid, ["retired", "collected"])
        dismantle(s, uid)
        recycle_in_batch(s, [uid], "B-EXPORT-CF")
    with sqlite_db.session() as s:
        for tier in TIERS:
            shown = view.read(s, uid, Viewer(tier=tier), path="test")
            doc = export.document(shown)
            assert export.check(shown, doc) == [], tier
    carbon = doc["CarbonFootprint"]
    assert [x["lifecycleStage"] for x in carbon["carbonFootprintPerLifecycleStage"]] == [
        "RawMaterialExtraction", "MainProduction", "Distribution", "Recycling"]
    assert carbon["batteryCarbonFootprint"] == pytest.approx(
        sum(x["carbonFootprint"] for x in carbon["carbonFootprintPerLifecycleStage"]))
    assert carbon["carbonFootprintPerformanceClass"] == "B"  # declared, kept
    computed = doc["exportInfo"]["computed"]
    assert {(c["aspect"], c["path"]) for c in computed} == {
        ("CarbonFootprint", "batteryCarbonFootprint"),
        ("CarbonFootprint", "carbonFootprintPerLifecycleStage"),
        ("CarbonFootprint", "absoluteCarbonFootprint")}
    assert all(len(c["factors"][0]["sha256"]) == 64 for c in computed)

    from batteryloop.registry.schemas import OrganisationIn
    from batteryloop.registry.service import Registry
    from batteryloop.store import connect

    doc["GeneralProductInformation"]["batteryStatus"] = "Original"  # a new record elsewhere
    other = connect(f"sqlite:///{tmp_path / 'other.sqlite'}")
    with other.session() as s:
        Registry(s).add_organisation(OrganisationIn(name="Maker", roles=["manufacturer"]))
        result = importer.import_document(s, json.loads(json.dumps(doc)), actor="Maker")
    assert not set(FOOTPRINT) & set(result["static"])
    assert sum("computed by the exporting platform" in w for w in result["warnings"]) == 3
    with other.session() as s:
        after = view.read(s, uid, AUTHORITY, path="test")
    # computed again from the other registry's own records, not taken as a declaration
    assert after.values["carbon.battery_carbon_footprint"].source == "computed"
    assert after.values["carbon.battery_carbon_footprint"].value == pytest.approx(
        carbon["batteryCarbonFootprint"])


def test_the_full_export_is_checked_strictly(sqlite_db: Database) -> None:
    """Everything the authority tier may see is required: an attribute removed fails, a bad value
    fails, and the one pattern override is the warranty's."""
    uid = _battery(sqlite_db, "LFP", "original")
    with sqlite_db.session() as s:
        shown = view.read(s, uid, AUTHORITY, path="test")
    doc = export.document(shown)
    del doc["Labels"]["resultOfTestReport"]
    doc["Circularity"]["recycledContent"][0]["preConsumerShare"] = 150
    doc["GeneralProductInformation"]["warrentyPeriod"] = "--05"
    doc["Performance"]["batteryCondition"]["stateOfCharge"].pop("lastUpdate")
    errors = {(e["aspect"], e["path"]) for e in export.check(shown, doc)}
    assert errors == {
        ("Labels", "resultOfTestReport"), ("Circularity", "recycledContent/0/preConsumerShare"),
        ("GeneralProductInformation", "warrentyPeriod"),
        ("Performance", "batteryCondition/stateOfCharge/lastUpdate"),
    }
    assert [o.split(".")[0] for o in schemas.overrides()] == ["WarrentyPeriod"]


def test_quirks_are_met_as_documented(sqlite_db: Database) -> None:
    uid = _battery(sqlite_db, "NMC", "original")
    with sqlite_db.session() as s:
        doc = export.document(view.read(s, uid, AUTHORITY, path="test"))
    general = doc["GeneralProductInformation"]
    # misspelt names, as the schemas spell them
    assert "warrentyPeriod" in general and "batteryTechicalProperties" in doc["Performance"]
    assert {"thirdPartyAussurances", "supplyChainIndicies"} <= set(doc["SupplyChainDueDiligence"])
    # urn:uuid: the compact form in batteryPassportIdentifier, canonical in productIdentifier
    assert general["productIdentifier"] == uid
    assert general["batteryPassportIdentifier"] == "urn:uuid:" + uid[9:].replace("-", "")
    assert export.canonical_urn(general["batteryPassportIdentifier"]) == uid
    # the broken e-mail pattern: the address is left out where it is optional
    assert "emailAddress" not in general["manufacturerInformation"]
    assert "emailAddress" not in general["operatorInformation"]


def test_jsonld_expands_to_battery_pass_samm_urns(sqlite_db: Database) -> None:
    rdflib = pytest.importorskip("rdflib")
    with sqlite_db.session() as s:
        add_orgs(s)
        source = original(s, "LFP", tag="gen1")
        walk(s, source, TO_GRADED)
        uid = second_life(s, [source])
        shown = view.read(s, uid, AUTHORITY, path="test")
    graph = rdflib.Graph().parse(data=json.dumps(jsonld.jsonld(shown)), format="json-ld")
    subject = rdflib.URIRef(uid)
    prov = rdflib.Namespace("http://www.w3.org/ns/prov#")
    assert (subject, prov.wasDerivedFrom, rdflib.URIRef(source)) in graph
    gpi = rdflib.Namespace("urn:samm:io.BatteryPass.GeneralProductInformation:1.2.0#")
    general = graph.value(subject, gpi.GeneralProductInformation)
    assert general is not None
    assert str(graph.value(general, gpi.productIdentifier)) == uid
    assert str(graph.value(general, gpi.batteryStatus)) == "Repurposed"
    perf = rdflib.Namespace("urn:samm:io.BatteryPass.Performance:1.2.1#")
    condition = graph.value(graph.value(subject, perf.Performance), perf.batteryCondition)
    soc = graph.value(condition, perf.stateOfCharge)
    assert float(graph.value(soc, perf.stateOfChargeValue)) == 55.5


def test_import_of_an_export_into_another_registry(sqlite_db: Database, tmp_path: Path) -> None:
    uid = _battery(sqlite_db, "LMO", "original")
    with sqlite_db.session() as s:
        before = view.read(s, uid, AUTHORITY, path="test")
        doc = json.loads(json.dumps(export.document(before)))
    from batteryloop.store import connect

    other = connect(f"sqlite:///{tmp_path / 'other.sqlite'}")
    with other.session() as s:
        from batteryloop.registry.schemas import OrganisationIn
        from batteryloop.registry.service import Registry

        Registry(s).add_organisation(OrganisationIn(name="Importer", roles=["repurposer"]))
    # neither maker nor operator: refused, and nothing of it stays (one unit of work)
    with pytest.raises(view.Forbidden), other.session() as s:
        importer.import_document(s, doc, actor="Importer")
    with other.session() as s:
        result = importer.import_document(s, doc, actor="Maker")
    assert result["created"] and result["passport"] == uid
    assert set(result["static"]) == {a for a in static_values("x") if table()[a].path} | {
        "materials.chemistry"}
    assert any(w.startswith("general.putting_into_service") for w in result["warnings"])
    with other.session() as s:
        after = view.read(s, uid, AUTHORITY, path="test")
    for attr_id, value in before.values.items():
        attr = table()[attr_id]
        if attr.path and attr_id != "general.putting_into_service":
            assert attr_id in after.values, attr_id
            assert export.batterypass_value(attr_id, after.values[attr_id], "pack") == \
                export.batterypass_value(attr_id, value, "pack"), attr_id


def test_import_takes_correct_spellings_and_refuses_what_does_not_validate(sqlite_db: Database) -> None:
    uid = _battery(sqlite_db, "LFP", "original")
    with sqlite_db.session() as s:
        doc = export.document(view.read(s, uid, AUTHORITY, path="test"))
    general = doc["GeneralProductInformation"]
    general["warrantyPeriod"] = "P10Y"
    del general["warrentyPeriod"]
    with sqlite_db.session() as s:
        result = importer.import_document(s, doc, actor="Maker")
    assert not result["created"] and "general.warranty_period" in result["static"]
    with sqlite_db.session() as s:
        shown = view.read(s, uid, AUTHORITY, path="test")
        assert shown.values["general.warranty_period"].value == "P10Y"
    doc["CarbonFootprint"]["carbonFootprintStudy"] = "not a link"
    from batteryloop.errors import ValidationFailed

    with sqlite_db.session() as s, pytest.raises(ValidationFailed, match="carbonFootprintStudy"):
        importer.import_document(s, doc, actor="Maker")


def test_static_values_are_checked_against_the_schema_fragment(sqlite_db: Database) -> None:
    from batteryloop.errors import ValidationFailed

    uid = _battery(sqlite_db, "LFP", "original")
    bad = {
        "circularity.recycled_content": [{"recycledMaterial": "Cobalt", "preConsumerShare": 5}],
        "carbon.per_lifecycle_stage": [{"lifecycleStage": "Use", "carbonFootprint": 1}],
        "general.battery_category": "bus",
        "performance.temperature_range_idle_state": {"minimum": -300, "maximum": 60},
        "general.battery_status": "Waste",
    }
    for attr_id, value in bad.items():
        with sqlite_db.session() as s, pytest.raises(ValidationFailed, match=attr_id.replace(".", r"\.")):
            service.update(s, uid, {attr_id: value}, actor="Maker")
