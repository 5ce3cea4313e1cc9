"""The offline baseline: deterministic Chain of Density from code facts, no network."""

from __future__ import annotations

import fnmatch
import heapq
import inspect
import json
import re
import shlex
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codi_eval.code_facts import analyze, entities, entity_density, mentioned, word_count
from codi_eval.models import GenerateRequest, Model, OfflineModel, get_model

FUNCTIONS = [
    textwrap.dedent,
    json.dumps,
    fnmatch.translate,
    heapq.nsmallest,
    shlex.split,
    json.JSONEncoder.encode,
]


def _iteration(
    code: str, i: int, previous: str | None, budget: int | None = None
) -> GenerateRequest:
    ctx = {
        "task": "cod_iteration",
        "code": code,
        "language": "python",
        "instruction": "Explain it.",
        "iteration": i,
        "previous_summary": previous,
    }
    if budget is not None:
        ctx["word_budget"] = budget
    return GenerateRequest(prompt=f"iteration {i}", context=ctx)


async def _chain(model: OfflineModel, code: str, budget: int | None = None) -> list[dict]:
    steps, previous = [], None
    for i in range(1, 6):
        gen = await model.generate(_iteration(code, i, previous, budget))
        step = json.loads(gen.text)
        steps.append(step)
        previous = step["denser_summary"]
    return steps


def test_offline_is_a_model_and_says_it_is_not_an_llm() -> None:
    model = get_model("offline")
    assert isinstance(model, Model) and model.provider == "offline"
    assert "NOT a language model" in (inspect.getmodule(OfflineModel).__doc__ or "")


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__qualname__)
@pytest.mark.parametrize("budget", [None, 35, 80])
async def test_chain_of_density_gets_denser_keeps_entities_and_stays_in_budget(fn, budget) -> None:
    code = inspect.getsource(fn)
    ents = entities(code)
    steps = await _chain(OfflineModel(), code, budget)
    limit = budget or 50
    summaries = [s["denser_summary"] for s in steps]
    assert all(0 < word_count(s) <= limit for s in summaries)
    # Iteration 1 is long and non-specific; later ones add entities.
    assert word_count(summaries[0]) >= limit * 0.6
    densities = [entity_density(s, ents) for s in summaries]
    assert all(b >= a for a, b in zip(densities, densities[1:], strict=False)), densities
    assert densities[-1] > densities[0]
    for before, after, step in zip(summaries, summaries[1:], steps[1:], strict=False):
        assert set(mentioned(before, ents)) <= set(mentioned(after, ents))
        assert len(step["missing_entities"]) <= 3
        for entity in step["missing_entities"]:
            assert entity in ents and entity not in mentioned(before, ents)
            assert entity in mentioned(after, ents)
    assert any(step["missing_entities"] for step in steps[1:])


async def test_chain_is_deterministic() -> None:
    code = inspect.getsource(textwrap.dedent)
    first = await _chain(OfflineModel(), code)
    second = await _chain(OfflineModel(), code)
    assert first == second


async def test_summaries_describe_what_the_code_does() -> None:
    code = inspect.getsource(textwrap.dedent)
    final = (await _chain(OfflineModel(), code))[-1]["denser_summary"]
    assert "`dedent`" in final and "`text`" in final
    assert "loop" in final and "return" in final
    assert "Remove any common leading whitespace" not in final  # no copying the docstring


async def test_final_tightens_without_dropping_entities() -> None:
    code = inspect.getsource(json.dumps)
    ents = entities(code)
    last = (await _chain(OfflineModel(), code))[-1]["denser_summary"]
    gen = await OfflineModel().generate(
        GenerateRequest(
            prompt="final",
            context={
                "task": "cod_final",
                "code": code,
                "language": "python",
                "previous_summary": last,
                "word_budget": 50,
            },
        )
    )
    assert not gen.text.startswith("{")
    assert set(mentioned(last, ents)) <= set(mentioned(gen.text, ents))
    assert word_count(gen.text) <= word_count(last)


