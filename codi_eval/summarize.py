"""Chain of Density summarization of code, fully traced, with its judgement.

Adams et al. 2023 (arXiv 2309.04269) in the Opik cookbook's instruction-focused form:
``density_iterations`` calls that each name missing entities and rewrite the summary
denser at the same length, then one final "extremely dense" call. One trace per
summarization::

    trace "Code Summary: ..."
      span chain_of_density
        span llm "iteration 1" ... "iteration N"   (prompt ref, missing entities, words, density)
        span llm "final"
      span judge "judge: summary_quality"          (model call usage and cost)
      span metric "metrics"                        (offline metrics)
    evaluations: the judge's score and every metric, linked to their spans
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codi_eval import code_facts
from codi_eval.answers import json_values, strip_fence
from codi_eval.judging import Judge, Judgement
from codi_eval.judging.metrics import MetricScore, score_all
from codi_eval.models.base import GenerateRequest, Generation, Model, ModelError, Usage
from codi_eval.templates import render
from codi_eval.tracing import Tracer

DEFAULT_METRICS = (
    "entity_density",
    "identifier_coverage",
    "compression",
    "word_count",
    "rouge_l",
    "bleu4",
)
DEFAULT_INSTRUCTION = "Explain what this code does and how."


def effective_instruction(item: str | None, spec: str | None = None) -> str:
    """The instruction a summary is written and judged for: the item's, else the spec's,
    else :data:`DEFAULT_INSTRUCTION`. Re-judging (judge-check, pairwise) uses the same rule."""
    return item or spec or DEFAULT_INSTRUCTION


NO_SUMMARY_YET = "(none yet: this is the first summary)"


@dataclass(frozen=True)
class PromptVersion:
    """A prompt template with the reference (name@version) it was loaded from."""

    ref: str
    template: str


@dataclass(frozen=True)
class CoDSettings:
    density_iterations: int = 2
    word_budget: int = 50
    temperature: float | None = None
    seed: int | None = None
    max_tokens: int | None = 1024
    timeout_s: float | None = 60.0


@dataclass
class Iteration:
    number: int
    summary: str
    missing_entities: list[str]  # as the model named them
    added_entities: list[str]  # entities the new summary mentions that the previous did not
    word_count: int
    entity_density: float
    generation: Generation


@dataclass
class Outcome:
    """What one summarization produced; the trace holds the same facts."""

    summary: str
    iterations: list[Iteration]
    final: Generation
    judgement: Judgement | None
    metrics: list[MetricScore] = field(default_factory=list)
    trace_id: Any = None
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    latency_ms: float = 0.0
    model_calls: int = 0
    cache_hits: int = 0

    @property
    def quality_score(self) -> float | None:
        return self.judgement.score if self.judgement and self.judgement.ok else None


def parse_iteration_answer(text: str) -> tuple[str, list[str]]:
    """The denser summary and named missing entities from an iteration answer.

    Models are asked for ``{"missing_entities": [...], "denser_summary": "..."}``; the JSON is
    found by :func:`codi_eval.answers.json_values` (fences, prose around it, sloppy quoting),
    and an answer without such JSON is taken as the summary itself (with no entities named).
    """
    for found in json_values(text):
        data = found.value
        if isinstance(data, list) and data and isinstance(data[-1], dict):
            data = data[-1]  # the paper's format: one object per step, the last is the densest
        if not isinstance(data, dict):
            continue
        summary = next(
            (
                data[k]
                for k in ("denser_summary", "Denser_Summary", "summary")
                if isinstance(data.get(k), str)
            ),
            None,
        )
        if summary is None:
            continue
        entities = data.get("missing_entities", data.get("Missing_Entities", []))
        if isinstance(entities, str):
            entities = [e.strip() for e in re.split(r"[;,]", entities) if e.strip()]
        if not isinstance(entities, list):
            entities = []
        return summary.strip(), [str(e) for e in entities if str(e).strip()]
    return strip_fence(text), []


def _merge_usage(a: Usage, b: Usage) -> Usage:
    def add(x: int | None, y: int | None) -> int | None:
        return y if x is None else x if y is None else x + y

    return Usage(
        add(a.prompt_tokens, b.prompt_tokens),
        add(a.completion_tokens, b.completion_tokens),
        add(a.total_tokens, b.total_tokens),
    )


class Summarizer:
    """Runs Chain of Density with one model and one judge, recording through a tracer."""

    def __init__(
        self,
        *,
        model: Model,
        judge: Judge | None,
        iteration_prompt: PromptVersion,
        final_prompt: PromptVersion,
        tracer: Tracer,
        settings: CoDSettings | None = None,
        metrics: Sequence[str] = DEFAULT_METRICS,
    ) -> None:
        self.model = model
        self.judge = judge
        self.iteration_prompt = iteration_prompt
        self.final_prompt = final_prompt
        self.tracer = tracer
        self.settings = settings or CoDSettings()
        self.metrics = tuple(metrics)

    async def _call(
        self,
        name: str,
        prompt: PromptVersion,
        values: dict[str, Any],
        context: dict[str, Any],
        metadata: dict[str, Any],
    ) -> tuple[Generation, Any]:
        """One model call inside an llm span; returns the span so callers can add what they learn."""
        s = self.settings
        text = render(prompt.template, values, name=prompt.ref)
        request = GenerateRequest(
            prompt=text,
            temperature=s.temperature,
            seed=s.seed,
            max_tokens=s.max_tokens,
            timeout_s=s.timeout_s,
            context=context,
        )
        async with self.tracer.span(
            name,
            type="llm",
            input={"prompt": text},
            metadata={"prompt": prompt.ref, **metadata},
            model=self.model.name,
            provider=self.model.provider,
        ) as span:
            generation = await self.model.generate(request)
            span.update(
                model=generation.model,
                provider=generation.provider,
                metadata={
                    "latency_ms": round(generation.latency_ms, 3),
                    "finish_reason": generation.finish_reason,
                    "cached": generation.cached,
                },
            )
            span.set_usage(
                generation.usage.prompt_tokens,
                generation.usage.completion_tokens,
                generation.usage.total_tokens,
                generation.cost,
            )
            span.set_output({"text": generation.text})
        return generation, span

    async def chain_of_density(
        self,
        *,
        code: str,
        instruction: str,
        language: str = "python",
    ) -> tuple[str, list[Iteration], Generation]:
        s = self.settings
        entity_list = code_facts.entities(code, language)
        iterations: list[Iteration] = []
        previous: str | None = None
        async with self.tracer.span(
            "chain_of_density",
            input={"instruction": instruction},
            metadata={
                "density_iterations": s.density_iterations,
                "iteration_prompt": self.iteration_prompt.ref,
                "final_prompt": self.final_prompt.ref,
                "word_budget": s.word_budget,
            },
        ) as cod_span:
            for number in range(1, s.density_iterations + 1):
                values = {
                    "code": code,
                    "language": language,
                    "instruction": instruction,
                    "iteration": number,
                    "previous_summary": previous or NO_SUMMARY_YET,
                    "word_budget": s.word_budget,
                }
                context = {
                    "task": "cod_iteration",
                    "code": code,
                    "language": language,
                    "instruction": instruction,
                    "iteration": number,
                    "previous_summary": previous,
                    "word_budget": s.word_budget,
                }
                meta: dict[str, Any] = {"iteration": number}
                generation, span = await self._call(
                    f"iteration {number}", self.iteration_prompt, values, context, meta
                )
                summary, named = parse_iteration_answer(generation.text)
                if not summary:
                    raise ModelError("empty", f"iteration {number} returned no summary")
                before = set(code_facts.mentioned(previous or "", entity_list))
                now = code_facts.mentioned(summary, entity_list)
                added = [e for e in now if e not in before]
                item = Iteration(
                    number,
                    summary,
                    named,
                    added,
                    code_facts.word_count(summary),
                    code_facts.entity_density(summary, entity_list),
                    generation,
                )
                span.update(
                    metadata={
                        "missing_entities": named,
                        "added_entities": added,
                        "word_count": item.word_count,
                        "entity_density": round(item.entity_density, 4),
                    }
                )
                iterations.append(item)
                previous = summary
            final_values = {
                "code": code,
                "language": language,
                "instruction": instruction,
                "current_summary": previous,
                "word_budget": s.word_budget,
            }
            final_context = {
                "task": "cod_final",
                "code": code,
                "language": language,
                "instruction": instruction,
                "previous_summary": previous,
                "word_budget": s.word_budget,
                "iteration": s.density_iterations + 1,
            }
            final, span = await self._call(
                "final", self.final_prompt, final_values, final_context, {}
            )
            summary = strip_fence(final.text)
            if not summary:
                raise ModelError("empty", "the final summary call returned no text")
            span.update(
                metadata={
                    "word_count": code_facts.word_count(summary),
                    "entity_density": round(code_facts.entity_density(summary, entity_list), 4),
                }
            )
            cod_span.set_output({"summary": summary})
        return summary, iterations, final

    async def evaluate(
        self, *, code: str, summary: str, instruction: str, language: str, reference: str | None
    ) -> tuple[Judgement | None, list[MetricScore]]:
        judgement: Judgement | None = None
        if self.judge is not None:
            async with self.tracer.span(
                f"judge: {self.judge.metric_name}",
                type="judge",
                input={"summary": summary, "instruction": instruction},
                metadata={"prompt": self.judge.prompt_ref},
            ) as span:
                judgement = await self.judge.judge(
                    code=code, summary=summary, instruction=instruction, language=language
                )
                gen = judgement.generation
                if gen is not None:
                    span.update(
                        model=gen.model,
                        provider=gen.provider,
                        metadata={"latency_ms": round(gen.latency_ms, 3), "cached": gen.cached},
                    )
                    span.set_usage(
                        gen.usage.prompt_tokens,
                        gen.usage.completion_tokens,
                        gen.usage.total_tokens,
                        gen.cost,
                    )
                span.set_output(
                    {
                        "score": judgement.score,
                        "reason": judgement.reason,
                        "status": judgement.status,
                        "scale": judgement.scale,
                        "raw": judgement.raw if not judgement.ok else None,
                    }
                )
                self.tracer.evaluation(
                    judgement.metric_name,
                    judgement.score,
                    judgement.reason,
                    span_id=span.id,
                    status=judgement.status,
                    metadata={
                        "judge": getattr(self.judge, "name", type(self.judge).__name__),
                        "prompt": self.judge.prompt_ref,
                        "scale": judgement.scale,
                        **({"raw": judgement.raw} if not judgement.ok else {}),
                        **judgement.meta,
                    },
                )
        scores: list[MetricScore] = []
        if self.metrics:
            async with self.tracer.span(
                "metrics", type="metric", input={"metrics": list(self.metrics)}
            ) as span:
                scores = score_all(list(self.metrics), code, summary, reference, language)
                span.set_output({m.name: m.value for m in scores})
                for m in scores:
                    if m.value is not None:
                        self.tracer.evaluation(m.name, m.value, m.reason, span_id=span.id)
        return judgement, scores

    async def summarize(
        self,
        *,
        code: str,
        instruction: str | None = None,
        language: str = "python",
        reference: str | None = None,
        trace_name: str | None = None,
        trace_kwargs: dict[str, Any] | None = None,
        on_trace: Callable[[Any], None] | None = None,
    ) -> Outcome:
        """Summarize ``code`` inside a new trace and judge the result.

        ``on_trace(handle)`` is called as the trace opens, so a caller can attach work to
        the transaction that stores it (``record_run``), which
        then also runs when the summarization fails (the tree carries the error).
        """
        instruction = effective_instruction(instruction)
        # "Dart" or "flutter" from a caller: the prompts fence code with the canonical name.
        language = code_facts.canonical_language(language) or language
        started = time.perf_counter()
        name = trace_name or f"Code Summary: {instruction[:60]}"
        kwargs = {"trace_type": "summarization", **(trace_kwargs or {})}
        async with self.tracer.trace(
            name, input={"code": code, "instruction": instruction, "language": language}, **kwargs
        ) as trace:
            if on_trace is not None:
                on_trace(trace)
            summary, iterations, final = await self.chain_of_density(
                code=code, instruction=instruction, language=language
            )
            judgement, scores = await self.evaluate(
                code=code,
                summary=summary,
                instruction=instruction,
                language=language,
                reference=reference,
            )
            outcome = _outcome(summary, iterations, final, judgement, scores, started)
            trace.set_output({"summary": summary})
            trace.update(
                metadata={
                    "model": self.model.name,
                    "tokens": outcome.usage.total_tokens,
                    "cost": outcome.cost,
                    "density_iterations": len(iterations),
                    "iteration_prompt": self.iteration_prompt.ref,
                    "quality_score": outcome.quality_score,
                }
            )
            outcome.trace_id = trace.id
        return outcome


def _outcome(
    summary: str,
    iterations: list[Iteration],
    final: Generation,
    judgement: Judgement | None,
    scores: list[MetricScore],
    started: float,
) -> Outcome:
    generations = [it.generation for it in iterations] + [final]
    if judgement is not None and judgement.generation is not None:
        generations.append(judgement.generation)
    usage = Usage()
    for g in generations:
        usage = _merge_usage(usage, g.usage)
    costs = [g.cost for g in generations]
    cost = None if any(c is None for c in costs) else sum(c for c in costs if c is not None)
    return Outcome(
        summary=summary,
        iterations=iterations,
        final=final,
        judgement=judgement,
        metrics=scores,
        usage=usage,
        cost=cost,
        latency_ms=(time.perf_counter() - started) * 1000.0,
        model_calls=sum(1 for g in generations if not g.cached),
        cache_hits=sum(1 for g in generations if g.cached),
    )


async def build_summarizer(
    store: Any,
    tracer: Tracer,
    *,
    model: str,
    judge: str | None,
    iteration_prompt: str = "cod_iteration@2",
    final_prompt: str = "cod_final@1",
    judge_prompt: str = "summary_judge@1",
    density_iterations: int = 2,
    word_budget: int = 50,
    metrics: Sequence[str] = DEFAULT_METRICS,
    model_kwargs: dict[str, Any] | None = None,
    prompts_dir: Path | None = None,
) -> Summarizer:
    """A :class:`Summarizer` from the names a user types (model names, prompt refs).

    The judge (``judge`` model with rubric ``judge_prompt``, scored) comes from the judge
    registry, as the runner's does; ``prompts_dir`` is where the prompt files declaring
    scales live (default: the settings'). Raises :class:`~codi_eval.errors.InputError` for
    an unknown model or prompt version.
    """
    from codi_eval.errors import InputError
    from codi_eval.judging import build_score_judge
    from codi_eval.judging import judge_prompt as resolve_judge_prompt
    from codi_eval.models.registry import get_model
    from codi_eval.prompts import get_prompt

    try:
        llm = get_model(model, model_kwargs)
    except ValueError as exc:
        raise InputError(str(exc), field="model") from None
    it = await get_prompt(store, iteration_prompt)
    fin = await get_prompt(store, final_prompt)
    the_judge: Judge | None = None
    if judge is not None:
        jp = await get_prompt(store, judge_prompt)
        try:
            the_judge = build_score_judge(
                judge,
                resolve_judge_prompt(jp.ref, jp.template, prompts_dir),
                models=lambda name: get_model(name, model_kwargs),
            )
        except ValueError as exc:
            raise InputError(str(exc), field="judge") from None
    return Summarizer(
        model=llm,
        judge=the_judge,
        iteration_prompt=PromptVersion(it.ref, it.template),
        final_prompt=PromptVersion(fin.ref, fin.template),
        tracer=tracer,
        settings=CoDSettings(density_iterations=density_iterations, word_budget=word_budget),
        metrics=metrics,
    )
