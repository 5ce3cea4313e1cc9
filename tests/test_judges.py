"""Judges: the offline heuristic baseline and LLM judges over the Model protocol."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from codi_eval import code_facts
from codi_eval.judging import (
    JUDGE_SCHEMA,
    CodeQualityJudge,
    Judge,
    LLMJudge,
    OfflineJudge,
    get_judge,
    load_judge_prompt,
)
from codi_eval.judging.offline_judge import hallucinated_names, instruction_keywords
from codi_eval.judging.scale import Scale
from codi_eval.models.base import GenerateRequest, Generation, Model, ModelError, Usage
from codi_eval.templates import TemplateError, variables

PROMPTS = Path(__file__).resolve().parent.parent / "configs" / "prompts"

CODE = '''\
def retry_fetch(url, attempts=3):
    """Fetch a URL, retrying on connection errors."""
    for attempt in range(attempts):
        try:
            return urlopen(url).read()
        except ConnectionError:
            time.sleep(2 ** attempt)
    raise RuntimeError("gave up")
'''
INSTRUCTION = "Explain what this function does, including its error handling."
GOOD = (
    "retry_fetch calls urlopen on url up to attempts times, returning the body; on "
    "ConnectionError it sleeps with exponential backoff (time.sleep) and finally raises "
    "RuntimeError, so error handling is retry then give up."
)
IRRELEVANT = "This program renders a 3D teapot with OpenGL shaders and a rotating camera view."


class ScriptedModel:
    """A real Model: answers each call with the next scripted text and records requests."""

    name = "scripted"
    provider = "test"

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[GenerateRequest] = []

    async def generate(self, request: GenerateRequest) -> Generation:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return Generation(
            text=answer,
            usage=Usage(120, 30, 150),
            model="scripted-v1",
            provider="test",
            latency_ms=12.5,
            finish_reason="STOP",
        )


def summary_template() -> str:
    return load_judge_prompt("summary_judge@1", PROMPTS)


# --- offline judge ------------------------------------------------------------------------


async def test_offline_judge_is_deterministic() -> None:
    first = await OfflineJudge().judge(code=CODE, summary=GOOD, instruction=INSTRUCTION)
    second = await OfflineJudge().judge(code=CODE, summary=GOOD, instruction=INSTRUCTION)
    assert (first.score, first.reason, first.meta) == (second.score, second.reason, second.meta)
    assert first.status == "ok" and first.scale == "0-1" and first.generation is None


async def test_offline_judge_prefers_a_relevant_summary_to_an_irrelevant_one() -> None:
    judge = OfflineJudge()
    good = await judge.judge(code=CODE, summary=GOOD, instruction=INSTRUCTION)
    bad = await judge.judge(code=CODE, summary=IRRELEVANT, instruction=INSTRUCTION)
    assert good.score is not None and bad.score is not None
    assert good.score > bad.score + 0.3


async def test_offline_judge_penalises_names_not_in_the_code() -> None:
    honest = "retry_fetch calls urlopen on url and raises RuntimeError after attempts fail."
    invented = honest + " It also caches results in fetch_cache via lru_wrapper()."
    judge = OfflineJudge()
    a = await judge.judge(code=CODE, summary=honest, instruction=INSTRUCTION)
    b = await judge.judge(code=CODE, summary=invented, instruction=INSTRUCTION)
    assert sorted(b.meta["hallucinated"]) == ["fetch_cache", "lru_wrapper"]
    assert b.score < a.score  # type: ignore[operator]


async def test_offline_judge_reason_names_each_rubric_part() -> None:
    judgement = await OfflineJudge().judge(code=CODE, summary=GOOD, instruction=INSTRUCTION)
    for part in ("technical accuracy", "conciseness", "instruction alignment"):
        assert part in (judgement.reason or "")
    assert judgement.meta["judge"] == "offline_heuristic"


async def test_offline_judge_conciseness_band() -> None:
    judge = OfflineJudge(target_words=(5, 10))
    short = await judge.judge(code=CODE, summary="retry_fetch", instruction="x")
    long = await judge.judge(code=CODE, summary=" ".join(["retry_fetch"] * 40), instruction="x")
    fit = await judge.judge(
        code=CODE, summary="retry_fetch retries urlopen on url", instruction="x"
    )
    assert fit.meta["parts"]["conciseness"] == 1.0
    assert short.meta["parts"]["conciseness"] < 1.0
    assert long.meta["parts"]["conciseness"] == pytest.approx(10 / 40)


async def test_offline_judge_alignment_follows_instruction_keywords() -> None:
    judge = OfflineJudge()
    ask = "Describe the error handling and the backoff."
    with_it = await judge.judge(code=CODE, summary=GOOD, instruction=ask)
    without = await judge.judge(
        code=CODE, summary="retry_fetch calls urlopen on url.", instruction=ask
    )
    assert with_it.meta["parts"]["instruction_alignment"] == 1.0
    assert without.meta["parts"]["instruction_alignment"] == 0.0
    # A generic instruction has nothing to align to: the part is not scored, not given free points.
    generic = await judge.judge(
        code=CODE, summary=GOOD, instruction="Explain what this function does."
    )
    assert generic.meta["parts"]["instruction_alignment"] is None


async def test_offline_judge_scores_an_empty_summary_zero_with_reasons() -> None:
    judgement = await OfflineJudge().judge(code=CODE, summary="", instruction=INSTRUCTION)
    assert judgement.score == 0.0
    assert "empty summary" in (judgement.reason or "")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300), st.text(max_size=100))
def test_offline_judge_score_is_always_in_range(code: str, summary: str, instruction: str) -> None:
    judgement = OfflineJudge().score(code=code, summary=summary, instruction=instruction)
    assert judgement.score is not None and 0.0 <= judgement.score <= 1.0


def test_hallucinated_names_ignore_builtins_prose_and_real_names() -> None:
    summary = "Uses `range`, e.g. in a loop, calls urlopen() and time.sleep, returns None."
    assert hallucinated_names(summary, CODE) == []
    assert hallucinated_names("Calls `json.loads` and parse_config().", CODE) == [
        "json.loads",
        "parse_config",
    ]


def test_instruction_keywords_drop_directives() -> None:
    assert instruction_keywords("Explain what this function does and how.") == []
    assert instruction_keywords("Summarize the caching strategy") == ["caching", "strategy"]


def test_offline_judge_rejects_a_bad_band() -> None:
    with pytest.raises(ValueError):
        OfflineJudge(target_words=(20, 10))


# --- LLM judges ---------------------------------------------------------------------------


def test_shipped_prompt_files_are_versioned_templates_that_declare_their_scale() -> None:
    for file, name, version, needed, scale in [
        ("summary_judge_v1.yaml", "summary_judge", 1, {"code", "instruction", "summary"},
         {"min": 0, "max": 1, "integer": False}),
        ("summary_judge_v2.yaml", "summary_judge", 2, {"code", "instruction", "summary"},
         {"min": 1, "max": 5, "integer": True}),
        ("code_quality_judge_v1.yaml", "code_quality_judge", 1, {"code", "instruction"},
         {"min": 0, "max": 1, "integer": False}),
    ]:  # fmt: skip
        data = yaml.safe_load((PROMPTS / file).read_text())
        assert (data["name"], data["version"]) == (name, version)
        assert data["description"]
        assert set(variables(data["template"])) == needed
        assert '"score"' in data["template"] and '"reason"' in data["template"]
        assert data["scale"] == scale
        # The template says the same range the declaration does.
        low, high = scale["min"], scale["max"]
        assert f"from {low} to {high}" in data["template"]
    pairwise = yaml.safe_load((PROMPTS / "pairwise_judge_v1.yaml").read_text())
    assert set(variables(pairwise["template"])) == {"code", "instruction", "summary_a", "summary_b"}
    assert '"winner"' in pairwise["template"] and "scale" not in pairwise


async def test_llm_judge_renders_calls_at_temperature_zero_with_schema_and_parses_fences() -> None:
    model = ScriptedModel('```json\n{"score": 0.85, "reason": "accurate and dense"}\n```')
    judge = LLMJudge(model, summary_template())
    judgement = await judge.judge(code=CODE, summary=GOOD, instruction=INSTRUCTION)

    (request,) = model.requests
    assert request.temperature == 0
    assert request.json_schema == JUDGE_SCHEMA
    assert set(JUDGE_SCHEMA["properties"]) == {"score", "reason"}
    assert CODE in request.prompt and GOOD in request.prompt and INSTRUCTION in request.prompt
    assert "{{" not in request.prompt
    assert judgement.status == "ok"
    assert (judgement.score, judgement.reason, judgement.scale) == (
        0.85,
        "accurate and dense",
        "0-1",
    )
    assert judgement.metric_name == "summary_quality"
    assert judgement.generation is not None and judgement.generation.usage.total_tokens == 150
    assert judgement.meta["prompt_ref"] == "summary_judge@1"
    assert judgement.meta["model"] == "scripted-v1"


async def test_llm_judge_reads_its_declared_scale_and_sends_it_as_the_schema() -> None:
    one_to_five = Scale(min=1, max=5, integer=True)
    model = ScriptedModel('Rating:\n{"rating": 4, "explanation": "one missing call"}', "4")
    judgement = await LLMJudge(model, summary_template(), scale=one_to_five).judge(
        code=CODE, summary=GOOD, instruction=INSTRUCTION
    )
    assert (judgement.score, judgement.scale, judgement.reason) == (0.75, "1-5", "one missing call")
    assert judgement.meta["declared_scale"] == {"min": 1, "max": 5, "integer": True}
    score = model.requests[0].json_schema["properties"]["score"]  # type: ignore[index]
    assert (score["type"], score["minimum"], score["maximum"]) == ("integer", 1, 5)
    # The same 4 from a judge whose prompt declares 0-1 is off its scale: refused.
    off = await LLMJudge(model, summary_template()).judge(
        code=CODE, summary=GOOD, instruction=INSTRUCTION
    )
    assert off.status == "failed" and off.raw == "4" and off.score is None


async def test_llm_judge_non_json_answer_is_a_failed_judgement_with_raw_kept() -> None:
    raw = "I cannot evaluate this summary without more context."
    model = ScriptedModel(raw)
    judgement = await LLMJudge(model, summary_template()).judge(
        code=CODE, summary=GOOD, instruction=INSTRUCTION
    )
    assert judgement.status == "failed"
    assert judgement.score is None
    assert judgement.raw == raw
    # The call still cost tokens; the tracer needs them even for a failed parse.
    assert judgement.generation is not None and judgement.generation.latency_ms == 12.5


async def test_llm_judge_lets_model_errors_propagate() -> None:
    model = ScriptedModel(ModelError("rate_limited", "slow down", status=429))
    with pytest.raises(ModelError) as caught:
        await LLMJudge(model, summary_template()).judge(code=CODE, summary=GOOD, instruction="x")
    assert caught.value.retryable


async def test_llm_judge_missing_template_variable_is_a_template_error() -> None:
    judge = LLMJudge(ScriptedModel("0.5"), "Judge {{summary}} for {{audience}}")
    with pytest.raises(TemplateError, match="audience"):
        await judge.judge(code=CODE, summary=GOOD, instruction="x")
    judgement = await judge.judge(code=CODE, summary=GOOD, instruction="x", audience="juniors")
    assert judgement.score == 0.5


async def test_code_quality_judge_needs_no_summary() -> None:
    model = ScriptedModel('{"score": 0.6, "reason": "works; no type hints"}')
    template = load_judge_prompt("code_quality_judge@1", PROMPTS)
    judge = CodeQualityJudge(model, template)
    judgement = await judge.judge(code=CODE, instruction="Write a fetch with retries.")
    assert judgement.metric_name == "code_quality"
    assert judgement.score == 0.6
    assert judge.prompt_ref == "code_quality_judge@1"
    assert "Write a fetch with retries." in model.requests[0].prompt


def test_judges_keep_the_protocols() -> None:
    assert isinstance(OfflineJudge(), Judge)
    assert isinstance(LLMJudge(ScriptedModel(), "{{summary}}"), Judge)
    assert isinstance(ScriptedModel(), Model)


# --- get_judge ----------------------------------------------------------------------------


def test_get_judge_offline_is_the_heuristic() -> None:
    judge = get_judge("offline", None, "summary_judge@1")
    assert isinstance(judge, OfflineJudge)
    assert judge.prompt_ref == "summary_judge@1"
    with pytest.raises(ValueError, match="no offline code_quality_judge judge"):
        get_judge("offline", None, "code_quality_judge@1")


def test_get_judge_builds_an_llm_judge_from_the_model_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from codi_eval.models import registry

    model = ScriptedModel()
    monkeypatch.setattr(registry, "get_model", lambda name: model)
    judge = get_judge("gemini-2.5-flash", None, None)
    assert isinstance(judge, LLMJudge) and not isinstance(judge, CodeQualityJudge)
    assert judge.model is model
    assert judge.prompt_template == summary_template()
    custom = get_judge("gemini-2.5-flash", "Rate {{summary}}", "summary_judge@7")
    assert (custom.prompt_template, custom.prompt_ref) == ("Rate {{summary}}", "summary_judge@7")
    assert isinstance(get_judge("openai:m", None, "code_quality_judge@1"), CodeQualityJudge)


def test_load_judge_prompt_names_what_exists_when_missing() -> None:
    with pytest.raises(ValueError, match="summary_judge@1"):
        load_judge_prompt("summary_judge@99", PROMPTS)


def test_code_facts_is_what_the_offline_judge_reads() -> None:
    # Guards the contract the heuristic depends on: salient entities of CODE include its name.
    assert "retry_fetch" in code_facts.entities(CODE, "python")


def test_offline_judge_rejects_weights_that_could_leave_nothing_to_score() -> None:
    with pytest.raises(ValueError, match="always apply"):
        OfflineJudge(
            weights={"technical_accuracy": 0, "conciseness": 0, "instruction_alignment": 1}
        )
