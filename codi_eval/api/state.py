"""What the application shares across requests, and the typed keys requests carry."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codi_eval.api.limits import Limits
from codi_eval.judging.judgement import Judge
from codi_eval.models.base import Model
from codi_eval.settings import Settings
from codi_eval.store.engine import Store, make_async_engine
from codi_eval.summarize import PromptVersion
from codi_eval.tracing import StoreSink, Tracer

if TYPE_CHECKING:
    from codi_eval.api.operations import Operation

log = logging.getLogger("codi_eval.api")


@dataclass
class Services:
    """What handlers share: the store, one tracer (one batching sink), the limits, one
    client per offered model (built once, off the event loop), and the Opik sync scheduler.
    """

    store: Store
    settings: Settings
    sink: StoreSink
    tracer: Tracer
    limits: Limits
    operations: dict[str, Operation]
    models: dict[str, Model] = field(default_factory=dict)
    # What every summary uses, loaded once at start-up (prompt versions are immutable).
    judge: Judge | None = None
    iteration_prompt: PromptVersion | None = None
    final_prompt: PromptVersion | None = None
    background: set[asyncio.Task[None]] = field(default_factory=set)
    _health_engine: AsyncEngine | None = None
    _last_used: dict[int, float] = field(default_factory=dict)
    _sync_again: bool = False
    _sync_task: asyncio.Task[None] | None = None

    def operation_of(self, request: web.Request) -> Operation | None:
        """The declared operation a request was routed to (None: no route, or wrong method)."""
        if request.match_info.http_exception is not None:
            return None
        name = request.match_info.route.name
        return self.operations.get(name) if name is not None else None

    def health_engine(self) -> AsyncEngine:
        """A pool of one for /health: a busy main pool must not make the database look down
        (nor make the check wait behind hundreds of requests)."""
        if self._health_engine is None:
            self._health_engine = make_async_engine(self.store.url, pool_size=1)
        return self._health_engine

    def due_for_last_used(self, user_id: int, now: float, every_s: float) -> bool:
        last = self._last_used.get(user_id)
        if last is not None and now - last < every_s:
            return False
        if len(self._last_used) > 100_000:
            self._last_used.clear()
        self._last_used[user_id] = now
        return True

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
        from codi_eval import opik_sync  # the sync machinery loads only when something is sent

        while True:
            self._sync_again = False
            try:
                report = await opik_sync.sync_outbox(self.store, self.settings)
                log.info("opik sync: %s", report)
            except Exception as exc:  # Opik down: rows stay queued for the next pass
                log.warning("opik sync failed: %s", type(exc).__name__)
            if not self._sync_again:
                return

    async def close(self) -> None:
        """Stop background work, flush queued traces, close the model clients."""
        for task in list(self.background):
            task.cancel()
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
        await self.sink.close()
        if self._health_engine is not None:
            await self._health_engine.dispose()
        judge_model = getattr(self.judge, "model", None)
        for model in [*self.models.values(), *([judge_model] if judge_model else [])]:
            closing = getattr(model, "aclose", None)
            if closing is not None:
                try:
                    await closing()
                except Exception as exc:  # a client that fails to close must not stop shutdown
                    log.warning("closing %s failed: %s", model.name, type(exc).__name__)


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
# The request's database connection: the token lookup's, reused by a body-less handler.
CONN = web.RequestKey("codi_eval_conn", AsyncConnection)
