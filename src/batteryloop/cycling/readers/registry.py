"""One registry of readers. Each reader sniffs file CONTENT and returns a confidence in [0, 1].

The extension may only break ties (a small bonus), never make a match on its own, so a text file
renamed ``.mpr`` is not mistaken for a BioLogic binary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from batteryloop.cycling.readers._common import done
from batteryloop.cycling.schema import CyclerMetadata

SniffFn = Callable[[bytes, Path], float]
ParseFn = Callable[[Path], "tuple[pl.DataFrame, CyclerMetadata]"]


@dataclass(frozen=True)
class Reader:
    """A tester format: ``sniff(head, path) -> confidence`` and ``parse(path) -> (partial frame,
    meta)``; :meth:`read` gives the canonical frame."""

    name: str
    tester: str
    sniff: SniffFn
    parse: ParseFn
    extensions: tuple[str, ...] = ()

    def read(self, path: Path) -> tuple[pl.DataFrame, CyclerMetadata]:
        """Parse, then normalise. Normalising after the parser has returned means the file's bytes
        it held are freed before the normalisation's intermediate columns are allocated."""
        df, meta = self.parse(Path(path))
        return done(df, meta)

    def score(self, head: bytes, path: Path) -> float:
        """Content confidence plus a tie-break bonus of 0.01 for a matching extension."""
        base = self.sniff(head, path)
        if base <= 0:
            return 0.0
        suffixes = "".join(path.suffixes).lower()
        bonus = 0.01 if any(suffixes.endswith(e) for e in self.extensions) else 0.0
        return base + bonus


READERS: dict[str, Reader] = {}


def register(reader: Reader) -> Reader:
    """Add a reader to the registry (module import time)."""
    READERS[reader.name] = reader
    return reader
