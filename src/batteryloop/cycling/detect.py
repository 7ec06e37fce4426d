"""Pick the reader for a file by looking at its content (the extension only breaks ties)."""

from __future__ import annotations

from pathlib import Path

from batteryloop.cycling.errors import CyclerFileError
from batteryloop.cycling.readers import READERS, Reader
from batteryloop.cycling.readers._text import HEAD_BYTES

#: Below this confidence no reader is trusted with the file.
MIN_CONFIDENCE = 0.3


def rank(path: str | Path) -> list[tuple[float, Reader]]:
    """All readers with a positive score for ``path``, best first."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        raise CyclerFileError(p, f"cannot open: {exc.strerror or exc}") from exc
    if not head or head.isspace():
        raise CyclerFileError(p, "file is empty")
    scores = [(r.score(head, p), r) for r in READERS.values()]
    return sorted([s for s in scores if s[0] > 0], key=lambda s: -s[0])


def detect(path: str | Path) -> Reader:
    """The best reader for ``path``; CyclerFileError naming the file when none fits."""
    ranked = rank(path)
    if not ranked or ranked[0][0] < MIN_CONFIDENCE:
        raise CyclerFileError(
            path, "not a recognised battery-tester file (no reader matched its content; "
            f"known formats: {', '.join(sorted(READERS))})")
    return ranked[0][1]
