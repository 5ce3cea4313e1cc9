"""The API's contract: every request and response body, and every query, as pydantic models.

These models are the one declaration: requests are validated with them (the error names
the field path), responses are serialised through them, and the OpenAPI document at
``/api/v1/openapi.json`` is generated from them (:mod:`codi_eval.api.operations`).
Names the CODI app reads (``input_data``, ``output_data``, ``meta_data``,
``metric_name``, ...) are the seed's and do not change.
"""

from __future__ import annotations

import dataclasses
import re
import typing
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
)

from codi_eval.analysis.cells import CellResult
from codi_eval.analysis.outputs import RunBrief, RunOutput
from codi_eval.analysis.stats import PairedComparison
from codi_eval.code_facts import SUPPORTED_LANGUAGES, accepted_language_names, canonical_language

# PostgreSQL text and JSONB cannot hold NUL; published as a pattern so generated clients
# (and schemathesis) know, and enforced by the validators below with a clear message.
NO_NUL = "^[^\\u0000]*$"
# Whitespace-only code has nothing to summarize; spelled out rather than \s because
# Python's and ECMA's \s differ (\x1c-\x1f, \x85, \ufeff).
_VISIBLE = (
    "[^\\u0000\\t\\n\\u000b\\f\\r \\u001c-\\u001f\\u0085\\u00a0\\u1680"
    "\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
)
NOT_BLANK = "^[^\\u0000]*" + _VISIBLE + "[^\\u0000]*$"


def _text(value: str) -> str:
    # A lone surrogate (legal in a JSON escape) cannot be stored as UTF-8, and NUL cannot
    # be stored by PostgreSQL: both would fail deep inside a write, so refuse them here.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode text (it holds a lone surrogate)") from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _integral(value: Any) -> Any:
    # JSON Schema's "integer" includes 2.0; JSON itself has only numbers.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# A JSON integer (2 or 2.0, not 2.5, "2" or true).
JsonInt = Annotated[int, BeforeValidator(_integral)]

# A request string: no NUL and valid Unicode (lengths are given where it is used).
Text = Annotated[str, AfterValidator(_text), Field(json_schema_extra={"pattern": NO_NUL})]
Code = Annotated[
    str,
    AfterValidator(_text),
    AfterValidator(_not_blank),
    Field(json_schema_extra={"pattern": NOT_BLANK}),
]


def _no_default(schema: dict[str, Any]) -> None:
    # A field that may be left out but is never null publishes no (null) default.
    schema.pop("default", None)


class Request(BaseModel):
    """A request body: unknown fields are refused, and nothing is coerced (``"2"`` is not 2)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Query parameters: strings from the URL, converted to the declared types."""

    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    """A response body: built from store rows (their other columns are ignored) and
    published as exactly these fields."""

    model_config = ConfigDict(
        extra="ignore", from_attributes=True, json_schema_extra={"additionalProperties": False}
    )


# -------------------------------------------------------------------------------- errors


class ErrorDetail(Response):
    code: str = Field(description="Stable machine-readable code.")
    message: str = Field(description="What went wrong, for a person.")
    field: str | None = Field(description="The body field, parameter or path at fault.")


class Error(Response):
    error: ErrorDetail


# ------------------------------------------------------------------------- opik settings


class OpikSettings(Response):
    opik_enabled: bool
    opik_workspace: str | None
    has_api_key: bool = Field(description="The key itself is write-only.")


class OpikSettingsUpdate(Request):
    """Any subset of the fields; null clears the workspace or the API key."""

    # Optional but never null: left out means unchanged, and an explicit null is refused.
    opik_enabled: bool = Field(default=None, json_schema_extra=_no_default)  # type: ignore[assignment]
    opik_workspace: Text | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Your Opik workspace. It is used with your own opik_api_key; with the "
        "server's key your traces go to the server's workspace unless the operator allows "
        "this one (CODI_EVAL_OPIK_WORKSPACES).",
    )
    opik_api_key: Text | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        json_schema_extra={"writeOnly": True},
        description="Stored encrypted with CODI_EVAL_SECRET_KEY; never returned.",
    )


# ----------------------------------------------------------------------------- summarize


class SummarizeRequest(Request):
    code: Code = Field(min_length=1)
    instruction: Text | None = Field(default=None, max_length=4000)
    density_iterations: JsonInt = Field(default=2, ge=1, le=5)
    model: str | None = Field(
        default=None,
        description="One of the models this server offers (listed here); default: the "
        "server's. Parameters and endpoints are the operator's, never a request's.",
    )
    language: Language = Field(
        default="python",
        description="The language of `code` (case-insensitive; aliases such as js work).",
    )


