"""The carbon engine's sparse solver against Brightway's bw2calc, on the same matrices, same process.

Two kinds of system:

* ``battery``: the real process graph of ``batteryloop.carbon.footprint`` (NMC811 and LFP, about
  70 processes): what the platform solves per request;
* ``random-N``: synthetic technosphere matrices of N processes (default 1,000 and 5,000;
  ``--sizes 20000`` is ecoinvent's size, where SuperLU's fill-in on this random structure takes
  many minutes: PARDISO is the tool at that scale), each process consuming ``--inputs`` (default 8) others,
  95 % of them upstream (a lower index, as in a life-cycle database) and 5 % anywhere (loops),
  with small coefficients (column sums < 0.8, so the system is productive and well conditioned),
  one biosphere flow; seed fixed (``--seed``, default 2024).

Per system and solver: wall time of one full calculation (matrices built from arrays, factorised,
solved, scored: best of ``--repeat``), the time of ``--demands`` further demands on the same
factorisation, and the relative difference of the scores (they must agree to 1e-9).

* ``batteryloop``: ``scipy.sparse`` CSC matrices, SuperLU (``splu``, the engine's column
  ordering) once, then ``lu.solve`` per demand (the engine's ``ProcessGraph.solve`` does the same);
* ``bw2calc``: ``bw2calc.LCA`` over a ``bw_processing`` in-memory datapackage of the same
  entries, ``lci()`` + ``lcia()``, then ``redo_lci``/``redo_lcia`` per further demand. bw2calc
  uses PARDISO when ``pypardiso`` is importable, else SciPy's solver (it says which).

bw2calc is not a dependency of the project: install it in a throwaway environment and run the
benchmark with that environment's interpreter, the project's packages appended to the path (the
same Python, NumPy and SciPy versions), so that PARDISO's MKL libraries load:

    python3.11 -m venv /tmp/bwenv && /tmp/bwenv/bin/pip install bw2calc pypardiso
    /tmp/bwenv/bin/python benchmarks/lca.py --site .venv/lib/python3.11/site-packages
    .venv/bin/python benchmarks/lca.py --site /tmp/bwenv/lib/python3.11/site-packages   # SciPy only
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from batteryloop.carbon.inventory import ORDERING  # noqa: E402  (no third-party imports)


def random_system(n: int, inputs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, values, direct) of a productive random technosphere: A = I - S, column sums of
    S below 0.8."""
    rng = np.random.default_rng(seed)
    cols = np.repeat(np.arange(n), inputs)
    # mostly upstream suppliers (a lower index), as in a life-cycle database; 5 % anywhere (loops)
    upstream = np.floor(rng.uniform(size=cols.size) * cols).astype(np.int64)
    anywhere = rng.integers(0, n, size=cols.size)
    rows = np.where(rng.uniform(size=cols.size) < 0.05, anywhere, upstream)
    keep = rows != cols
    rows, cols = rows[keep], cols[keep]
    vals = rng.uniform(0.0, 0.8 / inputs, size=rows.size)
    direct = rng.lognormal(0.0, 1.0, size=n)
    return rows, cols, vals, direct


