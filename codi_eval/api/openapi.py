"""The published OpenAPI 3.1 document, and the request validation that uses the same definitions.

What ``GET /api/v1/openapi.json`` serves is what the handlers enforce: query parameters
are parsed with :func:`parse_query` from the operation's declared ``parameters``, and JSON
bodies are checked by :func:`validate_body` against ``components.schemas``. A field the
document does not declare is rejected, so the contract cannot drift from the code.
"""

from __future__ import annotations

import copy
import math
import re
from datetime import UTC, datetime
from typing import Any

from codi_eval.api.errors import ApiError

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 256 * 1024


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema that also admits JSON null (OpenAPI 3.1 style: a type list)."""
    out = dict(schema)
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
    elif kind is None:
        return {"anyOf": [schema, {"type": "null"}]}
    return out


# PostgreSQL text and JSONB cannot hold NUL; every request string says so in its schema.
NO_NUL = "^[^\\u0000]*$"
_VISIBLE = (
    "[^\\u0000\\t\\n\\u000b\\f\\r \\u001c-\\u001f\\u0085\\u00a0\\u1680"
    "\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
)
ANY_JSON: dict[
    str, Any
] = {}  # JSON Schema's "anything": stored input/output/metadata are free-form
STR = {"type": "string"}
NULL_STR = _nullable(STR)
NULL_NUM = _nullable({"type": "number"})
NULL_INT = _nullable({"type": "integer"})
DATE_TIME = {"type": "string", "format": "date-time"}
UUID = {"type": "string", "format": "uuid"}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "field"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "description": "Stable machine-readable code."},
                    "message": {"type": "string", "description": "What went wrong, for a person."},
                    "field": {**NULL_STR, "description": "The body field or parameter at fault."},
                },
            }
        },
    },
    "OpikSettings": {
        "type": "object",
        "required": ["opik_enabled", "opik_workspace", "has_api_key"],
        "additionalProperties": False,
        "properties": {
            "opik_enabled": {"type": "boolean"},
            "opik_workspace": NULL_STR,
            "has_api_key": {"type": "boolean", "description": "The key itself is write-only."},
        },
    },
    "OpikSettingsUpdate": {
        "type": "object",
        "additionalProperties": False,
        "description": "Any subset of the fields; null clears the workspace or the API key.",
        "properties": {
            "opik_enabled": {"type": "boolean"},
            "opik_workspace": _nullable(
                {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_NUL}
            ),
            "opik_api_key": _nullable(
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 1024,
                    "writeOnly": True,
                    "pattern": NO_NUL,
                    "description": "Stored encrypted with CODI_EVAL_SECRET_KEY; never returned.",
                }
            ),
        },
    },
    "SummarizeRequest": {
        "type": "object",
        "required": ["code"],
        "additionalProperties": False,
        "properties": {
            # Whitespace-only code has nothing to summarize; spelled out rather than \s
            # because Python's and ECMA's \s differ (\x1c-\x1f, \x85, \ufeff).
            "code": {
                "type": "string",
                "minLength": 1,
                "pattern": "^[^\\u0000]*" + _VISIBLE + "[^\\u0000]*$",
            },
            "instruction": _nullable({"type": "string", "maxLength": 4000, "pattern": NO_NUL}),
            "density_iterations": {"type": "integer", "minimum": 1, "maximum": 5, "default": 2},
            "model": {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "pattern": NO_NUL,
                "description": "offline, gemini-<version> or openai:<model>; default: the server's.",
            },
            "language": {
                "type": "string",
                "minLength": 1,
                "maxLength": 50,
                "pattern": NO_NUL,
                "default": "python",
            },
        },
    },
    "SummarizeResponse": {
        "type": "object",
        "required": ["summary", "trace_id", "quality_score", "quality_reason"],
        "additionalProperties": False,
        "properties": {
            "summary": {"type": "string"},
            "trace_id": {**_nullable(UUID), "description": "null when the user has not opted in."},
            "quality_score": NULL_NUM,
            "quality_reason": NULL_STR,
        },
    },
    "Evaluation": {
        "type": "object",
        "required": ["metric_name", "score", "reason"],
        "additionalProperties": False,
        "properties": {
            "metric_name": {"type": "string"},
            "score": {"type": "number"},
            "reason": NULL_STR,
            "span_id": _nullable(UUID),
        },
    },
    "TraceSummary": {
        "type": "object",
        "required": [
            "id",
            "trace_type",
            "name",
            "start_time",
            "end_time",
            "duration_ms",
            "input_data",
            "output_data",
            "meta_data",
            "tags",
            "status",
            "evaluations",
        ],
        "additionalProperties": False,
        "properties": {
            "id": UUID,
            "trace_type": {"type": "string"},
            "name": {"type": "string"},
            "start_time": DATE_TIME,
            "end_time": _nullable(DATE_TIME),
            "duration_ms": NULL_INT,
            "input_data": ANY_JSON,
            "output_data": ANY_JSON,
            "meta_data": ANY_JSON,
            "tags": {"type": "array", "items": {"type": "string"}},
            "status": {"type": "string", "enum": ["ok", "error"]},
            "evaluations": {"type": "array", "items": {"$ref": "#/components/schemas/Evaluation"}},
        },
    },
    "TraceList": {
        "type": "object",
        "required": ["traces", "total", "page", "page_size"],
        "additionalProperties": False,
        "properties": {
            "traces": {"type": "array", "items": {"$ref": "#/components/schemas/TraceSummary"}},
            "total": {"type": "integer", "minimum": 0},
            "page": {"type": "integer", "minimum": 1},
            "page_size": {"type": "integer", "minimum": 1, "maximum": 100},
        },
    },
    "Span": {
        "type": "object",
        "required": [
            "id",
            "parent_span_id",
            "name",
            "type",
            "model",
            "provider",
            "tokens",
            "cost",
            "start_time",
            "end_time",
            "duration_ms",
            "input",
            "output",
            "metadata",
            "status",
            "error",
            "children",
        ],
        "additionalProperties": False,
        "properties": {
            "id": UUID,
            "parent_span_id": _nullable(UUID),
            "name": {"type": "string"},
            "type": {"type": "string", "enum": ["general", "llm", "judge", "metric", "tool"]},
            "model": NULL_STR,
            "provider": NULL_STR,
            "tokens": {
                "type": "object",
                "required": ["prompt", "completion", "total"],
                "additionalProperties": False,
                "properties": {"prompt": NULL_INT, "completion": NULL_INT, "total": NULL_INT},
            },
            "cost": NULL_NUM,
            "start_time": DATE_TIME,
            "end_time": _nullable(DATE_TIME),
            "duration_ms": NULL_NUM,
            "input": ANY_JSON,
            "output": ANY_JSON,
            "metadata": ANY_JSON,
            "status": {"type": "string"},
            "error": ANY_JSON,
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Span"}},
        },
    },
    "TraceDetail": {
        "type": "object",
        "required": [
            "id",
            "trace_type",
            "name",
            "start_time",
            "end_time",
            "duration_ms",
            "input_data",
            "output_data",
            "meta_data",
            "tags",
            "status",
            "error",
            "evaluations",
            "spans",
        ],
        "additionalProperties": False,
        "properties": {
            "id": UUID,
            "trace_type": {"type": "string"},
            "name": {"type": "string"},
            "start_time": DATE_TIME,
            "end_time": _nullable(DATE_TIME),
            "duration_ms": NULL_INT,
            "input_data": ANY_JSON,
            "output_data": ANY_JSON,
            "meta_data": ANY_JSON,
            "tags": {"type": "array", "items": {"type": "string"}},
            "status": {"type": "string", "enum": ["ok", "error"]},
            "error": ANY_JSON,
            "evaluations": {"type": "array", "items": {"$ref": "#/components/schemas/Evaluation"}},
            "spans": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Span"},
                "description": "Root spans; each nests its children by parent_span_id.",
            },
        },
    },
    "TraceStats": {
        "type": "object",
        "required": ["total_traces", "average_quality", "by_type", "total_tokens", "total_cost"],
        "additionalProperties": False,
        "properties": {
            "total_traces": {"type": "integer", "minimum": 0},
            "average_quality": {**NULL_NUM, "description": "Mean summary_quality; null if none."},
            "by_type": {"type": "object", "additionalProperties": {"type": "integer"}},
            "total_tokens": {"type": "integer"},
            "total_cost": {"type": "number"},
        },
    },
    "ExperimentSummary": {
        "type": "object",
        "required": ["id", "name", "status", "created_at", "finished_at", "cells", "runs"],
        "additionalProperties": False,
        "properties": {
            "id": UUID,
            "name": {"type": "string"},
            "status": {"type": "string"},
            "created_at": DATE_TIME,
            "finished_at": _nullable(DATE_TIME),
            "cells": {"type": "integer", "minimum": 0},
            "runs": {"$ref": "#/components/schemas/RunCounts"},
        },
    },
    "RunCounts": {
        "type": "object",
        "required": ["total", "succeeded", "failed", "pending"],
        "additionalProperties": False,
        "properties": {
            "total": {"type": "integer"},
            "succeeded": {"type": "integer"},
            "failed": {"type": "integer"},
            "pending": {"type": "integer", "description": "Not finished yet (pending or running)."},
        },
    },
    "ExperimentList": {
        "type": "object",
        "required": ["experiments"],
        "additionalProperties": False,
        "properties": {
            "experiments": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/ExperimentSummary"},
            },
        },
    },
    "CellResult": {
        "type": "object",
        "required": [
            "key",
            "prompt",
            "density_iterations",
            "model",
            "runs",
            "succeeded",
            "failed",
            "pending",
            "judge_n",
            "judge_mean",
            "judge_ci_low",
            "judge_ci_high",
            "metrics",
            "errors",
            "total_tokens",
            "cost",
            "latency_p50_ms",
            "latency_p95_ms",
        ],
        "additionalProperties": False,
        "properties": {
            "key": {"type": "string"},
            "prompt": {"type": "string"},
            "density_iterations": {"type": "integer"},
            "model": {"type": "string"},
            "runs": {"type": "integer"},
            "succeeded": {"type": "integer"},
            "failed": {"type": "integer"},
            "pending": {"type": "integer"},
            "judge_n": {"type": "integer"},
            "judge_mean": NULL_NUM,
            "judge_ci_low": NULL_NUM,
            "judge_ci_high": NULL_NUM,
            "metrics": {"type": "object", "additionalProperties": NULL_NUM},
            "errors": {"type": "object", "additionalProperties": {"type": "integer"}},
            "total_tokens": {"type": "integer"},
            "cost": NULL_NUM,
            "latency_p50_ms": NULL_NUM,
            "latency_p95_ms": NULL_NUM,
        },
    },
    "ExperimentDetail": {
        "type": "object",
        "required": [
            "id",
            "name",
            "status",
            "created_at",
            "finished_at",
            "spec_hash",
            "spec_path",
            "dataset_id",
            "spec",
            "cells",
        ],
        "additionalProperties": False,
        "properties": {
            "id": UUID,
            "name": {"type": "string"},
            "status": {"type": "string"},
            "created_at": DATE_TIME,
            "finished_at": _nullable(DATE_TIME),
            "spec_hash": {"type": "string"},
            "spec_path": NULL_STR,
            "dataset_id": UUID,
            "spec": {
                "type": "object",
                "description": "Spec summary: dataset, sample, matrix, repeats, judge, metrics.",
            },
            "cells": {"type": "array", "items": {"$ref": "#/components/schemas/CellResult"}},
        },
    },
    "Comparison": {
        "type": "object",
        "description": "Cell b against cell a, paired by dataset item; differences are b - a.",
        "required": [
            "metric",
            "label_a",
            "label_b",
            "n",
            "mean_a",
            "mean_b",
            "mean_diff",
            "ci_low",
            "ci_high",
            "ci_method",
            "p_value",
            "p_method",
            "wins",
            "ties",
            "losses",
            "sd_diff",
            "effect_size",
            "mde",
            "alpha",
            "power",
            "only_a",
            "only_b",
            "missing_a",
            "missing_b",
            "max_repeats",
            "significant",
            "summary",
        ],
        "properties": {
            "metric": {"type": "string"},
            "label_a": {"type": "string"},
            "label_b": {"type": "string"},
            "n": {"type": "integer"},
            "mean_a": NULL_NUM,
            "mean_b": NULL_NUM,
            "mean_diff": NULL_NUM,
            "ci_low": NULL_NUM,
            "ci_high": NULL_NUM,
            "ci_method": {"type": "string"},
            "p_value": NULL_NUM,
            "p_method": {"type": "string"},
            "wins": {"type": "integer"},
            "ties": {"type": "integer"},
            "losses": {"type": "integer"},
            "sd_diff": NULL_NUM,
            "effect_size": NULL_NUM,
            "mde": NULL_NUM,
            "alpha": {"type": "number"},
            "power": {"type": "number"},
            "only_a": {"type": "integer"},
            "only_b": {"type": "integer"},
            "missing_a": {"type": "integer"},
            "missing_b": {"type": "integer"},
            "max_repeats": {"type": "integer"},
            "p_adjusted": NULL_NUM,
            "adjustment": NULL_STR,
            "significant": {"type": "boolean"},
            "summary": {"type": "string", "description": "One line a reader can act on."},
        },
    },
    "Prompt": {
        "type": "object",
        "required": [
            "name",
            "version",
            "ref",
            "variables",
            "description",
            "template_hash",
            "created_at",
            "template",
        ],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "integer"},
            "ref": {"type": "string", "description": "name@version"},
            "variables": {"type": "array", "items": {"type": "string"}},
            "description": NULL_STR,
            "template_hash": {"type": "string"},
            "created_at": DATE_TIME,
            "template": {"type": "string"},
        },
    },
    "PromptList": {
        "type": "object",
        "required": ["prompts"],
        "additionalProperties": False,
        "properties": {
            "prompts": {"type": "array", "items": {"$ref": "#/components/schemas/Prompt"}}
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "database"],
        "additionalProperties": False,
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "database": {"type": "string", "enum": ["ok", "unreachable"]},
        },
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema_name: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema_name)}},
    }


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Invalid parameter or body (the field is named).",
        401: "Missing or invalid bearer token.",
        404: "Not found (or not yours).",
        413: "Body larger than 256 KiB.",
        422: "The model provider blocked the content.",
        429: "The model provider is rate limiting; retry later.",
        500: "Unexpected server error (details are in the server log).",
        502: "The model provider failed.",
        503: "The database is unreachable.",
        504: "The model provider timed out.",
    }
    out = {str(s): _json(text[s], "Error") for s in statuses}
    return out


def _text(schema: dict[str, Any]) -> dict[str, Any]:
    return (
        {**schema, "pattern": NO_NUL}
        if schema.get("type") == "string" and "format" not in schema
        else schema
    )


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    schema = _text(schema)
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    schema = _text(schema)
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


def _required_query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {**_query(name, schema, description), "required": True}


_AUTHED = (400, 401, 500)
PUBLIC: list[dict[str, Any]] = []  # "security: []" switches the global bearer requirement off

OPERATIONS: dict[str, dict[str, Any]] = {
    "getOpikSettings": {
        "method": "get",
        "path": "/users/me/opik-settings",
        "tags": ["users"],
        "summary": "The caller's Opik tracing preferences.",
        "responses": {"200": _json("The settings.", "OpikSettings"), **_errors(*_AUTHED)},
    },
    "updateOpikSettings": {
        "method": "patch",
        "path": "/users/me/opik-settings",
        "tags": ["users"],
        "summary": "Opt in or out of tracing; set the Opik workspace or the caller's own API key.",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("OpikSettingsUpdate")}},
        },
        "responses": {
            "200": _json("The settings after the update.", "OpikSettings"),
            **_errors(*_AUTHED, 413),
        },
    },
    "summarizeCode": {
        "method": "post",
        "path": "/summarize/code",
        "tags": ["summarize"],
        "summary": "Chain of Density summary of code, judged; traced only for opted-in users.",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("SummarizeRequest")}},
        },
        "responses": {
            "200": _json("The summary and its judgement.", "SummarizeResponse"),
            **_errors(*_AUTHED, 413, 422, 429, 502, 504),
        },
    },
    "listTraces": {
        "method": "get",
        "path": "/traces",
        "tags": ["traces"],
        "summary": "The caller's traces, newest first, with their evaluations.",
        "parameters": [
            _query(
                "page",
                {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1},
                "1-based page.",
            ),
            _query(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                "Traces per page.",
            ),
            _query(
                "trace_type",
                {"type": "string", "minLength": 1, "maxLength": 50},
                "Only this type, e.g. summarization.",
            ),
            _query(
                "tag",
                {"type": "string", "minLength": 1, "maxLength": 255},
                "Only traces carrying this tag.",
            ),
            _query("since", DATE_TIME, "Started at or after (ISO 8601; no offset means UTC)."),
            _query("until", DATE_TIME, "Started before (ISO 8601; no offset means UTC)."),
        ],
        "responses": {"200": _json("One page of traces.", "TraceList"), **_errors(*_AUTHED)},
    },
    "traceStats": {
        "method": "get",
        "path": "/traces/stats",
        "tags": ["traces"],
        "summary": "Totals over the caller's traces.",
        "responses": {"200": _json("The totals.", "TraceStats"), **_errors(*_AUTHED)},
    },
    "getTrace": {
        "method": "get",
        "path": "/traces/{trace_id}",
        "tags": ["traces"],
        "summary": "One of the caller's traces with its span tree and evaluations.",
        "parameters": [_path("trace_id", UUID, "The trace id (also its id in Opik).")],
        "responses": {"200": _json("The trace.", "TraceDetail"), **_errors(*_AUTHED, 404)},
    },
    "listExperiments": {
        "method": "get",
        "path": "/experiments",
        "tags": ["experiments"],
        "summary": "Experiments (shared by all users), newest first, with run counts.",
        "responses": {"200": _json("The experiments.", "ExperimentList"), **_errors(*_AUTHED)},
    },
    "getExperiment": {
        "method": "get",
        "path": "/experiments/{experiment_id}",
        "tags": ["experiments"],
        "summary": "An experiment's spec summary and per-cell results.",
        "parameters": [
            _path(
                "experiment_id",
                {"type": "string", "minLength": 1, "maxLength": 255},
                "Experiment id, unique id prefix, or name (the newest with that name).",
            )
        ],
        "responses": {
            "200": _json("The experiment.", "ExperimentDetail"),
            **_errors(*_AUTHED, 404),
        },
    },
    "compareCells": {
        "method": "get",
        "path": "/experiments/{experiment_id}/compare",
        "tags": ["experiments"],
        "summary": "Paired comparison of two cells on one metric (b - a), paired by dataset item.",
        "parameters": [
            _path(
                "experiment_id",
                {"type": "string", "minLength": 1, "maxLength": 255},
                "Experiment id, unique id prefix, or name.",
            ),
            _required_query(
                "a",
                {"type": "string", "minLength": 1, "maxLength": 255},
                "Cell key of the baseline.",
            ),
            _required_query(
                "b",
                {"type": "string", "minLength": 1, "maxLength": 255},
                "Cell key of the challenger.",
            ),
            _query(
                "metric",
                {"type": "string", "minLength": 1, "maxLength": 100, "default": "summary_quality"},
                "summary_quality (the judge) or any recorded metric, e.g. rouge_l.",
            ),
        ],
        "responses": {"200": _json("The comparison.", "Comparison"), **_errors(*_AUTHED, 404)},
    },
    "listPrompts": {
        "method": "get",
        "path": "/prompts",
        "tags": ["prompts"],
        "summary": "Every seeded prompt version.",
        "responses": {"200": _json("The prompts.", "PromptList"), **_errors(*_AUTHED)},
    },
    "getPrompt": {
        "method": "get",
        "path": "/prompts/{name}",
        "tags": ["prompts"],
        "summary": "Every version of one prompt.",
        "parameters": [
            _path("name", {"type": "string", "minLength": 1, "maxLength": 255}, "Prompt name.")
        ],
        "responses": {
            "200": _json("The versions, oldest first.", "PromptList"),
            **_errors(*_AUTHED, 404),
        },
    },
    "health": {
        "method": "get",
        "path": "/health",
        "tags": ["meta"],
        "security": PUBLIC,
        "summary": "Liveness plus a database round trip (SELECT 1). No token needed.",
        "responses": {
            "200": _json("Healthy.", "Health"),
            "503": _json("The database is unreachable.", "Health"),
            **_errors(500),
        },
    },
    "openapi": {
        "method": "get",
        "path": "/openapi.json",
        "tags": ["meta"],
        "security": PUBLIC,
        "summary": "This document. No token needed.",
        "responses": {
            "200": {
                "description": "OpenAPI 3.1 document.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **_errors(500),
        },
    },
}


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document served at ``/api/v1/openapi.json``."""
    paths: dict[str, dict[str, Any]] = {}
    for op_id, op in OPERATIONS.items():
        body = {k: copy.deepcopy(v) for k, v in op.items() if k not in ("method", "path")}
        body["operationId"] = op_id
        paths.setdefault(API_PREFIX + op["path"], {})[op["method"]] = body
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "codi-eval API",
            "version": "1.0.0",
            "description": (
                "Per-user opt-in tracing of Chain-of-Density code summaries, their traces and "
                "judgements, shared experiments and prompt versions. Every error is "
                '{"error": {"code", "message", "field"}}. Bodies are limited to 256 KiB.'
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `codi-eval users create`.",
                }
            },
        },
    }


