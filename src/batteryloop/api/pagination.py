"""Pagination of every list the API returns: ``limit`` and ``offset`` in, the page as the body.

Lists whose items are records (batteries, passports, the audit log) answer an envelope
(``items``, ``total``, ``limit``, ``offset``). The other lists (a battery's history, a test's
cycles, users, reference tables) keep a plain JSON array as their body, so existing clients read
them unchanged, and carry the paging in headers, as RFC 8288 web links: ``X-Total-Count`` and
``Link: <...>; rel="next"`` / ``rel="prev"``. The default page is large enough that a typical
list arrives whole; the limit's ceiling bounds what one request may cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, Query, Request, Response

T = TypeVar("T")
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
MAX_OFFSET = 2**31 - 1


class Page:
    """The requested slice of a list, and the headers that say where the rest is."""

    def __init__(
        self, request: Request, response: Response,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = DEFAULT_LIMIT,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")] = 0,
    ) -> None:
        self.request, self.response, self.limit, self.offset = request, response, limit, offset

    def _link(self, offset: int) -> str:
        """A reference relative to this URL (RFC 3986 5.2: ``?query`` keeps the path), its query
        percent-encoded, so any path or parameter stays within the header's character set."""
        params = {**self.request.query_params, "limit": self.limit, "offset": offset}
        return "?" + urlencode(params)

    def __call__(self, items: Sequence[T]) -> list[T]:
        total = len(items)
        links = []
        if self.offset + self.limit < total:
            links.append(f'<{self._link(self.offset + self.limit)}>; rel="next"')
        if self.offset > 0:
            links.append(f'<{self._link(max(0, self.offset - self.limit))}>; rel="prev"')
        self.response.headers["X-Total-Count"] = str(total)
        if links:
            self.response.headers["Link"] = ", ".join(links)
        return list(items[self.offset : self.offset + self.limit])


Paged = Annotated[Page, Depends()]
