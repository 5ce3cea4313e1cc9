"""How much work one request, one user and the whole server may take (DESIGN "Trust boundaries").

- **In flight**: at most ``max_in_flight`` requests are being handled at once; beyond that
  the server answers 503 with Retry-After at once instead of queueing without bound.
- **Per user**: a token bucket of requests per minute, another of summaries per minute
  (a summary spends model quota), and a cap on concurrent summaries; over any of them is
  429 with Retry-After, and another user is not affected.
- **Per request**: a deadline (504 when it passes) and, for bodies, a read timeout.
- **Summaries at work**: at most ``summary_workers`` summaries run at once; the rest wait
  (within their deadline), so light requests are never stuck behind hundreds of them.

The counters live in this process: with ``serve --workers N`` each worker holds its own,
so a user's effective quota is up to N times the configured one (README says so).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from codi_eval.api.errors import ApiError

# Buckets of users not seen for this long are dropped, so the table cannot grow forever.
_IDLE_S = 600.0
_SWEEP_EVERY = 1000


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class TokenBuckets:
    """One token bucket per key: ``per_minute`` tokens a minute, bursts up to a minute's worth."""

    per_minute: float
    what: str
    buckets: dict[int, _Bucket] = field(default_factory=dict)
    _takes: int = 0

    def take(self, key: int, now: float | None = None) -> None:
        """Spend one token of ``key``'s bucket, or raise 429 saying when to come back."""
        now = time.monotonic() if now is None else now
        rate = self.per_minute / 60.0
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket(self.per_minute, now)
        bucket.tokens = min(self.per_minute, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        self._takes += 1
        if self._takes % _SWEEP_EVERY == 0:
            self._sweep(now)
        if bucket.tokens < 1.0:
            wait = math.ceil((1.0 - bucket.tokens) / rate)
            raise ApiError(
                429,
                "quota_exceeded",
                f"you are over your quota of {self.per_minute:g} {self.what} per minute; "
                f"retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        bucket.tokens -= 1.0

    def _sweep(self, now: float) -> None:
        for key in [k for k, b in self.buckets.items() if now - b.updated > _IDLE_S]:
            del self.buckets[key]


class Limits:
    """The server's and each user's limits, from :class:`~codi_eval.settings.Settings`."""

    def __init__(
        self,
        *,
        max_in_flight: int,
        requests_per_minute: float,
        summaries_per_minute: float,
        concurrent_summaries: int,
        summary_workers: int = 16,
    ) -> None:
        self.max_in_flight = max_in_flight
        # Summaries past this many wait their turn (they are CPU work on this event loop):
        # with hundreds running at once, every light request — /health, a trace list —
        # would queue behind all of them for each step.
        self.workers = asyncio.Semaphore(summary_workers)
        self.in_flight = 0
        self.requests = TokenBuckets(requests_per_minute, "requests")
        self.summaries = TokenBuckets(summaries_per_minute, "summaries")
        self.concurrent_summaries = concurrent_summaries
        self._summarizing: dict[int, int] = {}

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Count one request in flight, or refuse it with 503 when the server is full."""
        if self.in_flight >= self.max_in_flight:
            raise ApiError(
                503,
                "server_busy",
                f"the server is handling its limit of {self.max_in_flight} requests; retry soon",
                headers={"Retry-After": "1"},
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    @asynccontextmanager
    async def summary_slot(self, user_id: int) -> AsyncIterator[None]:
        """One of the user's concurrent summaries, charged to their summaries-per-minute quota."""
        running = self._summarizing.get(user_id, 0)
        if running >= self.concurrent_summaries:
            raise ApiError(
                429,
                "too_many_summaries",
                f"you already have {running} summaries running (the limit is "
                f"{self.concurrent_summaries}); wait for one to finish",
                headers={"Retry-After": "1"},
            )
        self.summaries.take(user_id)
        self._summarizing[user_id] = running + 1
        try:
            async with self.workers:
                yield
        finally:
            left = self._summarizing[user_id] - 1
            if left:
                self._summarizing[user_id] = left
            else:
                del self._summarizing[user_id]
