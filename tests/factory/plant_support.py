"""Shared helpers of the plant telemetry tests: the real Mosquitto broker, unique topics."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence

import paho.mqtt.client as mqtt
import pytest

from batteryloop.factory.telemetry.mqtt import Broker
from shared_data import need as _need



@pytest.fixture(scope="session")
def broker() -> Broker:
    """Mosquitto on localhost:1883 (BATTERYLOOP_TEST_MQTT=host:port to point elsewhere)."""
    host, _, port = os.environ.get("BATTERYLOOP_TEST_MQTT", "127.0.0.1:1883").partition(":")
    try:
        socket.create_connection((host, int(port or 1883)), timeout=2).close()
    except OSError as exc:
        _need(f"MQTT broker not reachable at {host}:{port}: {exc}")
    return Broker(host=host, port=int(port or 1883))


@pytest.fixture
def topic_root() -> str:
    """A topic root of this test only, so parallel runs never see each other's messages."""
    return f"bltest-{uuid.uuid4().hex[:12]}/plant"


class Publisher:
    """A paho client that counts its QoS 1 acknowledgements, so a test knows all went out."""

    def __init__(self, broker: Broker) -> None:
        self.acked = 0
        self._cv = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"bltest-pub-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        with self._cv:
            self.acked += 1
            self._cv.notify_all()

    def publish(self, topics: Sequence[str], payloads: Sequence[bytes], qos: int = 1) -> int:
        for topic, payload in zip(topics, payloads, strict=True):
            self.client.publish(topic, payload, qos=qos)
        return len(payloads)

    def wait_acked(self, n: int, timeout: float = 60.0) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: self.acked >= n, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(broker: Broker) -> Iterator[Publisher]:
    pub = Publisher(broker)
    yield pub
    pub.close()
