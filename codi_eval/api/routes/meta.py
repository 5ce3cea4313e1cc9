"""``/health`` and ``/openapi.json``: the two routes that need no token."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from codi_eval.api import queries
from codi_eval.api.http import json_ok
from codi_eval.api.openapi import build_document
from codi_eval.api.state import SERVICES

log = logging.getLogger("codi_eval.api")
_DOCUMENT = build_document()
HEALTH_TIMEOUT_S = 5.0


async def health(request: web.Request) -> web.Response:
    store = request.app[SERVICES].store
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S):
            async with store.engine.connect() as conn:
                await queries.ping(conn)
    except Exception as exc:  # any driver error or the timeout: the database is not usable
        log.warning("health check: database unreachable (%s)", type(exc).__name__)
        return json_ok({"status": "unavailable", "database": "unreachable"}, status=503)
    return json_ok({"status": "ok", "database": "ok"})


async def openapi(request: web.Request) -> web.Response:
    return json_ok(_DOCUMENT)


ROUTES = {"health": health, "openapi": openapi}
