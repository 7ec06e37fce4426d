"""Sustained MQTT ingest into the Parquet store against a bare paho subscriber, in the same run.

A load generator in its own process sends N single-sample telemetry messages (valid payloads over
the demo line's 23 tags, the topic and payload scheme of ``factory/telemetry/payload.py``) to the
local Mosquitto at a fixed rate. It writes pre-encoded MQTT packets straight to a socket, so it
costs little CPU and the rate it asks for is the rate the broker sees. Three consumers subscribe in
turn, at each rate of a ladder:

- ``bare``: a paho client whose on_message only counts (the competitor: what Mosquitto delivers
  to a stock Python client);
- ``raw``: batteryloop's chunked MQTT reader (``telemetry/wire.py``) counting only, with nothing
  decoded or stored (the ceiling of the receive path);
- ``batteryloop``: ``MqttIngester``: the same reader, then buffer, decode in columns, screen
  against the tag list, write Parquet parts, count.

A rate holds when every message sent was received and, for batteryloop, stored or quarantined
(stored + quarantined = sent, checked against the files). The figure is the highest rate that
holds for each consumer, and batteryloop's over the others'. The broker drops what a slow subscriber
cannot take (its queue is bounded), so loss is how a consumer that falls behind shows.

    .venv/bin/python benchmarks/telemetry.py                     # QoS 1, 100,000 messages a rate
    .venv/bin/python benchmarks/telemetry.py --qos 0 --rates 20000,30000,40000 --messages 200000

Mosquitto must be running on localhost:1883 (``--host``/``--port`` otherwise). The machine's
other load moves the figures: compare the ratio, which both consumers share.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import polars as pl

from batteryloop.factory.tags import load_tags
from batteryloop.factory.telemetry.mqtt import Broker, MqttIngester
from batteryloop.factory.telemetry.payload import encode_frame, encode_samples
from batteryloop.factory.telemetry.store import TelemetryStore
from batteryloop.factory.telemetry.wire import Session, Subscriber

LINE = "bench"


# --- the load generator (a subprocess) ---------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _varint(len(body)) + body


def _string(s: bytes) -> bytes:
    return struct.pack("!H", len(s)) + s


def messages(n: int, root: str, batch: int = 1) -> tuple[list[str], list[bytes]]:
    """n messages of valid samples, round-robin over the tags, one second apart per tag, values
    in range; with ``batch`` > 1, each message a ``_batch`` frame of that many samples."""
    if batch > 1:
        topics, _ = messages(1, root)
        frames = _samples(n * batch).with_columns(msg=pl.int_range(pl.len()) // batch)
        payloads = [encode_frame(g.drop("msg"))
                    for g in frames.partition_by("msg", maintain_order=True)]
        return [f"{root}/{LINE}/_batch"] * n, payloads
    rows = _samples(n)
    topics = rows.select(pl.format("{}/{}/{}", pl.lit(root), pl.lit(LINE), pl.col("tag")))
    return topics.to_series().to_list(), encode_samples(rows)


def _samples(n: int) -> pl.DataFrame:
    tags = load_tags()
    frame = tags.frame()
    k = len(frame)
    rows = pl.DataFrame({"i": np.arange(n)}).with_columns(
        tag_index=pl.col("i") % k, step=pl.col("i") // k)
    rng = np.random.default_rng(0)
    picked = frame.with_row_index("tag_index").with_columns(pl.col("tag_index").cast(pl.Int64))
    rows = rows.join(picked, on="tag_index").sort("i").with_columns(
        ts=pl.lit(datetime(2025, 1, 6, tzinfo=UTC)) + pl.duration(seconds=pl.col("step")),
        value=pl.col("tag_low") + (pl.col("tag_high") - pl.col("tag_low"))
        * pl.Series(rng.uniform(0.2, 0.8, n)),
        unit=pl.col("tag_unit"),
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    return rows.select("ts", "tag", "value", "unit")


def generate(host: str, port: int, root: str, n: int, rate: float, qos: int,
             batch: int) -> None:
    """Send n messages at ``rate`` per second; print JSON with what was sent and acknowledged."""
    topics, payloads = messages(n, root, batch)
    flag = 0x32 if qos == 1 else 0x30
    packets = []
    for i, (topic, payload) in enumerate(zip(topics, payloads, strict=True)):
        pid = struct.pack("!H", i % 65535 + 1) if qos == 1 else b""
        packets.append(_packet(flag, _string(topic.encode()) + pid + payload))
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client_id = f"bench-gen-{uuid.uuid4().hex[:8]}".encode()
    sock.sendall(_packet(0x10, _string(b"MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60)
                         + _string(client_id)))
    if sock.recv(4)[:1] != b"\x20":
        raise SystemExit("no CONNACK")
    acked = [0]

    def read_acks() -> None:  # PUBACKs are 4 bytes each: count them
        buf = b""
        while acked[0] < n:
            got = sock.recv(65536)
            if not got:
                return
            buf += got
            whole = len(buf) // 4
            acked[0] += whole
            buf = buf[whole * 4:]

    reader = threading.Thread(target=read_acks, daemon=True)
    if qos == 1:
        reader.start()
    slice_s = 0.005
    per_slice = max(1, int(rate * slice_s))
    began = time.perf_counter()
    for k in range(0, n, per_slice):
        due = began + (k / rate)
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sock.sendall(b"".join(packets[k:k + per_slice]))
    took = time.perf_counter() - began
    if qos == 1:
        reader.join(timeout=30)
    sock.sendall(b"\xe0\x00")
    sock.close()
    print(json.dumps({"sent": n, "seconds": took, "acked": acked[0] if qos == 1 else None}))


# --- the consumers -----------------------------------------------------------------------------


@dataclass
class Result:
    consumer: str
    rate: float  # asked of the generator
    send_rate: float  # what it achieved (a starved broker reads slower and holds it back)
    sent: int
    received: int
    stored: int | None
    quarantined: int | None
    receive_rate: float  # messages per second between the first and the last received
    batch: int = 1  # samples per message

    @property
    def holds(self) -> bool:
        if self.received != self.sent:
            return False
        return self.stored is None or (
            self.stored + (self.quarantined or 0)) == self.sent * self.batch


class Bare:
    """paho, counting only: the broker's and the client library's own delivery rate."""

    def __init__(self, broker: Broker, root: str, qos: int) -> None:
        self.received = 0
        self.first = self.last = 0.0
        self._sub = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"bench-bare-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._sub.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"{root}/{LINE}/+", qos=qos)
        self.client.loop_start()
        self._sub.wait(10)

    def _on_message(self, client, userdata, message) -> None:  # type: ignore[no-untyped-def]
        now = time.perf_counter()
        if not self.received:
            self.first = now
        self.received += 1
        self.last = now

    def stop(self) -> tuple[int | None, int | None]:
        self.client.disconnect()
        self.client.loop_stop()
        return None, None


class Raw:
    """batteryloop's own MQTT reader (``telemetry/wire.py``), counting only: how fast messages can
    be had from the broker at all, before any decoding or storage."""

    def __init__(self, broker: Broker, root: str, qos: int) -> None:
        self.received = 0
        self.first = self.last = 0.0
        self.sub = Subscriber(Session(broker.host, broker.port), f"{root}/{LINE}/+", qos,
                              self._deliver).start()
        self.sub.subscribed.wait(10)

    def _deliver(self, topics: list[str], payloads: list[bytes]) -> None:
        now = time.perf_counter()
        if not self.received:
            self.first = now
        self.received += len(topics)
        self.last = now

    def stop(self) -> tuple[int | None, int | None]:
        self.sub.stop()
        return None, None


class Ours:
    def __init__(self, broker: Broker, root: str, qos: int, workdir: Path) -> None:
        self.store = TelemetryStore(workdir / "telemetry")
        self.ingester = MqttIngester(self.store, root=root, broker=broker, qos=qos,
                                     line=LINE).start()
        self.first = self.last = 0.0
        self._watch = threading.Thread(target=self._clock, daemon=True)
        self._stop = threading.Event()
        self._watch.start()

    def _clock(self) -> None:  # first and last arrival, sampled every millisecond
        seen = 0
        while not self._stop.is_set():
            now, got = time.perf_counter(), self.ingester.received
            if got and not seen:
                self.first = now
            if got != seen:
                self.last, seen = now, got
            time.sleep(0.001)

    @property
    def received(self) -> int:
        return self.ingester.received

    def stop(self) -> tuple[int | None, int | None]:
        self.ingester.stop()
        self._stop.set()
        return self.store.count(LINE), self.store.quarantined(LINE).height


def run(consumer: str, broker: Broker, rate: float, n: int, qos: int, workdir: Path,
        batch: int = 1) -> Result:
    root = f"bench-{uuid.uuid4().hex[:10]}/plant"
    sink: Bare | Raw | Ours
    if consumer == "bare":
        sink = Bare(broker, root, qos)
    elif consumer == "raw":
        sink = Raw(broker, root, qos)
    else:
        sink = Ours(broker, root, qos, workdir)
    gen = subprocess.run(
        [sys.executable, __file__, "--generate", "--host", broker.host, "--port",
         str(broker.port), "--root", root, "--messages", str(n), "--rate", str(rate),
         "--qos", str(qos), "--batch", str(batch)], capture_output=True, text=True, check=True)
    report = json.loads(gen.stdout.strip().splitlines()[-1])
    sent, send_rate = report["sent"], report["sent"] / max(report["seconds"], 1e-9)
    quiet_since, last = time.perf_counter(), -1
    while sink.received < sent and time.perf_counter() - quiet_since < 2.0:
        if sink.received != last:
            quiet_since, last = time.perf_counter(), sink.received
        time.sleep(0.02)
    received = sink.received
    span = max(sink.last - sink.first, 1e-9)
    stored, quarantined = sink.stop()
    return Result(consumer, rate, send_rate, sent, received, stored, quarantined, received / span,
                  batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--qos", type=int, choices=(0, 1), default=1)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--rates", default="5000,10000,15000,20000,30000,40000,60000,80000")
    ap.add_argument("--batch", type=int, default=1,
                    help="samples per message (>1: `_batch` frames; messages/s and samples/s)")
    ap.add_argument("--json", type=Path, help="write the results here too")
    ap.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        generate(args.host, args.port, args.root, args.messages, args.rate, args.qos, args.batch)
        return
    broker = Broker(args.host, args.port)
    rates = [float(r) for r in args.rates.split(",")]
    results: list[Result] = []
    best: dict[str, float] = {}
    print(f"MQTT ingest, QoS {args.qos}, {args.messages:,} messages per rate, "
          f"{args.batch} sample(s) per message, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for consumer in ("bare", "raw", "batteryloop"):
        for rate in rates:
            with tempfile.TemporaryDirectory() as tmp:
                r = run(consumer, broker, rate, args.messages, args.qos, Path(tmp), args.batch)
            results.append(r)
            store = "" if r.stored is None else (
                f", stored {r.stored:,} + quarantined {r.quarantined:,}")
            print(f"  {consumer:12s} asked {rate:>7,.0f}/s sent {r.send_rate:>7,.0f}/s -> "
                  f"received {r.receive_rate:>7,.0f}/s  "
                  f"lost {r.sent - r.received:,}{store}  {'holds' if r.holds else 'LOSS'}",
                  flush=True)
            if not r.holds:
                break
            best[consumer] = max(best.get(consumer, 0.0), r.receive_rate)
    bare, raw, ours = (best.get(k, 0.0) for k in ("bare", "raw", "batteryloop"))
    print(f"highest zero-loss rate: bare paho {bare:,.0f} msg/s, raw reader {raw:,.0f} msg/s, "
          f"batteryloop ingest into Parquet {ours:,.0f} msg/s")
    if args.batch > 1:
        print(f"in samples per second (x {args.batch}): bare {bare * args.batch:,.0f}, "
              f"raw {raw * args.batch:,.0f}, batteryloop {ours * args.batch:,.0f}")
    print(f"ratio batteryloop / bare paho {ours / bare if bare else float('nan'):.2f}, "
          f"batteryloop / raw reader {ours / raw if raw else float('nan'):.2f}")
    print("reproduce: .venv/bin/python benchmarks/telemetry.py " + " ".join(sys.argv[1:]))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ | {"holds": r.holds} for r in results],
                                        indent=2))


if __name__ == "__main__":
    main()
