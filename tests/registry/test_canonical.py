"""canonical.dumps and ledger.chain_bytes against the reference RFC 8785 implementation.

The ledger's hashes and the organisations' signatures are over these bytes, so the fast path must
agree with `rfc8785` byte for byte on every JSON value, and refuse what the reference refuses.
"""

from __future__ import annotations

import enum
import hashlib
from collections import OrderedDict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batteryloop.errors import ValidationFailed
from batteryloop.registry import canonical
from batteryloop.registry.ledger import chain_bytes, iso

SAFE = 2**53
# characters where escaping, UTF-16 key ordering or encoding go wrong first
ODD_CHARS = (
    "\x00\x01\x07\x08\t\n\x0b\x0c\r\x1b\x1f\x7f\x80\x9f \"\\/'<>&"
    "\u00e9\u00ff\u0100\u2028\u2029\ud7ff\ue000\uf8ff\ufeff\ufffd\uffff"
    "\U00010000\U0001f600\U0001f9ea\U0010ffff"
)
odd_text = st.text(alphabet=st.sampled_from(ODD_CHARS) | st.characters(exclude_categories=("Cs",)), max_size=12)
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12) | odd_text

special_floats = st.sampled_from([
    0.0, -0.0, 1.0, -1.0, 0.1, 1e-7, 9.999999999999999e-7, 1e-6, 1.5e-6, 9.99e-6, 1e-5, 1e-4,
    123456789012345.6, 1e15 + 0.5, 2.0**53 - 1, 2.0**53, -(2.0**53), 2.0**53 + 2, 1e20, 1e21,
    1.5e21, 1e300, 1.7976931348623157e308, 5e-324, 2.2250738585072014e-308, 333333333.33333329,
])
# decimal mantissa and exponent: reaches every exponent evenly, unlike raw floats
decimal_floats = st.builds(
    lambda m, e: float(f"{m}e{e}"), st.integers(-(10**17), 10**17), st.integers(-330, 310)
).filter(lambda f: f not in (float("inf"), float("-inf")))
floats = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(2**70), 2**70).map(float)  # integral floats, inside and outside 2**53
    | decimal_floats
    | special_floats
)
safe_ints = st.integers(-SAFE + 1, SAFE - 1) | st.sampled_from([0, -1, SAFE - 1, -SAFE + 1])
scalars = st.none() | st.booleans() | safe_ints | floats | texts
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5),
    max_leaves=25,
)


def _both(value: Any) -> tuple[bytes | None, bytes | None]:
    """(canonical.dumps, rfc8785.dumps) of value; None where it raised its refusal."""
    try:
        ours: bytes | None = canonical.dumps(value)
    except ValidationFailed:
        ours = None
    try:
        ref: bytes | None = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        ref = None
    return ours, ref


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
@example({"\ue000": 1, "\U0001f600": 2, "a": {"\uffff": [], "\U00010000": None}})  # UTF-16 order
@example(["\x00\x1f\x7f\u2028\"\\/", 1e-6, -0.0, 1e21, 2.0**53, 5e-324])
def test_dumps_equals_reference(value: Any) -> None:
    ours, ref = _both(value)
    assert ref is not None  # every value drawn here is inside what RFC 8785 accepts
    assert ours == ref
    # what is stored and parsed again canonicalises to the same bytes (signatures rely on it)
    assert canonical.dumps(canonical.loads(ours)) == ours


@settings(max_examples=200, deadline=None)
@given(floats)
def test_single_float_equals_reference(value: float) -> None:
    ours, ref = _both(value)
    assert ours == ref
    assert _both([value]) == (b"[" + ours + b"]", b"[" + ref + b"]")
    assert _both({"k": value}) == (b'{"k":' + ours + b"}", b'{"k":' + ref + b"}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e-6, b"0.000001"),  # ECMAScript decimal form; orjson alone writes 1e-6
        (-1.5e-6, b"-0.0000015"),
        (9.99e-6, b"0.00000999"),
        (1e-5, b"0.00001"),
        (9.99e-7, b"9.99e-7"),
        (-0.0, b"0"),
        (2.0**53, b"9007199254740992"),
        (1e21, b"1e+21"),
        (1e20, b"100000000000000000000"),
        (SAFE - 1, b"9007199254740991"),
        ({"b": [1.0, True, None], "a": "\u2028\x1f"}, b'{"a":"\xe2\x80\xa8\\u001f","b":[1,true,null]}'),
    ],
)
def test_known_bytes(value: Any, expected: bytes) -> None:
    assert canonical.dumps(value) == expected == rfc8785.dumps(value)


@pytest.mark.parametrize("value", [SAFE, -SAFE, SAFE + 1, 2**64, [1, {"x": -(2**63)}]])
def test_integers_outside_ijson_range_are_refused_like_the_reference(value: Any) -> None:
    with pytest.raises(rfc8785.CanonicalizationError):
        rfc8785.dumps(value)
    with pytest.raises(ValidationFailed):
        canonical.dumps(value)


