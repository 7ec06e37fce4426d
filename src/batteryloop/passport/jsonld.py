"""The JSON-LD form of a passport: the same Battery Pass v1.2 aspects as the JSON export, made
linked data.

Each aspect's properties expand, through a scoped ``@vocab``, to the Battery Pass SAMM property
URNs the schemas carry (``urn:samm:io.BatteryPass.<Aspect>:<version>#<property>``). The passport
node is the battery's canonical ``urn:uuid:``; links to the batteries it was made from use PROV-O
(``prov:wasDerivedFrom``). What the Battery Pass model has no term for (critical raw materials as a
list, the method, interval and originator of measured values, successors, the viewer's tier) uses
the ``bl:`` namespace below, an unregistered URN namespace of this project: a deployment that
publishes linked data should map it to an IRI it controls.
"""

from __future__ import annotations

from typing import Any

from batteryloop.passport.attributes import categories, table
from batteryloop.passport.export import document
from batteryloop.passport.view import Shown

NAMESPACE = "urn:batteryloop:passport#"
PROV = "http://www.w3.org/ns/prov#"


def samm_base(aspect: str, schema_file: str) -> str:
    version = schema_file.removeprefix(f"{aspect}-").removesuffix(".schema.json")
    return f"urn:samm:io.BatteryPass.{aspect}:{version}#"


def context() -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "@version": 1.1,
        "bl": NAMESPACE,
        "prov": PROV,
        "BatteryPassport": "bl:BatteryPassport",
        "accessTier": "bl:accessTier",
        "ceased": "bl:ceased",
        "archivedAt": "bl:archivedAt",
        "criticalRawMaterials": {"@id": "bl:criticalRawMaterials", "@container": "@set"},
        "wasDerivedFrom": {"@id": "prov:wasDerivedFrom", "@type": "@id", "@container": "@set"},
        "successors": {"@id": "bl:successor", "@type": "@id", "@container": "@set"},
        "measurements": {"@id": "bl:measurement", "@container": "@set",
                         "@context": {"@vocab": NAMESPACE}},
    }
    for meta in categories().values():
        base = samm_base(meta["aspect"], meta["schema"])
        ctx[meta["aspect"]] = {"@id": base + meta["aspect"], "@context": {"@vocab": base}}
    return ctx


def jsonld(shown: Shown) -> dict[str, Any]:
    """The passport as ``shown`` holds it (already filtered by tier), as JSON-LD."""
    doc = document(shown)
    out: dict[str, Any] = {
        "@context": context(), "@id": shown.uid, "@type": "BatteryPassport",
        "accessTier": shown.tier, "ceased": shown.ceased,
    }
    if shown.archived_at:
        out["archivedAt"] = shown.archived_at
    for meta in categories().values():
        if doc[meta["aspect"]]:
            out[meta["aspect"]] = doc[meta["aspect"]]
    crm = shown.values.get("materials.critical_raw_materials")
    if crm:
        out["criticalRawMaterials"] = crm.value
    lineage = shown.values.get("general.lineage")
    if lineage:
        out["wasDerivedFrom"] = [s["uid"] for s in lineage.value["sources"]]
        out["successors"] = [s["uid"] for s in lineage.value["successors"]]
    measured = [
        {"attribute": attr_id, "batteryPassPath": ".".join(table()[attr_id].path),
         **{k: v for k, v in (value.measurement or {}).items() if v is not None},
         **({"originator": value.by["uid"]} if value.by else {})}
        for attr_id, value in shown.values.items() if value.measurement
    ]
    if measured:
        out["measurements"] = measured
    return out
