"""Judges by name: a spec's ``judge: {model, prompt, mode}`` becomes a judge, one way everywhere.

The runner, ``codi-eval summarize``, the API and ``judge-check`` (and ``compare
--pairwise``) all call :func:`build_judge` with the same three fields, so one spec gives
the same judge wherever it is used. Judge kinds register by the name of the rubric prompt
they read, the way inspect-ai registers scorers::

    @judge_kind("summary_judge", mode="score", metric="summary_quality")
    def summary_judge(model: str, prompt: JudgePrompt, models: ModelFactory) -> Judge: ...

A kind's factory gets the judge model's name, the prompt (template and declared scale) and
a ``models`` factory that turns a model name into a :class:`Model` — plain
:func:`~codi_eval.models.registry.get_model`, or the runner's cached, retried
:class:`~codi_eval.experiments.calls.ManagedModel`. A prompt whose name no kind claims is
read as a summary judge (``summary_quality``), as custom rubrics are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from codi_eval.judging.judgement import Judge, PairwiseJudge
from codi_eval.judging.llm_judge import CodeQualityJudge, LLMJudge
from codi_eval.judging.offline_judge import OfflineJudge
from codi_eval.judging.pairwise import LLMPairwiseJudge
from codi_eval.judging.scale import DEFAULT_SCALE, Scale
from codi_eval.models.base import Model

if TYPE_CHECKING:
    from codi_eval.prompts import PromptFile

__all__ = [
    "DEFAULT_JUDGE_PROMPT",
    "DEFAULT_PAIRWISE_PROMPT",
    "JudgeKind",
    "JudgeMode",
    "JudgePrompt",
    "ModelFactory",
    "build_judge",
    "build_pairwise_judge",
    "build_score_judge",
    "check_judge",
    "get_judge",
    "judge_kind",
    "judge_kinds",
    "judge_prompt",
    "kind_of",
    "load_judge_prompt",
]

JudgeMode = Literal["score", "pairwise"]
ModelFactory = Callable[[str], Model]
AnyJudge = Judge | PairwiseJudge

DEFAULT_JUDGE_PROMPT = "summary_judge@1"
DEFAULT_PAIRWISE_PROMPT = "pairwise_judge@1"


@dataclass(frozen=True)
class JudgePrompt:
    """A judge's rubric: the prompt version's reference and template, and its declared scale
    (``None``: the file declares none, and a score judge reads the default 0-1 scale)."""

    ref: str
    template: str
    scale: Scale | None = None

    @property
    def name(self) -> str:
        return self.ref.split("@", 1)[0]


JudgeFactory = Callable[[str, JudgePrompt, ModelFactory], AnyJudge]


@dataclass(frozen=True)
class JudgeKind:
    """A registered kind of judge: the rubric prompt it reads, its mode and its metric."""

    prompt_name: str
    mode: JudgeMode
    metric: str
    factory: JudgeFactory
    offline: bool = True  # the "offline" model can judge with it


_KINDS: dict[str, JudgeKind] = {}


def judge_kind(
    prompt_name: str, *, mode: JudgeMode, metric: str, offline: bool = True
) -> Callable[[JudgeFactory], JudgeFactory]:
    """Decorator: register a judge factory for the prompts named ``prompt_name``
    (``offline=False``: the kind has no offline form, so a spec may not pair them)."""

    def register(factory: JudgeFactory) -> JudgeFactory:
        if prompt_name in _KINDS:
            raise ValueError(f"a judge for prompt {prompt_name!r} is already registered")
        _KINDS[prompt_name] = JudgeKind(prompt_name, mode, metric, factory, offline)
        return factory

    return register


def judge_kinds() -> dict[str, JudgeKind]:
    """Registered judge kinds by prompt name."""
    return dict(_KINDS)


def kind_of(prompt_ref: str) -> JudgeKind:
    """The kind that judges with prompt ``prompt_ref`` (``name@version`` or a bare name)."""
    return _KINDS.get(prompt_ref.split("@", 1)[0]) or _KINDS["summary_judge"]


def check_judge(model: str, prompt_ref: str, mode: JudgeMode) -> None:
    """``ValueError`` when ``judge: {model, prompt, mode}`` cannot make a judge; nothing is
    built (a spec is checked with it before anything runs)."""
    kind = kind_of(prompt_ref)
    if kind.mode != mode:
        wanted = DEFAULT_PAIRWISE_PROMPT if mode == "pairwise" else DEFAULT_JUDGE_PROMPT
        raise ValueError(
            f"judge prompt {prompt_ref} is a {kind.mode} rubric, but the judge mode is {mode}; "
            f"use a {mode} prompt such as {wanted}"
        )
    if not kind.offline and _is_offline(model):
        raise ValueError(
            f"there is no offline {kind.prompt_name} judge; use an LLM judge model for "
            f"{prompt_ref} (e.g. gemini-2.5-flash)"
        )


def _is_offline(model: str) -> bool:
    from codi_eval.models.registry import parse_model_name

    return parse_model_name(model).family == "offline"


def _default_models(name: str) -> Model:
    from codi_eval.models.registry import get_model  # the SDKs load only for LLM judges

    return get_model(name)


def build_judge(
    model: str,
    prompt: JudgePrompt,
    *,
    mode: JudgeMode = "score",
    models: ModelFactory | None = None,
) -> AnyJudge:
    """The judge a spec's ``judge: {model, prompt, mode}`` names.

    ``models`` builds the judge's model from its name (default: ``get_model``). Raises
    ``ValueError`` for an unknown model, or a prompt whose kind has another mode (a score
    rubric in pairwise mode, or the reverse).
    """
    check_judge(model, prompt.ref, mode)
    return kind_of(prompt.ref).factory(model, prompt, models or _default_models)


def build_score_judge(
    model: str, prompt: JudgePrompt, *, models: ModelFactory | None = None
) -> Judge:
    """:func:`build_judge` in ``score`` mode, typed as the :class:`Judge` it returns."""
    judge = build_judge(model, prompt, mode="score", models=models)
    if not isinstance(judge, Judge):
        raise TypeError(f"the {prompt.name} judge kind built {type(judge).__name__}, not a Judge")
    return judge


def build_pairwise_judge(
    model: str, prompt: JudgePrompt, *, models: ModelFactory | None = None
) -> PairwiseJudge:
    """:func:`build_judge` in ``pairwise`` mode, typed as the :class:`PairwiseJudge` it returns."""
    judge = build_judge(model, prompt, mode="pairwise", models=models)
    if not isinstance(judge, PairwiseJudge):
        raise TypeError(
            f"the {prompt.name} judge kind built {type(judge).__name__}, not a PairwiseJudge"
        )
    return judge


@judge_kind("summary_judge", mode="score", metric="summary_quality")
def _summary_judge(model: str, prompt: JudgePrompt, models: ModelFactory) -> AnyJudge:
    if _is_offline(model):
        # The heuristic reads no prompt; the reference is recorded so traces say which rubric.
        return OfflineJudge(metric_name="summary_quality", prompt_ref=prompt.ref)
    return LLMJudge(
        models(model),
        prompt.template,
        prompt.ref,
        "summary_quality",
        scale=prompt.scale or DEFAULT_SCALE,
    )


@judge_kind("code_quality_judge", mode="score", metric="code_quality", offline=False)
def _code_quality_judge(model: str, prompt: JudgePrompt, models: ModelFactory) -> AnyJudge:
    return CodeQualityJudge(
        models(model), prompt.template, prompt.ref, scale=prompt.scale or DEFAULT_SCALE
    )


@judge_kind("pairwise_judge", mode="pairwise", metric="pairwise_preference")
def _pairwise_judge(model: str, prompt: JudgePrompt, models: ModelFactory) -> AnyJudge:
    # The offline model answers pairwise prompts too (from the request's context).
    return LLMPairwiseJudge(models(model), prompt.template, prompt.ref)


def judge_prompt(
    ref: str, template: str | None = None, prompts_dir: Path | None = None
) -> JudgePrompt:
    """The :class:`JudgePrompt` of ``ref``: ``template`` as given (the version the store
    holds) or read from the prompt files, with the scale the prompt file declares."""
    from codi_eval.prompts import prompt_scale
    from codi_eval.settings import get_settings

    directory = prompts_dir or get_settings().prompts_dir
    if template is None:
        found = _prompt_file(ref, directory)
        return JudgePrompt(found.ref, found.template, found.scale)
    return JudgePrompt(ref, template, prompt_scale(ref, template, directory))


def get_judge(
    model_name: str,
    prompt_template: str | None = None,
    prompt_ref: str | None = None,
    *,
    mode: JudgeMode | None = None,
) -> AnyJudge:
    """A judge from a model name and a prompt reference, for notebooks and scripts.

    ``"offline"`` with a summary rubric → :class:`OfflineJudge`; any other model → the LLM
    judge of the prompt's kind. The template is ``prompt_template`` when given, else the
    shipped ``configs/prompts`` file of ``prompt_ref`` (default ``summary_judge@1``); the
    mode is the prompt's kind's. Same as :func:`build_judge`, which the services call.
    """
    ref = prompt_ref or DEFAULT_JUDGE_PROMPT
    return build_judge(
        model_name, judge_prompt(ref, prompt_template), mode=mode or kind_of(ref).mode
    )


def load_judge_prompt(ref: str, prompts_dir: Path | None = None) -> str:
    """The template of prompt ``name@version`` (latest version for a bare name) from
    ``prompts_dir`` (default: the settings' ``configs/prompts``)."""
    from codi_eval.settings import get_settings

    return _prompt_file(ref, prompts_dir or get_settings().prompts_dir).template


def _prompt_file(ref: str, directory: Path) -> PromptFile:
    # Imported here: codi_eval.prompts pulls in the store, which a judge does not need.
    from codi_eval.prompts import load_prompt_dir, parse_ref

    name, version = parse_ref(ref)
    matching = [p for p in load_prompt_dir(directory) if p.name == name]
    if version is not None:
        matching = [p for p in matching if p.version == version]
    if not matching:
        known = sorted({p.ref for p in load_prompt_dir(directory)})
        raise ValueError(f"no prompt {ref} in {directory} (have: {', '.join(known) or 'none'})")
    return max(matching, key=lambda p: p.version)
