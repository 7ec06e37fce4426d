"""sSpP pack assembly: against exhaustive search on small packs, invariants, bounds, scale, bad input."""

from __future__ import annotations

import itertools
import time
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from batteryloop.errors import ValidationFailed
from batteryloop.grading.regroup.assembly import (
    Assignment,
    assemble,
    evaluate,
    pack_upper_bound,
    regroup_packs,
)


@cache
def _partitions(series: int, parallel: int) -> np.ndarray:
    """Every split of S*P cells into S unordered groups of P: array (count, S, P)."""

    def split(items: tuple[int, ...]):  # type: ignore[no-untyped-def]
        if not items:
            yield ()
            return
        first, rest = items[0], items[1:]
        for others in itertools.combinations(rest, parallel - 1):
            left = tuple(x for x in rest if x not in others)
            for tail in split(left):
                yield ((first, *others), *tail)

    return np.array(list(split(tuple(range(series * parallel)))), dtype=np.int64)


def _optimum(c: np.ndarray, series: int, parallel: int) -> float:
    return float(c[_partitions(series, parallel)].sum(axis=2).min(axis=1).max())


SMALL = [(2, 2), (3, 2), (2, 3), (4, 2), (3, 3), (2, 4), (5, 2), (4, 3), (3, 4)]


@pytest.mark.parametrize(("series", "parallel"), SMALL)
def test_small_packs_match_exhaustive_search(series: int, parallel: int) -> None:
    """Tolerance: optimal in at least 90 % of draws, never more than 0.5 % below the optimum.
    Measured: all 216 draws here optimal; on other seeds the worst seen was a wide-spread 3S4P
    draw 0.24 % below (a single start, ``starts=1``, misses more: up to 0.5 % on wide draws)."""
    rng = np.random.default_rng(100 * series + parallel)
    n = series * parallel
    hits, worst = 0, 0.0
    draws = 24
    for t in range(draws):
        # alternately a realistic second-life spread (3 %) and a wide one (1..2 Ah)
        c = rng.normal(20.0, 0.6, n) if t % 2 else rng.uniform(1.0, 2.0, n)
        best = _optimum(c, series, parallel)
        got = float(assemble(c, series=series, parallel=parallel).usable[0])
        assert got <= best + 1e-9  # nothing beats the optimum
        rel = (best - got) / best
        hits += rel < 1e-12
        worst = max(worst, rel)
        # the bound is valid: never below the optimum
        assert pack_upper_bound(c, series, parallel) >= best - 1e-9
    assert hits >= 0.9 * draws, f"{hits}/{draws} optimal"
    assert worst <= 0.005


def test_bound_is_tight_on_clustered_cells() -> None:
    # 21 cells of one grade and 35 of another, 14S4P: some 7 groups must take two weak cells,
    # so the best pack is ~29.76 Ah, below total / S (~29.81); the pigeonhole bound sees that
    c = np.r_[np.full(21, 7.33), np.full(35, 7.52)]
    bound = float(pack_upper_bound(c, 14, 4))
    assert bound == pytest.approx(2 * 7.33 + 2 * 7.52, abs=1e-9)
    assert c.sum() / 14 > bound + 0.05
    a = assemble(c, series=14, parallel=4)
    assert a.usable[0] == pytest.approx(bound, abs=1e-9)
    assert a.gap_pct[0] == pytest.approx(0.0, abs=1e-9)


def test_bound_special_cases() -> None:
    c = np.array([[1.0, 2, 3, 4, 5, 6], [0.1, 0.1, 5, 5, 5, 5]])
    assert pack_upper_bound(c, 3, 2) == pytest.approx([7.0, 5.1])
    assert pack_upper_bound(c, 6, 1) == pytest.approx([1.0, 0.1])  # P = 1: the weakest cell
    assert pack_upper_bound(c, 1, 6) == pytest.approx(c.sum(axis=1))


