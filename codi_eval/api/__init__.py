"""The HTTP API the CODI app calls: ``create_app(store, settings)`` → an aiohttp application.

Routes live in :mod:`codi_eval.api.routes` (one module per concern), SQL in
:mod:`codi_eval.api.queries`, the contract (request and response models) in :mod:`codi_eval.api.schemas`, from which
:mod:`codi_eval.api.operations` generates the OpenAPI document.
"""

from codi_eval.api.app import api_document, create_app, make_runner

__all__ = ["api_document", "create_app", "make_runner"]
