"""Reading JSON bodies and writing JSON responses the same way in every handler."""

from __future__ import annotations

import json
from datetime import datetime
from functools import partial
from typing import Any

from aiohttp import web

from codi_eval.api.errors import ApiError
from codi_eval.api.openapi import MAX_BODY_BYTES, validate_body

_dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def json_ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, as the seed shows (2026-02-06T01:00:00Z)."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: web.Request, schema_name: str) -> dict[str, Any]:
    """The request body as a JSON object valid against ``components.schemas[schema_name]``."""
    # Refuse early by Content-Length; aiohttp's client_max_size catches chunked bodies.
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", "the request body is larger than the 256 KiB limit")
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", "the request body is larger than the 256 KiB limit")
    if not raw.strip():
        raise ApiError(400, "invalid_json", "the request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "invalid_json",
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"malformed JSON: {exc}") from None
    return validate_body(data, schema_name)