def battery_system(chemistry: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The footprint graph's off-diagonal inputs, direct emissions and the demanded process."""
    from batteryloop.carbon.footprint import footprint  # after --site extended the path

    graph = footprint(chemistry).graph
    assert graph is not None
    a, b, index = graph.matrices()
    coo = a.tocoo()
    off = coo.row != coo.col
    # A = I - S: the inputs are -A off the diagonal
    return coo.row[off], coo.col[off], -coo.data[off], b.toarray().ravel(), index["battery"]


def ours(n: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, direct: np.ndarray,
         demands: list[int]) -> list[float]:
    diag = np.arange(n)
    a = sparse.csc_matrix((np.concatenate([np.ones(n), -vals]),
                           (np.concatenate([diag, rows]), np.concatenate([diag, cols]))), shape=(n, n))
    lu = splu(a, permc_spec=ORDERING)
    scores = []
    for j in demands:
        f = np.zeros(n)
        f[j] = 1.0
        scores.append(float(direct @ lu.solve(f)))
    return scores


def brightway(bw2calc: Any, bwp: Any, n: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray,
              direct: np.ndarray, demands: list[int]) -> list[float]:
    ids = np.arange(1, n + 1)
    flow = n + 10
    dp = bwp.create_datapackage()
    tech_idx = np.empty(n + rows.size, dtype=bwp.INDICES_DTYPE)
    tech_idx["row"] = np.concatenate([ids, rows + 1])
    tech_idx["col"] = np.concatenate([ids, cols + 1])
    dp.add_persistent_vector(matrix="technosphere_matrix", indices_array=tech_idx,
                             data_array=np.concatenate([np.ones(n), vals]),
                             flip_array=np.concatenate([np.zeros(n, bool), np.ones(rows.size, bool)]),
                             name="technosphere")
    bio_idx = np.empty(n, dtype=bwp.INDICES_DTYPE)
    bio_idx["row"] = flow
    bio_idx["col"] = ids
    dp.add_persistent_vector(matrix="biosphere_matrix", indices_array=bio_idx, data_array=direct,
                             name="biosphere")
    cf_idx = np.empty(1, dtype=bwp.INDICES_DTYPE)
    cf_idx["row"] = flow
    cf_idx["col"] = flow
    dp.add_persistent_vector(matrix="characterization_matrix", indices_array=cf_idx,
                             data_array=np.ones(1), name="gwp")
    lca = bw2calc.LCA(demand={int(ids[demands[0]]): 1.0}, data_objs=[dp])
    lca.lci()
    lca.lcia()
    scores = [float(lca.score)]
    for j in demands[1:]:
        lca.lci(demand={int(ids[j]): 1.0})
        lca.lcia()
        scores.append(float(lca.score))
    return scores


def best_of(repeat: int, fn: Callable[[], list[float]]) -> tuple[float, list[float]]:
    best, out = float("inf"), []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[1000, 5000])
    p.add_argument("--inputs", type=int, default=8)
    p.add_argument("--demands", type=int, default=20)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--site", type=Path, action="append", default=[],
                   help="extra site-packages appended to the path (an environment with bw2calc, or "
                        "the project's when run with that environment's interpreter); repeatable")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    for site in args.site:
        sys.path.append(str(site))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import bw2calc
            import bw_processing as bwp
        bw_solver = "PARDISO (pypardiso)" if getattr(bw2calc, "PYPARDISO", False) else "SciPy"
    except ImportError:
        bw2calc = bwp = None
        bw_solver = None
    systems: list[tuple[str, int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], list[int]]] = []
    for chem in ("NMC811", "LFP"):
        r, c, v, d, j = battery_system(chem)
        systems.append((f"battery {chem}", d.size, (r, c, v, d), [j]))
    rng = np.random.default_rng(args.seed + 1)
    for n in args.sizes:
        sysarr = random_system(n, args.inputs, args.seed)
        systems.append((f"random-{n}", n, sysarr, [int(x) for x in rng.integers(0, n, size=1 + args.demands)]))
    rows_out: list[dict[str, Any]] = []
    print(f"python {platform.python_version()}, numpy {np.__version__}; bw2calc "
          f"{getattr(bw2calc, '__version__', 'not installed')} ({bw_solver or '-'})")
    print(f"{'system':<16}{'n':>7}{'demands':>9}{'ours s':>10}{'bw2calc s':>11}{'ratio':>8}"
          f"{'ours 1st':>10}{'bw 1st':>9}{'max rel diff':>14}")
    for label, n, (r, c, v, d), demands in systems:
        t_ours, s_ours = best_of(args.repeat, lambda: ours(n, r, c, v, d, demands))
        t_first, _ = best_of(args.repeat, lambda: ours(n, r, c, v, d, demands[:1]))
        row: dict[str, Any] = {"system": label, "n": n, "demands": len(demands), "ours_s": t_ours,
                               "ours_first_s": t_first}
        if bw2calc is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t_bw, s_bw = best_of(args.repeat, lambda: brightway(bw2calc, bwp, n, r, c, v, d, demands))
                t_bw1, _ = best_of(args.repeat, lambda: brightway(bw2calc, bwp, n, r, c, v, d, demands[:1]))
            diff = max(abs(a - b) / abs(b) for a, b in zip(s_ours, s_bw, strict=True))
            row |= {"bw2calc_s": t_bw, "bw2calc_first_s": t_bw1, "ratio_bw_over_ours": t_bw / t_ours,
                    "max_rel_diff": diff}
            print(f"{label:<16}{n:>7}{len(demands):>9}{t_ours:>10.4f}{t_bw:>11.4f}{t_bw / t_ours:>8.1f}"
                  f"{t_first:>10.4f}{t_bw1:>9.4f}{diff:>14.2e}")
        else:
            print(f"{label:<16}{n:>7}{len(demands):>9}{t_ours:>10.4f}{'-':>11}{'-':>8}{t_first:>10.4f}")
        rows_out.append(row)
    print("ratio = bw2calc time / batteryloop time for the same scores (higher: ours faster)")
    print("reproduce: .venv/bin/python benchmarks/lca.py " + " ".join(sys.argv[1:]))
    if args.json:
        args.json.write_text(json.dumps({"bw2calc": getattr(bw2calc, "__version__", None),
                                         "bw_solver": bw_solver, "rows": rows_out}, indent=2))


if __name__ == "__main__":
    main()
