"""Pack assembly: put cells into sSpP packs so that the weakest parallel group is as strong as possible.

A pack of ``S`` series groups of ``P`` parallel cells can deliver the capacity of its weakest group:
``usable = min over groups of the sum of the group's capacities``. Choosing the groups is balanced
multiway number partitioning (``S`` parts of exactly ``P`` numbers each), NP-hard in general; for the
pack sizes of practice a differencing start and an exchange search get within a hair of the bound.

Two levels:

1. **Across packs** (``packing``): which ``S*P`` cells share a pack. ``"window"`` (default) sorts
   the cells by capacity and cuts consecutive windows, so that every pack is internally homogeneous
   (cells of one grade age alike and share the load alike); with ``resistance_blocks=b`` each run
   of ``b`` consecutive windows is re-cut into packs by resistance (packs a little wider in
   capacity, narrower in resistance). ``"stratified"`` deals the sorted cells out in a snake so
   that all packs are alike but each is mixed; ``"random"`` is a random split (a baseline). Cells
   that do not fill a whole pack are left over: the weakest (``leftover="weakest"``, default: they
   would limit any pack they joined), or, with ``leftover="outliers"``, those whose removal makes
   the windows tightest (a dynamic programme over the sorted capacities minimising the sum of the
   packs' capacity ranges).

2. **Within a pack**, all packs at once (numpy arrays of shape ``(packs, S, P)``; the Python loops
   run over exchange rounds, never over cells):

   a. starts: the balanced largest differencing method (BLDM, the Karmarkar-Karp differencing
      idea for parts of equal cardinality; Michiels, Korst, Aarts, van Leeuwen, Spieksma, "Performance
      ratios for the differencing method applied to the balanced number partitioning problem",
      STACS 2003): the sorted cells form ``P`` partial solutions of ``S`` single cells (rows of
      ``S`` consecutive cells), and the two partial solutions with the largest spread are merged,
      largest sum of one to smallest of the other, until one remains. Small problems also start
      from a snake deal and random deals (``starts``; by default up to 16 when there are few cells,
      1 for thousands) and keep each pack's best;
   b. an exchange search: each round, every pack still improving swaps one cell, or two (for
      ``4 <= P <= 8``: a ``k``-cell swap equals a ``P-k``-cell one, and with more parallel cells
      single swaps are fine-grained enough), between its weakest group and the
      group that lifts it most; when the weakest group cannot rise, one of the next few weakest
      (three) is evened out with a stronger group instead, which can open a way for the weakest.
      Every swap raises the smaller sum of its pair without lowering the pack's minimum, and lowers
      the sum of squares of the group sums, so the search ends; a pack with no such swap stops;
   c. resistance balance (when ``resistances`` are given), second: the same search on the groups'
      conductances (sum of ``1/R`` of the parallel cells), lifting the least conductive (highest
      resistance) group, with only the swaps after which both groups keep at least the pack's
      usable capacity from step b, times ``1 - capacity_slack`` (default 0: capacity is never
      given up; a slack of 1e-5 to 1e-4 buys most of the resistance balance, see the benchmark).

``pack_upper_bound`` bounds each pack's usable capacity: ``total / S`` "rounded to what P cells
allow" (see its text); the gap reported is ``(bound - usable) / bound``. It is a bound, not the
optimum: where it is loose (strongly mixed packs) a gap does not mean capacity was left behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import combinations
from typing import Literal

import numpy as np
import polars as pl

from batteryloop.errors import ValidationFailed

Packing = Literal["window", "stratified", "random"]
Leftover = Literal["weakest", "outliers"]

_CHUNK = 4_000_000  # elements per candidate-swap array (bounds memory for large P)
_PAIR_SWAP_MAX_P = 8
_LOW_GROUPS = 3  # groups that may take the weaker side of a swap when the weakest group is stuck


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


def pack_upper_bound(capacities: np.ndarray, series: int, parallel: int) -> np.ndarray:
    """Upper bound on a pack's usable capacity; ``capacities`` has shape ``(..., S*P)``.

    ``total / S`` made to respect the ``P`` cells per group. Take the ``j`` weakest cells (for
    every ``j``) and, in any assignment, ``h`` groups that hold ``w`` of them: the weakest group is
    no stronger than the mean of those ``h`` groups, which is at most (the ``w`` strongest of the
    ``j`` weakest + the ``h*P - w`` strongest cells) / ``h``, less the more weak cells they hold.
    Two ways to pick the groups, each forced to exist whatever the assignment:

    * all groups that hold any of the ``j`` weakest (``w = j``, ``ceil(j/P) <= h <= min(j, S)``);
    * by pigeonhole, with ``t = ceil(j/S)``, the groups that hold at least ``t`` of them:
      ``h >= 1`` of them, holding ``w >= max(h*t, j - (S-h)*(t-1))`` weak cells.

    The assignment decides ``h``, so each ``j`` bounds by the largest value over feasible ``h``;
    the bound is the least over ``j`` and both ways. ``j = S*P`` gives ``total / S``; ``j = 1``
    gives ``c_min +`` the ``P - 1`` strongest; the pigeonhole way is what is tight when cells come
    in clusters (e.g. 21 of 56 cells of one grade: some 7 groups must take two each).
    """
    c = np.sort(np.asarray(capacities, dtype=float), axis=-1)
    n = c.shape[-1]
    lead = c.shape[:-1]
    weak = np.concatenate([np.zeros(lead + (1,)), np.cumsum(c, axis=-1)], axis=-1)  # j weakest
    strong = np.concatenate([np.zeros(lead + (1,)), np.cumsum(c[..., ::-1], axis=-1)], axis=-1)
    j = np.arange(1, n + 1)[:, None]
    h = np.arange(1, series + 1)[None, :]
    bounds = []
    t = -(-j // series)
    for w, feasible in (
        (np.broadcast_to(j, (n, series)), (h * parallel >= j) & (h <= j)),
        (np.maximum(h * t, j - (series - h) * (t - 1)), None),
    ):
        if feasible is None:
            feasible = w <= np.minimum(h * parallel, j)
        w = np.clip(w, 0, n)
        jj = np.broadcast_to(j, w.shape)
        top_weak = weak[..., jj] - weak[..., np.clip(jj - w, 0, n)]  # the w strongest of j weakest
        others = strong[..., np.clip(h * parallel - w, 0, n)]
        value = np.where(feasible, (top_weak + others) / h, -np.inf)
        bounds.append(value.max(axis=-1).min(axis=-1))
    return np.minimum(bounds[0], bounds[1])


@dataclass(frozen=True)
class Assignment:
    """Which cell is in which pack and series group.

    ``cells[k, g, j]`` is the index (into the input arrays) of the ``j``-th parallel cell of series
    group ``g`` of pack ``k``; ``leftover`` the indices of the cells in no pack.
    """

    cells: np.ndarray
    leftover: np.ndarray
    capacities: np.ndarray
    resistances: np.ndarray | None = None

    @property
    def n_packs(self) -> int:
        return int(self.cells.shape[0])

    @property
    def series(self) -> int:
        return int(self.cells.shape[1])

    @property
    def parallel(self) -> int:
        return int(self.cells.shape[2])

    @cached_property
    def pack_of(self) -> np.ndarray:
        """Pack index of every input cell, -1 for left-over cells."""
        out = np.full(self.capacities.shape[0], -1, dtype=np.int64)
        out[self.cells.reshape(self.n_packs, -1)] = np.arange(self.n_packs)[:, None]
        return out

    @cached_property
    def group_of(self) -> np.ndarray:
        """Series-group index (within its pack) of every input cell, -1 for left-over cells."""
        out = np.full(self.capacities.shape[0], -1, dtype=np.int64)
        out[self.cells] = np.arange(self.series)[None, :, None]
        return out

    @cached_property
    def group_capacity(self) -> np.ndarray:
        """``(packs, S)``: summed capacity of each parallel group."""
        return self.capacities[self.cells].sum(axis=2)

    @cached_property
    def usable(self) -> np.ndarray:
        """Usable capacity of each pack: its weakest parallel group."""
        return self.group_capacity.min(axis=1)

    @cached_property
    def upper_bound(self) -> np.ndarray:
        return pack_upper_bound(
            self.capacities[self.cells].reshape(self.n_packs, -1), self.series, self.parallel
        )

    @cached_property
    def gap_pct(self) -> np.ndarray:
        """(bound - usable) / bound, %; rounding noise below zero (a pack at its bound) is 0."""
        gap = 100.0 * (self.upper_bound - self.usable) / self.upper_bound
        return np.where((gap < 0) & (gap > -1e-9), 0.0, gap)

    @cached_property
    def group_resistance(self) -> np.ndarray | None:
        """``(packs, S)``: resistance of each parallel group, ``1 / sum(1/R)``."""
        if self.resistances is None:
            return None
        return 1.0 / (1.0 / self.resistances[self.cells]).sum(axis=2)

    @cached_property
    def resistance_spread_pct(self) -> np.ndarray:
        """(max - min) / mean of the group resistances per pack, %; NaN without resistances."""
        r = self.group_resistance
        if r is None:
            return np.full(self.n_packs, np.nan)
        return 100.0 * (r.max(axis=1) - r.min(axis=1)) / r.mean(axis=1)

    @cached_property
    def capacity_range(self) -> np.ndarray:
        """Max - min of the cell capacities within each pack (homogeneity of the pack)."""
        c = self.capacities[self.cells].reshape(self.n_packs, -1)
        return c.max(axis=1) - c.min(axis=1)

    def packs(self) -> pl.DataFrame:
        """One row per pack: usable capacity, bound, gap, resistance spread, capacity range."""
        return pl.DataFrame(
            {
                "pack": np.arange(self.n_packs),
                "usable_capacity": self.usable,
                "upper_bound": self.upper_bound,
                "gap_pct": self.gap_pct,
                "resistance_spread_pct": self.resistance_spread_pct,
                "capacity_range": self.capacity_range,
                "min_cell_capacity": self.capacities[self.cells].reshape(self.n_packs, -1).min(axis=1),
            }
        )

    def summary(self) -> dict[str, float]:
        gap = self.gap_pct
        spread = self.resistance_spread_pct
        return {
            "n_packs": float(self.n_packs),
            "n_leftover": float(self.leftover.size),
            "gap_mean_pct": float(gap.mean()),
            "gap_max_pct": float(gap.max()),
            "gap_min_pct": float(gap.min()),
            "usable_total": float(self.usable.sum()),
            "upper_bound_total": float(self.upper_bound.sum()),
            "usable_min": float(self.usable.min()),
            "resistance_spread_mean_pct": float(np.mean(spread)),
            "resistance_spread_max_pct": float(np.max(spread)),
            "capacity_range_mean": float(self.capacity_range.mean()),
        }


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _positive_vector(values: object, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"not numeric: {exc}", location=name) from exc
    if arr.ndim != 1:
        raise ValidationFailed(f"expected a 1-D sequence, got shape {arr.shape}", location=name)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValidationFailed(f"not a finite number (NaN or inf) at index {int(bad[0])}", location=f"{name}[{int(bad[0])}]")
    bad = np.flatnonzero(arr <= 0)
    if bad.size:
        raise ValidationFailed(f"must be > 0, got {arr[bad[0]]:g}", location=f"{name}[{int(bad[0])}]")
    return arr


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValidationFailed(f"must be a whole number >= 1, got {value!r}", location=name)
    return int(value)


# --------------------------------------------------------------------------------------------
# Across packs
# --------------------------------------------------------------------------------------------


def _tightest_windows(c: np.ndarray, n_packs: int, width: int) -> np.ndarray:
    """Start positions of ``n_packs`` disjoint windows of ``width`` consecutive sorted values
    minimising the sum of the windows' ranges (``c`` sorted in descending order)."""
    n = c.size
    cost = c[: n - width + 1] - c[width - 1 :]
    prev = np.zeros(n + 1)  # best total for k-1 windows within the first i cells
    back = np.empty((n_packs, n - width + 1), dtype=np.int64)
    idx = np.arange(n - width + 1)
    for k in range(n_packs):
        cand = prev[: n - width + 1] + cost
        run = np.minimum.accumulate(cand)
        back[k] = np.maximum.accumulate(np.where(cand == run, idx, 0))
        cur = np.full(n + 1, np.inf)
        cur[width:] = run
        prev = cur
    starts = np.empty(n_packs, dtype=np.int64)
    end = n
    for k in range(n_packs - 1, -1, -1):
        starts[k] = back[k, end - width]
        end = starts[k]
    return starts


