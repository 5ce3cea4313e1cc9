"""Typed keys for what the application and each request carry."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from codi_eval.settings import Settings
from codi_eval.store.engine import Store
from codi_eval.tracing import StoreSink, Tracer

log = logging.getLogger("codi_eval.api")


@dataclass
class Services:
    """What handlers share: one tracer (one batching sink) and the Opik sync scheduler."""

    store: Store
    settings: Settings
    sink: StoreSink
    tracer: Tracer
    background: set[asyncio.Task[None]] = field(default_factory=set)
    _sync_again: bool = False
    _sync_task: asyncio.Task[None] | None = None

    def schedule_opik_sync(self) -> None:
        """Send the Opik outbox in the background; never awaited by a request.

        Requests that arrive while a sync runs set a flag instead of starting another,
        so a burst of summaries costs one or two passes, not one per request.
        """
        if self._sync_task is not None and not self._sync_task.done():
            self._sync_again = True
            return
        task = asyncio.get_running_loop().create_task(self._sync_loop(), name="codi-eval-opik-sync")
        self._sync_task = task
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _sync_loop(self) -> None:
        from codi_eval.opik_sync import sync_outbox

        while True:
            self._sync_again = False
            try:
                report = await sync_outbox(self.store, self.settings)
                log.info("opik sync: %s", report)
            except Exception as exc:  # Opik down: rows stay queued for the next pass
                log.warning("opik sync failed: %s", type(exc).__name__)
            if not self._sync_again:
                return

    async def close(self) -> None:
        """Stop background work and flush queued traces (on application shutdown)."""
        for task in list(self.background):
            task.cancel()
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
        await self.sink.close()


@dataclass(frozen=True)
class ApiUser:
    """The authenticated caller (never carries the token or the Opik key)."""

    id: int
    name: str
    opik_enabled: bool
    opik_workspace: str | None
    has_api_key: bool


SERVICES = web.AppKey("codi_eval_services", Services)
USER = web.RequestKey("codi_eval_user", ApiUser)
# The request's database connection, opened by the auth middleware and reused by the
# handler (one pool checkout per request), absent for operations that hold none.
CONN = web.RequestKey("codi_eval_conn", AsyncConnection)
# The operation's declared query parameters, parsed and typed by the parameters middleware.
QUERY = web.RequestKey("codi_eval_query", dict[str, Any])