# --------------------------------------------------------------------------- validation
# The request schemas use a small JSON Schema subset; these functions enforce exactly
# that subset (tests check no request schema uses a keyword outside it).

SUPPORTED_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "default",
        "description",
        "writeOnly",
        "format",
    }
)

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


def _is_type(value: Any, kind: str) -> bool:
    # bool is an int in Python, but not an integer in JSON.
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "null":
        return value is None
    raise AssertionError(f"unsupported type {kind!r}")


def _check_text(value: str, field: str) -> None:
    # PostgreSQL text and JSONB cannot hold NUL, and a lone surrogate (legal in a JSON
    # escape) cannot be encoded as UTF-8: both would fail deep inside a write, so refuse here.
    if "\x00" in value:
        raise ApiError(
            400, "invalid_value", f"'{field}' must not contain NUL characters", field=field
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            400, "invalid_value", f"'{field}' is not valid Unicode text", field=field
        ) from None


def _check_value(value: Any, schema: dict[str, Any], field: str) -> None:
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is_type(value, k) for k in kinds):
            wanted = " or ".join(_TYPE_NAMES[k] for k in kinds)
            raise ApiError(400, "invalid_type", f"'{field}' must be {wanted}", field=field)
    if value is None:
        return
    if isinstance(value, str):
        _check_text(value, field)
        if "minLength" in schema and len(value) < schema["minLength"]:
            what = (
                "must not be empty"
                if schema["minLength"] == 1
                else f"must be at least {schema['minLength']} characters"
            )
            raise ApiError(400, "invalid_value", f"'{field}' {what}", field=field)
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise ApiError(
                400,
                "invalid_value",
                f"'{field}' must be at most {schema['maxLength']} characters",
                field=field,
            )
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise ApiError(400, "invalid_value", f"'{field}' must not be blank", field=field)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise ApiError(
                400, "invalid_value", f"'{field}' must be at least {schema['minimum']}", field=field
            )
        if "maximum" in schema and value > schema["maximum"]:
            raise ApiError(
                400, "invalid_value", f"'{field}' must be at most {schema['maximum']}", field=field
            )


