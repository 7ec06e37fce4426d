"""Shared plumbing for text exports: decoding, header search, fast polars parsing, clear errors."""

from __future__ import annotations

import functools
import hashlib
import io
import re
from pathlib import Path

import polars as pl

from batteryloop.cycling.errors import CyclerFileError

HEAD_BYTES = 64 * 1024
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
#: Every byte that is not a control character (< 9 or 14..31): deleting these leaves the controls.
_NOT_CONTROL = bytes(b for b in range(256) if not (b < 9 or 13 < b < 32))
#: UTF-8 is validated in chunks of this many bytes (no decoded copy of the whole file).
_CHECK_CHUNK = 1 << 20


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def to_utf8(raw: bytes) -> bytes:
    """UTF-16 (with BOM) is transcoded; a UTF-8 BOM is dropped; other bytes pass through.

    Testers on Windows sometimes save UTF-16 or cp1252; polars reads only UTF-8, and a byte-order
    mark would otherwise end up in the first column's name.
    """
    if raw.startswith(_UTF16_BOMS):
        return raw.decode("utf-16").encode("utf-8")
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:]
    if not is_utf8(raw):
        # Not UTF-8: Windows testers write cp1252/Latin-1 (a lone 0xB0 for the degree sign).
        return raw.decode("cp1252", errors="replace").encode("utf-8")
    return raw


def is_utf8(raw: bytes) -> bool:
    """Whether ``raw`` decodes as UTF-8, checked a chunk at a time (no decoded copy of the whole
    file). Chunks end before a byte that starts a character, so none splits one."""
    if raw.isascii():
        return True
    start, n = 0, len(raw)
    while start < n:
        end = min(start + _CHECK_CHUNK, n)
        for _ in range(3):  # a character has at most 3 continuation bytes
            if end < n and raw[end] & 0xC0 == 0x80:
                end -= 1
        try:
            raw[start:end].decode("utf-8")
        except UnicodeDecodeError:
            return False
        start = end
    return True


# Detection hands the same head to every reader's sniffer: decode it once (a small cache keyed by
# the head's bytes, which are hashed once and then compared by identity).
@functools.lru_cache(maxsize=4)
def head_text(head: bytes) -> str:
    """Decode the first bytes of a file for sniffing (never fails)."""
    if head.startswith(_UTF16_BOMS):
        return head.decode("utf-16", errors="ignore")
    return head.decode("utf-8", errors="replace")


@functools.lru_cache(maxsize=4)
def first_line(head: bytes) -> str:
    """The first line of ``head_text(head)`` ("" for an empty head)."""
    lines = head_text(head).splitlines()
    return lines[0] if lines else ""


@functools.lru_cache(maxsize=4)
def looks_binary(head: bytes) -> bool:
    """NUL bytes or many control characters: not a text export."""
    if head.startswith(_UTF16_BOMS):
        return False
    sample = head[:4096]
    if b"\x00" in sample:
        return True
    ctrl = len(sample.translate(None, _NOT_CONTROL))
    return ctrl > len(sample) * 0.05


def line_at(data: bytes, offset: int) -> str:
    """The line that starts at byte ``offset``, decoded, without its line end."""
    end = data.find(b"\n", offset)
    return data[offset: end if end >= 0 else len(data)].decode("utf-8", "replace").rstrip("\r")


def line_offset(data: bytes, line_no: int) -> int:
    """Byte offset of 0-based line ``line_no``."""
    pos = 0
    for _ in range(line_no):
        nxt = data.find(b"\n", pos)
        if nxt < 0:
            return len(data)
        pos = nxt + 1
    return pos


def find_line(data: bytes, pattern: bytes, limit: int = 200) -> int | None:
    """0-based index of the first of the first ``limit`` lines that starts with ``pattern``."""
    pos = 0
    for i in range(limit):
        if data.startswith(pattern, pos):
            return i
        nxt = data.find(b"\n", pos)
        if nxt < 0:
            return None
        pos = nxt + 1
    return None


def cut_partial_last_line(data: bytes, sep: bytes, start: int = 0) -> tuple[bytes, bool]:
    """Drop a last line that was cut mid-write (fewer separators than the header).

    The table's header line starts at byte ``start``. Returns the data (whole, or up to the start
    of the cut line) and whether a line was dropped. A file that merely lacks its final newline
    is kept whole. Only the dropped case copies the bytes.
    """
    end = len(data)
    while end > start and data[end - 1] in b"\r\n":
        end -= 1
    header_end = data.find(b"\n", start, end)
    if header_end < 0:
        return data, False
    n_header = data.count(sep, start, header_end)
    last_start = data.rfind(b"\n", start, end) + 1
    if last_start > header_end and data.count(sep, last_start, end) < n_header:
        return data[:last_start], True
    return data, False


def read_table(path: Path, body: bytes, *, sep: str, first_line: int,
               overrides: dict[str, pl.DataType] | None = None,
               columns: list[str] | None = None, quote_char: str | None = '"',
               null_values: list[str] | None = None, skip_lines: int = 0) -> pl.DataFrame:
    """Parse a delimited body with polars, naming the bad row on failure.

    The header is line ``skip_lines`` (0-based) of ``body``: a preamble is skipped by the parser,
    not sliced off (which would copy the file). ``first_line`` is the 1-based file line of the
    header, so errors point at file lines. Columns in ``overrides`` are parsed strictly, the rest
    are returned as strings; on failure the body is re-read as text to find the first offending
    row, which goes into the error.
    """
    # No type inference: columns in ``overrides`` are parsed as given, all others stay text.
    # (Inference over many rows costs several times the parse itself.) Bytes are handed over
    # without a copy (polars reads the buffer of a BytesIO over bytes in place).
    kwargs = {"separator": sep, "quote_char": quote_char, "null_values": null_values,
              "truncate_ragged_lines": True, "encoding": "utf8-lossy", "infer_schema": False,
              "skip_lines": skip_lines}
    try:
        return pl.read_csv(io.BytesIO(body), schema_overrides=overrides, columns=columns, **kwargs)
    except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError,
            pl.exceptions.SchemaError, pl.exceptions.ColumnNotFoundError) as exc:
        _raise_bad_row(path, body, sep=sep, first_line=first_line, overrides=overrides,
                       columns=columns, kwargs=kwargs, exc=exc)
        raise  # pragma: no cover - _raise_bad_row always raises


def _raise_bad_row(path: Path, body: bytes, *, sep: str, first_line: int,
                   overrides: dict[str, pl.DataType] | None, columns: list[str] | None,
                   kwargs: dict, exc: Exception) -> None:
    try:
        text = pl.read_csv(io.BytesIO(body), **kwargs)
    except Exception as exc2:  # noqa: BLE001 - unreadable even as text
        raise CyclerFileError(path, f"not a readable delimited table ({exc2})") from exc
    wanted = columns or list((overrides or {}).keys())
    missing = [c for c in wanted if c not in text.columns]
    if missing:
        raise CyclerFileError(path, f"missing column(s) {missing}", row=first_line) from exc
    for name, dtype in (overrides or {}).items():
        if name not in text.columns:
            continue
        s = text[name]
        bad = s.is_not_null() & s.cast(dtype, strict=False).is_null()
        if bad.any():
            idx = int(bad.arg_true()[0])
            raise CyclerFileError(
                path, f"column {name!r}: {s[idx]!r} is not a {dtype}", row=first_line + 1 + idx
            ) from exc
    raise CyclerFileError(path, f"cannot parse table: {exc}") from exc


NUMBER = re.compile(rb"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
