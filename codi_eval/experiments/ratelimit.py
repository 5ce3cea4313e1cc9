"""Rate limits that hold across every worker: kept in the store, not in one process.

:class:`SharedRateLimiter` is a leaky bucket: the store keeps the earliest start of a
model's next call; taking a slot pushes it one interval (60 / requests_per_minute) on, in a
single UPDATE ... RETURNING, so concurrent workers on any machines get distinct, evenly
spaced starts and the limit holds in every window. A 429's Retry-After pauses the model
for every worker. :class:`SharedSlots` caps a model's calls in flight across workers with
slot rows claimed like runs (with an expiry, so a dead worker's slot comes back).

Times are epoch seconds of the workers' clocks (keep machines in NTP sync). When the store
cannot answer, a call falls back to this process's own spacing (the limit then holds per
worker) and the fault is counted, never hidden: ``fallbacks``; the run itself goes on.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from sqlalchemy import case, or_, select, update

from codi_eval.store.engine import Store
from codi_eval.store.faults import describe, is_store_fault
from codi_eval.store.models import ModelLimit, ModelSlot
from codi_eval.store.writes import insert_ignore

log = logging.getLogger(__name__)
# A store round trip for a slot is bounded: a call waits at most this long for the store.
STORE_WAIT_S = 5.0
LATE_RETRIES = 3


class SharedRateLimiter:
    """``requests_per_minute`` for one model key, shared through the store."""

    def __init__(self, store: Store, key: str, requests_per_minute: float) -> None:
        self.store = store
        self.key = key[:400]
        self.interval = 60.0 / requests_per_minute
        self._ready = False
        self._local_pause = 0.0
        self._local_next = 0.0
        self.fallbacks = 0
        self.late = 0

    async def _ensure(self) -> None:
        if not self._ready:
            async with self.store.transaction() as session:
                await insert_ignore(
                    session,
                    ModelLimit,
                    [{"key": self.key, "next_at": 0.0, "paused_until": None}],
                    ("key",),
                )
            self._ready = True

    async def acquire(self) -> None:
        """Wait for this call's slot (distinct from every other worker's).

        A worker that wakes up too late for its slot (a busy machine, a stalled loop) does
        not start then, beside the next slot's call: it gives the slot up and takes a new
        one (at most ``LATE_RETRIES`` times; a start later still is counted in ``late``).
        """
        tolerance = max(self.interval / 2, 0.02)
        for _ in range(LATE_RETRIES + 1):
            start = await self._slot() - self.interval
            wait = max(start, self._local_pause) - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if time.time() - max(start, self._local_pause) <= tolerance:
                return
        self.late += 1

    async def _slot(self) -> float:
        try:
            end = await asyncio.wait_for(self._take(), STORE_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - a store fault must not fail the call
            if not (is_store_fault(exc) or isinstance(exc, TimeoutError)):
                raise
            self.fallbacks += 1
            log.warning("shared rate limit unavailable (%s); spacing calls locally", describe(exc))
            end = max(time.time(), self._local_next) + self.interval
        self._local_next = max(self._local_next, end)
        return end

    async def _take(self) -> float:
        """The end of this call's interval: its start is one interval before."""
        await self._ensure()
        async with self.store.transaction() as session:
            # "Now" is read once the connection is ours: a time read before waiting for the
            # pool would be stale and let late callers start together.
            await session.connection()
            now = time.time()
            start = await session.scalar(
                update(ModelLimit)
                .where(ModelLimit.key == self.key)
                .values(
                    next_at=case((ModelLimit.next_at > now, ModelLimit.next_at), else_=now)
                    + self.interval
                )
                .returning(ModelLimit.next_at)
            )
        return float(start) if start is not None else now + self.interval

    def pause(self, seconds: float) -> None:
        """Hold every worker back ``seconds`` (a 429 with Retry-After covers the whole quota)."""
        until = time.time() + seconds
        self._local_pause = max(self._local_pause, until)
        asyncio.get_running_loop().create_task(self._pause(until))

    async def _pause(self, until: float) -> None:
        try:
            await asyncio.wait_for(self._store_pause(until), STORE_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - this worker still pauses locally
            if not (is_store_fault(exc) or isinstance(exc, TimeoutError)):
                raise
            self.fallbacks += 1
            log.warning("could not share a 429 pause (%s); pausing this worker", describe(exc))

    async def _store_pause(self, until: float) -> None:
        await self._ensure()
        async with self.store.transaction() as session:
            await session.execute(
                update(ModelLimit)
                .where(ModelLimit.key == self.key)
                .values(
                    next_at=case((ModelLimit.next_at > until, ModelLimit.next_at), else_=until),
                    paused_until=until,
                )
            )


class SharedSlots:
    """At most ``limit`` calls in flight for one model key, across workers."""

    def __init__(self, store: Store, key: str, limit: int, owner: str, hold_s: float) -> None:
        self.store = store
        self.key = key[:400]
        self.limit = limit
        self.owner = owner
        self.hold_s = hold_s
        self._ready = False
        self._held: dict[asyncio.Task[object], int | None] = {}
        # This process never has more than ``limit`` in flight, whatever the store says.
        self._local = asyncio.Semaphore(limit)
        self.fallbacks = 0

    async def _ensure(self) -> None:
        if not self._ready:
            async with self.store.transaction() as session:
                await insert_ignore(
                    session,
                    ModelSlot,
                    [
                        {"key": self.key, "slot": i, "holder": None, "expires_at": None}
                        for i in range(self.limit)
                    ],
                    ("key", "slot"),
                )
            self._ready = True

    async def _take(self) -> int | None:
        now = time.time()
        async with self.store.transaction() as session:
            free = (
                select(ModelSlot.slot)
                .where(
                    ModelSlot.key == self.key,
                    ModelSlot.slot < self.limit,
                    or_(ModelSlot.holder.is_(None), ModelSlot.expires_at < now),
                )
                .order_by(ModelSlot.slot)
                .limit(1)
            )
            if self.store.dialect == "postgresql":
                free = free.with_for_update(skip_locked=True)
            return await session.scalar(
                update(ModelSlot)
                .where(ModelSlot.key == self.key, ModelSlot.slot == free.scalar_subquery())
                .values(holder=self.owner, expires_at=now + self.hold_s)
                .returning(ModelSlot.slot)
            )

    async def __aenter__(self) -> None:
        """Take a free slot (waiting with backoff); ``async with slots:`` around one call."""
        await self._local.acquire()
        slot: int | None = None
        try:
            delay = 0.02
            while True:
                try:
                    slot = await asyncio.wait_for(self._claim(), STORE_WAIT_S)
                except Exception as exc:  # noqa: BLE001 - a store fault must not fail the call
                    if not (is_store_fault(exc) or isinstance(exc, TimeoutError)):
                        raise
                    self.fallbacks += 1
                    log.warning(
                        "shared concurrency slots unavailable (%s); limiting this worker only",
                        describe(exc),
                    )
                    break
                if slot is not None:
                    break
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)
        except BaseException:
            self._local.release()
            raise
        task = asyncio.current_task()
        assert task is not None
        self._held[task] = slot

    async def _claim(self) -> int | None:
        await self._ensure()
        return await self._take()

    async def __aexit__(self, *exc: object) -> None:
        task = asyncio.current_task()
        slot = self._held.pop(task, None) if task is not None else None
        self._local.release()
        if slot is None:
            return
        try:
            await asyncio.wait_for(self._give_back(slot), STORE_WAIT_S)
        except Exception as error:  # noqa: BLE001 - the slot's expiry gives it back
            if not (is_store_fault(error) or isinstance(error, TimeoutError)):
                raise
            self.fallbacks += 1

    async def _give_back(self, slot: int) -> None:
        async with self.store.transaction() as session:
            await session.execute(
                update(ModelSlot)
                .where(
                    ModelSlot.key == self.key,
                    ModelSlot.slot == slot,
                    ModelSlot.holder == self.owner,
                )
                .values(holder=None, expires_at=None)
            )