class SummarizeResponse(Response):
    summary: str
    trace_id: uuid.UUID | None = Field(description="null when the user has not opted in.")
    quality_score: float | None
    quality_reason: str | None


def _language(value: str) -> str:
    canonical = canonical_language(value)
    if canonical is None:
        raise ValueError(
            f"is not a language this server summarizes; use one of {', '.join(SUPPORTED_LANGUAGES)}"
        )
    return canonical


# A language name or alias (``dart``, ``Dart``, ``flutter``, ``js``), stored canonically.
Language = Annotated[
    str,
    AfterValidator(_language),
    Field(json_schema_extra={"enum": list(accepted_language_names())}),
]


def summarize_request(models: tuple[str, ...]) -> type[Request]:
    """The summarize body for one server: ``model`` limited to the models it offers."""
    fields: dict[str, Any] = {
        "model": (
            Literal[models] | None,
            Field(
                default=None,
                description="One of the models this server offers; default: the server's. "
                "Parameters and endpoints are the operator's, never a request's.",
            ),
        ),
    }
    model: type[Request] = create_model("SummarizeRequest", __base__=SummarizeRequest, **fields)
    return model


# -------------------------------------------------------------------------------- traces

_LEAP_SECOND = re.compile(r"(T\d\d:\d\d):60")


def _instant(value: Any) -> Any:
    """ISO 8601 / RFC 3339; no offset means UTC.

    RFC 3339 allows a leap second (:60), read as the last instant of that minute; an
    instant beyond Python's range after the UTC shift (0001-01-01T00:00+01:00) is
    clamped to the range's end, since as a filter bound it means "from the beginning".
    """
    if not isinstance(value, str):
        return value
    try:
        parsed = datetime.fromisoformat(_LEAP_SECOND.sub(r"\1:59.999999", value.strip(), count=1))
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time such as 2026-02-06T01:00:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return (datetime.min if parsed.year == 1 else datetime.max).replace(tzinfo=UTC)


Instant = Annotated[
    datetime,
    BeforeValidator(_instant),
    WithJsonSchema({"type": "string", "format": "date-time", "maxLength": 64}),
]


class ListTracesQuery(Query):
    page: int = Field(default=1, ge=1, le=1_000_000, description="1-based page.")
    page_size: int = Field(default=20, ge=1, le=100, description="Traces per page.")
    trace_type: Text | None = Field(
        default=None, min_length=1, max_length=50, description="Only this type, e.g. summarization."
    )
    tag: Text | None = Field(
        default=None, min_length=1, max_length=255, description="Only traces carrying this tag."
    )
    since: Instant | None = Field(
        default=None, description="Started at or after (ISO 8601; no offset means UTC)."
    )
    until: Instant | None = Field(
        default=None, description="Started before (ISO 8601; no offset means UTC)."
    )


class NoQuery(Query):
    """An operation that takes no query parameters (any given one is refused)."""


class Evaluation(Response):
    metric_name: str
    score: float
    reason: str | None
    span_id: uuid.UUID | None = None


class TraceSummary(Response):
    id: uuid.UUID
    trace_type: str
    name: str
    start_time: datetime
    end_time: datetime | None
    duration_ms: int | None
    input_data: Any
    output_data: Any
    meta_data: Any
    tags: list[str]
    status: Literal["ok", "error"]
    evaluations: list[Evaluation]


class TraceList(Response):
    traces: list[TraceSummary]
    total: int = Field(ge=0)
    page: int = Field(ge=1)
    page_size: int = Field(ge=1, le=100)


class Tokens(Response):
    prompt: int | None
    completion: int | None
    total: int | None


class Span(Response):
    """One span; its fields are named like a trace's (``input_data``, ``output_data``,
    ``meta_data``), and ``children`` nests the spans under it."""

    id: uuid.UUID
    parent_span_id: uuid.UUID | None
    name: str
    type: Literal["general", "llm", "judge", "metric", "tool"]
    model: str | None
    provider: str | None
    tokens: Tokens
    cost: float | None
    start_time: datetime
    end_time: datetime | None
    duration_ms: float | None
    input_data: Any
    output_data: Any
    meta_data: Any
    status: str
    error: Any
    children: list[Span]


class TraceDetail(TraceSummary):
    error: Any
    spans: list[Span] = Field(description="Root spans; each nests its children.")


