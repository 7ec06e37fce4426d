"""Check decoded samples against their tags and their order, in columns.

A sample must name a known tag, carry the tag's unit, sit inside the tag's plausible range, and be
newer than every sample already accepted for that tag on that line (arrival order is the order of
the rows). The newest accepted timestamp per (line, tag) is carried from batch to batch, so
ordering holds across flushes and, when seeded from the store, across restarts.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from batteryloop.factory.tags import TagSet
from batteryloop.factory.telemetry.payload import TS
from batteryloop.factory.telemetry.quarantine import Reason

LAST_SCHEMA = {"line": pl.String, "tag": pl.String, "last_ts": TS}
ACCEPTED_SCHEMA = {"line": pl.String, "tag": pl.String, "ts": TS, "value": pl.Float64}


@dataclass
class Screened:
    accepted: pl.DataFrame  # ACCEPTED_SCHEMA (+ msg)
    rejected: pl.DataFrame  # msg, line, tag, ts_text, value_text, unit, reason, detail
    last: pl.DataFrame  # LAST_SCHEMA, updated


def empty_last() -> pl.DataFrame:
    return pl.DataFrame(schema=LAST_SCHEMA)


def screen(samples: pl.DataFrame, tags: TagSet, last: pl.DataFrame | None = None) -> Screened:
    last = empty_last() if last is None else last
    rows = samples.with_row_index("seq").join(tags.frame(), on="tag", how="left")
    fmt = pl.col("value").round_sig_figs(8).cast(pl.String)
    tag_reason = (
        pl.when(pl.col("tag_unit").is_null()).then(pl.lit(Reason.UNKNOWN_TAG.value))
        .when(pl.col("unit") != pl.col("tag_unit")).then(pl.lit(Reason.UNIT_MISMATCH.value))
        .when((pl.col("value") < pl.col("tag_low")) | (pl.col("value") > pl.col("tag_high")))
        .then(pl.lit(Reason.OUT_OF_RANGE.value))
    )
    tag_detail = (
        pl.when(pl.col("tag_unit").is_null())
        .then(pl.format("tag '{}' is not in the tag list", pl.col("tag")))
        .when(pl.col("unit") != pl.col("tag_unit"))
        .then(pl.format("unit '{}' but tag '{}' is in '{}'", pl.col("unit"), pl.col("tag"),
                        pl.col("tag_unit")))
        .otherwise(pl.format("{} {} outside the plausible range [{}, {}]", fmt, pl.col("unit"),
                             pl.col("tag_low"), pl.col("tag_high")))
    )
    rows = rows.with_columns(reason=tag_reason, detail=pl.when(tag_reason.is_not_null())
                             .then(tag_detail))

    # Order: compare each sample with the newest earlier one of its tag that passed the checks.
    passed = rows.filter(pl.col("reason").is_null()).join(
        last, on=["line", "tag"], how="left"
    ).sort("seq")
    prior = pl.max_horizontal(
        pl.col("ts").cum_max().shift(1).over(["line", "tag"]), pl.col("last_ts")
    )
    passed = passed.with_columns(prior=prior).with_columns(
        reason=pl.when(pl.col("ts") < pl.col("prior")).then(pl.lit(Reason.OUT_OF_ORDER.value))
        .when(pl.col("ts") == pl.col("prior")).then(pl.lit(Reason.DUPLICATE.value)),
    ).with_columns(
        detail=pl.when(pl.col("reason").is_not_null()).then(
            pl.format("{} is not after {}, the newest sample already accepted for the tag",
                      pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ"),
                      pl.col("prior").dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ"))
        )
    )
    accepted = passed.filter(pl.col("reason").is_null())
    rejected_cols = ["msg", "line", "tag", "ts_text", "value_text", "unit", "reason", "detail"]
    rejected = pl.concat([
        rows.filter(pl.col("reason").is_not_null()).select(rejected_cols),
        passed.filter(pl.col("reason").is_not_null()).select(rejected_cols),
    ])
    newest = accepted.group_by(["line", "tag"]).agg(last_ts=pl.col("ts").max())
    updated = pl.concat([last, newest]).group_by(["line", "tag"]).agg(
        last_ts=pl.col("last_ts").max()
    )
    return Screened(
        accepted.sort("seq").select("msg", *ACCEPTED_SCHEMA),
        rejected,
        updated.select(list(LAST_SCHEMA)),
    )
