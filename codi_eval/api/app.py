"""The aiohttp application: middlewares, routes, and what starts and stops with it.

Middlewares, outermost first: errors (every failure becomes the error shape), auth
(bearer token → user, except /health and /openapi.json), parameters (the operation's
declared query and path parameters, parsed as the OpenAPI document says).
"""

from __future__ import annotations

from aiohttp import web

from codi_eval.api.auth import auth_middleware
from codi_eval.api.errors import Handler, error_middleware
from codi_eval.api.openapi import MAX_BODY_BYTES, check_path, parse_query
from codi_eval.api.routes import add_routes
from codi_eval.api.state import QUERY, SERVICES, Services
from codi_eval.settings import Settings
from codi_eval.store.engine import Store
from codi_eval.tracing import StoreSink, Tracer


@web.middleware
async def parameters_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    op_id = request.match_info.route.name
    if op_id is not None and request.match_info.http_exception is None:
        check_path(request.match_info, op_id)
        request[QUERY] = parse_query(request.query, op_id)
    return await handler(request)


def create_app(store: Store, settings: Settings) -> web.Application:
    """The API over ``store``; the caller opens and closes the store.

    On start-up the prompt registry is seeded from ``settings.prompts_dir`` (idempotent),
    so summarization works on a fresh store; on shutdown queued traces are flushed.
    """
    # aiohttp's own 413 for bodies over the limit is turned into our shape by error_middleware.
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[error_middleware, auth_middleware, parameters_middleware],
    )
    sink = StoreSink(store)
    app[SERVICES] = Services(store=store, settings=settings, sink=sink, tracer=Tracer(sink))
    add_routes(app)

    async def seed(app: web.Application) -> None:
        from codi_eval.prompts import ensure_seeded

        await ensure_seeded(store, settings.prompts_dir)

    async def close(app: web.Application) -> None:
        await app[SERVICES].close()

    app.on_startup.append(seed)
    app.on_cleanup.append(close)
    return app
