"""Gemini through the google-genai SDK's async client, with failures classified.

The SDK reads its own ``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``) and
``GOOGLE_GEMINI_BASE_URL``; explicit ``api_key``/``base_url`` arguments win. The SDK's
own retries are switched off (one attempt, and no hidden reconnect-and-sleep): the
runner owns retries, rate limits and deadlines, and a retry it cannot see would
break all three.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from typing import Any, cast

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from google import genai
from google.genai import _common as genai_common
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from yarl import URL

from codi_eval.inputs import field_path
from codi_eval.models.base import GenerateRequest, Generation, ModelError, Usage
from codi_eval.models.prices import cost_for

__all__ = ["GeminiModel", "parse_retry_after"]

import httpx

# The SDK talks through our aiohttp session; httpx errors can still come from its sync paths.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, httpx.TransportError)
_DEFAULT_ENDPOINT = "https://generativelanguage.googleapis.com"


def _key_in_sdk_model(self: Any, key: object) -> bool:
    # What Python's fallback walk answers, without the walk for a string key (see below).
    if type(key) is str:
        return False
    return any(item is key or item == key for item in iter(self))


# The SDK converts every request by asking `"temperature" in config` for each of the
# ~50 fields of GenerateContentConfig (and likewise for contents and parts). Its models
# define no __contains__, so Python walks __iter__, whose (name, value) pairs never equal
# a string: every question walks every field to answer False. That walk was a third of a
# call's CPU (1.17 -> 0.77 ms a call, 600 calls against the local Gemini server). The
# shortcut answers as the walk does (tests/test_models_gemini.py checks the answers and
# that the request body on the wire is unchanged), and is left out if the SDK defines
# its own __contains__.
if not hasattr(genai_common.BaseModel, "__contains__"):
    setattr(genai_common.BaseModel, "__contains__", _key_in_sdk_model)  # noqa: B010 (mypy refuses the plain assignment)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else max(int(seconds * 1000), 1)


_BLOCKING_FINISH = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)
# Extra seconds past the SDK's own timeout before our guard cancels the call: the SDK
# should fail first, and report it; the guard is for a stuck body read.
_GUARD_S = 1.0


def parse_retry_after(headers: Any, details: Any) -> float | None:
    """Seconds to wait from a ``Retry-After`` header or a ``google.rpc.RetryInfo`` detail."""
    value = None
    if headers is not None:
        try:
            value = headers.get("Retry-After") or headers.get("retry-after")
        except AttributeError:
            value = None
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass  # an HTTP date; RetryInfo below is more precise anyway
    error = details.get("error", details) if isinstance(details, dict) else None
    for item in (error or {}).get("details", []) if isinstance(error, dict) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = re.fullmatch(r"\s*([0-9.]+)s\s*", str(item.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _classify_api_error(exc: genai_errors.APIError) -> ModelError:
    code = exc.code
    message = exc.message or str(exc)
    if code == 429:
        headers = getattr(getattr(exc, "response", None), "headers", None)
        return ModelError(
            "rate_limited",
            message,
            status=code,
            retry_after_s=parse_retry_after(headers, exc.details),
        )
    if code in (401, 403):
        return ModelError("auth", message, status=code)
    if code == 408:
        return ModelError("timeout", message, status=code)
    if code is not None and code >= 500:
        return ModelError("server_error", message, status=code)
    return ModelError("bad_request", message, status=code)


# The SDK types one call builds, validates or returns (_GenerateContentParameters is the
# SDK's own wrapper of a call's arguments).
_CALL_TYPES = (
    "GenerateContentConfig",
    "AutomaticFunctionCallingConfig",
    "_GenerateContentParameters",
    "Content",
    "UserContent",
    "Part",
    "Schema",
    "HttpResponse",
    "GenerateContentResponse",
    "Candidate",
    "GenerateContentResponseUsageMetadata",
    "GenerateContentResponsePromptFeedback",
)


def _build_sdk_types() -> None:
    """Have pydantic build the validators of the SDK types a call uses, now.

    It builds each on first use (a first call took 12.6 ms of CPU, later ones 1.2 ms),
    which a server would otherwise spend on its loop in its first requests.
    """
    for name in _CALL_TYPES:
        cls = getattr(types, name, None)
        if cls is not None and not cls.__pydantic_complete__:
            cls.model_rebuild()


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="ignore", frozen=True)


class _Part(_Wire):
    text: str | None = None
    thought: bool | None = None


class _Content(_Wire):
    parts: list[_Part] | None = None


class _Candidate(_Wire):
    content: _Content | None = None
    finish_reason: str | None = None


class _UsageMetadata(_Wire):
    prompt_token_count: int | None = None
    candidates_token_count: int | None = None
    thoughts_token_count: int | None = None
    total_token_count: int | None = None


class _PromptFeedback(_Wire):
    block_reason: str | None = None
    block_reason_message: str | None = None


class _Answer(_Wire):
    """The part of a ``generateContent`` response body we read, as the REST API spells it.

    The SDK is asked for the body as it came (``should_return_http_response``) rather than
    validating all of it into its own types: a tenth of a call's CPU, for the five
    fields read here. The SDK still builds and sends the request and raises for errors.
    """

    candidates: list[_Candidate] | None = None
    usage_metadata: _UsageMetadata | None = None
    model_version: str | None = None
    prompt_feedback: _PromptFeedback | None = None


class GeminiModel:
    """A Gemini model (``gemini-2.5-flash`` ...) behind the :class:`Model` protocol."""

    provider = "google_ai"

    def __init__(
        self,
        name: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float | None = None,
        prices_file: str | None = None,
    ) -> None:
        self.name = name
        self.model = name
        self._api_key = api_key
        self._base_url = base_url
        self.default_timeout_s = timeout_s
        self._prices_file = prices_file
        self._client: genai.Client | None = None
        self._client_timeout_ms: int | None = None  # the SDK client's own timeout
        self._session: aiohttp.ClientSession | None = None
        self._starting: asyncio.Lock | None = None

    async def start(self, *, call_timeout_s: float | None = None) -> None:
        """Build the SDK client, off the event loop (it takes ~0.1 s of CPU).

        ``call_timeout_s`` is the timeout most calls will carry (default: the model's own
        ``timeout_s``); it becomes the client's, so those calls need no per-call options,
        which the SDK validates, deep-copies and wraps in a new retry policy on every call
        (0.1 ms of CPU each). A call with another timeout passes it per call. When
        :meth:`generate` builds the client (no start), its first call's timeout is the one.

        The client gets an HTTP session of ours that does not consult the environment on
        every request: the SDK's own (``trust_env=True``) looks up ``~/.netrc`` and proxy
        variables in a thread per call, which doubled the CPU of a call and queued calls
        behind the thread pool. A proxy in the environment is looked up once, here.
        Services call this at start-up; :meth:`generate` calls it on first use.
        """
        timeout_s = call_timeout_s if call_timeout_s is not None else self.default_timeout_s
        await self._ensure_client(_ms(timeout_s))

    async def _ensure_client(self, timeout_ms: int | None) -> genai.Client:
        if self._client is not None:
            return self._client
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._client is not None:
                return self._client
            base = self._base_url or _DEFAULT_ENDPOINT
            proxy = None
            with contextlib.suppress(LookupError):
                proxy, _ = get_env_proxy_for_url(URL(base))
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), trust_env=False, proxy=proxy
            )
            try:
                client = await asyncio.to_thread(self._build_client, session, timeout_ms)
            except BaseException:
                await session.close()
                raise
            self._session, self._client, self._client_timeout_ms = session, client, timeout_ms
            return client

    def _build_client(self, session: aiohttp.ClientSession, timeout_ms: int | None) -> genai.Client:
        # Created on first use: a spec can name a Gemini model on a machine without a key
        # and still be validated; the missing key is reported as an auth failure.
        http_options = types.HttpOptions(
            retry_options=types.HttpRetryOptions(attempts=1),
            base_url=self._base_url,
            aiohttp_client=session,  # ours: the SDK leaves it open when a client closes
            timeout=timeout_ms,
        )
        try:
            client = genai.Client(api_key=self._api_key, http_options=http_options)
        except ValueError as exc:
            raise ModelError("auth", f"cannot create a Gemini client: {exc}") from exc
        _build_sdk_types()
        return client

    async def aclose(self) -> None:
        """Close the SDK client and our HTTP session (services call this at shutdown)."""
        if self._client is not None:
            await self._client.aio.aclose()
            self._client = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _config(
        self, request: GenerateRequest, per_call_timeout_ms: int | None
    ) -> types.GenerateContentConfigDict:
        # A plain dict: the SDK validates it into its own types (cheaper than building them).
        config: dict[str, Any] = {
            "system_instruction": request.system,
            "temperature": request.temperature,
            "seed": request.seed,
            "max_output_tokens": request.max_tokens,
            # We send no tools. Left on, the SDK deep-copies the config and logs a line
            # ("AFC is enabled ...") at INFO on every call.
            "automatic_function_calling": {"disable": True},
            "should_return_http_response": True,  # read by _Answer, not the SDK's types
        }
        if request.json_schema is not None:
            config["response_mime_type"] = "application/json"
            config["response_schema"] = request.json_schema
        if per_call_timeout_ms is not None:
            # Only when it is not the client's own (see start). In
            # milliseconds, as the SDK's HttpOptions.timeout; it also sends X-Server-Timeout.
            config["http_options"] = {
                "timeout": per_call_timeout_ms,
                "retry_options": {"attempts": 1},
            }
        return cast(
            types.GenerateContentConfigDict, {k: v for k, v in config.items() if v is not None}
        )

    async def generate(self, request: GenerateRequest) -> Generation:
        timeout_s = request.timeout_s if request.timeout_s is not None else self.default_timeout_s
        timeout_ms = _ms(timeout_s)
        client = await self._ensure_client(timeout_ms)
        per_call = timeout_ms if timeout_ms != self._client_timeout_ms else None
        started = time.perf_counter()
        try:
            call = client.aio.models.generate_content(
                model=self.model, contents=request.prompt, config=self._config(request, per_call)
            )
            if timeout_s is not None:
                async with asyncio.timeout(timeout_s + _GUARD_S):
                    response = await call
            else:
                response = await call
        except genai_errors.APIError as exc:
            raise _classify_api_error(exc) from exc
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise ModelError("timeout", f"no answer from {self.model} within {timeout_s}s") from exc
        except _CONNECTION_ERRORS as exc:
            # The class only: a repr would show internal objects and the endpoint to a client.
            raise ModelError(
                "server_error", f"connection to Gemini failed ({type(exc).__name__})"
            ) from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError("server_error", f"malformed response body: {exc}") from exc
        latency_ms = (time.perf_counter() - started) * 1000
        raw = response.sdk_http_response
        try:
            answer = _Answer.model_validate_json((raw.body if raw else None) or "{}")
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = field_path(first["loc"]) or "body"
            raise ModelError(
                "server_error", f"malformed response body: {where}: {first['msg']}"
            ) from None
        return self._to_generation(answer, latency_ms)

    def _to_generation(self, response: _Answer, latency_ms: float) -> Generation:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            raise ModelError(
                "blocked",
                f"prompt blocked: {feedback.block_reason} {feedback.block_reason_message or ''}".strip(),
            )
        if not response.candidates:
            raise ModelError("empty", f"{self.model} returned no candidates")
        candidate = response.candidates[0]
        finish_name = candidate.finish_reason
        if finish_name in _BLOCKING_FINISH:
            raise ModelError("blocked", f"response blocked: finishReason {finish_name}")
        parts = candidate.content.parts if candidate.content and candidate.content.parts else []
        # Thought summaries are not the answer.
        text = "".join(p.text for p in parts if p.text and not p.thought)
        if not text.strip():
            raise ModelError("empty", f"{self.model} returned no text (finishReason {finish_name})")
        meta = response.usage_metadata
        usage = Usage()
        if meta is not None:
            # Thinking tokens are billed as output, so they count as completion tokens.
            completion = None
            if meta.candidates_token_count is not None or meta.thoughts_token_count is not None:
                completion = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
            usage = Usage(meta.prompt_token_count, completion, meta.total_token_count)
        answered_by = response.model_version or self.model
        return Generation(
            text=text,
            usage=usage,
            model=answered_by,
            provider=self.provider,
            latency_ms=latency_ms,
            finish_reason=finish_name,
            # Price by the name we asked for: modelVersion may carry a release suffix.
            cost=cost_for(self.model, usage, self._prices_file),
        )
