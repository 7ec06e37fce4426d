"""The attribute table (data/annex_xiii.toml): one entry for every property of the seven Battery
Pass v1.2 aspects, each with a tier, an Annex XIII basis and a source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batteryloop.accounts.viewer import TIERS
from batteryloop.passport import schemas
from batteryloop.passport.attributes import categories, table

# containers whose properties are attributes one by one
CONTAINERS = {("safetyMeasures",), ("batteryTechicalProperties",), ("batteryCondition",)}


def _properties(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Properties of a schema node, through $ref and allOf."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        return _properties(schema, schema["components"]["schemas"][name])
    props = dict(node.get("properties", {}))
    for part in node.get("allOf", []):
        props.update(_properties(schema, part))
    return props


def test_every_schema_property_has_exactly_one_attribute(shared_dir: Path) -> None:
    folder = shared_dir / "schemas" / "batterypass-1.2"
    paths = {(a.category, a.path) for a in table().values() if a.path}
    for cat, meta in categories().items():
        schema = json.loads(schemas.decode((folder / meta["schema"]).read_bytes()))
        expected = set()
        for name, node in schema["properties"].items():
            if (name,) in CONTAINERS:
                expected |= {(cat, (name, inner)) for inner in _properties(schema, node)}
            else:
                expected.add((cat, (name,)))
        assert {p for p in paths if p[0] == cat} == expected, meta["aspect"]


def test_every_attribute_has_a_tier_a_basis_and_a_source() -> None:
    attrs = list(table().values())
    assert len(attrs) == 72 and len({a.id for a in attrs}) == 72
    assert {a.category for a in attrs} == set(categories())
    for a in attrs:
        assert a.tier in TIERS and a.basis and a.label
        assert a.reading in ("regulation", "project")
        assert a.reading == "regulation" or a.note, f"{a.id}: a project reading needs its reason"
        assert a.basis.startswith(("Annex XIII", "Art.")), a.id
    by_point = {a.id: a.tier for a in attrs}
    # the letter of Annex XIII where it is clear
    assert by_point["general.battery_status"] == "legitimate_interest"  # 4(c)
    assert by_point["labels.test_reports"] == "authority"  # 3(a)
    assert by_point["materials.battery_materials"] == "legitimate_interest"  # 2(a)
    assert by_point["circularity.extinguishing_agent"] == "public"  # 1(a), Annex VI Part A
    assert all(a.tier == "legitimate_interest" for a in attrs if a.path[:1] == ("batteryCondition",))
