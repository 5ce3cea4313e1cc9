"""One error shape for every failure: ``{"error": {"code", "message", "field"}}``.

The middleware here is the outermost layer: whatever a handler, aiohttp or the database
raises becomes that shape, and an unexpected exception is logged server-side (method,
path and traceback; never headers, so never the token) and answered as a plain 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("codi_eval.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# aiohttp's own HTTP errors (unknown route, wrong method, body too large) → our codes.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    502: "upstream_error",
    503: "unavailable",
    504: "upstream_timeout",
}


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


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.json_response(error_body(code, message, field), status=status, headers=headers)


def not_found(what: str, field: str | None = None) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found", field=field)


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
    except Exception:
        # The traceback goes to the server log; the client gets no internals.
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal_error", "unexpected server error; it has been logged")
