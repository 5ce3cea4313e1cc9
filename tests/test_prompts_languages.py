"""The Chain of Density prompts get the right code fence for every dataset's language."""

from __future__ import annotations

from pathlib import Path

import pytest

from codi_eval.code_facts import canonical_language, language_info
from codi_eval.datasets import load_jsonl
from codi_eval.prompts import load_prompt_dir
from codi_eval.templates import render

ROOT = Path(__file__).resolve().parents[1]
DATASETS = sorted((ROOT / "datasets").glob("*.jsonl"))


@pytest.mark.parametrize("dataset", DATASETS, ids=lambda p: p.name)
def test_dataset_languages_are_canonical_so_prompts_fence_them_right(dataset: Path) -> None:
    items = load_jsonl(dataset)
    languages = {item.language for item in items}
    assert all(canonical_language(lang) == lang for lang in languages), languages
    item = items[0]
    info = language_info(item.language)
    assert info is not None
    values = {
        "code": item.code,
        "language": item.language,
        "instruction": "Explain it.",
        "iteration": 2,
        "previous_summary": "A summary.",
        "current_summary": "A summary.",
        "word_budget": 50,
    }
    for prompt in load_prompt_dir(ROOT / "configs" / "prompts"):
        if prompt.name.startswith("cod_"):
            text = render(prompt.template, values)
            assert f"```{info.fence}\n{item.code}\n```" in text, prompt.name
