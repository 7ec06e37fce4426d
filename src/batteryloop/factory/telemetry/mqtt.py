"""MQTT ingester: subscribe to a plant's topics, buffer, and store in columnar batches.

The network thread (``wire.Subscriber``) reads the socket in large chunks and appends each chunk
of (topic, payload) pairs to a buffer under one lock; a second thread swaps the buffer out every
``flush_s`` seconds (or at ``max_batch`` messages) and hands it to ``Intake`` (decode, screen,
store or quarantine) as one batch. A batch that cannot be written (a full disk, say) is kept and
retried, never dropped, and no payload can stop the ingester: bad ones are quarantined. ``stop``
disconnects and stores everything received.

The subscription is QoS 1 by default: the broker then redelivers what it sent but did not see
acknowledged after a reconnect (with ``clean_session=False`` and a fixed ``client_id`` also what
arrived while the ingester was away); a redelivered sample is caught as a duplicate. MQTT has no
back-pressure from subscriber to publisher: a broker drops what a subscriber's queue cannot hold
(Mosquitto: ``max_queued_messages``), so the ingester must keep up; ``benchmarks/telemetry.py``
measures how fast it does.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from batteryloop.factory.tags import TagSet
from batteryloop.factory.telemetry.intake import Counts, Intake
from batteryloop.factory.telemetry.payload import DEFAULT_ROOT, subscription
from batteryloop.factory.telemetry.store import TelemetryStore
from batteryloop.factory.telemetry.wire import Session, Subscriber

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Broker:
    host: str = "127.0.0.1"
    port: int = 1883
    keepalive: int = 30
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None


class MqttIngester:
    """Telemetry from an MQTT broker into a ``TelemetryStore``."""

    def __init__(
        self,
        store: TelemetryStore,
        tags: TagSet | None = None,
        *,
        broker: Broker | None = None,
        root: str = DEFAULT_ROOT,
        line: str = "+",
        qos: int = 1,
        flush_s: float = 0.5,
        max_batch: int = 200_000,
        client_id: str | None = None,
        clean_session: bool = True,
    ) -> None:
        self.intake = Intake(store, tags, root=root)
        self.broker = broker or Broker()
        self.topic = subscription(root, line)
        self.flush_s = flush_s
        self.max_batch = max_batch
        self.received = 0
        self.errors = 0
        self.last_error: str | None = None
        self._topics: list[str] = []
        self._payloads: list[bytes] = []
        self._retry: tuple[list[str], list[bytes], datetime] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._flusher: threading.Thread | None = None
        b = self.broker
        self.subscriber = Subscriber(
            Session(b.host, b.port, client_id or "", clean_session, b.keepalive, b.username,
                    b.password, b.tls),
            self.topic, qos, self._deliver)

    @property
    def counts(self) -> Counts:
        return self.intake.counts

    def _deliver(self, topics: list[str], payloads: list[bytes]) -> None:
        """Network thread: one chunk of messages joins the buffer."""
        with self._lock:
            self._topics += topics
            self._payloads += payloads
            self.received += len(topics)
            full = len(self._topics) >= self.max_batch
        if full:
            self._wake.set()

    def flush(self) -> Counts | None:
        """Store what has arrived; a failed batch is kept for the next try."""
        if self._retry is None:
            with self._lock:
                if not self._topics:
                    return None
                batch = (self._topics, self._payloads, datetime.now(UTC))
                self._topics, self._payloads = [], []
        else:
            batch, self._retry = self._retry, None
        try:
            return self.intake.messages(*batch)
        except Exception as exc:  # noqa: BLE001 - keep running; the batch waits for a retry
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("telemetry batch of %d messages not stored; will retry", len(batch[0]))
            self._retry = batch
            return None

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            self.flush()
            if self._retry is not None:
                self._stopping.wait(min(5.0, self.flush_s * 4))

    def start(self, timeout: float = 10.0) -> MqttIngester:
        """Connect, subscribe and start both threads; returns once the subscription holds."""
        self.subscriber.start()
        self._flusher = threading.Thread(target=self._run, name="telemetry-flush", daemon=True)
        self._flusher.start()
        if not self.subscriber.subscribed.wait(timeout):
            error = self.subscriber.last_error
            self.stop()
            raise ConnectionError(
                f"no subscription to {self.topic} on {self.broker.host}:{self.broker.port} "
                f"within {timeout} s ({error or 'no answer'})")
        return self

    def stop(self) -> Counts:
        """Disconnect, then store everything received; returns the totals."""
        self.subscriber.stop()
        self._stopping.set()
        self._wake.set()
        if self._flusher is not None:
            self._flusher.join()
        deadline = time.monotonic() + 30
        while (self._topics or self._retry is not None) and time.monotonic() < deadline:
            self.flush()
        return self.counts

    def wait_for(self, messages: int, timeout: float = 30.0) -> bool:
        """Block until ``messages`` messages have arrived (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while self.received < messages:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def __enter__(self) -> MqttIngester:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
