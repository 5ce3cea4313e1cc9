"""The Gemini provider, through the real google-genai SDK, against a local Gemini server."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from google.genai import _common, types
from hypothesis import given, settings
from hypothesis import strategies as st

from codi_eval.models import GeminiModel, GenerateRequest, ModelError, get_model
from codi_eval.models.gemini import parse_retry_after
from tests.servers.gemini_server import GeminiServer

SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "number"}, "reason": {"type": "string"}},
    "required": ["score", "reason"],
}


@pytest.fixture(autouse=True)
def _gemini_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key-123")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_GENAI_API_VERSION", raising=False)


async def _call(
    srv: GeminiServer, request: GenerateRequest | None = None, name: str = "gemini-2.5-flash"
):
    model = get_model(name, {"base_url": srv.base_url})
    assert isinstance(model, GeminiModel)
    try:
        return await model.generate(request or GenerateRequest(prompt="Summarize this code."))
    finally:
        await model.aclose()


async def test_success_reports_text_usage_model_version_and_cost() -> None:
    async with GeminiServer(responder=lambda body: "A short summary.") as srv:
        gen = await _call(srv)
    assert gen.text == "A short summary."
    assert gen.provider == "google_ai"
    assert gen.model == "gemini-2.5-flash-001"  # modelVersion from the wire
    assert gen.finish_reason == "STOP"
    assert gen.usage.prompt_tokens and gen.usage.completion_tokens
    assert gen.usage.total_tokens == gen.usage.prompt_tokens + gen.usage.completion_tokens
    expected = (gen.usage.prompt_tokens * 0.30 + gen.usage.completion_tokens * 2.50) / 1e6
    assert gen.cost == pytest.approx(expected)
    assert gen.latency_ms > 0


async def test_unpriced_gemini_model_has_unknown_cost_not_zero() -> None:
    async with GeminiServer() as srv:
        gen = await _call(srv, name="gemini-9.9-imaginary")
    assert gen.cost is None


async def test_api_key_from_env_reaches_server_as_x_goog_api_key() -> None:
    async with GeminiServer(require_api_key="test-key-123") as srv:
        await _call(srv)
        assert srv.requests[0].headers["x-goog-api-key"] == "test-key-123"
        assert srv.requests[0].path.endswith("/models/gemini-2.5-flash:generateContent")


async def test_base_url_from_google_gemini_base_url_env(monkeypatch: pytest.MonkeyPatch) -> None:
    async with GeminiServer() as srv:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", srv.base_url)
        model = get_model("gemini-2.5-flash")
        try:
            gen = await model.generate(GenerateRequest(prompt="hello"))
        finally:
            await model.aclose()  # type: ignore[attr-defined]
        assert gen.text and len(srv.requests) == 1


async def test_wrong_api_key_is_auth_error() -> None:
    async with GeminiServer(require_api_key="other") as srv:
        with pytest.raises(ModelError) as err:
            await _call(srv)
    assert err.value.kind == "auth" and err.value.status == 403 and not err.value.retryable


async def test_request_fields_reach_the_wire() -> None:
    request = GenerateRequest(
        prompt="Rate it: score?",
        system="You are a judge.",
        json_schema=SCHEMA,
        temperature=0.2,
        seed=7,
        max_tokens=64,
    )
    async with GeminiServer() as srv:
        gen = await _call(srv, request)
        body = srv.requests[0].json
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert set(config["responseSchema"]["properties"]) == {"score", "reason"}
    assert config["temperature"] == 0.2 and config["seed"] == 7 and config["maxOutputTokens"] == 64
    assert body["systemInstruction"]["parts"][0]["text"] == "You are a judge."
    assert body["contents"][0]["parts"][0]["text"] == "Rate it: score?"
    assert '"score": 0.8' in gen.text  # the default responder answers judge prompts


async def test_429_is_rate_limited_with_retry_after_and_no_sdk_retry() -> None:
    async with GeminiServer(faults=[{"kind": "rate_limit", "retry_after": 7}]) as srv:
        with pytest.raises(ModelError) as err:
            await _call(srv)
        assert len(srv.requests) == 1  # the SDK must not retry: the runner owns retries
    assert err.value.kind == "rate_limited" and err.value.status == 429
    assert err.value.retry_after_s == 7.0 and err.value.retryable


async def test_500_is_server_error_and_sent_once() -> None:
    async with GeminiServer(faults=["server_error"]) as srv:
        with pytest.raises(ModelError) as err:
            await _call(srv)
        assert len(srv.requests) == 1
    assert err.value.kind == "server_error" and err.value.status == 500


async def test_400_is_bad_request_not_retryable() -> None:
    async with GeminiServer(faults=["bad_request"]) as srv:
        with pytest.raises(ModelError) as err:
            await _call(srv)
    assert err.value.kind == "bad_request" and not err.value.retryable


async def test_hung_response_times_out_within_the_timeout() -> None:
    async with GeminiServer(faults=[{"kind": "hang", "seconds": 20}]) as srv:
        started = time.perf_counter()
        with pytest.raises(ModelError) as err:
            await _call(srv, GenerateRequest(prompt="hi", timeout_s=0.5))
        elapsed = time.perf_counter() - started
    assert err.value.kind == "timeout" and err.value.retryable
    assert elapsed < 2.0


async def test_empty_candidates_is_empty() -> None:
    async with GeminiServer(faults=["empty"]) as srv:
        with pytest.raises(ModelError) as err:
            await _call(srv)
    assert err.value.kind == "empty"


async def test_blocked_prompt_is_blocked() -> None:
    async with GeminiServer(faults=["blocked"]) as srv:
        with pytest.raises(ModelError) as err:
            await _call(srv)
    assert err.value.kind == "blocked"


async def test_safety_finish_reason_is_blocked() -> None:
    def safety(body: dict) -> dict:
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "partial"}]},
                    "finishReason": "SAFETY",
                }
            ]
        }

    async with GeminiServer(responder=safety) as srv:
        with pytest.raises(ModelError) as err:
            await _call(srv)
    assert err.value.kind == "blocked"


async def test_empty_text_is_empty() -> None:
    async with GeminiServer(responder=lambda body: "   ") as srv:
        with pytest.raises(ModelError) as err:
            await _call(srv)
    assert err.value.kind == "empty"


async def test_non_json_body_is_server_error() -> None:
    async with GeminiServer(faults=["garbage"]) as srv:
        with pytest.raises(ModelError) as err:
            await _call(srv)
    assert err.value.kind == "server_error"


async def test_malformed_text_is_returned_for_the_caller_to_judge() -> None:
    async with GeminiServer(faults=["malformed"]) as srv:
        gen = await _call(srv)
    assert gen.text.startswith('{"missing_entities"') and not gen.text.endswith("}")


async def test_unreachable_server_is_server_error() -> None:
    srv = GeminiServer()
    await srv.start()
    url = srv.base_url
    await srv.close()
    model = get_model("gemini-2.5-flash", {"base_url": url})
    try:
        with pytest.raises(ModelError) as err:
            await model.generate(GenerateRequest(prompt="hi", timeout_s=2))
    finally:
        await model.aclose()  # type: ignore[attr-defined]
    assert err.value.kind == "server_error"


async def test_missing_api_key_is_auth_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)
    with pytest.raises(ModelError) as err:
        await get_model("gemini-2.5-flash").generate(GenerateRequest(prompt="hi"))
    assert err.value.kind == "auth"


async def test_fault_rate_is_seeded_and_reproducible() -> None:
    outcomes = []
    for _ in range(2):
        async with GeminiServer(
            fault_rate=0.5, seed=11, fault_kinds=("rate_limit", "server_error")
        ) as srv:
            model = get_model("gemini-2.5-flash", {"base_url": srv.base_url})
            kinds = []
            for _ in range(12):
                try:
                    await model.generate(GenerateRequest(prompt="x"))
                    kinds.append("ok")
                except ModelError as exc:
                    kinds.append(exc.kind)
            await model.aclose()  # type: ignore[attr-defined]
            outcomes.append(kinds)
    assert outcomes[0] == outcomes[1]
    assert "ok" in outcomes[0]
    assert set(outcomes[0]) - {"ok"} <= {"rate_limited", "server_error"}
    assert 2 <= sum(k != "ok" for k in outcomes[0]) <= 10  # about half of 12 fail


def test_threaded_server_serves_a_sync_client() -> None:
    import json
    import urllib.request

    srv = GeminiServer().start_in_thread()
    try:
        body = json.dumps(
            {"contents": [{"role": "user", "parts": [{"text": "Return missing_entities"}]}]}
        )
        req = urllib.request.Request(
            f"{srv.base_url}/v1beta/models/gemini-2.5-flash:generateContent",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            answer = json.load(resp)
    finally:
        srv.stop()
    text = answer["candidates"][0]["content"]["parts"][0]["text"]
    assert set(json.loads(text)) == {"missing_entities", "denser_summary"}


def test_retry_after_parses_header_and_retry_info() -> None:
    assert parse_retry_after({"Retry-After": "3"}, None) == 3.0
    details = {
        "error": {
            "details": [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.5s"}
            ]
        }
    }
    assert parse_retry_after({}, details) == 12.5
    assert parse_retry_after(None, {"error": {"code": 429}}) is None


async def test_a_call_logs_nothing_from_the_sdk(caplog: pytest.LogCaptureFixture) -> None:
    # The SDK logs "AFC is enabled with max remote calls: 10." at INFO on every call unless
    # automatic function calling is switched off; we pass no tools, so it is, and a
    # server's log gets no line per model call.
    caplog.set_level("DEBUG", logger="google_genai")
    async with GeminiServer() as srv:
        await _call(srv)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("google_genai")] == []


def test_start_builds_the_sdk_types_a_call_uses() -> None:
    # pydantic builds a model's validator on first use (10 ms for GenerateContentConfig,
    # more for the response); start() does it off the loop, so the first call does not.
    # In a fresh interpreter: in this one another test may have built them already.
    probe = (
        "import asyncio\n"
        "from google.genai import types\n"
        "from codi_eval.models import GeminiModel\n"
        "used = (types.GenerateContentConfig, types.GenerateContentResponse, types.Content)\n"
        "before = [c.__pydantic_complete__ for c in used]\n"
        "model = GeminiModel('gemini-2.5-flash', api_key='k', base_url='http://127.0.0.1:9')\n"
        "async def main():\n"
        "    await model.start()\n"
        "    await model.aclose()\n"
        "asyncio.run(main())\n"
        "print(before, [c.__pydantic_complete__ for c in used])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.split() == ["[False,", "False,", "False]", "[True,", "True,", "True]"], out


_CONFIG_FIELDS = sorted(types.GenerateContentConfig.model_fields)


@settings(max_examples=200, deadline=None)
@given(
    set_fields=st.dictionaries(
        st.sampled_from(["temperature", "seed", "max_output_tokens", "top_k", "top_p"]),
        st.integers(0, 100),
    ),
    key=st.one_of(st.sampled_from(_CONFIG_FIELDS), st.text(max_size=30)),
)
def test_key_in_an_sdk_model_answers_as_the_fallback_walk_does(
    set_fields: dict[str, int], key: str
) -> None:
    # Python's `in` without __contains__ walks __iter__ (pydantic yields (name, value)
    # pairs) comparing each item to the key; the shortcut must give that same answer.
    for model in (
        types.GenerateContentConfig(system_instruction="s", **set_fields),
        types.Content(role="user", parts=[types.Part(text="x")]),
        types.Part(text=key),
    ):
        walked = any(item is key or item == key for item in iter(model))
        assert (key in model) is walked
        pair = next(iter(model))
        assert pair in model  # a (name, value) pair is found, as by the walk


async def test_the_membership_shortcut_sends_the_same_request_body() -> None:
    request = GenerateRequest(
        prompt="Summarize:\ndef f(): pass",
        system="You are a summarizer.",
        json_schema=SCHEMA,
        temperature=0.0,
        seed=3,
        max_tokens=128,
        timeout_s=7.0,
    )
    shortcut = _common.BaseModel.__dict__["__contains__"]
    async with GeminiServer() as srv:
        await _call(srv, request)
        del _common.BaseModel.__contains__
        try:
            await _call(srv, request)
        finally:
            _common.BaseModel.__contains__ = shortcut  # type: ignore[method-assign]
        assert srv.requests[0].json == srv.requests[1].json


async def test_thought_parts_are_not_the_answer_but_are_billed() -> None:
    def thinking(body: dict) -> dict:
        return {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "Let me think about the code.", "thought": True},
                            {"text": "It adds two numbers."},
                        ],
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 10,
                "candidatesTokenCount": 5,
                "thoughtsTokenCount": 7,
                "totalTokenCount": 22,
            },
            "modelVersion": "gemini-2.5-flash-002",
        }

    async with GeminiServer(responder=thinking) as srv:
        gen = await _call(srv)
    assert gen.text == "It adds two numbers."
    assert (gen.usage.prompt_tokens, gen.usage.completion_tokens) == (10, 12)
    assert gen.usage.total_tokens == 22 and gen.model == "gemini-2.5-flash-002"


@pytest.mark.parametrize(
    "answer",
    [
        {"candidates": [{"content": "x"}]},
        {"candidates": "not a list"},
        {"candidates": [{"content": {"parts": [{"text": 3}]}}]},
        {"candidates": [{"content": {"parts": "x"}}], "usageMetadata": {"promptTokenCount": "a"}},
    ],
)
async def test_a_200_of_the_wrong_shape_is_a_server_error(answer: dict) -> None:
    async with GeminiServer(responder=lambda body: answer) as srv:
        with pytest.raises(ModelError) as err:
            await _call(srv)
    assert err.value.kind == "server_error" and "malformed" in str(err.value)


async def test_each_call_carries_its_own_timeout_to_the_server() -> None:
    # The client holds the first call's timeout (or the one start() names); a call with
    # another passes it per call. Either way the SDK sends it as X-Server-Timeout.
    timeouts = [7.0, 12.0, 7.0, 30.0]
    async with GeminiServer() as srv:
        model = get_model("gemini-2.5-flash", {"base_url": srv.base_url})
        assert isinstance(model, GeminiModel)
        try:
            for timeout in timeouts:
                await model.generate(GenerateRequest(prompt="hello", timeout_s=timeout))
        finally:
            await model.aclose()
        sent = [r.headers.get("X-Server-Timeout") for r in srv.requests]
    assert sent == [str(int(t)) for t in timeouts]