class TraceStats(Response):
    total_traces: int = Field(ge=0)
    average_quality: float | None = Field(description="Mean summary_quality; null if none.")
    by_type: dict[str, int]
    total_tokens: int
    total_cost: float


class TracePath(Query):
    trace_id: Text = Field(
        min_length=1, max_length=100, description="The trace id (also its id in Opik)."
    )


# --------------------------------------------------------------------------- experiments


class RunCounts(Response):
    total: int
    succeeded: int
    failed: int
    pending: int = Field(description="Not finished yet (pending or running).")


class ExperimentSummary(Response):
    id: uuid.UUID
    name: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    cells: int = Field(ge=0)
    runs: RunCounts


class ExperimentList(Response):
    experiments: list[ExperimentSummary]


class ExperimentDetail(Response):
    id: uuid.UUID
    name: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    spec_hash: str
    spec_path: str | None
    dataset_id: uuid.UUID
    spec: dict[str, Any] = Field(
        description="Spec summary: dataset, sample, matrix, repeats, judge, metrics."
    )
    cells: list[CellResult]


class ExperimentPath(Query):
    experiment_id: Text = Field(
        min_length=1,
        max_length=255,
        description="Experiment id, unique id prefix, or name (the newest with that name).",
    )


class CompareQuery(Query):
    a: Text = Field(min_length=1, max_length=255, description="Cell key of the baseline.")
    b: Text = Field(min_length=1, max_length=255, description="Cell key of the challenger.")
    metric: Text = Field(
        default="summary_quality",
        min_length=1,
        max_length=100,
        description="summary_quality (the judge) or any recorded metric, e.g. rouge_l.",
    )


class ExperimentRunsQuery(Query):
    cell: Text | None = Field(
        default=None, min_length=1, max_length=255, description="Only this cell (its key)."
    )
    item: Text | None = Field(
        default=None, min_length=1, max_length=512, description="Only this dataset item (its key)."
    )
    status: Literal["pending", "running", "succeeded", "failed"] | None = Field(
        default=None, description="Only runs in this state."
    )
    page: int = Field(default=1, ge=1, le=1_000_000, description="1-based page.")
    page_size: int = Field(default=20, ge=1, le=100, description="Runs per page.")


class ExperimentRunList(Response):
    """An experiment's runs (shared by all users) with what each one produced: the final
    summary and the judge's score (``summary_quality``) and reason."""

    experiment_id: uuid.UUID
    runs: list[RunBrief]
    total: int = Field(ge=0)
    page: int = Field(ge=1)
    page_size: int = Field(ge=1, le=100)


class ExperimentRunPath(Query):
    experiment_id: Text = Field(
        min_length=1,
        max_length=255,
        description="Experiment id, unique id prefix, or name (the newest with that name).",
    )
    run_id: Text = Field(min_length=1, max_length=100, description="The run's id.")


class ExperimentRun(Response):
    """One run of an experiment: the code, every Chain-of-Density iteration with the
    entities it added, the final summary, the judge's score and reason, the metrics, tokens,
    cost and latency; and its trace as a span tree (experiment traces are readable by every
    authenticated user; a user's own traces stay private under /traces)."""

    run: RunOutput
    spans: list[Span] = Field(description="The run's trace: root spans, each nesting its children.")


def _comparison_model() -> type[Response]:
    """The comparison's response body, derived from :class:`PairedComparison` itself (its
    fields, plus the verdict and the sentence ``to_dict`` adds), so the two cannot drift."""
    hints = typing.get_type_hints(PairedComparison)
    fields: dict[str, Any] = {
        f.name: (hints[f.name], f.default if f.default is not dataclasses.MISSING else ...)
        for f in dataclasses.fields(PairedComparison)
    }
    fields["significant"] = (bool, ...)
    fields["summary"] = (str, Field(description="One line a reader can act on."))
    model: type[Response] = create_model(
        "Comparison",
        __base__=Response,
        __doc__="Cell b against cell a, paired by dataset item; differences are b - a.",
        **fields,
    )
    return model


Comparison = _comparison_model()


# ------------------------------------------------------------------------------- prompts


class Prompt(Response):
    name: str
    version: int
    ref: str = Field(description="name@version")
    variables: list[str]
    description: str | None
    template_hash: str
    created_at: datetime
    template: str


class PromptList(Response):
    prompts: list[Prompt]


class PromptPath(Query):
    name: Text = Field(
        min_length=1, max_length=255, description="Prompt name, or name@version for one version."
    )


# ---------------------------------------------------------------------------------- meta


class Health(Response):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]
