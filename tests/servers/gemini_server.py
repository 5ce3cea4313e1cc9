"""A local server that speaks Gemini's REST ``generateContent``, for the real google-genai SDK.

Point the SDK at it with ``GOOGLE_GEMINI_BASE_URL=srv.base_url`` (or ``base_url=``).
The SDK posts to ``/{api_version}/models/{model}:generateContent``; every version is
accepted (3.x defaults to ``v1``, older SDKs and the docs use ``v1beta``).

    async with GeminiServer(faults=["rate_limit"]) as srv: ...
    srv = GeminiServer(fault_rate=0.2, seed=3).start_in_thread(); ...; srv.stop()
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.servers._scripted import FAULT_KINDS, RecordedRequest, ScriptedServer, default_text

__all__ = ["FAULT_KINDS", "GeminiServer", "RecordedRequest", "default_text"]

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def _count(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


class GeminiServer(ScriptedServer):
    model_version_suffix = "-001"  # modelVersion names a release, as the real API does

    def routes(self) -> list[web.RouteDef]:
        async def generate(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, request.match_info["model"])

        return [web.post(r"/{version:v1[a-z0-9]*}/models/{model:[^/:]+}:generateContent", generate)]

    def check_auth(self, request: web.Request) -> bool:
        return request.headers.get("x-goog-api-key") == self.require_api_key

    def error(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> web.Response:
        error: dict[str, Any] = {
            "code": status,
            "message": message,
            "status": _STATUS.get(status, "UNKNOWN"),
        }
        hdrs = dict(headers or {})
        if status == 429 and retry_after is not None:
            hdrs["Retry-After"] = f"{retry_after:g}"
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{retry_after:g}s",
                }
            ]
        return web.json_response({"error": error}, status=status, headers=hdrs)

    def prompt_of(self, body: dict[str, Any]) -> str:
        texts = []
        for content in body.get("contents") or []:
            for part in content.get("parts") or []:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    texts.append(part["text"])
        return "\n".join(texts)

    def _usage(self, body: dict[str, Any], text: str) -> dict[str, int]:
        system = body.get("systemInstruction") or {}
        prompt = self.prompt_of(body) + "".join(p.get("text", "") for p in system.get("parts", []))
        p, c = _count(prompt), _count(text)
        return {"promptTokenCount": p, "candidatesTokenCount": c, "totalTokenCount": p + c}

    def success(self, body: dict[str, Any], model: str, text: str) -> dict[str, Any]:
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": self._usage(body, text),
            "modelVersion": model + self.model_version_suffix,
            "responseId": f"resp-{len(self.requests)}",
        }

    def empty(self, model: str) -> dict[str, Any]:
        return {
            "candidates": [],
            "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
            "modelVersion": model + self.model_version_suffix,
        }

    def blocked(self, model: str) -> web.Response:
        return web.json_response(
            {
                "promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
                "modelVersion": model + self.model_version_suffix,
            }
        )


def main() -> None:
    """Serve on ``--port`` in this process until killed (benchmarks run it apart, so its
    CPU is not the measured process's); ``GET /_requests`` tells how many calls it served."""
    import argparse
    import asyncio

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()
    server = GeminiServer(require_api_key=args.api_key, port=args.port)

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"requests": len(server.requests)})

    server.extra_routes = [web.get("/_requests", count)]

    async def serve() -> None:
        print(await server.start(), flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
