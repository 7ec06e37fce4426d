"""The QR code of a battery (Art. 77(3)): it encodes the URL of the battery's public passport
page, ``<base URL>/passport/<urn:uuid:...>``. The page shows each reader what their tier allows,
so the code itself carries no credential and no data beyond the identifier.

Made with the ``qrcode`` package (ISO/IEC 18004), error correction level M (15 %), which survives
some wear of a printed label.
"""

from __future__ import annotations

import io
from urllib.parse import quote

import qrcode
import qrcode.constants
import qrcode.image.svg

PAGE = "/passport/"


def page_url(base_url: str, uid: str) -> str:
    base = base_url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"base URL must start with http:// or https://, got {base_url!r}")
    return base + PAGE + quote(uid, safe=":")


def _code(url: str) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=10, border=4)
    code.add_data(url)
    code.make(fit=True)
    return code


def matrix(url: str) -> list[list[bool]]:
    """The modules of the symbol, quiet zone included (True = dark)."""
    return _code(url).get_matrix()


def svg(url: str) -> bytes:
    return _code(url).make_image(image_factory=qrcode.image.svg.SvgPathImage).to_string()


def png(url: str) -> bytes:
    from qrcode.image.pil import PilImage  # needs pillow (qrcode[pil])

    buffer = io.BytesIO()
    _code(url).make_image(image_factory=PilImage).save(buffer, format="PNG")
    return buffer.getvalue()
