"""Why a sample was not stored, and the record that keeps it.

Nothing that arrives is dropped: a sample either lands in the time-series store or here, with the
reason, a human-readable detail, what could be read of it (tag, timestamp and value as sent, unit)
and, for a single-sample message, the raw payload bytes. Counts per reason come from the same rows,
so "sent = stored + quarantined" can be checked against the files themselves.
"""

from __future__ import annotations

from enum import StrEnum

import polars as pl


class Reason(StrEnum):
    MALFORMED = "malformed"  # not JSON, a field missing or unreadable, a topic outside the scheme
    UNKNOWN_TAG = "unknown-tag"  # no such tag in the tag list
    UNIT_MISMATCH = "unit-mismatch"  # another unit than the tag's (never converted silently)
    OUT_OF_RANGE = "out-of-range"  # outside the instrument's plausible range
    OUT_OF_ORDER = "out-of-order"  # older than the newest sample already accepted for the tag
    DUPLICATE = "duplicate"  # the same timestamp as a sample already accepted for the tag


REASONS = tuple(r.value for r in Reason)

SCHEMA = {
    "received_at": pl.Datetime("us", "UTC"),
    "source": pl.String,  # "mqtt:<topic>" or "csv:<file>:row <n>"
    "line": pl.String,
    "reason": pl.String,
    "detail": pl.String,
    "tag": pl.String,
    "ts_text": pl.String,
    "value_text": pl.String,
    "unit": pl.String,
    "raw": pl.Binary,
}


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def counts(records: pl.DataFrame) -> dict[str, int]:
    """Quarantined records per reason (every reason present, zero where none)."""
    got = dict(records.group_by("reason").len().iter_rows()) if records.height else {}
    return {reason: int(got.get(reason, 0)) for reason in REASONS}
