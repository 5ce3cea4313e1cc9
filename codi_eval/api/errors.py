"""One error shape for every failure: ``{"error": {"code", "message", "field"}}``.

The middleware here is the outermost layer: whatever a handler, aiohttp or the database
raises becomes that shape. A database that cannot be reached is a 503 with Retry-After
(the client may retry; nothing is wrong with its request), a client that went away is one
INFO line, and anything unexpected is logged server-side (method, path and traceback;
never headers, so never the token) and answered as a plain 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from codi_eval.api.http import error_response
from codi_eval.store.faults import is_store_fault

log = logging.getLogger("codi_eval.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# aiohttp's own HTTP errors (unknown route, wrong method, body too large) → our codes.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "body_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    502: "upstream_error",
    503: "unavailable",
    504: "upstream_timeout",
}
STORE_RETRY_AFTER_S = 5


class ApiError(Exception):
    """An error a client can act on; rendered as the error shape with ``status``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}


def not_found(what: str, field: str | None = None) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found", field=field)


def store_unavailable() -> ApiError:
    return ApiError(
        503,
        "store_unavailable",
        "the database is unreachable right now; retry later",
        headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like pass through unchanged
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        message = exc.reason
        if exc.status == 413:
            message = "the request body is larger than the 256 KiB limit"
        elif exc.status == 405:
            message = (
                f"{request.method} is not allowed here (allowed: {headers.get('Allow', 'none')})"
            )
        elif exc.status == 404:
            message = f"no route {request.path}"
        return error_response(
            exc.status, _HTTP_CODES.get(exc.status, "http_error"), message, headers=headers
        )
    except asyncio.CancelledError:
        # aiohttp cancels the handler when the client disconnects: its work stops here.
        if request.transport is None or request.transport.is_closing():
            log.info("client went away: %s %s (work cancelled)", request.method, request.path)
        raise
    except (ConnectionResetError, web.HTTPClientError) as exc:  # pragma: no cover - racy
        log.info("client went away: %s %s (%s)", request.method, request.path, type(exc).__name__)
        raise
    except Exception as exc:
        if is_store_fault(exc):
            log.warning(
                "store unreachable in %s %s: %s", request.method, request.path, type(exc).__name__
            )
            error = store_unavailable()
            return error_response(error.status, error.code, error.message, headers=error.headers)
        # The traceback goes to the server log; the client gets no internals.
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal_error", "unexpected server error; it has been logged")
