"""One road into the store for every source: decode, screen, then store or quarantine.

The MQTT ingester and the historian import both hand batches of messages (or samples) here. Each
batch is written all or nothing, and its counts add up: every record in is either stored or
quarantined with its reason.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl

from batteryloop.factory.tags import TagSet, load_tags
from batteryloop.factory.telemetry import quarantine
from batteryloop.factory.telemetry.payload import DEFAULT_ROOT, UNKNOWN_LINE, decode
from batteryloop.factory.telemetry.quarantine import REASONS, Reason
from batteryloop.factory.telemetry.screen import empty_last, screen
from batteryloop.factory.telemetry.store import TelemetryStore


@dataclass
class Counts:
    """Running totals; ``records`` = samples parsed + messages that could not be parsed."""

    messages: int = 0
    records: int = 0
    stored: int = 0
    quarantined: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def as_dict(self) -> dict[str, object]:
        return {"messages": self.messages, "records": self.records, "stored": self.stored,
                "quarantined": dict(self.quarantined),
                "quarantined_total": self.quarantined_total}


class Intake:
    """Decode -> screen -> store, keeping the per-tag ordering state between batches."""

    def __init__(self, store: TelemetryStore, tags: TagSet | None = None, *,
                 root: str = DEFAULT_ROOT) -> None:
        self.store = store
        self.tags = tags if tags is not None else load_tags()
        self.root = root
        self.counts = Counts()
        self._last = empty_last()
        self._seeded: set[str] = set()
        self._lock = threading.Lock()

    def _seed(self, lines: list[str]) -> None:
        """Pick up the newest stored timestamp per tag, so a restart cannot re-store old data."""
        for line in lines:
            if line in self._seeded or line == UNKNOWN_LINE:
                continue
            self._seeded.add(line)
            known = self.store.latest(line)
            if known.height:
                self._last = pl.concat([self._last, known]).group_by(["line", "tag"]).agg(
                    last_ts=pl.col("last_ts").max())

    def messages(self, topics: Sequence[str], payloads: Sequence[bytes],
                 received_at: datetime | None = None) -> Counts:
        """Handle one batch of MQTT messages; returns this batch's counts."""
        received_at = received_at or datetime.now(UTC)
        with self._lock:
            decoded = decode(topics, payloads, root=self.root)
            self._seed(decoded.samples["line"].unique().to_list())
            checked = screen(decoded.samples, self.tags, self._last)
            malformed = decoded.rejects.with_columns(
                reason=pl.lit(Reason.MALFORMED.value))
            rejected = pl.concat([malformed, checked.rejected.select(malformed.columns)])
            # raw payload only for messages that held one sample (a frame's element has its
            # fields instead); the source names the topic.
            route = pl.DataFrame({"topic": list(topics)}, schema={"topic": pl.String})
            route = route.with_row_index("msg").with_columns(pl.col("msg").cast(pl.Int64))
            route = route.with_columns(
                raw=pl.Series(list(payloads), dtype=pl.Binary),
                frame=pl.col("topic").str.ends_with("/_batch"),
            )
            records = rejected.join(route, on="msg", how="left").select(
                received_at=pl.lit(received_at, dtype=quarantine.SCHEMA["received_at"]),
                source=pl.format("mqtt:{}", pl.col("topic")),
                line="line", reason="reason", detail="detail", tag="tag", ts_text="ts_text",
                value_text="value_text", unit="unit",
                raw=pl.when(pl.col("frame") & pl.col("ts_text").is_not_null()).then(None)
                .otherwise(pl.col("raw")),
            )
            stored, quarantined = self.store.write(checked.accepted, records)
            self._last = checked.last
            batch = Counts(messages=len(topics), records=stored + quarantined, stored=stored,
                           quarantined=quarantine.counts(records))
            self._add(batch)
            return batch

    def samples(self, samples: pl.DataFrame, records: pl.DataFrame,
                received_at: datetime | None = None, *, use_state: bool = True,
                skip_stored: bool = False) -> Counts:
        """Handle already-decoded samples (historian files: SAMPLE_SCHEMA + ``source``).

        ``records`` are rows that failed to parse (quarantine schema). ``use_state=False`` checks
        order within this batch only (a file of history may predate the live stream);
        ``skip_stored`` quarantines samples whose (tag, ts) is already stored as duplicates, so a
        file imported twice is stored once.
        """
        received_at = received_at or datetime.now(UTC)
        stamp = pl.lit(received_at, dtype=quarantine.SCHEMA["received_at"])
        with self._lock:
            last = self._last if use_state else empty_last()
            checked = screen(samples, self.tags, last)
            fields = samples.select("msg", "source", "ts_text", "value_text", "unit")
            accepted, stored_before = checked.accepted, checked.rejected.clear()
            if skip_stored:
                accepted, stored_before = self._split_stored(accepted, fields)
            screened = pl.concat([checked.rejected, stored_before]).join(
                fields.select("msg", "source"), on="msg", how="left").select(
                received_at=stamp, source="source", line="line", reason="reason",
                detail="detail", tag="tag", ts_text="ts_text", value_text="value_text",
                unit="unit", raw=pl.lit(None, pl.Binary),
            )
            all_records = pl.concat([records.select(screened.columns).cast(quarantine.SCHEMA),
                                     screened.cast(quarantine.SCHEMA)])
            stored, quarantined = self.store.write(accepted, all_records)
            if use_state:
                self._last = checked.last
            batch = Counts(messages=0, records=stored + quarantined, stored=stored,
                           quarantined=quarantine.counts(all_records))
            self._add(batch)
            return batch

    def _split_stored(self, accepted: pl.DataFrame, fields: pl.DataFrame
                      ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Accepted samples whose (tag, ts) is already in the store become duplicates."""
        cols = ["msg", "line", "tag", "ts_text", "value_text", "unit", "reason", "detail"]
        none = pl.DataFrame(schema={c: pl.Int64 if c == "msg" else pl.String for c in cols})
        if accepted.is_empty():
            return accepted, none
        parts = []
        for line in accepted["line"].unique().to_list():
            mine = accepted.filter(pl.col("line") == line)
            stored = self.store.query(line, mine["tag"].unique().to_list(), mine["ts"].min(),
                                      mine["ts"].max() + timedelta(microseconds=1))
            parts.append(stored.with_columns(line=pl.lit(line)))
        keys = pl.concat(parts).select("line", "tag", "ts", stored_value="value")
        marked = accepted.join(keys, on=["line", "tag", "ts"], how="left")
        dup = marked.filter(pl.col("stored_value").is_not_null()).join(fields, on="msg")
        fresh = marked.filter(pl.col("stored_value").is_null()).drop("stored_value")
        return fresh, dup.select(
            "msg", "line", "tag", "ts_text", "value_text", "unit",
            reason=pl.lit(Reason.DUPLICATE.value),
            detail=pl.format("{} is already stored for the tag (value {})",
                             pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ"),
                             pl.col("stored_value")),
        )

    def _add(self, batch: Counts) -> None:
        self.counts.messages += batch.messages
        self.counts.records += batch.records
        self.counts.stored += batch.stored
        for reason, n in batch.quarantined.items():
            self.counts.quarantined[reason] += n
