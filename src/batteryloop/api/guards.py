"""Request guards in front of every route: body size and per-caller rate limits.

Both run as plain ASGI middleware, before FastAPI parses anything, so an oversized body is refused
without being read into memory and a caller over its rate is answered without touching the
database. Rate counting uses the ``limits`` library (a moving window in process memory): one
server process, one window per caller; a deployment with several workers points ``limits`` at
Redis or memcached instead.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from batteryloop.api.problems import MEDIA

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MULTIPART = b"multipart/form-data"


class _TooLarge(Exception):
    pass


async def _problem(send: Send, path: str, status: int, title: str, detail: str,
                   headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail,
                       "instance": path}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", MEDIA.encode()),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value
    return None


class BodyLimit:
    """413 for a body over the limit: uploads (multipart) get ``upload_bytes``, the rest ``body_bytes``.

    The declared Content-Length is checked first; a chunked body is counted as it streams in and cut
    off at the limit, so nothing past it is ever buffered.
    """

    def __init__(self, app: ASGIApp, *, body_bytes: int, upload_bytes: int) -> None:
        self.app, self.body_bytes, self.upload_bytes = app, body_bytes, upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        content_type = _header(scope, b"content-type") or b""
        upload = content_type.startswith(_MULTIPART)
        limit = self.upload_bytes if upload else self.body_bytes
        # a multipart envelope (boundaries, part headers) adds a little over the file itself
        allowed = limit + (64 * 1024 if upload else 0)
        what = "max_upload_bytes" if upload else "max_body_bytes"
        detail = f"the request body is larger than the limit of {limit:,} bytes ({what})"
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > allowed:
            await _problem(send, scope["path"], 413, "Request too large", detail)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > allowed:
                    raise _TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await _problem(send, scope["path"], 413, "Request too large", detail)


class RateLimit:
    """429 with Retry-After once a caller exceeds its rate; the caller is its token, else its address."""

    def __init__(self, app: ASGIApp, *, rate: str, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.item = parse_limit(rate)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.clock = clock

    @staticmethod
    def caller(scope: Scope) -> str:
        """The bearer token or session cookie (hashed: never kept in memory as is), else the client."""
        auth = _header(scope, b"authorization") or b""
        if auth[:7].lower() == b"bearer ":
            return "t:" + hashlib.sha256(auth[7:].strip()).hexdigest()
        cookie = _header(scope, b"cookie")
        if cookie:
            for part in cookie.split(b";"):
                name, _, value = part.strip().partition(b"=")
                if name == b"batteryloop_session" and value:
                    return "s:" + hashlib.sha256(value).hexdigest()
        client = scope.get("client")
        return "a:" + (client[0] if client else "unknown")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = self.caller(scope)
        if not self.limiter.hit(self.item, key):
            reset, _remaining = self.limiter.get_window_stats(self.item, key)
            wait = max(1, math.ceil(reset - self.clock()))
            await _problem(
                send, scope["path"], 429, "Too many requests",
                f"this caller may make {self.item} requests; retry in {wait} s (rate_limit)",
                headers=[(b"retry-after", str(wait).encode())],
            )
            return
        await self.app(scope, receive, send)


def install(app: Any, *, body_bytes: int, upload_bytes: int, rate: str) -> None:
    """Add the guards: the rate limit outermost, so a flood is refused before any body is read."""
    app.add_middleware(BodyLimit, body_bytes=body_bytes, upload_bytes=upload_bytes)
    if rate:
        app.add_middleware(RateLimit, rate=rate)