def validate_body(data: Any, schema_name: str) -> dict[str, Any]:
    """Check a decoded JSON body against ``components.schemas[schema_name]``.

    Returns the body with declared defaults filled in; raises :class:`ApiError` (400)
    naming the first field at fault: unknown, missing, wrong type or out of range.
    """
    schema = SCHEMAS[schema_name]
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    props: dict[str, Any] = schema.get("properties", {})
    for key in data:
        if key not in props:
            raise ApiError(
                400,
                "unknown_field",
                f"unknown field '{key}' (allowed: {', '.join(props)})",
                field=key,
            )
    for key in schema.get("required", []):
        if key not in data:
            raise ApiError(400, "missing_field", f"'{key}' is required", field=key)
    out = dict(data)
    for key, sub in props.items():
        if key in out:
            _check_value(out[key], sub, key)
        elif "default" in sub:
            out[key] = sub["default"]
    return out


_LEAP_SECOND = re.compile(r"(T\d\d:\d\d):60")


def parse_datetime(text: str, field: str) -> datetime:
    """ISO 8601 / RFC 3339 timestamp; no offset means UTC.

    RFC 3339 allows a leap second (:60), read as the last instant of that minute; an
    instant beyond Python's range after the UTC shift (0001-01-01T00:00+01:00) is
    clamped to the range's end, since as a filter bound it means "from the beginning".
    """
    try:
        value = datetime.fromisoformat(_LEAP_SECOND.sub(r"\1:59.999999", text.strip(), count=1))
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            return (datetime.min if value.year == 1 else datetime.max).replace(tzinfo=UTC)
    except ValueError:
        raise ApiError(
            400,
            "invalid_value",
            f"'{field}' must be an ISO 8601 date-time such as 2026-02-06T01:00:00Z",
            field=field,
        ) from None


