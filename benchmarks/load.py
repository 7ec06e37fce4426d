"""Load test on loopback: battery look-ups and passport reads, requests per second at p50/p99.

A fresh demo plant (``synth.seed``, ``--packs`` packs and their modules) on SQLite, a recycler
account with a legitimate-interest token, ``batteryloop serve`` (uvicorn, one process) on a free
port, then Locust headless (``benchmarks/locustfile.py``) for ``--seconds`` with ``--users``
concurrent users that wait 0 s between requests. Locust runs in its own process; on this 2-core
machine it competes with the server for CPU, so the figures are a floor.

Figures per request kind: requests, failures, requests per second, p50 / p99 / max latency. The
``baseline`` kind (GET /api/v1/health, no database) is the ceiling of the HTTP stack in the same
run; the ratio of each kind's median latency to its median (p50/base) says what the database work
and the Annex XIII filtering cost. The per-caller rate limit is switched off for the run (one token
makes all the calls; the limiter has its own tests).

    .venv/bin/python benchmarks/load.py                      # 300 packs, 20 users, 20 s
    .venv/bin/python benchmarks/load.py --postgres postgresql+psycopg://postgres@127.0.0.1/bl_load
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare(url: str, packs: int, refs_file: Path) -> str:
    from sqlalchemy import select

    from batteryloop.accounts.service import Accounts
    from batteryloop.store.db import connect
    from batteryloop.store.models import Battery, Organisation
    from batteryloop.synth import seed

    db = connect(url)
    with db.session() as s:
        seed(s, packs=packs)
        rows = s.execute(select(Battery.code, Battery.uid).where(Battery.code.is_not(None))).all()
        refs_file.write_text("".join(f"{code}\t{uid}\n" for code, uid in rows))
        recycler = s.scalar(select(Organisation.uid).where(
            Organisation.name == "Circular Metals Recycling"))
        accounts = Accounts(s)
        accounts.add_user("load-recycler", recycler, roles=("reader",),
                          password="load-test-password")
        accounts.grant_tier("load-recycler", "legitimate_interest", by="load-recycler")
        _, token = accounts.create_token("load-recycler")
    db.dispose()
    print(f"seeded {packs} packs: {len(rows)} batteries with codes")
    return token


def _wait_up(port: int, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the server did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packs", type=int, default=300)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--postgres", help="a PostgreSQL URL instead of SQLite")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="batteryloop-load-"))
    url = args.postgres or f"sqlite:///{work / 'load.sqlite'}"
    env = {**os.environ, "BATTERYLOOP_DATA_DIR": str(work / "var"), "BATTERYLOOP_DATABASE_URL": url,
           "BATTERYLOOP_RATE_LIMIT": ""}
    os.environ.update(env)
    refs = work / "refs.tsv"
    token = _prepare(url, args.packs, refs)
    port = _free_port()
    server = subprocess.Popen([str(BIN / "batteryloop"), "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_up(port)
        prefix = work / "stats"
        subprocess.run(
            [str(BIN / "locust"), "-f", str(REPO / "benchmarks" / "locustfile.py"), "--headless",
             "-u", str(args.users), "-r", str(args.users), "-t", f"{args.seconds}s",
             "--host", f"http://127.0.0.1:{port}", "--csv", str(prefix), "--only-summary",
             "--loglevel", "WARNING"],
            env={**env, "BL_LOAD_REFS": str(refs), "BL_LOAD_TOKEN": token}, check=False,
            stdout=subprocess.DEVNULL,
        )
    finally:
        server.terminate()
        server.wait(10)
    with open(f"{prefix}_stats.csv") as fh:
        rows = {r["Name"]: r for r in csv.DictReader(fh)}
    base = float(rows["baseline"]["50%"]) or float("nan")
    figures = []
    print(f"\n{'request':28} {'n':>7} {'fail':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'p50/base':>9}")
    for name in ("battery lookup", "passport read (public)", "passport read (recycler)",
                 "baseline", "Aggregated"):
        r = rows[name]
        rps = float(r["Requests/s"])
        figure = {"request": name, "n": int(r["Request Count"]), "failures": int(r["Failure Count"]),
                  "rps": rps, "p50_ms": float(r["50%"]), "p99_ms": float(r["99%"]),
                  "max_ms": float(r["Max Response Time"]), "p50_vs_baseline": float(r["50%"]) / base}
        figures.append(figure)
        print(f"{name:28} {figure['n']:7d} {figure['failures']:5d} {rps:8.1f} "
              f"{figure['p50_ms']:7.0f} {figure['p99_ms']:7.0f} {figure['max_ms']:7.0f} "
              f"{figure['p50_vs_baseline']:9.1f}")
    print(f"\n{args.users} users, {args.seconds} s, {'PostgreSQL' if args.postgres else 'SQLite'}; "
          "request mix 4:3:3:1; p50/base: a kind's median latency over the no-database baseline's")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    failures = sum(f["failures"] for f in figures if f["request"] != "Aggregated")
    if failures:
        raise SystemExit(f"{failures} failed requests")


if __name__ == "__main__":
    main()
