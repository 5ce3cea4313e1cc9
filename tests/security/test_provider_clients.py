"""Attack 7: a new google-genai client was built on the event loop for every request
(~0.1 s of CPU each): 200 Gemini requests took 21.7 s and ``/health`` stalled for seconds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from google import genai

from tests.api_helpers import _api
from tests.servers.gemini_server import GeminiServer

FIB = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"


async def test_one_gemini_client_per_process_built_before_the_first_request(
    pg_store_url: str, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []
    real_init = genai.Client.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(genai.Client, "__init__", counting_init)
    async with GeminiServer(require_api_key="k") as gemini:
        monkeypatch.setenv("GEMINI_API_KEY", "k")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.base_url)
        offered = (("offline", "offline"), ("gemini-2.5-flash", "gemini-2.5-flash"))
        async for api in _api(
            pg_store_url,
            aiohttp_client,
            api_models=offered,
            api_user_concurrent_summaries=64,
            api_user_summaries_per_minute=1000,
        ):
            assert len(built) == 1  # at start-up, in a thread
            alice = await api.user("alice")
            body = {"code": FIB, "model": "gemini-2.5-flash", "density_iterations": 1}
            results = await asyncio.gather(
                *(api.call("POST", "/summarize/code", alice, json=body) for _ in range(40))
            )
            assert [s for s, _ in results] == [200] * 40
            assert len(built) == 1  # and never again
        assert len(gemini.requests) == 80  # one iteration + the final call, per summary