_INT = re.compile(r"[+-]?\d{1,19}")


def _parse_param(raw: str, schema: dict[str, Any], name: str) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        if not _INT.fullmatch(raw.strip()):
            raise ApiError(400, "invalid_type", f"'{name}' must be an integer", field=name)
        value: Any = int(raw)
    elif schema.get("format") == "date-time":
        _check_value(raw, {"maxLength": 64}, name)
        value = parse_datetime(raw, name)
        return value
    else:
        value = raw
    _check_value(value, schema, name)
    return value


def check_path(match_info: Any, operation_id: str) -> None:
    """Length and text checks on the operation's path parameters (ids are parsed by handlers)."""
    for param in OPERATIONS[operation_id].get("parameters", []):
        if param["in"] == "path" and param["name"] in match_info:
            schema = {k: v for k, v in param["schema"].items() if k != "format"}
            _check_value(match_info[param["name"]], schema, param["name"])


def parse_query(query: Any, operation_id: str) -> dict[str, Any]:
    """The operation's declared query parameters from ``query`` (a MultiDict), typed.

    Unknown or repeated parameters are rejected (a misspelt ``pagesize`` would otherwise
    silently give the default); absent ones get their declared default or None.
    """
    params = [p for p in OPERATIONS[operation_id].get("parameters", []) if p["in"] == "query"]
    declared = {p["name"]: p for p in params}
    for key in query:
        if key not in declared:
            allowed = ", ".join(declared) or "none"
            raise ApiError(
                400,
                "unknown_parameter",
                f"unknown query parameter '{key}' (allowed: {allowed})",
                field=key,
            )
        if len(query.getall(key)) > 1:
            raise ApiError(400, "invalid_value", f"'{key}' is given more than once", field=key)
    out: dict[str, Any] = {}
    for name, param in declared.items():
        schema = param["schema"]
        if name in query:
            out[name] = _parse_param(query[name], schema, name)
        elif param.get("required"):
            raise ApiError(
                400, "missing_parameter", f"query parameter '{name}' is required", field=name
            )
        else:
            out[name] = schema.get("default")
    return out
