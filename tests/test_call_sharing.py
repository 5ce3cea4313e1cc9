"""Never pay twice: identical calls in one experiment are made once, so the density cells of
an item share their Chain-of-Density iterations, and no result changes because of it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from codi_eval.experiments.cache import ResponseCache
from codi_eval.experiments.calls import CallMemo, CallStats, ManagedModel, RateLimiter, RetryPolicy
from codi_eval.experiments.runner import Runner, prepare
from codi_eval.experiments.spec import load_spec
from codi_eval.models.base import GenerateRequest, Generation, ModelError, Usage
from codi_eval.settings import Settings
from codi_eval.store.engine import Store
from codi_eval.store.models import DatasetItem, Evaluation, ExperimentCell, Run
from tests.cli_helpers import run_cli
from tests.servers.gemini_server import GeminiServer
from tests.test_runner import small_dataset, write_spec

_WORDS = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}")


def prompt_dependent(body: dict[str, Any]) -> str:
    """Answers that depend on every character of the prompt and on the seed: a call answered
    for another request would change the summaries, so any wrong sharing shows."""
    prompt = "".join(p.get("text", "") for c in body["contents"] for p in c.get("parts", []))
    seed = body.get("generationConfig", {}).get("seed")
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).hexdigest()
    words = sorted(set(_WORDS.findall(prompt)))
    picked = [words[int(digest[i : i + 4], 16) % len(words)] for i in (0, 4, 8)]
    summary = f"The code uses `{picked[0]}`, `{picked[1]}` and `{picked[2]}` ({digest[:8]})."
    if "denser_summary" in prompt:
        return json.dumps({"missing_entities": picked, "denser_summary": summary})
    return "Final: " + summary


async def _results(store: Store, experiment_id: Any) -> dict[tuple[str, str, int], Any]:
    async with store.session() as session:
        rows = (
            await session.execute(
                select(Run, ExperimentCell.key, DatasetItem.id)
                .join(ExperimentCell, ExperimentCell.id == Run.cell_id)
                .join(DatasetItem, DatasetItem.id == Run.dataset_item_id)
                .where(Run.experiment_id == experiment_id)
            )
        ).all()
        evaluations = (
            await session.execute(
                select(Evaluation.trace_id, Evaluation.metric_name, Evaluation.score).where(
                    Evaluation.trace_id.in_([r.Run.trace_id for r in rows])
                )
            )
        ).all()
    by_trace: dict[Any, dict[str, float]] = {}
    for trace_id, name, value in evaluations:
        by_trace.setdefault(trace_id, {})[name] = value
    return {
        (key, str(item), run.repeat): (
            run.status,
            run.summary,
            run.judge_score,
            run.prompt_tokens,
            run.completion_tokens,
            by_trace.get(run.trace_id),
        )
        for run, key, item in rows
    }


async def _run(store: Store, path: Path, *, new: bool = False) -> Runner:
    spec = load_spec(path)
    settings = Settings.from_env({})
    runner = Runner(store, spec, await prepare(store, spec, settings, new=new), settings=settings)
    await runner.run()
    return runner


def _spec(dataset: Path, share: bool) -> str:
    return (
        f"name: shared\ndataset: {dataset}\nrepeats: 2\nseed: 7\n"
        "matrix: {prompt: [cod_iteration@1, cod_iteration@2], density_iterations: [1, 2, 3], "
        "model: [gemini-2.5-flash]}\n"
        "judge: {model: offline}\n"
        f"run: {{concurrency: 16, requests_per_minute: 60000, cache: false, "
        f"share_calls: {str(share).lower()}}}\n"
    )


async def test_density_cells_share_iterations_and_every_result_is_unchanged(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = small_dataset(tmp_path, 4)
    async with GeminiServer(prompt_dependent) as server:
        monkeypatch.setenv("GEMINI_API_KEY", "test-key")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.base_url)
        unshared = await _run(store, write_spec(tmp_path, _spec(dataset, False)))
        unshared_calls = len(server.requests)
        shared = await _run(store, write_spec(tmp_path, _spec(dataset, True), "b.yaml"), new=True)
        shared_calls = len(server.requests) - unshared_calls
    per = 4 * 2 * 2  # items × prompts × repeats
    # Density 1, 2, 3 with a final call each: 2 + 3 + 4 = 9 calls unshared, 3 + 3 = 6 shared.
    assert unshared_calls == 9 * per and unshared.progress.stats.model_calls == 9 * per
    assert shared_calls == 6 * per and shared.progress.stats.model_calls == 6 * per
    assert shared.progress.stats.cache_hits == 3 * per
    a = await _results(store, unshared.prepared.experiment.id)
    b = await _results(store, shared.prepared.experiment.id)
    assert len(a) == 4 * 2 * 3 * 2 and a.keys() == b.keys()
    assert all(v[0] == "succeeded" and v[1] for v in a.values())
    assert a == b  # summaries, judge scores, tokens and every metric, run by run
    assert len({v[1] for v in a.values()}) == len(a)  # the answers really differ per request


def test_quickstart_makes_each_distinct_call_once_with_the_same_numbers(tmp_path: Path) -> None:
    off = tmp_path / "quickstart-unshared.yaml"
    spec = Path("experiments/quickstart.yaml").read_text()
    off.write_text(spec.replace("cache: true}", "cache: true, share_calls: false}"))
    db = f"sqlite:///{tmp_path / 'q.db'}"
    plans = [
        json.loads(run_cli("run", spec, "--dry-run", "--json", db_url=db).stdout)["model_calls"]
        for spec in ("experiments/quickstart.yaml", str(off))
    ]
    # The estimate counts the shared iterations once (it cannot know that two prompt
    # versions will get the same answer, so it says 200, not 160).
    assert plans == [200, 240]
    shared = json.loads(run_cli("run", "experiments/quickstart.yaml", "--json", db_url=db).stdout)
    unshared = json.loads(run_cli("run", str(off), "--json", "--new", db_url=db).stdout)
    assert unshared["model_calls"] == 240  # 20 items × 2 prompts × (2 + 4)
    # Iteration 1 of density 3 is density 1's: 20 × 2 × (3 iterations + 2 finals) = 200. The
    # offline baseline writes the same summary under both prompt versions, so their final
    # calls are one request too: 40 fewer again.
    assert shared["model_calls"] == 160 and shared["cache_hits"] == 80
    assert shared["runs_succeeded"] == unshared["runs_succeeded"] == 80
    strip = ("latency_p50_ms", "latency_p95_ms")
    assert [{k: v for k, v in c.items() if k not in strip} for c in shared["cells"]] == [
        {k: v for k, v in c.items() if k not in strip} for c in unshared["cells"]
    ]


class _Slow:
    name = "slow"
    provider = "test"

    def __init__(self, fail: ModelError | None = None) -> None:
        self.calls = 0
        self.fail = fail

    async def generate(self, request: GenerateRequest) -> Generation:
        self.calls += 1
        await asyncio.sleep(0.05)
        if self.fail is not None:
            raise self.fail
        return Generation(request.prompt.upper(), Usage(3, 4, 7), "slow", "test", 50.0, cost=0.01)


def _managed(inner: Any, memo: CallMemo | None, totals: CallStats) -> ManagedModel:
    return ManagedModel(
        inner,
        cache=None,
        limiter=RateLimiter(None),
        semaphore=None,
        policy=RetryPolicy(max_retries=0),
        totals=totals,
        memo=memo,
    )


async def test_concurrent_identical_calls_are_one_call_and_every_waiter_gets_the_answer() -> None:
    inner, totals = _Slow(), CallStats()
    model = _managed(inner, CallMemo(), totals)
    request = GenerateRequest(prompt="same prompt", seed=1)
    answers = await asyncio.gather(*(model.generate(request) for _ in range(10)))
    assert inner.calls == 1 and {a.text for a in answers} == {"SAME PROMPT"}
    assert totals.model_calls == 1 and totals.cache_hits == 9 and totals.cost == pytest.approx(0.01)
    # Another repeat is another sample; another seed another request.
    await model.for_repeat(1).generate(request)
    await model.generate(GenerateRequest(prompt="same prompt", seed=2))
    assert inner.calls == 3


async def test_a_failed_call_fails_its_waiters_and_a_cancelled_one_is_made_again() -> None:
    failing = _Slow(ModelError("bad_request", "no"))
    model = _managed(failing, CallMemo(), CallStats())
    request = GenerateRequest(prompt="p")
    results = await asyncio.gather(
        *(model.generate(request) for _ in range(3)), return_exceptions=True
    )
    assert failing.calls == 1 and all(isinstance(r, ModelError) for r in results)
    # Failures are not remembered: the next call tries again.
    with pytest.raises(ModelError):
        await model.generate(request)
    assert failing.calls == 2

    inner = _Slow()
    model = _managed(inner, CallMemo(), CallStats())
    first = asyncio.create_task(model.generate(request))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(model.generate(request))
    await asyncio.sleep(0.01)
    first.cancel()  # the caller that made the call gave up (a lost lease)
    assert (await waiter).text == "P" and inner.calls == 2


async def test_the_memo_is_bounded() -> None:
    inner = _Slow()
    memo = CallMemo(size=5)
    model = _managed(inner, memo, CallStats())
    for i in range(20):
        await model.generate(GenerateRequest(prompt=f"p{i}"))
    assert len(memo) == 5 and not memo.in_flight


async def test_a_store_that_does_not_answer_skips_the_cache_and_the_call_is_made() -> None:
    # A real engine on a port nobody listens on: every cache lookup and write fails fast.
    dead = Store("postgresql+psycopg://postgres@127.0.0.1:9/none")
    try:
        inner, totals = _Slow(), CallStats()
        model = ManagedModel(
            inner,
            cache=ResponseCache(dead),
            limiter=RateLimiter(None),
            semaphore=None,
            policy=RetryPolicy(max_retries=0),
            totals=totals,
            memo=CallMemo(),
        )
        answer = await model.generate(GenerateRequest(prompt="p"))
        assert answer.text == "P" and inner.calls == 1
        assert totals.model_calls == 1 and totals.cache_faults == 2  # the read and the write
    finally:
        await dead.close()
