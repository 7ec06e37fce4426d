"""The stage pages: thin faces over the services, one module per page.

    /                      the loop: batteries in each lifecycle state
    /batteries             search by any identifier; filters by state, chemistry, kind, grade
    /batteries/{ref}       identity, lineage, ledger with its verification, tests, health, grade,
                           certificate, passport at the reader's tier
    /intake                upload a tester file or a pulse test: estimate and decision
    /regroup               choose cells and an sSpP layout: groups, spreads, gap to the bound
    /recycling             recycling batches: status, route, input mass, recycling efficiency
    /recycling/batches/{ref}  inputs, mass balance (Sankey and closure), recovery against the
                           targets, economics, certificate, closing
    /carbon                footprint per kWh by stage per chemistry and grid, avoided emissions
                           of recycling and reuse, the check of a saving claim
    /plant                 the NMP recovery line: KPIs, live trends, model against measured,
                           alarms with acknowledgement, the daily report
"""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    from batteryloop.web.pages import battery, batteries, intake, landing, plant, recycling, regroup

    for module in (landing, batteries, battery, intake, regroup, recycling, plant):
        app.include_router(module.router)
    from batteryloop.web.pages import carbon

    app.include_router(carbon.router)
