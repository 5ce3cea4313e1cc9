"""Model calls as the runner makes them: made once, cached, rate-limited, bounded in time
and retries.

:class:`ManagedModel` wraps any provider and keeps the :class:`Model` protocol, so Chain of
Density and the judges need not know about caching or retries. Identical calls (same cache
key: model identity, prompt, parameters, repeat) are made once per experiment by a
:class:`CallMemo`: a call already in flight is awaited, not repeated, and a recent answer is
reused. That is how the density cells of one item share their Chain-of-Density iterations:
iteration *k* of a density-3 run is the same request as iteration *k* of the density-1 run
(the prompt never sees the total depth), so it is paid for once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from codi_eval.experiments.cache import ResponseCache, cache_key, model_identity
from codi_eval.models.base import GenerateRequest, Generation, Model, ModelError
from codi_eval.store.faults import describe, is_store_fault

log = logging.getLogger(__name__)
# The store cache is a saving, not a dependency: a lookup or write that takes longer than
# this (or fails) is skipped, counted and logged, and the model is called.
CACHE_WAIT_S = 5.0


@dataclass
class CallStats:
    """Counts for one run (per task, through a contextvar) or for the whole experiment."""

    model_calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    # Calls to a priced-by-nobody model: the cost above is then a lower bound, shown so.
    unpriced_calls: int = 0
    cache_faults: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def record(self, generation: Generation) -> None:
        if generation.cached:
            self.cache_hits += 1
            return
        self.model_calls += 1
        self.prompt_tokens += generation.usage.prompt_tokens or 0
        self.completion_tokens += generation.usage.completion_tokens or 0
        if generation.cost is None and generation.provider != "offline":
            self.unpriced_calls += 1
        self.cost += generation.cost or 0.0


run_stats: ContextVar[CallStats | None] = ContextVar("codi_eval_run_stats", default=None)


class Limiter(Protocol):
    async def acquire(self) -> None: ...

    def pause(self, seconds: float) -> None: ...


class Slots(Protocol):
    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc: Any) -> Any: ...


class CallMemo:
    """Answers by cache key, shared by every model of one runner: calls in flight (the
    first caller makes it, the others await its answer) and the latest ``size`` answers.

    Bounded: an experiment's runs are claimed item by item, so the cells that share a call
    run close together and a few thousand answers cover them.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._done: OrderedDict[str, Generation] = OrderedDict()
        self.in_flight: dict[str, asyncio.Future[Generation]] = {}

    def get(self, key: str) -> Generation | None:
        hit = self._done.get(key)
        if hit is not None:
            self._done.move_to_end(key)
        return hit

    def put(self, key: str, generation: Generation) -> None:
        self._done[key] = replace(generation, cached=True)
        self._done.move_to_end(key)
        while len(self._done) > self.size:
            self._done.popitem(last=False)

    def __len__(self) -> int:
        return len(self._done)


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
    """A model behind the runner's call sharing, cache, rate limit, per-model concurrency and
    retries. ``name`` is the spec's name (``?base_url`` and all): the cache key's identity is
    read from it once."""

    def __init__(
        self,
        inner: Model,
        *,
        name: str | None = None,
        cache: ResponseCache | None,
        limiter: Limiter,
        semaphore: Slots | None,
        policy: RetryPolicy,
        totals: CallStats,
        memo: CallMemo | None = None,
        repeat: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.name = name or inner.name
        self.provider = inner.provider
        self.cache = cache
        self.limiter = limiter
        self.semaphore = semaphore
        self.policy = policy
        self.totals = totals
        self.memo = memo
        self.repeat = repeat
        self.rng = rng or random.Random()
        self.identity = model_identity(self.name, self.provider)

    def for_repeat(self, repeat: int) -> ManagedModel:
        clone = object.__new__(ManagedModel)
        clone.__dict__.update(self.__dict__)
        clone.repeat = repeat
        return clone

    async def generate(self, request: GenerateRequest) -> Generation:
        if request.timeout_s is None and self.policy.timeout_s is not None:
            request = replace(request, timeout_s=self.policy.timeout_s)
        if self.memo is None and self.cache is None:
            return self._record(await self._call(request))
        key = cache_key(self.identity, request, self.repeat)
        memo = self.memo
        if memo is None:
            return self._record(await self._cached_call(key, request))
        while True:
            hit = memo.get(key)
            if hit is not None:
                return self._record(hit)
            flying = memo.in_flight.get(key)
            if flying is None:
                break
            try:
                return self._record(replace(await asyncio.shield(flying), cached=True))
            except asyncio.CancelledError:
                if not flying.cancelled():
                    raise  # this caller was cancelled, not the call it waited for
                # The first caller gave up (cancelled, a lost lease): make the call ourselves.
        future: asyncio.Future[Generation] = asyncio.get_running_loop().create_future()
        memo.in_flight[key] = future
        try:
            generation = await self._cached_call(key, request)
        except ModelError as exc:
            # Waiters fail as this caller does: the same call, already retried, failed.
            future.set_exception(exc)
            future.exception()  # marked as retrieved: no warning when nobody waited
            raise
        except BaseException:
            future.cancel()  # waiters make the call themselves
            raise
        else:
            future.set_result(generation)
            memo.put(key, generation)
        finally:
            memo.in_flight.pop(key, None)
        return self._record(generation)

    async def _cached_call(self, key: str, request: GenerateRequest) -> Generation:
        if self.cache is not None:
            hit = await self._cache_op(self.cache.get(key), "reading")
            if hit is not None:
                return hit
        generation = await self._call(request)
        if self.cache is not None:
            await self._cache_op(self.cache.put(key, request, self.repeat, generation), "writing")
        return generation

    async def _cache_op(self, operation: Any, what: str) -> Any:
        try:
            return await asyncio.wait_for(operation, CACHE_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - the cache is a saving, not a dependency
            if not (is_store_fault(exc) or isinstance(exc, TimeoutError)):
                raise
            self.totals.cache_faults += 1
            log.warning("response cache skipped (%s it: %s)", what, describe(exc))
            return None

    async def _call(self, request: GenerateRequest) -> Generation:
        attempt = 0
        while True:
            try:
                return await self._attempt(request)
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

    async def _attempt(self, request: GenerateRequest) -> Generation:
        # A provider that builds its client first does so before taking a slot of the rate
        # limit: otherwise the calls waiting for it would all start at once when it is ready.
        start = getattr(self.inner, "start", None)
        if start is not None:
            await start()
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

    def _record(self, generation: Generation) -> Generation:
        self.totals.record(generation)
        stats = run_stats.get()
        if stats is not None:
            stats.record(generation)
        return generation