async def test_other_languages_use_the_token_fallback() -> None:
    code = "function slugify(title, sep) {\n  return title.toLowerCase().split(' ').join(sep);\n}"
    previous = None
    for i in (1, 2, 3):
        gen = await OfflineModel().generate(
            GenerateRequest(
                prompt="p",
                context={
                    "task": "cod_iteration",
                    "code": code,
                    "language": "javascript",
                    "iteration": i,
                    "previous_summary": previous,
                },
            )
        )
        previous = json.loads(gen.text)["denser_summary"]
    assert {"slugify", "title", "sep"} <= set(mentioned(previous, entities(code, "javascript")))


async def test_no_task_summarizes_code_or_prompt() -> None:
    model = OfflineModel()
    from_context = await model.generate(
        GenerateRequest(prompt="x", context={"code": "def add(a, b):\n    return a + b\n"})
    )
    assert "`add`" in from_context.text and word_count(from_context.text) <= 50
    fenced = await model.generate(
        GenerateRequest(prompt="Summarize:\n```python\ndef mul(x, y):\n    return x * y\n```")
    )
    assert "`mul`" in fenced.text
    plain = await model.generate(GenerateRequest(prompt="Tell me about caching strategies."))
    assert "caching strategies" in plain.text


async def test_usage_is_estimated_cost_is_zero_and_latency_is_measured() -> None:
    model = get_model("offline?latency_ms=60")
    request = GenerateRequest(prompt="a" * 400, system="b" * 40)
    started = time.perf_counter()
    gen = await model.generate(request)
    assert time.perf_counter() - started >= 0.06
    assert gen.latency_ms >= 60
    assert gen.usage.prompt_tokens == 110  # chars / 4
    assert gen.usage.total_tokens == gen.usage.prompt_tokens + gen.usage.completion_tokens
    assert gen.cost == 0.0 and gen.model == "offline"


# --------------------------------------------------------------------------- Dart / Flutter

COUNTER = """
class Counter extends StatefulWidget {
  const Counter({super.key, required this.title});
  final String title;
  @override
  State<Counter> createState() => _CounterState();
}

class _CounterState extends State<Counter> {
  int _count = 0;
  void _increment() {
    setState(() { _count++; });
  }
  @override
  Widget build(BuildContext context) {
    return Column(children: [
      Text('${widget.title}: $_count'),
      ElevatedButton(onPressed: _increment, child: const Text('+')),
    ]);
  }
}
"""

# Words that claim behaviour; checked outside `backticked` names.
CLAIMS = {
    "recursion": re.compile(r"\brecurs", re.I),
    "loops": re.compile(r"\b(?:loops?|iterates?|repeats)\b", re.I),
    "exceptions": re.compile(
        r"\b(?:rais\w*|throws?|catch\w*|reports an error|handles? errors?)\b", re.I
    ),
}


def claims(text: str) -> set[str]:
    prose = re.sub(r"`[^`]*`", " ", text)
    return {name for name, pattern in CLAIMS.items() if pattern.search(prose)}


def allowed_claims(code: str, language: str) -> set[str]:
    facts = analyze(code, language)
    allowed = set()
    if facts.recursive:
        allowed.add("recursion")
    if facts.loops or facts.recursive:
        allowed.add("loops")
    if facts.raises or facts.catches or facts.handles_errors:
        allowed.add("exceptions")
    return allowed


async def _summaries(code: str, language: str) -> list[str]:
    model = OfflineModel()
    texts, previous = [], None
    for i in range(1, 5):
        ctx = {"task": "cod_iteration", "code": code, "language": language, "iteration": i}
        ctx["previous_summary"] = previous
        step = json.loads((await model.generate(GenerateRequest(prompt="p", context=ctx))).text)
        previous = step["denser_summary"]
        texts.append(previous)
    final_ctx = {
        "task": "cod_final",
        "code": code,
        "language": language,
        "previous_summary": previous,
    }
    texts.append((await model.generate(GenerateRequest(prompt="p", context=final_ctx))).text)
    texts.append(
        model.respond(GenerateRequest(prompt="p", context={"code": code, "language": language}))
    )
    return texts