@settings(max_examples=100, deadline=None)
@given(st.integers(SAFE, 2**100) | st.integers(-(2**100), -SAFE))
def test_any_unsafe_integer_is_refused(value: int) -> None:
    assert _both(value) == (None, None)


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), {"x": [float("-inf")]}, {1: "a"}, {"a": {2: 3}}, b"x", {"s": {1, 2}}]
)
def test_non_json_values_are_refused(value: Any) -> None:
    with pytest.raises(ValidationFailed):
        canonical.dumps(value)


class Grade(enum.IntEnum):
    A = 1


class Colour(str, enum.Enum):
    RED = "red"


class Label(str):
    def __str__(self) -> str:  # what str() says must not leak into the JSON
        return "not the content"


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        (OrderedDict([("b", 1), ("a", 2.0)]), {"b": 1, "a": 2.0}),
        ({"g": Grade.A, "t": (1, 2)}, {"g": 1, "t": [1, 2]}),
        ([Colour.RED, Label("x\n")], ["red", "x\n"]),
        ({"o": OrderedDict(z=OrderedDict(y=1.5e-6))}, {"o": {"z": {"y": 1.5e-6}}}),
    ],
)
def test_subclasses_of_json_types_serialise_as_their_content(value: Any, plain: Any) -> None:
    assert canonical.dumps(value) == rfc8785.dumps(plain)


# --- chain_bytes ---------------------------------------------------------------------------------

times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1),
    timezones=st.none() | st.just(UTC) | st.builds(
        lambda m: timezone(timedelta(minutes=m)), st.integers(-14 * 60 + 1, 14 * 60 - 1)
    ),
)
uid_like = st.builds(lambda u: u.urn, st.uuids())
names = uid_like | texts | st.sampled_from(["urn:x\n", 'a"b', "a\\b", "t\u2028", "\U0001f600", ""])
payloads = st.dictionaries(texts, json_values, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    battery=names, seq=st.integers(1, 2**31 - 1), event_type=names,
    actor=st.none() | names, occurred=times, recorded=times, payload=payloads,
    prev=st.binary(min_size=32, max_size=32),
    signature=st.none() | st.binary(min_size=64, max_size=64),
)
@example(  # a trailing newline slipped through the "no escaping needed" check once
    battery="urn:uuid:00000000-0000-4000-8000-000000000000\n", seq=1, event_type="inspected",
    actor=None, occurred=datetime(2024, 1, 1), recorded=datetime(2024, 1, 1), payload={},
    prev=bytes(32), signature=None,
)
@example(
    battery="b", seq=7, event_type="inspected\n", actor="urn:org\n",
    occurred=datetime(2024, 1, 1), recorded=datetime(2024, 1, 1), payload={"x": 1e-6},
    prev=bytes(32), signature=bytes(64),
)
def test_chain_bytes_equals_reference(battery: str, seq: int, event_type: str, actor: str | None,
                                      occurred: datetime, recorded: datetime, payload: dict,
                                      prev: bytes, signature: bytes | None) -> None:
    stored_payload = canonical.dumps(payload)
    ours = chain_bytes(
        battery=battery, seq=seq, event_type=event_type, actor=actor, occurred_at=iso(occurred),
        recorded_at=iso(recorded), payload=stored_payload, prev=prev, signature=signature,
    )
    expected = rfc8785.dumps(
        {
            "actor": actor, "battery": battery, "occurred_at": iso(occurred),
            "payload": canonical.loads(stored_payload), "prev": prev.hex(),
            "recorded_at": iso(recorded), "seq": seq,
            "signature": signature.hex() if signature is not None else None, "type": event_type,
        }
    )
    assert ours == expected
    assert hashlib.sha256(ours).digest() == hashlib.sha256(expected).digest()


def test_chain_bytes_of_a_fixed_event() -> None:
    """Pinned bytes: a change to the hashed layout would silently orphan every stored chain."""
    out = chain_bytes(
        battery="urn:uuid:12345678-1234-4234-8234-123456789abc", seq=3, event_type="status-changed",
        actor=None, occurred_at="2024-03-01T08:00:00.000000Z", recorded_at="2024-03-01T08:00:01.500000Z",
        payload=canonical.dumps({"to": "in_service", "from": "produced"}), prev=bytes(range(32)),
        signature=None,
    )
    assert out == (
        b'{"actor":null,"battery":"urn:uuid:12345678-1234-4234-8234-123456789abc",'
        b'"occurred_at":"2024-03-01T08:00:00.000000Z","payload":{"from":"produced","to":"in_service"},'
        b'"prev":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",'
        b'"recorded_at":"2024-03-01T08:00:01.500000Z","seq":3,"signature":null,"type":"status-changed"}'
    )


@pytest.mark.parametrize(
    ("dt", "text"),
    [
        (datetime(2024, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=1, minutes=30))), "2024-03-01T08:00:00.000000Z"),
        (datetime(2024, 3, 1, 8, 0, 0, 7), "2024-03-01T08:00:00.000007Z"),  # naive = UTC
        (datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC), "2024-02-29T23:59:59.999999Z"),
    ],
)
def test_iso_is_the_one_hashed_time_form(dt: datetime, text: str) -> None:
    assert iso(dt) == text
