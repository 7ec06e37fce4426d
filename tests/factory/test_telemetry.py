"""Telemetry: the payload scheme, screening and quarantine, the Parquet store, historian CSV files,
and MQTT ingest against the real Mosquitto broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest
from .plant_support import Publisher, broker, publisher, topic_root  # noqa: F401 - fixtures

from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.factory.tags import load_tags
from batteryloop.factory.telemetry.historian import import_csv
from batteryloop.factory.telemetry.intake import Intake
from batteryloop.factory.telemetry.mqtt import MqttIngester
from batteryloop.factory.telemetry.payload import (
    decode, encode_frame, encode_samples, frame_topic, sample_topic,
)
from batteryloop.factory.telemetry.store import TelemetryStore

T0 = datetime(2025, 3, 1, 23, 59, 0, tzinfo=UTC)
MS0 = int(T0.timestamp() * 1000)
ROOT = "batteryloop/plant"


def single(tag: str, ms: int, value: float, unit: str, line: str = "l1",
           root: str = ROOT) -> tuple[str, bytes]:
    return sample_topic(line, tag, root), orjson.dumps({"ts": ms, "value": value, "unit": unit})


@pytest.fixture
def store(tmp_path: Path) -> TelemetryStore:
    return TelemetryStore(tmp_path / "telemetry")


# --- tags ------------------------------------------------------------------------------------


def test_tags_have_unit_range_and_location() -> None:
    tags = load_tags()
    assert len(tags) == 23
    t = tags["cond2.outlet.temp"]
    assert (t.unit, t.low, t.high) == ("degC", -20.0, 150.0)
    assert "condenser stage 2" in t.location
    assert tags.frame().filter(pl.col("tag") == "stack.nmp")["tag_unit"].item() == "mg/Nm3"
    with pytest.raises(NotFound):
        tags["no.such.tag"]


def test_deployment_file_adds_and_replaces_tags(tmp_path: Path) -> None:
    extra = tmp_path / "site.toml"
    extra.write_text('[tags."coater2.exhaust.nmp"]\nunit = "ppm"\nrange = [0, 20000]\n'
                     'location = "coater 2 exhaust"\n'
                     '[tags."stack.nmp"]\nunit = "mg/m3"\nrange = [0, 500]\nlocation = "stack"\n')
    tags = load_tags(extra)
    assert len(tags) == 24
    assert tags["coater2.exhaust.nmp"].unit == "ppm"
    assert (tags["stack.nmp"].unit, tags["stack.nmp"].high) == ("mg/m3", 500.0)


@pytest.mark.parametrize("body, complaint", [
    ('[tags."a.b"]\nunit = "K"\nrange = [5, 1]\nlocation = "x"\n', "low < high"),
    ('[tags."a.b"]\nrange = [0, 1]\nlocation = "x"\n', "'unit'"),
    ('[tags."A B"]\nunit = "K"\nrange = [0, 1]\nlocation = "x"\n', "dotted lower-case"),
    ('[tags."a.b"]\nunit = "K"\nrange = [0, 1]\nlocation = "x"\ncolour = 1\n', "unknown key"),
])
def test_bad_tag_file_names_file_and_tag(tmp_path: Path, body: str, complaint: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ValidationFailed) as err:
        load_tags(path)
    assert str(path) in str(err.value) and complaint in str(err.value)


# --- payloads --------------------------------------------------------------------------------


def test_decode_single_and_frame_messages_in_columns() -> None:
    topics = [sample_topic("l1", "stack.nmp"), sample_topic("l1", "cond2.outlet.temp"),
              frame_topic("l2")]
    payloads = [
        b'{"ts": 1740873540000, "value": 7.5, "unit": "mg/Nm3"}',
        b'{"ts": "2025-03-02T07:59:00.250+08:00", "value": "13.25", "unit": "degC", "q": 1}',
        orjson.dumps({"tag": ["stack.flow", "stack.nmp"], "ts": [MS0, MS0 + 1000],
                      "value": [30000, 8.0], "unit": ["Nm3/h", "mg/Nm3"]}),
    ]
    got = decode(topics, payloads)
    assert got.rejects.is_empty()
    rows = got.samples.sort("line", "tag").select("line", "tag", "ts", "value", "unit").rows()
    assert rows == [
        ("l1", "cond2.outlet.temp", datetime(2025, 3, 1, 23, 59, 0, 250000, tzinfo=UTC),
         13.25, "degC"),
        ("l1", "stack.nmp", T0, 7.5, "mg/Nm3"),
        ("l2", "stack.flow", T0, 30000.0, "Nm3/h"),
        ("l2", "stack.nmp", T0 + timedelta(seconds=1), 8.0, "mg/Nm3"),
    ]


def test_encoders_round_trip() -> None:
    frame = pl.DataFrame({
        "ts": [T0, T0 + timedelta(seconds=10)], "tag": ["stack.nmp", "stack.flow"],
        "value": [7.25, 29950.5], "unit": ["mg/Nm3", "Nm3/h"],
    }).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    singles = decode([sample_topic("l1", t) for t in frame["tag"]], encode_samples(frame))
    framed = decode([frame_topic("l1")], [encode_frame(frame)])
    for got in (singles, framed):
        assert got.samples.select("ts", "tag", "value", "unit").sort("ts").equals(frame)


# --- screening and quarantine (no broker) ----------------------------------------------------


def bad_batch(root: str = ROOT, line: str = "l1") -> tuple[list[str], list[bytes]]:
    """4 good samples and one of every reason (two malformed: bad JSON and a missing offset)."""
    msgs = [
        single("cond2.outlet.temp", MS0, 13.1, "degC", line, root),
        single("cond2.outlet.temp", MS0 + 10_000, 13.2, "degC", line, root),
        single("cond2.outlet.temp", MS0 + 10_000, 13.2, "degC", line, root),  # duplicate
        single("cond2.outlet.temp", MS0 + 5_000, 13.3, "degC", line, root),  # out of order
        single("cond2.outlet.temp", MS0 + 20_000, 286.4, "K", line, root),  # unit mismatch
        single("cond9.outlet.temp", MS0 + 20_000, 13.4, "degC", line, root),  # unknown tag
        single("stack.nmp", MS0, 9999.0, "mg/Nm3", line, root),  # out of range (0-5000)
        single("stack.nmp", MS0 + 10_000, 7.5, "mg/Nm3", line, root),
        (sample_topic(line, "stack.nmp", root), b'{"ts": 17408735'),  # cut short
        (sample_topic(line, "stack.nmp", root),
         b'{"ts": "2025-03-02T00:00:00", "value": 1, "unit": "mg/Nm3"}'),  # no UTC offset
        single("stack.flow", MS0, 30000.0, "Nm3/h", line, root),
    ]
    return [t for t, _ in msgs], [p for _, p in msgs]


EXPECTED = {"malformed": 2, "unknown-tag": 1, "unit-mismatch": 1, "out-of-range": 1,
            "out-of-order": 1, "duplicate": 1}


def test_every_bad_kind_is_quarantined_and_counted(store: TelemetryStore) -> None:
    topics, payloads = bad_batch()
    counts = Intake(store).messages(topics, payloads)
    assert counts.quarantined == EXPECTED
    assert (counts.stored, counts.records) == (4, len(payloads))
    assert store.count("l1") == 4
    kept = store.quarantined("l1")
    assert kept.height == 7
    unit = kept.filter(pl.col("reason") == "unit-mismatch").row(0, named=True)
    assert unit["raw"] == payloads[4] and "'K'" in unit["detail"] and "'degC'" in unit["detail"]
    cut = kept.filter(pl.col("raw") == payloads[8]).row(0, named=True)
    assert cut["reason"] == "malformed" and cut["source"] == f"mqtt:{topics[8]}"


def test_order_holds_across_batches_and_restarts(store: TelemetryStore) -> None:
    first = Intake(store)
    first.messages(*zip(*[single("stack.nmp", MS0 + 10_000, 7.0, "mg/Nm3")], strict=True))
    later = first.messages(*zip(*[single("stack.nmp", MS0 + 5_000, 7.0, "mg/Nm3")],
                                strict=True))
    assert later.quarantined["out-of-order"] == 1
    restarted = Intake(store)  # a new ingester picks the newest stored time up from the files
    again = restarted.messages(*zip(*[single("stack.nmp", MS0 + 10_000, 7.0, "mg/Nm3"),
                                      single("stack.nmp", MS0 + 20_000, 7.1, "mg/Nm3")],
                                    strict=True))
    assert (again.quarantined["duplicate"], again.stored) == (1, 1)


def test_messages_outside_the_scheme_are_quarantined(store: TelemetryStore) -> None:
    topics = ["elsewhere/l1/stack.nmp", f"{ROOT}/L1!/stack.nmp", f"{ROOT}/l1/_batch",
              f"{ROOT}/l1/_batch", f"{ROOT}/l1/stack.nmp"]
    payloads = [b"{}", b"{}", b'{"tag": ["stack.nmp"], "ts": [1, 2], "value": [1], "unit": ["x"]}',
                b"[1, 2, 3]", b"\xff\xfe"]
    counts = Intake(store).messages(topics, payloads)
    assert counts.quarantined["malformed"] == 5 and counts.stored == 0
    details = store.quarantined()["detail"].to_list()
    assert sum("topic is not" in d for d in details) == 2
    assert any("equal length" in d for d in details)
    assert any("not UTF-8" in d for d in details)


# --- the store -------------------------------------------------------------------------------


def _samples(line: str, tag: str, start: datetime, values: list[float],
             every: timedelta) -> pl.DataFrame:
    return pl.DataFrame({
        "line": line, "tag": tag, "ts": [start + i * every for i in range(len(values))],
        "value": values,
    }).with_columns(pl.col("ts").dt.cast_time_unit("us"))


def test_store_queries_by_tag_and_time_across_days(store: TelemetryStore) -> None:
    # 23:59 to 00:03 over midnight: two day partitions
    store.write(_samples("l1", "stack.nmp", T0, [1.0, 2.0, 3.0, 4.0, 5.0], timedelta(minutes=1)))
    store.write(_samples("l1", "stack.flow", T0, [10.0, 20.0], timedelta(minutes=1)))
    days = sorted(p.name for p in (store.root / "l1" / "samples").iterdir())
    assert days == ["day=2025-03-01", "day=2025-03-02"]
    got = store.query("l1", ["stack.nmp"], T0 + timedelta(minutes=1), T0 + timedelta(minutes=3))
    assert got["value"].to_list() == [2.0, 3.0]  # start inclusive, end exclusive
    assert store.query("l1").height == 7
    assert store.query("l2").is_empty()
    with pytest.raises(ValidationFailed):
        store.query("l1", start=datetime(2025, 3, 1))  # no offset: ambiguous


def test_resample_gives_hourly_mean_min_max(store: TelemetryStore) -> None:
    start = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    values = [float(i) for i in range(120)]  # one a minute for two hours
    store.write(_samples("l1", "stack.nmp", start, values, timedelta(minutes=1)))
    hourly = store.resample("l1", ["stack.nmp"], every="1h")
    assert hourly.select("mean", "min", "max", "count").rows() == [
        (29.5, 0.0, 59.0, 60), (89.5, 60.0, 119.0, 60)]


def test_compact_merges_parts_and_keeps_every_row(store: TelemetryStore) -> None:
    start = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    for k in range(3):
        store.write(_samples("l1", "stack.nmp", start + timedelta(hours=k), [1.0, 2.0],
                             timedelta(minutes=1)))
    folder = store.root / "l1" / "samples" / "day=2025-03-01"
    assert len(list(folder.glob("*.parquet"))) == 3
    assert store.compact("l1") == 1
    assert len(list(folder.glob("*.parquet"))) == 1
    assert store.query("l1").height == 6


def test_a_failed_batch_leaves_nothing(store: TelemetryStore,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _samples("l1", "stack.nmp", T0, [1.0, 2.0, 3.0], timedelta(minutes=1))
    real = pl.DataFrame.write_parquet
    calls = []

    def second_fails(self, path, **kw):  # type: ignore[no-untyped-def]
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(self, path, **kw)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", second_fails)
    with pytest.raises(OSError):
        store.write(frame)  # two days -> two parts; the second fails
    monkeypatch.undo()
    assert store.query("l1").is_empty()
    assert not [p for p in store.root.rglob("*") if p.is_file()]


# --- historian CSV exports -------------------------------------------------------------------


def test_wide_csv_stores_good_cells_and_quarantines_bad_rows(tmp_path: Path,
                                                             store: TelemetryStore) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "timestamp,cond2.outlet.temp [degC],stack.nmp [mg/Nm3],bogus.tag [x]\n"
        "2025-03-02T08:00:00+08:00,13.1,7.0,1\n"
        "2025-03-02T08:00:10+08:00,13.2,,\n"        # empty cell: no sample
        "2025-03-02T08:00:05+08:00,13.3,7.2,\n"     # cond2 goes back in time; stack moves on
        "2025-03-02T08:00:20+08:00,n/a,9999,\n"     # unreadable value; out of range
    )
    result = import_csv(path, store, load_tags(), "l1")
    assert result.layout == "wide" and result.rows == 4
    assert result.counts.stored == 4  # cond2 x2, stack x2
    assert result.counts.quarantined == {"malformed": 1, "unknown-tag": 1, "unit-mismatch": 0,
                                         "out-of-range": 1, "out-of-order": 1, "duplicate": 0}
    assert store.query("l1", ["stack.nmp"])["value"].to_list() == [7.0, 7.2]
    where = store.quarantined("l1").filter(pl.col("reason") == "out-of-order")["source"].item()
    assert where == "csv:export.csv:row 4"
    # the same file again stores nothing twice
    again = import_csv(path, store, load_tags(), "l1")
    assert again.counts.stored == 0 and again.counts.quarantined["duplicate"] == 4
    assert store.count("l1") == 4


def test_long_csv_in_local_time(tmp_path: Path, store: TelemetryStore) -> None:
    path = tmp_path / "long.csv"
    path.write_text("ts,tag,value,unit\n"
                    "2025-03-02 08:00:00,stack.nmp,7.5,mg/Nm3\n"
                    "2025-03-02 08:00:10,stack.nmp,7.6,mg/m3\n")
    with pytest.raises(ValidationFailed) as err:
        import_csv(path, store, load_tags(), "l1")
    assert "row 2" in str(err.value) and "time zone" in str(err.value)
    result = import_csv(path, store, load_tags(), "l1", timezone="Asia/Shanghai")
    assert (result.layout, result.counts.stored, result.counts.quarantined["unit-mismatch"]) == (
        "long", 1, 1)
    assert store.query("l1")["ts"].to_list() == [datetime(2025, 3, 2, 0, 0, tzinfo=UTC)]


@pytest.mark.parametrize("text, complaint", [
    ("when,stack.nmp [mg/Nm3]\n2025-03-02T00:00:00Z,1\n", "no time column"),
    ("ts,stack.nmp\n2025-03-02T00:00:00Z,1\n", "column 2 'stack.nmp'"),
    ("ts,tag,value\n2025-03-02T00:00:00Z,stack.nmp,1\n", "missing ['unit']"),
    ("ts,stack.nmp [mg/Nm3]\n", "no data rows"),
])
def test_unreadable_csv_is_refused_whole(tmp_path: Path, store: TelemetryStore, text: str,
                                         complaint: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValidationFailed) as err:
        import_csv(path, store, load_tags(), "l1")
    assert str(path) in str(err.value) and complaint in str(err.value)
    assert store.lines() == []


# --- MQTT against Mosquitto ------------------------------------------------------------------


def test_mqtt_ingest_counts_every_message(broker, topic_root, publisher: Publisher,  # noqa: F811
                                          store: TelemetryStore) -> None:
    topics, payloads = bad_batch(topic_root, "line-a")
    good = [single("stack.flow", MS0 + 1000 * i, 30000.0 + i, "Nm3/h", "line-a", topic_root)
            for i in range(1, 501)]
    topics += [t for t, _ in good]
    payloads += [p for _, p in good]
    frame = pl.DataFrame({
        "ts": [T0 + timedelta(minutes=20)] * 2, "tag": ["stack.nmp", "oven.exhaust.temp"],
        "value": [8.5, 130.0], "unit": ["mg/Nm3", "degC"],
    }).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    topics.append(frame_topic("line-a", topic_root))
    payloads.append(encode_frame(frame))

    ingester = MqttIngester(store, root=topic_root, broker=broker, flush_s=0.05).start()
    try:
        sent = publisher.publish(topics, payloads)
        assert publisher.wait_acked(sent)
        assert ingester.wait_for(sent)
    finally:
        counts = ingester.stop()
    records = sent + 1  # the frame holds two samples
    assert counts.messages == sent
    assert counts.quarantined == EXPECTED
    assert counts.stored == 4 + 500 + 2
    stored, quarantined = store.count("line-a"), store.quarantined("line-a").height
    assert stored + quarantined == records == counts.records
    assert store.query("line-a", ["stack.flow"])["value"].max() == 30500.0


def test_ingester_keeps_a_batch_it_could_not_write(broker, topic_root,  # noqa: F811
                                                   publisher: Publisher, store: TelemetryStore,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real = store.write
    failures = []

    def flaky(*args, **kw):  # type: ignore[no-untyped-def]
        if not failures:
            failures.append(1)
            raise OSError("disk full")
        return real(*args, **kw)

    monkeypatch.setattr(store, "write", flaky)
    msgs = [single("stack.nmp", MS0 + 1000 * i, 7.0, "mg/Nm3", "l1", topic_root)
            for i in range(50)]
    ingester = MqttIngester(store, root=topic_root, broker=broker, flush_s=0.05).start()
    try:
        publisher.publish([t for t, _ in msgs], [p for _, p in msgs])
        assert ingester.wait_for(50)
    finally:
        counts = ingester.stop()
    assert failures and ingester.errors == 1 and "disk full" in (ingester.last_error or "")
    assert counts.stored == 50 and store.count("l1") == 50


# --- the MQTT reader's framing -----------------------------------------------------------------


def test_reader_cuts_whole_packets_and_collects_acks() -> None:
    from batteryloop.factory.telemetry.wire import split

    big = b"x" * 200  # remaining length 2 + 9 + 200 = 211: two length bytes (0xd3 0x01)
    qos0 = b"\x30\xd3\x01" + b"\x00\x09a/b/c.tag" + big
    qos1 = b"\x32\x0c" + b"\x00\x03a/b" + b"\x01\x02" + b"hello"  # 2+3+2+5 bytes; id 258
    suback = b"\x90\x03\x00\x01\x01"
    pingresp = b"\xd0\x00"
    partial = b"\x30\x10\x00\x03a/b"  # says 16 bytes follow, 5 arrived
    buf = bytearray(qos0 + suback + qos1 + pingresp + partial)
    topics, payloads, acks, other, used = split(buf, {})
    assert topics == ["a/b/c.tag", "a/b"] and payloads == [big, b"hello"]
    assert acks == [258]
    assert other == [(0x90, b"\x00\x01\x01"), (0xD0, b"")]
    assert used == len(buf) - len(partial)
