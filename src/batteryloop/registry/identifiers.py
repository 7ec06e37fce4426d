"""Battery identifiers other than the GB/T 34014 code: passport ids, VINs, part numbers.

The passport identifier is a ``urn:uuid:`` (RFC 9562 UUID in URN form), unique per battery and
never reused; a repurposed or remanufactured battery gets a new one.
"""

from __future__ import annotations

import re
import uuid

from batteryloop.errors import ValidationFailed

# Schemes a battery can be looked up by. "other:<name>" is allowed for anything site-specific.
SCHEMES = {
    "passport": "EU battery passport identifier (urn:uuid:)",
    "gbt34014": "GB/T 34014-2017 battery code",
    "vin": "Vehicle identification number of the vehicle the battery is or was fitted to",
    "oem_part": "Vehicle or battery maker's part number",
    "second_life": "Code printed on a second-life product",
    "serial": "Maker's serial number",
}
_VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")  # ISO 3779: 17 characters, no I, O or Q
_URN_UUID = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def new_passport_id() -> str:
    return uuid.uuid4().urn


def check_passport_id(value: str) -> str:
    value = value.strip().lower()
    if not _URN_UUID.match(value):
        raise ValidationFailed(
            f"'{value}' is not a passport identifier: expected urn:uuid:xxxxxxxx-xxxx-xxxx-xxxx-"
            "xxxxxxxxxxxx (lower-case hex)"
        )
    return value


def check_scheme(scheme: str) -> str:
    if scheme in SCHEMES or (scheme.startswith("other:") and len(scheme) > 6):
        return scheme
    raise ValidationFailed(
        f"unknown identifier scheme '{scheme}' (known: {', '.join(SCHEMES)}, or other:<name>)"
    )


def normalise(scheme: str, value: str) -> str:
    """Check and normalise an identifier's value for its scheme."""
    check_scheme(scheme)
    value = value.strip()
    if not value:
        raise ValidationFailed(f"empty {scheme} identifier")
    if scheme == "passport":
        return check_passport_id(value)
    if scheme == "vin":
        vin = value.upper()
        if not _VIN.match(vin):
            raise ValidationFailed(
                f"'{value}' is not a VIN: expected 17 characters of A-Z and 0-9 without I, O, Q"
            )
        return vin
    if scheme == "gbt34014":
        from batteryloop.registry.gbt34014 import parse

        return parse(value, lenient=True).code
    return value
