"""The contract every model provider keeps: one async ``generate`` call.

A provider turns a :class:`GenerateRequest` into a :class:`Generation` or raises a
:class:`ModelError` whose ``kind`` the runner acts on (retry or give up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

ErrorKind = Literal[
    "rate_limited", "server_error", "timeout", "bad_request", "auth", "blocked", "empty"
]
RETRYABLE: frozenset[str] = frozenset({"rate_limited", "server_error", "timeout"})


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


@dataclass(frozen=True)
class GenerateRequest:
    """One model call.

    ``context`` carries structured facts about the task (the code, the previous summary,
    the iteration number). Network models never send it; the offline baseline reads it,
    because it is a program and not a language model.
    """

    prompt: str
    system: str | None = None
    json_schema: dict[str, Any] | None = None
    temperature: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    timeout_s: float | None = None
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Generation:
    text: str
    usage: Usage
    model: str  # the model that actually answered (e.g. the API's modelVersion)
    provider: str  # "offline", "google_ai", "openai"
    latency_ms: float
    finish_reason: str | None = None
    cost: float | None = None  # USD; None when the price is unknown, never a guessed 0
    cached: bool = False


class ModelError(Exception):
    """A model call that failed, classified so the runner knows whether to retry."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE

    def __str__(self) -> str:
        base = super().__str__()
        return (
            f"{self.kind}: {base}"
            if self.status is None
            else f"{self.kind} ({self.status}): {base}"
        )


@runtime_checkable
class Model(Protocol):
    """A named model behind a provider."""

    name: str  # the name a spec uses: "offline", "gemini-2.5-flash", "openai:llama3"
    provider: str

    async def generate(self, request: GenerateRequest) -> Generation: ...
