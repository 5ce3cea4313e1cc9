"""Chain of Density end to end: `codi-eval summarize`, its trace, the Gemini path, judge failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codi_eval import code_facts
from codi_eval.datasets import load_jsonl
from codi_eval.models.base import GenerateRequest
from codi_eval.models.offline import OfflineModel
from codi_eval.summarize import parse_iteration_answer
from tests.cli_helpers import ROOT, run_cli
from tests.cli_helpers import query as rows
from tests.servers.gemini_server import GeminiServer

SAMPLE = '''
import heapq


def top_k(items, k, key=None):
    """Return the k largest items."""
    if k <= 0:
        raise ValueError("k must be positive")
    heap = []
    for item in items:
        score = key(item) if key else item
        if len(heap) < k:
            heapq.heappush(heap, (score, item))
        else:
            heapq.heappushpop(heap, (score, item))
    return [item for _, item in sorted(heap, reverse=True)]
'''


@pytest.fixture
def module_file(tmp_path: Path) -> Path:
    path = tmp_path / "some_module.py"
    path.write_text(SAMPLE)
    return path


def test_summarize_offline_records_the_full_trace(module_file: Path, store_url: str) -> None:
    result = run_cli(
        "summarize",
        str(module_file),
        "--function",
        "top_k",
        "--iterations",
        "3",
        "--json",
        db_url=store_url,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["summary"] and "top_k" in data["summary"]
    assert 0.0 <= data["quality_score"] <= 1.0 and data["quality_reason"]
    assert [it["iteration"] for it in data["iterations"]] == [1, 2, 3]
    trace_id = data["trace_id"]
    spans = rows(
        store_url,
        "select name, type, parent_span_id, id, meta_data from spans where trace_id = :t",
        t=trace_id,
    )
    by_name = {s[0]: s for s in spans}
    cod = by_name["chain_of_density"]
    for name in ("iteration 1", "iteration 2", "iteration 3", "final"):
        assert by_name[name][1] == "llm" and str(by_name[name][2]) == str(cod[3])
    assert by_name["judge: summary_quality"][1] == "judge"
    meta = by_name["iteration 2"][4]
    meta = json.loads(meta) if isinstance(meta, str) else meta
    assert meta["prompt"] == "cod_iteration@2" and "missing_entities" in meta
    assert "word_count" in meta and "entity_density" in meta
    evaluations = dict(
        rows(
            store_url, "select metric_name, score from evaluations where trace_id = :t", t=trace_id
        )
    )
    assert evaluations["summary_quality"] == pytest.approx(data["quality_score"])
    assert {"entity_density", "identifier_coverage", "compression", "word_count"} <= set(
        evaluations
    )


def test_summarize_through_gemini_records_reported_tokens_and_cost(
    module_file: Path, tmp_path: Path
) -> None:
    server = GeminiServer().start_in_thread()
    db = f"sqlite:///{tmp_path / 'g.db'}"
    try:
        env = {"GEMINI_API_KEY": "x", "GOOGLE_GEMINI_BASE_URL": server.base_url}
        result = run_cli(
            "summarize",
            str(module_file),
            "--function",
            "top_k",
            "--iterations",
            "2",
            "--model",
            "gemini-2.5-flash",
            "--judge",
            "gemini-2.5-flash",
            "--json",
            db_url=db,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert len(server.requests) == 4  # 2 iterations + final + judge
        assert all(r.headers.get("x-goog-api-key") == "x" for r in server.requests)
        assert data["quality_score"] == pytest.approx(0.8)
        llm = rows(
            db,
            "select prompt_tokens, completion_tokens, total_tokens, cost, provider, model "
            "from spans where trace_id = :t and type = 'llm'",
            t=data["trace_id"],
        )
        assert len(llm) == 3
        for prompt_tokens, completion_tokens, total, cost, provider, model in llm:
            assert (
                prompt_tokens > 0
                and completion_tokens > 0
                and total == prompt_tokens + completion_tokens
            )
            assert cost is not None and cost > 0
            assert provider == "google_ai" and model.startswith("gemini-2.5-flash")
    finally:
        server.stop()


def test_a_judge_answer_that_is_not_json_is_a_failed_judgement_and_exit_0(
    module_file: Path, tmp_path: Path
) -> None:
    def responder(body: dict) -> str:  # type: ignore[type-arg]
        prompt = body["contents"][0]["parts"][0]["text"]
        if "denser_summary" in prompt:
            return json.dumps(
                {"missing_entities": ["heapq"], "denser_summary": "Keeps a heapq of the top k."}
            )
        if '"reason"' in prompt:  # the judge prompt (the sample code itself says "score")
            return "I think it is quite good overall, maybe."
        return "Keeps a heapq of the top k items."

    server = GeminiServer(responder=responder).start_in_thread()
    db = f"sqlite:///{tmp_path / 'j.db'}"
    try:
        env = {"GEMINI_API_KEY": "x", "GOOGLE_GEMINI_BASE_URL": server.base_url}
        result = run_cli(
            "summarize",
            str(module_file),
            "--function",
            "top_k",
            "--iterations",
            "1",
            "--model",
            "gemini-2.5-flash",
            "--judge",
            "gemini-2.5-flash",
            db_url=db,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert "Keeps a heapq" in result.stdout and "failed to parse" in result.stdout
        evaluation = rows(
            db,
            "select status, score, meta_data from evaluations where metric_name = 'summary_quality'",
        )
        status, score, meta = evaluation[0]
        meta = json.loads(meta) if isinstance(meta, str) else meta
        assert status == "failed" and score is None
        assert meta["raw"] == "I think it is quite good overall, maybe."
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py"], "file not found"),
        (["{f}", "--model", "gpt-17"], "unknown model"),
        (["{f}", "--iterations", "11"], "11"),
        (["{f}", "--function", "nope"], "top_k"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    module_file: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    argv = [a.replace("{f}", str(module_file)) for a in args]
    result = run_cli("summarize", *argv, db_url=f"sqlite:///{tmp_path / 'b.db'}")
    assert result.returncode == 2
    assert message in result.stderr


def test_offline_cod_density_never_falls_and_stays_within_budget() -> None:
    """On the stdlib dataset, each offline CoD iteration is at least as dense, within the word budget."""
    import asyncio

    model = OfflineModel()
    items = load_jsonl(ROOT / "datasets" / "stdlib-functions.jsonl")

    async def chain(code: str) -> list[str]:
        summaries: list[str] = []
        previous = None
        for i in range(1, 6):
            req = GenerateRequest(
                prompt="",
                context={
                    "task": "cod_iteration",
                    "code": code,
                    "language": "python",
                    "instruction": "Explain",
                    "iteration": i,
                    "previous_summary": previous,
                    "word_budget": 50,
                },
            )
            summary, _ = parse_iteration_answer((await model.generate(req)).text)
            summaries.append(summary)
            previous = summary
        return summaries

    for item in items:
        entity_list = code_facts.entities(item.code)
        summaries = asyncio.run(chain(item.code))
        densities = [code_facts.entity_density(s, entity_list) for s in summaries]
        assert all(b >= a - 1e-12 for a, b in zip(densities, densities[1:], strict=False)), item.id
        assert all(code_facts.word_count(s) <= 50 for s in summaries), item.id


@given(st.text(max_size=300))
def test_iteration_answers_never_crash_the_parser(answer: str) -> None:
    summary, entities = parse_iteration_answer(answer)
    assert isinstance(summary, str) and all(isinstance(e, str) for e in entities)


def test_iteration_answer_parsing_tolerates_fences_and_prose() -> None:
    fenced = 'Sure!\n```json\n{"missing_entities": ["heapq"], "denser_summary": "Uses heapq."}\n```'
    assert parse_iteration_answer(fenced) == ("Uses heapq.", ["heapq"])
    paper = '[{"Missing_Entities": "a; b", "Denser_Summary": "S1"}, {"Missing_Entities": "c", "Denser_Summary": "S2"}]'
    assert parse_iteration_answer(paper) == ("S2", ["c"])
    assert parse_iteration_answer("just prose") == ("just prose", [])
