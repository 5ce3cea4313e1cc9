"""JSON responses, written the same way by every handler: through their pydantic models."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from pydantic import BaseModel

from codi_eval.api.schemas import Error


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    """``model`` serialised by pydantic (UUIDs as strings, times as RFC 3339 with a Z)."""
    return web.Response(
        body=model.__pydantic_serializer__.to_json(model),
        status=status,
        content_type="application/json",
    )


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = Error.model_validate({"error": {"code": code, "message": message, "field": field}})
    response = json_response(body, status)
    response.headers.update(headers or {})
    return response
