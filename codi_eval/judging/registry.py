"""Judge by name: a spec's ``judge: {model: ..., prompt: name@version}`` becomes a Judge."""

from __future__ import annotations

from pathlib import Path

from codi_eval.judging.judgement import Judge
from codi_eval.judging.llm_judge import CodeQualityJudge, LLMJudge
from codi_eval.judging.offline_judge import OfflineJudge

DEFAULT_JUDGE_PROMPT = "summary_judge@1"
CODE_QUALITY_PROMPT = "code_quality_judge"


def get_judge(
    model_name: str, prompt_template: str | None = None, prompt_ref: str | None = None
) -> Judge:
    """``"offline"`` → :class:`OfflineJudge`; any other model name → an LLM judge on
    ``get_model(model_name)``.

    The LLM judge's prompt is ``prompt_template`` when given (the runner passes the version
    from the prompt registry), else the shipped ``configs/prompts`` file for ``prompt_ref``
    (default ``summary_judge@1``). A ``code_quality_judge`` prompt gives a
    :class:`CodeQualityJudge`. Raises ``ValueError`` for an unknown model or prompt.
    """
    ref = prompt_ref or DEFAULT_JUDGE_PROMPT
    wants_code_quality = ref.split("@", 1)[0] == CODE_QUALITY_PROMPT
    if model_name == "offline":
        if wants_code_quality:
            raise ValueError(
                "there is no offline code-quality judge; use an LLM judge model for "
                f"{ref} (e.g. gemini-2.5-flash)"
            )
        return OfflineJudge(prompt_ref=prompt_ref)
    from codi_eval.models.registry import get_model  # the SDKs load only for LLM judges

    template = prompt_template if prompt_template is not None else load_judge_prompt(ref)
    model = get_model(model_name)
    if wants_code_quality:
        return CodeQualityJudge(model, template, ref)
    return LLMJudge(model, template, ref)


def load_judge_prompt(ref: str, prompts_dir: Path | None = None) -> str:
    """The template of prompt ``name@version`` (latest version for a bare name) from
    ``prompts_dir`` (default: the settings' ``configs/prompts``)."""
    # Imported here: codi_eval.prompts pulls in the store, which a judge does not need.
    from codi_eval.prompts import load_prompt_dir, parse_ref
    from codi_eval.settings import get_settings

    name, version = parse_ref(ref)
    directory = prompts_dir or get_settings().prompts_dir
    matching = [p for p in load_prompt_dir(directory) if p.name == name]
    if version is not None:
        matching = [p for p in matching if p.version == version]
    if not matching:
        known = sorted({p.ref for p in load_prompt_dir(directory)})
        raise ValueError(f"no prompt {ref} in {directory} (have: {', '.join(known) or 'none'})")
    return max(matching, key=lambda p: p.version).template
