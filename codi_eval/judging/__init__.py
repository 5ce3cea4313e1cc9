"""Judging summaries of code: LLM judges, the offline heuristic judge, offline metrics.

A notebook or the runner needs only this face::

    judge = get_judge("offline")            # or "gemini-2.5-flash", "openai:<model>"
    judgement = await judge.judge(code=..., summary=..., instruction=...)
    scores = score_all(["entity_density", "rouge_l"], code, summary, reference, "python")

Services build judges with :func:`build_judge` from a spec's ``judge:`` fields (model,
prompt, mode); judge kinds are registered by prompt name (:func:`judge_kind`).
"""

from codi_eval.judging.judgement import (
    Judge,
    Judgement,
    JudgementStatus,
    OrderVerdict,
    PairwiseJudge,
    PairwiseJudgement,
)
from codi_eval.judging.llm_judge import JUDGE_SCHEMA, CodeQualityJudge, LLMJudge
from codi_eval.judging.metrics import (
    JUDGE_METRICS,
    METRICS,
    Metric,
    MetricScore,
    get_metric,
    is_judge_metric,
    score_all,
)
from codi_eval.judging.offline_judge import OfflineJudge
from codi_eval.judging.pairwise import (
    PAIRWISE_SCHEMA,
    LLMPairwiseJudge,
    PairwiseAnswer,
    combine_orders,
    parse_pairwise_answer,
)
from codi_eval.judging.parser import parse_judge_answer
from codi_eval.judging.registry import (
    DEFAULT_JUDGE_PROMPT,
    DEFAULT_PAIRWISE_PROMPT,
    JudgeKind,
    JudgeMode,
    JudgePrompt,
    build_judge,
    build_pairwise_judge,
    build_score_judge,
    check_judge,
    get_judge,
    judge_kind,
    judge_kinds,
    judge_prompt,
    kind_of,
    load_judge_prompt,
)
from codi_eval.judging.scale import DEFAULT_SCALE, Scale

__all__ = [
    "DEFAULT_JUDGE_PROMPT",
    "DEFAULT_PAIRWISE_PROMPT",
    "DEFAULT_SCALE",
    "JUDGE_METRICS",
    "JUDGE_SCHEMA",
    "METRICS",
    "PAIRWISE_SCHEMA",
    "CodeQualityJudge",
    "Judge",
    "JudgeKind",
    "JudgeMode",
    "JudgePrompt",
    "Judgement",
    "JudgementStatus",
    "LLMJudge",
    "LLMPairwiseJudge",
    "Metric",
    "MetricScore",
    "OfflineJudge",
    "OrderVerdict",
    "PairwiseAnswer",
    "PairwiseJudge",
    "PairwiseJudgement",
    "Scale",
    "build_judge",
    "build_pairwise_judge",
    "build_score_judge",
    "check_judge",
    "combine_orders",
    "get_judge",
    "get_metric",
    "is_judge_metric",
    "judge_kind",
    "judge_kinds",
    "judge_prompt",
    "kind_of",
    "load_judge_prompt",
    "parse_judge_answer",
    "parse_pairwise_answer",
    "score_all",
]
