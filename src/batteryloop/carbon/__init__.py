"""carbon: the footprint per kWh by life-cycle stage (EU battery rules), avoided emissions of reuse
and recycling, checks of saving claims, and the plant's ISO 14064 inventory.

Floors below it: ``recycling`` (composition, routes; its batch service takes this floor's carbon
provider, ``carbon.batch.install``, which ``batteryloop.wiring`` calls at start-up) and
``factory`` (inventory periods). Modules: ``factors`` (cited factor set), ``inventory`` (sparse
matrix LCA engine), ``cff`` (Circular Footprint Formula), ``footprint``, ``avoided``,
``ghg_inventory``, ``batch``, ``published``.
"""
