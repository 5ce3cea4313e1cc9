"""The response cache keys on everything that changes an answer, endpoint included, and on
nothing secret: two OpenAI-compatible servers serving one model name never answer for each
other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from codi_eval.datasets import load_jsonl, write_jsonl
from codi_eval.experiments.cache import cache_key, model_identity
from codi_eval.experiments.runner import Runner, prepare
from codi_eval.experiments.spec import load_spec
from codi_eval.models.base import GenerateRequest
from codi_eval.settings import Settings
from codi_eval.store.engine import Store
from codi_eval.store.models import LLMCacheEntry, Run
from tests.cli_helpers import ROOT
from tests.servers.openai_server import OpenAIServer

SECRET = "sk-very-secret-test-key"


def answering_as(marker: str) -> Any:
    """A responder whose every summary names the server that wrote it."""

    def respond(body: dict[str, Any]) -> str:
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages") or [])
        if "denser_summary" in prompt:
            return json.dumps(
                {"missing_entities": [marker], "denser_summary": f"Summary written by {marker}."}
            )
        return f"Final summary written by {marker}."

    return respond


async def _run(store: Store, spec_path: Path, *, new: bool = False) -> Runner:
    spec = load_spec(spec_path)
    settings = Settings.from_env({})
    prepared = await prepare(store, spec, settings, new=new)
    runner = Runner(store, spec, prepared, settings=settings)
    await runner.run()
    return runner


async def test_two_openai_compatible_servers_with_one_model_name_never_serve_each_other(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    data = tmp_path / "items.jsonl"
    write_jsonl(load_jsonl(ROOT / "datasets" / "quickstart.jsonl")[:3], data)
    async with (
        OpenAIServer(answering_as("server-one")) as one,
        OpenAIServer(answering_as("server-two")) as two,
    ):
        models = {
            "server-one": f"openai:llama3?base_url={one.api_base}",
            "server-two": f"openai:llama3?base_url={two.api_base}",
        }
        spec_path = tmp_path / "spec.yaml"
        spec_path.write_text(
            f"name: two-servers\ndataset: {data}\nmatrix:\n  prompt: [cod_iteration@1]\n"
            f"  density_iterations: [1]\n  model: ['{models['server-one']}', "
            f"'{models['server-two']}']\njudge: {{model: offline}}\n"
            # One run at a time: the second server's calls come after the first's are cached.
            "run: {concurrency: 1, max_retries: 0, timeout_s: 5}\n"
        )
        await _run(store, spec_path)
        # Both servers answered every one of their calls: 3 items x (1 iteration + final).
        assert (len(one.requests), len(two.requests)) == (6, 6)

        async def summaries() -> dict[str, set[str]]:
            async with store.session() as session:
                rows = (await session.execute(select(Run.cell_id, Run.summary))).all()
            spec = load_spec(spec_path)
            prepared = await prepare(store, spec, Settings.from_env({}), create=False)
            cells = {c.id: c.model for c in prepared.cells}
            by_model: dict[str, set[str]] = {}
            for cell_id, summary in rows:
                by_model.setdefault(cells.get(cell_id, str(cell_id)), set()).add(summary)
            return by_model

        first = await summaries()
        assert first[models["server-one"]] == {"Final summary written by server-one."}
        assert first[models["server-two"]] == {"Final summary written by server-two."}

        # Run again as a new experiment: every answer comes from the cache, each from its own
        # server's entries.
        again = await _run(store, spec_path, new=True)
        assert (len(one.requests), len(two.requests)) == (6, 6)
        assert again.progress.stats.cache_hits == 12
        async with store.session() as session:
            entries = (await session.scalars(select(LLMCacheEntry))).all()
    assert len(entries) == 12
    stored = json.dumps([[e.key, e.provider, e.model, e.params, e.response] for e in entries])
    assert SECRET not in stored


def test_the_key_covers_endpoint_model_prompt_and_parameters_and_nothing_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://user:{SECRET}@127.0.0.1:9000/v1?key={SECRET}")
    request = GenerateRequest(prompt="p", temperature=0.0, seed=1, max_tokens=64)

    def key(name: str, req: GenerateRequest = request, repeat: int = 0) -> str:
        return cache_key(model_identity(name, "openai"), req, repeat)

    base = key("openai:m")
    identity = model_identity("openai:m", "openai")
    assert identity["endpoint"] == "http://127.0.0.1:9000/v1"
    assert SECRET not in json.dumps(identity)
    assert key("openai:m?base_url=http://127.0.0.1:9001/v1") != base  # another server
    assert key("openai:n") != base  # another model
    assert key("openai:m?json_mode=json_object") != base  # asks the server for another thing
    assert key("openai:m?timeout_s=5") == base  # a timeout changes no answer
    changed = [
        GenerateRequest(prompt="q", temperature=0.0, seed=1, max_tokens=64),
        GenerateRequest(prompt="p", system="s", temperature=0.0, seed=1, max_tokens=64),
        GenerateRequest(prompt="p", temperature=0.5, seed=1, max_tokens=64),
        GenerateRequest(prompt="p", temperature=0.0, seed=2, max_tokens=64),
        GenerateRequest(prompt="p", temperature=0.0, seed=1, max_tokens=65),
        GenerateRequest(prompt="p", temperature=0.0, seed=1, max_tokens=64, json_schema={}),
    ]
    assert len({key("openai:m", r) for r in changed} | {base}) == len(changed) + 1
    assert key("openai:m", repeat=1) != base
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9100")
    gemini = model_identity("gemini-2.5-flash", "google_ai")
    assert (gemini["provider"], gemini["endpoint"]) == ("gemini", "http://127.0.0.1:9100")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9200")
    assert cache_key(model_identity("gemini-2.5-flash", "google_ai"), request, 0) != cache_key(
        gemini, request, 0
    )
