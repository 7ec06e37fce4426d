"""Locust users for benchmarks/load.py (not run on its own: load.py sets the environment).

Three tasks, each named so that Locust keeps its figures apart:

* ``battery lookup``: GET /api/v1/batteries/{code} by GB/T 34014 code, with a recycler's token;
* ``passport read (public)``: GET /api/v1/passports/{uid}, anonymous;
* ``passport read (recycler)``: the same with the recycler's token (legitimate-interest tier);
* ``baseline``: GET /api/v1/health, no database: the ceiling of the HTTP stack itself.

``BL_LOAD_REFS`` is a file of ``code<TAB>uid`` lines; ``BL_LOAD_TOKEN`` the token.
"""

from __future__ import annotations

import os
import random

from locust import FastHttpUser, constant, task

_REFS = [line.split("\t") for line in open(os.environ["BL_LOAD_REFS"]).read().splitlines() if line]
_AUTH = {"Authorization": f"Bearer {os.environ['BL_LOAD_TOKEN']}"}


class Reader(FastHttpUser):
    wait_time = constant(0)

    @task(4)
    def battery_lookup(self) -> None:
        code, _ = random.choice(_REFS)
        self.client.get(f"/api/v1/batteries/{code}", headers=_AUTH, name="battery lookup")

    @task(3)
    def passport_public(self) -> None:
        _, uid = random.choice(_REFS)
        self.client.get(f"/api/v1/passports/{uid}", name="passport read (public)")

    @task(3)
    def passport_recycler(self) -> None:
        _, uid = random.choice(_REFS)
        self.client.get(f"/api/v1/passports/{uid}", headers=_AUTH, name="passport read (recycler)")

    @task(1)
    def baseline(self) -> None:
        self.client.get("/api/v1/health", name="baseline")
