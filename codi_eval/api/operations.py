"""Operations: each route declared once, with its models; routing, validation and the
OpenAPI 3.1 document all follow from that declaration.

A handler is registered with :func:`operation` and receives its typed inputs::

    @operation("GET", "/traces", query=ListTracesQuery, response=TraceList, errors=(404,))
    async def list_traces(request, inputs: Inputs) -> TraceList: ...

The wrapper parses the path and query parameters with the declared models, reads and
validates the JSON body (bounded in size and in time, before any database connection is
taken), calls the handler, and serialises its answer through the response model. A
validation failure is a 400 whose ``field`` is the path of the value at fault
(``opik_workspace``, ``items[2].name``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from codi_eval.api.errors import ApiError
from codi_eval.api.schemas import Error, Health, NoQuery

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 256 * 1024

_ERROR_TEXT = {
    400: "Invalid parameter or body (the field is named).",
    401: "Missing, invalid, expired or revoked bearer token.",
    404: "Not found (or not yours).",
    413: "Body larger than 256 KiB.",
    422: "The model provider blocked the content.",
    429: "Over your request quota, or the model provider is rate limiting; see Retry-After.",
    500: "Unexpected server error (details are in the server log).",
    502: "The model provider failed.",
    503: "The server is at capacity or the database is unreachable; see Retry-After.",
    504: "The request (or the model provider) took too long.",
}
# Every authenticated operation can answer these.
AUTHED_ERRORS = (400, 401, 429, 500, 503, 504)


@dataclass
class Inputs:
    """What the wrapper parsed for a handler."""

    path: Any = None
    query: Any = None
    body: Any = None


Handler = Callable[[web.Request, Inputs], Awaitable[BaseModel | web.StreamResponse]]


@dataclass(frozen=True)
class Operation:
    id: str
    method: str
    path: str
    summary: str
    tag: str
    response: type[BaseModel]
    handler: Handler
    errors: tuple[int, ...] = ()
    body: type[BaseModel] | None = None
    query: type[BaseModel] = NoQuery
    path_params: type[BaseModel] | None = None
    public: bool = False
    # Routes that read a body take no database connection until the body is in.
    reads_body: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reads_body", self.body is not None)

    @property
    def responses(self) -> tuple[int, ...]:
        codes = set(self.errors) | ({500} if self.public else set(AUTHED_ERRORS))
        if self.body is not None:
            codes |= {400, 413}
        return tuple(sorted(codes))


OPERATIONS: dict[str, Operation] = {}


def operation(
    method: str,
    path: str,
    *,
    id: str,
    summary: str,
    tag: str,
    response: type[BaseModel],
    errors: tuple[int, ...] = (),
    body: type[BaseModel] | None = None,
    query: type[BaseModel] = NoQuery,
    path_params: type[BaseModel] | None = None,
    public: bool = False,
) -> Callable[[Handler], Handler]:
    """Register ``handler`` as operation ``id`` at ``method path`` (under /api/v1)."""

    def register(handler: Handler) -> Handler:
        if id in OPERATIONS:
            raise ValueError(f"operation {id} is declared twice")
        OPERATIONS[id] = Operation(
            id=id,
            method=method.upper(),
            path=path,
            summary=summary,
            tag=tag,
            response=response,
            handler=handler,
            errors=errors,
            body=body,
            query=query,
            path_params=path_params,
            public=public,
        )
        return handler

    return register


# ----------------------------------------------------------------------- validation


def field_path(loc: tuple[int | str, ...]) -> str | None:
    """``("items", 2, "name")`` → ``items[2].name``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "an object",
    "model_type": "an object",
    "list_type": "an array",
    "none_required": "null",
}


