"""The QR code of a battery resolves to its public passport page: decoded by a real decoder
(zxing-cpp), and its module matrix compared with a fresh encoding of the page URL."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from passport_support import add_orgs, original
from PIL import Image

from batteryloop.api import create_app
from batteryloop.passport import qr


@pytest.fixture
def passport(sqlite_db):  # type: ignore[no-untyped-def]
    with sqlite_db.session() as s:
        add_orgs(s)
        uid = original(s, "LFP")
    with TestClient(create_app(sqlite_db), raise_server_exceptions=False) as client:
        yield client, uid


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"))


def test_the_qr_code_decodes_to_the_public_page(passport) -> None:  # type: ignore[no-untyped-def]
    zxingcpp = pytest.importorskip("zxingcpp")
    client, uid = passport
    r = client.get(f"/api/v1/passports/{uid}/qr", params={"format": "png"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    decoded = zxingcpp.read_barcodes(_pixels(r.content))
    assert [d.format.name for d in decoded] == ["QRCode"]
    url = decoded[0].text
    assert url == f"http://testserver/passport/{uid}" == r.headers["x-passport-url"]
    page = client.get(url)  # anonymous: the public page
    assert page.status_code == 200 and uid in page.text
    assert 'data-attribute="carbon.battery_carbon_footprint"' in page.text
    assert 'data-attribute="general.battery_status"' not in page.text


def test_the_png_matrix_is_the_encoding_of_the_page_url(passport) -> None:  # type: ignore[no-untyped-def]
    client, uid = passport
    url = f"http://testserver/passport/{uid}"
    expected = qr.matrix(url)
    pixels = _pixels(client.get(f"/api/v1/passports/{uid}/qr", params={"format": "png"}).content)
    box = pixels.shape[0] // len(expected)  # box size 10 px, quiet zone in the matrix
    sampled = [[bool(pixels[r * box + box // 2, c * box + box // 2] < 128) for c in range(len(expected))]
               for r in range(len(expected))]
    assert sampled == expected
    svg = client.get(f"/api/v1/passports/{uid}/qr")
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
    assert client.get(f"/passport/{uid}/qr.svg").content == svg.content


def test_page_url_rejects_a_base_without_scheme() -> None:
    with pytest.raises(ValueError):
        qr.page_url("example.org", "urn:uuid:00000000-0000-4000-8000-000000000000")
    assert qr.page_url("https://bp.example.org/", "urn:uuid:x") == "https://bp.example.org/passport/urn:uuid:x"
