"""The sparse matrix engine on small graphs worked out by hand."""

from __future__ import annotations

import pytest

from batteryloop.carbon.inventory import ProcessGraph, multipliers
from batteryloop.errors import ValidationFailed


def _graph() -> ProcessGraph:
    g = ProcessGraph()
    g.add("electricity", unit="kWh", direct=0.5)
    g.add("steel", unit="kg", direct=2.0, inputs={"electricity": 1.0})
    g.add("part", unit="p", direct=1.0, inputs={"steel": 3.0, "electricity": 2.0}, stage="make")
    g.add("eol", unit="p", inputs={"steel": -1.5, "electricity": 0.5}, stage="end")
    g.add("product", unit="p", inputs={"part": 1.0, "eol": 1.0}, stage="make")
    return g


def test_scores_scaling_and_stages_by_hand() -> None:
    r = _graph().solve({"product": 1.0})
    # steel costs 2 + 1*0.5 = 2.5 per kg; part: 1 + 3*2.5 + 2*0.5 = 9.5; eol: -1.5*2.5 + 0.5*0.5 = -3.5
    assert r.by_stage == pytest.approx({"make": 9.5, "end": -3.5})
    assert r.total == pytest.approx(6.0)
    assert r.scaling["steel"] == pytest.approx(1.5)        # 3 made, 1.5 avoided
    assert r.scaling["electricity"] == pytest.approx(4.0)  # 2 + 0.5 + 1.5 for the steel
    assert sum(r.by_stage.values()) == pytest.approx(r.total)


def test_a_loop_between_background_processes() -> None:
    g = ProcessGraph()
    g.add("electricity", unit="kWh", direct=0.5, inputs={"steel": 0.01})
    g.add("steel", unit="kg", direct=2.0, inputs={"electricity": 1.0})
    # m_s = 2 + m_e, m_e = 0.5 + 0.01 m_s  ->  m_s = 2.5 / 0.99
    assert multipliers(g, ["steel"])["steel"] == pytest.approx(2.5 / 0.99)
    r = g.solve({"steel": 1.0})
    assert r.total == pytest.approx(2.5 / 0.99)
    assert r.by_stage == pytest.approx({"unstaged": 2.5 / 0.99})


def test_matrices_are_sparse_and_square() -> None:
    a, b, index = _graph().matrices()
    assert a.shape == (5, 5) and b.shape == (1, 5)
    assert a.nnz == 5 + 7  # diagonal + seven exchanges
    assert a[index["steel"], index["eol"]] == pytest.approx(1.5)  # a credit is a positive entry


def test_estimate_share_counts_flagged_processes() -> None:
    g = ProcessGraph()
    g.add("known", unit="kg", direct=3.0)
    g.add("guess", unit="kg", direct=1.0, estimate=True)
    g.add("thing", unit="p", inputs={"known": 1.0, "guess": 1.0}, stage="make")
    r = g.solve({"thing": 1.0})
    assert r.estimate_share == pytest.approx(0.25) and r.estimate_processes == ["guess"]


def test_bad_graphs_are_refused_with_the_process_named() -> None:
    g = _graph()
    g.add("orphan", unit="p", inputs={"unobtainium": 1.0}, stage="make")
    with pytest.raises(ValidationFailed, match="unobtainium"):
        g.solve({"product": 1.0})
    g = _graph()
    g.add("bad", unit="kg", inputs={"part": 1.0})  # background consuming foreground
    with pytest.raises(ValidationFailed, match="background process 'bad'"):
        g.solve({"product": 1.0})
    g = ProcessGraph()
    g.add("self", unit="kg", direct=1.0, inputs={"self": 1.0}, stage="make")  # makes nothing net
    with pytest.raises(ValidationFailed, match="cannot be solved"):
        g.solve({"self": 1.0})
    with pytest.raises(ValidationFailed, match="twice"):
        g.add("self", unit="kg")
    with pytest.raises(ValidationFailed, match="demand"):
        _graph().solve({"nothing": 1.0})
