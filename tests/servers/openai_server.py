"""A local server that speaks OpenAI's ``POST /v1/chat/completions``, for the real openai SDK.

Point the SDK at ``srv.base_url + "/v1"`` (``OPENAI_BASE_URL`` or ``base_url=``). Same
scripting as :class:`tests.servers.gemini_server.GeminiServer`.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from tests.servers._scripted import FAULT_KINDS, RecordedRequest, ScriptedServer, default_text

__all__ = ["FAULT_KINDS", "OpenAIServer", "RecordedRequest", "default_text"]

_TYPE = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_denied",
    429: "rate_limit_exceeded",
    500: "server_error",
}


def _count(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


class OpenAIServer(ScriptedServer):
    @property
    def api_base(self) -> str:
        """What the SDK's ``base_url`` should be."""
        return self.base_url + "/v1"

    def routes(self) -> list[web.RouteDef]:
        async def chat(request: web.Request) -> web.StreamResponse:
            try:
                model = str((await request.json()).get("model"))
            except Exception:  # the shared handler reports the bad body
                model = "unknown"
            return await self.handle(request, model)

        return [web.post("/v1/chat/completions", chat)]

    def check_auth(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.require_api_key}"

    def error(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> web.Response:
        hdrs = dict(headers or {})
        if status == 429 and retry_after is not None:
            hdrs["Retry-After"] = f"{retry_after:g}"
        body = {
            "error": {
                "message": message,
                "type": _TYPE.get(status, "server_error"),
                "param": None,
                "code": None,
            }
        }
        return web.json_response(body, status=status, headers=hdrs)

    def prompt_of(self, body: dict[str, Any]) -> str:
        return "\n".join(
            m["content"]
            for m in body.get("messages") or []
            if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str)
        )

    def _envelope(
        self, model: str, choices: list[dict[str, Any]], usage: dict[str, int] | None
    ) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": usage,
        }

    def success(self, body: dict[str, Any], model: str, text: str) -> dict[str, Any]:
        prompt = "".join(
            str(m.get("content", "")) for m in body.get("messages") or [] if isinstance(m, dict)
        )
        p, c = _count(prompt), _count(text)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
        return self._envelope(
            model, [choice], {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        )

    def empty(self, model: str) -> dict[str, Any]:
        return self._envelope(model, [], None)

    def blocked(self, model: str) -> web.Response:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": None},
            "finish_reason": "content_filter",
        }
        return web.json_response(self._envelope(model, [choice], None))
