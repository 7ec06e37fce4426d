"""Bulk import: hierarchy in one file, per-row reports, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from batteryloop.errors import ImportRejected
from batteryloop.registry.bulk_import import Importer
from batteryloop.registry.schemas import OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.store.models import Battery, Event


def _count(s, model) -> int:  # type: ignore[no-untyped-def]
    return s.scalar(select(func.count()).select_from(model))


def test_pack_modules_and_cells_in_one_file(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [{"uid": "urn:uuid:11111111-1111-4111-8111-111111111111", "kind": "pack", "vin": "LGXCE4CB0N0000001"}]
    for m in range(3):
        rows.append({"kind": "module", "parent": rows[0]["uid"], "serial": f"M-{m}"})
        rows += [{"kind": "cell", "parent": f"M-{m}", "serial": f"M-{m}-C{c}"} for c in range(4)]
    path = tmp_path / "pack.json"
    path.write_text(json.dumps({"batteries": rows}))
    with db.session() as s:
        s_org = Registry(s).add_organisation(OrganisationIn(name="Maker", roles=["manufacturer"]))
        report = Importer(s).run(path, actor=s_org.uid)
    assert report.written == 16 and not report.problems
    with db.session() as s:
        reg = Registry(s)
        pack = reg.describe("LGXCE4CB0N0000001")
        assert len(pack["children"]) == 3
        assert len(reg.describe("M-1")["children"]) == 4
        assert reg.describe("M-1-C3")["parent"]["uid"] == reg.battery("M-1").uid
        assert _count(s, Event) == 16


def test_invalid_rows_are_all_reported_and_nothing_is_written(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "b.csv"
    path.write_text(
        "kind,serial,rated_capacity_ah,parent,manufactured_on\n"
        "cell,C-1,50,,\n"
        "cell,C-2,-3,,\n"          # negative capacity
        "module,C-3,,,\n"
        "cell,C-4,50,C-3,\n"        # parent from this file: fine
        "pack,C-5,,C-4,\n"          # a pack inside a cell
        "cell,C-1,50,,\n"           # duplicate serial within the file
        "cell,C-7,50,,2020-13-01\n"  # impossible date
    )
    with db.session() as s:
        with pytest.raises(ImportRejected) as caught:
            Importer(s).run(path)
    problems = {(p.row, p.field) for p in caught.value.problems}
    assert {row for row, _ in problems} == {3, 6, 7, 8}
    assert (3, "rated_capacity_ah") in problems and (6, "parent") in problems
    assert (8, "manufactured_on") in problems
    with db.session() as s:
        assert _count(s, Battery) == 0 and _count(s, Event) == 0


def test_already_registered_codes_are_rejected(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "b.csv"
    path.write_text("kind,serial\ncell,S-1\n")
    with db.session() as s:
        Importer(s).run(path)
    with db.session() as s, pytest.raises(ImportRejected, match="already registered"):
        Importer(s).run(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"\xff\xfe\x00\x01", "not UTF-8"),
        (b"[1, 2]", "every JSON row must be an object"),
        (b'{"a": [], "b": []}', "exactly one list"),
        (b"[{\"kind\": ", "not valid JSON"),
        (b"kind,serial\ncell,S-1,extra\n", "more fields than the header"),
    ],
)
def test_unreadable_files_name_the_file(db, tmp_path: Path, content: bytes, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    with db.session() as s, pytest.raises(Exception, match=message) as caught:
        Importer(s).run(path)
    assert "broken.csv" in str(caught.value)
