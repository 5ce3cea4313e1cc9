"""The OpenAI-compatible provider, through the real openai SDK, against a local server."""

from __future__ import annotations

import time

import pytest

from codi_eval.models import GenerateRequest, ModelError, OpenAICompatModel, get_model
from tests.servers.openai_server import OpenAIServer

SCHEMA = {
    "title": "judgement",
    "type": "object",
    "properties": {"score": {"type": "number"}},
    "required": ["score"],
}


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


async def _call(
    srv: OpenAIServer,
    request: GenerateRequest | None = None,
    name: str = "openai:llama3.1",
    **settings,
):
    model = get_model(name, {"base_url": srv.api_base, **settings})
    assert isinstance(model, OpenAICompatModel)
    try:
        return await model.generate(request or GenerateRequest(prompt="Summarize this code."))
    finally:
        await model.aclose()


async def test_success_reports_text_usage_and_unknown_cost() -> None:
    async with OpenAIServer(responder=lambda body: "Sums two numbers.") as srv:
        gen = await _call(srv)
    assert gen.text == "Sums two numbers."
    assert gen.provider == "openai" and gen.model == "llama3.1" and gen.finish_reason == "stop"
    assert gen.usage.prompt_tokens and gen.usage.completion_tokens
    assert gen.cost is None  # a local model has no price in prices.yaml: unknown, not 0


async def test_placeholder_key_when_none_is_configured() -> None:
    async with OpenAIServer() as srv:
        await _call(srv)
        assert srv.requests[0].headers["Authorization"].startswith("Bearer ")


async def test_api_key_and_base_url_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    async with OpenAIServer(require_api_key="sk-env") as srv:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
        monkeypatch.setenv("OPENAI_BASE_URL", srv.api_base)
        model = get_model("openai:qwen2.5-coder")
        try:
            gen = await model.generate(GenerateRequest(prompt="hi"))
        finally:
            await model.aclose()  # type: ignore[attr-defined]
        assert gen.text
        assert srv.requests[0].headers["Authorization"] == "Bearer sk-env"


async def test_json_schema_becomes_response_format() -> None:
    request = GenerateRequest(
        prompt="Give a score",
        system="Judge.",
        json_schema=SCHEMA,
        temperature=0.0,
        seed=3,
        max_tokens=50,
    )
    async with OpenAIServer() as srv:
        await _call(srv, request)
        await _call(srv, request, json_mode="json_object")
        first, second = srv.requests[0].json, srv.requests[1].json
    assert first["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "judgement", "schema": SCHEMA},
    }
    assert second["response_format"] == {"type": "json_object"}
    assert first["messages"] == [
        {"role": "system", "content": "Judge."},
        {"role": "user", "content": "Give a score"},
    ]
    assert first["temperature"] == 0.0 and first["seed"] == 3 and first["max_tokens"] == 50


async def test_429_is_rate_limited_with_retry_after_and_no_sdk_retry() -> None:
    async with OpenAIServer(faults=[{"kind": "rate_limit", "retry_after": 4}]) as srv:
        with pytest.raises(ModelError) as err:
            await _call(srv)
        assert len(srv.requests) == 1
    assert (
        err.value.kind == "rate_limited"
        and err.value.retry_after_s == 4.0
        and err.value.status == 429
    )


async def test_500_is_server_error_sent_once() -> None:
    async with OpenAIServer(faults=["server_error"]) as srv:
        with pytest.raises(ModelError) as err:
            await _call(srv)
        assert len(srv.requests) == 1
    assert err.value.kind == "server_error" and err.value.status == 500


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("bad_request", "bad_request"),
        ("auth", "auth"),
        ("empty", "empty"),
        ("blocked", "blocked"),
        ("garbage", "server_error"),
    ],
)
async def test_faults_map_to_error_kinds(fault: str, kind: str) -> None:
    async with OpenAIServer(faults=[fault]) as srv:
        with pytest.raises(ModelError) as err:
            await _call(srv)
    assert err.value.kind == kind


async def test_hung_response_times_out_within_the_timeout() -> None:
    async with OpenAIServer(faults=[{"kind": "hang", "seconds": 20}]) as srv:
        started = time.perf_counter()
        with pytest.raises(ModelError) as err:
            await _call(srv, GenerateRequest(prompt="hi", timeout_s=0.5))
        assert time.perf_counter() - started < 2.0
        assert len(srv.requests) == 1
    assert err.value.kind == "timeout"


async def test_unreachable_server_is_server_error() -> None:
    srv = OpenAIServer()
    await srv.start()
    url = srv.api_base
    await srv.close()
    model = OpenAICompatModel("m", base_url=url)
    try:
        with pytest.raises(ModelError) as err:
            await model.generate(GenerateRequest(prompt="hi", timeout_s=2))
    finally:
        await model.aclose()
    assert err.value.kind == "server_error"


async def test_default_responder_answers_cod_and_judge_prompts() -> None:
    import json

    async with OpenAIServer() as srv:
        cod = await _call(
            srv,
            GenerateRequest(
                prompt="Return missing_entities and denser_summary.\n```python\ndef add(a, b):\n    return a + b\n```"
            ),
        )
        judge = await _call(srv, GenerateRequest(prompt="Give a score from 0 to 1."))
    assert set(json.loads(cod.text)) == {"missing_entities", "denser_summary"}
    assert json.loads(judge.text)["score"] == 0.8


def test_registry_rejects_unknown_names_and_parameters() -> None:
    with pytest.raises(ValueError, match="openai:<model>"):
        get_model("gpt-4o")
    with pytest.raises(ValueError, match="unknown parameter 'latency'"):
        get_model("offline?latency=5")
    with pytest.raises(ValueError, match="latency_ms.*number"):
        get_model("offline?latency_ms=fast")
    with pytest.raises(ValueError):
        get_model("openai:")
    model = get_model("offline?latency_ms=25")
    assert model.name == "offline?latency_ms=25" and model.provider == "offline"