def _check_invariants(a: Assignment, n: int, series: int, parallel: int) -> None:
    assert a.cells.shape == (a.n_packs, series, parallel)  # every group exactly P cells
    used = a.cells.ravel()
    assert np.unique(used).size == used.size  # each cell at most once
    assert np.intersect1d(used, a.leftover).size == 0
    assert used.size + a.leftover.size == n  # and every cell accounted for
    assert a.leftover.size == n - a.n_packs * series * parallel
    assert (a.pack_of[used] >= 0).all() and (a.pack_of[a.leftover] == -1).all()
    k, g, _ = np.unravel_index(np.arange(used.size), a.cells.shape)
    assert (a.pack_of[used] == k).all() and (a.group_of[used] == g).all()
    assert np.all(a.usable <= a.upper_bound + 1e-9)


@pytest.mark.parametrize("packing", ["window", "stratified", "random"])
@pytest.mark.parametrize("leftover", ["weakest", "outliers"])
def test_invariants(packing: str, leftover: str) -> None:
    rng = np.random.default_rng(7)
    n, s, p = 1_003, 6, 3
    caps = rng.normal(50.0, 4.0, n).clip(30)
    res = rng.uniform(1e-3, 3e-3, n)
    a = assemble(caps, res, s, p, packing=packing, leftover=leftover)  # type: ignore[arg-type]
    _check_invariants(a, n, s, p)
    assert a.n_packs == n // (s * p)
    assert a.packs().height == a.n_packs
    # the resistance balance never costs capacity: same packs, same capacity search, then R
    plain = assemble(caps, None, s, p, packing=packing, leftover=leftover)  # type: ignore[arg-type]
    assert np.array_equal(np.sort(a.cells.reshape(a.n_packs, -1), 1), np.sort(plain.cells.reshape(a.n_packs, -1), 1))
    assert np.all(a.usable >= plain.usable - 1e-9)


def test_fewer_packs_take_the_strongest_cells_and_leftovers() -> None:
    rng = np.random.default_rng(3)
    caps = rng.uniform(5, 10, 500)
    a = assemble(caps, series=4, parallel=5, n_packs=10)
    _check_invariants(a, 500, 4, 5)
    assert caps[a.cells].min() >= caps[a.leftover].max()  # the weakest are left over


def test_outlier_leftovers_give_the_tightest_windows() -> None:
    """The dynamic programme against every choice of cells on a small case."""
    rng = np.random.default_rng(11)
    s, p, m, n = 2, 1, 3, 9  # windows of 2 cells, 3 packs, 3 left over
    for _ in range(20):
        caps = np.round(rng.uniform(1, 10, n), 3)
        a = assemble(caps, series=s, parallel=p, n_packs=m, leftover="outliers")
        best = np.inf
        for keep in itertools.combinations(range(n), m * s * p):
            v = np.sort(caps[list(keep)])[::-1].reshape(m, s * p)
            best = min(best, float((v[:, 0] - v[:, -1]).sum()))
        assert a.capacity_range.sum() == pytest.approx(best, abs=1e-9)
        weakest = assemble(caps, series=s, parallel=p, n_packs=m)
        assert a.capacity_range.sum() <= weakest.capacity_range.sum() + 1e-12


def test_baselines_are_worse_and_options_trade_as_stated() -> None:
    rng = np.random.default_rng(5)
    n, s, p = 2_000, 14, 4
    caps = rng.normal(8.0, 0.8, n).clip(4)
    res = rng.lognormal(np.log(0.012), 0.25, n)
    ours = assemble(caps, res, s, p)
    rand = assemble(caps, res, s, p, packing="random", balance=False)
    filled = assemble(caps, res, s, p, balance=False)  # our packs, groups filled in order
    assert ours.gap_pct.max() < 0.05
    assert rand.gap_pct.mean() > 2.0 and filled.gap_pct.mean() > 10 * ours.gap_pct.mean()
    assert ours.resistance_spread_pct.mean() < filled.resistance_spread_pct.mean()
    # regrouping given packs: the same as assemble's within-pack step
    again = regroup_packs(ours.cells.reshape(ours.n_packs, -1), caps, res, s, p)
    assert np.allclose(np.sort(again.usable), np.sort(ours.usable))
    # resistance blocks: narrower resistance spread for a little capacity homogeneity
    blocks = assemble(caps, res, s, p, resistance_blocks=4)
    assert blocks.resistance_spread_pct.mean() < ours.resistance_spread_pct.mean()
    assert blocks.gap_pct.max() < 0.05
    # capacity slack: the resistance balance may give up at most that share of usable capacity
    slack = assemble(caps, res, s, p, capacity_slack=1e-4)
    assert slack.resistance_spread_pct.mean() < ours.resistance_spread_pct.mean()
    assert np.all(slack.usable >= ours.usable * (1 - 1e-4) - 1e-9)


