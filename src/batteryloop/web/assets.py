"""Static assets the pages load, all from installed packages, none from a CDN: plotly.js from the
plotly package's own bundle, and this package's small stylesheet and script (``web/static``).

Why served by the app rather than a static mount: each asset is read once, hashed for an ETag,
gzipped once when the client accepts it, and sent with a cache lifetime, so a page works offline
and a browser fetches the 4.8 MB plotly bundle once.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from batteryloop.errors import NotFound

router = APIRouter(include_in_schema=False)
MAX_AGE_S = 7 * 24 * 3600  # a convention of this deployment: assets change only with a release
_OWN = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str

    @property
    def gzipped(self) -> bytes:
        return _gzip(self.etag, self.body)


@cache
def _gzip(_etag: str, body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=6, mtime=0)


def _asset(body: bytes, media_type: str) -> Asset:
    return Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


@cache
def plotly_js() -> Asset:
    """plotly.js as the installed plotly package bundles it (``plotly/package_data``)."""
    return _asset((files("plotly") / "package_data" / "plotly.min.js").read_bytes(),
                  "text/javascript; charset=utf-8")


@cache
def own(name: str) -> Asset:
    if name not in _OWN:
        raise NotFound(f"no static asset '{name}'")
    return _asset((files("batteryloop.web") / "static" / name).read_bytes(), _OWN[name])


def _send(request: Request, asset: Asset) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": f"public, max-age={MAX_AGE_S}",
               "Vary": "Accept-Encoding"}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(asset.gzipped, media_type=asset.media_type,
                        headers={**headers, "Content-Encoding": "gzip"})
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/static/plotly.min.js")
def plotly_bundle(request: Request) -> Response:
    return _send(request, plotly_js())


@router.get("/static/{name}")
def static_asset(name: str, request: Request) -> Response:
    return _send(request, own(name))


def install(app: FastAPI) -> None:
    app.include_router(router)
