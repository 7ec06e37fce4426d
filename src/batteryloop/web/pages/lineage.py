"""The lineage graph of a battery, both ways, laid out for an SVG: what it was made from on the
left (each generation a column further out), what was made from it on the right.

Why SVG and not a plot: a lineage is a handful of boxes and arrows that must link to each
battery's page; plain SVG does that with no script at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COLUMN_W, NODE_W, NODE_H, ROW_H, PAD = 230, 190, 44, 58, 12


@dataclass
class _Layout:
    columns: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    edges: list[tuple[tuple[int, int], tuple[int, int], str]] = field(default_factory=list)

    def add(self, level: int, node: dict[str, Any]) -> tuple[int, int]:
        column = self.columns.setdefault(level, [])
        column.append(node)
        return level, len(column) - 1

    def walk(self, parent: tuple[int, int], items: list[dict[str, Any]], level: int,
             key: str, step: int) -> None:
        for item in items:
            here = self.add(level, item)
            # the arrow points from the older battery to the one made from it
            self.edges.append((here, parent, item.get("relation") or "") if step < 0
                              else (parent, here, item.get("relation") or ""))
            self.walk(here, item.get(key) or [], level + step, key, step)


def graph(lineage: dict[str, Any]) -> dict[str, Any]:
    """Boxes (x, y, label, uid, state) and arrows (x1, y1, x2, y2, relation) for the template."""
    lay = _Layout()
    centre = lay.add(0, {**lineage, "current": True})
    lay.walk(centre, lineage.get("sources") or [], -1, "sources", -1)
    lay.walk(centre, lineage.get("successors") or [], 1, "successors", 1)
    low, high = min(lay.columns), max(lay.columns)
    rows = max(len(c) for c in lay.columns.values())
    height = PAD * 2 + rows * ROW_H

    def pos(level: int, index: int) -> tuple[float, float]:
        count = len(lay.columns[level])
        top = (height - count * ROW_H) / 2
        return PAD + (level - low) * COLUMN_W, top + index * ROW_H + (ROW_H - NODE_H) / 2

    nodes = []
    for level, column in lay.columns.items():
        for i, n in enumerate(column):
            x, y = pos(level, i)
            nodes.append({"x": x, "y": y, "w": NODE_W, "h": NODE_H, "uid": n["uid"],
                          "label": n.get("code") or n["uid"].removeprefix("urn:uuid:")[:18],
                          "sub": f"{n.get('kind', '')} · {n.get('state', '')}",
                          "current": bool(n.get("current"))})
    arrows = []
    for (la, ia), (lb, ib), relation in lay.edges:
        xa, ya = pos(la, ia)
        xb, yb = pos(lb, ib)
        arrows.append({"x1": xa + NODE_W, "y1": ya + NODE_H / 2, "x2": xb, "y2": yb + NODE_H / 2,
                       "relation": relation})
    return {"nodes": nodes, "arrows": arrows, "height": height,
            "width": PAD * 2 + (high - low) * COLUMN_W + NODE_W,
            "sources": len(lineage.get("sources") or []),
            "successors": len(lineage.get("successors") or [])}