def test_ten_thousand_real_cells_within_half_a_percent(shared_dir: Path) -> None:
    """10,000 cells resampled from PulseBat LMO 10 Ah (capacity, 5 s DCIR) with jitter, 14S4P."""
    from batteryloop.grading.regroup.features import pulsebat_cells

    real = pulsebat_cells(shared_dir, "LMO_10Ah")
    rng = np.random.default_rng(2024)
    pick = rng.integers(0, real.height, 10_000)
    caps = real["capacity"].to_numpy()[pick] * (1 + 0.005 * rng.standard_normal(10_000))
    res = real["dcir"].to_numpy()[pick] * (1 + 0.02 * rng.standard_normal(10_000))
    start = time.perf_counter()
    a = assemble(caps, res, series=14, parallel=4)
    seconds = time.perf_counter() - start
    _check_invariants(a, 10_000, 14, 4)
    assert a.n_packs == 178 and a.leftover.size == 32
    assert a.gap_pct.max() <= 0.5
    assert a.gap_pct.mean() <= 0.01  # measured ~0.0004 %
    assert seconds < 10.0  # the benchmark's figure is ~0.5 s; this only catches a collapse
    # against the fleet bound: the windows lose nothing to speak of
    assert a.usable.sum() >= 0.999 * caps[a.cells].sum() / 14


def test_evaluate_checks_and_scores_given_packs() -> None:
    caps = np.arange(1.0, 13.0)
    a = evaluate(np.arange(12).reshape(1, 3, 4), caps)
    assert a.usable[0] == pytest.approx(1 + 2 + 3 + 4)
    assert a.leftover.size == 0
    with pytest.raises(ValidationFailed, match="more than once"):
        evaluate(np.zeros((1, 3, 4), dtype=int), caps)


@pytest.mark.parametrize(
    ("kwargs", "location"),
    [
        ({"capacities": np.ones(10), "series": 4, "parallel": 3}, "capacities"),
        ({"capacities": np.r_[1.0, 2.0, np.nan, np.ones(9)], "series": 3, "parallel": 2}, "capacities[2]"),
        ({"capacities": np.r_[1.0, -2.0, np.ones(10)], "series": 3, "parallel": 2}, "capacities[1]"),
        ({"capacities": np.r_[np.ones(5), 0.0, np.ones(6)], "series": 3, "parallel": 2}, "capacities[5]"),
        ({"capacities": np.ones(12), "resistances": np.r_[np.ones(11), np.nan], "series": 3, "parallel": 2}, "resistances[11]"),
        ({"capacities": np.ones(12), "resistances": np.ones(11), "series": 3, "parallel": 2}, "resistances"),
        ({"capacities": np.ones(12), "series": 0, "parallel": 2}, "series"),
        ({"capacities": np.ones(12), "series": 3, "parallel": 2.5}, "parallel"),
        ({"capacities": np.ones(12), "series": 3, "parallel": 2, "n_packs": 3}, "n_packs"),
        ({"capacities": np.ones((3, 4)), "series": 3, "parallel": 2}, "capacities"),
        ({"capacities": ["a"] * 12, "series": 3, "parallel": 2}, "capacities"),
        ({"capacities": np.ones(12), "series": 3, "parallel": 2, "capacity_slack": -0.1}, "capacity_slack"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict, location: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        assemble(**kwargs)
    assert err.value.location == location
