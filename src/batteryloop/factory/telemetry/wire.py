"""A subscribe-only MQTT 3.1.1 client that reads the socket in large chunks.

WHY: a general client library (paho) reads a message with several system calls and runs a chain
of Python calls and locks for each one; at tens of thousands of messages a second that, not the
broker, is the limit. Here one ``recv`` brings many messages, they are cut out of the buffer in
one pass, the acknowledgements of a chunk (QoS 1) go back in one ``sendall``, and the whole chunk
is handed on at once (one callback per chunk, not per message).

What it does: CONNECT (clean or persistent session, user name and password, TLS when given an
``ssl.SSLContext``), SUBSCRIBE at QoS 0 or 1, PUBLISH in (QoS 0 and 1; QoS 2 is never granted
because it is never asked for), PINGREQ every half keep-alive, reconnection with back-off and
re-subscription. What it does not: publish, MQTT 5, QoS 2. Protocol errors end the connection
and it reconnects; they never reach the caller as an exception.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 0x10, 0x20, 0x30, 0x40, 0x82, 0x90
PINGREQ, PINGRESP, DISCONNECT = b"\xc0\x00", 0xD0, b"\xe0\x00"
_CONNACK_CODES = {
    1: "unacceptable protocol version", 2: "client identifier rejected",
    3: "server unavailable", 4: "bad user name or password", 5: "not authorised",
}

Deliver = Callable[[list[str], list[bytes]], None]


class ProtocolError(Exception):
    pass


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(raw)) + raw


def _packet(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _varint(len(body)) + body


@dataclass(frozen=True)
class Session:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""
    clean_session: bool = True
    keepalive: int = 30
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None


def split(buf: bytearray | bytes, topics: dict[bytes, str]) -> tuple[
        list[str], list[bytes], list[int], list[tuple[int, bytes]], int]:
    """Cut whole packets off the front of ``buf``.

    Returns the PUBLISH topics and payloads, the packet ids to acknowledge (QoS 1), the other
    packets (type, body) and how many bytes were used. ``topics`` caches decoded topic names.
    """
    view = memoryview(buf)
    n = len(buf)
    pos = 0
    out_topics: list[str] = []
    out_payloads: list[bytes] = []
    acks: list[int] = []
    other: list[tuple[int, bytes]] = []
    while pos + 2 <= n:
        first = buf[pos]
        # remaining length: 1 to 4 bytes, 7 bits each
        length = mult = 0
        i = pos + 1
        while True:
            if i >= n:
                return out_topics, out_payloads, acks, other, pos
            byte = buf[i]
            length += (byte & 0x7F) << mult
            mult += 7
            i += 1
            if not byte & 0x80:
                break
            if mult > 21:
                raise ProtocolError("remaining length longer than 4 bytes")
        end = i + length
        if end > n:
            break
        if first & 0xF0 == PUBLISH:
            qos = (first >> 1) & 0x03
            if qos == 2:
                raise ProtocolError("QoS 2 message without a QoS 2 subscription")
            tlen = (buf[i] << 8) | buf[i + 1]
            key = bytes(view[i + 2:i + 2 + tlen])
            topic = topics.get(key)
            if topic is None:
                topic = topics[key] = key.decode("utf-8", errors="replace")
            body = i + 2 + tlen
            if qos:
                acks.append((buf[body] << 8) | buf[body + 1])
                body += 2
            out_topics.append(topic)
            out_payloads.append(bytes(view[body:end]))
        else:
            other.append((first, bytes(view[i:end])))
        pos = end
    return out_topics, out_payloads, acks, other, pos


class Subscriber:
    """Subscribes to one topic filter and hands every chunk of messages to ``deliver``."""

    def __init__(self, session: Session, topic: str, qos: int, deliver: Deliver, *,
                 on_state: Callable[[str], None] | None = None, chunk: int = 1 << 20) -> None:
        if qos not in (0, 1):
            raise ValueError("QoS must be 0 or 1")
        self.session = session
        self.topic = topic
        self.qos = qos
        self.deliver = deliver
        self.on_state = on_state or (lambda state: None)
        self.chunk = chunk
        self.client_id = session.client_id or f"batteryloop-{uuid.uuid4().hex[:12]}"
        self.subscribed = threading.Event()
        self.last_error: str | None = None
        self.connections = 0
        self._stop = threading.Event()
        self._closing = False
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._topics: dict[bytes, str] = {}
        self._send_lock = threading.Lock()

    # --- one connection ------------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        s = self.session
        sock = socket.create_connection((s.host, s.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        if s.tls is not None:
            sock = s.tls.wrap_socket(sock, server_hostname=s.host)
        flags = 0x02 if s.clean_session else 0
        payload = _string(self.client_id)
        if s.username is not None:
            flags |= 0x80
            payload += _string(s.username)
            if s.password is not None:
                flags |= 0x40
                payload += _string(s.password)
        sock.sendall(_packet(CONNECT, _string("MQTT") + bytes([4, flags])
                             + struct.pack("!H", s.keepalive) + payload))
        head = self._read_exactly(sock, 4)
        if head[0] != CONNACK or head[1] != 2:
            raise ProtocolError("no CONNACK")
        if head[3]:
            raise ProtocolError(f"connection refused: {_CONNACK_CODES.get(head[3], head[3])}")
        sock.sendall(_packet(SUBSCRIBE, struct.pack("!H", 1) + _string(self.topic)
                             + bytes([self.qos])))
        return sock

    @staticmethod
    def _read_exactly(sock: socket.socket, n: int) -> bytes:
        got = b""
        while len(got) < n:
            part = sock.recv(n - len(got))
            if not part:
                raise ProtocolError("connection closed by the broker")
            got += part
        return got

    def _serve(self, sock: socket.socket) -> None:
        s = self.session
        sock.settimeout(max(0.5, s.keepalive / 4))
        buf = bytearray()
        ping_every = max(1.0, s.keepalive / 2)
        last_sent = time.monotonic()
        while not self._stop.is_set():
            try:
                data = sock.recv(self.chunk)
            except TimeoutError:
                data = None
            except OSError:
                if self._stop.is_set():
                    return
                raise
            if data == b"":
                if self._closing:  # the broker closes after our DISCONNECT: all is read
                    return
                raise ProtocolError("connection closed by the broker")
            if data:
                buf += data
                topics, payloads, acks, other, used = split(buf, self._topics)
                del buf[:used]
                if acks:  # one write acknowledges the whole chunk
                    with self._send_lock:
                        sock.sendall(b"".join(b"\x40\x02" + struct.pack("!H", a) for a in acks))
                    last_sent = time.monotonic()
                for kind, body in other:
                    self._control(kind, body)
                if topics:
                    self.deliver(topics, payloads)
            if time.monotonic() - last_sent > ping_every:
                with self._send_lock:
                    sock.sendall(PINGREQ)
                last_sent = time.monotonic()

    def _control(self, kind: int, body: bytes) -> None:
        if kind == SUBACK:
            if len(body) < 3 or body[2] == 0x80:
                raise ProtocolError(f"subscription to {self.topic!r} refused")
            self.subscribed.set()
            self.on_state("subscribed")
        elif kind in (PINGRESP, PUBACK):
            return
        else:
            log.debug("MQTT packet 0x%02x ignored", kind)

    # --- life cycle ----------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set() and not self._closing:
            try:
                sock = self._connect()
                self._sock = sock
                self.connections += 1
                backoff = 0.5
                self._serve(sock)
                if self._closing:
                    break
            except (OSError, ProtocolError, ssl.SSLError) as exc:
                if self._stop.is_set() or self._closing:
                    break
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.subscribed.clear()
                self.on_state("disconnected")
                log.warning("MQTT connection lost (%s); reconnecting in %.1f s",
                            self.last_error, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                if self._sock is not None:
                    try:
                        self._sock.close()
                    except OSError:
                        pass
                    self._sock = None

    def start(self) -> Subscriber:
        self._thread = threading.Thread(target=self._run, name="mqtt-subscriber", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Send DISCONNECT and deliver everything read until the broker closes the connection."""
        self._closing = True
        sock = self._sock
        if sock is not None:
            try:
                with self._send_lock:
                    sock.sendall(DISCONNECT)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():  # no answer: cut the connection
                self._stop.set()
                if self._sock is not None:
                    try:
                        self._sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                self._thread.join(timeout=timeout)
        self._stop.set()