def _message(error: Mapping[str, Any], where: str | None, allowed: list[str]) -> tuple[str, str]:
    """(code, message) for one pydantic error, in the words of the old hand-written checks."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    name = f"'{where}'" if where else "the body"
    if kind == "missing":
        return "missing", f"{name} is required"
    if kind == "extra_forbidden":
        return "unknown", f"unknown {{what}} '{where}' (allowed: {', '.join(allowed) or 'none'})"
    if kind in _TYPE_WORDS:
        return "invalid_type", f"{name} must be {_TYPE_WORDS[kind]}"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return "invalid_value", (
            f"{name} must not be empty" if least == 1 else f"{name} must be at least {least} long"
        )
    if kind == "too_long":
        return "invalid_value", f"{name} must be at most {ctx.get('max_length')} characters"
    if kind in ("greater_than_equal", "greater_than"):
        return "invalid_value", f"{name} must be at least {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return "invalid_value", f"{name} must be at most {ctx.get('le', ctx.get('lt'))}"
    if kind == "literal_error":
        return "invalid_value", f"{name} must be one of: {ctx.get('expected')}"
    if kind == "string_unicode":
        return "invalid_value", f"{name} is not valid Unicode text"
    text = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    return "invalid_value", f"{name} {text}"


def validation_error(
    exc: ValidationError, model: type[BaseModel], *, what: str, prefix: tuple[str, ...] = ()
) -> ApiError:
    """The first problem as a 400 naming the field path (``what``: field or parameter)."""
    error = exc.errors(include_url=False)[0]
    loc = tuple(error["loc"])
    where = field_path(prefix + loc)
    if not loc and error["type"] in ("model_type", "dict_type", "model_attributes_type"):
        return ApiError(400, "invalid_body", "the body must be a JSON object")
    code, message = _message(error, where, list(model.model_fields))
    if code in ("missing", "unknown"):
        code = f"{code}_{what}"
        message = message.replace("{what}", what)
    return ApiError(400, code, message, field=where)


def parse_parameters(model: type[BaseModel], values: Mapping[str, str], *, what: str) -> Any:
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        raise validation_error(exc, model, what=what) from None


def parse_query(model: type[BaseModel], query: Any) -> Any:
    """``model`` from a URL's query (a MultiDict): a repeated parameter is refused."""
    for key in query:
        if len(query.getall(key)) > 1:
            raise ApiError(400, "invalid_value", f"'{key}' is given more than once", field=key)
    return parse_parameters(model, query, what="parameter")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_body(request: web.Request, model: type[BaseModel], timeout_s: float) -> Any:
    """The JSON body as ``model``: at most 256 KiB, read within ``timeout_s`` seconds."""
    # Refuse early by Content-Length; aiohttp's client_max_size catches chunked bodies.
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", "the request body is larger than the 256 KiB limit")
    try:
        async with asyncio.timeout(timeout_s):
            raw = await request.read()
    except TimeoutError:
        raise ApiError(
            408, "body_timeout", f"the request body did not arrive within {timeout_s:g} s"
        ) from None
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
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, model, what="field") from None


# ------------------------------------------------------------------------ the document


def _params(model: type[BaseModel] | None, where: str, defs: dict[str, Any]) -> list[Any]:
    if model is None:
        return []
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        description = prop.pop("description", None)
        prop.pop("title", None)
        # An optional parameter is simply left out of the URL: publish its non-null form.
        options = prop.get("anyOf")
        if options and {"type": "null"} in options and len(options) == 2:
            default = prop.get("default")
            prop = next(o for o in options if o != {"type": "null"})
            if default is not None:
                prop["default"] = default
        param: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": prop,
        }
        if description:
            param["description"] = description
        out.append(param)
    return out


def _json(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def build_document(
    operations: Mapping[str, Operation], bodies: Mapping[str, type[BaseModel]] | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``operations`` (with the server's own body models)."""
    bodies = bodies or {}
    used: list[tuple[type[BaseModel], Any]] = [(Error, "serialization")]
    for op in operations.values():
        used.append((op.response, "serialization"))
        body = bodies.get(op.id, op.body)
        if body is not None:
            used.append((body, "validation"))
    unique = list({(m, mode): None for m, mode in used})
    _, top = models_json_schema(unique, ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations.values():
        parameters = _params(op.path_params, "path", schemas) + _params(op.query, "query", schemas)
        responses: dict[str, Any] = {"200": _json("Success.", op.response.__name__)}
        for status in op.responses:
            responses[str(status)] = _json(_ERROR_TEXT[status], "Error")
        if op.response is Health:
            responses["503"] = _json("The database is unreachable.", "Health")
        entry: dict[str, Any] = {
            "operationId": op.id,
            "tags": [op.tag],
            "summary": op.summary,
            "responses": responses,
        }
        if parameters:
            entry["parameters"] = parameters
        body = bodies.get(op.id, op.body)
        if body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{body.__name__}"}
                    }
                },
            }
        if op.public:
            entry["security"] = []
        paths.setdefault(API_PREFIX + op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "codi-eval API",
            "version": "1.1.0",
            "description": (
                "Per-user opt-in tracing of Chain-of-Density code summaries, their traces and "
                "judgements, shared experiments and prompt versions. Every error is "
                '{"error": {"code", "message", "field"}}. Bodies are limited to 256 KiB; '
                "requests are limited per user (429) and per server (503), with Retry-After."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `codi-eval users create`.",
                }
            },
        },
    }


__all__ = [
    "API_PREFIX",
    "MAX_BODY_BYTES",
    "OPERATIONS",
    "Inputs",
    "Operation",
    "build_document",
    "operation",
    "parse_parameters",
    "parse_query",
    "read_body",
]