async def test_a_flutter_stateful_widget_is_summarized_as_a_widget_with_state_not_recursion() -> (
    None
):
    # Reported: the offline summary of this widget said it "recurses".
    texts = await _summaries(COUNTER, "dart")
    assert "Dart code" in texts[0] and "user interface" in texts[0]
    final, plain = texts[-2], texts[-1]
    for text in (final, plain):
        assert "stateful widget `Counter`" in text and "`_count`" in text
        assert "state" in text and "builds" in text and "`Column`" in text
        assert not claims(text)


async def test_summaries_of_dart_functions_only_claim_what_the_facts_have() -> None:
    code = """
Future<List<int>> loadAll(List<Uri> uris) async {
  final out = <int>[];
  for (final uri in uris) {
    try {
      out.add(await fetch(uri));
    } on FormatException {
      continue;
    }
  }
  return out;
}
"""
    texts = await _summaries(code, "dart")
    assert claims(" ".join(texts)) <= allowed_claims(code, "dart") == {"loops", "exceptions"}
    assert any("awaits" in t for t in texts)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(["load", "visit", "build", "parse"]),
    loop=st.booleans(),
    self_call=st.sampled_from(["none", "bare", "this", "other", "super"]),
    throw=st.booleans(),
)
async def test_no_dart_summary_claims_recursion_loops_or_exceptions_the_code_lacks(
    name: str, loop: bool, self_call: str, throw: bool
) -> None:
    body = []
    if loop:
        body.append("for (final x in xs) { total += x; }")
    body.append(
        {
            "none": "helper(xs);",
            "bare": f"{name}(xs.sublist(1));",
            "this": f"this.{name}(xs.sublist(1));",
            "other": f"other.{name}(xs);",
            "super": f"super.{name}(xs);",
        }[self_call]
    )
    if throw:
        body.append("if (xs.isEmpty) throw StateError('empty');")
    code = (
        f"int {name}(List<int> xs) {{\n  var total = 0;\n  "
        + "\n  ".join(body)
        + "\n  return total;\n}"
    )
    facts = analyze(code, "dart")
    assert facts.recursive == (self_call in ("bare", "this"))
    assert bool(facts.loops) == loop and bool(facts.raises) == throw
    for text in await _summaries(code, "dart"):
        assert claims(text) <= allowed_claims(code, "dart"), (code, text)


async def test_a_fenced_prompt_is_read_in_the_fence_language() -> None:
    prompt = "Summarize:\n```dart\nint twice(int input) => input * 2;\n```"
    text = (await OfflineModel().generate(GenerateRequest(prompt=prompt))).text
    assert "`twice`" in text and "`input`" in text  # input is a Dart parameter, not a builtin


@pytest.mark.parametrize("dataset", ["flutter-samples", "dart-core"])
async def test_no_summary_of_the_dart_datasets_claims_what_the_facts_lack(dataset: str) -> None:
    from codi_eval.datasets import load_jsonl

    items = load_jsonl(Path(__file__).resolve().parents[1] / "datasets" / f"{dataset}.jsonl")
    assert len(items) >= 100
    widgets = 0
    for item in items:
        allowed = allowed_claims(item.code, "dart")
        facts = analyze(item.code, "dart")
        for text in await _summaries(item.code, "dart"):
            assert claims(text) <= allowed, (item.id, text)
            if facts.widget and facts.name and f"`{facts.name}`" in text:
                widgets += facts.widget in text
    if dataset == "flutter-samples":
        assert widgets >= 20  # widgets are called what they are
