"""How the floors are joined at start-up: the hooks through which a lower floor calls a higher one.

A floor imports only the floors below it, so the recycling batch service (floor 3) cannot call
carbon (4) or the passport (5) itself. It takes a carbon provider and a hook for the batteries of a
closing batch instead, and this module sets them:

    recycling batch figures  -> carbon.batch.batch_carbon        (the certificate's carbon section)
    recycling batch close    -> passport.service.recycled_in_batch (status ``recycled``, the
                                                                    passport archived read-only)

Nothing happens at import: the faces call :func:`install` once as they start (``api.create_app``,
the ``batteryloop`` command), so a library user who wants the same behaviour calls it too.
Calling it again changes nothing.
"""

from __future__ import annotations


def install() -> None:
    """Join recycling to carbon and the passport (idempotent)."""
    from batteryloop.carbon import batch
    from batteryloop.passport import service as passport
    from batteryloop.recycling import service as recycling

    batch.install()
    recycling.set_recycled_hook(passport.recycled_in_batch)
