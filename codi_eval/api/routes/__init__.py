"""Route tables, one module per concern, keyed by the operationId they implement.

:func:`add_routes` mounts each handler at the method and path the OpenAPI document
declares for its operation, so the published document and the router cannot disagree.
"""

from __future__ import annotations

from aiohttp import web

from codi_eval.api.openapi import API_PREFIX, OPERATIONS
from codi_eval.api.routes import experiments, meta, prompts, summarize, traces, users

HANDLERS = {
    op: handler
    for module in (meta, users, summarize, traces, experiments, prompts)
    for op, handler in module.ROUTES.items()
}


def add_routes(app: web.Application) -> None:
    missing = set(OPERATIONS) ^ set(HANDLERS)
    if missing:
        raise RuntimeError(
            f"operations without a handler, or handlers without an operation: {missing}"
        )
    # A literal segment wins over a {variable}: /traces/stats before /traces/{trace_id}.
    ordered = sorted(OPERATIONS.items(), key=lambda item: "{" in item[1]["path"])
    for op_id, op in ordered:
        app.router.add_route(
            op["method"].upper(), API_PREFIX + op["path"], HANDLERS[op_id], name=op_id
        )
