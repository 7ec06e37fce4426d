"""Body-size and rate limits in front of every route (api/guards.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from batteryloop.api import create_app, guards
from batteryloop.api.pagination import Paged
from batteryloop.settings import get_settings
from batteryloop.store import Database


def _app(*, body: int = 100, upload: int = 1000, rate: str = "") -> FastAPI:
    app = FastAPI()
    seen: list[int] = []
    app.state.seen = seen

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        data = await request.body()
        seen.append(len(data))
        return {"bytes": len(data)}

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    guards.install(app, body_bytes=body, upload_bytes=upload, rate=rate)
    return app


def test_body_over_the_limit_is_refused_before_the_route_runs() -> None:
    app = _app(body=100)
    client = TestClient(app)
    assert client.post("/echo", content=b"x" * 100).json() == {"bytes": 100}
    r = client.post("/echo", content=b"x" * 101)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert "max_body_bytes" in r.json()["detail"] and r.json()["instance"] == "/echo"
    assert app.state.seen == [100]


def test_chunked_body_is_cut_off_at_the_limit() -> None:
    app = _app(body=100)

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"y" * 50

    r = TestClient(app).post("/echo", content=chunks())
    assert r.status_code == 413
    assert app.state.seen == []


def test_multipart_uploads_get_the_upload_limit() -> None:
    app = _app(body=100, upload=200_000)
    client = TestClient(app)
    ok = client.post("/echo", files={"file": ("a.csv", b"z" * 150_000)})
    assert ok.status_code == 200 and ok.json()["bytes"] > 150_000
    big = client.post("/echo", files={"file": ("a.csv", b"z" * 300_000)})
    assert big.status_code == 413 and "max_upload_bytes" in big.json()["detail"]


def test_rate_limit_per_caller_with_retry_after() -> None:
    client = TestClient(_app(rate="5/minute"))
    assert [client.get("/ping").status_code for _ in range(5)] == [200] * 5
    r = client.get("/ping")
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert "rate_limit" in r.json()["detail"]
    # another token is another caller, with its own window
    other = {"Authorization": "Bearer another-token"}
    assert client.get("/ping", headers=other).status_code == 200


def test_callers_are_keyed_by_token_cookie_or_address() -> None:
    key = guards.RateLimit.caller
    a = key({"headers": [(b"authorization", b"Bearer abc")], "client": ("1.2.3.4", 1)})
    b = key({"headers": [(b"authorization", b"Bearer abd")], "client": ("1.2.3.4", 1)})
    assert a != b and a.startswith("t:") and "abc" not in a
    c = key({"headers": [(b"cookie", b"x=1; batteryloop_session=s3cret")], "client": ("h", 1)})
    assert c.startswith("s:") and "s3cret" not in c
    assert key({"headers": [], "client": ("9.9.9.9", 5)}) == "a:9.9.9.9"


def test_the_platform_app_applies_the_configured_limits(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATTERYLOOP_MAX_BODY_BYTES", "64")
    monkeypatch.setenv("BATTERYLOOP_RATE_LIMIT", "3/minute")
    get_settings.cache_clear()
    try:
        client = TestClient(create_app(sqlite_db))
        r = client.post("/api/v1/organisations", json={"name": "x" * 200, "roles": []})
        assert r.status_code == 413
        codes = [client.get("/api/v1/health").status_code for _ in range(3)]
        assert codes[-1] == 429 and codes[0] == 200
    finally:
        get_settings.cache_clear()


def test_plain_lists_are_paged_with_link_headers() -> None:
    app = FastAPI()

    @app.get("/things/{name}")
    def things(page: Paged, name: str) -> list[int]:
        return page(list(range(25)))

    client = TestClient(app)
    whole = client.get("/things/x")
    assert whole.json() == list(range(25)) and whole.headers["x-total-count"] == "25"
    assert "link" not in whole.headers
    r = client.get("/things/\u0100", params={"limit": 10, "offset": 10, "q": "é"})
    assert r.json() == list(range(10, 20))
    links = dict(reversed(part.split("; ")) for part in r.headers["link"].split(", "))
    nxt, prev = links['rel="next"'], links['rel="prev"']
    assert "offset=20" in nxt and "limit=10" in nxt and "q=%C3%A9" in nxt
    assert "offset=0" in prev
    assert client.get("/things/x", params={"offset": 20}).json() == list(range(20, 25))
    assert client.get("/things/x", params={"limit": 0}).status_code == 422
