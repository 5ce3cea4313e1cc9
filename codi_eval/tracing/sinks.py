"""The store sink: finished traces are written in batches, so a burst costs few round trips."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from codi_eval.store.faults import DEFAULT_OUTAGE_S, StoreUnavailable, retrying
from codi_eval.store.records import TraceTree
from codi_eval.store.writes import WriteReport, write_trees

if TYPE_CHECKING:
    from codi_eval.store.engine import Store

log = logging.getLogger(__name__)


class StoreSink:
    """Collects finished trace trees and writes up to ``max_batch`` per transaction.

    ``max_delay_s`` lets a batch linger to grow (0: write as soon as the writer is free).
    ``writers`` transactions may be in flight at once, each on its own connection, so one
    batch's rows are built while the database server stores the last (one writer leaves the
    server's time exposed when the loop has nothing else to do, as at the end of a run).

    With ``wait_for_commit`` (the default) ``submit`` returns once the tree is committed,
    so a caller that hands out a trace id knows it can be read back; many concurrent
    submitters share one transaction. Without it ``submit`` returns once the tree is queued
    (the bounded queue still holds back a producer that outruns the database) and
    :meth:`close` waits for everything queued. A store that is unreachable is waited for,
    with backoff, for up to ``outage_s``; past that every queued and later tree fails with
    :class:`~codi_eval.store.faults.StoreUnavailable`. A batch that fails for another
    reason is retried tree by tree, so one bad tree cannot take others down.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = 256,
        max_delay_s: float = 0.0,
        max_pending: int = 10_000,
        wait_for_commit: bool = True,
        outage_s: float = DEFAULT_OUTAGE_S,
        writers: int = 1,
    ) -> None:
        if writers < 1:
            raise ValueError("writers must be at least 1")
        self.store = store
        self.writers = writers
        self.wait_for_commit = wait_for_commit
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self._queue: asyncio.Queue[tuple[TraceTree, asyncio.Future[None] | None]] = asyncio.Queue(
            max_pending
        )
        self._workers: list[asyncio.Task[None]] = []
        self._gathering = asyncio.Lock()
        self.outage_s = outage_s
        self.batches_written = 0
        self.trees_written = 0
        self.failures = 0
        self.released = 0  # runs given back because infrastructure cut their work short
        self.lost_leases = 0  # results dropped: another worker holds the run now
        # Set when the store stayed away past the outage budget: every later submit raises it.
        self.fatal: StoreUnavailable | None = None

    async def submit(self, tree: TraceTree) -> None:
        if self.fatal is not None:
            raise self.fatal
        self._ensure_worker()
        if not self.wait_for_commit:
            await self._queue.put((tree, None))
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((tree, done))
        await done

    def _ensure_worker(self) -> None:
        if len(self._workers) == self.writers and not any(w.done() for w in self._workers):
            return
        loop = asyncio.get_running_loop()
        self._workers = [w for w in self._workers if not w.done()]
        while len(self._workers) < self.writers:
            self._workers.append(loop.create_task(self._run(), name="codi-eval-store-sink"))

    async def _run(self) -> None:
        # Group commit: take whatever queued up while the previous write ran. Under load the
        # batches grow by themselves; a lone trace is written at once, with no linger.
        # One writer gathers at a time (the others are writing): two lingering at once would
        # split what one gathering would take into two half-sized batches.
        while True:
            async with self._gathering:
                batch = [await self._queue.get()]
                if self.max_delay_s:
                    await asyncio.sleep(self.max_delay_s)
                while len(batch) < self.max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except asyncio.QueueEmpty:
                        break
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write_once(self, trees: list[TraceTree]) -> WriteReport:
        async with self.store.transaction() as session:
            return await write_trees(session, trees)

    async def _write(self, batch: list[tuple[TraceTree, asyncio.Future[None] | None]]) -> None:
        if self.fatal is not None:
            self._fail(batch, self.fatal)
            return
        trees = [tree for tree, _ in batch]
        try:
            # A store that went away is waited for (within the outage budget), not lost.
            report = await retrying(
                lambda: self._write_once(trees),
                what="storing traces",
                url=self.store.url,
                outage_s=self.outage_s,
            )
        except StoreUnavailable as exc:
            self.fatal = exc
            self._fail(batch, exc)
            return
        except Exception:
            if len(batch) > 1:
                for item in batch:
                    await self._write([item])
                return
            tree, done = batch[0]
            self.failures += 1
            log.exception("could not store trace %s", tree.trace.id)
            if done is not None and not done.done():
                done.set_exception(TraceWriteError(f"could not store trace {tree.trace.id}"))
            return
        self.batches_written += 1
        self.trees_written += report.written
        self.released += report.released
        self.lost_leases += report.lost
        for _, done in batch:
            if done is not None and not done.done():
                done.set_result(None)

    def _fail(
        self, batch: list[tuple[TraceTree, asyncio.Future[None] | None]], exc: BaseException
    ) -> None:
        for _, done in batch:
            if done is not None and not done.done():
                done.set_exception(exc)

    async def close(self) -> None:
        """Wait until every queued tree is written (or has failed), then stop the writers."""
        if any(not w.done() for w in self._workers):
            await self._queue.join()
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []


class TraceWriteError(RuntimeError):
    pass