def _split_into_packs(
    caps: np.ndarray,
    res: np.ndarray | None,
    n_packs: int,
    width: int,
    packing: str,
    leftover: str,
    blocks: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    n = caps.size
    if packing == "random":
        perm = rng.permutation(n)
        return perm[: n_packs * width].reshape(n_packs, width), np.sort(perm[n_packs * width :])
    order = np.argsort(-caps, kind="stable")
    if leftover == "outliers" and n > n_packs * width:
        starts = _tightest_windows(caps[order], n_packs, width)
        pos = starts[:, None] + np.arange(width)[None, :]
        used = np.zeros(n, dtype=bool)
        used[pos.ravel()] = True
        chosen, rest = order[pos], order[~used]
    else:
        chosen, rest = order[: n_packs * width].reshape(n_packs, width), order[n_packs * width :]
    if packing == "stratified":
        deal = chosen.ravel().reshape(width, n_packs)  # round t deals n_packs cells
        deal[1::2] = deal[1::2, ::-1]
        chosen = deal.T.copy()
    elif res is not None and blocks > 1:
        chosen = _resistance_blocks(chosen, res, blocks)
    return chosen, np.sort(rest)


def _resistance_blocks(chosen: np.ndarray, res: np.ndarray, blocks: int) -> np.ndarray:
    """Re-cut each run of ``blocks`` consecutive capacity windows into packs by resistance."""
    m, width = chosen.shape
    out = chosen.copy()
    full = (m // blocks) * blocks
    for lo, hi, size in ((0, full, blocks), (full, m, m - full)):
        if hi - lo < 2:
            continue
        part = out[lo:hi].reshape(-1, size * width)
        part = np.take_along_axis(part, np.argsort(res[part], axis=1, kind="stable"), axis=1)
        out[lo:hi] = part.reshape(-1, width)
    return out


# --------------------------------------------------------------------------------------------
# Within packs
# --------------------------------------------------------------------------------------------


def _differencing(x: np.ndarray, series: int, parallel: int) -> np.ndarray:
    """BLDM start for every pack; ``x`` is ``(m, S*P)``; returns column positions ``(m, S, P)``."""
    m, n = x.shape
    ar = np.arange(m)
    order = np.argsort(-x, axis=1, kind="stable")
    xs = np.take_along_axis(x, order, axis=1)
    sums = xs.reshape(m, parallel, series).copy()  # partial solution r = sorted cells r*S..r*S+S-1
    sol = np.broadcast_to(np.repeat(np.arange(parallel), series), (m, n)).copy()
    tup = np.broadcast_to(np.tile(np.arange(series), parallel), (m, n)).copy()
    alive = np.ones((m, parallel), dtype=bool)
    for _ in range(parallel - 1):
        spread = sums.max(axis=2) - sums.min(axis=2)
        spread[~alive] = -np.inf
        top = np.argsort(-spread, axis=1, kind="stable")[:, :2]
        a, b = top[:, 0], top[:, 1]
        sa, sb = sums[ar, a], sums[ar, b]
        pa = np.argsort(sa, axis=1, kind="stable")  # a's tuples, smallest first
        pb = np.argsort(-sb, axis=1, kind="stable")  # b's tuples, largest first
        mapping = np.empty((m, series), dtype=np.int64)
        mapping[ar[:, None], pb] = pa
        merged = sa.copy()
        merged[ar[:, None], pa] += sb[ar[:, None], pb]
        sums[ar, a] = merged
        alive[ar, b] = False
        in_b = sol == b[:, None]
        tup = np.where(in_b, np.take_along_axis(mapping, tup, axis=1), tup)
        sol = np.where(in_b, a[:, None], sol)
    by_group = np.argsort(tup, axis=1, kind="stable")
    return np.take_along_axis(order, by_group, axis=1).reshape(m, series, parallel)


def _combos(parallel: int, k: int) -> np.ndarray:
    return np.array(list(combinations(range(parallel), k)), dtype=np.int64).reshape(-1, k)


def _best_exchange(
    v: np.ndarray,
    combos: np.ndarray,
    c: np.ndarray | None,
    floor: np.ndarray | None,
    all_pairs: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best exchange of ``k`` cells (rows of ``combos``) between two groups of each pack.

    ``v`` (and the constraint values ``c``) are ``(m, S, P)``. An exchange between groups ``a``
    (the smaller ``v`` sum) and ``b`` is scored by the smaller of the two new sums, and its gain is
    that minus ``a``'s old sum; with ``c``, both groups must keep a ``c`` sum of at least ``floor``.
    ``all_pairs=False``: ``a`` is the pack's weakest group, the gain is the rise of the pack's
    minimum. ``all_pairs=True``: any pair, the weakest pair that can be improved first (the pack's
    minimum does not fall, and the sum of squares of the group sums does). Returns (gain, a, b,
    combo in a, combo in b), gain ``-inf`` where nothing is allowed.
    """
    m, s, _ = v.shape
    ar = np.arange(m)
    sums = v.sum(axis=2)
    u = v[:, :, combos].sum(axis=3)  # (m, S, nc)
    if all_pairs:  # a among the pack's few weakest groups: the lowest pair that can rise goes first
        low = np.argsort(sums, axis=1, kind="stable")[:, : min(s, _LOW_GROUPS)]
        sa = np.take_along_axis(sums, low, axis=1)[:, :, None]  # (m, L, 1)
        ua = u[ar[:, None], low]  # (m, L, nc)
    else:
        a0 = sums.argmin(axis=1)
        sa = sums[ar, a0][:, None, None]  # (m, 1, 1)
        ua = u[ar, a0][:, None, :]  # (m, 1, nc)
    # d[m, a, b, i, j] = u[b, j] - u[a, i]
    d = u[:, None, :, None, :] - ua[:, :, None, :, None]
    sb = sums[:, None, :, None, None]
    sa5 = sa[:, :, :, None, None]
    val = np.minimum(sa5 + d, sb - d)
    allowed = sa5 < sb  # a is the smaller of the pair (this also excludes b == a)
    if c is not None:
        csum = c.sum(axis=2)
        cu = c[:, :, combos].sum(axis=3)
        if all_pairs:
            cua, csa = cu[ar[:, None], low], np.take_along_axis(csum, low, axis=1)[:, :, None]
        else:
            cua, csa = cu[ar, a0][:, None, :], csum[ar, a0][:, None, None]
        dc = cu[:, None, :, None, :] - cua[:, :, None, :, None]
        f = floor[:, None, None, None, None]
        allowed = allowed & (csa[:, :, :, None, None] + dc >= f) & (csum[:, None, :, None, None] - dc >= f)
    gain = np.where(allowed, val - sa5, -np.inf)
    if all_pairs:
        # the lowest group that can rise goes first (``low`` is in rising order), then the gain
        scale = np.abs(sums).max(axis=1)[:, None, None, None, None] + 1e-300
        rank = np.arange(sa.shape[1], dtype=float)[None, :, None, None, None]
        key = np.where(gain > 1e-9 * scale, np.minimum(gain / scale, 1.0) - 2.0 * rank, -np.inf)
    else:
        key = gain
    nb, nc = d.shape[2], combos.shape[0]
    best = key.reshape(m, -1).argmax(axis=1)
    g = gain.reshape(m, -1)[ar, best]
    a, rest = np.divmod(best, nb * nc * nc)
    b, rest = np.divmod(rest, nc * nc)
    i, j = np.divmod(rest, nc)
    a = low[ar, a] if all_pairs else a0
    return g, a, b, i, j


def _search(
    v: np.ndarray, c: np.ndarray | None, floor: np.ndarray | None, ks: list[int], combos: list[np.ndarray],
    all_pairs: bool, tol: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best exchange over the exchange sizes ``ks``; combos padded to width max(ks)."""
    width = max(ks)
    best: list[np.ndarray] | None = None
    for cb in combos:
        g, a, b, i, j = _best_exchange(v, cb, c, floor, all_pairs)
        ci, cj = cb[i], cb[j]
        if cb.shape[1] < width:  # repeat the index: a repeated exchange of the same cell
            ci = np.repeat(ci, width // cb.shape[1], axis=1)
            cj = np.repeat(cj, width // cb.shape[1], axis=1)
        if best is None:
            best = [g, a, b, ci, cj]
            continue
        take = g > best[0] + tol
        best = [
            np.where(take, g, best[0]),
            np.where(take, a, best[1]),
            np.where(take, b, best[2]),
            np.where(take[:, None], ci, best[3]),
            np.where(take[:, None], cj, best[4]),
        ]
    assert best is not None
    return best[0], best[1], best[2], best[3], best[4]


def _improve(
    pos: np.ndarray,
    v_of: np.ndarray,
    max_rounds: int,
    c_of: np.ndarray | None = None,
    floor: np.ndarray | None = None,
) -> int:
    """Local search in place on ``pos`` (m, S, P); ``v_of``/``c_of`` are per-column values (m, n).

    Each round, every pack still moving makes one exchange: one that lifts its weakest group if
    there is one, else one between another pair (the lowest pair that can be evened out), which
    can open a way for the weakest group. A pack with neither stops. Returns the rounds run."""
    m, s, p = pos.shape
    if s < 2 or p < 2:
        return 0
    # two-cell swaps for P >= 4 (a k-cell swap equals a P-k one) while the pairs are few; with
    # more than 8 parallel cells single swaps are fine-grained enough and pairs cost P^4
    ks = [1, 2] if 4 <= p <= _PAIR_SWAP_MAX_P else [1]
    combos = [_combos(p, k) for k in ks]
    scale = float(np.abs(v_of).max()) or 1.0
    tol = 1e-9 * scale
    nc = max(cb.shape[0] for cb in combos)
    active = np.arange(m)
    rounds = 0
    while active.size and rounds < max_rounds:
        rounds += 1
        parts = []
        for all_pairs in (False, True):
            if active.size == 0 or (all_pairs and _LOW_GROUPS < 1):
                break
            chunk = max(1, _CHUNK // ((s * min(s, _LOW_GROUPS) if all_pairs else s) * nc * nc))
            moved_parts, stuck_parts = [], []
            for lo in range(0, active.size, chunk):
                sel = active[lo : lo + chunk]
                rows = sel[:, None, None]
                v = v_of[rows, pos[sel]]
                c = None if c_of is None else c_of[rows, pos[sel]]
                fl = None if floor is None else floor[sel]
                g, a, b, ia, jb = _search(v, c, fl, ks, combos, all_pairs, tol)
                ok = g > tol
                moved_parts.append((sel[ok], a[ok], b[ok], ia[ok], jb[ok]))
                stuck_parts.append(sel[~ok])
            parts.extend(moved_parts)
            active = np.concatenate(stuck_parts)  # the weakest group is stuck: try other pairs
        moved = [pt for pt in parts if pt[0].size]
        if not moved:
            break
        sel = np.concatenate([pt[0] for pt in moved])
        rows = sel[:, None]
        ga = np.concatenate([pt[1] for pt in moved])[:, None]
        gb = np.concatenate([pt[2] for pt in moved])[:, None]
        ca = np.concatenate([pt[3] for pt in moved])
        cb_ = np.concatenate([pt[4] for pt in moved])
        from_a = pos[rows, ga, ca].copy()
        from_b = pos[rows, gb, cb_].copy()
        pos[rows, ga, ca] = from_b
        pos[rows, gb, cb_] = from_a
        active = np.sort(sel)
    return rounds


def _partition(
    x: np.ndarray, series: int, parallel: int, starts: int | None, rng: np.random.Generator,
    max_rounds: int | None,
) -> np.ndarray:
    """Groups for every pack (``x`` is ``(m, S*P)``): column positions ``(m, S, P)``.

    The local search runs from ``starts`` starting points per pack at once (the differencing
    start, a snake deal of the sorted cells, then random deals) and keeps each pack's best."""
    m, n = x.shape
    if starts is None:  # more starts where the problem is small: keeps the total work bounded
        starts = int(np.clip(5_000 // (m * n), 1, 16))
    first = _differencing(x, series, parallel)
    cand = [first]
    if starts >= 2:
        order = np.argsort(-x, axis=1, kind="stable").reshape(m, parallel, series)
        order[:, 1::2] = order[:, 1::2, ::-1]
        cand.append(order.transpose(0, 2, 1))
    for _ in range(starts - len(cand)):
        cand.append(rng.permuted(np.broadcast_to(np.arange(n), (m, n)), axis=1).reshape(m, series, parallel))
    pos = np.concatenate(cand, axis=0)  # (starts*m, S, P): start r of pack k is row r*m + k
    xr = np.tile(x, (len(cand), 1))
    rounds = max_rounds if max_rounds is not None else 20 * n
    _improve(pos, xr, rounds)
    usable = np.take_along_axis(xr, pos.reshape(pos.shape[0], -1), axis=1).reshape(pos.shape).sum(axis=2).min(axis=1)
    best = usable.reshape(len(cand), m).argmax(axis=0)
    return pos.reshape(len(cand), m, series, parallel)[best, np.arange(m)]


def assemble(
    capacities: object,
    resistances: object | None = None,
    series: int = 14,
    parallel: int = 4,
    n_packs: int | None = None,
    *,
    packing: Packing = "window",
    leftover: Leftover = "weakest",
    resistance_blocks: int = 1,
    balance: bool = True,
    seed: int = 0,
    starts: int | None = None,
    capacity_slack: float = 0.0,
    max_rounds: int | None = None,
) -> Assignment:
    """Assign cells to ``n_packs`` packs of ``series`` groups of ``parallel`` cells.

    ``capacities`` (Ah, > 0) and optional ``resistances`` (ohm, > 0) are per cell; ``n_packs``
    defaults to as many whole packs as the cells fill. ``packing``, ``leftover`` and
    ``resistance_blocks`` choose which cells share a pack, ``starts`` and ``capacity_slack`` tune
    the search within packs (see the module text); ``balance=False`` fills the groups in pack order
    without optimising (a baseline); ``seed`` drives the random split and the random starts;
    ``max_rounds`` caps the exchange rounds (default ``20*S*P``). Raises ``ValidationFailed``
    naming the field for NaN, infinite, zero or negative values, mismatched lengths, too few cells
    for one pack, or more packs than the cells fill.
    """
    s = _positive_int(series, "series")
    p = _positive_int(parallel, "parallel")
    caps = _positive_vector(capacities, "capacities")
    res = None
    if resistances is not None:
        res = _positive_vector(resistances, "resistances")
        if res.shape != caps.shape:
            raise ValidationFailed(
                f"{res.size} resistances for {caps.size} capacities", location="resistances"
            )
    width = s * p
    most = caps.size // width
    if most < 1:
        raise ValidationFailed(
            f"{caps.size} cells cannot fill one {s}S{p}P pack ({width} cells)", location="capacities"
        )
    m = most if n_packs is None else _positive_int(n_packs, "n_packs")
    if m > most:
        raise ValidationFailed(
            f"{m} packs need {m * width} cells, only {caps.size} given", location="n_packs"
        )
    if packing not in ("window", "stratified", "random"):
        raise ValidationFailed(f"unknown packing {packing!r}", location="packing")
    if leftover not in ("weakest", "outliers"):
        raise ValidationFailed(f"unknown leftover rule {leftover!r}", location="leftover")
    if not (np.isfinite(capacity_slack) and 0.0 <= capacity_slack < 1.0):
        raise ValidationFailed(f"must be in [0, 1), got {capacity_slack!r}", location="capacity_slack")
    blocks = _positive_int(resistance_blocks, "resistance_blocks")
    rng = np.random.default_rng(seed)
    chosen, rest = _split_into_packs(caps, res, m, width, packing, leftover, blocks, rng)
    if not balance:
        return Assignment(chosen.reshape(m, s, p), rest, caps, res)
    cells = _balance(chosen, caps, res, s, p, starts, capacity_slack, rng, max_rounds)
    return Assignment(cells, rest, caps, res)


def _balance(
    chosen: np.ndarray,
    caps: np.ndarray,
    res: np.ndarray | None,
    s: int,
    p: int,
    starts: int | None,
    capacity_slack: float,
    rng: np.random.Generator,
    max_rounds: int | None,
) -> np.ndarray:
    m = chosen.shape[0]
    x = caps[chosen]
    pos = _partition(x, s, p, starts, rng, max_rounds)
    if res is not None:
        rounds = max_rounds if max_rounds is not None else 20 * s * p
        rows = np.arange(m)[:, None, None]
        floor = x[rows, pos].sum(axis=2).min(axis=1) * (1.0 - capacity_slack)
        _improve(pos, 1.0 / res[chosen], rounds, c_of=x, floor=floor)
    return np.take_along_axis(chosen, pos.reshape(m, -1), axis=1).reshape(m, s, p)


def regroup_packs(
    packs: object,
    capacities: object,
    resistances: object | None = None,
    series: int = 14,
    parallel: int = 4,
    *,
    seed: int = 0,
    starts: int | None = None,
    capacity_slack: float = 0.0,
) -> Assignment:
    """Optimise the series groups of packs whose cells are already chosen.

    ``packs`` is ``(n_packs, S*P)`` (or ``(n_packs, S, P)``) cell indices, e.g. from another
    grading step; the cells of each pack are regrouped as ``assemble`` does within a pack."""
    s = _positive_int(series, "series")
    p = _positive_int(parallel, "parallel")
    given = evaluate(np.asarray(packs).reshape(-1, s, p), capacities, resistances)
    chosen = given.cells.reshape(given.n_packs, s * p)
    cells = _balance(
        chosen, given.capacities, given.resistances, s, p, starts, capacity_slack,
        np.random.default_rng(seed), None,
    )
    return Assignment(cells, given.leftover, given.capacities, given.resistances)


def evaluate(
    cells: object, capacities: object, resistances: object | None = None
) -> Assignment:
    """Wrap a given ``(packs, S, P)`` cell-index array (e.g. from another method) for scoring."""
    caps = _positive_vector(capacities, "capacities")
    res = None if resistances is None else _positive_vector(resistances, "resistances")
    idx = np.asarray(cells, dtype=np.int64)
    if idx.ndim != 3:
        raise ValidationFailed(f"expected (packs, S, P) indices, got shape {idx.shape}", location="cells")
    flat = idx.ravel()
    if flat.size and (flat.min() < 0 or flat.max() >= caps.size):
        raise ValidationFailed("cell index out of range", location="cells")
    if np.unique(flat).size != flat.size:
        raise ValidationFailed("a cell is used more than once", location="cells")
    used = np.zeros(caps.size, dtype=bool)
    used[flat] = True
    return Assignment(idx, np.flatnonzero(~used), caps, res)
