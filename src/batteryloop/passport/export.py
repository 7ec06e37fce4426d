"""Export of a passport as Battery Pass v1.2 JSON: one document per category, as the viewer may
see it, and its validation against the consortium's schemas.

The document is ``{"exportInfo": {...}, "<Aspect>": {...}, ...}`` with the seven aspects
(GeneralProductInformation, CarbonFootprint, SupplyChainDueDiligence, MaterialComposition,
Circularity, Performance, Labels), each an instance of that aspect's schema. How the schemas'
quirks are met is listed in ``data/batterypass.toml``; in short:

* property names are the schema's, misspellings included (``warrentyPeriod``,
  ``batteryTechicalProperties``, ``thirdPartyAussurances``, ``supplyChainIndicies``);
* ``batteryPassportIdentifier`` is ``urn:uuid:`` + the 32 hex digits (no hyphens), the only UUID
  URN its pattern admits; ``productIdentifier`` carries the canonical form;
* the e-mail address of the manufacturer and operator is left out (optional, broken pattern);
* the warranty period is an ISO 8601 duration (the one schema override).

An export made for a lower tier leaves restricted attributes out, so it is checked against the
schemas with those attributes excused from ``required``; everything it does contain must conform.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from batteryloop.accounts.viewer import Viewer
from batteryloop.passport import schemas
from batteryloop.passport.attributes import batterypass, categories, table
from batteryloop.passport.service import put
from batteryloop.passport.view import Shown, Value
from batteryloop.registry.ledger import iso

COMPUTED = "computed"  # the source of a value the platform computed (passport/computed.py)
EMAIL_LEFT_OUT = ("general.manufacturer_information", "general.operator_information")


def compact_urn(uid: str) -> str:
    """urn:uuid:xxxxxxxx-xxxx-... -> urn:uuid:<32 hex>, which v1.2's identifier pattern admits."""
    return uid.replace("-", "")


def canonical_urn(value: str) -> str:
    """The inverse of ``compact_urn`` (a canonical UUID URN is returned as it is)."""
    value = value.strip().lower()
    if value.startswith("urn:uuid:") and "-" not in value and len(value) == 41:
        h = value[9:]
        return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return value


def batterypass_value(attr_id: str, value: Value, kind: str) -> Any:
    """An attribute's value in the form the Battery Pass schema gives its path."""
    attr = table()[attr_id]
    v = value.value
    if attr_id == "general.passport_identifier":
        return compact_urn(v)
    if attr_id == "general.battery_status":
        return batterypass()["status"][v]
    if attr_id in EMAIL_LEFT_OUT:
        return {k: x for k, x in v.items() if k != "emailAddress"}
    if attr.source != "ledger" or attr.shape in (None, "plain"):
        return v
    at = value.updated_at
    if attr.shape.startswith("wrap:"):
        return {attr.shape[5:]: v, "lastUpdate": at}
    match attr.shape:
        case "merge":
            return {**v, "lastUpdate": at}
        case "events":
            return v
        case "power":
            return {"remainingPowerCapabilityValue": {**v, "rPCLastUpdated": at}, "lastUpdate": at}
        case "resistance":
            return [{"internalResistanceIncreaseValue": v, "lastUpdate": at, "batteryComponent": kind}]
    raise ValueError(f"unknown shape {attr.shape} of {attr_id}")


def document(shown: Shown) -> dict[str, Any]:
    """The Battery Pass v1.2 document of what ``shown`` holds (already filtered by tier)."""
    out: dict[str, Any] = {
        "exportInfo": {
            "dataModel": f"Battery Pass {batterypass()['version']}",
            "schemas": {c["aspect"]: c["schema"] for c in categories().values()},
            "passport": shown.uid, "accessTier": shown.tier, "ceased": shown.ceased,
            "archivedAt": shown.archived_at, "exportedAt": iso(datetime.now(UTC)),
        }
    }
    docs: dict[str, dict[str, Any]] = {c: {} for c in categories()}
    computed = []
    for attr_id, value in shown.values.items():
        attr = table()[attr_id]
        if attr.path:
            put(docs[attr.category], attr.path, batterypass_value(attr_id, value, shown.kind))
            if value.source == COMPUTED:
                m = value.measurement or {}
                computed.append({"aspect": categories()[attr.category]["aspect"],
                                 "path": ".".join(attr.path), "method": m.get("method"),
                                 "version": m.get("version"), "factors": m.get("factors")})
    if computed:  # not the maker's declaration: said here, so that no importer takes it for one
        out["exportInfo"]["computed"] = computed
    for cat, doc in docs.items():
        out[categories()[cat]["aspect"]] = doc
    return out


def check(shown: Shown, doc: dict[str, Any]) -> list[dict[str, str]]:
    """Schema errors of an export, each with its aspect; none means it validates.

    What the viewer may see must be there and conform; what the tier withholds is excused.
    """
    reader = Viewer(tier=shown.tier)  # type: ignore[arg-type]
    errors = []
    for cat, meta in categories().items():
        expected = {a.path for a in table().values()
                    if a.category == cat and a.path and reader.may_see(a.tier)}
        for e in schemas.validate(cat, doc.get(meta["aspect"], {}), expected=expected):
            errors.append({"aspect": meta["aspect"], **e})
    return errors

