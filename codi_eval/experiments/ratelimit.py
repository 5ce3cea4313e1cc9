"""Rate limits that hold across every worker: kept in the store, not in one process.

:class:`SharedRateLimiter` is a leaky bucket: the store keeps the earliest start of a
model's next call; taking a slot pushes it one interval (60 / requests_per_minute) on, in a
single UPDATE ... RETURNING, so concurrent workers on any machines get distinct, evenly
spaced starts and the limit holds in every window. A 429's Retry-After pauses the model
for every worker. :class:`SharedSlots` caps a model's calls in flight across workers with
slot rows claimed like runs (with an expiry, so a dead worker's slot comes back).

Times are epoch seconds of the workers' clocks (keep machines in NTP sync).
"""

from __future__ import annotations

import asyncio
import random
import time

from sqlalchemy import case, or_, select, update

from codi_eval.store.engine import Store
from codi_eval.store.models import ModelLimit, ModelSlot
from codi_eval.store.writes import insert_ignore


class SharedRateLimiter:
    """``requests_per_minute`` for one model key, shared through the store."""

    def __init__(self, store: Store, key: str, requests_per_minute: float) -> None:
        self.store = store
        self.key = key[:400]
        self.interval = 60.0 / requests_per_minute
        self._ready = False
        self._local_pause = 0.0

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
        """Wait for this call's slot (distinct from every other worker's)."""
        await self._ensure()
        now = time.time()
        async with self.store.transaction() as session:
            start = await session.scalar(
                update(ModelLimit)
                .where(ModelLimit.key == self.key)
                .values(
                    next_at=case((ModelLimit.next_at > now, ModelLimit.next_at), else_=now)
                    + self.interval
                )
                .returning(ModelLimit.next_at)
            )
        wait = max((start or now) - self.interval - time.time(), self._local_pause - time.time())
        if wait > 0:
            await asyncio.sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every worker back ``seconds`` (a 429 with Retry-After covers the whole quota)."""
        until = time.time() + seconds
        self._local_pause = max(self._local_pause, until)
        asyncio.get_running_loop().create_task(self._pause(until))

    async def _pause(self, until: float) -> None:
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
        self._held: dict[asyncio.Task[object], int] = {}

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
        await self._ensure()
        delay = 0.02
        while (slot := await self._take()) is None:
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)
        task = asyncio.current_task()
        assert task is not None
        self._held[task] = slot

    async def __aexit__(self, *exc: object) -> None:
        task = asyncio.current_task()
        slot = self._held.pop(task) if task is not None else None
        if slot is None:
            return
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
