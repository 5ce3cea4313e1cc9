"""The aiohttp application: middlewares, routes, and what starts and stops with it.

Middlewares, outermost first: errors (every failure becomes the error shape), limits
(requests in flight and the per-request deadline), auth (bearer token → user, its quota;
not for /health and /openapi.json). Each declared operation is mounted with a wrapper
that parses its path, query and body with their models and serialises its answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from codi_eval.api import routes
from codi_eval.api.auth import auth_middleware
from codi_eval.api.errors import ApiError, Handler, error_middleware
from codi_eval.api.http import json_response
from codi_eval.api.limits import Limits
from codi_eval.api.operations import (
    API_PREFIX,
    MAX_BODY_BYTES,
    OPERATIONS,
    Inputs,
    Operation,
    build_document,
    parse_parameters,
    parse_query,
    read_body,
)
from codi_eval.api.routes.meta import DOCUMENT
from codi_eval.api.schemas import summarize_request
from codi_eval.api.state import SERVICES, Services
from codi_eval.errors import InputError
from codi_eval.settings import Settings
from codi_eval.store.engine import Store
from codi_eval.summarize import CoDSettings
from codi_eval.tracing import StoreSink, Tracer

assert routes  # importing the route modules declares every operation


@web.middleware
async def limits_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    services = request.app[SERVICES]
    op = services.operation_of(request)
    if op is None or op.public:
        return await handler(request)
    async with services.limits.admitted():
        deadline = services.settings.api_request_timeout_s
        try:
            async with asyncio.timeout(deadline) as scope:
                return await handler(request)
        except TimeoutError:
            if not scope.expired():
                raise
            raise ApiError(
                504, "request_timeout", f"the request took longer than {deadline:g} s"
            ) from None


def _endpoint(op: Operation, body: type[BaseModel] | None, body_timeout_s: float) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        inputs = Inputs(
            path=(
                parse_parameters(op.path_params, request.match_info, what="parameter")
                if op.path_params is not None
                else None
            ),
            query=parse_query(op.query, request.query),
        )
        if body is not None:
            inputs.body = await read_body(request, body, body_timeout_s)
        result = await op.handler(request, inputs)
        if isinstance(result, web.StreamResponse):
            return result
        return json_response(result)

    return handle


def _bodies(settings: Settings) -> dict[str, type[BaseModel]]:
    """This server's own body models: what a summary may name depends on the operator."""
    return {"summarizeCode": summarize_request(tuple(settings.offered_models))}


def api_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document a server with ``settings`` publishes at /api/v1/openapi.json."""
    return build_document(OPERATIONS, _bodies(settings))


def make_runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """The runner ``serve`` uses: a client that goes away cancels its request's work."""
    return web.AppRunner(app, handler_cancellation=True, **kwargs)


def create_app(store: Store, settings: Settings, *, viewer: bool = False) -> web.Application:
    """The API over ``store``; the caller opens and closes the store.

    ``viewer=True`` also mounts the local web viewer's pages (:mod:`codi_eval.viewer`),
    which need no token: only ``codi-eval view`` asks for it, bound to 127.0.0.1.
    ``codi-eval serve`` never does, so users' traces are never served without auth.

    On start-up the prompt registry is seeded from ``settings.prompts_dir`` (idempotent),
    the summary prompts are loaded, and one client per offered model is built in a thread
    (never on the event loop); on shutdown queued traces are flushed and clients closed.
    """
    # aiohttp's own 413 for bodies over the limit is turned into our shape by error_middleware.
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[error_middleware, limits_middleware, auth_middleware],
    )
    bodies = _bodies(settings)
    sink = StoreSink(store)
    limits = Limits(
        max_in_flight=settings.api_max_in_flight,
        requests_per_minute=settings.api_user_requests_per_minute,
        summaries_per_minute=settings.api_user_summaries_per_minute,
        concurrent_summaries=settings.api_user_concurrent_summaries,
        summary_workers=settings.api_summary_workers,
    )
    app[SERVICES] = Services(
        store=store,
        settings=settings,
        sink=sink,
        tracer=Tracer(sink),
        limits=limits,
        operations=dict(OPERATIONS),
    )
    app[DOCUMENT] = build_document(OPERATIONS, bodies)  # = api_document(settings)
    # A literal segment wins over a {variable}: /traces/stats before /traces/{trace_id}.
    for op in sorted(OPERATIONS.values(), key=lambda o: "{" in o.path):
        app.router.add_route(
            op.method,
            API_PREFIX + op.path,
            _endpoint(op, bodies.get(op.id, op.body), settings.api_body_timeout_s),
            name=op.id,
        )
    if viewer:
        from codi_eval.viewer import add_viewer

        add_viewer(app, store)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app


async def _start(app: web.Application) -> None:
    from codi_eval.judging import build_score_judge, judge_prompt
    from codi_eval.models.registry import parse_model_name
    from codi_eval.prompts import ensure_seeded, get_prompt
    from codi_eval.summarize import PromptVersion

    services = app[SERVICES]
    settings = services.settings
    await ensure_seeded(services.store, settings.prompts_dir)
    try:
        refs = {ref: parse_model_name(target) for ref, target in settings.offered_models.items()}
    except ValueError as exc:
        raise InputError(f"CODI_EVAL_API_MODELS: {exc}", field="CODI_EVAL_API_MODELS") from None
    for alias, ref in refs.items():
        model = ref.build()
        await _start_model(model)
        services.models[alias] = model
    if not settings.prompts_dir.is_dir():
        return  # no prompts to summarize with: /summarize/code answers 503 (health still works)
    iteration = await get_prompt(services.store, "cod_iteration@2")
    final = await get_prompt(services.store, "cod_final@1")
    services.iteration_prompt = PromptVersion(iteration.ref, iteration.template)
    services.final_prompt = PromptVersion(final.ref, final.template)
    stored = await get_prompt(services.store, "summary_judge@1")
    # Built by the judge registry, as the runner, `summarize` and `judge-check` build theirs.
    rubric = judge_prompt(stored.ref, stored.template, settings.prompts_dir)
    services.judge = await asyncio.to_thread(build_score_judge, settings.default_judge, rubric)
    judge_model = getattr(services.judge, "model", None)
    if judge_model is not None:
        await _start_model(judge_model)


async def _start_model(model: Any) -> None:
    # SDK clients take ~0.1 s of CPU to build: each provider builds its own off the loop.
    # Gemini's holds the timeout Chain of Density's calls carry, so they pass none per call.
    # (Imported here: google-genai is a second of imports that nothing else here needs.)
    from codi_eval.models.gemini import GeminiModel

    if isinstance(model, GeminiModel):
        await model.start(call_timeout_s=CoDSettings().timeout_s)
        return
    start = getattr(model, "start", None)
    if start is not None:
        await start()


async def _stop(app: web.Application) -> None:
    await app[SERVICES].close()
