"""Any OpenAI-compatible chat server (Ollama, vLLM, llama.cpp server, hosted APIs).

Uses the ``openai`` package's ``AsyncOpenAI``. ``base_url`` and ``api_key`` come from
the arguments or the SDK's own ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``; local servers
that need no key get a placeholder, because the SDK refuses to start without one. The
SDK's retries are off (``max_retries=0``): the runner owns retries.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import openai
from openai import AsyncOpenAI

from codi_eval.models.base import GenerateRequest, Generation, ModelError, Usage
from codi_eval.models.prices import cost_for

__all__ = ["OpenAICompatModel"]

PLACEHOLDER_API_KEY = "sk-no-key-needed"


def _retry_after(response: Any) -> float | None:
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    # retry-after-ms is OpenAI's finer-grained variant; Retry-After is plain HTTP.
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(float(value) / scale, 0.0)
            except ValueError:
                continue
    return None


def _classify(exc: openai.APIError) -> ModelError:
    if isinstance(exc, openai.APITimeoutError):
        return ModelError("timeout", f"no answer within the timeout: {exc}")
    if isinstance(exc, openai.APIConnectionError):
        return ModelError("server_error", f"connection failed: {exc}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            return ModelError(
                "rate_limited", exc.message, status=status, retry_after_s=_retry_after(exc.response)
            )
        if status in (401, 403):
            return ModelError("auth", exc.message, status=status)
        if status == 408:
            return ModelError("timeout", exc.message, status=status)
        if status >= 500:
            return ModelError("server_error", exc.message, status=status)
        return ModelError("bad_request", exc.message, status=status)
    # APIResponseValidationError and kin: the server answered something we cannot read.
    return ModelError("server_error", f"unreadable response: {exc}")


class OpenAICompatModel:
    """``openai:<model>`` behind the :class:`Model` protocol."""

    provider = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float | None = None,
        json_mode: str = "json_schema",
        prices_file: str | None = None,
    ) -> None:
        if json_mode not in ("json_schema", "json_object"):
            raise ValueError("json_mode must be 'json_schema' or 'json_object'")
        self.model = model
        self.name = f"openai:{model}"
        self._base_url = base_url
        self._api_key = api_key
        self.default_timeout_s = timeout_s
        self.json_mode = json_mode
        self._prices_file = prices_file
        self._client: AsyncOpenAI | None = None

    async def start(self) -> None:
        """Build the SDK client in a thread, so no request waits for it on the event loop."""
        if self._client is None:
            await asyncio.to_thread(self._get_client)

    def _get_client(self) -> AsyncOpenAI:
        if self._client is None:
            try:
                self._client = AsyncOpenAI(
                    base_url=self._base_url, api_key=self._api_key, max_retries=0
                )
            except openai.OpenAIError:
                # No key anywhere: Ollama, vLLM and llama.cpp do not check it.
                self._client = AsyncOpenAI(
                    base_url=self._base_url, api_key=PLACEHOLDER_API_KEY, max_retries=0
                )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.json_mode == "json_object":
            return {"type": "json_object"}
        name = str(schema.get("title") or "response")
        return {"type": "json_schema", "json_schema": {"name": name[:64], "schema": schema}}

    async def generate(self, request: GenerateRequest) -> Generation:
        if self._client is None:
            await self.start()
        client = self._get_client()
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": request.prompt})
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages}
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        if request.json_schema is not None:
            kwargs["response_format"] = self._response_format(request.json_schema)
        timeout_s = request.timeout_s if request.timeout_s is not None else self.default_timeout_s
        if timeout_s is not None:
            kwargs["timeout"] = timeout_s
        started = time.perf_counter()
        try:
            completion = await client.chat.completions.create(**kwargs)
        except openai.APIError as exc:
            raise _classify(exc) from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            # The SDK lets a 200 with a non-JSON body (a proxy's HTML page) escape raw.
            raise ModelError("server_error", f"malformed response body: {exc}") from exc
        latency_ms = (time.perf_counter() - started) * 1000
        if not completion.choices:
            raise ModelError("empty", f"{self.name} returned no choices")
        choice = completion.choices[0]
        finish = choice.finish_reason
        if finish == "content_filter":
            raise ModelError("blocked", "response blocked: finish_reason content_filter")
        message = choice.message
        if getattr(message, "refusal", None):
            raise ModelError("blocked", f"model refused: {message.refusal}")
        text = message.content or ""
        if not text.strip():
            raise ModelError("empty", f"{self.name} returned no text (finish_reason {finish})")
        usage = Usage()
        if completion.usage is not None:
            u = completion.usage
            usage = Usage(u.prompt_tokens, u.completion_tokens, u.total_tokens)
        return Generation(
            text=text,
            usage=usage,
            model=completion.model or self.model,
            provider=self.provider,
            latency_ms=latency_ms,
            finish_reason=finish,
            cost=cost_for(self.name, usage, self._prices_file),
        )
