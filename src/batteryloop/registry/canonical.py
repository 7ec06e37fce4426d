"""RFC 8785 (JSON Canonicalization Scheme) bytes, fast.

The reference implementation (`rfc8785`) is pure Python and costs ~26 us an event; the ledger's
append rate depends on this, so the common case goes through orjson with sorted keys, which emits
the same bytes as RFC 8785 once integral floats are written as integers. Anything outside the cases
proven identical (tests/registry/test_canonical.py checks against `rfc8785`) takes the reference path.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
import rfc8785

from batteryloop.errors import ValidationFailed

_SAFE_INT = 2**53  # I-JSON: integers beyond this lose precision in other readers
_FAST = orjson.OPT_SORT_KEYS
# the built-in value of an instance of a subclass (the content, not what its __str__ says)
_PLAIN_OF = {
    str: str.__str__, int: int.__index__, float: float.__float__, dict: dict, list: list,
    tuple: list,
}


class _Slow(Exception):
    """The value needs the reference implementation."""


def _prepare(value: Any) -> Any:
    """Return a value orjson serialises exactly as RFC 8785 does, or raise _Slow.

    Containers are copied only when something inside them had to change.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if -_SAFE_INT < value < _SAFE_INT:
            return value
        raise _Slow  # the reference refuses what lies outside the I-JSON range
    if kind is float:
        if not math.isfinite(value):
            raise ValidationFailed(f"{value!r} is not a JSON number")
        if value.is_integer():
            if -_SAFE_INT < value < _SAFE_INT:
                return int(value)
            raise _Slow
        if 1e-6 <= abs(value) < 1e-5:  # ECMAScript writes 0.00000x here, orjson 'xe-6'
            raise _Slow
        return value
    if kind is dict:
        changed = None
        for key, item in value.items():
            if type(key) is not str:
                raise ValidationFailed(f"JSON object keys must be strings, got {key!r}")
            # UTF-16 ordering (RFC 8785) and code point ordering differ only above the BMP.
            if not key.isascii() and any(ord(ch) > 0xFFFF for ch in key):
                raise _Slow
            new = _prepare(item)
            if new is not item or type(new) is not type(item):
                if changed is None:
                    changed = dict(value)
                changed[key] = new
        return value if changed is None else changed
    if kind is list or kind is tuple:
        return [_prepare(item) for item in value]
    if isinstance(value, (str, int, float, dict, list, tuple)):  # subclasses (enums, etc.)
        base = next(t for t in kind.__mro__ if t in _PLAIN_OF)
        return _prepare(_PLAIN_OF[base](value))
    raise ValidationFailed(f"{kind.__name__} is not a JSON value")


def dumps(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value."""
    try:
        return orjson.dumps(_prepare(value), option=_FAST)
    except _Slow:
        pass
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise ValidationFailed(f"cannot canonicalise JSON value: {exc}") from exc


def loads(data: bytes | str) -> Any:
    """Parse canonical JSON back to the value ``dumps`` took: ``dumps(loads(b)) == b``.

    ``dumps`` writes an integral float of 2**53 or more as a bare integer and refuses such
    integers, so a number that long read back is a float again.
    """
    value = orjson.loads(data)
    if _LONG_NUMBER.search(data.encode() if isinstance(data, str) else data):
        value = _unsafe_ints_to_floats(value)
    return value


_LONG_NUMBER = re.compile(rb"\d{16}")  # 2**53 has 16 digits: shorter numbers need no look


def _unsafe_ints_to_floats(value: Any) -> Any:
    kind = type(value)
    if kind is int:
        return value if -_SAFE_INT < value < _SAFE_INT else float(value)
    if kind is list:
        return [_unsafe_ints_to_floats(item) for item in value]
    if kind is dict:
        return {key: _unsafe_ints_to_floats(item) for key, item in value.items()}
    return value
