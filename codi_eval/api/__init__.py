"""The HTTP API the CODI app calls: ``create_app(store, settings)`` → an aiohttp application.

Routes live in :mod:`codi_eval.api.routes` (one module per concern), SQL in
:mod:`codi_eval.api.queries`, the published contract in :mod:`codi_eval.api.openapi`.
"""

from codi_eval.api.app import create_app

__all__ = ["create_app"]
