"""LLM judges: render a rubric prompt, ask a model for ``{"score", "reason"}``, parse it.

A :class:`~codi_eval.models.base.ModelError` propagates unchanged: retrying is the
runner's decision. An answer that cannot be read is not an error but a ``failed``
:class:`Judgement` that keeps the raw text (see :mod:`codi_eval.judging.parser`).
"""

from __future__ import annotations

from typing import Any

from codi_eval.judging.judgement import Judgement
from codi_eval.judging.parser import parse_judge_answer
from codi_eval.judging.scale import DEFAULT_SCALE, Scale
from codi_eval.models.base import GenerateRequest, Model
from codi_eval.templates import render

#: The answer schema of a judge on the default 0-1 scale. Each judge sends its own scale's
#: (:meth:`Scale.answer_schema`) as the provider's structured-output schema; providers
#: without one still get the JSON instruction from the prompt itself.
JUDGE_SCHEMA: dict[str, Any] = DEFAULT_SCALE.answer_schema()


class LLMJudge:
    """Judges a summary of code with a model and a ``{{var}}`` rubric template.

    The template is rendered with ``code``, ``summary``, ``instruction`` and any ``extra``
    keyword values; a variable it needs but is not given raises
    :class:`~codi_eval.templates.TemplateError` (a configuration error, not a bad answer).
    ``scale`` is the scale the prompt declares: its answer type is the structured-output
    schema of the call, and the parser accepts exactly that scale.
    """

    def __init__(
        self,
        model: Model,
        prompt_template: str,
        prompt_ref: str = "summary_judge@1",
        metric_name: str = "summary_quality",
        *,
        scale: Scale = DEFAULT_SCALE,
        seed: int | None = None,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
    ) -> None:
        if not prompt_template.strip():
            raise ValueError(f"prompt template {prompt_ref} is empty")
        self.model = model
        self.prompt_template = prompt_template
        self.prompt_ref: str | None = prompt_ref
        self.metric_name = metric_name
        self.scale = scale
        self.seed = seed
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s

    def render(self, *, code: str, summary: str | None, instruction: str, **extra: Any) -> str:
        """The exact prompt :meth:`judge` sends."""
        values = {**extra, "code": code, "summary": summary, "instruction": instruction}
        return render(self.prompt_template, values, name=self.prompt_ref)

    async def judge(
        self, *, code: str, summary: str | None, instruction: str, **extra: Any
    ) -> Judgement:
        """One model call at temperature 0; returns an ``ok`` or ``failed`` judgement."""
        prompt = self.render(code=code, summary=summary, instruction=instruction, **extra)
        request = GenerateRequest(
            prompt=prompt,
            json_schema=self.scale.answer_schema(),
            temperature=0.0,
            seed=self.seed,
            max_tokens=self.max_tokens,
            timeout_s=self.timeout_s,
            # Network models never send context; it lets a program-model answer a judge call.
            context={
                "task": "judge",
                "metric": self.metric_name,
                "code": code,
                "summary": summary,
                "instruction": instruction,
            },
        )
        generation = await self.model.generate(request)
        judgement = parse_judge_answer(
            generation.text, metric_name=self.metric_name, scale=self.scale
        )
        judgement.generation = generation
        judgement.meta.update(
            prompt_ref=self.prompt_ref, model=generation.model, provider=generation.provider
        )
        return judgement


class CodeQualityJudge(LLMJudge):
    """Judges generated code against an instruction (metric ``code_quality``).

    Same call as :class:`LLMJudge`; ``code`` is the generated code and ``summary`` is
    unused (the shipped template has no ``{{summary}}``).
    """

    def __init__(
        self,
        model: Model,
        prompt_template: str,
        prompt_ref: str = "code_quality_judge@1",
        metric_name: str = "code_quality",
        **options: Any,
    ) -> None:
        super().__init__(model, prompt_template, prompt_ref, metric_name, **options)

    async def judge(
        self, *, code: str, instruction: str, summary: str | None = None, **extra: Any
    ) -> Judgement:
        return await super().judge(
            code=code,
            summary=summary,
            instruction=instruction,
            **extra,
        )
