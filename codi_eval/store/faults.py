"""Store faults are infrastructure, not results: recognising them, and riding them out.

A connection refused or dropped, a pool with no free connection, a statement cut by the
server or by a network that stopped answering: the store is unusable for now. Callers
retry such faults with :func:`retrying` (exponential backoff, up to an outage budget) and
otherwise stop cleanly with :class:`StoreUnavailable` — one line a person can act on, no
SQL text, nothing recorded as a failed run.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from codi_eval.errors import StoreError

log = logging.getLogger("codi_eval.store")
T = TypeVar("T")

# How long a store may be away before work stops (a cut of ~30 s is ridden out).
DEFAULT_OUTAGE_S = 60.0
# One attempt of a store operation; a batch of traces is written in well under a second.
ATTEMPT_S = 20.0

_FAULTS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
    ConnectionError,
    TimeoutError,
)


def safe_url(url: str) -> str:
    """The URL with any password hidden, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # sqlalchemy.exc.ArgumentError and friends
        return "<invalid url>"


def is_store_fault(exc: BaseException) -> bool:
    """True for a fault of the store's infrastructure (not a bug, not bad data)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    return isinstance(exc, _FAULTS)


def describe(exc: BaseException) -> str:
    """A fault in a few words, without SQL text or parameters."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"{type(original).__name__}: {text[:160]}" if text else type(original).__name__


class StoreUnavailable(StoreError):
    """The store stayed unreachable past the outage budget; the work stopped, resumable."""


async def retrying(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    url: str,
    outage_s: float = DEFAULT_OUTAGE_S,
    first_delay_s: float = 0.25,
    max_delay_s: float = 5.0,
    attempt_s: float = ATTEMPT_S,
) -> T:
    """``await operation()``, retrying store faults with backoff for up to ``outage_s``.

    Each attempt is bounded by ``attempt_s``: a network that stopped answering (packets
    held, nothing refused) would otherwise hang the attempt for as long as the TCP stack
    keeps trying; the driver then needs up to ~10 s more to abandon the connection.
    """
    started: float | None = None
    attempt = 0
    while True:
        try:
            async with asyncio.timeout(attempt_s):
                return await operation()
        except Exception as exc:
            if not is_store_fault(exc):
                raise
            now = time.monotonic()
            started = now if started is None else started
            if now - started >= outage_s:
                raise StoreUnavailable(
                    f"the store at {safe_url(url)} has been unreachable for {now - started:.0f} s "
                    f"while {what} ({describe(exc)}); nothing was lost: run the same command "
                    "again when it is back"
                ) from None
            delay = min(max_delay_s, first_delay_s * 2**attempt) * (0.5 + random.random() / 2)
            if attempt == 0:
                log.warning("store unreachable while %s (%s); retrying", what, describe(exc))
            attempt += 1
            await asyncio.sleep(min(delay, max(0.0, outage_s - (now - started))))
