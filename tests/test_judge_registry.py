"""One judge registry: the runner, `summarize`, the API, judge-check and get_judge build the
same judge from the same spec fields, and a re-judgement sees the original prompt."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from codi_eval.analysis.reliability import _make_judges, judge_check, judge_models
from codi_eval.datasets import load_jsonl, write_jsonl
from codi_eval.errors import InputError
from codi_eval.experiments.runner import Runner, prepare
from codi_eval.experiments.spec import load_spec
from codi_eval.judging import (
    CodeQualityJudge,
    JudgePrompt,
    LLMJudge,
    OfflineJudge,
    build_judge,
    get_judge,
    judge_kind,
    judge_kinds,
    judge_prompt,
)
from codi_eval.judging import registry as judge_registry
from codi_eval.settings import Settings
from codi_eval.store.engine import Store
from codi_eval.summarize import build_summarizer
from codi_eval.tracing import Tracer
from tests.api_helpers import _api
from tests.cli_helpers import ROOT
from tests.servers.gemini_server import GeminiServer

QUICK = ROOT / "datasets" / "quickstart.jsonl"
JUDGES = [
    ("offline", "summary_judge@1"),
    ("gemini-2.5-flash", "summary_judge@1"),
    ("gemini-2.5-flash", "summary_judge@2"),
    ("openai:m?base_url=http://127.0.0.1:9/v1", "code_quality_judge@1"),
]


def shape(judge: Any) -> tuple[Any, ...]:
    """What makes two judges the same judge."""
    scale = getattr(judge, "scale", None)
    return (
        type(judge).__name__,
        judge.metric_name,
        judge.prompt_ref,
        getattr(judge, "prompt_template", None),
        None if scale is None else scale.describe(),
    )


def dataset(tmp_path: Path, n: int, *, instructions: bool = True) -> Path:
    items = load_jsonl(QUICK)[:n]
    if not instructions:
        items = [item.model_copy(update={"instruction": None}) for item in items]
    path = tmp_path / "items.jsonl"
    write_jsonl(items, path)
    return path


def write_spec(tmp_path: Path, data: Path, judge: str, *, instruction: str = "") -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(
        f"name: reg\ndataset: {data}\n{instruction}matrix:\n  prompt: [cod_iteration@1]\n"
        f"  density_iterations: [1]\n  model: [offline]\njudge: {judge}\n"
        "run: {concurrency: 4, max_retries: 1, timeout_s: 5, backoff_s: 0.01}\n"
    )
    return path


@pytest.fixture
def gemini_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")


@pytest.mark.parametrize(("model", "prompt"), JUDGES)
async def test_runner_summarize_judge_check_and_get_judge_build_the_same_judge(
    store: Store, tmp_path: Path, model: str, prompt: str, gemini_key: None
) -> None:
    # Before: the runner built a summary_quality LLMJudge for code_quality_judge@1 while
    # get_judge built a CodeQualityJudge; the runner's offline judge had no prompt_ref.
    spec = load_spec(
        write_spec(tmp_path, dataset(tmp_path, 1), f"{{model: '{model}', prompt: {prompt}}}")
    )
    settings = Settings.from_env({})
    prepared = await prepare(store, spec, settings)
    runner = Runner(store, spec, prepared, settings=settings)
    from_runner = runner.summarizer(prepared.cells[0], 0).judge
    from_summarize = (
        await build_summarizer(
            store, Tracer(None), model="offline", judge=model, judge_prompt=prompt
        )
    ).judge
    stored = prepared.prompts[prompt]
    models = judge_models(store, True)
    from_check = _make_judges(models, model, judge_prompt(stored.ref, stored.template), 1)[0]
    from_get_judge = get_judge(model, None, prompt)
    expected = shape(from_get_judge)
    assert shape(from_runner) == shape(from_summarize) == shape(from_check) == expected
    kind = {"summary_judge": LLMJudge, "code_quality_judge": CodeQualityJudge}[prompt.split("@")[0]]
    assert isinstance(from_runner, OfflineJudge if model == "offline" else kind)
    if prompt == "summary_judge@2":
        assert expected[-1] == {"min": 1, "max": 5, "integer": True}


@pytest.fixture
async def api_judge(store_url: str, aiohttp_client: Any, gemini_key: None) -> AsyncIterator[Any]:
    async for api in _api(store_url, aiohttp_client, default_judge="gemini-2.5-flash"):
        yield api.services.judge


async def test_the_api_builds_its_judge_through_the_registry(api_judge: Any) -> None:
    assert shape(api_judge) == shape(get_judge("gemini-2.5-flash", None, "summary_judge@1"))
    assert api_judge.scale.describe() == {"min": 0, "max": 1, "integer": False}


async def test_judge_check_re_judges_with_the_prompt_the_run_was_judged_with(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Items and spec without an instruction: before, the run was judged for "Explain what
    # this code does and how." and judge-check re-judged for "Explain what this code does."
    async with GeminiServer() as server:
        monkeypatch.setenv("GEMINI_API_KEY", "test-key")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.base_url)
        data = dataset(tmp_path, 3, instructions=False)
        spec = load_spec(write_spec(tmp_path, data, "{model: gemini-2.5-flash}"))
        settings = Settings.from_env({})
        prepared = await prepare(store, spec, settings)
        await Runner(store, spec, prepared, settings=settings).run()
        judged = [server.prompt_of(r.json) for r in server.requests]
        assert len(judged) == 3
        await judge_check(store, spec.name, repeats=1)
        rejudged = [server.prompt_of(r.json) for r in server.requests[3:]]
    assert len(rejudged) == 3
    assert sorted(rejudged) == sorted(judged)


def test_a_spec_whose_judge_cannot_be_built_is_refused_before_anything_runs(tmp_path: Path) -> None:
    data = dataset(tmp_path, 1)
    for judge, message in [
        ("{model: offline, prompt: code_quality_judge@1}", "no offline code_quality_judge"),
        ("{mode: pairwise, prompt: summary_judge@1}", "is a score rubric"),
        ("{mode: score, prompt: pairwise_judge@1}", "is a pairwise rubric"),
    ]:
        with pytest.raises(InputError, match=message) as caught:
            load_spec(write_spec(tmp_path, data, judge))
        assert "judge" in str(caught.value)


def test_judge_mode_defaults_keep_old_spec_hashes_and_pick_the_pairwise_prompt(
    tmp_path: Path,
) -> None:
    data = dataset(tmp_path, 1)
    scored = load_spec(write_spec(tmp_path, data, "{model: offline}"))
    assert scored.identity()["judge"] == {"model": "offline", "prompt": "summary_judge@1"}
    pairwise = load_spec(write_spec(tmp_path, data, "{model: offline, mode: pairwise}"))
    assert pairwise.judge.prompt == "pairwise_judge@1"
    assert pairwise.identity()["judge"] == {
        "model": "offline",
        "prompt": "pairwise_judge@1",
        "mode": "pairwise",
    }


def test_a_registered_kind_is_what_build_judge_returns() -> None:
    built: list[str] = []

    @judge_kind("terse_judge", mode="score", metric="terseness")
    def terse(model: str, prompt: JudgePrompt, models: Any) -> Any:
        built.append(model)
        return OfflineJudge(metric_name="terseness", prompt_ref=prompt.ref)

    try:
        assert "terse_judge" in judge_kinds()
        judge = build_judge("offline", JudgePrompt("terse_judge@1", "{{summary}}"))
        assert (judge.metric_name, judge.prompt_ref, built) == (
            "terseness",
            "terse_judge@1",
            ["offline"],
        )
        with pytest.raises(ValueError, match="already registered"):
            judge_kind("terse_judge", mode="score", metric="x")(terse)
    finally:
        judge_registry._KINDS.pop("terse_judge", None)


@pytest.mark.parametrize(("answer", "status", "score"), [(4, "ok", 0.75), (7, "failed", None)])
async def test_a_gemini_judge_is_sent_its_declared_range_and_stores_its_scale(
    store: Store, monkeypatch: pytest.MonkeyPatch, answer: int, status: str, score: float | None
) -> None:
    from sqlalchemy import select

    from codi_eval.prompts import ensure_seeded
    from codi_eval.store.models import Evaluation
    from codi_eval.tracing import StoreSink

    raw = json.dumps({"score": answer, "reason": "names the calls"})
    async with GeminiServer(lambda body: raw) as server:
        monkeypatch.setenv("GEMINI_API_KEY", "test-key")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.base_url)
        await ensure_seeded(store, ROOT / "configs" / "prompts")
        sink = StoreSink(store)
        summarizer = await build_summarizer(
            store,
            Tracer(sink),
            model="offline",
            judge="gemini-2.5-flash",
            judge_prompt="summary_judge@2",
            density_iterations=1,
        )
        outcome = await summarizer.summarize(code="def add(a, b):\n    return a + b\n")
        await sink.close()
        await summarizer.judge.model.aclose()  # type: ignore[union-attr]
        (request,) = server.requests
    schema = request.json["generationConfig"]["responseSchema"]["properties"]["score"]
    assert (schema["type"], schema["minimum"], schema["maximum"]) == ("INTEGER", 1, 5)
    judgement = outcome.judgement
    assert judgement is not None and (judgement.status, judgement.score) == (status, score)
    async with store.session() as session:
        (stored,) = (
            await session.scalars(
                select(Evaluation).where(Evaluation.metric_name == "summary_quality")
            )
        ).all()
    assert (stored.status, stored.score) == (status, score)
    assert stored.meta_data["declared_scale"] == {"min": 1, "max": 5, "integer": True}
    assert stored.meta_data["prompt"] == "summary_judge@2"
    if status == "failed":
        assert stored.meta_data["raw"] == raw
        assert "outside the declared 1-5 scale" in (stored.reason or "") + str(stored.meta_data)
    else:
        assert stored.meta_data["scale"] == "1-5"
