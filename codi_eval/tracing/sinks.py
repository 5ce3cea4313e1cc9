"""The store sink: finished traces are written in batches, so a burst costs few round trips."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from codi_eval.tracing.records import TraceTree

if TYPE_CHECKING:
    from codi_eval.store.engine import Store

log = logging.getLogger(__name__)


class StoreSink:
    """Collects finished trace trees and writes up to ``max_batch`` per transaction.

    ``max_delay_s`` lets a batch linger to grow (0: write as soon as the writer is free).

    ``submit`` waits until the tree is committed (so a caller that returns a trace id
    knows it can be read back); many concurrent submitters share one transaction.
    A batch that fails is retried tree by tree, so one bad tree cannot take others down.
    """

    def __init__(self, store: Store, *, max_batch: int = 256, max_delay_s: float = 0.0,
                 max_pending: int = 10_000) -> None:
        self.store = store
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self._queue: asyncio.Queue[tuple[TraceTree, asyncio.Future[None]]] = asyncio.Queue(max_pending)
        self._worker: asyncio.Task[None] | None = None
        self.batches_written = 0
        self.trees_written = 0
        self.failures = 0

    async def submit(self, tree: TraceTree) -> None:
        self._ensure_worker()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((tree, done))
        await done

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="codi-eval-store-sink")

    async def _run(self) -> None:
        # Group commit: take whatever queued up while the previous write ran. Under load the
        # batches grow by themselves; a lone trace is written at once, with no linger.
        while True:
            batch = [await self._queue.get()]
            if self.max_delay_s:
                await asyncio.sleep(self.max_delay_s)
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            await self._write(batch)

    async def _write(self, batch: list[tuple[TraceTree, asyncio.Future[None]]]) -> None:
        from codi_eval.store.writes import write_trees

        try:
            async with self.store.transaction() as session:
                await write_trees(session, [tree for tree, _ in batch])
        except Exception:
            if len(batch) > 1:
                for item in batch:
                    await self._write([item])
                return
            tree, done = batch[0]
            self.failures += 1
            log.exception("could not store trace %s", tree.trace.id)
            if not done.done():
                done.set_exception(TraceWriteError(f"could not store trace {tree.trace.id}"))
            return
        self.batches_written += 1
        self.trees_written += len(batch)
        for _, done in batch:
            if not done.done():
                done.set_result(None)

    async def close(self) -> None:
        """Wait for queued trees to be written, then stop the worker."""
        while not self._queue.empty() and self._worker is not None and not self._worker.done():
            await asyncio.sleep(self.max_delay_s)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None


class TraceWriteError(RuntimeError):
    pass
