"""``/health`` and ``/openapi.json``: the two routes that need no token."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from codi_eval.api.http import json_response
from codi_eval.api.operations import Inputs, operation
from codi_eval.api.schemas import Health
from codi_eval.api.state import SERVICES

log = logging.getLogger("codi_eval.api")
HEALTH_TIMEOUT_S = 5.0
DOCUMENT = web.AppKey("codi_eval_openapi", dict[str, Any])


@operation(
    "GET",
    "/health",
    id="health",
    tag="meta",
    summary="Liveness plus a database round trip (SELECT 1). No token needed.",
    response=Health,
    public=True,
)
async def health(request: web.Request, inputs: Inputs) -> web.StreamResponse:
    services = request.app[SERVICES]
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S):
            # The pool pings a connection it hands out (pool_pre_ping) and a new one is a
            # handshake: either way, connecting is the round trip. A second SELECT 1 would
            # only double the steps /health waits through on a busy loop.
            async with services.health_engine().connect():
                pass
    except Exception as exc:  # any driver error or the timeout: the database is not usable
        log.warning("health check: database unreachable (%s)", type(exc).__name__)
        return json_response(Health(status="unavailable", database="unreachable"), status=503)
    return json_response(Health(status="ok", database="ok"))


class OpenApiDocument(BaseModel):
    """The OpenAPI 3.1 document (any JSON object)."""

    model_config = ConfigDict(extra="allow")


@operation(
    "GET",
    "/openapi.json",
    id="openapi",
    tag="meta",
    summary="This document, generated from the API's models. No token needed.",
    response=OpenApiDocument,
    public=True,
)
async def openapi(request: web.Request, inputs: Inputs) -> web.StreamResponse:
    return web.json_response(request.app[DOCUMENT])
