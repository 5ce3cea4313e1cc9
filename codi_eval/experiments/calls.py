"""Model calls as the runner makes them: cached, rate-limited, bounded in time and retries.

:class:`ManagedModel` wraps any provider and keeps the :class:`Model` protocol, so Chain of
Density and the judges need not know about caching or retries.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field, replace

from codi_eval.experiments.cache import ResponseCache, cache_key, model_identity
from codi_eval.models.base import GenerateRequest, Generation, Model, ModelError


@dataclass
class CallStats:
    """Counts for one run (per task, through a contextvar) or for the whole experiment."""

    model_calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)

    def record(self, generation: Generation) -> None:
        if generation.cached:
            self.cache_hits += 1
            return
        self.model_calls += 1
        self.prompt_tokens += generation.usage.prompt_tokens or 0
        self.completion_tokens += generation.usage.completion_tokens or 0
        self.cost += generation.cost or 0.0


run_stats: ContextVar[CallStats | None] = ContextVar("codi_eval_run_stats", default=None)


class RateLimiter:
    """Spaces calls evenly to stay under ``requests_per_minute`` (a leaky bucket)."""

    def __init__(self, requests_per_minute: float | None) -> None:
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every caller back (a 429 with Retry-After applies to the whole quota)."""
        self._next = max(self._next, time.monotonic() + seconds)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    timeout_s: float | None = 60.0

    def delay(self, attempt: int, error: ModelError, rng: random.Random) -> float:
        if error.retry_after_s is not None:
            return min(error.retry_after_s, self.max_backoff_s)
        # Exponential backoff with full jitter (AWS architecture blog's recommendation).
        return rng.uniform(0, min(self.max_backoff_s, self.backoff_s * (2**attempt)))


class ManagedModel:
    """A model behind the runner's cache, rate limit, per-model concurrency and retries."""

    def __init__(
        self,
        inner: Model,
        *,
        cache: ResponseCache | None,
        limiter: RateLimiter,
        semaphore: asyncio.Semaphore | None,
        policy: RetryPolicy,
        totals: CallStats,
        repeat: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.provider = inner.provider
        self.cache = cache
        self.limiter = limiter
        self.semaphore = semaphore
        self.policy = policy
        self.totals = totals
        self.repeat = repeat
        self.rng = rng or random.Random()

    def for_repeat(self, repeat: int) -> ManagedModel:
        clone = object.__new__(ManagedModel)
        clone.__dict__.update(self.__dict__)
        clone.repeat = repeat
        return clone

    async def generate(self, request: GenerateRequest) -> Generation:
        if request.timeout_s is None and self.policy.timeout_s is not None:
            request = replace(request, timeout_s=self.policy.timeout_s)
        key = None
        if self.cache is not None:
            key = cache_key(model_identity(self.name, self.provider), request, self.repeat)
            hit = await self.cache.get(key)
            if hit is not None:
                self._record(hit)
                return hit
        attempt = 0
        while True:
            try:
                generation = await self._attempt(request)
                break
            except ModelError as error:
                self.totals.errors[error.kind] += 1
                stats = run_stats.get()
                if stats is not None:
                    stats.errors[error.kind] += 1
                if not error.retryable or attempt >= self.policy.max_retries:
                    raise
                delay = self.policy.delay(attempt, error, self.rng)
                if error.kind == "rate_limited":
                    self.limiter.pause(delay)
                self.totals.retries += 1
                if stats is not None:
                    stats.retries += 1
                attempt += 1
                await asyncio.sleep(delay)
        if key is not None and self.cache is not None:
            await self.cache.put(key, request, self.repeat, generation)
        self._record(generation)
        return generation

    async def _attempt(self, request: GenerateRequest) -> Generation:
        await self.limiter.acquire()
        timeout = request.timeout_s
        if self.semaphore is not None:
            async with self.semaphore:
                return await self._timed(request, timeout)
        return await self._timed(request, timeout)

    async def _timed(self, request: GenerateRequest, timeout: float | None) -> Generation:
        try:
            # A backstop: providers apply the timeout themselves, this catches one that does not.
            return await asyncio.wait_for(
                self.inner.generate(request), None if timeout is None else timeout + 5.0
            )
        except TimeoutError:
            raise ModelError("timeout", f"no answer within {timeout:g} s") from None

    def _record(self, generation: Generation) -> None:
        self.totals.record(generation)
        stats = run_stats.get()
        if stats is not None:
            stats.record(generation)
