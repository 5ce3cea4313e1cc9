"""Judging summaries of code: LLM judges, the offline heuristic judge, offline metrics.

A notebook or the runner needs only this face::

    judge = get_judge("offline")            # or "gemini-2.5-flash", "openai:<model>"
    judgement = await judge.judge(code=..., summary=..., instruction=...)
    scores = score_all(["entity_density", "rouge_l"], code, summary, reference, "python")
"""

from codi_eval.judging.judgement import Judge, Judgement, JudgementStatus
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
from codi_eval.judging.parser import parse_judge_answer
from codi_eval.judging.registry import get_judge, load_judge_prompt
from codi_eval.judging.scale import DEFAULT_SCALE, Scale

__all__ = [
    "DEFAULT_SCALE",
    "JUDGE_METRICS",
    "JUDGE_SCHEMA",
    "METRICS",
    "CodeQualityJudge",
    "Judge",
    "Judgement",
    "JudgementStatus",
    "LLMJudge",
    "Metric",
    "MetricScore",
    "OfflineJudge",
    "Scale",
    "get_judge",
    "get_metric",
    "is_judge_metric",
    "load_judge_prompt",
    "parse_judge_answer",
    "score_all",
]
